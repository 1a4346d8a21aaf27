//! Signing keys from files (`signing_key_files`): the last file signs, the others verify, kids
//! are RFC 7638 thumbprints; a file replaced under load refuses no valid token; a malformed
//! replacement keeps the last good ring; two instances reading the same files agree on every kid;
//! `keycard keys import` puts a PEM key into the sealed store. Reloads are driven by the test
//! (`reload_keys`) and time moved by the manual clock, except in the one test of the background
//! re-reading, which polls for its effect.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use keycard_core::keys::{KeyAlg, SigningKey};
use serde_json::Value;

use crate::helpers::*;

/// A new key of `alg` (kid = its thumbprint, as read from a file) and its PKCS#8 PEM text.
fn new_key(alg: KeyAlg) -> (SigningKey, String) {
    let key = SigningKey::generate(alg).unwrap();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&key.material().private_der);
    let lines: Vec<&str> = b64.as_bytes().chunks(64).map(|c| std::str::from_utf8(c).unwrap()).collect();
    let pem = format!("-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n", lines.join("\n"));
    // As keycard reads it: named by its thumbprint.
    (SigningKey::from_key_file(pem.as_bytes()).unwrap(), pem)
}

/// Writes `text` to `path` the way secret managers do: a new file renamed over the old one.
fn replace_file(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Writes a key file into the app's directory and returns its path.
fn key_file(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    replace_file(&path, text);
    path
}

fn file_list(paths: &[&Path]) -> keycard_server::settings::StringList {
    keycard_server::settings::StringList(paths.iter().map(|p| p.display().to_string()).collect())
}

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let mut kids: Vec<String> =
        jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect();
    kids.sort();
    kids
}

fn kid_of(token: &str) -> String {
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
}

fn sorted(mut kids: Vec<String>) -> Vec<String> {
    kids.sort();
    kids
}

/// A server signing with key files `a.pem` (verify) and `b.pem` (signs) in a fresh directory.
async fn app_with_files(configure: impl FnOnce(&mut keycard_server::Settings)) -> (TestApp, SigningKey, SigningKey) {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (a, a_pem) = new_key(KeyAlg::Es256);
    let (b, b_pem) = new_key(KeyAlg::EdDsa);
    let a_path = key_file(dir.path(), "a.pem", &a_pem);
    let b_path = key_file(dir.path(), "b.pem", &b_pem);
    let mut settings = test_settings(&dir).await;
    settings.signing_key_files = file_list(&[&a_path, &b_path]);
    settings.key_reload_interval = secs(0);
    settings.rate_limit_enabled = false;
    configure(&mut settings);
    (start(settings, dir).await, a, b)
}

#[tokio::test]
async fn the_last_file_signs_the_others_verify_and_jwks_publishes_both_by_thumbprint() {
    let (app, a, b) = app_with_files(|_| {}).await;
    let (a_kid, b_kid) = (a.thumbprint(), b.thumbprint());
    assert_eq!(jwks_kids(&app).await, sorted(vec![a_kid.clone(), b_kid.clone()]));
    let (_, tokens) = app.user().await;
    assert_eq!(kid_of(&tokens.access_token), b_kid, "the last file signs");
    assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
    // A token signed with the first file's key (say, by an instance that still has it last) verifies.
    let me: Value = app.get_authed("/auth/me", &tokens.access_token).await.json().await.unwrap();
    let mut claims = keycard_core::claims::AccessClaims::new(
        &app.state.config.issuer,
        &app.state.config.audience,
        me["id"].as_str().unwrap(),
        &tokens.session_id,
        app.now(),
        60,
    );
    claims.client_id = Some("keycard".into());
    let by_a = a.sign(&claims).unwrap();
    assert_eq!(kid_of(&by_a), a_kid);
    assert_eq!(app.get_authed("/auth/me", &by_a).await.status(), 200, "the other files verify");
    assert!(app.store().signing_keys().await.unwrap().is_empty(), "nothing generated into the store");
}

