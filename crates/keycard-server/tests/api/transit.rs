//! Envelope encryption of the master key with a real OpenBao (`bao server -dev`, started per test
//! on a free port with a known root token; `.ci/install-openbao.sh` installs it): a restart
//! unwraps the stored master key, only the wrapped key is stored, a revoked token / a wrong key /
//! an unreachable server stop start-up with a clear error and never make a new key, `keys rewrap`
//! follows a Transit key rotation, AppRole logs in.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::bao;
use crate::helpers::*;

const ROOT_TOKEN: &str = "keycard-test-root";
const MASTER_KEY: &str = "keycard-master";

/// `bao server -dev` on a free loopback port; killed on drop.
pub struct Bao {
    /// Killed when the value drops.
    _process: bao::Process,
    pub addr: String,
    http: reqwest::Client,
}

impl Bao {
    /// Started with Transit mounted and the key `keycard-master`; `None` when `bao` is not
    /// installed (outside CI: skipped; in CI: a failure).
    pub async fn started() -> Option<Self> {
        // A dev server also listens on the port after its own (the cluster port), which another
        // test's server may hold: a bao that exits at start is tried again on other ports.
        let mut attempts = 0;
        let (child, addr, http) = loop {
            attempts += 1;
            let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
            let spawned = Command::new("bao")
                .args(["server", "-dev", &format!("-dev-root-token-id={ROOT_TOKEN}")])
                .arg(format!("-dev-listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match spawned {
                Ok(child) => child,
                Err(e) => return bao::missing(&format!("bao could not start: {e} (bash .ci/install-openbao.sh)")),
            };
            let (addr, http) = (format!("http://127.0.0.1:{port}"), reqwest::Client::new());
            let deadline = Instant::now() + Duration::from_secs(30);
            let exited = loop {
                let health = http.get(format!("{addr}/v1/sys/health")).send().await;
                if health.is_ok_and(|r| r.status() == 200) {
                    break None;
                }
                if let Ok(Some(status)) = child.try_wait() {
                    break Some(status);
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    panic!("bao server -dev did not answer within 30 s");
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            };
            match exited {
                None => break (child, addr, http),
                Some(status) if attempts >= 5 => panic!("bao server -dev exited with {status}, {attempts} times"),
                Some(_) => continue,
            }
        };
        let mut process = bao::Process::default();
        process.set(child);
        let bao = Self { _process: process, addr, http };
        bao.call("POST", "sys/mounts/transit", json!({"type": "transit"})).await;
        bao.call("POST", &format!("transit/keys/{MASTER_KEY}"), json!({})).await;
        bao.call("POST", "transit/keys/other", json!({})).await;
        let policy = format!(
            "path \"transit/encrypt/{MASTER_KEY}\" {{ capabilities = [\"update\"] }}\n\
             path \"transit/decrypt/{MASTER_KEY}\" {{ capabilities = [\"update\"] }}\n\
             path \"transit/rewrap/{MASTER_KEY}\" {{ capabilities = [\"update\"] }}\n"
        );
        bao.call("PUT", "sys/policies/acl/keycard", json!({"policy": policy})).await;
        Some(bao)
    }

    /// A root-token request that must succeed; its JSON answer (`null` for 204).
    pub async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        bao::call(&self.http, &self.addr, ROOT_TOKEN, method, path, body).await
    }

    /// A token with only the `keycard` policy (encrypt, decrypt, rewrap with the master key).
    pub async fn keycard_token(&self) -> String {
        let answer =
            self.call("POST", "auth/token/create", json!({"policies": ["keycard"], "no_default_policy": true})).await;
        answer["auth"]["client_token"].as_str().unwrap().to_owned()
    }
}

/// Settings of a server whose master key is wrapped by `bao`'s Transit key, logging in with a
/// token written to a file in `dir`.
async fn transit_settings(bao: &Bao, dir: &tempfile::TempDir, token: &str) -> keycard_server::Settings {
    let token_file = dir.path().join("bao-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut settings = test_settings(dir).await;
    // A fixed issuer: a restarted server (a new port) accepts the tokens of the first.
    settings.issuer = Some("http://keycard.test".into());
    settings.master_key = None;
    settings.master_key_transit_key = Some(MASTER_KEY.into());
    settings.vault_addr = Some(bao.addr.clone());
    settings.vault_token_file = Some(token_file.display().to_string());
    settings
}

fn token_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("bao-token")
}

async fn build_error(settings: keycard_server::Settings) -> String {
    let err = keycard_server::Application::build(settings).await.err().expect("start-up must fail");
    format!("{err:#}")
}

#[tokio::test]
async fn a_restart_unwraps_the_master_key_and_the_store_holds_only_the_wrapped_key() {
    let Some(bao) = Bao::started().await else { return };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let settings = transit_settings(&bao, &dir, &bao.keycard_token().await).await;
    let first = start(settings.clone(), dir.clone()).await;
    let (_, tokens) = first.user().await;
    let kid = first.state.keys().active_kid().to_owned();
    let wrapped = first.store().wrapped_master_key().await.unwrap().expect("the wrapped master key is stored");
    assert_eq!(wrapped.key_name, MASTER_KEY);
    assert!(wrapped.ciphertext.starts_with("vault:v1:"), "{}", wrapped.ciphertext);
    assert!(!dir.path().join("keycard.db.master-key").exists(), "no plaintext master key on disk");
    first.stop().await;

    let again = start(settings, dir.clone()).await;
    assert_eq!(again.state.keys().active_kid(), kid, "the same signing key, opened with the unwrapped master key");
    assert_eq!(again.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
    let refreshed = again.refresh(tokens.refresh_token.as_deref().unwrap()).await;
    assert_eq!(refreshed.status(), 200);
    assert_eq!(again.store().wrapped_master_key().await.unwrap(), Some(wrapped), "unchanged by a restart");
}

#[tokio::test]
async fn a_revoked_token_a_wrong_key_or_an_unreachable_server_stop_start_up_and_never_make_a_new_key() {
    let Some(bao) = Bao::started().await else { return };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let token = bao.keycard_token().await;
    let settings = transit_settings(&bao, &dir, &token).await;
    let first = start(settings.clone(), dir.clone()).await;
    let store = first.state.store.clone();
    let wrapped = store.wrapped_master_key().await.unwrap().unwrap();
    first.stop().await;

    bao.call("POST", "auth/token/revoke", json!({"token": token})).await;
    let err = build_error(settings.clone()).await;
    assert!(err.contains("denied") && err.contains("revoked"), "{err}");
    assert!(!err.contains(&token), "the error shows the token: {err}");

    // Another Transit key configured than the one that wrapped the stored key.
    std::fs::write(token_path(&dir), bao.keycard_token().await).unwrap();
    let mut other = settings.clone();
    other.master_key_transit_key = Some("other".into());
    let err = build_error(other).await;
    assert!(err.contains("wrapped by Transit key \"keycard-master\"") && err.contains("refusing"), "{err}");

    // A ciphertext the configured key did not make (the key deleted and re-created, a restored
    // database of another deployment): Transit cannot unwrap it.
    let foreign = bao
        .call("POST", "transit/encrypt/other", json!({"plaintext": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="}))
        .await;
    let foreign = keycard_store::WrappedMasterKey {
        ciphertext: foreign["data"]["ciphertext"].as_str().unwrap().to_owned(),
        ..wrapped.clone()
    };
    assert!(store.replace_wrapped_master_key(Some(wrapped.ciphertext.as_str()), &foreign).await.unwrap());
    let err = build_error(settings.clone()).await;
    assert!(err.contains("does not unwrap the stored master key") && err.contains("wrong key"), "{err}");
    assert!(store.replace_wrapped_master_key(Some(foreign.ciphertext.as_str()), &wrapped).await.unwrap());

    let mut unreachable = settings.clone();
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    unreachable.vault_addr = Some(format!("http://127.0.0.1:{closed}"));
    let err = build_error(unreachable).await;
    assert!(err.contains("unreachable"), "{err}");

    assert_eq!(store.wrapped_master_key().await.unwrap(), Some(wrapped), "no new master key was made");
    assert!(!dir.path().join("keycard.db.master-key").exists());
    // And with everything right again, it starts.
    start(settings, dir.clone()).await.stop().await;
}

#[tokio::test]
async fn keys_rewrap_follows_a_transit_key_rotation() {
    let Some(bao) = Bao::started().await else { return };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let settings = transit_settings(&bao, &dir, &bao.keycard_token().await).await;
    let first = start(settings.clone(), dir.clone()).await;
    let (_, tokens) = first.user().await;
    let store = first.state.store.clone();
    first.stop().await;

    bao.call("POST", &format!("transit/keys/{MASTER_KEY}/rotate"), json!({})).await;
    let version = keycard_server::vault::rewrap_master_key(&settings, store.as_ref(), 0).await.unwrap();
    assert_eq!(version.as_deref(), Some("v2"));
    assert!(store.wrapped_master_key().await.unwrap().unwrap().ciphertext.starts_with("vault:v2:"));
    assert_eq!(keycard_server::vault::rewrap_master_key(&settings, store.as_ref(), 0).await.unwrap(), None);
    // Version 1 can no longer decrypt anything: the rewrapped key does not need it.
    bao.call("POST", &format!("transit/keys/{MASTER_KEY}/config"), json!({"min_decryption_version": 2})).await;
    let again = start(settings, dir.clone()).await;
    assert_eq!(again.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
}

#[tokio::test]
async fn approle_logs_in_instead_of_a_token_file() {
    let Some(bao) = Bao::started().await else { return };
    bao.call("POST", "sys/auth/approle", json!({"type": "approle"})).await;
    bao.call("POST", "auth/approle/role/keycard", json!({"token_policies": ["keycard"], "token_ttl": "1h"})).await;
    let role_id = bao.call("GET", "auth/approle/role/keycard/role-id", Value::Null).await["data"]["role_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let secret_id = bao.call("POST", "auth/approle/role/keycard/secret-id", json!({})).await["data"]["secret_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = transit_settings(&bao, &dir, "unused").await;
    settings.vault_token_file = None;
    let secret_file = dir.path().join("secret-id");
    std::fs::write(&secret_file, &secret_id).unwrap();
    settings.vault_approle_role_id = Some(role_id);
    settings.vault_approle_secret_id_file = Some(secret_file.display().to_string());
    let app = start(settings.clone(), dir.clone()).await;
    let (_, tokens) = app.user().await;
    app.stop().await;
    let again = start(settings.clone(), dir.clone()).await;
    assert_eq!(again.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
    again.stop().await;

    std::fs::write(&secret_file, "not-the-secret-id").unwrap();
    let err = build_error(settings).await;
    assert!(err.contains("AppRole login") && !err.contains(&secret_id), "{err}");
}
