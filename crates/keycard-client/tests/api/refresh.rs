//! Refresh: before expiry, across an expiry with 50 concurrent calls (one refresh), and once on
//! a 401 `invalid_token` followed by one retry.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use keycard_client::{ClientError, ErrorCode};
use serde_json::{Value, json};
use tokio::sync::Notify;
use tokio::task::JoinSet;

use crate::helpers::{start_keycard, start_keycard_with_ttl};

#[tokio::test]
async fn login_then_calls_carry_the_access_token() {
    let keycard = start_keycard().await;
    let client = keycard.logged_in("alice@example.com").await;
    let me = client.me().await.unwrap();
    assert_eq!(me.email, "alice@example.com");
    assert!(client.is_logged_in().await);
    assert!(client.session_id().await.is_some());
    let sessions: Value = client.get_json("/auth/sessions").await.unwrap();
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    assert_eq!(client.stats().refreshes, 0);
    assert!(!format!("{client:?}").contains("eyJ"), "Debug shows no token");
}

#[tokio::test]
async fn fifty_concurrent_calls_across_an_access_token_expiry_make_exactly_one_refresh() {
    let keycard = start_keycard_with_ttl(3).await;
    // Margin 0: the old token is used right up to its expiry, so the burst straddles it.
    let client = keycard.logged_in_with("burst@example.com", keycard.client().refresh_margin(Duration::ZERO)).await;
    let session = client.session_id().await;
    keycard.advance(2000); // a second before the expiry

    // The first half of the burst goes at once with the old token; the second half waits at the
    // gate until the clock has passed the expiry. The first half's requests still in flight then
    // reach keycard with an expired token (401, refresh, retry) while the second half finds the
    // token due (proactive refresh): all of them share one refresh.
    let (open_gate, gate) = tokio::sync::watch::channel(false);
    let first_done = Arc::new(Notify::new());
    let mut calls = JoinSet::new();
    for i in 0..50 {
        let (client, mut gate, first_done) = (client.clone(), gate.clone(), first_done.clone());
        calls.spawn(async move {
            if i >= 25 {
                gate.wait_for(|open| *open).await.expect("the gate opens");
            }
            let result = client.me().await.map(|me| me.email);
            first_done.notify_one();
            result
        });
    }
    tokio::time::timeout(Duration::from_secs(10), first_done.notified()).await.expect("a call answers");
    assert_eq!(client.stats().refreshes, 0, "calls before the expiry use the old token");
    keycard.advance(2000); // a second past the expiry
    open_gate.send(true).unwrap();

    let results = calls.join_all().await;
    for result in &results {
        assert_eq!(result.as_ref().ok().map(String::as_str), Some("burst@example.com"), "{result:?}");
    }
    assert_eq!(keycard.audit_count("refresh").await, 1, "one refresh at keycard");
    assert_eq!(keycard.audit_count("refresh_token_reused").await, 0, "no reuse detected");
    assert_eq!(client.stats().refreshes, 1);
    assert_eq!(client.session_id().await, session, "same session, rotated tokens");
    println!("50 calls across the expiry: {:?}", client.stats());
}

#[tokio::test]
async fn the_client_refreshes_before_expiry_without_a_401() {
    let keycard = start_keycard_with_ttl(3).await;
    // Default margin 30 s, capped at half the 3 s lifetime: refresh 1.5 s after the login.
    let client = keycard.logged_in("early@example.com").await;
    client.me().await.unwrap();
    keycard.advance(1400);
    client.me().await.unwrap();
    assert_eq!(client.stats().refreshes, 0, "not due yet");
    keycard.advance(200);
    client.me().await.unwrap();
    assert_eq!(client.stats().refreshes, 1, "refreshed proactively");
    assert_eq!(client.stats().retries, 0, "no request was refused");
    assert_eq!(keycard.audit_count("refresh").await, 1);
}

/// A resource server that refuses the first access token it sees (as if it had been revoked or
/// its key rotated), and records what it was sent.
async fn picky_api() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let record = seen.clone();
    let refuse = |error: &str| {
        let challenge = format!("Bearer error=\"{error}\"");
        let body = json!({"error": error, "error_description": "refused by the test API"});
        (StatusCode::UNAUTHORIZED, [(header::WWW_AUTHENTICATE, challenge)], axum::Json(body)).into_response()
    };
    let app = axum::Router::new()
        .route(
            "/data",
            get(move |headers: HeaderMap| {
                let seen = record.clone();
                async move {
                    let token =
                        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
                    let mut seen = seen.lock().unwrap();
                    seen.push(token.clone());
                    if seen.first() == Some(&token) {
                        refuse("invalid_token")
                    } else {
                        axum::Json(json!({"ok": true})).into_response()
                    }
                }
            }),
        )
        .route("/always", get(move || async move { refuse("invalid_token") }))
        .route("/other", get(move || async move { refuse("insufficient_scope") }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (base, seen)
}

#[tokio::test]
async fn a_401_invalid_token_triggers_one_refresh_and_one_retry() {
    let keycard = start_keycard().await;
    let client = keycard.logged_in("retry@example.com").await;
    let (api, seen) = picky_api().await;

    let answer: Value = client.get_json(&format!("{api}/data")).await.unwrap();
    assert_eq!(answer["ok"], true);
    let tokens = seen.lock().unwrap().clone();
    assert_eq!(tokens.len(), 2, "one request, one retry");
    assert_ne!(tokens[0], tokens[1], "the retry carries the refreshed token");
    assert_eq!(keycard.audit_count("refresh").await, 1);
    assert_eq!((client.stats().refreshes, client.stats().retries), (1, 1));

    let _: Value = client.get_json(&format!("{api}/data")).await.unwrap();
    assert_eq!(keycard.audit_count("refresh").await, 1, "the new token needs no refresh");
}

#[tokio::test]
async fn a_second_401_is_returned_not_retried_again() {
    let keycard = start_keycard().await;
    let client = keycard.logged_in("twice@example.com").await;
    let (api, _) = picky_api().await;
    let error = client.get_json::<Value>(&format!("{api}/always")).await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(401));
    assert_eq!(error.code(), Some(ErrorCode::InvalidToken));
    assert_eq!(keycard.audit_count("refresh").await, 1, "one refresh, one retry, then the error");
    assert_eq!(client.stats().retries, 1);
}

#[tokio::test]
async fn a_401_for_another_reason_does_not_refresh() {
    let keycard = start_keycard().await;
    let client = keycard.logged_in("scope@example.com").await;
    let (api, _) = picky_api().await;
    let error = client.get_json::<Value>(&format!("{api}/other")).await.unwrap_err();
    assert!(matches!(error, ClientError::Api { status, .. } if status == 401), "{error:?}");
    assert_eq!(keycard.audit_count("refresh").await, 0);
    assert_eq!(client.stats().retries, 0);
}
