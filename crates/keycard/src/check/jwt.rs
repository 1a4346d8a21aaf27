//! Tokens as the token probes see them: decoding a JWT without verifying it, re-encoding it
//! with changed JSON, HS256-signing it under a chosen secret, and the forged variants each
//! probe presents (`alg: none`, tampered claims/signature/kid, HS256 keyed with the public key)
//! plus the offline weak-secret search.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use super::der::{pem, public_key_ders};

/// A decoded JWT: header and payload JSON, and the signature text.
pub(super) struct Jwt {
    pub(super) header: Value,
    pub(super) payload: Value,
    pub(super) signature: String,
}

/// A forged token and the name the report gives it.
pub(super) type Variant = (String, String);

impl Jwt {
    /// The header and payload of a compact JWS (base64url JSON each); `None` when it is not one.
    pub(super) fn decode(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        let json = |part: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).ok()?).ok();
        Some(Self { header: json(h)?, payload: json(p)?, signature: s.to_owned() })
    }

    /// `header.payload` with the given JSON, and `signature` appended.
    pub(super) fn encode(header: &Value, payload: &Value, signature: &str) -> String {
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.{signature}", b64(header), b64(payload))
    }

    /// Signed with HMAC-SHA-256 under `secret`, whatever the header says.
    pub(super) fn hs256(header: &Value, payload: &Value, secret: &[u8]) -> String {
        let unsigned = Self::encode(header, payload, "");
        let message = unsigned.trim_end_matches('.');
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }
}

/// `v` with `k` set to `x`.
fn with(v: &Value, k: &str, x: Value) -> Value {
    let mut v = v.clone();
    v[k] = x;
    v
}

/// Secrets seen in tutorials and leaked configs; an HS256 token signed with one is forgeable.
pub(super) const WEAK_SECRETS: &[&str] = &[
    "secret",
    "Secret",
    "secretkey",
    "secret_key",
    "secret-key",
    "jwt_secret",
    "jwtsecret",
    "jwt-secret",
    "JWT_SECRET",
    "your-256-bit-secret",
    "your_jwt_secret",
    "your-secret-key",
    "mysecret",
    "mysecretkey",
    "supersecret",
    "changeme",
    "change-me",
    "password",
    "123456",
    "test",
    "dev",
    "development",
    "key",
    "private",
    "shhhhh",
    "keyboard cat",
    "access_token_secret",
    "refresh_token_secret",
    "ACCESS_TOKEN_SECRET",
    "s3cr3t",
];

/// The word-list secret that signs `token` (whose decoded form is `jwt`), if any. Offline: the
/// header and payload are re-encoded as compact JSON, so only a token whose JSON is written
/// that way (keys in sorted order, no spaces) can match.
pub(super) fn weak_secret(jwt: &Jwt, token: &str) -> Option<&'static str> {
    WEAK_SECRETS.iter().copied().find(|s| Jwt::hs256(&jwt.header, &jwt.payload, s.as_bytes()) == token)
}

/// `alg: none` in four spellings, each without a signature and with the old one.
pub(super) fn alg_none_variants(jwt: &Jwt) -> Vec<Variant> {
    let (h, p) = (&jwt.header, &jwt.payload);
    let mut none = Vec::new();
    for alg in ["none", "None", "NONE", "nOnE"] {
        none.push((format!("alg {alg}"), Jwt::encode(&with(h, "alg", json!(alg)), p, "")));
        none.push((format!("alg {alg} + old signature"), Jwt::encode(&with(h, "alg", json!(alg)), p, &jwt.signature)));
    }
    none
}

/// The signature with its middle character changed (to `A`, or to `B` when it is an `A`).
fn flip_middle(sig: &str) -> String {
    sig.char_indices().map(|(i, c)| if i == sig.len() / 2 { if c == 'A' { 'B' } else { 'A' } } else { c }).collect()
}

