//! Tokens issued by the real keycard pass the example resource server; requests without one
//! do not.

use keycard_core::keys::{KeyAlg, PublicKeys, SigningKey, VerifyingKey};
use keycard_verify::{BuildError, Claims, FetchError, Verifier};
use serde_json::Value;

use crate::helpers::{assert_invalid_token, start_keycard, start_keycard_with, start_resource_server};

#[tokio::test]
async fn tokens_from_keycard_pass_the_example_resource_server() {
    let keycard = start_keycard().await;
    let verifier = Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap();
    let api = start_resource_server(verifier).await;
    let tokens = keycard.login("alice@example.com").await;

    let response = api.hello(&tokens.access_token).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["session"], tokens.session_id);

    let claims: Value = api
        .http
        .get(format!("{}/api/claims", api.base))
        .bearer_auth(&tokens.access_token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(claims["iss"], keycard.issuer);
    assert_eq!(claims["aud"], "keycard");
    let admin = api.http.get(format!("{}/api/admin", api.base)).bearer_auth(&tokens.access_token).send().await.unwrap();
    assert_eq!(admin.status(), 403, "authenticated but without the admin scope");
    let health = api.http.get(format!("{}/healthz", api.base)).send().await.unwrap();
    assert_eq!(health.status(), 200, "public routes stay public");
    let unknown = api.http.get(format!("{}/api/nope", api.base)).send().await.unwrap();
    assert_eq!(unknown.status(), 404, "route_layer leaves unknown paths alone");
}

#[tokio::test]
async fn a_request_without_a_token_gets_the_rfc_6750_challenge() {
    let keycard = start_keycard().await;
    let api = start_resource_server(Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap()).await;
    let description = assert_invalid_token(api.hello_with_header(None).await, "no header").await;
    assert!(description.contains("Bearer"), "{description}");
}

#[tokio::test]
async fn tokens_of_each_public_key_algorithm_from_keycard_verify() {
    for alg in ["ES256", "RS256", "EdDSA"] {
        let keycard = start_keycard_with(|s| s.signing_alg = keycard_core::keys::KeyAlg::parse(alg).unwrap()).await;
        let verifier = Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap();
        let tokens = keycard.login("alg@example.com").await;
        let header = tokens.access_token.split('.').next().unwrap();
        assert!(String::from_utf8_lossy(&base64_decode(header)).contains(alg), "{alg}");
        let claims = verifier.verify(&tokens.access_token).await.unwrap();
        assert_eq!(claims.sid, tokens.session_id, "{alg}");
    }
}

fn base64_decode(part: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap()
}

#[tokio::test]
async fn a_verifier_with_an_hs256_secret_verifies_tokens_signed_with_it() {
    let key = SigningKey::generate(KeyAlg::Hs256).unwrap();
    let secret = key.material().private_der.clone();
    let keys = PublicKeys::new([VerifyingKey::hs256(key.kid(), &secret).unwrap()]);
    let verifier = Verifier::from_static_keys("https://id.example", "api", keys);
    let now = keycard_core::now_unix();
    let token =
        key.sign(&keycard_core::claims::AccessClaims::new("https://id.example", "api", "u", "s", now, 60)).unwrap();
    assert_eq!(verifier.verify(&token).await.unwrap().sub, "u");
}

#[tokio::test]
async fn the_extractor_works_without_the_layer_given_an_extension() {
    use axum::routing::get;
    let keycard = start_keycard().await;
    let verifier = Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap();
    let with_verifier = axum::Router::new()
        .route("/me", get(|Claims(c): Claims| async move { c.sub }))
        .route("/maybe", get(|c: Option<Claims>| async move { c.map_or("anonymous".to_owned(), |c| c.0.sub) }))
        .layer(axum::Extension(verifier));
    let without = axum::Router::new().route("/unconfigured/me", get(|Claims(c): Claims| async move { c.sub }));
    let app = with_verifier.merge(without);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let http = reqwest::Client::new();
    let tokens = keycard.login("ext@example.com").await;

    let me = http.get(format!("{base}/me")).bearer_auth(&tokens.access_token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    let anonymous = http.get(format!("{base}/maybe")).send().await.unwrap().text().await.unwrap();
    assert_eq!(anonymous, "anonymous");
    let bad = http.get(format!("{base}/maybe")).bearer_auth("garbage").send().await.unwrap();
    assert_invalid_token(bad, "Option<Claims> still refuses a bad token").await;
    let unconfigured =
        http.get(format!("{base}/unconfigured/me")).bearer_auth(&tokens.access_token).send().await.unwrap();
    assert_eq!(unconfigured.status(), 500, "no verifier installed is a server error, not a pass");
}

#[tokio::test]
async fn building_fails_clearly_for_a_wrong_issuer_or_plain_http() {
    let keycard = start_keycard().await;
    let wrong = Verifier::from_issuer(format!("http://localhost:{}", keycard.addr.port()), "keycard").await;
    assert!(matches!(wrong, Err(BuildError::Fetch(FetchError::IssuerMismatch { .. }))), "{wrong:?}");
    let insecure = Verifier::from_issuer("http://keycard.internal:8080", "keycard").await;
    assert!(matches!(insecure, Err(BuildError::InsecureUrl(_))), "{insecure:?}");
    let down = Verifier::from_issuer("http://127.0.0.1:9", "keycard").await;
    assert!(matches!(down, Err(BuildError::Fetch(FetchError::Http { .. }))), "{down:?}");
}
