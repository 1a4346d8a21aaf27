//! Signing keys bound to their algorithm, the public-key-only verifying side, and the key sets
//! validation looks keys up in: a signer's [`KeyRing`] and a verifier's [`PublicKeys`].
//!
//! The algorithm belongs to the key: a token's `alg` header is only compared against it, never
//! used to choose how to verify (that is what blocks `alg: none` and HS256-with-a-public-key).
//! Key generation, signing and verifying use aws-lc-rs on keys parsed once, when the key is
//! loaded. Signing serializes the JWS compact form itself (RFC 7515: base64url header, `.`,
//! base64url payload, `.`, base64url signature) with the header encoded once per key:
//! `jsonwebtoken::encode` rebuilds its signer on every call, and for Ed25519 that re-parses the
//! PKCS#8 key and recomputes the public point, a second scalar multiplication per token.
//! Verifying calls the same aws-lc-rs primitives jsonwebtoken's backend calls, but on keys
//! parsed once when the [`VerifyingKey`] is built: `jsonwebtoken::crypto::verify` rebuilds its verifier on
//! every call (a boxed verifier, a copy of the key, the HMAC key schedule, the RSA key parse),
//! which cost more than the whole claim check for HS256 and about 20 % for RS256
//! (docs/BENCHMARKS.md). HS256 keys are shared secrets: they sign and verify, but never appear
//! in JWKS.
//!
//! Files by concern: [`KeyAlg`] in `alg.rs`; stored [`KeyMaterial`] (generated or from PEM) in
//! `material.rs`; [`SigningKey`] in `signing.rs`; [`VerifyingKey`] in `verifying.rs`; [`Jwk`] and
//! [`JwkSet`] in `jwk.rs`; [`KeySource`], [`PublicKeys`] and [`KeyRing`] in `ring.rs`. Everything
//! is re-exported here: the paths are `keycard_core::keys::…`.

mod alg;
mod jwk;
mod material;
mod ring;
mod signing;
mod verifying;

pub use alg::KeyAlg;
pub use jwk::{Jwk, JwkSet};
pub use material::KeyMaterial;
pub use ring::{KeyRing, KeySource, PublicKeys};
pub use signing::SigningKey;
pub use verifying::VerifyingKey;

/// Errors building or using keys. Messages name the key id, never key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The stored key material does not parse as a key of its algorithm.
    #[error("key {kid}: the key material is not a valid {alg} private key")]
    InvalidMaterial {
        /// The key id.
        kid: String,
        /// The algorithm it claims.
        alg: &'static str,
    },
    /// An HS256 secret shorter than [`MIN_HS256_SECRET_BYTES`].
    #[error("key {kid}: an HS256 secret must be at least 32 bytes")]
    WeakSecret {
        /// The key id.
        kid: String,
    },
    /// A PEM document that is not an unencrypted PKCS#8 key of the expected kind.
    #[error("key {kid}: {reason}")]
    InvalidPem {
        /// The key id.
        kid: String,
        /// What is wrong, and how to fix it.
        reason: &'static str,
    },
    /// A JWK that cannot be used as a verifying key.
    #[error("JWK {kid:?}: {reason}")]
    InvalidJwk {
        /// The JWK's `kid` (may be empty).
        kid: String,
        /// What is wrong.
        reason: String,
    },
    /// A key id that is empty, longer than 128 bytes, or not visible ASCII.
    #[error("key id {0:?} must be 1 to 128 visible ASCII characters")]
    InvalidKid(String),
    /// The key generator failed (no OS randomness).
    #[error("could not generate a key")]
    Generate,
    /// The ring names an active key it does not hold.
    #[error("the active key {0} is not in the key ring")]
    NoActiveKey(String),
    /// A key handed over as a file (PEM or HS256 secret) that keycard cannot use; the reason
    /// says why and how to fix it, and never quotes the key.
    #[error("{reason}")]
    Unusable {
        /// What is wrong, and how to fix it.
        reason: String,
    },
    /// Signing failed inside the crypto library.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

/// Smallest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash output size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// RSA modulus sizes accepted, in bytes (2048 to 8192 bits).
const RSA_MODULUS_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;

/// Checks a key id: 1 to 128 visible ASCII characters.
fn check_kid(kid: &str) -> Result<(), KeyError> {
    let ok = !kid.is_empty() && kid.len() <= 128 && kid.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(KeyError::InvalidKid(kid.chars().take(140).collect())) }
}

/// What the tests of the key files share: claims to sign and the openssl-made PEM documents.
#[cfg(test)]
mod test_support {
    use jsonwebtoken::DecodingKey;

    use super::{KeyAlg, SigningKey};
    use crate::claims::AccessClaims;

    pub(super) fn claims() -> AccessClaims {
        AccessClaims::new("https://id.example", "api", "u", "s", crate::now_unix(), 900)
    }

    /// The verifying key a resource server holding only the JWK (or, for HS256, the secret)
    /// would build with jsonwebtoken alone.
    pub(super) fn jsonwebtoken_public_key(key: &SigningKey) -> DecodingKey {
        let jwk = key.jwk();
        let field = |v: &Option<String>| v.clone().unwrap();
        match key.alg() {
            KeyAlg::EdDsa => DecodingKey::from_ed_components(&field(&jwk.x)).unwrap(),
            KeyAlg::Es256 => DecodingKey::from_ec_components(&field(&jwk.x), &field(&jwk.y)).unwrap(),
            KeyAlg::Rs256 => DecodingKey::from_rsa_components(&field(&jwk.n), &field(&jwk.e)).unwrap(),
            KeyAlg::Hs256 => DecodingKey::from_secret(&key.material().private_der),
        }
    }

    pub(super) const OPENSSL_ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMZtSbXDVlRmcGQ5lPtla+mU0xet+NU/zzNbbo3px2Jx
-----END PRIVATE KEY-----";
    pub(super) const OPENSSL_ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAVkqJNg51zFSyUorA+yRimuD+9jBiCCUTf++7KrD/K04=
-----END PUBLIC KEY-----";
    pub(super) const OPENSSL_P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYuQR807M34xAM2Yq
ccgPIEGYwEcHRhq4zhGi2Z0/SY2hRANCAATqjUjQdBsDpD3ynPPzpNBZTpSCqPIf
M9W3LSGP+gZqEOpyXWtJPsUE08IRnDu+CpK6PZFvceptSE1/Ye2kngwh
-----END PRIVATE KEY-----";
    pub(super) const OPENSSL_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE6o1I0HQbA6Q98pzz86TQWU6Ugqjy
HzPVty0hj/oGahDqcl1rST7FBNPCEZw7vgqSuj2Rb3HqbUhNf2HtpJ4MIQ==
-----END PUBLIC KEY-----";
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_shows_key_material() {
        for alg in KeyAlg::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let secret = &key.material().private_der;
            let shown = format!(
                "{:?} {:?} {:?} {:?}",
                key.material(),
                key,
                key.verifying_key(),
                PublicKeys::from(&KeyRing::new(vec![key.clone()], key.kid().to_owned()).unwrap())
            );
            assert!(!shown.contains("private_der"), "{alg}: {shown}");
            assert!(!shown.contains(&format!("{:?}", &secret[..8])), "{alg}: {shown}");
        }
    }
}