/// Claims changed under the old signature, the signature altered or removed, an unknown kid.
pub(super) fn tampered_variants(jwt: &Jwt) -> Vec<Variant> {
    let (h, p, sig) = (&jwt.header, &jwt.payload, &jwt.signature);
    let sub = p["sub"].as_str().unwrap_or("user");
    let exp = p["exp"].as_i64().unwrap_or(0);
    vec![
        ("sub changed".to_owned(), Jwt::encode(h, &with(p, "sub", json!(format!("{sub}0"))), sig)),
        ("exp extended".to_owned(), Jwt::encode(h, &with(p, "exp", json!(exp + 86_400)), sig)),
        ("role added".to_owned(), Jwt::encode(h, &with(p, "role", json!("admin")), sig)),
        ("signature altered".to_owned(), Jwt::encode(h, p, &flip_middle(sig))),
        ("signature removed".to_owned(), Jwt::encode(h, p, "")),
        ("unknown kid".to_owned(), Jwt::encode(&with(h, "kid", json!("keycard-check-unknown-kid")), p, sig)),
    ]
}

/// The JWKS key the token names by `kid`, else the first key.
pub(super) fn pick_jwk<'a>(keys: &'a [Value], kid: Option<&str>) -> Option<&'a Value> {
    keys.iter().find(|k| k["kid"].as_str() == kid && kid.is_some()).or(keys.first())
}

