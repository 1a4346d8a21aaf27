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

impl KeyMaterial {
    /// The private key of a PEM document of any kind keycard signs with, its algorithm told by
    /// the key itself, as PKCS#8 DER (the form the store keeps): PKCS#8 Ed25519, P-256 or RSA
    /// (`BEGIN PRIVATE KEY`), SEC1 P-256 (`BEGIN EC PRIVATE KEY`, an `EC PARAMETERS` block
    /// before it allowed, as `openssl ecparam -genkey` writes) or PKCS#1 RSA (`BEGIN RSA PRIVATE
    /// KEY`); RSA from 2048 to 8192 bits. The kid is left as `kid`; errors never quote the key.
    pub(super) fn from_any_pem(kid: String, pem_text: &[u8]) -> Result<Self, KeyError> {
        let bad = |reason: &str| KeyError::Unusable { reason: reason.to_owned() };
        let blocks = pem::parse_many(pem_text).map_err(|_| bad("not a PEM document (expected BEGIN PRIVATE KEY)"))?;
        let mut keys = blocks.iter().filter(|b| b.tag() != "EC PARAMETERS");
        let (Some(block), None) = (keys.next(), keys.next()) else {
            return Err(bad(if blocks.is_empty() {
                "not a PEM document (expected BEGIN PRIVATE KEY)"
            } else {
                "more than one key in one PEM file: give each key its own file"
            }));
        };
        let der = block.contents();
        let rsa_reason = |e: aws_lc_rs::error::KeyRejected| {
            if e.description_() == "TooSmall" {
                bad("an RSA key shorter than 2048 bits: use at least 2048")
            } else {
                bad("an RSA key keycard cannot use (2048 to 8192 bits are supported)")
            }
        };
        let (alg, private_der) = match block.tag() {
            "PRIVATE KEY" => {
                if Ed25519KeyPair::from_pkcs8(der).is_ok() {
                    (KeyAlg::EdDsa, der.to_vec())
                } else if EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).is_ok() {
                    (KeyAlg::Es256, der.to_vec())
                } else if is_pkcs8_rsa(der) {
                    let pair = RsaKeyPair::from_pkcs8(der).map_err(rsa_reason)?;
                    (
                        KeyAlg::Rs256,
                        pair.as_der().map_err(|_| bad("the RSA key cannot be re-encoded"))?.as_ref().to_vec(),
                    )
                } else {
                    return Err(bad("a PKCS#8 key that is not Ed25519, P-256 or RSA (keycard signs with those only)"));
                }
            }
            "EC PRIVATE KEY" => {
                let pair = EcdsaKeyPair::from_private_key_der(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                    .map_err(|_| bad("an EC key that is not on P-256 (keycard signs ES256 only)"))?;
                let pkcs8 = pair.to_pkcs8v1().map_err(|_| bad("the EC key cannot be re-encoded"))?;
                (KeyAlg::Es256, pkcs8.as_ref().to_vec())
            }
            "RSA PRIVATE KEY" => {
                let pair = RsaKeyPair::from_der(der).map_err(rsa_reason)?;
                (KeyAlg::Rs256, pair.as_der().map_err(|_| bad("the RSA key cannot be re-encoded"))?.as_ref().to_vec())
            }
            "ENCRYPTED PRIVATE KEY" => {
                return Err(bad("an encrypted key: give keycard the decrypted key (openssl pkey -in FILE)"));
            }
            "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => {
                return Err(bad("a public key or certificate: keycard needs the private key to sign"));
            }
            _ => return Err(bad("not a private key (expected BEGIN PRIVATE KEY)")),
        };
        Ok(Self { kid, alg, private_der })
    }
}

