//! DPoP-bound tokens (RFC 9449) through the example resource server's `VerifierLayer`, over
//! HTTP: keycard cannot issue bound tokens yet, so they are signed here with the real keycard's
//! key (as the attack tests do), with `cnf.jkt` of a client key; proofs come from `DpopKey`.

use std::time::Duration;

use keycard_core::dpop::DpopKey;
use keycard_core::keys::KeyAlg;
use keycard_verify::{DpopFailure, DpopOptions, Verifier, VerifyError};
use serde_json::{Value, json};

use crate::helpers::{Keycard, assert_invalid_token, forge, header_for, start_keycard, wait_until};

/// The URL clients use; the resource server itself listens elsewhere (as behind a proxy).
const ORIGIN: &str = "https://api.example";

struct Api {
    base: String,
    http: reqwest::Client,
    _task: tokio::task::JoinHandle<()>,
}

async fn start_api(verifier: Verifier) -> Api {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = crate::resource_server::app(verifier);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Api { base, http: reqwest::Client::new(), _task: task }
}

impl Api {
    /// `method path` with this Authorization value and these DPoP header values.
    async fn send(&self, method: &str, path: &str, authorization: &str, proofs: &[&str]) -> reqwest::Response {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request =
            self.http.request(method, format!("{}{path}", self.base)).header("authorization", authorization);
        for proof in proofs {
            request = request.header("dpop", *proof);
        }
        request.send().await.unwrap()
    }
}

/// A token keycard's key signs with `cnf.jkt` of `key` (no `cnf` when `None`).
fn bound_token(keycard: &Keycard, key: Option<&DpopKey>, claims: Option<Value>) -> String {
    let signer = keycard.ring().active().clone();
    let mut claims = claims.unwrap_or_else(|| keycard.claims(keycard_core::now_unix()));
    if let Some(key) = key {
        claims["cnf"] = json!({"jkt": key.jkt()});
    }
    forge(&signer, signer.alg(), &header_for(&signer), &claims)
}

fn proof(key: &DpopKey, htm: &str, htu: &str, token: &str, iat: i64) -> String {
    key.proof(htm, htu, Some(token), None, iat).unwrap()
}

