//! Access-token parsing and validation (`Validator::validate`) against a real key ring.
//!
//! Input: a mode byte, then
//! - mode even: the token text itself (any bytes, lossily UTF-8);
//! - mode odd: a key index byte, then `header JSON \n payload JSON`, signed here with that key
//!   (EdDSA, ES256, HS256 or RS256) whatever the header says, so the claim checks behind the
//!   signature are reached too.
//!
//! Besides "never panics", every accepted token is checked against the checklist of SPEC.md by an
//! independent reading of its header and claims, and the three key sources (ring, its public
//! keys, the JWKS a resource server builds) must agree.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_core::TokenError;
use keycard_core::claims::AccessClaims;
use keycard_fuzz::{AUD, ISS, KIDS, LEEWAY, NOW, fixture, forge};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else { return };
    let fx = fixture();
    let token = if mode % 2 == 0 {
        String::from_utf8_lossy(rest).into_owned()
    } else {
        let Some((&key_byte, body)) = rest.split_first() else { return };
        // RS256 signing costs ~1 ms: pick it rarely so the fuzzer keeps its pace.
        let key = match key_byte % 16 {
            0..=4 => &fx.keys[0],
            5..=9 => &fx.keys[1],
            10..=14 => &fx.keys[2],
            _ => &fx.keys[3],
        };
        let (header, payload) = match body.iter().position(|b| *b == b'\n') {
            Some(i) => (&body[..i], &body[i + 1..]),
            None => (body, &b""[..]),
        };
        forge(key, header, payload)
    };
    for now in [NOW, keycard_core::now_unix()] {
        let by_ring = fx.validator.validate(&fx.ring, &token, now);
        let by_public = fx.validator.validate(&fx.public, &token, now);
        assert_eq!(by_ring, by_public, "the ring and its public keys disagree");
        let by_jwks = fx.validator.validate(&fx.from_jwks, &token, now);
        match (&by_ring, &by_jwks) {
            // HS256 secrets are never in JWKS: only their kid lookup may differ.
            (a, Err(TokenError::UnknownKey)) if a != &Err(TokenError::UnknownKey) => {
                assert_eq!(kid_of(&token).as_deref(), Some(KIDS[2]), "a public key is missing from JWKS");
            }
            (a, b) => assert_eq!(a, b, "the ring and the JWKS disagree"),
        }
        if let Ok(claims) = by_ring {
            check_accepted(&token, &claims, now);
        }
    }
});

/// Everything SPEC.md requires of an accepted token, read independently of the validator.
fn check_accepted(token: &str, claims: &AccessClaims, now: i64) {
    let fx = fixture();
    assert!(token.len() <= keycard_core::MAX_TOKEN_BYTES, "an oversized token was accepted");
    let parts: Vec<&str> = token.split('.').collect();
    assert_eq!(parts.len(), 3, "accepted a token that is not three parts");
    // Lossy: like serde_json, the validator does not check UTF-8 inside fields it ignores.
    let header: Value =
        serde_json::from_str(&String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(parts[0]).expect("header b64")))
            .expect("accepted a header that is not JSON");
    let kid = header["kid"].as_str().expect("accepted a token without kid");
    let key = fx.ring.get(kid).expect("accepted a token with an unknown kid");
    assert_eq!(header["alg"].as_str(), Some(key.alg().as_str()), "alg does not match the key");
    let typ = header["typ"].as_str().expect("accepted a token without typ").to_ascii_lowercase();
    assert!(typ == "at+jwt" || typ == "application/at+jwt", "accepted typ {typ:?}");
    assert!(header.get("crit").is_none(), "accepted a crit header");
    let message = &token[..parts[0].len() + 1 + parts[1].len()];
    assert!(key.verifying_key().verify(parts[2], message.as_bytes()), "accepted a bad signature");

    let payload: Value =
        serde_json::from_str(&String::from_utf8_lossy(&URL_SAFE_NO_PAD.decode(parts[1]).expect("payload b64")))
            .expect("accepted a payload that is not JSON");
    assert_eq!(payload["iss"].as_str(), Some(ISS));
    let aud_ok = match &payload["aud"] {
        Value::String(a) => a == AUD,
        Value::Array(list) => list.iter().any(|a| a.as_str() == Some(AUD)),
        _ => false,
    };
    assert!(aud_ok, "accepted aud {:?}", payload["aud"]);
    let int = |name: &str| payload[name].as_i64().unwrap_or_else(|| panic!("accepted without integer {name}"));
    let (exp, nbf, iat) = (int("exp"), int("nbf"), int("iat"));
    assert!(exp.saturating_add(LEEWAY) > now, "accepted an expired token");
    assert!(nbf.saturating_sub(LEEWAY) <= now, "accepted a token before nbf");
    assert!(iat.saturating_sub(LEEWAY) <= now, "accepted a token issued in the future");
    for name in ["sub", "sid", "jti"] {
        assert!(payload[name].as_str().is_some_and(|s| !s.is_empty()), "accepted without {name}");
    }
    assert_eq!((claims.exp, claims.nbf, claims.iat), (exp, nbf, iat));
    assert_eq!(Some(claims.sub.as_str()), payload["sub"].as_str());
    assert_eq!(Some(claims.sid.as_str()), payload["sid"].as_str());
}

fn kid_of(token: &str) -> Option<String> {
    let header = URL_SAFE_NO_PAD.decode(token.split('.').next()?).ok()?;
    serde_json::from_str::<Value>(&String::from_utf8_lossy(&header)).ok()?.get("kid")?.as_str().map(str::to_owned)
}
