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
}
