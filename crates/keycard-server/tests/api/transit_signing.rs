//! Remote signing with a real OpenBao (`signing_backend = "transit"`): tokens of each Transit key
//! type verify with keycard-verify against keycard's JWKS; a Transit key rotation is picked up
//! without restart and old tokens keep verifying; OpenBao stopped under load gives 503s and a
//! failing `/readyz`, spends no refresh token, and service resumes when it is back.
//!
//! OpenBao runs as a real server with raft storage in a temporary directory, not `-dev`: "stopped"
//! is the process killed, and "back" is the same server restarted on the same port from its
//! storage and unsealed, so the signing key (and every token's kid) survives, as in production.
//! (A dev server keeps its keys in memory: restarted, it would hold other keys.)

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_core::wire::TokenResponse;
use keycard_server::settings::SigningBackend;
use serde_json::{Value, json};

use crate::bao;
use crate::helpers::*;

/// An OpenBao server with raft storage on a free loopback port; killed on drop.
struct Bao {
    process: bao::Process,
    dir: tempfile::TempDir,
    addr: String,
    http: reqwest::Client,
    unseal_key: String,
    root_token: String,
}

impl Bao {
    /// Started, initialised, unsealed, with Transit mounted; `None` when `bao` is not installed
    /// (outside CI: skipped; in CI: a failure).
    async fn started() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("raft")).unwrap();
        let config = format!(
            "storage \"raft\" {{\n  path = \"{}\"\n  node_id = \"keycard-test\"\n}}\n\
             listener \"tcp\" {{\n  address = \"127.0.0.1:{port}\"\n  tls_disable = true\n}}\n\
             api_addr = \"http://127.0.0.1:{port}\"\ncluster_addr = \"http://127.0.0.1:{cluster}\"\n",
            dir.path().join("raft").display()
        );
        std::fs::write(dir.path().join("bao.hcl"), config).unwrap();
        let mut bao = Self {
            process: bao::Process::default(),
            dir,
            addr: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            unseal_key: String::new(),
            root_token: String::new(),
        };
        if let Err(e) = bao.spawn() {
            return bao::missing(&format!("bao could not start: {e} (bash .ci/install-openbao.sh)"));
        }
        bao.wait_health(|code| code == 501, "to answer uninitialised").await;
        let init = bao
            .http
            .put(format!("{}/v1/sys/init", bao.addr))
            .json(&json!({"secret_shares": 1, "secret_threshold": 1}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        bao.unseal_key = init["keys_base64"][0].as_str().expect("an unseal key").to_owned();
        bao.root_token = init["root_token"].as_str().expect("a root token").to_owned();
        bao.unseal().await;
        bao.call("POST", "sys/mounts/transit", json!({"type": "transit"})).await;
        Some(bao)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let child = Command::new("bao")
            .args(["server", &format!("-config={}", self.dir.path().join("bao.hcl").display())])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        self.process.set(child);
        Ok(())
    }

    /// Waits (at most 30 s) until `/v1/sys/health` answers a status `ok` accepts.
    async fn wait_health(&mut self, ok: impl Fn(u16) -> bool, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = self.http.get(format!("{}/v1/sys/health", self.addr)).send().await;
            if let Ok(resp) = health
                && ok(resp.status().as_u16())
            {
                return;
            }
            if let Some(status) = self.process.exited() {
                panic!("bao server exited with {status} while waiting for it {what}");
            }
            assert!(Instant::now() < deadline, "bao did not come {what} within 30 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Unseals and waits until it is the active node.
    async fn unseal(&mut self) {
        self.wait_health(|code| code == 503, "up sealed").await;
        let resp =
            self.http.put(format!("{}/v1/sys/unseal", self.addr)).json(&json!({"key": self.unseal_key})).send().await;
        assert!(resp.unwrap().status().is_success(), "unseal");
        self.wait_health(|code| code == 200, "up active").await;
    }

    /// Stops the server (killed: no goodbye to its clients).
    fn stop(&mut self) {
        self.process.stop();
    }

    /// Starts it again on the same port from its storage; it comes up sealed.
    fn restart_sealed(&mut self) {
        self.spawn().expect("bao starts again");
    }

    /// A root-token request that must succeed; its JSON answer (`null` for 204).
    async fn call(&self, method: &str, path: &str, body: Value) -> Value {
        bao::call(&self.http, &self.addr, &self.root_token, method, path, body).await
    }

    /// Creates the Transit key `name` of `key_type`, and a token allowed only to read it and
    /// sign with it (the policy keycard needs).
    async fn signing_key(&self, name: &str, key_type: &str) -> String {
        self.call("POST", &format!("transit/keys/{name}"), json!({"type": key_type})).await;
        let policy = format!(
            "path \"transit/keys/{name}\" {{ capabilities = [\"read\"] }}\n\
             path \"transit/sign/{name}\" {{ capabilities = [\"update\"] }}\n"
        );
        self.call("PUT", &format!("sys/policies/acl/sign-{name}"), json!({"policy": policy})).await;
        let answer = self
            .call("POST", "auth/token/create", json!({"policies": [format!("sign-{name}")], "no_default_policy": true}))
            .await;
        answer["auth"]["client_token"].as_str().unwrap().to_owned()
    }
}

/// Settings of a server whose access tokens Transit key `key` signs, logging in with `token`.
async fn signing_settings(bao: &Bao, dir: &tempfile::TempDir, key: &str, token: &str) -> keycard_server::Settings {
    let token_file = dir.path().join("bao-token");
    std::fs::write(&token_file, format!("{token}\n")).unwrap();
    let mut settings = test_settings(dir).await;
    settings.signing_backend = SigningBackend::Transit;
    settings.vault_signing_key = Some(key.into());
    settings.vault_addr = Some(bao.addr.clone());
    settings.vault_token_file = Some(token_file.display().to_string());
    // Load from one address: the per-IP limits are not what these tests are about.
    settings.rate_limit_enabled = false;
    settings.key_reload_interval = secs(1);
    settings
}

/// The `kid` and `alg` of a token's header.
fn header(token: &str) -> (String, String) {
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    let header: Value = serde_json::from_slice(&header).unwrap();
    (header["kid"].as_str().unwrap().to_owned(), header["alg"].as_str().unwrap().to_owned())
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

async fn verifier(app: &TestApp) -> keycard_verify::Verifier {
    keycard_verify::Verifier::builder(&app.state.config.issuer, &app.state.config.audience)
        .without_revocation()
        .build()
        .await
        .expect("keycard-verify discovers keycard's JWKS")
}

/// Polls `check` every 50 ms for at most `limit`; the time it took, or `None`.
async fn wait_until<F: Future<Output = bool>>(limit: Duration, mut check: impl FnMut() -> F) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if check().await {
            return Some(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test]
async fn transit_signs_tokens_of_each_key_type_that_keycard_verify_accepts() {
    let Some(bao) = Bao::started().await else { return };
    for (key_type, alg) in [("ed25519", "EdDSA"), ("ecdsa-p256", "ES256"), ("rsa-2048", "RS256")] {
        let name = format!("tokens-{key_type}");
        let token = bao.signing_key(&name, key_type).await;
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let app = start(signing_settings(&bao, &dir, &name, &token).await, dir.clone()).await;
        assert_eq!(app.state.keys().alg().as_str(), alg);

        let (_, login) = app.user().await;
        let refreshed = app.refresh(login.refresh_token.as_deref().unwrap()).await;
        assert_eq!(refreshed.status(), 200, "{key_type}: refresh");
        let refreshed: TokenResponse = refreshed.json().await.unwrap();

        let kids = jwks_kids(&app).await;
        let verifier = verifier(&app).await;
        for access in [&login.access_token, &refreshed.access_token] {
            let (kid, header_alg) = header(access);
            assert_eq!(header_alg, alg, "{key_type}");
            assert_eq!(kids, std::slice::from_ref(&kid), "{key_type}: JWKS publishes the signing version's kid");
            let claims = verifier.verify(access).await.unwrap_or_else(|e| panic!("{key_type}: {e}"));
            assert_eq!(claims.sid, login.session_id);
            assert_eq!(app.get_authed("/auth/me", access).await.status(), 200, "{key_type}");
        }
        // The kid is the RFC 7638 thumbprint of the published key: anyone can recompute it.
        let jwks: keycard_core::keys::JwkSet =
            app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
        assert_eq!(jwks.keys[0].thumbprint().as_deref(), Some(kids[0].as_str()), "{key_type}");
        let statuses = app.state.transit().unwrap().statuses(app.now(), app.state.config.key_overlap).await.unwrap();
        assert_eq!((statuses.len(), statuses[0].version, statuses[0].status.state), (1, 1, "active"));
        app.stop().await;
    }
}

#[tokio::test]
async fn a_transit_key_rotation_signs_with_the_new_version_and_old_tokens_keep_verifying() {
    let Some(bao) = Bao::started().await else { return };
    let token = bao.signing_key("tokens", "ed25519").await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = start(signing_settings(&bao, &dir, "tokens", &token).await, dir.clone()).await;
    let (email, old) = app.user().await;
    let (old_kid, _) = header(&old.access_token);

    bao.call("POST", "transit/keys/tokens/rotate", json!({})).await;
    // No restart: the periodic reload (key_reload_interval = 1 s) finds version 2.
    let a = &app;
    let noticed = wait_until(Duration::from_secs(10), || async move { jwks_kids(a).await.len() == 2 }).await;
    assert!(noticed.is_some(), "the new version reached JWKS: {:?}", jwks_kids(&app).await);
    let new = app.login(&email).await;
    let (new_kid, _) = header(&new.access_token);
    assert_ne!(new_kid, old_kid, "new tokens carry the new version's kid");
    let kids = jwks_kids(&app).await;
    assert!(kids.contains(&old_kid) && kids.contains(&new_kid), "{kids:?}");
    let verifier = verifier(&app).await;
    for access in [&old.access_token, &new.access_token] {
        verifier.verify(access).await.expect("old and new tokens verify");
        assert_eq!(app.get_authed("/auth/me", access).await.status(), 200);
    }

    // Past the overlap window (driven by the clock): version 1 leaves JWKS, version 2 stays.
    app.advance((app.state.config.key_overlap + 1) as f64);
    app.state.reload_keys().await.unwrap();
    assert_eq!(jwks_kids(&app).await, std::slice::from_ref(&new_kid));
    let statuses = app.state.transit().unwrap().statuses(app.now(), app.state.config.key_overlap).await.unwrap();
    let states: Vec<(u32, &str)> = statuses.iter().map(|s| (s.version, s.status.state)).collect();
    assert_eq!(states, [(1, "expired"), (2, "active")]);

    // Retiring a version in Transit (min_decryption_version) takes it out at once.
    bao.call("POST", "transit/keys/tokens/rotate", json!({})).await;
    bao.call("POST", "transit/keys/tokens/config", json!({"min_decryption_version": 3})).await;
    app.state.reload_keys().await.unwrap();
    let kids = jwks_kids(&app).await;
    assert_eq!(kids.len(), 1);
    assert!(!kids.contains(&new_kid), "{kids:?}");
    let newest = app.login(&email).await;
    assert_eq!(header(&newest.access_token).0, kids[0]);
}

#[tokio::test]
async fn an_instance_that_has_not_reloaded_takes_a_new_versions_token_on_first_sight_of_its_kid() {
    // Two servers on one SQLite file and one clock stand in for two instances; neither reloads
    // on a timer.
    let Some(bao) = Bao::started().await else { return };
    let token = bao.signing_key("tokens", "ed25519").await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = signing_settings(&bao, &dir, "tokens", &token).await;
    settings.issuer = Some("http://keycard.test".into());
    settings.key_reload_interval = secs(0);
    let a = start(settings.clone(), dir.clone()).await;
    let b = start_with_clock(settings, dir.clone(), a.clock.clone()).await;
    let (_, tokens) = a.user().await;

    bao.call("POST", "transit/keys/tokens/rotate", json!({})).await;
    b.state.reload_keys().await.unwrap();
    let fresh: TokenResponse = b.refresh(tokens.refresh_token.as_deref().unwrap()).await.json().await.unwrap();
    let new_kid = header(&fresh.access_token).0;
    assert_ne!(new_kid, header(&tokens.access_token).0, "B signs with version 2");
    assert!(!jwks_kids(&a).await.contains(&new_kid), "A has not looked yet");
    // A second later (a reload on an unknown kid happens at most once a second).
    a.advance(1.1);
    assert_eq!(a.get_authed("/auth/me", &fresh.access_token).await.status(), 200);
    assert!(jwks_kids(&a).await.contains(&new_kid));
    assert_eq!(a.get_authed("/auth/me", &tokens.access_token).await.status(), 200, "version 1's token too");
}

#[tokio::test]
async fn start_up_names_a_missing_key_a_key_that_cannot_sign_and_a_token_that_may_not_sign() {
    let Some(bao) = Bao::started().await else { return };
    let token = bao.signing_key("tokens", "ed25519").await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let settings = signing_settings(&bao, &dir, "tokens", &token).await;
    let build_error = |settings: keycard_server::Settings| async move {
        let err = keycard_server::Application::build(settings).await.err().expect("start-up must fail");
        format!("{err:#}")
    };

    // The root token, so that only the key is wrong (keycard's own token may not read others).
    std::fs::write(dir.path().join("bao-token"), &bao.root_token).unwrap();
    let mut missing_key = settings.clone();
    missing_key.vault_signing_key = Some("no-such-key".into());
    let err = build_error(missing_key).await;
    assert!(err.contains("\"no-such-key\" does not exist"), "{err}");

    bao.call("POST", "transit/keys/an-aes-key", json!({})).await;
    let mut aes = settings.clone();
    aes.vault_signing_key = Some("an-aes-key".into());
    let err = build_error(aes).await;
    assert!(err.contains("of type aes256-gcm96") && err.contains("ed25519, ecdsa-p256 or rsa-2048"), "{err}");

    // A token that may read the key but not sign with it: the start-up probe finds out.
    let policy = "path \"transit/keys/tokens\" { capabilities = [\"read\"] }\n";
    bao.call("PUT", "sys/policies/acl/read-only", json!({"policy": policy})).await;
    let read_only =
        bao.call("POST", "auth/token/create", json!({"policies": ["read-only"], "no_default_policy": true})).await;
    let read_only = read_only["auth"]["client_token"].as_str().unwrap().to_owned();
    std::fs::write(dir.path().join("bao-token"), &read_only).unwrap();
    let err = build_error(settings.clone()).await;
    assert!(err.contains("denied signing with Transit key \"tokens\""), "{err}");
    assert!(!err.contains(&read_only), "the error shows the token: {err}");

    std::fs::write(dir.path().join("bao-token"), &token).unwrap();
    start(settings, dir.clone()).await.stop().await;
}

async fn ready(app: &TestApp) -> u16 {
    app.client.get(app.url("/readyz")).send().await.unwrap().status().as_u16()
}

/// What the refresh load saw.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unavailable: AtomicU64,
}

#[tokio::test]
async fn openbao_stopped_under_load_answers_503_spends_no_refresh_token_and_service_resumes() {
    let Some(mut bao) = Bao::started().await else { return };
    let token = bao.signing_key("tokens", "ecdsa-p256").await;
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let app = Arc::new(start(signing_settings(&bao, &dir, "tokens", &token).await, dir.clone()).await);
    let (email, _) = app.user().await;
    const CHAINS: usize = 6;
    let mut chains = Vec::new();
    for _ in 0..CHAINS {
        chains.push(app.login(&email).await.refresh_token.unwrap());
    }
    let tally = Arc::new(Tally::default());
    let running = Arc::new(AtomicBool::new(true));
    let mut load = tokio::task::JoinSet::new();
    for (chain, mut current) in chains.into_iter().enumerate() {
        let (app, tally, running) = (app.clone(), tally.clone(), running.clone());
        load.spawn(async move {
            while running.load(Ordering::Relaxed) {
                let resp = app.refresh(&current).await;
                match resp.status().as_u16() {
                    200 => {
                        current = resp.json::<TokenResponse>().await.unwrap().refresh_token.unwrap();
                        tally.ok.fetch_add(1, Ordering::Relaxed);
                    }
                    503 => {
                        let headers = assert_error(resp, 503, "temporarily_unavailable").await;
                        assert!(headers.contains_key("retry-after"), "chain {chain}: 503 without Retry-After");
                        tally.unavailable.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    other => panic!("chain {chain}: refresh answered {other}: {}", resp.text().await.unwrap()),
                }
            }
            current
        });
    }
    let (a, t) = (&*app, &*tally);
    let refreshed = wait_until(Duration::from_secs(10), || async move { t.ok.load(Ordering::Relaxed) >= 30 }).await;
    assert!(refreshed.is_some(), "refreshes run");
    assert_eq!(ready(a).await, 200);

    bao.stop();
    let failing = wait_until(Duration::from_secs(10), || async move {
        t.unavailable.load(Ordering::Relaxed) >= 10 && ready(a).await == 503
    })
    .await;
    assert!(failing.is_some(), "503s and a failing /readyz while OpenBao is down");
    let login = app.post_json("/auth/login", json!({"email": email, "password": PASSWORD})).await;
    assert_error(login, 503, "temporarily_unavailable").await;

    // Back, but sealed: Transit refuses; still 503 and not ready.
    bao.restart_sealed();
    bao.wait_health(|code| code == 503, "up sealed").await;
    assert_eq!(ready(a).await, 503);
    let ok_before = t.ok.load(Ordering::Relaxed);
    bao.unseal().await;
    let recovered = wait_until(Duration::from_secs(15), || async move {
        ready(a).await == 200 && t.ok.load(Ordering::Relaxed) >= ok_before + 3 * CHAINS as u64
    })
    .await;
    assert!(recovered.is_some(), "service resumes by itself when OpenBao is back");
    running.store(false, Ordering::Relaxed);
    let currents = load.join_all().await;

    // Every chain's current token still works: no 503 spent one (a spent token presented
    // again would be reuse, a 401 and a revoked session).
    for (chain, current) in currents.iter().enumerate() {
        let resp = app.refresh(current).await;
        assert_eq!(resp.status(), 200, "chain {chain}: {}", resp.text().await.unwrap());
    }
    let unavailable = tally.unavailable.load(Ordering::Relaxed);
    println!("refreshes: {} ok, {unavailable} answered 503 while OpenBao was down", tally.ok.load(Ordering::Relaxed));
    assert!(unavailable > 0);
    let logged_in = app.post_json("/auth/login", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(logged_in.status(), 200);
}
