//! Signing keys bound to their algorithm, and the key ring that signs and verifies with them.
//!
//! The algorithm belongs to the key: a token's `alg` header is only compared against it, never
//! used to choose how to verify (that is what blocks `alg: none` and HS256-with-a-public-key).

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header};
use serde::Serialize;

use crate::ACCESS_TOKEN_TYP;
use crate::claims::AccessClaims;

/// Algorithms keycard signs with. Each key has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// Ed25519 signatures (the default): resource servers verify with public keys only.
    EdDsa,
}

impl KeyAlg {
    /// The JOSE name (`alg` header value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
        }
    }

    /// Parses a JOSE name; unknown names are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            _ => None,
        }
    }

    fn jwt_algorithm(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
        }
    }
}

/// Errors building or using keys.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The stored key material does not parse as a key of its algorithm.
    #[error("key {kid}: the key material is not a valid {alg} private key")]
    InvalidMaterial {
        /// The key id.
        kid: String,
        /// The algorithm it claims.
        alg: &'static str,
    },
    /// The key generator failed (no OS randomness).
    #[error("could not generate a key")]
    Generate,
    /// The ring names an active key it does not hold.
    #[error("the active key {0} is not in the key ring")]
    NoActiveKey(String),
    /// Signing failed inside the crypto library.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// A signing key in the form the store keeps: id, algorithm, private material (PKCS#8 DER).
#[derive(Clone)]
pub struct KeyMaterial {
    /// Key id, as in the `kid` header.
    pub kid: String,
    /// The algorithm bound to this key.
    pub alg: KeyAlg,
    /// Private key, PKCS#8 DER. Secret: `Debug` does not print it.
    pub private_der: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// A usable key: its material parsed once into signing and verifying forms, plus its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    alg: KeyAlg,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
    material: KeyMaterial,
}

/// A public key as published in JWKS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Jwk {
    /// Key type (`OKP` for Ed25519).
    pub kty: String,
    /// Curve, for OKP and EC keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key bytes (base64url), for OKP and EC keys.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Key id.
    pub kid: String,
    /// Algorithm bound to the key.
    pub alg: String,
    /// Always `sig`.
    #[serde(rename = "use")]
    pub use_: String,
}

/// A JWK set, as served at `/.well-known/jwks.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct JwkSet {
    /// The public keys.
    pub keys: Vec<Jwk>,
}

impl SigningKey {
    /// A new Ed25519 key with a random `kid`.
    pub fn generate_ed25519() -> Result<Self, KeyError> {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Generate)?;
        Self::from_material(KeyMaterial { kid: random_kid(), alg: KeyAlg::EdDsa, private_der: pkcs8.as_ref().to_vec() })
    }

    /// Parses stored material into a usable key.
    pub fn from_material(material: KeyMaterial) -> Result<Self, KeyError> {
        crate::install_crypto_provider();
        let invalid = || KeyError::InvalidMaterial { kid: material.kid.clone(), alg: material.alg.as_str() };
        match material.alg {
            KeyAlg::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(&material.private_der).map_err(|_| invalid())?;
                let public = pair.public_key().as_ref();
                let jwk = Jwk {
                    kty: "OKP".into(),
                    crv: Some("Ed25519".into()),
                    x: Some(URL_SAFE_NO_PAD.encode(public)),
                    kid: material.kid.clone(),
                    alg: material.alg.as_str().into(),
                    use_: "sig".into(),
                };
                Ok(Self {
                    kid: material.kid.clone(),
                    alg: material.alg,
                    encoding: EncodingKey::from_ed_der(&material.private_der),
                    decoding: DecodingKey::from_ed_der(public),
                    jwk,
                    material,
                })
            }
        }
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm bound to this key.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The public half as a JWK.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The material, for the store.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// Verifies `signature_b64` over `message` with this key and its own algorithm.
    pub(crate) fn verify(&self, signature_b64: &str, message: &[u8]) -> bool {
        jsonwebtoken::crypto::verify(signature_b64, message, &self.decoding, self.alg.jwt_algorithm()).unwrap_or(false)
    }

    fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let mut header = Header::new(self.alg.jwt_algorithm());
        header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
        header.kid = Some(self.kid.clone());
        Ok(jsonwebtoken::encode(&header, claims, &self.encoding)?)
    }
}

fn random_kid() -> String {
    let mut bytes = [0u8; 12];
    // Without OS randomness no key can be made at all; the generator call above fails first.
    #[allow(clippy::expect_used)]
    getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The keys a server signs with and the keys a verifier accepts, looked up by `kid`.
#[derive(Clone)]
pub struct KeyRing {
    keys: HashMap<String, Arc<SigningKey>>,
    active: Arc<SigningKey>,
}

impl KeyRing {
    /// A ring of `keys` that signs with the one whose kid is `active`.
    pub fn new(keys: Vec<SigningKey>, active: String) -> Result<Self, KeyError> {
        let keys: HashMap<_, _> = keys.into_iter().map(|k| (k.kid.clone(), Arc::new(k))).collect();
        let active = keys.get(&active).cloned().ok_or(KeyError::NoActiveKey(active))?;
        Ok(Self { keys, active })
    }

    /// Signs access-token claims with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        self.active.sign(claims)
    }

    /// The key with this id, if the ring holds it.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.get(kid).map(|k| k.as_ref())
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// Every public key, for JWKS.
    pub fn jwks(&self) -> JwkSet {
        let mut keys: Vec<Jwk> = self.keys.values().map(|k| k.jwk.clone()).collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        JwkSet { keys }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn material_round_trips_to_the_same_public_key() {
        let key = SigningKey::generate_ed25519().unwrap();
        let again = SigningKey::from_material(key.material().clone()).unwrap();
        assert_eq!(key.jwk(), again.jwk());
        assert_eq!(key.jwk().alg, "EdDSA");
    }

    #[test]
    fn garbage_material_is_an_error_not_a_panic() {
        let err =
            SigningKey::from_material(KeyMaterial { kid: "k".into(), alg: KeyAlg::EdDsa, private_der: vec![1, 2, 3] });
        assert!(matches!(err, Err(KeyError::InvalidMaterial { .. })));
    }

    #[test]
    fn debug_of_material_hides_the_private_key() {
        let key = SigningKey::generate_ed25519().unwrap();
        let shown = format!("{:?}", key.material());
        assert!(!shown.contains("private_der"));
    }
}
