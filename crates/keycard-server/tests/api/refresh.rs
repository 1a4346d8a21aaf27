//! Rotation, reuse detection with family revocation, the concurrent-refresh race, cookies + CSRF.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn refresh_rotates_the_pair_and_the_new_access_token_works() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    let resp = app.refresh(tokens.refresh_token.as_deref().unwrap()).await;
    assert_eq!(resp.status(), 200);
    let next: Value = resp.json().await.unwrap();
    assert_ne!(next["refresh_token"], tokens.refresh_token.as_deref().unwrap());
    assert_ne!(next["access_token"], tokens.access_token.as_str());
    assert_eq!(next["session_id"], tokens.session_id.as_str());
    let me = app.get_authed("/auth/me", next["access_token"].as_str().unwrap()).await;
    assert_eq!(me.status(), 200);
}

#[tokio::test]
async fn reusing_a_rotated_token_revokes_the_whole_family() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    let old = tokens.refresh_token.clone().unwrap();
    let next: Value = app.refresh(&old).await.json().await.unwrap();
    let new_refresh = next["refresh_token"].as_str().unwrap();
    let new_access = next["access_token"].as_str().unwrap();

    let reuse = app.refresh(&old).await;
    assert_error(reuse, 401, "refresh_token_reused").await;

    // Every token of the family is dead: the newest refresh token and both access tokens.
    assert_error(app.refresh(new_refresh).await, 401, "invalid_grant").await;
    assert_error(app.get_authed("/auth/me", new_access).await, 401, "invalid_token").await;
    assert_error(app.get_authed("/auth/me", &tokens.access_token).await, 401, "invalid_token").await;

    let user_id = app.get_authed_user_id_from_token(&tokens.access_token);
    let kinds = app.audit_kinds(&user_id).await;
    assert!(kinds.ends_with(&["refresh".to_owned(), "refresh_token_reused".to_owned()]), "{kinds:?}");
}

