//! `ServiceClient` (client credentials) against the real keycard, with a counting reverse proxy
//! in front of its token endpoint: the token is cached, renewed once the clock passes the
//! margin, renewed once for 50 concurrent callers, and a refusal is typed and never cached.

use std::time::Duration;

use keycard_client::{ClientError, OAuthErrorCode, ServiceClient};
use keycard_core::clock::Clock;
use tokio::task::JoinSet;

use crate::helpers::{Keycard, RegisteredClient, start_keycard};
use crate::proxy::{Proxy, start_proxy};

const TOKEN_PATH: &str = "/oauth/token";

/// A keycard, a registered confidential client with scopes `read write`, and a proxy in front.
async fn setup() -> (Keycard, RegisteredClient, Proxy) {
    let keycard = start_keycard().await;
    let client = keycard.register_client("orders", "read write").await;
    let proxy = start_proxy(&keycard.base).await;
    (keycard, client, proxy)
}

/// A service client through the proxy, reading keycard's clock.
fn service(keycard: &Keycard, proxy: &Proxy, id: &str, secret: &str) -> ServiceClient {
    ServiceClient::builder(id, secret)
        .token_endpoint(format!("{}{TOKEN_PATH}", proxy.base))
        .clock(keycard.clock.clone())
        .build()
        .unwrap()
}

#[tokio::test]
async fn a_cached_token_is_reused_one_request_for_many_calls() {
    let (keycard, client, proxy) = setup().await;
    let service = service(&keycard, &proxy, &client.id, &client.secret);

    let first = service.token().await.unwrap();
    let mut calls = JoinSet::new();
    for _ in 0..20 {
        let service = service.clone();
        calls.spawn(async move { service.token().await.unwrap() });
    }
    for _ in 0..80 {
        assert_eq!(service.token().await.unwrap(), first);
    }
    for token in calls.join_all().await {
        assert_eq!(token, first);
    }
    assert_eq!(proxy.count(TOKEN_PATH), 1, "one token request for 101 calls");
    assert_eq!(keycard.audit_count("client_token").await, 1, "one token issued, says keycard's audit log");
    assert_eq!(service.stats().token_requests, 1);
    assert_eq!(first.scope(), Some("read write"), "no scope asked: every registered scope");

    // keycard itself vouches for the token: active, issued to this client.
    let introspected = keycard.introspect(first.as_str(), &client).await;
    assert_eq!(introspected["active"], true, "{introspected}");
    assert_eq!(introspected["client_id"], client.id.as_str(), "{introspected}");
    assert_eq!(introspected["token_type"], "Bearer", "{introspected}");
    assert!(!format!("{service:?} {first:?}").contains(&client.secret), "Debug shows no secret");
    assert!(!format!("{first:?}").contains(first.as_str()), "Debug shows no token");
}

#[tokio::test]
async fn the_token_is_renewed_once_the_clock_passes_the_margin() {
    let (keycard, client, proxy) = setup().await;
    let service = service(&keycard, &proxy, &client.id, &client.secret);
    let first = service.token().await.unwrap();
    let now = keycard.clock.now_ms();
    let lifetime = first.expires_at_ms() - now;
    assert!(lifetime > 60_000, "keycard's default access-token lifetime: {lifetime} ms");
    // The margin: the larger of 30 s and a tenth of the lifetime (at most half of it).
    let margin = (lifetime / 10).max(30_000).min(lifetime / 2);
    let renew_at = first.expires_at_ms() - margin;

    keycard.advance(u64::try_from(renew_at - now - 1000).unwrap());
    assert_eq!(service.token().await.unwrap(), first, "a second before the margin: cached");
    assert_eq!(proxy.count(TOKEN_PATH), 1);

    keycard.advance(2000);
    let second = service.token().await.unwrap();
    assert_ne!(second, first, "renewed once inside the margin, before expiry");
    assert!(keycard.clock.now_ms() < first.expires_at_ms(), "the old token had not expired yet");
    assert_eq!(proxy.count(TOKEN_PATH), 2);
    assert_eq!(service.token().await.unwrap(), second, "the new token is cached in turn");
    assert_eq!(proxy.count(TOKEN_PATH), 2);
}

#[tokio::test]
async fn fifty_concurrent_callers_share_one_token_request_cold_and_at_renewal() {
    let (keycard, client, proxy) = setup().await;
    let service = service(&keycard, &proxy, &client.id, &client.secret);

    let burst = |expected_requests: usize| {
        let (service, proxy) = (service.clone(), &proxy);
        async move {
            // Hold the token request at the proxy until all 50 callers are waiting on it.
            proxy.close_gate();
            let mut calls = JoinSet::new();
            for _ in 0..50 {
                let service = service.clone();
                calls.spawn(async move { service.token().await });
            }
            proxy.wait_for_count(TOKEN_PATH, expected_requests).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            assert_eq!(proxy.count(TOKEN_PATH), expected_requests, "one request in flight for 50 callers");
            proxy.open_gate();
            let tokens: Vec<_> = calls.join_all().await.into_iter().map(Result::unwrap).collect();
            assert!(tokens.iter().all(|t| *t == tokens[0]), "every caller got the one new token");
            tokens[0].clone()
        }
    };

    let first = burst(1).await;
    assert_eq!(proxy.count(TOKEN_PATH), 1, "50 cold callers: one token request");

    // Past the renewal point (5 s before expiry is inside any margin of a token living over
    // 10 s), not past expiry.
    let left = first.expires_at_ms() - keycard.clock.now_ms();
    keycard.advance(u64::try_from(left - 5000).unwrap());
    let renewed = burst(2).await;
    assert_ne!(renewed, first);
    assert_eq!(proxy.count(TOKEN_PATH), 2, "50 callers during a renewal: exactly one new token");
    assert_eq!(keycard.audit_count("client_token").await, 2, "keycard issued two tokens in all");
    assert_eq!(service.stats().token_requests, 2);
}

