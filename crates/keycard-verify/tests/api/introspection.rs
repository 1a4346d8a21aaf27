//! Introspection (RFC 7662), the opt-in fallback for opaque tokens, against the real keycard's
//! `/oauth/introspect`, through a counting reverse proxy: nothing is introspected without the
//! option or for a JWT; keycard's refresh tokens (active, but not access tokens) are refused;
//! an opaque access token passes until it is revoked and its cache entry expires.

use std::sync::Arc;
use std::time::Duration;

use keycard_core::TokenError;
use keycard_core::clock::{Clock, ManualClock};
use keycard_core::keys::{KeyAlg, SigningKey};
use keycard_verify::{IntrospectionConfig, RevocationConfig, Verifier, VerifierBuilder, VerifyError};
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::helpers::{
    Keycard, RegisteredClient, assert_invalid_token, forge, header_for, random_id, start_keycard, start_resource_server,
};
use crate::proxy::{Proxy, start_proxy};

const INTROSPECT: &str = "/oauth/introspect";

/// A keycard, a confidential client for the verifier to introspect as, and a proxy in front.
async fn setup() -> (Keycard, RegisteredClient, Proxy) {
    let keycard = start_keycard().await;
    let client = keycard.register_client("orders-api", "read write").await;
    let proxy = start_proxy(&keycard.issuer).await;
    (keycard, client, proxy)
}

/// A verifier builder introspecting as `client` through the proxy.
fn introspecting(keycard: &Keycard, client: &RegisteredClient, proxy: &Proxy) -> VerifierBuilder {
    let config = IntrospectionConfig::new(&client.id, &client.secret).endpoint(format!("{}{INTROSPECT}", proxy.base));
    Verifier::builder(&keycard.issuer, "keycard").introspection(config)
}

#[tokio::test]
async fn without_the_option_an_opaque_token_is_refused_with_no_network_call() {
    let (keycard, _client, proxy) = setup().await;
    // Every request this verifier makes goes through the proxy.
    let verifier = Verifier::builder(&keycard.issuer, "keycard")
        .jwks_uri(format!("{}/.well-known/jwks.json", proxy.base))
        .revocation(RevocationConfig::default().feed_url(format!("{}/auth/revocations", proxy.base)))
        .build()
        .await
        .unwrap();
    let tokens = keycard.login("plain@example.com").await;
    let refresh = tokens.refresh_token.clone().unwrap();
    for opaque in [refresh.as_str(), "an-opaque-token", "not.a.jwt"] {
        assert_eq!(verifier.verify(opaque).await, Err(VerifyError::Token(TokenError::Malformed)), "{opaque}");
    }
    assert_eq!(verifier.verify(&tokens.access_token).await.unwrap().sid, tokens.session_id);
    assert_eq!(verifier.stats().introspections, 0);
    assert_eq!(proxy.paths(), ["/.well-known/jwks.json", "/auth/revocations"], "only keys and the feed");
}

#[tokio::test]
async fn a_refresh_token_is_introspected_and_refused_as_not_an_access_token() {
    let (keycard, client, proxy) = setup().await;
    let verifier = introspecting(&keycard, &client, &proxy).build().await.unwrap();
    let tokens = keycard.login("refresh@example.com").await;
    let refresh = tokens.refresh_token.clone().unwrap();
    assert!(refresh.starts_with("kcrt_"), "opaque, not a JWT");

    // keycard reports it active; it is refused for its type, not for being inactive.
    let answer = keycard.introspect(&refresh, &client).await;
    assert_eq!((answer["active"].clone(), answer["token_type"].clone()), (json!(true), json!("refresh_token")));
    assert_eq!(verifier.verify(&refresh).await, Err(VerifyError::Token(TokenError::WrongType)));
    assert_eq!(proxy.count(INTROSPECT), 1, "sent to introspection once");
    assert_eq!(verifier.verify(&refresh).await, Err(VerifyError::Token(TokenError::WrongType)));
    assert_eq!(proxy.count(INTROSPECT), 1, "the refusal is cached");
    assert_eq!(verifier.stats().introspection_cache_hits, 1);

    let api = start_resource_server(verifier.clone()).await;
    let description = assert_invalid_token(api.hello(&refresh).await, "refresh token as access token").await;
    assert!(description.contains("not an access token"), "{description}");
    assert_eq!(api.status(&tokens.access_token).await, 200, "the JWT access token passes locally");
    assert_eq!(proxy.count(INTROSPECT), 1, "JWTs are never introspected");
}

