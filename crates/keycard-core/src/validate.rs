//! The validation checklist of SPEC.md, in the order it is cheapest to fail.
//!
//! Claims are checked here, on the payload the signature covers, rather than by the JOSE crate's
//! `Validation`: that never checks `typ`, `iat`, `jti` or `sid`, and its own claim pass costs more
//! than the signature for HS256 (docs/BENCHMARKS.md). The signature itself is checked by
//! [`crate::keys::VerifyingKey::verify`] with the algorithm of the key found by `kid` in any
//! [`KeySource`] (a signer's `KeyRing` or a resource server's `PublicKeys`); the header's `alg`
//! is only compared with it. Claims are parsed borrowing from the payload, so only what the
//! result keeps is copied.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use std::borrow::Cow;

use serde::Deserialize;

use crate::claims::AccessClaims;
use crate::keys::KeySource;
use crate::{ACCESS_TOKEN_TYP, MAX_TOKEN_BYTES};

/// Why a token was rejected. Every variant means 401 `invalid_token`; the text is safe to log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Longer than [`MAX_TOKEN_BYTES`].
    #[error("token is larger than 8 KiB")]
    TooLarge,
    /// Not three base64url parts with a JSON header and payload.
    #[error("token is malformed")]
    Malformed,
    /// The header names no `kid`, or one the key ring does not hold.
    #[error("token is signed by an unknown key")]
    UnknownKey,
    /// The header's `alg` is not the algorithm bound to the key (includes `none`).
    #[error("token algorithm does not match its key")]
    AlgorithmMismatch,
    /// The header carries `crit` extensions keycard does not understand.
    #[error("token has unsupported critical header parameters")]
    UnsupportedCritical,
    /// The header's `typ` is not `at+jwt`.
    #[error("token is not an access token")]
    WrongType,
    /// The signature does not verify.
    #[error("token signature is invalid")]
    BadSignature,
    /// A required claim is missing or has the wrong type.
    #[error("token lacks the {0} claim")]
    MissingClaim(&'static str),
    /// `iss` is not this issuer.
    #[error("token issuer is not accepted")]
    WrongIssuer,
    /// `aud` does not include this audience.
    #[error("token audience is not accepted")]
    WrongAudience,
    /// `exp` has passed.
    #[error("token has expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token is not valid yet")]
    NotYetValid,
    /// `iat` is in the future.
    #[error("token was issued in the future")]
    IssuedInFuture,
    /// The session (`sid`) was revoked, or the user no longer exists.
    #[error("token's session has been revoked")]
    Revoked,
}

/// Issuer, audience and clock leeway a token must match.
#[derive(Debug, Clone)]
pub struct Validator {
    issuer: String,
    audience: String,
    leeway: i64,
}

#[derive(Deserialize)]
struct JoseHeader<'a> {
    alg: Option<&'a str>,
    #[serde(borrow)]
    kid: Option<BorrowedStr<'a>>,
    typ: Option<&'a str>,
    /// Whether the header names `crit` at all: keycard understands no extension, so any `crit`
    /// (an array, and equally the invalid `null` or `[]` of RFC 7515 §4.1.11) is refused.
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` for a member that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

/// `aud`: one string or a list. Deserialized by hand: serde's `untagged` buffers the value and
/// retries each variant, which cost more than the HS256 signature check (docs/BENCHMARKS.md).
enum Audience<'a> {
    One(Cow<'a, str>),
    Many(Vec<Cow<'a, str>>),
}

impl Audience<'_> {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(a) => a == audience,
            Self::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Audience<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> serde::de::Visitor<'de> for Visit<'a> {
            type Value = Audience<'a>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string or a list of strings")
            }
            fn visit_borrowed_str<E: serde::de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Audience::One(Cow::Borrowed(v)))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Audience::One(Cow::Owned(v.to_owned())))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut list = Vec::new();
                while let Some(BorrowedStr(item)) = seq.next_element()? {
                    list.push(item);
                }
                Ok(Audience::Many(list))
            }
        }
        d.deserialize_any(Visit(std::marker::PhantomData))
    }
}

/// A string that borrows from the input unless it holds escapes. `#[serde(borrow)]` does not
/// reach through an `Option`: an `Option<Cow<str>>` field always allocates (serde#2016), an
/// `Option<BorrowedStr>` does not.
struct BorrowedStr<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for BorrowedStr<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Inner<'a>(#[serde(borrow)] Cow<'a, str>);
        Inner::deserialize(d).map(|Inner(s)| Self(s))
    }
}

