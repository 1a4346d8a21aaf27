//! Signing keys: sealed at rest with the master key, rotation with an overlap window, retirement.

use std::sync::Arc;

use serde_json::Value;

use crate::helpers::*;

async fn jwks_kids(app: &TestApp) -> Vec<String> {
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    jwks["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap().to_owned()).collect()
}

fn kid_of(token: &str) -> String {
    use base64::Engine;
    let header = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap();
    serde_json::from_slice::<Value>(&header).unwrap()["kid"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn private_keys_are_sealed_in_the_store() {
    let app = spawn_app().await;
    let keys = app.state.keys();
    let private = &keys.local().expect("a local key ring").active().material().private_der;
    let stored = app.store().signing_keys().await.unwrap();
    assert_eq!(stored.len(), 1);
    assert!(stored[0].private_key.starts_with(b"kc1:"));
    assert!(!stored[0].private_key.windows(private.len()).any(|w| w == private.as_slice()), "stored in clear");
    if !on_postgres() {
        assert!(app.dir.path().join("keycard.db.master-key").exists(), "SQLite's default master key file");
    }
}

#[tokio::test]
async fn rotation_signs_with_the_new_key_and_old_tokens_verify_during_the_overlap() {
    let app = spawn_app_with(|s| {
        s.access_ttl = secs(2);
        s.leeway = secs(0);
        s.key_reload_interval = secs(0);
    })
    .await;
    let (email, before) = app.user().await;
    let old_kid = kid_of(&before.access_token);
    let new_kid = app.state.key_manager().rotate(keycard_core::keys::KeyAlg::EdDsa, app.now()).await.unwrap();
    app.state.reload_keys().await.unwrap();

    let after = app.login(&email).await;
    assert_eq!(kid_of(&after.access_token), new_kid);
    assert_eq!(app.get_authed("/auth/me", &before.access_token).await.status(), 200, "old key verifies in the overlap");
    let mut kids = jwks_kids(&app).await;
    kids.sort();
    let mut expected = vec![old_kid.clone(), new_kid.clone()];
    expected.sort();
    assert_eq!(kids, expected);

    // After access TTL + leeway from the rotation the old key leaves JWKS.
    let statuses = app.state.key_manager().list(app.now()).await.unwrap();
    let until = statuses.iter().find(|k| k.kid == old_kid).unwrap().published_until.unwrap();
    assert!(until - app.now() <= 3, "overlap is access TTL + leeway (+1 s ordering)");
    app.advance((until - app.now()) as f64);
    app.state.reload_keys().await.unwrap();
    assert_eq!(jwks_kids(&app).await, vec![new_kid]);
}

#[tokio::test]
async fn a_retired_key_stops_verifying_at_once() {
    let app = spawn_app_with(|s| s.key_reload_interval = secs(0)).await;
    let (_, before) = app.user().await;
    let old_kid = kid_of(&before.access_token);
    let now = app.now();
    app.state.key_manager().rotate(keycard_core::keys::KeyAlg::EdDsa, now).await.unwrap();
    assert!(app.state.key_manager().retire(&old_kid, now).await.unwrap());
    app.state.reload_keys().await.unwrap();
    assert_error(app.get_authed("/auth/me", &before.access_token).await, 401, "invalid_token").await;
    assert!(!jwks_kids(&app).await.contains(&old_kid));
}

#[tokio::test]
async fn a_key_rotated_by_another_process_is_picked_up_on_first_sight_of_its_kid() {
    // Two servers on one SQLite file stand in for two instances (or the CLI and a server).
    let a = spawn_app_with(|s| {
        s.issuer = Some("http://keycard.test".into());
        s.key_reload_interval = secs(0);
    })
    .await;
    let mut settings = a.settings.clone();
    settings.bind = "127.0.0.1:0".parse().unwrap();
    let b = start_with_clock(settings, a.dir.clone(), a.clock.clone()).await;
    let (_, tokens) = a.user().await;
    b.state.key_manager().rotate(keycard_core::keys::KeyAlg::EdDsa, b.now() + 1).await.unwrap();
    b.state.reload_keys().await.unwrap();
    let fresh = b.refresh(tokens.refresh_token.as_deref().unwrap()).await.json::<Value>().await.unwrap();
    // A second later (A reloads keys after an unknown kid at most once a second).
    a.advance(1.1);
    // A has never loaded the new key; the unknown kid makes it look once.
    assert_eq!(a.get_authed("/auth/me", fresh["access_token"].as_str().unwrap()).await.status(), 200);
}

#[tokio::test]
async fn a_wrong_or_missing_master_key_is_a_clear_startup_error() {
    if on_postgres() {
        // The default key file is SQLite's; PostgreSQL requires an explicit key (tested below).
        let dir = Arc::new(tempfile::tempdir().unwrap());
        let mut settings = test_settings(&dir).await;
        let first = start(settings.clone(), dir.clone()).await;
        first.stop().await;
        let (_, other) = keycard_server::keys::MasterKey::generate().unwrap();
        settings.master_key = Some(keycard_server::settings::Secret::new(other));
        let err = keycard_server::Application::build(settings.clone()).await.err().expect("wrong key");
        assert!(err.to_string().contains("wrong master key"), "{err}");
        settings.master_key = None;
        let err = keycard_server::Application::build(settings).await.err().expect("no key");
        assert!(err.to_string().contains("KEYCARD_MASTER_KEY"), "{err}");
        return;
    }
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let settings = test_settings(&dir).await;
    let first = start(settings.clone(), dir.clone()).await;
    first.stop().await;

    let key_file = dir.path().join("keycard.db.master-key");
    let (_, other) = keycard_server::keys::MasterKey::generate().unwrap();
    let mut wrong = settings.clone();
    wrong.master_key = Some(keycard_server::settings::Secret::new(other));
    let err = keycard_server::Application::build(wrong).await.err().expect("a wrong master key must not start");
    assert!(err.to_string().contains("wrong master key"), "{err}");

    std::fs::remove_file(&key_file).unwrap();
    let err = keycard_server::Application::build(settings).await.err().expect("a missing master key must not start");
    assert!(err.to_string().contains("master key file"), "{err}");
    assert!(!key_file.exists(), "no new master key was generated");
}