/// Asserts a 401 with the `WWW-Authenticate: DPoP` challenge carrying `error`; returns the
/// description, which must quote neither the token nor the proof.
async fn assert_dpop_refusal(response: reqwest::Response, error: &str, why: &str) -> String {
    assert_eq!(response.status(), 401, "{why}");
    let challenge = response.headers().get("www-authenticate").unwrap().to_str().unwrap().to_owned();
    assert!(challenge.starts_with(&format!("DPoP error=\"{error}\"")), "{why}: {challenge}");
    assert!(challenge.contains("algs=\"EdDSA Ed25519 ES256\""), "{why}: {challenge}");
    assert!(!challenge.contains("eyJ"), "{why}: {challenge}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], error, "{why}: {body}");
    let description = body["error_description"].as_str().unwrap().to_owned();
    assert!(!description.is_empty() && !description.contains("eyJ"), "{why}: {description}");
    assert!(challenge.contains(&format!("error_description=\"{description}\"")), "{why}: {challenge}");
    description
}

async fn dpop_verifier(keycard: &Keycard) -> Verifier {
    Verifier::builder(&keycard.issuer, "keycard").dpop(DpopOptions::new().public_origin(ORIGIN)).build().await.unwrap()
}

#[tokio::test]
async fn a_dpop_bound_token_passes_only_with_a_fresh_proof_of_its_key_for_this_request() {
    let keycard = start_keycard().await;
    let api = start_api(dpop_verifier(&keycard).await).await;
    let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
    let other_key = DpopKey::generate(KeyAlg::Es256).unwrap();
    let token = bound_token(&keycard, Some(&key), None);
    let other_token = bound_token(&keycard, Some(&key), None);
    let htu = format!("{ORIGIN}/api/claims");
    let now = keycard_core::now_unix();
    let auth = format!("DPoP {token}");

    // Accepted; the handler sees the binding.
    let good = proof(&key, "GET", &htu, &token, now);
    let response = api.send("GET", "/api/claims?x=1", &auth, &[&good]).await;
    assert_eq!(response.status(), 200);
    let claims: Value = response.json().await.unwrap();
    assert_eq!(claims["cnf"], json!({"jkt": key.jkt()}), "handlers see cnf");
    // The scheme is case-insensitive; an ES256-bound token works too.
    let es_token = bound_token(&keycard, Some(&other_key), None);
    let es_proof = proof(&other_key, "GET", &htu, &es_token, now);
    assert_eq!(api.send("GET", "/api/claims", &format!("dpop {es_token}"), &[&es_proof]).await.status(), 200);

    // The same proof again: replay.
    let replay = api.send("GET", "/api/claims", &auth, &[&good]).await;
    let description = assert_dpop_refusal(replay, "invalid_dpop_proof", "replayed proof").await;
    assert!(description.contains("used before"), "{description}");

    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        ("no proof", vec![], "required"),
        (
            "two DPoP headers",
            vec![proof(&key, "GET", &htu, &token, now), proof(&key, "GET", &htu, &token, now)],
            "exactly one",
        ),
        ("proof of another key (cnf mismatch)", vec![proof(&other_key, "GET", &htu, &token, now)], "binding"),
        ("wrong htm", vec![proof(&key, "POST", &htu, &token, now)], "htm"),
        ("wrong htu path", vec![proof(&key, "GET", &format!("{ORIGIN}/api/hello"), &token, now)], "htu"),
        (
            "htu of the listening address, not the public origin",
            vec![proof(&key, "GET", &format!("{}/api/claims", api.base), &token, now)],
            "htu",
        ),
        ("proof made for another token (ath)", vec![proof(&key, "GET", &htu, &other_token, now)], "ath"),
        ("proof without ath", vec![key.proof("GET", &htu, None, None, now).unwrap()], "ath"),
        ("expired proof (iat 2 minutes old)", vec![proof(&key, "GET", &htu, &token, now - 120)], "too old"),
        ("proof from the future", vec![proof(&key, "GET", &htu, &token, now + 120)], "future"),
        ("garbage proof", vec!["not-a-proof".to_owned()], "well-formed"),
    ];
    for (why, proofs, expected) in cases {
        let proofs: Vec<&str> = proofs.iter().map(String::as_str).collect();
        let response = api.send("GET", "/api/claims", &auth, &proofs).await;
        let description = assert_dpop_refusal(response, "invalid_dpop_proof", why).await;
        assert!(description.contains(expected), "{why}: {description}");
    }
    // None of those refusals spent a proof: a fresh one still passes.
    let fresh = proof(&key, "GET", &htu, &token, now);
    assert_eq!(api.send("GET", "/api/claims", &auth, &[&fresh]).await.status(), 200);

    // Token problems under the DPoP scheme: invalid_token with the DPoP challenge.
    let unbound = bound_token(&keycard, None, None);
    let unbound_proof = proof(&key, "GET", &htu, &unbound, now);
    let response = api.send("GET", "/api/claims", &format!("DPoP {unbound}"), &[&unbound_proof]).await;
    let description = assert_dpop_refusal(response, "invalid_token", "DPoP scheme with an unbound token").await;
    assert!(description.contains("not DPoP-bound"), "{description}");
    let mut expired_claims = keycard.claims(now);
    expired_claims["exp"] = json!(now - 120);
    let expired = bound_token(&keycard, Some(&key), Some(expired_claims));
    let expired_proof = proof(&key, "GET", &htu, &expired, now);
    let response = api.send("GET", "/api/claims", &format!("DPoP {expired}"), &[&expired_proof]).await;
    let description = assert_dpop_refusal(response, "invalid_token", "expired bound token").await;
    assert!(description.contains("expired"), "{description}");
}