/// The claims as they come, borrowing from the decoded payload: only what the result keeps is
/// copied, once.
#[derive(Deserialize)]
struct RawClaims<'a> {
    #[serde(borrow)]
    iss: Option<BorrowedStr<'a>>,
    #[serde(borrow)]
    aud: Option<Audience<'a>>,
    #[serde(borrow)]
    sub: Option<BorrowedStr<'a>>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    #[serde(borrow)]
    jti: Option<BorrowedStr<'a>>,
    #[serde(borrow)]
    sid: Option<BorrowedStr<'a>>,
    #[serde(borrow)]
    client_id: Option<BorrowedStr<'a>>,
    #[serde(borrow)]
    scope: Option<BorrowedStr<'a>>,
    #[serde(borrow)]
    role: Option<BorrowedStr<'a>>,
    email_verified: Option<bool>,
    /// `{"jkt": …}` of a DPoP-bound token; any other form of `cnf` is malformed.
    cnf: Option<crate::dpop::Confirmation>,
    #[serde(default)]
    amr: crate::amr::Amr,
    auth_time: Option<i64>,
}

/// Decodes base64url `text` into `stack` when it fits, else into `heap`.
fn decode_part<'b>(text: &str, stack: &'b mut [u8], heap: &'b mut Vec<u8>) -> Result<&'b [u8], TokenError> {
    if base64::decoded_len_estimate(text.len()) <= stack.len() {
        let len = URL_SAFE_NO_PAD.decode_slice(text, stack).map_err(|_| TokenError::Malformed)?;
        Ok(&stack[..len])
    } else {
        URL_SAFE_NO_PAD.decode_vec(text, heap).map_err(|_| TokenError::Malformed)?;
        Ok(heap)
    }
}

impl Validator {
    /// Accept tokens from `issuer` for `audience`, with `leeway_secs` of clock skew.
    pub fn new(issuer: &str, audience: &str, leeway_secs: u64) -> Self {
        Self {
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            leeway: i64::try_from(leeway_secs).unwrap_or(i64::MAX / 2),
        }
    }

    /// The accepted issuer.
    pub fn issuer(&self) -> &str {
        &self.issuer
    }

    /// The accepted audience.
    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// The clock leeway, in seconds.
    pub fn leeway_secs(&self) -> i64 {
        self.leeway
    }

    /// Runs the whole checklist except "session not revoked" (the caller knows its sessions),
    /// looking the key up by `kid` in `keys` (a `KeyRing`, `PublicKeys`, or an `Arc` of either).
    pub fn validate<K: KeySource + ?Sized>(&self, keys: &K, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        // Headers (~60 bytes) and typical payloads (~250) are decoded on the stack, not through
        // an allocation.
        let (mut header_stack, mut header_heap) = ([0u8; 256], Vec::new());
        let header_json = decode_part(header_b64, &mut header_stack, &mut header_heap)?;
        let header: JoseHeader<'_> = serde_json::from_slice(header_json).map_err(|_| TokenError::Malformed)?;
        let kid = header.kid.as_ref().map(|kid| kid.0.as_ref());
        let key = kid.and_then(|kid| keys.verifying_key(kid)).ok_or(TokenError::UnknownKey)?;
        if header.alg != Some(key.alg().as_str()) {
            return Err(TokenError::AlgorithmMismatch);
        }
        if header.crit {
            return Err(TokenError::UnsupportedCritical);
        }
        // RFC 9068 allows the media-type form too.
        if !matches!(header.typ, Some(t) if t.eq_ignore_ascii_case(ACCESS_TOKEN_TYP) || t.eq_ignore_ascii_case("application/at+jwt"))
        {
            return Err(TokenError::WrongType);
        }
        let message_len = header_b64.len() + 1 + payload_b64.len();
        if !key.verify(signature_b64, &token.as_bytes()[..message_len]) {
            return Err(TokenError::BadSignature);
        }
        let (mut payload_stack, mut payload_heap) = ([0u8; 1024], Vec::new());
        let payload = decode_part(payload_b64, &mut payload_stack, &mut payload_heap)?;
        let raw: RawClaims = serde_json::from_slice(payload).map_err(|_| TokenError::Malformed)?;
        self.check_claims(raw, now)
    }