#[tokio::test]
async fn a_wrong_secret_is_invalid_client_for_every_waiting_caller_and_never_cached() {
    let (keycard, client, proxy) = setup().await;
    let wrong_secret = format!("{}-not", client.secret);
    let service = service(&keycard, &proxy, &client.id, &wrong_secret);

    proxy.close_gate();
    let mut calls = JoinSet::new();
    for _ in 0..50 {
        let service = service.clone();
        calls.spawn(async move { service.token().await });
    }
    proxy.wait_for_count(TOKEN_PATH, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.open_gate();
    for result in calls.join_all().await {
        let error = result.unwrap_err();
        assert!(error.is_invalid_client(), "{error:?}");
        assert!(matches!(&error, ClientError::OAuth { status, .. } if status.as_u16() == 401), "{error:?}");
        assert_eq!(error.oauth_error().map(|e| e.error.clone()), Some(OAuthErrorCode::InvalidClient));
        let shown = format!("{error} {error:?}");
        assert!(!shown.contains(&wrong_secret) && !shown.contains(&client.secret), "{shown}");
    }
    assert_eq!(proxy.count(TOKEN_PATH), 1, "one refused request answered all 50 callers");

    // Not cached: the next call asks again (and is refused again).
    assert!(service.token().await.unwrap_err().is_invalid_client());
    assert_eq!(proxy.count(TOKEN_PATH), 2);

    let unknown = ServiceClient::builder("no-such-client", "whatever")
        .token_endpoint(format!("{}{TOKEN_PATH}", keycard.base))
        .build()
        .unwrap();
    assert!(unknown.token().await.unwrap_err().is_invalid_client(), "an unknown client id too");
}

#[tokio::test]
async fn a_failed_renewal_keeps_the_valid_token_is_not_cached_and_recovers() {
    let (keycard, client, proxy) = setup().await;
    let service = service(&keycard, &proxy, &client.id, &client.secret);
    let first = service.token().await.unwrap();
    let left = first.expires_at_ms() - keycard.clock.now_ms();

    proxy.set_failing(true);
    keycard.advance(u64::try_from(left - 5000).unwrap()); // due for renewal, still valid
    assert_eq!(service.token().await.unwrap(), first, "keycard unreachable: the valid token is used");
    assert_eq!(proxy.count(TOKEN_PATH), 2, "the renewal was tried");
    assert_eq!(service.token().await.unwrap(), first);
    assert_eq!(proxy.count(TOKEN_PATH), 2, "and is tried again a second later, not on every call");
    keycard.advance(1500);
    assert_eq!(service.token().await.unwrap(), first);
    assert_eq!(proxy.count(TOKEN_PATH), 3);

    keycard.advance(u64::try_from(left).unwrap()); // past the old token's expiry
    let error = service.token().await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(503), "{error:?}");
    assert!(!error.is_invalid_client());

    proxy.set_failing(false);
    let recovered = service.token().await.unwrap();
    assert_ne!(recovered, first, "the failure was not cached");
    assert_eq!(service.stats().token_failures, 3);
}

#[tokio::test]
async fn the_token_endpoint_is_discovered_from_the_issuer() {
    let keycard = start_keycard().await;
    let client = keycard.register_client("discovering", "read").await;
    let service = ServiceClient::builder(&client.id, &client.secret)
        .issuer(format!("{}/", keycard.base))
        .clock(keycard.clock.clone())
        .build()
        .unwrap();
    let token = service.token().await.unwrap();
    assert_eq!(token.scope(), Some("read"));
    assert_eq!(keycard.introspect(token.as_str(), &client).await["active"], true);

    // The metadata must name the configured issuer (here: another spelling of the host).
    let port = keycard.base.rsplit(':').next().unwrap();
    let elsewhere =
        ServiceClient::builder(&client.id, &client.secret).issuer(format!("http://localhost:{port}")).build().unwrap();
    let error = elsewhere.token().await.unwrap_err();
    assert!(matches!(error, ClientError::Protocol(_)), "{error:?}");
}

#[tokio::test]
async fn a_scope_beyond_the_registration_is_invalid_scope() {
    let (keycard, client, proxy) = setup().await;
    let narrow = ServiceClient::builder(&client.id, &client.secret)
        .token_endpoint(format!("{}{TOKEN_PATH}", proxy.base))
        .scope("read")
        .build()
        .unwrap();
    assert_eq!(narrow.token().await.unwrap().scope(), Some("read"));
    let greedy = ServiceClient::builder(&client.id, &client.secret)
        .token_endpoint(format!("{}{TOKEN_PATH}", keycard.base))
        .scope("read admin")
        .build()
        .unwrap();
    let error = greedy.token().await.unwrap_err();
    assert_eq!(error.oauth_error().map(|e| e.error.clone()), Some(OAuthErrorCode::InvalidScope), "{error:?}");
    assert_eq!(error.status().map(|s| s.as_u16()), Some(400));
}
