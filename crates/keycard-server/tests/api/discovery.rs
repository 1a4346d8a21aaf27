//! JWKS, discovery, health and readiness.

use serde_json::Value;

use crate::helpers::*;

#[tokio::test]
async fn jwks_publishes_the_public_ed25519_key_and_nothing_private() {
    let app = spawn_app().await;
    let resp = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("cache-control").unwrap().to_str().unwrap().contains("max-age"));
    let jwks: Value = resp.json().await.unwrap();
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1);
    let key = &keys[0];
    assert_eq!(
        (key["kty"].as_str(), key["crv"].as_str(), key["alg"].as_str()),
        (Some("OKP"), Some("Ed25519"), Some("EdDSA"))
    );
    assert!(key.get("d").is_none(), "no private part");
    // The published key verifies a token the server issued.
    let (_, tokens) = app.user().await;
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            tokens.access_token.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["kid"], key["kid"]);
    assert_eq!(header["typ"], "at+jwt");
    let decoding = jsonwebtoken::DecodingKey::from_ed_components(key["x"].as_str().unwrap()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["keycard"]);
    validation.set_issuer(&[app.base.as_str()]);
    let data = jsonwebtoken::decode::<Value>(&tokens.access_token, &decoding, &validation).unwrap();
    for claim in ["iss", "aud", "sub", "exp", "iat", "nbf", "jti", "sid"] {
        assert!(data.claims.get(claim).is_some(), "{claim}");
    }
}

#[tokio::test]
async fn openid_configuration_points_at_this_issuer() {
    let app = spawn_app().await;
    let conf: Value =
        app.client.get(app.url("/.well-known/openid-configuration")).send().await.unwrap().json().await.unwrap();
    assert_eq!(conf["issuer"], app.base.as_str());
    assert_eq!(conf["jwks_uri"], format!("{}/.well-known/jwks.json", app.base));
    assert_eq!(conf["token_endpoint"], format!("{}/oauth/token", app.base));
}

#[tokio::test]
async fn health_and_readiness_answer() {
    let app = spawn_app().await;
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
}

#[tokio::test]
async fn the_revocation_feed_pages_from_a_position() {
    let app = spawn_app().await;
    let (email, a) = app.user().await;
    let b = app.login(&email).await;
    for t in [&a, &b] {
        app.client.post(app.url("/auth/logout")).bearer_auth(&t.access_token).send().await.unwrap();
    }
    let all: Value = app.client.get(app.url("/auth/revocations")).send().await.unwrap().json().await.unwrap();
    let entries = all["revocations"].as_array().unwrap();
    assert_eq!(entries.len(), 2);
    assert_eq!(entries[0]["sid"], a.session_id.as_str());
    assert!(entries[0]["expires_at"].as_i64().unwrap() > entries[0]["revoked_at"].as_i64().unwrap());
    let first = entries[0]["seq"].as_i64().unwrap();
    let rest: Value = app
        .client
        .get(app.url(&format!("/auth/revocations?after={first}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(rest["revocations"].as_array().unwrap().len(), 1);
    assert_eq!(rest["next"], entries[1]["seq"]);
    let bad = app.client.get(app.url("/auth/revocations?after=soon")).send().await.unwrap();
    assert_error(bad, 400, "invalid_request").await;
}