    fn check_claims(&self, raw: RawClaims<'_>, now: i64) -> Result<AccessClaims, TokenError> {
        if raw.iss.ok_or(TokenError::MissingClaim("iss"))?.0 != self.issuer.as_str() {
            return Err(TokenError::WrongIssuer);
        }
        if !raw.aud.ok_or(TokenError::MissingClaim("aud"))?.contains(&self.audience) {
            return Err(TokenError::WrongAudience);
        }
        let exp = raw.exp.ok_or(TokenError::MissingClaim("exp"))?;
        let iat = raw.iat.ok_or(TokenError::MissingClaim("iat"))?;
        let nbf = raw.nbf.ok_or(TokenError::MissingClaim("nbf"))?;
        check_times(exp, nbf, iat, now, self.leeway)?;
        let required = |value: Option<BorrowedStr<'_>>, name| match value {
            Some(BorrowedStr(v)) if !v.is_empty() => Ok(v.into_owned()),
            _ => Err(TokenError::MissingClaim(name)),
        };
        let sub = required(raw.sub, "sub")?;
        let sid = required(raw.sid, "sid")?;
        let jti = required(raw.jti, "jti")?;
        Ok(AccessClaims {
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sub,
            exp,
            iat,
            nbf,
            jti,
            sid,
            client_id: raw.client_id.map(|s| s.0.into_owned()),
            scope: raw.scope.map(|s| s.0.into_owned()),
            role: raw.role.map(|s| s.0.into_owned()),
            email_verified: raw.email_verified,
            cnf: raw.cnf,
            amr: raw.amr,
            auth_time: raw.auth_time,
        })
    }
}

