//! The revocation feed: logout at keycard is refused by the resource server within the
//! staleness bound, and stale revocation data fails closed (503) until keycard is back.

use std::sync::Arc;
use std::time::{Duration, Instant};

use keycard_core::clock::ManualClock;

use keycard_verify::{RevocationConfig, Verifier, VerifyError};
use serde_json::Value;

use crate::helpers::{assert_invalid_token, start_keycard, start_resource_server, wait_until};

#[tokio::test]
async fn logout_at_keycard_is_refused_by_the_resource_server_within_the_staleness_bound() {
    let keycard = start_keycard().await;
    let bound = RevocationConfig::default().staleness_bound;
    let verifier = Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap();
    let api = start_resource_server(verifier.clone()).await;
    let tokens = keycard.login("bye@example.com").await;
    let other = keycard.login("bye@example.com").await;
    assert_eq!(api.status(&tokens.access_token).await, 200);

    let logged_out_at = Instant::now();
    keycard.logout(&tokens.access_token).await;
    let took = wait_until(bound * 2, || async { api.status(&tokens.access_token).await != 200 }).await;
    let took = took.expect("the logged-out token is refused");
    println!("logout → refused by the resource server after {took:?} (bound {bound:?})");
    assert!(logged_out_at.elapsed() >= took);
    assert!(took <= bound, "refused after {took:?}, beyond the {bound:?} bound");
    let description = assert_invalid_token(api.hello(&tokens.access_token).await, "revoked session").await;
    assert!(description.contains("revoked"), "{description}");
    assert_eq!(api.status(&other.access_token).await, 200, "the user's other session is untouched");
    assert!(verifier.stats().revoked_sessions >= 1);
}

#[tokio::test]
async fn stale_revocation_data_fails_closed_with_503_then_recovers() {
    let mut keycard = start_keycard().await;
    let bound = Duration::from_secs(5);
    // The verifier judges staleness by this clock: the test moves it instead of waiting.
    let clock = Arc::new(ManualClock::starting_now());
    let verifier = Verifier::builder(&keycard.issuer, "keycard")
        .revocation(RevocationConfig::default().poll_interval(Duration::from_millis(100)).staleness_bound(bound))
        .clock(clock.clone())
        .build()
        .await
        .unwrap();
    let api = start_resource_server(verifier.clone()).await;
    let tokens = keycard.login("stale@example.com").await;
    assert_eq!(api.status(&tokens.access_token).await, 200);

    keycard.stop().await;
    let failed = wait_until(Duration::from_secs(5), || async { verifier.stats().feed_failures >= 1 }).await;
    assert!(failed.is_some(), "the poller noticed the outage");
    clock.advance(bound - Duration::from_millis(100));
    assert_eq!(api.status(&tokens.access_token).await, 200, "keycard is down, but the data is within the bound");
    clock.advance(Duration::from_millis(200));
    let response = api.hello(&tokens.access_token).await;
    assert_eq!(response.status(), 503, "fails closed once the data is older than the bound");
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(matches!(verifier.verify(&tokens.access_token).await, Err(VerifyError::RevocationFeedStale { .. })));

    keycard.restart().await;
    let recovered =
        wait_until(Duration::from_secs(5), || async { api.status(&tokens.access_token).await == 200 }).await;
    assert!(recovered.is_some(), "serves again once the feed is fresh");
}

#[tokio::test]
async fn revocations_before_the_verifier_started_are_known_from_the_first_sync() {
    let keycard = start_keycard().await;
    let tokens = keycard.login("early@example.com").await;
    keycard.logout(&tokens.access_token).await;
    let verifier = Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap();
    let refused = verifier.verify(&tokens.access_token).await;
    assert!(refused.as_ref().is_err_and(VerifyError::is_revoked), "{refused:?}");
    let api = start_resource_server(verifier).await;
    assert_invalid_token(api.hello(&tokens.access_token).await, "revoked before start").await;
}