/// HS256 tokens keyed with every encoding of the published public key a naive verifier might
/// use as the secret: the JWK, the raw key, SPKI DER and PEM (and PKCS#1 for RSA).
pub(super) fn confusion_variants(h: &Value, p: &Value, jwk: &Value) -> Vec<Variant> {
    let mut secrets: Vec<(&str, Vec<u8>)> = vec![("JWK JSON", jwk.to_string().into_bytes())];
    for (name, der, pkcs1) in public_key_ders(jwk) {
        secrets.push((name, der.clone()));
        secrets.push(("SPKI PEM", pem("PUBLIC KEY", &der).into_bytes()));
        secrets.push(("SPKI PEM without newline", pem("PUBLIC KEY", &der).trim_end().as_bytes().to_vec()));
        if let Some(pkcs1) = pkcs1 {
            secrets.push(("PKCS#1 PEM", pem("RSA PUBLIC KEY", &pkcs1).into_bytes()));
        }
    }
    let header = with(h, "alg", json!("HS256"));
    secrets.into_iter().map(|(name, secret)| (format!("HS256 with {name}"), Jwt::hs256(&header, p, &secret))).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HS256 under "your-256-bit-secret" (computed with Python's `hmac`), with the JSON written
    /// as `serde_json` writes it: `{"alg":"HS256","typ":"JWT"}`,
    /// `{"iat":1516239022,"name":"John Doe","sub":"1234567890"}`.
    const HS256_TOKEN: &str = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.\
        eyJpYXQiOjE1MTYyMzkwMjIsIm5hbWUiOiJKb2huIERvZSIsInN1YiI6IjEyMzQ1Njc4OTAifQ.\
        fdOPQ05ZfRhkST2-rIWgUpbqUsVhkkNVNcuG7Ki0s-8";

    fn eddsa() -> Jwt {
        Jwt {
            header: json!({"alg": "EdDSA", "kid": "k1", "typ": "at+jwt"}),
            payload: json!({"sub": "u1", "exp": 1_700_000_000, "sid": "s1"}),
            signature: "c2lnbmF0dXJlLWJ5dGVz".to_owned(),
        }
    }

    fn part(token: &str, i: usize) -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(i).unwrap()).unwrap()).unwrap()
    }

    #[test]
    fn decode_reads_the_header_payload_and_signature() {
        let jwt = Jwt::decode(HS256_TOKEN).unwrap();
        assert_eq!(jwt.header, json!({"alg": "HS256", "typ": "JWT"}));
        assert_eq!(jwt.payload, json!({"sub": "1234567890", "name": "John Doe", "iat": 1_516_239_022}));
        assert_eq!(jwt.signature, "fdOPQ05ZfRhkST2-rIWgUpbqUsVhkkNVNcuG7Ki0s-8");
    }

    #[test]
    fn decode_refuses_what_is_not_a_jwt() {
        let json_part = URL_SAFE_NO_PAD.encode(r#"{"alg":"none"}"#);
        let not_jwts = [
            String::new(),
            "kcrt_opaque-refresh-token".to_owned(),
            "only.two".to_owned(),
            format!("{json_part}.bm90IGpzb24.sig"), // the payload is base64url, not JSON
            format!("{json_part}.{json_part}!.sig"), // the payload is not base64url
            format!("eyJhbGciOiJIUzI1NiJ9=.{json_part}.sig"), // padding is not base64url
        ];
        for token in &not_jwts {
            assert!(Jwt::decode(token).is_none(), "{token:?}");
        }
        assert!(Jwt::decode(&format!("{json_part}.{json_part}.")).is_some(), "an empty signature decodes");
    }

    #[test]
    fn encode_then_decode_gives_back_the_same_json() {
        let jwt = eddsa();
        let token = Jwt::encode(&jwt.header, &jwt.payload, "sig");
        let back = Jwt::decode(&token).unwrap();
        assert_eq!((back.header, back.payload, back.signature.as_str()), (jwt.header, jwt.payload, "sig"));
        assert!(Jwt::encode(&json!({}), &json!({}), "").ends_with('.'), "an empty signature keeps its dot");
    }

    #[test]
    fn hs256_matches_an_independent_hmac() {
        let jwt = Jwt::decode(HS256_TOKEN).unwrap();
        assert_eq!(Jwt::hs256(&jwt.header, &jwt.payload, b"your-256-bit-secret"), HS256_TOKEN);
        assert_ne!(Jwt::hs256(&jwt.header, &jwt.payload, b"your-256-bit-secreT"), HS256_TOKEN);
    }

    #[test]
    fn weak_secret_finds_a_word_list_secret_and_nothing_else() {
        let jwt = Jwt::decode(HS256_TOKEN).unwrap();
        assert_eq!(weak_secret(&jwt, HS256_TOKEN), Some("your-256-bit-secret"));
        let strong = Jwt::hs256(&jwt.header, &jwt.payload, b"k9P2vQ7xL4mN8rT1wY6zB3cF5hJ0dG2s");
        assert_eq!(weak_secret(&jwt, &strong), None);
        let keyboard_cat = Jwt::hs256(&jwt.header, &jwt.payload, b"keyboard cat");
        assert_eq!(weak_secret(&jwt, &keyboard_cat), Some("keyboard cat"));
    }

    #[test]
    fn alg_none_variants_change_only_alg_and_drop_or_keep_the_signature() {
        let jwt = eddsa();
        let variants = alg_none_variants(&jwt);
        let names: Vec<&str> = variants.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "alg none",
                "alg none + old signature",
                "alg None",
                "alg None + old signature",
                "alg NONE",
                "alg NONE + old signature",
                "alg nOnE",
                "alg nOnE + old signature"
            ]
        );
        for (i, (name, token)) in variants.iter().enumerate() {
            let alg = name.split(' ').nth(1).unwrap();
            assert_eq!(part(token, 0), json!({"alg": alg, "kid": "k1", "typ": "at+jwt"}), "{name}");
            assert_eq!(part(token, 1), jwt.payload, "{name}");
            let signature = token.rsplit('.').next().unwrap();
            assert_eq!(signature, if i % 2 == 0 { "" } else { jwt.signature.as_str() }, "{name}");
        }
    }

    #[test]
    fn flip_middle_changes_exactly_the_middle_character() {
        assert_eq!(flip_middle("xyzwv"), "xyAwv");
        assert_eq!(flip_middle("xyAwv"), "xyBwv");
        assert_eq!(flip_middle("abcd"), "abAd");
        assert_eq!(flip_middle(""), "");
    }

    #[test]
    fn tampered_variants_each_change_one_thing_under_the_old_signature() {
        let jwt = eddsa();
        let v = tampered_variants(&jwt);
        let names: Vec<&str> = v.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["sub changed", "exp extended", "role added", "signature altered", "signature removed", "unknown kid"]
        );
        let sig = |t: &str| t.rsplit('.').next().unwrap().to_owned();
        assert_eq!(part(&v[0].1, 1)["sub"], "u10");
        assert_eq!(part(&v[1].1, 1)["exp"], 1_700_086_400);
        assert_eq!(part(&v[2].1, 1)["role"], "admin");
        for t in [&v[0].1, &v[1].1, &v[2].1, &v[5].1] {
            assert_eq!(sig(t), jwt.signature);
        }
        assert_eq!(part(&v[3].1, 1), jwt.payload);
        assert_eq!(sig(&v[3].1), "c2lnbmF0dXAlLWJ5dGVz");
        assert_eq!(sig(&v[4].1), "");
        assert_eq!(part(&v[5].1, 0)["kid"], "keycard-check-unknown-kid");
        assert_eq!(part(&v[5].1, 1), jwt.payload);
    }

    #[test]
    fn tampered_variants_of_a_token_without_sub_or_exp_still_differ_from_it() {
        let jwt = Jwt { header: json!({"alg": "ES256"}), payload: json!({}), signature: "AAAA".to_owned() };
        let v = tampered_variants(&jwt);
        assert_eq!(part(&v[0].1, 1)["sub"], "user0");
        assert_eq!(part(&v[1].1, 1)["exp"], 86_400);
        assert_eq!(sig_of(&v[3].1), "AABA");
    }

    fn sig_of(token: &str) -> &str {
        token.rsplit('.').next().unwrap()
    }

    #[test]
    fn pick_jwk_takes_the_key_named_by_kid_else_the_first() {
        let keys = [json!({"kid": "a", "kty": "OKP"}), json!({"kid": "b", "kty": "EC"}), json!({"kty": "RSA"})];
        assert_eq!(pick_jwk(&keys, Some("b")), Some(&keys[1]));
        assert_eq!(pick_jwk(&keys, Some("unknown")), Some(&keys[0]));
        assert_eq!(pick_jwk(&keys, None), Some(&keys[0]), "no kid does not match a key without one");
        assert_eq!(pick_jwk(&[], Some("a")), None);
    }

    #[test]
    fn confusion_variants_sign_hs256_with_each_encoding_of_the_public_key() {
        let spki = base64::engine::general_purpose::STANDARD
            .decode("MCowBQYDK2VwAyEAGb9ECWmEzf6FQbrBZ9w7lshQhqowtrbLDFw4rXAxZuE=")
            .unwrap();
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "kid": "k1", "x": URL_SAFE_NO_PAD.encode(&spki[12..])});
        let jwt = eddsa();
        let variants = confusion_variants(&jwt.header, &jwt.payload, &jwk);
        let names: Vec<&str> = variants.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "HS256 with JWK JSON",
                "HS256 with raw public key",
                "HS256 with SPKI PEM",
                "HS256 with SPKI PEM without newline",
                "HS256 with SPKI DER",
                "HS256 with SPKI PEM",
                "HS256 with SPKI PEM without newline",
            ]
        );
        let header = json!({"alg": "HS256", "kid": "k1", "typ": "at+jwt"});
        let pem_text = pem("PUBLIC KEY", &spki);
        assert_eq!(variants[0].1, Jwt::hs256(&header, &jwt.payload, jwk.to_string().as_bytes()));
        assert_eq!(variants[4].1, Jwt::hs256(&header, &jwt.payload, &spki));
        assert_eq!(variants[5].1, Jwt::hs256(&header, &jwt.payload, pem_text.as_bytes()));
        assert_eq!(variants[6].1, Jwt::hs256(&header, &jwt.payload, pem_text.trim_end().as_bytes()));
        assert_eq!(part(&variants[1].1, 0)["alg"], "HS256");
    }

    #[test]
    fn confusion_variants_for_rsa_include_the_pkcs1_pem_and_an_unknown_key_only_the_jwk() {
        let rsa = json!({"kty": "RSA", "n": "0gOSSdLBnpjN_3yHzGVNGYFLAY6Uac7apa9mmA1nJQ", "e": "AQAB"});
        let jwt = eddsa();
        let names: Vec<String> =
            confusion_variants(&jwt.header, &jwt.payload, &rsa).into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            names,
            [
                "HS256 with JWK JSON",
                "HS256 with SPKI DER",
                "HS256 with SPKI PEM",
                "HS256 with SPKI PEM without newline",
                "HS256 with PKCS#1 PEM"
            ]
        );
        let oct = json!({"kty": "oct", "k": "c2VjcmV0"});
        let names: Vec<String> =
            confusion_variants(&jwt.header, &jwt.payload, &oct).into_iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["HS256 with JWK JSON"]);
    }
}
