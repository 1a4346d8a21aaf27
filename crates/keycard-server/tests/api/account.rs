//! Password change and account deletion really revoke.

use serde_json::json;

use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new passphrase";

#[tokio::test]
async fn changing_the_password_revokes_every_other_session_and_keeps_this_one() {
    let app = spawn_app().await;
    let (email, a) = app.user().await;
    let b = app.login(&email).await;
    let resp = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(&a.access_token)
        .json(&json!({"current_password": PASSWORD, "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(app.get_authed("/auth/me", &a.access_token).await.status(), 200);
    assert_eq!(app.refresh(a.refresh_token.as_deref().unwrap()).await.status(), 200);
    assert_error(app.get_authed("/auth/me", &b.access_token).await, 401, "invalid_token").await;
    assert_error(app.refresh(b.refresh_token.as_deref().unwrap()).await, 401, "invalid_grant").await;
    // Old password no longer logs in; the new one does.
    let old = app.post_json("/auth/login", json!({"email": email, "password": PASSWORD})).await;
    assert_error(old, 401, "invalid_credentials").await;
    let new = app.post_json("/auth/login", json!({"email": email, "password": NEW_PASSWORD, "delivery": "body"})).await;
    assert_eq!(new.status(), 200);
}

#[tokio::test]
async fn a_password_change_with_the_wrong_current_password_changes_nothing() {
    let app = spawn_app().await;
    let (email, a) = app.user().await;
    let b = app.login(&email).await;
    let resp = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(&a.access_token)
        .json(&json!({"current_password": "guess guess guess", "new_password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 401, "invalid_credentials").await;
    assert_eq!(app.get_authed("/auth/me", &b.access_token).await.status(), 200);
}

#[tokio::test]
async fn a_weak_new_password_is_422() {
    let app = spawn_app().await;
    let (_, a) = app.user().await;
    let resp = app
        .client
        .post(app.url("/auth/password"))
        .bearer_auth(&a.access_token)
        .json(&json!({"current_password": PASSWORD, "new_password": "short"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 422, "weak_password").await;
}

#[tokio::test]
async fn deleting_the_account_revokes_everything_and_frees_the_email() {
    let app = spawn_app().await;
    let (email, a) = app.user().await;
    let b = app.login(&email).await;
    let wrong = app
        .client
        .delete(app.url("/auth/account"))
        .bearer_auth(&a.access_token)
        .json(&json!({"password": "not my password"}))
        .send()
        .await
        .unwrap();
    assert_error(wrong, 401, "invalid_credentials").await;

    let resp = app
        .client
        .delete(app.url("/auth/account"))
        .bearer_auth(&a.access_token)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204);
    for t in [&a, &b] {
        assert_error(app.get_authed("/auth/me", &t.access_token).await, 401, "invalid_token").await;
        assert_error(app.refresh(t.refresh_token.as_deref().unwrap()).await, 401, "invalid_grant").await;
    }
    assert_error(
        app.post_json("/auth/login", json!({"email": email, "password": PASSWORD})).await,
        401,
        "invalid_credentials",
    )
    .await;
    // The revocation feed still lists the sessions, for resource servers.
    let feed: serde_json::Value =
        app.client.get(app.url("/auth/revocations?after=0")).send().await.unwrap().json().await.unwrap();
    let sids: Vec<&str> = feed["revocations"].as_array().unwrap().iter().map(|r| r["sid"].as_str().unwrap()).collect();
    assert!(sids.contains(&a.session_id.as_str()) && sids.contains(&b.session_id.as_str()), "{feed}");
    app.signup(&email).await;
}
