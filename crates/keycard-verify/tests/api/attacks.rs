//! Every JWT attack of the validation checklist, sent to the example resource server protected
//! by a verifier of the real keycard: each is a 401 `invalid_token` with the RFC 6750 challenge.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_core::keys::{KeyAlg, KeyMaterial, SigningKey};
use keycard_verify::Verifier;
use serde_json::{Value, json};

use crate::helpers::{assert_invalid_token, b64, forge, header_for, random_id, start_keycard, start_resource_server};

#[tokio::test]
async fn every_attack_of_the_checklist_is_a_401() {
    let keycard = start_keycard().await;
    let verifier = Verifier::from_issuer(&keycard.issuer, "keycard").await.unwrap();
    let api = start_resource_server(verifier).await;
    let tokens = keycard.login("victim@example.com").await;
    let ring = keycard.ring();
    let key = ring.active().clone();
    let kid = key.kid().to_owned();
    let now = keycard_core::now_unix();
    let good = keycard.claims(now);
    let hdr = header_for(&key);
    let with = |name: &str, value: Value| {
        let mut claims = good.clone();
        claims[name] = value;
        claims
    };
    let without = |name: &str| {
        let mut claims = good.clone();
        claims.as_object_mut().unwrap().remove(name);
        claims
    };
    let attacker = SigningKey::generate(KeyAlg::EdDsa).unwrap();
    // HS256 "signed with the public key": the public key bytes (and the JWK JSON) as the secret.
    let public_x = URL_SAFE_NO_PAD.decode(key.jwk().x.clone().unwrap()).unwrap();
    let hmac_with = |secret: Vec<u8>| {
        let secret = if secret.len() < 32 { [secret.as_slice(), &[0; 32]].concat() } else { secret };
        SigningKey::from_material(KeyMaterial { kid: kid.clone(), alg: KeyAlg::Hs256, private_der: secret }).unwrap()
    };
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let mut tampered: Vec<String> = tokens.access_token.split('.').map(str::to_owned).collect();
    let mut payload: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&tampered[1]).unwrap()).unwrap();
    payload["sub"] = json!("someone-else");
    tampered[1] = b64(&payload);

    let cases: Vec<(&str, String)> = vec![
        ("alg none", format!("{}.{}.", b64(&json!({"alg": "none", "typ": "at+jwt", "kid": kid})), b64(&good))),
        ("alg none, no signature part", format!("{}.{}", b64(&json!({"alg": "none", "kid": kid})), b64(&good))),
        ("HS256 with the public key bytes", forge(&hmac_with(public_x.clone()), KeyAlg::Hs256, &hs_header, &good)),
        (
            "HS256 with the JWK JSON",
            forge(&hmac_with(serde_json::to_vec(key.jwk()).unwrap()), KeyAlg::Hs256, &hs_header, &good),
        ),
        ("HS256 bytes under the key's own alg", forge(&hmac_with(public_x), KeyAlg::Hs256, &hdr, &good)),
        ("tampered payload", tampered.join(".")),
        (
            "unknown kid",
            forge(&attacker, KeyAlg::EdDsa, &json!({"alg": "EdDSA", "typ": "at+jwt", "kid": random_id()}), &good),
        ),
        ("right kid, attacker's key", forge(&attacker, KeyAlg::EdDsa, &hdr, &good)),
        ("no kid", forge(&key, key.alg(), &json!({"alg": key.alg().as_str(), "typ": "at+jwt"}), &good)),
        ("expired", forge(&key, key.alg(), &hdr, &with("exp", json!(now - 120)))),
        ("nbf in the future", forge(&key, key.alg(), &hdr, &with("nbf", json!(now + 120)))),
        ("iat in the future", forge(&key, key.alg(), &hdr, &with("iat", json!(now + 120)))),
        ("missing iat", forge(&key, key.alg(), &hdr, &without("iat"))),
        ("missing exp", forge(&key, key.alg(), &hdr, &without("exp"))),
        ("missing sub", forge(&key, key.alg(), &hdr, &without("sub"))),
        ("missing sid", forge(&key, key.alg(), &hdr, &without("sid"))),
        ("missing jti", forge(&key, key.alg(), &hdr, &without("jti"))),
        ("wrong iss", forge(&key, key.alg(), &hdr, &with("iss", json!("https://evil.example")))),
        ("wrong aud", forge(&key, key.alg(), &hdr, &with("aud", json!("another-api")))),
        ("typ JWT", forge(&key, key.alg(), &json!({"alg": key.alg().as_str(), "typ": "JWT", "kid": kid}), &good)),
        ("no typ", forge(&key, key.alg(), &json!({"alg": key.alg().as_str(), "kid": kid}), &good)),
        (
            "crit header",
            forge(
                &key,
                key.alg(),
                &json!({"alg": key.alg().as_str(), "typ": "at+jwt", "kid": kid, "crit": ["exp"]}),
                &good,
            ),
        ),
        ("larger than 8 KiB", forge(&key, key.alg(), &hdr, &with("pad", json!("x".repeat(9000))))),
        ("refresh token used as access token", tokens.refresh_token.clone().unwrap()),
        ("garbage", "not.a.jwt".into()),
        ("empty parts", "..".into()),
    ];
    assert_eq!(api.status(&tokens.access_token).await, 200, "control: the real token passes");
    assert_eq!(
        api.status(&forge(&key, key.alg(), &hdr, &good)).await,
        200,
        "control: a good forgery with keycard's key"
    );
    for (why, token) in cases {
        assert_invalid_token(api.hello(&token).await, why).await;
    }
    for (why, header) in [
        ("Basic scheme", format!("Basic {}", tokens.access_token)),
        ("empty Bearer", "Bearer ".to_owned()),
        ("Bearer with two tokens", format!("Bearer {} x", tokens.access_token)),
    ] {
        assert_invalid_token(api.hello_with_header(Some(&header)).await, why).await;
    }
    let doubled = api
        .http
        .get(format!("{}/api/hello", api.base))
        .header("authorization", format!("Bearer {}", tokens.access_token))
        .header("authorization", "Bearer other")
        .send()
        .await
        .unwrap();
    assert_invalid_token(doubled, "two Authorization headers").await;
}