#[tokio::test]
async fn an_hs256_secret_file_signs_and_never_appears_in_jwks() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let secret_path = dir.path().join("jwt-secret");
    std::fs::write(&secret_path, "a shared secret of at least thirty-two bytes\n").unwrap();
    let (ed, ed_pem) = new_key(KeyAlg::EdDsa);
    let ed_path = key_file(dir.path(), "ed.pem", &ed_pem);
    let mut settings = test_settings(&dir).await;
    settings.signing_key_files = keycard_server::settings::StringList(vec![
        ed_path.display().to_string(),
        format!("hs256:{}", secret_path.display()),
    ]);
    let app = start(settings, dir).await;
    let (_, tokens) = app.user().await;
    let secret = SigningKey::from_hs256_secret(b"a shared secret of at least thirty-two bytes").unwrap();
    assert_eq!(kid_of(&tokens.access_token), secret.kid(), "one trailing newline is not the secret's");
    assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
    assert_eq!(jwks_kids(&app).await, vec![ed.thumbprint()], "the secret stays out of JWKS");
}

#[tokio::test]
async fn a_missing_malformed_or_weak_file_at_start_up_is_an_error_naming_it() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (_, good_pem) = new_key(KeyAlg::EdDsa);
    let good = key_file(dir.path(), "good.pem", &good_pem);
    let body = good_pem.lines().nth(1).unwrap().to_owned();
    let truncated = key_file(dir.path(), "truncated.pem", &good_pem[..good_pem.len() / 2]);
    let public = key_file(
        dir.path(),
        "public.pem",
        "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAVkqJNg51zFSyUorA+yRimuD+9jBiCCUTf++7KrD/K04=\n-----END PUBLIC KEY-----\n",
    );
    let weak = key_file(dir.path(), "weak-secret", "short\n");
    let missing = dir.path().join("missing.pem");
    let base = test_settings(&dir).await;
    let cases = [
        (vec![good.display().to_string(), missing.display().to_string()], "missing.pem", "No such file"),
        (vec![truncated.display().to_string(), good.display().to_string()], "truncated.pem", "PEM"),
        (vec![public.display().to_string()], "public.pem", "private key"),
        (vec![format!("hs256:{}", weak.display())], "weak-secret", "at least 32"),
    ];
    for (files, name, why) in cases {
        let mut settings = base.clone();
        settings.signing_key_files = keycard_server::settings::StringList(files);
        let err = keycard_server::Application::build(settings).await.err().expect("must not start");
        let text = format!("{err:#}");
        assert!(text.contains(name) && text.contains(why), "{name}: {text}");
        assert!(!text.contains(&body[..20]), "{name}: the error quotes the key: {text}");
    }
    let mut settings = base.clone();
    settings.signing_key_files = keycard_server::settings::StringList(vec!["hs256:".into()]);
    let err = keycard_server::Application::build(settings).await.err().expect("an entry without a file");
    assert!(err.to_string().contains("names no file"), "{err}");
}

/// One client's loop: refresh, then `/auth/me` with the new access token and with the one before
/// it (still valid); every answer must be 200. Counts rounds; records the last access token.
async fn keep_refreshing(
    app: Arc<TestApp>,
    stop: Arc<AtomicBool>,
    rounds: Arc<AtomicUsize>,
    failures: Arc<std::sync::Mutex<Vec<String>>>,
) -> String {
    let (_, tokens) = app.user().await;
    let mut refresh = tokens.refresh_token.unwrap();
    let mut previous = tokens.access_token;
    while !stop.load(Ordering::Relaxed) {
        let resp = app.refresh(&refresh).await;
        if resp.status() != 200 {
            failures.lock().unwrap().push(format!("refresh: {}", resp.status()));
            break;
        }
        let body: Value = resp.json().await.unwrap();
        refresh = body["refresh_token"].as_str().unwrap().to_owned();
        let access = body["access_token"].as_str().unwrap().to_owned();
        for (which, token) in [("new", &access), ("previous", &previous)] {
            let status = app.get_authed("/auth/me", token).await.status();
            if status != 200 {
                failures
                    .lock()
                    .unwrap()
                    .push(format!("/auth/me with the {which} token (kid {}): {status}", kid_of(token)));
            }
        }
        previous = access;
        rounds.fetch_add(1, Ordering::Relaxed);
    }
    previous
}

