//! Rate limits, overloads and network failures during a refresh are no logout: keycard's own
//! limiter answering 429 `Retry-After: 2` is waited out once for every caller, 503/502/timeouts
//! (from the test proxy) are retried with backoff, retries that run out keep the session, and
//! only a refused refresh token ends it.

use std::time::{Duration, Instant};

use keycard_client::{Client, ClientBuilder, ClientError, ErrorCode, LogoutScope, RetryPolicy};
use keycard_server::settings::HumanDuration;

use crate::helpers::{Keycard, start_keycard, start_keycard_with};
use crate::proxy::{Failure, Proxy, start_proxy};

/// Spends this IP's refresh budget at keycard with refresh tokens that do not exist (the limit is
/// checked before the token) until keycard answers 429 `Retry-After: 2`: one refresh every 2 s
/// comes back, so right after one is spent the next is 2 s away (asked later, keycard would round
/// a shorter wait up to 1 s).
async fn spend_refresh_budget(base: &str) {
    let http = reqwest::Client::new();
    for _ in 0..200 {
        let response = http
            .post(format!("{base}/auth/refresh"))
            .json(&serde_json::json!({"refresh_token": "not-a-refresh-token"}))
            .send()
            .await
            .unwrap();
        if response.status() == 429 {
            if response.headers()["retry-after"] == "2" {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    panic!("keycard never answered 429 Retry-After: 2");
}

/// A client of `keycard` through `proxy`, reading keycard's clock.
fn through(proxy: &Proxy, keycard: &Keycard) -> ClientBuilder {
    Client::builder(&proxy.base).clock(keycard.clock.clone())
}

#[tokio::test]
async fn ten_calls_behind_a_refresh_answered_429_retry_after_2_wait_once_and_keep_the_session() {
    // keycard's own limiter, nothing faked: 30 refreshes a minute per IP, one more every 2 s.
    let keycard = start_keycard_with(|s| {
        s.refresh_per_ip_per_minute = 30;
        s.access_ttl = HumanDuration::secs(60);
        s.leeway = HumanDuration::secs(0);
    })
    .await;
    let client = keycard.logged_in("limited@example.com").await;
    let session = client.session_id().await;
    spend_refresh_budget(&keycard.base).await;
    keycard.advance(61_000); // the access token has expired: every call needs a refresh

    let started = Instant::now();
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.me().await.map(|me| me.email) })
        })
        .collect();
    for call in calls {
        assert_eq!(call.await.unwrap().unwrap(), "limited@example.com");
    }
    let waited = started.elapsed();

    assert!(waited >= Duration::from_secs(2), "waited {waited:?}, less than Retry-After");
    assert!(waited < Duration::from_secs(6), "waited {waited:?}");
    let stats = client.stats();
    assert_eq!((stats.refreshes, stats.refresh_retries), (1, 1), "one wait, one retry, one rotation for ten calls");
    assert_eq!(keycard.audit_count("refresh").await, 1);
    assert_eq!(keycard.audit_count("refresh_token_reused").await, 0);
    assert_eq!(client.session_id().await, session, "the same session");
    println!("ten calls behind a 429 Retry-After: 2 waited {waited:?}");
}

#[tokio::test]
async fn a_503_with_retry_after_a_502_and_a_timeout_during_a_refresh_keep_the_session() {
    let keycard = start_keycard().await;
    let proxy = start_proxy(&keycard.base).await;
    let policy = RetryPolicy::default().base_delay(Duration::from_millis(100));
    let builder = through(&proxy, &keycard).timeout(Duration::from_millis(500)).refresh_retry(policy);
    let client = keycard.logged_in_with("outage@example.com", builder).await;
    let session = client.session_id().await;
    proxy.fail_refreshes(&[Failure::Status(503, Some(1)), Failure::Status(502, None), Failure::Stall]);

    let started = Instant::now();
    client.refresh().await.expect("the fourth attempt gets through");

    assert!(started.elapsed() >= Duration::from_secs(1), "Retry-After: 1 honoured ({:?})", started.elapsed());
    assert_eq!(proxy.count("/auth/refresh"), 4, "three failures, one success");
    assert_eq!(client.stats().refresh_retries, 3);
    assert_eq!(keycard.audit_count("refresh").await, 1);
    assert_eq!(client.session_id().await, session);
    assert!(client.me().await.is_ok());
}

