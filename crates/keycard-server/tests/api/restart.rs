//! A restart on the same database keeps every session, every key and every issued token valid.

use std::sync::Arc;

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn a_restart_keeps_sessions_keys_and_access_tokens() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(&dir).await;
    // A fixed issuer: the port changes across restarts, the issuer must not.
    settings.issuer = Some("http://keycard.test".into());
    let first = start(settings.clone(), dir.clone()).await;
    let (_, tokens) = first.user().await;
    let jwks_before: Value =
        first.client.get(first.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    first.stop().await;

    let second = start(settings, dir).await;
    let jwks_after: Value =
        second.client.get(second.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    assert_eq!(jwks_before, jwks_after, "the signing key survives the restart");
    assert_eq!(second.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
    let resp = second.refresh(tokens.refresh_token.as_deref().unwrap()).await;
    assert_eq!(resp.status(), 200);
    let sessions: Vec<Value> = second.get_authed("/auth/sessions", &tokens.access_token).await.json().await.unwrap();
    assert_eq!(sessions.len(), 1);
}
