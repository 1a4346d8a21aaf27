//! [`Jwk`] and [`JwkSet`]: public keys as JWKS publishes them (RFC 7517), the form verifiers
//! fetch from `/.well-known/jwks.json`. With the `openapi` feature they are also the schemas
//! of that document in the server's OpenAPI description.

use serde::{Deserialize, Serialize};

/// A public key (or descriptor) as published in JWKS.
// `kid`, `alg` and `use` default to empty when a foreign JWK leaves them out; keycard always
// publishes them, so the schema marks them required.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Jwk {
    /// Key type: `OKP` (Ed25519), `EC` (P-256), `RSA`; `oct` only in an HS256 key's descriptor.
    pub kty: String,
    /// Curve, for OKP and EC keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key (OKP) or x coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// y coordinate (EC), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub y: Option<String>,
    /// Modulus (RSA), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub n: Option<String>,
    /// Public exponent (RSA), base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e: Option<String>,
    /// Key id, the `kid` header of tokens it signed.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub kid: String,
    /// Algorithm bound to the key: `EdDSA`, `ES256`, `RS256` or `HS256`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub alg: String,
    /// Always `sig` in what keycard publishes; empty when a foreign JWK leaves it out.
    #[serde(rename = "use", default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub use_: String,
}

impl Jwk {
    /// The RFC 7638 JWK thumbprint of a public key: base64url SHA-256 of its required members
    /// (`crv, kty, x` for OKP; `crv, kty, x, y` for EC; `e, kty, n` for RSA) as JSON in
    /// lexicographic order without whitespace. Every holder of the same key computes the same
    /// value, so it serves as a `kid` nobody has to hand out. `None` for a JWK missing a member
    /// (or of another key type).
    pub fn thumbprint(&self) -> Option<String> {
        let s = |v: &Option<String>| v.clone();
        let canonical = match self.kty.as_str() {
            "OKP" => serde_json::json!({"crv": s(&self.crv)?, "kty": "OKP", "x": s(&self.x)?}),
            "EC" => serde_json::json!({"crv": s(&self.crv)?, "kty": "EC", "x": s(&self.x)?, "y": s(&self.y)?}),
            "RSA" => serde_json::json!({"e": s(&self.e)?, "kty": "RSA", "n": s(&self.n)?}),
            _ => return None,
        };
        Some(thumbprint_of(&canonical))
    }
}

/// base64url(SHA-256(JSON)) of a canonical JWK, written without whitespace. Callers list the
/// members in lexicographic order, so the JSON is canonical whether or not serde_json's
/// `preserve_order` feature is on somewhere in the build.
pub(super) fn thumbprint_of(canonical: &serde_json::Value) -> String {
    use base64::Engine;
    let json = canonical.to_string();
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, json.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// A JWK set, as served at `/.well-known/jwks.json`: the active key and those still inside
/// their overlap window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct JwkSet {
    /// The public keys.
    pub keys: Vec<Jwk>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_jwk_serializes_use_by_its_name_and_leaves_absent_parts_out() {
        let jwk = Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some("AAAA".into()),
            y: None,
            n: None,
            e: None,
            kid: "k1".into(),
            alg: "EdDSA".into(),
            use_: "sig".into(),
        };
        let json = serde_json::to_string(&JwkSet { keys: vec![jwk.clone()] }).unwrap();
        assert_eq!(json, r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA","kid":"k1","alg":"EdDSA","use":"sig"}]}"#);
        // A foreign JWK without kid, alg or use still parses.
        let bare: Jwk = serde_json::from_str(r#"{"kty":"OKP","crv":"Ed25519","x":"AAAA","extra":1}"#).unwrap();
        assert_eq!((bare.kid.as_str(), bare.alg.as_str(), bare.use_.as_str()), ("", "", ""));
    }

    #[test]
    fn thumbprints_are_rfc_7638s() {
        // RFC 8037 appendix A.3: the thumbprint of its Ed25519 example key.
        let jwk: Jwk =
            serde_json::from_str(r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#)
                .unwrap();
        assert_eq!(jwk.thumbprint().as_deref(), Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"));
        // kid, alg and use are not part of it.
        let named = Jwk { kid: "k".into(), alg: "EdDSA".into(), use_: "sig".into(), ..jwk.clone() };
        assert_eq!(named.thumbprint(), jwk.thumbprint());
        assert_eq!(Jwk { x: None, ..jwk.clone() }.thumbprint(), None);
        assert_eq!(Jwk { kty: "oct".into(), ..jwk }.thumbprint(), None);
    }
}