#[tokio::test]
async fn retries_that_run_out_return_the_error_keep_the_session_and_send_nothing_until_the_wait_is_over() {
    let keycard = start_keycard().await;
    let proxy = start_proxy(&keycard.base).await;
    let policy = RetryPolicy::default().attempts(2).base_delay(Duration::from_millis(100));
    let client = keycard.logged_in_with("patient@example.com", through(&proxy, &keycard).refresh_retry(policy)).await;
    let session = client.session_id().await;
    proxy.fail_refreshes(&[Failure::Status(503, None), Failure::Status(429, Some(1))]);

    let error = client.refresh().await.unwrap_err();
    assert_eq!(error.status().map(|s| s.as_u16()), Some(429), "{error:?}");
    assert!(!error.is_session_ended(), "{error:?}");
    assert!(client.is_logged_in().await);
    assert_eq!(proxy.count("/auth/refresh"), 2, "two attempts");

    // keycard said one second: until then nobody asks it again, and calls go on with the
    // still-valid access token.
    let deferred = client.refresh().await.unwrap_err();
    let ClientError::RefreshDeferred { retry_in } = deferred else { panic!("{deferred:?}") };
    assert!(retry_in <= Duration::from_millis(1250), "{retry_in:?}");
    assert!(!deferred.is_session_ended());
    assert!(client.me().await.is_ok());
    assert_eq!(proxy.count("/auth/refresh"), 2, "nothing sent during the wait");

    tokio::time::sleep(retry_in).await;
    client.refresh().await.expect("after the wait the refresh goes through");
    assert_eq!(proxy.count("/auth/refresh"), 3);
    assert_eq!(client.session_id().await, session);
}

#[tokio::test]
async fn invalid_grant_ends_the_session_at_once_without_retries() {
    let keycard = start_keycard().await;
    let proxy = start_proxy(&keycard.base).await;
    let client = keycard.logged_in_with("ended@example.com", through(&proxy, &keycard)).await;
    keycard.logged_in("ended@example.com").await.logout(LogoutScope::Global).await.unwrap();

    let started = Instant::now();
    let error = client.refresh().await.unwrap_err();

    assert_eq!(error.code(), Some(ErrorCode::InvalidGrant), "{error:?}");
    assert!(error.is_session_ended());
    assert!(!client.is_logged_in().await);
    assert_eq!(proxy.count("/auth/refresh"), 1, "a refused refresh token is not retried");
    assert_eq!(client.stats().refresh_retries, 0);
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
}

#[tokio::test]
async fn a_retry_after_beyond_the_cap_is_not_waited_for_and_holds_refreshes_back_for_the_cap_only() {
    let keycard = start_keycard().await;
    let proxy = start_proxy(&keycard.base).await;
    let policy = RetryPolicy::default().max_retry_after(Duration::from_secs(5));
    let client = keycard.logged_in_with("capped@example.com", through(&proxy, &keycard).refresh_retry(policy)).await;
    proxy.fail_refreshes(&[Failure::Status(429, Some(86_400))]);

    let started = Instant::now();
    let error = client.refresh().await.unwrap_err();

    assert!(started.elapsed() < Duration::from_secs(1), "not waited for: {:?}", started.elapsed());
    assert_eq!(error.status().map(|s| s.as_u16()), Some(429));
    assert!(client.is_logged_in().await, "the session stays");
    let deferred = client.refresh().await.unwrap_err();
    let ClientError::RefreshDeferred { retry_in } = deferred else { panic!("{deferred:?}") };
    assert!(retry_in <= Duration::from_secs(5), "held back for the cap, not a day: {retry_in:?}");
    assert_eq!(proxy.count("/auth/refresh"), 1);
}