#[tokio::test]
async fn a_jwt_that_fails_local_verification_is_never_introspected() {
    let (keycard, client, proxy) = setup().await;
    let verifier = introspecting(&keycard, &client, &proxy).build().await.unwrap();
    let key = keycard.ring().active().clone();
    let attacker = SigningKey::generate(KeyAlg::EdDsa).unwrap();
    let now = keycard_core::now_unix();
    let good = keycard.claims(now);
    let mut expired = good.clone();
    expired["exp"] = json!(now - 120);
    let real = keycard.login("jwt@example.com").await.access_token;
    let mut tampered: Vec<&str> = real.split('.').collect();
    tampered[2] = "AAAA";
    let cases = [
        ("attacker's key under keycard's kid", forge(&attacker, KeyAlg::EdDsa, &header_for(&key), &good)),
        (
            "unknown kid",
            forge(&attacker, KeyAlg::EdDsa, &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": random_id()}), &good),
        ),
        ("expired", forge(&key, key.alg(), &header_for(&key), &expired)),
        ("bad signature", tampered.join(".")),
        ("a JWS header with a garbage payload", format!("{}.%%%.AAAA", real.split('.').next().unwrap())),
    ];
    for (why, token) in &cases {
        let error = verifier.verify(token).await.unwrap_err();
        assert!(matches!(error, VerifyError::Token(_)), "{why}: {error:?}");
    }
    assert_eq!(proxy.count(INTROSPECT), 0, "no JWT was sent to introspection");
    assert_eq!(verifier.stats().introspections, 0);
}

#[tokio::test]
async fn an_opaque_access_token_passes_until_revoked_and_its_cache_entry_expires() {
    let (keycard, client, proxy) = setup().await;
    let clock = Arc::new(ManualClock::starting_now());
    let ttl = Duration::from_secs(5);
    let config = IntrospectionConfig::new(&client.id, &client.secret)
        .endpoint(format!("{}{INTROSPECT}", proxy.base))
        .cache_ttl(ttl);
    // The revocation feed is off here so that the refusal comes from introspection alone.
    let verifier = Verifier::builder(&keycard.issuer, "keycard")
        .without_revocation()
        .clock(clock.clone())
        .introspection(config)
        .build()
        .await
        .unwrap();
    let tokens = keycard.login("opaque@example.com").await;
    // The verifier is given an opaque handle; keycard is asked about the real token behind it.
    let handle = proxy.reference(&tokens.access_token);

    let claims = verifier.verify(&handle).await.unwrap();
    assert_eq!(claims.sid, tokens.session_id);
    assert_eq!((claims.iss.as_str(), claims.aud.as_str()), (keycard.issuer.as_str(), "keycard"));
    assert!(!claims.sub.is_empty() && claims.exp > clock.now(), "{claims:?}");
    assert_eq!(claims.client_id.as_deref(), Some("keycard"), "a session from keycard's own login");
    assert_eq!(proxy.count(INTROSPECT), 1);
    let api = start_resource_server(verifier.clone()).await;
    assert_eq!(api.status(&handle).await, 200, "cached: no second request");
    assert_eq!(proxy.count(INTROSPECT), 1);

    keycard.logout(&tokens.access_token).await;
    assert_eq!(keycard.introspect(&tokens.access_token, &client).await["active"], false, "revoked at keycard");
    clock.advance(ttl - Duration::from_secs(1));
    assert!(verifier.verify(&handle).await.is_ok(), "within the cache TTL the cached verdict stands");
    assert_eq!(proxy.count(INTROSPECT), 1);

    clock.advance(Duration::from_secs(2));
    assert_eq!(verifier.verify(&handle).await, Err(VerifyError::Inactive), "asked again once the entry expired");
    assert_eq!(proxy.count(INTROSPECT), 2);
    assert_invalid_token(api.hello(&handle).await, "revoked opaque token").await;
    assert_eq!(proxy.count(INTROSPECT), 2, "the refusal is cached too");
}

#[tokio::test]
async fn a_service_token_behind_a_handle_carries_its_client_and_scope() {
    let (keycard, client, proxy) = setup().await;
    let verifier = introspecting(&keycard, &client, &proxy).build().await.unwrap();
    let service_token = keycard.client_credentials(&client).await;
    let handle = proxy.reference(&service_token);
    let claims = verifier.verify(&handle).await.unwrap();
    assert_eq!(claims.sub, client.id);
    assert_eq!(claims.client_id.as_deref(), Some(client.id.as_str()));
    assert_eq!(claims.scope.as_deref(), Some("read write"));
    assert!(!claims.sid.is_empty());
}

#[tokio::test]
async fn a_cached_verdict_never_outlives_the_tokens_exp() {
    let (keycard, client, proxy) = setup().await;
    let handle = proxy.reference(&keycard.login("exp@example.com").await.access_token);
    // Started after the login: a clock frozen before it could read the token's `nbf` as one
    // second in the future (leeway 0).
    let clock = Arc::new(ManualClock::starting_now());
    let config = IntrospectionConfig::new(&client.id, &client.secret)
        .endpoint(format!("{}{INTROSPECT}", proxy.base))
        .cache_ttl(Duration::from_secs(24 * 3600));
    let verifier = Verifier::builder(&keycard.issuer, "keycard")
        .without_revocation()
        .leeway(Duration::ZERO)
        .clock(clock.clone())
        .introspection(config)
        .build()
        .await
        .unwrap();
    let claims = verifier.verify(&handle).await.unwrap();
    clock.advance(Duration::from_secs(u64::try_from(claims.exp - clock.now()).unwrap() - 1));
    assert!(verifier.verify(&handle).await.is_ok(), "a second before exp: cached");
    assert_eq!(proxy.count(INTROSPECT), 1);
    clock.advance(Duration::from_secs(2));
    // keycard's own clock has not moved: it still says active; the verifier's clock says expired.
    assert_eq!(verifier.verify(&handle).await, Err(VerifyError::Token(TokenError::Expired)));
    assert_eq!(proxy.count(INTROSPECT), 2, "the day-long TTL did not keep the entry past exp");
}

#[tokio::test]
async fn fifty_concurrent_checks_of_one_opaque_token_share_one_request() {
    let (keycard, client, proxy) = setup().await;
    let verifier = introspecting(&keycard, &client, &proxy).build().await.unwrap();
    let refresh = keycard.login("burst@example.com").await.refresh_token.unwrap();
    proxy.close_gate();
    let mut checks = JoinSet::new();
    for _ in 0..50 {
        let (verifier, refresh) = (verifier.clone(), refresh.clone());
        checks.spawn(async move { verifier.verify(&refresh).await });
    }
    proxy.wait_for_count(INTROSPECT, 1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    proxy.open_gate();
    for result in checks.join_all().await {
        assert_eq!(result, Err(VerifyError::Token(TokenError::WrongType)));
    }
    assert_eq!(proxy.count(INTROSPECT), 1);
}

#[tokio::test]
async fn the_endpoint_is_discovered_and_a_failing_one_answers_503_uncached() {
    let (keycard, client, proxy) = setup().await;
    let refresh = keycard.login("discover@example.com").await.refresh_token.unwrap();
    let discovered = Verifier::builder(&keycard.issuer, "keycard")
        .introspection(IntrospectionConfig::new(&client.id, &client.secret))
        .build()
        .await
        .unwrap();
    assert_eq!(discovered.verify(&refresh).await, Err(VerifyError::Token(TokenError::WrongType)), "reached keycard");
    assert_eq!(discovered.stats().introspections, 1);

    let wrong_secret = format!("{}-not", client.secret);
    let wrong = RegisteredClient { id: client.id.clone(), secret: wrong_secret.clone() };
    let verifier = introspecting(&keycard, &wrong, &proxy).build().await.unwrap();
    let error = verifier.verify(&refresh).await.unwrap_err();
    assert!(matches!(error, VerifyError::IntrospectionUnavailable { .. }), "{error:?}");
    assert_eq!(error.status().as_u16(), 503);
    assert!(!format!("{error} {error:?} {verifier:?}").contains(&wrong_secret), "no secret in errors or Debug");
    let api = start_resource_server(verifier.clone()).await;
    let response = api.hello(&refresh).await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(!body.to_string().contains(INTROSPECT), "the endpoint is for the logs: {body}");
    assert_eq!(proxy.count(INTROSPECT), 2, "failures are not cached");
    assert_eq!(verifier.stats().introspection_failures, 2);

    let down = Verifier::builder(&keycard.issuer, "keycard")
        .introspection(IntrospectionConfig::new(&client.id, &client.secret).endpoint("http://127.0.0.1:9/introspect"))
        .build()
        .await
        .unwrap();
    assert!(matches!(down.verify(&refresh).await, Err(VerifyError::IntrospectionUnavailable { .. })));
}