#[tokio::test]
async fn a_bound_token_is_refused_as_bearer_and_bearer_tokens_work_as_before() {
    let keycard = start_keycard().await;
    let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
    let token = bound_token(&keycard, Some(&key), None);
    let tokens = keycard.login("bob@example.com").await;
    let plain = Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap();
    assert_eq!(plain.verify(&token).await, Err(VerifyError::DpopBoundAsBearer));
    assert!(!plain.supports_dpop());
    let with_dpop = dpop_verifier(&keycard).await;
    assert!(with_dpop.supports_dpop());
    assert_eq!(with_dpop.verify(&token).await, Err(VerifyError::DpopBoundAsBearer));
    assert_eq!(with_dpop.verify_cached(&token), Err(VerifyError::DpopBoundAsBearer));

    for (name, verifier) in [("with DPoP", with_dpop), ("without DPoP", plain)] {
        let api = start_api(verifier).await;
        // Downgrade: the bound token as Bearer, with or without a proof.
        let response = api.send("GET", "/api/hello", &format!("Bearer {token}"), &[]).await;
        let description = assert_invalid_token(response, name).await;
        assert!(description.contains("DPoP-bound"), "{name}: {description}");
        let with_proof = proof(&key, "GET", &format!("{ORIGIN}/api/hello"), &token, keycard_core::now_unix());
        let response = api.send("GET", "/api/hello", &format!("Bearer {token}"), &[&with_proof]).await;
        assert_invalid_token(response, name).await;
        // keycard's own Bearer token: as before, and a handler sees no cnf.
        let response = api.send("GET", "/api/claims", &format!("Bearer {}", tokens.access_token), &[]).await;
        assert_eq!(response.status(), 200, "{name}");
        let claims: Value = response.json().await.unwrap();
        assert!(claims.get("cnf").is_none(), "{name}: {claims}");
        let response = api.send("GET", "/api/hello", "Bearer garbage", &[]).await;
        assert_invalid_token(response, name).await;
    }

    // Without DPoP support, the DPoP scheme is not understood: the Bearer answer.
    let plain = Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap();
    let api = start_api(plain).await;
    let good = proof(&key, "GET", &format!("{ORIGIN}/api/hello"), &token, keycard_core::now_unix());
    assert_invalid_token(api.send("GET", "/api/hello", &format!("DPoP {token}"), &[&good]).await, "no support").await;
}

#[tokio::test]
async fn without_a_public_origin_a_relative_request_uri_is_refused_not_guessed_from_host() {
    let keycard = start_keycard().await;
    let verifier = Verifier::builder(&keycard.issuer, "keycard").dpop(DpopOptions::new()).build().await.unwrap();
    let api = start_api(verifier).await;
    let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
    let token = bound_token(&keycard, Some(&key), None);
    // Even a proof for exactly the Host the request names is not accepted.
    let good = proof(&key, "GET", &format!("{}/api/hello", api.base), &token, keycard_core::now_unix());
    let response = api.send("GET", "/api/hello", &format!("DPoP {token}"), &[&good]).await;
    assert_eq!(response.status(), 500);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "server_error");

    let bad = Verifier::builder(&keycard.issuer, "keycard").dpop(DpopOptions::new().public_origin("api.example"));
    assert!(bad.build().await.is_err(), "an origin that is not an absolute URL");

    // Through the verifier directly: an absolute request URI is used.
    let verifier = Verifier::builder(&keycard.issuer, "keycard").dpop(DpopOptions::new()).build().await.unwrap();
    let uri: http::Uri = "https://direct.example/r".parse().unwrap();
    let mut headers = http::HeaderMap::new();
    headers.insert("authorization", format!("DPoP {token}").parse().unwrap());
    let direct = proof(&key, "PUT", "https://direct.example/r", &token, keycard_core::now_unix());
    headers.insert("dpop", direct.parse().unwrap());
    let claims = verifier.verify_request(&http::Method::PUT, &uri, &headers).await.unwrap();
    assert_eq!(claims.cnf.unwrap().jkt, key.jkt());
    let again = verifier.verify_request(&http::Method::PUT, &uri, &headers).await.unwrap_err();
    assert!(
        matches!(&again, VerifyError::Dpop { reason: DpopFailure::Proof(keycard_core::dpop::DpopError::Replayed), .. }),
        "{again:?}"
    );
}

#[tokio::test]
async fn the_revocation_feed_applies_to_dpop_bound_tokens() {
    let keycard = start_keycard().await;
    let api = start_api(dpop_verifier(&keycard).await).await;
    let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
    let tokens = keycard.login("carol@example.com").await;
    let mut claims = keycard.claims(keycard_core::now_unix());
    claims["sid"] = json!(tokens.session_id);
    let token = bound_token(&keycard, Some(&key), Some(claims));
    let htu = format!("{ORIGIN}/api/hello");
    let status = || async {
        let fresh = proof(&key, "GET", &htu, &token, keycard_core::now_unix());
        api.send("GET", "/api/hello", &format!("DPoP {token}"), &[&fresh]).await
    };
    assert_eq!(status().await.status(), 200);
    keycard.logout(&tokens.access_token).await;
    let refused = wait_until(Duration::from_secs(10), || async { status().await.status() == 401 }).await;
    assert!(refused.is_some(), "the revoked session's bound token is refused");
    let description = assert_dpop_refusal(status().await, "invalid_token", "revoked").await;
    assert!(description.contains("revoked"), "{description}");
}