/// Waits until `counter` reaches `target` (the load makes progress), for at most 30 s.
async fn wait_for(counter: &AtomicUsize, target: usize) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while counter.load(Ordering::Relaxed) < target {
        assert!(Instant::now() < deadline, "the load stalled at {} rounds", counter.load(Ordering::Relaxed));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_file_replaced_under_load_refuses_no_valid_token_and_the_old_kid_leaves_after_its_tokens() {
    let (app, a, b) = app_with_files(|_| {}).await;
    let app = Arc::new(app);
    let b_path = app.dir.path().join("b.pem");
    let (_, before) = app.user().await;
    assert_eq!(kid_of(&before.access_token), b.thumbprint());

    let (stop, rounds) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
    let failures = Arc::new(std::sync::Mutex::new(Vec::new()));
    let workers: Vec<_> = (0..4)
        .map(|_| tokio::spawn(keep_refreshing(app.clone(), stop.clone(), rounds.clone(), failures.clone())))
        .collect();
    wait_for(&rounds, 20).await;

    // The secret manager replaces b.pem with a new key, in place.
    let (c, c_pem) = new_key(KeyAlg::EdDsa);
    replace_file(&b_path, &c_pem);
    app.state.reload_keys().await.unwrap();
    let after_reload = rounds.load(Ordering::Relaxed);
    wait_for(&rounds, after_reload + 40).await;
    stop.store(true, Ordering::Relaxed);
    let mut last_tokens = Vec::new();
    for worker in workers {
        last_tokens.push(worker.await.unwrap());
    }
    assert_eq!(*failures.lock().unwrap(), Vec::<String>::new(), "no valid token refused");
    for token in &last_tokens {
        assert_eq!(kid_of(token), c.thumbprint(), "new tokens carry the new kid");
    }
    assert_eq!(app.get_authed("/auth/me", &before.access_token).await.status(), 200, "old tokens still verify");
    assert_eq!(jwks_kids(&app).await, sorted(vec![a.thumbprint(), b.thumbprint(), c.thumbprint()]));

    // The old kid stays until the tokens it signed have expired (access TTL + leeway, and two
    // reload intervals), then leaves JWKS; the keys still in the files stay.
    let overlap = app.state.config.key_overlap as f64;
    app.advance(overlap - 1.0);
    app.state.reload_keys().await.unwrap();
    assert!(jwks_kids(&app).await.contains(&b.thumbprint()), "still inside its overlap");
    app.advance(1.0);
    app.state.reload_keys().await.unwrap();
    assert_eq!(jwks_kids(&app).await, sorted(vec![a.thumbprint(), c.thumbprint()]));
    assert_error(app.get_authed("/auth/me", &before.access_token).await, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_malformed_or_missing_replacement_keeps_the_last_good_ring_serving() {
    let (app, a, b) = app_with_files(|_| {}).await;
    let b_path = app.dir.path().join("b.pem");
    let (email, before) = app.user().await;
    let kids = jwks_kids(&app).await;

    let (c, c_pem) = new_key(KeyAlg::EdDsa);
    let body = c_pem.lines().nth(1).unwrap().to_owned();
    for (what, text) in [("truncated", &c_pem[..c_pem.len() - 40]), ("not a key", "hello\n"), ("empty", "")] {
        replace_file(&b_path, text);
        let err = app.state.reload_keys().await.expect_err(what);
        let logged = format!("{err:#}");
        assert!(logged.contains("b.pem"), "{what}: the error names the file: {logged}");
        assert!(!logged.contains(&body[..16]), "{what}: the error quotes the key: {logged}");
        assert_eq!(jwks_kids(&app).await, kids, "{what}: the ring is unchanged");
        let tokens = app.login(&email).await;
        assert_eq!(kid_of(&tokens.access_token), b.thumbprint(), "{what}: the last good key still signs");
        assert_eq!(app.get_authed("/auth/me", &before.access_token).await.status(), 200);
    }
    std::fs::remove_file(&b_path).unwrap();
    let err = app.state.reload_keys().await.expect_err("a missing file");
    assert!(format!("{err:#}").contains("b.pem"), "{err:#}");
    assert_eq!(jwks_kids(&app).await, kids);

    // Fixed: the next reload takes the new key.
    replace_file(&b_path, &c_pem);
    app.state.reload_keys().await.unwrap();
    assert_eq!(kid_of(&app.login(&email).await.access_token), c.thumbprint());
    assert!(jwks_kids(&app).await.contains(&a.thumbprint()));
}

#[tokio::test]
async fn the_files_are_re_read_every_reload_interval() {
    let (app, _, _) =
        app_with_files(|s| s.key_reload_interval = keycard_server::settings::HumanDuration(Duration::from_millis(50)))
            .await;
    let (c, c_pem) = new_key(KeyAlg::Es256);
    replace_file(&app.dir.path().join("b.pem"), &c_pem);
    let deadline = Instant::now() + Duration::from_secs(15);
    while !jwks_kids(&app).await.contains(&c.thumbprint()) {
        assert!(Instant::now() < deadline, "the new key file was not picked up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, tokens) = app.user().await;
    assert_eq!(kid_of(&tokens.access_token), c.thumbprint());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_reading_the_same_files_agree_on_every_kid() {
    // On the PostgreSQL run both share one PostgreSQL database; on SQLite one file.
    let (a, k1, k2) = app_with_files(|s| s.issuer = Some("http://keycard.test".into())).await;
    let mut settings = a.settings.clone();
    settings.bind = "127.0.0.1:0".parse().unwrap();
    let b = start_with_clock(settings, a.dir.clone(), a.clock.clone()).await;
    let expected = sorted(vec![k1.thumbprint(), k2.thumbprint()]);
    assert_eq!(jwks_kids(&a).await, expected);
    assert_eq!(jwks_kids(&b).await, expected);
    let (_, by_a) = a.user().await;
    let (_, by_b) = b.user().await;
    assert_eq!(kid_of(&by_a.access_token), kid_of(&by_b.access_token));
    assert_eq!(b.get_authed("/auth/me", &by_a.access_token).await.status(), 200);
    assert_eq!(a.get_authed("/auth/me", &by_b.access_token).await.status(), 200);
    let fresh: Value = b.refresh(by_a.refresh_token.as_deref().unwrap()).await.json().await.unwrap();
    assert_eq!(a.get_authed("/auth/me", fresh["access_token"].as_str().unwrap()).await.status(), 200);

    // Both re-read a replaced file to the same ring.
    let (k3, k3_pem) = new_key(KeyAlg::Rs256);
    replace_file(&a.dir.path().join("b.pem"), &k3_pem);
    a.state.reload_keys().await.unwrap();
    b.state.reload_keys().await.unwrap();
    let expected = sorted(vec![k1.thumbprint(), k2.thumbprint(), k3.thumbprint()]);
    assert_eq!((jwks_kids(&a).await, jwks_kids(&b).await), (expected.clone(), expected));
    let (_, by_b) = b.user().await;
    assert_eq!(kid_of(&by_b.access_token), k3.thumbprint());
    assert_eq!(a.get_authed("/auth/me", &by_b.access_token).await.status(), 200);
}

#[tokio::test]
async fn keys_import_puts_a_pem_key_into_the_sealed_store_as_the_active_key() {
    let app = spawn_app_with(|s| s.key_reload_interval = secs(0)).await;
    let (_, before) = app.user().await;
    let (key, pem) = new_key(KeyAlg::Rs256);
    let path = key_file(app.dir.path(), "imported.pem", &pem);
    let loaded = keycard_server::key_files::KeyFileSpec::parse(&path.display().to_string()).unwrap().load().unwrap();
    let kid = app.state.key_manager().import(&loaded, app.now()).await.unwrap();
    assert_eq!(kid, key.thumbprint());
    app.state.reload_keys().await.unwrap();
    let (_, after) = app.user().await;
    assert_eq!(kid_of(&after.access_token), kid, "the imported key signs");
    assert_eq!(app.get_authed("/auth/me", &before.access_token).await.status(), 200, "the old key verifies");
    let stored = app.store().signing_keys().await.unwrap();
    let sealed = &stored.iter().find(|k| k.kid == kid).unwrap().private_key;
    assert!(sealed.starts_with(b"kc1:"), "sealed");
    let der = &key.material().private_der;
    assert!(!sealed.windows(32).any(|w| w == &der[der.len() - 32..]), "stored in clear");
    let again = app.state.key_manager().import(&loaded, app.now()).await.unwrap_err();
    assert!(again.to_string().contains("already in the store"), "{again}");
}
