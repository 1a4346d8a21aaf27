//! [`KeyMaterial`]: a key in the form the store keeps (kid, algorithm, PKCS#8 DER or HS256
//! secret), and where it comes from: generated with a random kid, or read from a PKCS#8 PEM
//! document. Parsing the material into a usable key is [`SigningKey::from_material`](super::SigningKey::from_material).

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{KeyAlg, KeyError, MIN_HS256_SECRET_BYTES};

/// A signing key in the form the store keeps: id, algorithm, private material.
///
/// `private_der` is the PKCS#8 DER private key for EdDSA, ES256 and RS256, and the raw secret
/// (at least 32 bytes) for HS256.
#[derive(Clone)]
pub struct KeyMaterial {
    /// Key id, as in the `kid` header.
    pub kid: String,
    /// The algorithm bound to this key.
    pub alg: KeyAlg,
    /// Private key (PKCS#8 DER) or HS256 secret. Secret: `Debug` does not print it.
    pub private_der: Vec<u8>,
}

impl std::fmt::Debug for KeyMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyMaterial").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl KeyMaterial {
    /// New material of `alg` with a random `kid`: Ed25519, P-256, RSA 2048 or a 32-byte HS256
    /// secret.
    pub(super) fn generate(alg: KeyAlg) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let private_der = match alg {
            KeyAlg::EdDsa => Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| KeyError::Generate)?.as_ref().to_vec(),
            KeyAlg::Es256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(|_| KeyError::Generate)?
                .as_ref()
                .to_vec(),
            KeyAlg::Rs256 => {
                let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
                pair.as_der().map_err(|_| KeyError::Generate)?.as_ref().to_vec()
            }
            KeyAlg::Hs256 => {
                let mut secret = vec![0u8; MIN_HS256_SECRET_BYTES];
                rng.fill(&mut secret).map_err(|_| KeyError::Generate)?;
                secret
            }
        };
        Ok(Self { kid: random_kid()?, alg, private_der })
    }

    /// The DER of an unencrypted PKCS#8 private key PEM (`-----BEGIN PRIVATE KEY-----`); other
    /// PEM kinds are refused with a hint. Whether the DER is a key of `alg` is checked when it
    /// is parsed.
    pub(super) fn from_pem(kid: String, alg: KeyAlg, pem_text: &[u8]) -> Result<Self, KeyError> {
        let bad = |reason| KeyError::InvalidPem { kid: kid.clone(), reason };
        if alg.is_symmetric() {
            return Err(bad("HS256 keys are raw secrets, not PEM documents"));
        }
        let parsed = pem::parse(pem_text).map_err(|_| bad("not a PEM document"))?;
        match parsed.tag() {
            "PRIVATE KEY" => {}
            "RSA PRIVATE KEY" | "EC PRIVATE KEY" => {
                return Err(bad("a PKCS#1/SEC1 key; convert it with `openssl pkcs8 -topk8 -nocrypt`"));
            }
            "ENCRYPTED PRIVATE KEY" => return Err(bad("an encrypted key; give keycard the decrypted PKCS#8 key")),
            _ => return Err(bad("not a PKCS#8 private key (expected BEGIN PRIVATE KEY)")),
        }
        Ok(Self { kid, alg, private_der: parsed.into_contents() })
    }
}

fn random_kid() -> Result<String, KeyError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|_| KeyError::Generate)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;

    #[test]
    fn pkcs8_pem_keys_load_and_match_their_der() {
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256, KeyAlg::Rs256] {
            let key = SigningKey::generate(alg).unwrap();
            let text = pem::encode(&pem::Pem::new("PRIVATE KEY", key.material().private_der.clone()));
            let loaded = SigningKey::from_pem(key.kid(), alg, text.as_bytes()).unwrap();
            assert_eq!(loaded.jwk(), key.jwk(), "{alg}");
        }
    }

    #[test]
    fn pem_that_is_not_plain_pkcs8_is_refused_with_a_hint() {
        let rsa = SigningKey::generate(KeyAlg::Rs256).unwrap();
        let der = rsa.material().private_der.clone();
        for (tag, alg) in [
            ("RSA PRIVATE KEY", KeyAlg::Rs256),
            ("EC PRIVATE KEY", KeyAlg::Es256),
            ("ENCRYPTED PRIVATE KEY", KeyAlg::Rs256),
            ("PUBLIC KEY", KeyAlg::Rs256),
        ] {
            let text = pem::encode(&pem::Pem::new(tag, der.clone()));
            assert!(
                matches!(SigningKey::from_pem("k", alg, text.as_bytes()), Err(KeyError::InvalidPem { .. })),
                "{tag}"
            );
        }
        assert!(SigningKey::from_pem("k", KeyAlg::Rs256, b"not pem").is_err());
        assert!(SigningKey::from_pem("k", KeyAlg::Hs256, b"").is_err());
    }
}
