//! Bad input of every kind gets the JSON error of SPEC.md: never a 500, never a panic.

use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn malformed_bodies_are_400_invalid_request() {
    let app = spawn_app().await;
    let cases: Vec<(&str, &str, Option<&str>, String)> = vec![
        ("not JSON", "/auth/signup", Some("application/json"), "{nope".into()),
        ("empty body", "/auth/login", Some("application/json"), String::new()),
        ("no content type", "/auth/signup", None, json!({"email": "a@b.co", "password": PASSWORD}).to_string()),
        (
            "wrong type",
            "/auth/signup",
            Some("application/json"),
            json!({"email": 42, "password": PASSWORD}).to_string(),
        ),
        ("missing field", "/auth/login", Some("application/json"), json!({"email": "a@b.co"}).to_string()),
        (
            "unknown field",
            "/auth/signup",
            Some("application/json"),
            json!({"email": "a@b.co", "password": PASSWORD, "admin": true}).to_string(),
        ),
        ("array", "/auth/login", Some("application/json"), "[1,2,3]".into()),
        (
            "bad delivery",
            "/auth/login",
            Some("application/json"),
            json!({"email": "a@b.co", "password": PASSWORD, "delivery": "carrier-pigeon"}).to_string(),
        ),
        (
            "invalid email",
            "/auth/signup",
            Some("application/json"),
            json!({"email": "not-an-email", "password": PASSWORD}).to_string(),
        ),
        ("refresh body not JSON", "/auth/refresh", Some("application/json"), "refresh_token=abc".into()),
        (
            "refresh token not a string",
            "/auth/refresh",
            Some("application/json"),
            json!({"refresh_token": 5}).to_string(),
        ),
        (
            "utf-8 garbage",
            "/auth/signup",
            Some("application/json"),
            String::from_utf8_lossy(&[0xff, 0xfe, 0x7b]).into_owned(),
        ),
    ];
    for (why, path, content_type, body) in cases {
        let mut req = app.client.post(app.url(path)).body(body);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let body: Value = resp.json().await.unwrap_or(json!({"error": "<not json>"}));
        assert_eq!((status, body["error"].as_str().unwrap_or("")), (400, "invalid_request"), "{why}: {body}");
    }
}

#[tokio::test]
async fn a_huge_body_is_413_payload_too_large() {
    let app = spawn_app().await;
    let huge = json!({"email": "a@b.co", "password": "x".repeat(200_000)}).to_string();
    let resp = app
        .client
        .post(app.url("/auth/signup"))
        .header("content-type", "application/json")
        .body(huge.clone())
        .send()
        .await
        .unwrap();
    assert_error(resp, 413, "payload_too_large").await;
    let resp = app
        .client
        .post(app.url("/auth/refresh"))
        .header("content-type", "application/json")
        .body(huge)
        .send()
        .await
        .unwrap();
    assert_error(resp, 413, "payload_too_large").await;
}

#[tokio::test]
async fn a_too_long_password_is_refused_without_hashing_it() {
    let app = spawn_app().await;
    let resp = app.post_json("/auth/signup", json!({"email": "long@example.com", "password": "p".repeat(5000)})).await;
    assert_error(resp, 422, "weak_password").await;
    let resp = app.post_json("/auth/login", json!({"email": "long@example.com", "password": "p".repeat(5000)})).await;
    assert_error(resp, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn tokens_in_the_url_query_are_refused_with_400() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    for path in [
        format!("/auth/me?access_token={}", tokens.access_token),
        format!("/auth/refresh?refresh_token={}", tokens.refresh_token.as_deref().unwrap()),
        "/healthz?access%5Ftoken=x".to_owned(),
    ] {
        let resp = app.client.post(app.url(&path)).send().await.unwrap();
        assert_error(resp, 400, "invalid_request").await;
    }
    // The refresh token presented in the URL was not consumed.
    assert_eq!(app.refresh(tokens.refresh_token.as_deref().unwrap()).await.status(), 200);
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/nope")).send().await.unwrap();
    assert_error(resp, 404, "not_found").await;
    let resp = app.client.get(app.url("/auth/login")).send().await.unwrap();
    assert_error(resp, 405, "method_not_allowed").await;
    let resp = app.client.delete(app.url("/auth/sessions/not-a-session")).send().await.unwrap();
    assert_error(resp, 401, "invalid_token").await;
}

#[tokio::test]
async fn security_headers_are_on_every_response() {
    let app = spawn_app().await;
    for path in ["/healthz", "/nope", "/.well-known/jwks.json"] {
        let resp = app.client.get(app.url(path)).send().await.unwrap();
        let h = resp.headers();
        assert_eq!(h.get("x-content-type-options").unwrap(), "nosniff", "{path}");
        assert_eq!(h.get("x-frame-options").unwrap(), "DENY", "{path}");
        assert_eq!(h.get("referrer-policy").unwrap(), "no-referrer", "{path}");
    }
}
