//! The JWKS cache: a flood of forged kids does not multiply fetches, cached keys outlive a
//! keycard outage, and key rotation overlaps old and new keys (static sets and keycard's own).

use std::time::Duration;

use keycard_core::claims::AccessClaims;
use keycard_core::keys::{KeyAlg, PublicKeys, SigningKey};
use keycard_verify::{RevocationConfig, Verifier, WhenStale};
use serde_json::json;
use tokio::task::JoinSet;

use crate::helpers::{assert_invalid_token, forge, random_id, start_keycard, start_resource_server, wait_until};

#[tokio::test]
async fn a_flood_of_forged_kids_costs_at_most_one_or_two_jwks_fetches() {
    let keycard = start_keycard().await;
    let verifier = Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap();
    let api = start_resource_server(verifier.clone()).await;
    let before = verifier.stats();
    let attacker = SigningKey::generate(KeyAlg::EdDsa).unwrap();
    let claims = keycard.claims(keycard_core::now_unix());

    let mut requests = JoinSet::new();
    for _ in 0..200 {
        let token =
            forge(&attacker, KeyAlg::EdDsa, &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": random_id()}), &claims);
        let (http, url) = (api.http.clone(), format!("{}/api/hello", api.base));
        requests.spawn(async move { http.get(url).bearer_auth(token).send().await.unwrap().status().as_u16() });
    }
    let statuses = requests.join_all().await;
    assert!(statuses.iter().all(|s| *s == 401), "every forged kid is refused: {statuses:?}");

    let after = verifier.stats();
    let fetches = after.jwks_fetches - before.jwks_fetches;
    println!("200 forged kids → {fetches} JWKS fetch(es), {} refetches suppressed", after.refetches_suppressed);
    assert!((1..=2).contains(&fetches), "{fetches} JWKS fetches for 200 forged kids");
    let tokens = keycard.login("after-flood@example.com").await;
    assert_eq!(api.status(&tokens.access_token).await, 200, "real tokens still pass after the flood");
}

#[tokio::test]
async fn cached_keys_keep_working_while_keycard_is_down() {
    let mut keycard = start_keycard().await;
    // Fail open on stale revocation data, so this test isolates the key cache.
    let verifier = Verifier::builder(&keycard.issuer, "keycard")
        .revocation(RevocationConfig::default().poll_interval(Duration::from_millis(100)).when_stale(WhenStale::Accept))
        .build()
        .await
        .unwrap();
    let api = start_resource_server(verifier.clone()).await;
    let tokens = keycard.login("outage@example.com").await;
    assert_eq!(api.status(&tokens.access_token).await, 200);

    keycard.stop().await;
    let refreshed = verifier.refresh_keys().await;
    assert!(refreshed.is_err(), "keycard is down");
    let stats = verifier.stats();
    assert!(stats.jwks_fetch_failures >= 1 && stats.cached_keys >= 1, "{stats:?}");
    let noticed = wait_until(Duration::from_secs(5), || async { verifier.stats().feed_failures >= 1 }).await;
    assert!(noticed.is_some(), "the feed noticed the outage: {:?}", verifier.stats());
    assert_eq!(api.status(&tokens.access_token).await, 200, "the cached key still verifies");
    let attacker = SigningKey::generate(KeyAlg::EdDsa).unwrap();
    let forged = forge(
        &attacker,
        KeyAlg::EdDsa,
        &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "new"}),
        &keycard.claims(keycard_core::now_unix()),
    );
    assert_invalid_token(api.hello(&forged).await, "unknown kid while keycard is down").await;
}

#[tokio::test]
async fn a_static_key_set_overlaps_old_and_new_keys_then_drops_the_old_one() {
    let (old, new) = (SigningKey::generate(KeyAlg::EdDsa).unwrap(), SigningKey::generate(KeyAlg::Es256).unwrap());
    let both = PublicKeys::new([old.verifying_key().clone(), new.verifying_key().clone()]);
    let verifier = Verifier::from_static_keys("https://id.example", "api", both);
    let api = start_resource_server(verifier.clone()).await;
    let now = keycard_core::now_unix();
    let claims = AccessClaims::new("https://id.example", "api", "u", "s", now, 600);
    let (old_token, new_token) = (old.sign(&claims).unwrap(), new.sign(&claims).unwrap());
    assert_eq!(api.status(&old_token).await, 200, "old key during the overlap");
    assert_eq!(api.status(&new_token).await, 200, "new key");

    verifier.set_keys(PublicKeys::new([new.verifying_key().clone()]));
    let description = assert_invalid_token(api.hello(&old_token).await, "old key removed").await;
    assert!(description.contains("unknown key"), "{description}");
    assert_eq!(api.status(&new_token).await, 200, "new key after the overlap");
}

#[tokio::test]
async fn keycard_rotation_verifies_old_and_new_tokens_then_refuses_the_retired_key() {
    let keycard = start_keycard().await;
    let verifier = Verifier::builder(&keycard.issuer, "keycard")
        .jwks_refresh_interval(Some(Duration::from_millis(200)))
        .build()
        .await
        .unwrap();
    let api = start_resource_server(verifier.clone()).await;
    let old_tokens = keycard.login("rotate@example.com").await;
    let old_kid = keycard.ring().active().kid().to_owned();

    let now = keycard_core::now_unix();
    let new_kid = keycard.state.key_manager().rotate(KeyAlg::Es256, now).await.unwrap();
    keycard.state.reload_keys().await.unwrap();
    let new_tokens = keycard.login("rotate@example.com").await;
    assert_ne!(old_kid, new_kid);

    assert_eq!(api.status(&old_tokens.access_token).await, 200, "old key inside its overlap window");
    assert_eq!(api.status(&new_tokens.access_token).await, 200, "new key (fetched on its unknown kid)");

    keycard.state.key_manager().retire(&old_kid, keycard_core::now_unix()).await.unwrap();
    keycard.state.reload_keys().await.unwrap();
    let refused =
        wait_until(Duration::from_secs(5), || async { api.status(&old_tokens.access_token).await == 401 }).await;
    assert!(refused.is_some(), "the retired key left the verifier's cache");
    assert_eq!(api.status(&new_tokens.access_token).await, 200, "the new key keeps working");
    assert!(!verifier.keys().kids().any(|kid| kid == old_kid));
}
