//! The verified-token cache (verify_cache_size): a cached token is still refused at once when its
//! session ends, when it expires, when its key is retired, and a token that differs from a cached
//! one in any byte is validated in full.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::helpers::*;

/// Two requests with the token: the first validates it in full and caches it, the second uses
/// the cache.
async fn cache_it(app: &TestApp, access: &str) {
    for _ in 0..2 {
        assert_eq!(app.get_authed("/auth/me", access).await.status(), 200);
    }
    assert!(!app.state.verified.is_empty(), "the token is cached");
}

#[tokio::test]
async fn a_cached_token_is_refused_right_after_logout() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    cache_it(&app, &tokens.access_token).await;
    let resp = app.post_json("/auth/logout", json!({"refresh_token": tokens.refresh_token.as_deref().unwrap()})).await;
    assert_eq!(resp.status(), 204);
    assert_error(app.get_authed("/auth/me", &tokens.access_token).await, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_cached_token_is_refused_once_it_expires() {
    let app = spawn_app_with(|s| {
        s.access_ttl = secs(1);
        s.leeway = secs(0);
    })
    .await;
    let (_, tokens) = app.user().await;
    cache_it(&app, &tokens.access_token).await;
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(tokens.access_token.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    app.advance((exp - app.now()) as f64);
    assert_error(app.get_authed("/auth/me", &tokens.access_token).await, 401, "invalid_token").await;
}

#[tokio::test]
async fn a_cached_token_is_refused_once_its_key_is_retired() {
    let app = spawn_app_with(|s| s.key_reload_interval = secs(0)).await;
    let (email, tokens) = app.user().await;
    cache_it(&app, &tokens.access_token).await;
    let old_kid = app.state.keys().active_kid().to_owned();
    let now = app.now();
    app.state.key_manager().rotate(keycard_core::keys::KeyAlg::EdDsa, now).await.unwrap();
    app.state.reload_keys().await.unwrap();
    // Rotation alone: the old key still verifies during the overlap.
    assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
    assert!(app.state.key_manager().retire(&old_kid, now).await.unwrap());
    app.state.reload_keys().await.unwrap();
    assert_error(app.get_authed("/auth/me", &tokens.access_token).await, 401, "invalid_token").await;
    // Tokens of the new key are fine.
    let fresh = app.login(&email).await;
    cache_it(&app, &fresh.access_token).await;
}

#[tokio::test]
async fn a_token_differing_from_a_cached_one_only_in_payload_or_signature_is_refused() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    let (_, other) = app.user().await;
    cache_it(&app, &tokens.access_token).await;
    let parts: Vec<&str> = tokens.access_token.split('.').collect();
    let other_parts: Vec<&str> = other.access_token.split('.').collect();

    // The cached signature with another (validly signed elsewhere) payload.
    let swapped_payload = format!("{}.{}.{}", parts[0], other_parts[1], parts[2]);
    // The cached signature with the payload edited (sub changed).
    let mut claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    claims["sub"] = Value::from("someone-else");
    let edited_payload =
        format!("{}.{}.{}", parts[0], URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap()), parts[2]);
    // The cached header and payload with another signature.
    let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
    signature[0] ^= 1;
    let other_signature = format!("{}.{}.{}", parts[0], parts[1], URL_SAFE_NO_PAD.encode(&signature));
    // A signature segment that decodes to the same bytes is still another token text.
    let padded = format!("{}=", tokens.access_token);

    for forged in [swapped_payload, edited_payload, other_signature, padded] {
        assert_error(app.get_authed("/auth/me", &forged).await, 401, "invalid_token").await;
    }
    // The cached token itself still works.
    assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
}

#[tokio::test]
async fn with_the_cache_off_nothing_is_cached() {
    let app = spawn_app_with(|s| s.verify_cache_size = 0).await;
    let (_, tokens) = app.user().await;
    for _ in 0..2 {
        assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
    }
    assert!(app.state.verified.is_empty());
}
