//! The validation checklist of SPEC.md, in the order it is cheapest to fail.
//!
//! Claims are checked here, on the payload the signature covers, rather than by the JOSE crate's
//! `Validation`: that never checks `typ`, `iat`, `jti` or `sid`, and its own claim pass costs more
//! than the signature for HS256 (docs/BENCHMARKS.md). The signature itself is checked by
//! `jsonwebtoken::crypto::verify` with the algorithm of the key found by `kid`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

use crate::claims::AccessClaims;
use crate::keys::KeyRing;
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
    kid: Option<std::borrow::Cow<'a, str>>,
    typ: Option<&'a str>,
    crit: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct RawClaims {
    iss: Option<String>,
    aud: Option<Audience>,
    sub: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nbf: Option<i64>,
    jti: Option<String>,
    sid: Option<String>,
    scope: Option<String>,
    role: Option<String>,
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

    /// Runs the whole checklist except "session not revoked" (the caller knows its sessions).
    pub fn validate(&self, ring: &KeyRing, token: &str, now: i64) -> Result<AccessClaims, TokenError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge);
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(signature_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header_json = URL_SAFE_NO_PAD.decode(header_b64).map_err(|_| TokenError::Malformed)?;
        let header: JoseHeader<'_> = serde_json::from_slice(&header_json).map_err(|_| TokenError::Malformed)?;
        let key = header.kid.as_deref().and_then(|kid| ring.get(kid)).ok_or(TokenError::UnknownKey)?;
        if header.alg != Some(key.alg().as_str()) {
            return Err(TokenError::AlgorithmMismatch);
        }
        if header.crit.is_some() {
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
        let payload = URL_SAFE_NO_PAD.decode(payload_b64).map_err(|_| TokenError::Malformed)?;
        let raw: RawClaims = serde_json::from_slice(&payload).map_err(|_| TokenError::Malformed)?;
        self.check_claims(raw, now)
    }

    fn check_claims(&self, raw: RawClaims, now: i64) -> Result<AccessClaims, TokenError> {
        let iss = raw.iss.ok_or(TokenError::MissingClaim("iss"))?;
        if iss != self.issuer {
            return Err(TokenError::WrongIssuer);
        }
        let aud_ok = match raw.aud.ok_or(TokenError::MissingClaim("aud"))? {
            Audience::One(a) => a == self.audience,
            Audience::Many(list) => list.iter().any(|a| *a == self.audience),
        };
        if !aud_ok {
            return Err(TokenError::WrongAudience);
        }
        let exp = raw.exp.ok_or(TokenError::MissingClaim("exp"))?;
        let iat = raw.iat.ok_or(TokenError::MissingClaim("iat"))?;
        let nbf = raw.nbf.ok_or(TokenError::MissingClaim("nbf"))?;
        if exp.saturating_add(self.leeway) <= now {
            return Err(TokenError::Expired);
        }
        if nbf.saturating_sub(self.leeway) > now {
            return Err(TokenError::NotYetValid);
        }
        if iat.saturating_sub(self.leeway) > now {
            return Err(TokenError::IssuedInFuture);
        }
        let sub = raw.sub.filter(|s| !s.is_empty()).ok_or(TokenError::MissingClaim("sub"))?;
        let sid = raw.sid.filter(|s| !s.is_empty()).ok_or(TokenError::MissingClaim("sid"))?;
        let jti = raw.jti.filter(|s| !s.is_empty()).ok_or(TokenError::MissingClaim("jti"))?;
        Ok(AccessClaims {
            iss,
            aud: self.audience.clone(),
            sub,
            exp,
            iat,
            nbf,
            jti,
            sid,
            scope: raw.scope,
            role: raw.role,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use serde_json::json;

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
}