/// The Redis of the shared-replay tests (`KEYCARD_TEST_REDIS_URL`); CI must set it.
fn redis_url() -> Option<String> {
    match std::env::var("KEYCARD_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(std::env::var_os("CI").is_none(), "CI must set KEYCARD_TEST_REDIS_URL");
            eprintln!("notice: KEYCARD_TEST_REDIS_URL is unset; shared DPoP replay test skipped");
            None
        }
    }
}

#[tokio::test]
async fn instances_sharing_a_replay_record_accept_each_proof_once_between_them() {
    let Some(url) = redis_url() else { return };
    let keycard = start_keycard().await;
    let instance = |store: keycard_verify::RedisReplay| {
        Verifier::builder(&keycard.issuer, "keycard")
            .dpop(DpopOptions::new().public_origin(ORIGIN).shared_replay(store))
    };
    let first =
        start_api(instance(keycard_verify::RedisReplay::connect(&url).await.unwrap()).build().await.unwrap()).await;
    let second =
        start_api(instance(keycard_verify::RedisReplay::connect(&url).await.unwrap()).build().await.unwrap()).await;
    let alone = start_api(dpop_verifier(&keycard).await).await;
    let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
    let token = bound_token(&keycard, Some(&key), None);
    let auth = format!("DPoP {token}");
    let htu = format!("{ORIGIN}/api/claims");

    let proof = proof(&key, "GET", &htu, &token, keycard_core::now_unix());
    assert_eq!(first.send("GET", "/api/claims", &auth, &[&proof]).await.status(), 200);
    let replayed = second.send("GET", "/api/claims", &auth, &[&proof]).await;
    assert_dpop_refusal(replayed, "invalid_dpop_proof", "the same proof at the other instance").await;
    let replayed = first.send("GET", "/api/claims", &auth, &[&proof]).await;
    assert_dpop_refusal(replayed, "invalid_dpop_proof", "the same proof at the same instance").await;
    // Without the shared record, an instance knows only its own proofs: the gap it closes.
    assert_eq!(alone.send("GET", "/api/claims", &auth, &[&proof]).await.status(), 200);
    // Fresh proofs keep working at both.
    for api in [&first, &second] {
        let fresh = key.proof("GET", &htu, Some(&token), None, keycard_core::now_unix()).unwrap();
        assert_eq!(api.send("GET", "/api/claims", &auth, &[&fresh]).await.status(), 200);
    }
}

/// A replay record that cannot answer.
struct Unreachable;

impl keycard_verify::ReplayStore for Unreachable {
    fn spend<'a>(
        &'a self,
        _key: &'a str,
        _ttl_secs: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async { Err("connection refused".to_owned()) })
    }
}

#[tokio::test]
async fn when_the_shared_replay_record_cannot_answer_dpop_requests_get_503_not_a_pass() {
    let keycard = start_keycard().await;
    let options = DpopOptions::new().public_origin(ORIGIN).shared_replay(Unreachable);
    let api = start_api(Verifier::builder(&keycard.issuer, "keycard").dpop(options).build().await.unwrap()).await;
    let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
    let token = bound_token(&keycard, Some(&key), None);
    let htu = format!("{ORIGIN}/api/claims");
    let response = api
        .send(
            "GET",
            "/api/claims",
            &format!("DPoP {token}"),
            &[&proof(&key, "GET", &htu, &token, keycard_core::now_unix())],
        )
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("1"));
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "temporarily_unavailable");
    assert!(!body.to_string().contains("connection refused"), "the reason is for the logs: {body}");
    // Bearer tokens do not need the record.
    let bearer = bound_token(&keycard, None, None);
    assert_eq!(api.send("GET", "/api/claims", &format!("Bearer {bearer}"), &[]).await.status(), 200);
}
