//! [`Jwk`] and [`JwkSet`]: public keys as JWKS publishes them (RFC 7517), the form verifiers
//! fetch from `/.well-known/jwks.json`.

use serde::{Deserialize, Serialize};

/// A public key (or descriptor) as published in JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
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
    /// Key id.
    #[serde(default)]
    pub kid: String,
    /// Algorithm bound to the key.
    #[serde(default)]
    pub alg: String,
    /// Always `sig` in what keycard publishes; empty when a foreign JWK leaves it out.
    #[serde(rename = "use", default)]
    pub use_: String,
}

/// A JWK set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JwkSet {
    /// The public keys.
    pub keys: Vec<Jwk>,
}