#[tokio::test]
async fn twenty_concurrent_refreshes_of_one_token_have_exactly_one_winner() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    let token = tokens.refresh_token.unwrap();
    let requests = (0..20).map(|_| app.refresh(&token));
    let responses = futures::future::join_all(requests).await;
    let mut ok = 0;
    let mut codes = Vec::new();
    for resp in responses {
        if resp.status() == 200 {
            ok += 1;
        } else {
            assert_eq!(resp.status(), 401);
            let body: Value = resp.json().await.unwrap();
            codes.push(body["error"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(ok, 1, "exactly one refresh wins");
    assert!(codes.iter().all(|c| c == "refresh_token_reused" || c == "invalid_grant"), "{codes:?}");
    assert!(codes.iter().any(|c| c == "refresh_token_reused"));
}

#[tokio::test]
async fn an_unknown_or_malformed_refresh_token_is_401_invalid_grant() {
    let app = spawn_app().await;
    let unknown = keycard_core::refresh::RefreshToken::generate();
    for token in [unknown.expose(), "kcrt_short", "", "eyJhbGciOiJFZERTQSJ9.e30.x"] {
        assert_error(app.refresh(token).await, 401, "invalid_grant").await;
    }
    let resp = app.post_json("/auth/refresh", json!({})).await;
    assert_error(resp, 401, "invalid_grant").await;
}

#[tokio::test]
async fn a_retry_inside_the_reuse_interval_gets_a_fresh_pair_and_reuse_after_it_revokes() {
    let app = spawn_app_with(|s| s.reuse_interval = secs(2)).await;
    let (_, tokens) = app.user().await;
    let old = tokens.refresh_token.unwrap();
    let lost = app.refresh(&old).await;
    assert_eq!(lost.status(), 200);
    let retry = app.refresh(&old).await;
    assert_eq!(retry.status(), 200, "a client that lost the answer may retry inside the interval");
    let retried: Value = retry.json().await.unwrap();
    let sessions = app.get_authed("/auth/sessions", retried["access_token"].as_str().unwrap()).await;
    assert_eq!(sessions.status(), 200);

    app.advance(2.1);
    assert_error(app.refresh(&old).await, 401, "refresh_token_reused").await;
    assert_error(app.refresh(retried["refresh_token"].as_str().unwrap()).await, 401, "invalid_grant").await;
}

#[tokio::test]
async fn an_idle_session_expires() {
    let app = spawn_app_with(|s| {
        s.session_idle_ttl = secs(1);
        s.session_absolute_ttl = secs(60);
    })
    .await;
    let (_, tokens) = app.user().await;
    app.advance(2.1);
    assert_error(app.refresh(tokens.refresh_token.as_deref().unwrap()).await, 401, "invalid_grant").await;
}

#[tokio::test]
async fn rotation_never_extends_a_session_past_its_absolute_lifetime() {
    let app = spawn_app_with(|s| {
        s.session_idle_ttl = secs(4);
        s.session_absolute_ttl = secs(6);
    })
    .await;
    let (_, tokens) = app.user().await;
    let session =
        app.store().list_sessions(&app.get_authed_user_id_from_token(&tokens.access_token), app.now()).await.unwrap();
    let absolute = session[0].absolute_expires_at;
    let mut refresh = tokens.refresh_token.unwrap();
    for _ in 0..2 {
        app.advance(2.0);
        let resp = app.refresh(&refresh).await;
        assert_eq!(resp.status(), 200);
        let next: Value = resp.json().await.unwrap();
        let now = app.now();
        let left = next["refresh_expires_in"].as_i64().unwrap();
        assert!(left <= 4 && now + left <= absolute, "idle expiry {left} s past the absolute limit");
        refresh = next["refresh_token"].as_str().unwrap().to_owned();
    }
    app.advance((absolute - app.now()) as f64);
    assert_error(app.refresh(&refresh).await, 401, "invalid_grant").await;
}

fn cookie_pair(resp: &reqwest::Response) -> (String, String) {
    let mut refresh = None;
    let mut csrf = None;
    for value in resp.headers().get_all("set-cookie") {
        let cookie = value.to_str().unwrap();
        let pair = cookie.split(';').next().unwrap();
        if let Some(v) = pair.strip_prefix("__Secure-keycard_refresh=") {
            refresh = Some(v.to_owned());
        }
        if let Some(v) = pair.strip_prefix("__Host-keycard_csrf=") {
            csrf = Some(v.to_owned());
        }
    }
    (refresh.expect("refresh cookie"), csrf.expect("csrf cookie"))
}

async fn cookie_login(app: &TestApp) -> (String, String) {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.signup(&email).await;
    let resp = app.post_json("/auth/login", json!({"email": email, "password": PASSWORD})).await;
    assert_eq!(resp.status(), 200);
    cookie_pair(&resp)
}

fn cookie_header(refresh: &str, csrf: &str) -> String {
    format!("__Secure-keycard_refresh={refresh}; __Host-keycard_csrf={csrf}")
}

#[tokio::test]
async fn cookie_refresh_with_matching_csrf_header_rotates_the_cookie() {
    let app = spawn_app().await;
    let (refresh, csrf) = cookie_login(&app).await;
    let resp = app
        .client
        .post(app.url("/auth/refresh"))
        .header("cookie", cookie_header(&refresh, &csrf))
        .header("x-csrf-token", &csrf)
        .header("origin", &app.base)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (new_refresh, new_csrf) = cookie_pair(&resp);
    assert_ne!(new_refresh, refresh);
    assert_ne!(new_csrf, csrf);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["csrf_token"], new_csrf.as_str());
    assert!(body.get("refresh_token").is_none());
}

#[tokio::test]
async fn cookie_refresh_without_or_with_a_wrong_csrf_header_is_403() {
    let app = spawn_app().await;
    let (refresh, csrf) = cookie_login(&app).await;
    let cases = [
        ("no header", None, None),
        ("wrong header", Some("nope"), None),
        ("foreign origin", Some(csrf.as_str()), Some("https://evil.example")),
    ];
    for (why, header, origin) in cases {
        let mut req = app.client.post(app.url("/auth/refresh")).header("cookie", cookie_header(&refresh, &csrf));
        if let Some(h) = header {
            req = req.header("x-csrf-token", h);
        }
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 403, "{why}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "csrf_failed", "{why}");
    }
    // None of the refused attempts consumed the token.
    let ok = app
        .client
        .post(app.url("/auth/refresh"))
        .header("cookie", cookie_header(&refresh, &csrf))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
}

impl TestApp {
    /// The `sub` claim of an access token (decoded without verification: test bookkeeping only).
    pub fn get_authed_user_id_from_token(&self, access: &str) -> String {
        use base64::Engine;
        let payload = access.split('.').nth(1).unwrap();
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap();
        let claims: Value = serde_json::from_slice(&bytes).unwrap();
        claims["sub"].as_str().unwrap().to_owned()
    }
}
