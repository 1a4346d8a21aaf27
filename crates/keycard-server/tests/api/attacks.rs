//! The JWT attacks of SPEC.md's validation checklist, against a protected route of the real
//! server. Each forged token is otherwise valid (real user, real live session), so the only
//! reason to refuse it is the rule under test.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Value, json};

use crate::helpers::*;

struct Forge {
    kid: String,
    key: EncodingKey,
    claims: Value,
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

impl Forge {
    /// Claims copied from a real token of the app, signable with the app's real private key.
    fn new(app: &TestApp, real_access: &str) -> Self {
        let keys = app.state.keys();
        let active = keys.local().expect("a local key ring").active();
        let payload = URL_SAFE_NO_PAD.decode(real_access.split('.').nth(1).unwrap()).unwrap();
        Self {
            kid: active.kid().to_owned(),
            key: EncodingKey::from_ed_der(&active.material().private_der),
            claims: serde_json::from_slice(&payload).unwrap(),
        }
    }

    fn header(&self) -> Value {
        json!({"alg": "EdDSA", "typ": "at+jwt", "kid": self.kid})
    }

    fn sign(&self, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", b64(header), b64(claims));
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &self.key, Algorithm::EdDSA).unwrap();
        format!("{message}.{sig}")
    }

    fn with_claim(&self, name: &str, value: Value) -> String {
        let mut claims = self.claims.clone();
        claims[name] = value;
        self.sign(&self.header(), &claims)
    }

    fn without_claim(&self, name: &str) -> String {
        let mut claims = self.claims.clone();
        claims.as_object_mut().unwrap().remove(name);
        self.sign(&self.header(), &claims)
    }
}

#[tokio::test]
async fn a_correctly_forged_control_token_is_accepted() {
    // Guards the other tests: the forge itself produces tokens the server accepts.
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    let forge = Forge::new(&app, &tokens.access_token);
    let control = forge.sign(&forge.header(), &forge.claims);
    assert_eq!(app.get_authed("/auth/me", &control).await.status(), 200);
}

#[tokio::test]
async fn every_checklist_attack_is_a_401_invalid_token() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    let (_, victim) = app.user().await;
    let forge = Forge::new(&app, &tokens.access_token);
    let now = app.now();
    let kid = forge.kid.clone();
    let message = |header: Value| format!("{}.{}", b64(&header), b64(&forge.claims));

    let alg_none = format!("{}.", message(json!({"alg": "none", "typ": "at+jwt", "kid": kid})));
    let alg_none_sig = format!("{}.{}", message(json!({"alg": "none", "typ": "at+jwt", "kid": kid})), "AAAA");

    // HS256 keyed with the public key as published in JWKS (the classic confusion attack).
    let jwks: Value = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap().json().await.unwrap();
    let x = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
    let hs_header = json!({"alg": "HS256", "typ": "at+jwt", "kid": kid});
    let hs_msg = message(hs_header);
    let hs_raw = jsonwebtoken::crypto::sign(
        hs_msg.as_bytes(),
        &EncodingKey::from_secret(&URL_SAFE_NO_PAD.decode(&x).unwrap()),
        Algorithm::HS256,
    )
    .unwrap();
    let hs_text =
        jsonwebtoken::crypto::sign(hs_msg.as_bytes(), &EncodingKey::from_secret(x.as_bytes()), Algorithm::HS256)
            .unwrap();

    // Tampered payload: the victim's id under the attacker's signature.
    let mut parts: Vec<String> = tokens.access_token.split('.').map(str::to_owned).collect();
    let mut claims = forge.claims.clone();
    claims["sub"] = json!(app.get_authed_user_id_from_token(&victim.access_token));
    parts[1] = b64(&claims);
    let tampered = parts.join(".");

    // A key the server never issued, under a kid it does not know and under the real kid.
    let stranger = keycard_core::keys::SigningKey::generate_ed25519().unwrap();
    let stranger_key = EncodingKey::from_ed_der(&stranger.material().private_der);
    let sign_with_stranger = |header: Value| {
        let msg = message(header);
        let sig = jsonwebtoken::crypto::sign(msg.as_bytes(), &stranger_key, Algorithm::EdDSA).unwrap();
        format!("{msg}.{sig}")
    };

    let cases: Vec<(&str, String)> = vec![
        ("alg none, empty signature", alg_none),
        ("alg none, some signature", alg_none_sig),
        ("HS256 keyed with the raw public key", format!("{hs_msg}.{hs_raw}")),
        ("HS256 keyed with the JWK x text", format!("{hs_msg}.{hs_text}")),
        ("tampered payload", tampered),
        ("unknown kid", sign_with_stranger(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "attacker"}))),
        ("real kid, foreign key", sign_with_stranger(json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}))),
        ("no kid", forge.sign(&json!({"alg": "EdDSA", "typ": "at+jwt"}), &forge.claims)),
        ("typ JWT", forge.sign(&json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}), &forge.claims)),
        ("no typ", forge.sign(&json!({"alg": "EdDSA", "kid": kid}), &forge.claims)),
        ("expired", forge.with_claim("exp", json!(now - 120))),
        ("future nbf", forge.with_claim("nbf", json!(now + 120))),
        ("future iat", forge.with_claim("iat", json!(now + 120))),
        ("missing iat", forge.without_claim("iat")),
        ("missing exp", forge.without_claim("exp")),
        ("missing sid", forge.without_claim("sid")),
        ("missing jti", forge.without_claim("jti")),
        ("missing sub", forge.without_claim("sub")),
        ("wrong iss", forge.with_claim("iss", json!("https://evil.example"))),
        ("wrong aud", forge.with_claim("aud", json!("another-api"))),
        ("unknown sid", forge.with_claim("sid", json!(uuid::Uuid::new_v4().to_string()))),
        ("exp as a string", forge.with_claim("exp", json!("tomorrow"))),
        ("refresh token as access token", tokens.refresh_token.clone().unwrap()),
        ("garbage", "not-a-token".into()),
        ("empty segments", "..".into()),
        ("non-base64 header", "%%%.e30.sig".into()),
        ("header is not JSON", format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(b"nope"))),
        ("over 8 KiB", forge.with_claim("pad", json!("x".repeat(9000)))),
    ];
    for (why, token) in cases {
        let resp = app.get_authed("/auth/me", &token).await;
        assert_eq!(resp.status(), 401, "{why}");
        assert_eq!(resp.headers().get("www-authenticate").unwrap(), "Bearer error=\"invalid_token\"", "{why}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_token", "{why}");
    }
    // The session under attack is unharmed.
    assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
}

#[tokio::test]
async fn small_clock_skew_inside_the_leeway_is_tolerated() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    let forge = Forge::new(&app, &tokens.access_token);
    let now = app.now();
    let mut claims = forge.claims.clone();
    claims["iat"] = json!(now + 10);
    claims["nbf"] = json!(now + 10);
    assert_eq!(app.get_authed("/auth/me", &forge.sign(&forge.header(), &claims)).await.status(), 200);
}
