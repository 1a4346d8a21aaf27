//! Logout scopes: local, global, others; by Bearer token, by refresh token in the body or cookie.

use serde_json::json;

use crate::helpers::*;

async fn logout(app: &TestApp, access: &str, scope: &str) -> reqwest::Response {
    app.client.post(app.url("/auth/logout")).bearer_auth(access).json(&json!({"scope": scope})).send().await.unwrap()
}

#[tokio::test]
async fn local_logout_ends_only_this_session() {
    let app = spawn_app().await;
    let (email, a) = app.user().await;
    let b = app.login(&email).await;
    assert_eq!(logout(&app, &a.access_token, "local").await.status(), 204);
    assert_error(app.get_authed("/auth/me", &a.access_token).await, 401, "invalid_token").await;
    assert_error(app.refresh(a.refresh_token.as_deref().unwrap()).await, 401, "invalid_grant").await;
    assert_eq!(app.get_authed("/auth/me", &b.access_token).await.status(), 200);
    assert_eq!(app.refresh(b.refresh_token.as_deref().unwrap()).await.status(), 200);
}

#[tokio::test]
async fn global_logout_ends_every_session_of_the_user() {
    let app = spawn_app().await;
    let (email, a) = app.user().await;
    let b = app.login(&email).await;
    let (_, other_user) = app.user().await;
    assert_eq!(logout(&app, &a.access_token, "global").await.status(), 204);
    for t in [&a, &b] {
        assert_error(app.get_authed("/auth/me", &t.access_token).await, 401, "invalid_token").await;
        assert_error(app.refresh(t.refresh_token.as_deref().unwrap()).await, 401, "invalid_grant").await;
    }
    assert_eq!(app.get_authed("/auth/me", &other_user.access_token).await.status(), 200);
}

#[tokio::test]
async fn others_logout_keeps_this_session_and_ends_the_rest() {
    let app = spawn_app().await;
    let (email, a) = app.user().await;
    let b = app.login(&email).await;
    let c = app.login(&email).await;
    assert_eq!(logout(&app, &a.access_token, "others").await.status(), 204);
    assert_eq!(app.get_authed("/auth/me", &a.access_token).await.status(), 200);
    for t in [&b, &c] {
        assert_error(app.get_authed("/auth/me", &t.access_token).await, 401, "invalid_token").await;
    }
    let sessions: Vec<serde_json::Value> =
        app.get_authed("/auth/sessions", &a.access_token).await.json().await.unwrap();
    assert_eq!(sessions.len(), 1);
}

#[tokio::test]
async fn logout_with_the_refresh_token_in_the_body_works_without_a_bearer_token() {
    let app = spawn_app().await;
    let (_, a) = app.user().await;
    let resp = app.post_json("/auth/logout", json!({"refresh_token": a.refresh_token.as_deref().unwrap()})).await;
    assert_eq!(resp.status(), 204);
    assert_error(app.get_authed("/auth/me", &a.access_token).await, 401, "invalid_token").await;
}

#[tokio::test]
async fn logout_clears_both_cookies() {
    let app = spawn_app().await;
    let (_, a) = app.user().await;
    let resp = logout(&app, &a.access_token, "local").await;
    let cookies: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    assert!(
        cookies.iter().any(|c| c.starts_with("__Secure-keycard_refresh=;") && c.contains("Max-Age=0")),
        "{cookies:?}"
    );
    assert!(cookies.iter().any(|c| c.starts_with("__Host-keycard_csrf=;") && c.contains("Max-Age=0")), "{cookies:?}");
}

#[tokio::test]
async fn logout_without_any_credential_is_401() {
    let app = spawn_app().await;
    assert_error(app.post_json("/auth/logout", json!({})).await, 401, "invalid_grant").await;
    let resp = app.client.post(app.url("/auth/logout")).bearer_auth("garbage").send().await.unwrap();
    assert_error(resp, 401, "invalid_token").await;
}

#[tokio::test]
async fn an_unknown_logout_scope_is_400() {
    let app = spawn_app().await;
    let (_, a) = app.user().await;
    assert_error(logout(&app, &a.access_token, "everything").await, 400, "invalid_request").await;
    assert_eq!(app.get_authed("/auth/me", &a.access_token).await.status(), 200);
}