/// Whether PKCS#8 DER names the rsaEncryption algorithm (OID 1.2.840.113549.1.1.1), so that a
/// too-short RSA key is told apart from a key of another kind.
fn is_pkcs8_rsa(der: &[u8]) -> bool {
    const RSA_OID: [u8; 11] = [0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    der.get(..64).unwrap_or(der).windows(RSA_OID.len()).any(|w| w == RSA_OID)
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

    const RSA_PKCS8: &str = include_str!("testdata/rsa-pkcs8.pem");
    const RSA_PKCS1: &str = include_str!("testdata/rsa-pkcs1.pem");
    const P256_SEC1: &str = include_str!("testdata/p256-sec1-with-params.pem");
    const P384_SEC1: &str = include_str!("testdata/p384-sec1.pem");
    const RSA_1024: &str = include_str!("testdata/rsa1024.pem");

    #[test]
    fn key_files_of_every_kind_load_with_their_algorithm_and_thumbprint_kid() {
        use crate::keys::test_support::{OPENSSL_ED25519, OPENSSL_P256};
        // Thumbprints computed independently (python hashlib over openssl's public numbers).
        let rsa = SigningKey::from_key_file(RSA_PKCS8.as_bytes()).unwrap();
        assert_eq!((rsa.alg(), rsa.kid()), (KeyAlg::Rs256, "QzLOWL8GX8O5rcRj35S1gMuk6FZoQclI-B0hU3JXH3c"));
        let pkcs1 = SigningKey::from_key_file(RSA_PKCS1.as_bytes()).unwrap();
        assert_eq!(pkcs1.jwk(), rsa.jwk(), "PKCS#1 and PKCS#8 of one key are one key");
        let p256 = SigningKey::from_key_file(P256_SEC1.as_bytes()).unwrap();
        assert_eq!((p256.alg(), p256.kid()), (KeyAlg::Es256, "KjEp2tMFXNnbC-1yYvC9gP1cR15jjwrFF_9toWWL9Gk"));
        assert_eq!(SigningKey::from_key_file(OPENSSL_P256.as_bytes()).unwrap().alg(), KeyAlg::Es256);
        let ed = SigningKey::from_key_file(OPENSSL_ED25519.as_bytes()).unwrap();
        assert_eq!((ed.alg(), ed.kid()), (KeyAlg::EdDsa, ed.thumbprint().as_str()));
        // What the store keeps is PKCS#8 either way: it reloads as the same key.
        for key in [&rsa, &pkcs1, &p256, &ed] {
            assert_eq!(SigningKey::from_material(key.material().clone()).unwrap().jwk(), key.jwk());
        }
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256, KeyAlg::Rs256] {
            let generated = SigningKey::generate(alg).unwrap();
            let text = pem::encode(&pem::Pem::new("PRIVATE KEY", generated.material().private_der.clone()));
            let loaded = SigningKey::from_key_file(text.as_bytes()).unwrap();
            assert_eq!((loaded.alg(), loaded.kid()), (alg, generated.thumbprint().as_str()), "{alg}");
        }
    }

    #[test]
    fn unusable_key_files_are_refused_with_a_reason_that_never_quotes_the_key() {
        let public = "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEAVkqJNg51zFSyUorA+yRimuD+9jBiCCUTf++7KrD/K04=\n-----END PUBLIC KEY-----\n";
        let truncated = &RSA_PKCS8[..RSA_PKCS8.len() / 2];
        let encrypted = RSA_PKCS8.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        let two = format!("{RSA_PKCS8}{RSA_PKCS1}");
        let cases: [(&str, &[u8], &str); 8] = [
            ("P-384", P384_SEC1.as_bytes(), "P-256"),
            ("RSA 1024", RSA_1024.as_bytes(), "2048"),
            ("public key", public.as_bytes(), "public key"),
            ("truncated", truncated.as_bytes(), "PEM"),
            ("encrypted", encrypted.as_bytes(), "encrypted"),
            ("two keys", two.as_bytes(), "more than one key"),
            ("garbage", b"\x00\x01 not a key at all", "PEM"),
            ("empty", b"", "PEM"),
        ];
        for (name, text, expected) in cases {
            let err = SigningKey::from_key_file(text).err().unwrap_or_else(|| panic!("{name} loaded")).to_string();
            assert!(err.contains(expected), "{name}: {err}");
            assert!(!err.contains("MII") && !err.contains("-----"), "{name} quoted: {err}");
        }
        // Key material of the wrong shape inside a valid PEM block.
        let junk = pem::encode(&pem::Pem::new("PRIVATE KEY", vec![0x30, 0x03, 0x02, 0x01, 0x00]));
        assert!(
            SigningKey::from_key_file(junk.as_bytes()).unwrap_err().to_string().contains("not Ed25519, P-256 or RSA")
        );
    }

    #[test]
    fn hs256_secrets_are_named_by_a_thumbprint_that_hides_them() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let key = SigningKey::from_hs256_secret(secret).unwrap();
        assert_eq!(key.alg(), KeyAlg::Hs256);
        assert_eq!(key.kid(), SigningKey::from_hs256_secret(secret).unwrap().kid(), "deterministic");
        assert_ne!(key.kid(), SigningKey::from_hs256_secret(b"0123456789abcdef0123456789abcdeF").unwrap().kid());
        assert!(!key.kid().contains("0123456789abcdef") && key.kid().len() == 43);
        let short = SigningKey::from_hs256_secret(&secret[..31]).unwrap_err().to_string();
        assert!(short.contains("31 bytes") && short.contains("at least 32"), "{short}");
    }
}