/// The time checks of validation: `exp` not passed, `nbf` and `iat` not in the future, each with
/// `leeway` seconds of allowance. Also for callers that re-check claims validated earlier.
pub fn check_times(exp: i64, nbf: i64, iat: i64, now: i64, leeway: i64) -> Result<(), TokenError> {
    if exp.saturating_add(leeway) <= now {
        return Err(TokenError::Expired);
    }
    if nbf.saturating_sub(leeway) > now {
        return Err(TokenError::NotYetValid);
    }
    if iat.saturating_sub(leeway) > now {
        return Err(TokenError::IssuedInFuture);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{KeyAlg, KeyRing, PublicKeys, SigningKey};
    use serde_json::json;
    use std::sync::Arc;

    const ISS: &str = "https://id.example";
    const AUD: &str = "api";

    fn ring() -> KeyRing {
        let key = SigningKey::generate_ed25519().unwrap();
        let kid = key.kid().to_owned();
        KeyRing::new(vec![key], kid).unwrap()
    }

    fn b64(v: &serde_json::Value) -> String {
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    }

    /// A token whose header and payload are arbitrary JSON, signed by the ring's active key.
    fn forge(ring: &KeyRing, header: serde_json::Value, claims: serde_json::Value) -> String {
        let message = format!("{}.{}", b64(&header), b64(&claims));
        let key = jsonwebtoken::EncodingKey::from_ed_der(&ring.active().material().private_der);
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA).unwrap();
        format!("{message}.{sig}")
    }

    fn good_claims(now: i64) -> serde_json::Value {
        json!({"iss": ISS, "aud": AUD, "sub": "u", "exp": now + 60, "iat": now, "nbf": now, "jti": "j", "sid": "s"})
    }

    #[test]
    fn the_cnf_claim_round_trips_and_another_binding_is_malformed() {
        let ring = ring();
        let now = crate::now_unix();
        let validator = Validator::new(ISS, AUD, 30);
        let mut claims = AccessClaims::new(ISS, AUD, "u", "s", now, 900);
        let bearer = validator.validate(&ring, &ring.sign(&claims).unwrap(), now).unwrap();
        assert_eq!(bearer.cnf, None);
        assert!(!serde_json::to_string(&bearer).unwrap().contains("cnf"), "absent, not null");
        claims.cnf = Some(crate::dpop::Confirmation { jkt: "thumb".into() });
        assert_eq!(serde_json::to_value(&claims).unwrap()["cnf"], json!({"jkt": "thumb"}));
        let bound = validator.validate(&ring, &ring.sign(&claims).unwrap(), now).unwrap();
        assert_eq!(bound.cnf, claims.cnf);
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": ring.active().kid()});
        let mut other = good_claims(now);
        other["cnf"] = json!({"x5t#S256": "abc"});
        assert_eq!(validator.validate(&ring, &forge(&ring, header, other), now), Err(TokenError::Malformed));
    }

    #[test]
    fn a_token_signed_by_the_ring_validates() {
        let ring = ring();
        let now = crate::now_unix();
        let token = ring.sign(&AccessClaims::new(ISS, AUD, "u", "s", now, 900)).unwrap();
        let claims = Validator::new(ISS, AUD, 30).validate(&ring, &token, now).unwrap();
        assert_eq!((claims.sub.as_str(), claims.sid.as_str()), ("u", "s"));
    }

    #[test]
    fn each_broken_rule_is_rejected_with_its_reason() {
        let ring = ring();
        let kid = ring.active().kid().to_owned();
        let now = crate::now_unix();
        let v = Validator::new(ISS, AUD, 30);
        let hdr = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
        let with = |k: &str, val: serde_json::Value| {
            let mut c = good_claims(now);
            c[k] = val;
            c
        };
        let without = |k: &str| {
            let mut c = good_claims(now);
            c.as_object_mut().unwrap().remove(k);
            c
        };
        let cases: Vec<(&str, String, TokenError)> = vec![
            (
                "alg none",
                forge(&ring, json!({"alg": "none", "typ": "at+jwt", "kid": kid}), good_claims(now)),
                TokenError::AlgorithmMismatch,
            ),
            (
                "alg HS256",
                forge(&ring, json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}), good_claims(now)),
                TokenError::AlgorithmMismatch,
            ),
            (
                "unknown kid",
                forge(&ring, json!({"alg": "EdDSA", "typ": "at+jwt", "kid": "nope"}), good_claims(now)),
                TokenError::UnknownKey,
            ),
            (
                "no kid",
                forge(&ring, json!({"alg": "EdDSA", "typ": "at+jwt"}), good_claims(now)),
                TokenError::UnknownKey,
            ),
            (
                "typ JWT",
                forge(&ring, json!({"alg": "EdDSA", "typ": "JWT", "kid": kid}), good_claims(now)),
                TokenError::WrongType,
            ),
            ("no typ", forge(&ring, json!({"alg": "EdDSA", "kid": kid}), good_claims(now)), TokenError::WrongType),
            (
                "crit",
                forge(&ring, json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": ["b64"]}), good_claims(now)),
                TokenError::UnsupportedCritical,
            ),
            (
                "crit null",
                forge(&ring, json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": null}), good_claims(now)),
                TokenError::UnsupportedCritical,
            ),
            (
                "crit empty",
                forge(&ring, json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "crit": []}), good_claims(now)),
                TokenError::UnsupportedCritical,
            ),
            ("wrong iss", forge(&ring, hdr.clone(), with("iss", json!("https://evil"))), TokenError::WrongIssuer),
            ("wrong aud", forge(&ring, hdr.clone(), with("aud", json!("other"))), TokenError::WrongAudience),
            ("expired", forge(&ring, hdr.clone(), with("exp", json!(now - 31))), TokenError::Expired),
            ("future nbf", forge(&ring, hdr.clone(), with("nbf", json!(now + 31))), TokenError::NotYetValid),
            ("future iat", forge(&ring, hdr.clone(), with("iat", json!(now + 31))), TokenError::IssuedInFuture),
            ("no iat", forge(&ring, hdr.clone(), without("iat")), TokenError::MissingClaim("iat")),
            ("no sid", forge(&ring, hdr.clone(), without("sid")), TokenError::MissingClaim("sid")),
            ("no jti", forge(&ring, hdr.clone(), without("jti")), TokenError::MissingClaim("jti")),
            ("no sub", forge(&ring, hdr.clone(), without("sub")), TokenError::MissingClaim("sub")),
            ("string exp", forge(&ring, hdr.clone(), with("exp", json!("soon"))), TokenError::Malformed),
            ("garbage", "a.b.c".into(), TokenError::Malformed),
            ("two parts", "a.b".into(), TokenError::Malformed),
            ("huge", "a".repeat(MAX_TOKEN_BYTES + 1), TokenError::TooLarge),
        ];
        for (why, token, expected) in cases {
            assert_eq!(v.validate(&ring, &token, now), Err(expected), "{why}");
        }
    }

    #[test]
    fn a_tampered_payload_fails_the_signature() {
        let ring = ring();
        let now = crate::now_unix();
        let token = ring.sign(&AccessClaims::new(ISS, AUD, "u", "s", now, 900)).unwrap();
        let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
        parts[1] = b64(&with_sub(&parts[1], "admin"));
        let tampered = parts.join(".");
        assert_eq!(Validator::new(ISS, AUD, 30).validate(&ring, &tampered, now), Err(TokenError::BadSignature));
    }

    fn with_sub(payload_b64: &str, sub: &str) -> serde_json::Value {
        let mut v: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload_b64).unwrap()).unwrap();
        v["sub"] = json!(sub);
        v
    }

    #[test]
    fn leeway_admits_small_clock_skew() {
        let ring = ring();
        let now = crate::now_unix();
        let token = ring.sign(&AccessClaims::new(ISS, AUD, "u", "s", now + 20, 900)).unwrap();
        assert!(Validator::new(ISS, AUD, 30).validate(&ring, &token, now).is_ok());
        assert_eq!(Validator::new(ISS, AUD, 0).validate(&ring, &token, now), Err(TokenError::NotYetValid));
    }

    /// A token with arbitrary header and claims, signed by `key` with the algorithm `as_alg`
    /// (which may differ from the key's own).
    fn forge_with(key: &SigningKey, as_alg: KeyAlg, header: serde_json::Value, claims: serde_json::Value) -> String {
        let message = format!("{}.{}", b64(&header), b64(&claims));
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding_key(), as_alg.algorithm()).unwrap();
        format!("{message}.{sig}")
    }

    fn keys_of_every_algorithm() -> Vec<SigningKey> {
        KeyAlg::ALL.iter().map(|alg| SigningKey::generate(*alg).unwrap()).collect()
    }

    #[test]
    fn every_algorithm_round_trips_through_the_ring_and_through_public_keys() {
        let now = crate::now_unix();
        let v = Validator::new(ISS, AUD, 30);
        for key in keys_of_every_algorithm() {
            let alg = key.alg();
            let ring = KeyRing::new(vec![key.clone()], key.kid().to_owned()).unwrap();
            let token = ring.sign(&AccessClaims::new(ISS, AUD, "u", "s", now, 900)).unwrap();
            assert_eq!(v.validate(&ring, &token, now).map(|c| c.sub), Ok("u".into()), "{alg} via ring");
            let shared = Arc::new(ring.clone());
            assert!(v.validate(&shared, &token, now).is_ok(), "{alg} via Arc<KeyRing>");
            assert!(v.validate(&PublicKeys::from(&ring), &token, now).is_ok(), "{alg} via PublicKeys");
            if !alg.is_symmetric() {
                let (public, _) = PublicKeys::from_jwk_set(&ring.jwks());
                assert!(v.validate(&public, &token, now).is_ok(), "{alg} via JWKS");
            }
        }
    }

    #[test]
    fn a_header_naming_another_algorithm_than_the_key_is_rejected_for_every_pair() {
        let now = crate::now_unix();
        let v = Validator::new(ISS, AUD, 30);
        let keys = keys_of_every_algorithm();
        let ring = KeyRing::new(keys.clone(), keys[0].kid().to_owned()).unwrap();
        for target in &keys {
            for signer in &keys {
                if signer.alg() == target.alg() {
                    continue;
                }
                // The attacker names the target's kid but another algorithm, and signs properly
                // with a key of that algorithm.
                let header = json!({"alg": signer.alg().as_str(), "typ": "at+jwt", "kid": target.kid()});
                let token = forge_with(signer, signer.alg(), header, good_claims(now));
                assert_eq!(
                    v.validate(&ring, &token, now),
                    Err(TokenError::AlgorithmMismatch),
                    "{} key, header {}",
                    target.alg(),
                    signer.alg()
                );
                // Naming the right algorithm but signing with another key type fails the signature.
                let header = json!({"alg": target.alg().as_str(), "typ": "at+jwt", "kid": target.kid()});
                let token = forge_with(signer, signer.alg(), header, good_claims(now));
                assert_eq!(v.validate(&ring, &token, now), Err(TokenError::BadSignature), "{} key", target.alg());
            }
            let none = format!(
                "{}.{}.",
                b64(&json!({"alg": "none", "typ": "at+jwt", "kid": target.kid()})),
                b64(&good_claims(now))
            );
            assert_eq!(v.validate(&ring, &none, now), Err(TokenError::AlgorithmMismatch), "none, {}", target.alg());
        }
    }

    #[test]
    fn hs256_signed_with_a_public_key_is_rejected() {
        let now = crate::now_unix();
        let v = Validator::new(ISS, AUD, 30);
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256, KeyAlg::Rs256] {
            let key = SigningKey::generate(alg).unwrap();
            let ring = KeyRing::new(vec![key.clone()], key.kid().to_owned()).unwrap();
            let public = PublicKeys::from_jwk_set(&ring.jwks()).0;
            let jwk_json = serde_json::to_vec(key.jwk()).unwrap();
            let raw = [key.jwk().x.clone(), key.jwk().n.clone()].into_iter().flatten().next().unwrap();
            let raw = URL_SAFE_NO_PAD.decode(raw).unwrap();
            // Every byte string an attacker might think a naive verifier would use as the secret.
            for secret in [jwk_json.clone(), raw.clone(), [raw.as_slice(), &[0u8; 32]].concat()] {
                let hmac = SigningKey::from_material(crate::keys::KeyMaterial {
                    kid: "attacker".into(),
                    alg: KeyAlg::Hs256,
                    private_der: [secret.as_slice(), &[0u8; 32]].concat()[..secret.len().max(32)].to_vec(),
                })
                .unwrap();
                for alg_named in ["HS256", alg.as_str()] {
                    let header = json!({"alg": alg_named, "typ": "at+jwt", "kid": key.kid()});
                    let token = forge_with(&hmac, KeyAlg::Hs256, header, good_claims(now));
                    let expected =
                        if alg_named == "HS256" { TokenError::AlgorithmMismatch } else { TokenError::BadSignature };
                    assert_eq!(v.validate(&ring, &token, now), Err(expected.clone()), "{alg}, header {alg_named}");
                    assert_eq!(v.validate(&public, &token, now), Err(expected), "{alg} public, header {alg_named}");
                }
            }
        }
    }

    #[test]
    fn a_tampered_payload_fails_the_signature_for_every_algorithm() {
        let now = crate::now_unix();
        for key in keys_of_every_algorithm() {
            let ring = KeyRing::new(vec![key.clone()], key.kid().to_owned()).unwrap();
            let token = ring.sign(&AccessClaims::new(ISS, AUD, "u", "s", now, 900)).unwrap();
            let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
            parts[1] = b64(&with_sub(&parts[1], "admin"));
            let tampered = parts.join(".");
            let result = Validator::new(ISS, AUD, 30).validate(&ring, &tampered, now);
            assert_eq!(result, Err(TokenError::BadSignature), "{}", key.alg());
        }
    }

    #[test]
    fn a_token_from_another_key_with_the_same_kid_fails_the_signature() {
        let now = crate::now_unix();
        for alg in KeyAlg::ALL {
            let ours = SigningKey::generate(alg).unwrap();
            let mut theirs = SigningKey::generate(alg).unwrap().material().clone();
            theirs.kid = ours.kid().to_owned();
            let theirs = SigningKey::from_material(theirs).unwrap();
            let ring = KeyRing::new(vec![ours.clone()], ours.kid().to_owned()).unwrap();
            let token = theirs.sign(&AccessClaims::new(ISS, AUD, "u", "s", now, 900)).unwrap();
            let result = Validator::new(ISS, AUD, 30).validate(&ring, &token, now);
            assert_eq!(result, Err(TokenError::BadSignature), "{alg}");
        }
    }

    #[test]
    fn a_removed_key_no_longer_validates_its_tokens() {
        let now = crate::now_unix();
        let (old, new) = (SigningKey::generate(KeyAlg::EdDsa).unwrap(), SigningKey::generate(KeyAlg::Es256).unwrap());
        let claims = AccessClaims::new(ISS, AUD, "u", "s", now, 900);
        let (old_token, new_token) = (old.sign(&claims).unwrap(), new.sign(&claims).unwrap());
        let mut keys = PublicKeys::new([old.verifying_key().clone(), new.verifying_key().clone()]);
        let v = Validator::new(ISS, AUD, 30);
        assert!(v.validate(&keys, &old_token, now).is_ok() && v.validate(&keys, &new_token, now).is_ok());
        keys.remove(old.kid());
        assert_eq!(v.validate(&keys, &old_token, now), Err(TokenError::UnknownKey));
        assert!(v.validate(&keys, &new_token, now).is_ok());
    }

    #[test]
    fn audience_may_be_a_list_and_claims_may_hold_json_escapes() {
        let ring = ring();
        let kid = ring.active().kid().to_owned();
        let now = crate::now_unix();
        let v = Validator::new(ISS, AUD, 30);
        let hdr = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid});
        let mut claims = good_claims(now);
        claims["aud"] = json!(["other", AUD]);
        assert!(v.validate(&ring, &forge(&ring, hdr.clone(), claims.clone()), now).is_ok(), "list");
        claims["aud"] = json!(["other"]);
        assert_eq!(v.validate(&ring, &forge(&ring, hdr.clone(), claims.clone()), now), Err(TokenError::WrongAudience));
        claims["aud"] = json!([1, 2]);
        assert_eq!(v.validate(&ring, &forge(&ring, hdr.clone(), claims.clone()), now), Err(TokenError::Malformed));
        // Escaped JSON strings are compared and returned decoded.
        let header = b64(&hdr);
        let payload = format!(
            r#"{{"iss":"https:\/\/id.example","aud":"ap\u0069","sub":"\u0075","exp":{},"iat":{now},"nbf":{now},"jti":"j","sid":"s\"1"}}"#,
            now + 60
        );
        let message = format!("{header}.{}", URL_SAFE_NO_PAD.encode(payload));
        let key = jsonwebtoken::EncodingKey::from_ed_der(&ring.active().material().private_der);
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA).unwrap();
        let claims = v.validate(&ring, &format!("{message}.{sig}"), now).unwrap();
        assert_eq!((claims.iss.as_str(), claims.sub.as_str(), claims.sid.as_str()), (ISS, "u", "s\"1"));
    }

    #[test]
    fn a_long_header_is_decoded_too() {
        let ring = ring();
        let now = crate::now_unix();
        let kid = ring.active().kid().to_owned();
        let header = json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid, "x-note": "n".repeat(400)});
        let token = forge(&ring, header, good_claims(now));
        assert!(Validator::new(ISS, AUD, 30).validate(&ring, &token, now).is_ok());
    }

    #[test]
    fn a_long_payload_and_an_escaped_kid_are_decoded_too() {
        let ring = ring();
        let now = crate::now_unix();
        let kid = ring.active().kid().to_owned();
        let v = Validator::new(ISS, AUD, 30);
        let mut claims = good_claims(now);
        claims["x-pad"] = json!("p".repeat(3000));
        let token = forge(&ring, json!({"alg": "EdDSA", "typ": "at+jwt", "kid": kid}), claims);
        assert!(token.len() < MAX_TOKEN_BYTES && v.validate(&ring, &token, now).is_ok());
        // The kid's first character as a JSON escape still names the key.
        let escaped = format!(r#"{{"alg":"EdDSA","typ":"at+jwt","kid":"\u{:04x}{}"}}"#, kid.as_bytes()[0], &kid[1..]);
        let message = format!("{}.{}", URL_SAFE_NO_PAD.encode(escaped), b64(&good_claims(now)));
        let key = jsonwebtoken::EncodingKey::from_ed_der(&ring.active().material().private_der);
        let sig = jsonwebtoken::crypto::sign(message.as_bytes(), &key, jsonwebtoken::Algorithm::EdDSA).unwrap();
        assert!(v.validate(&ring, &format!("{message}.{sig}"), now).is_ok());
    }
}
