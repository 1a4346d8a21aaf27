//! [`VerifyingKey`]: a key that only verifies, parsed once into aws-lc-rs form; built from a
//! JWK, a public PEM, an HS256 secret or a [`SigningKey`](super::SigningKey).

use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{DecodingKey, DecodingKeyKind};

use super::{Jwk, KeyAlg, KeyError, MIN_HS256_SECRET_BYTES, RSA_MODULUS_BYTES, SigningKey, check_kid};

/// A key that verifies signatures only: key id, algorithm and decoding key. Built from a JWK
/// (resource servers), a public PEM, an HS256 secret, or a [`SigningKey`].
#[derive(Clone)]
pub struct VerifyingKey {
    kid: String,
    alg: KeyAlg,
    decoding: DecodingKey,
    prepared: Arc<Prepared>,
}

/// The key in the form aws-lc-rs verifies with, parsed once.
#[allow(clippy::large_enum_variant)] // built once per key and kept behind an Arc
enum Prepared {
    Public(ParsedPublicKey),
    Hmac(hmac::Key),
}

impl Prepared {
    /// Parses `decoding` for `alg`; `None` when aws-lc-rs refuses the key.
    fn new(alg: KeyAlg, decoding: &DecodingKey) -> Option<Self> {
        let public = |bytes: &[u8]| {
            let verification: &'static dyn aws_lc_rs::signature::VerificationAlgorithm = match alg {
                KeyAlg::EdDsa => &ED25519,
                KeyAlg::Es256 => &ECDSA_P256_SHA256_FIXED,
                KeyAlg::Rs256 => &RSA_PKCS1_2048_8192_SHA256,
                KeyAlg::Hs256 => return None,
            };
            ParsedPublicKey::new(verification, bytes).ok().map(Self::Public)
        };
        match (alg, decoding.kind()) {
            (KeyAlg::Hs256, DecodingKeyKind::SecretOrDer(secret)) => {
                Some(Self::Hmac(hmac::Key::new(hmac::HMAC_SHA256, secret)))
            }
            (KeyAlg::Rs256, DecodingKeyKind::RsaModulusExponent { n, e }) => {
                let spki = PublicKeyComponents { n: n.as_slice(), e: e.as_slice() }.as_der().ok()?;
                public(spki.as_ref())
            }
            (_, DecodingKeyKind::SecretOrDer(bytes)) => public(bytes),
            (_, DecodingKeyKind::RsaModulusExponent { .. }) => None,
        }
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The decoding key of an HS256 key is the secret itself.
        f.debug_struct("VerifyingKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl From<&SigningKey> for VerifyingKey {
    fn from(key: &SigningKey) -> Self {
        key.verifying_key().clone()
    }
}

impl VerifyingKey {
    /// The verifying half of a signing key.
    pub fn from_signing_key(key: &SigningKey) -> Self {
        key.into()
    }

    /// A public key from a JWK: `OKP`/`Ed25519` (EdDSA), `EC`/`P-256` (ES256) or `RSA` (RS256).
    /// The JWK must name its `alg`, and it must match the key type; `oct` (secret) keys are
    /// refused: a shared secret never travels in a key set.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self, KeyError> {
        crate::install_crypto_provider();
        let bad = |reason: &str| KeyError::InvalidJwk { kid: jwk.kid.clone(), reason: reason.to_owned() };
        check_kid(&jwk.kid).map_err(|_| bad("kid must be 1 to 128 visible ASCII characters"))?;
        if !jwk.use_.is_empty() && jwk.use_ != "sig" {
            return Err(bad("use is not \"sig\""));
        }
        let alg = KeyAlg::parse(&jwk.alg).ok_or_else(|| bad("alg is missing or not supported"))?;
        if alg.is_symmetric() || jwk.kty == "oct" {
            return Err(bad("secret (oct) keys are not accepted from a key set"));
        }
        if jwk.kty != alg.kty() {
            return Err(bad("kty does not match alg"));
        }
        let field = |value: &Option<String>, name: &str| -> Result<Vec<u8>, KeyError> {
            let text = value.as_deref().ok_or_else(|| bad(&format!("{name} is missing")))?;
            URL_SAFE_NO_PAD.decode(text).map_err(|_| bad(&format!("{name} is not base64url")))
        };
        let decoding = match alg {
            KeyAlg::EdDsa => {
                if jwk.crv.as_deref() != Some("Ed25519") {
                    return Err(bad("crv must be Ed25519"));
                }
                let x = field(&jwk.x, "x")?;
                if x.len() != 32 {
                    return Err(bad("x must be 32 bytes"));
                }
                DecodingKey::from_ed_der(&x)
            }
            KeyAlg::Es256 => {
                if jwk.crv.as_deref() != Some("P-256") {
                    return Err(bad("crv must be P-256"));
                }
                let (x, y) = (field(&jwk.x, "x")?, field(&jwk.y, "y")?);
                if x.len() != 32 || y.len() != 32 {
                    return Err(bad("x and y must be 32 bytes"));
                }
                let point = [&[0x04][..], &x, &y].concat();
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &point).map_err(|_| bad("not a point on P-256"))?;
                DecodingKey::from_ec_der(&point)
            }
            KeyAlg::Rs256 => {
                let (n, e) = (field(&jwk.n, "n")?, field(&jwk.e, "e")?);
                let significant = n.iter().skip_while(|b| **b == 0).count();
                if !RSA_MODULUS_BYTES.contains(&significant) {
                    return Err(bad("the RSA modulus must be 2048 to 8192 bits"));
                }
                if e.is_empty() || e.len() > 8 {
                    return Err(bad("e is not a plausible public exponent"));
                }
                DecodingKey::from_rsa_raw_components(&n, &e)
            }
            KeyAlg::Hs256 => return Err(bad("secret (oct) keys are not accepted from a key set")),
        };
        Self::assemble(jwk.kid.clone(), alg, decoding).ok_or_else(|| bad("aws-lc-rs refuses the key"))
    }

    /// A public key from a `-----BEGIN PUBLIC KEY-----` (SubjectPublicKeyInfo) PEM document.
    pub fn from_public_pem(kid: impl Into<String>, alg: KeyAlg, pem_text: &[u8]) -> Result<Self, KeyError> {
        crate::install_crypto_provider();
        let kid = kid.into();
        check_kid(&kid)?;
        let bad = |reason| KeyError::InvalidPem { kid: kid.clone(), reason };
        let parsed = pem::parse(pem_text).map_err(|_| bad("not a PEM document"))?;
        if parsed.tag() != "PUBLIC KEY" {
            return Err(bad("not a public key (expected BEGIN PUBLIC KEY)"));
        }
        let wrong = |_| bad("not a public key of this algorithm");
        let decoding = match alg {
            KeyAlg::EdDsa => DecodingKey::from_ed_pem(pem_text).map_err(wrong)?,
            KeyAlg::Es256 => {
                let key = DecodingKey::from_ec_pem(pem_text).map_err(wrong)?;
                let point = key.try_get_as_bytes().map_err(wrong)?;
                ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).map_err(|_| bad("not a P-256 public key"))?;
                key
            }
            KeyAlg::Rs256 => DecodingKey::from_rsa_pem(pem_text).map_err(wrong)?,
            KeyAlg::Hs256 => return Err(bad("HS256 keys are raw secrets, not PEM documents")),
        };
        Self::assemble(kid.clone(), alg, decoding).ok_or_else(|| bad("not a public key of this algorithm"))
    }

    /// An HS256 key from a shared secret of at least 32 bytes.
    pub fn hs256(kid: impl Into<String>, secret: &[u8]) -> Result<Self, KeyError> {
        crate::install_crypto_provider();
        let kid = kid.into();
        check_kid(&kid)?;
        if secret.len() < MIN_HS256_SECRET_BYTES {
            return Err(KeyError::WeakSecret { kid });
        }
        let decoding = DecodingKey::from_secret(secret);
        Self::assemble(kid.clone(), KeyAlg::Hs256, decoding).ok_or(KeyError::WeakSecret { kid })
    }

    pub(super) fn assemble(kid: String, alg: KeyAlg, decoding: DecodingKey) -> Option<Self> {
        let prepared = Arc::new(Prepared::new(alg, &decoding)?);
        Some(Self { kid, alg, decoding, prepared })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The algorithm bound to this key.
    pub fn alg(&self) -> KeyAlg {
        self.alg
    }

    /// The jsonwebtoken decoding key.
    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }

    /// Verifies `signature_b64` (base64url) over `message` with this key and its own algorithm,
    /// as `jsonwebtoken::crypto::verify` would, without re-parsing the key.
    pub fn verify(&self, signature_b64: &str, message: &[u8]) -> bool {
        // Ed25519, P-256 and HMAC-SHA-256 signatures fit on the stack; RSA ones (up to 1 KiB) do not.
        let mut stack = [0u8; 96];
        let mut heap = Vec::new();
        let buffer: &mut [u8] = if base64::decoded_len_estimate(signature_b64.len()) <= stack.len() {
            &mut stack
        } else {
            heap.resize(base64::decoded_len_estimate(signature_b64.len()), 0);
            &mut heap
        };
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(signature_b64, buffer) else { return false };
        let signature = &buffer[..len];
        match self.prepared.as_ref() {
            Prepared::Public(key) => key.verify_sig(message, signature).is_ok(),
            Prepared::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::test_support::{OPENSSL_ED25519, OPENSSL_ED25519_PUB, OPENSSL_P256, OPENSSL_P256_PUB, claims};

    #[test]
    fn an_ec_jwk_off_the_curve_is_refused() {
        let es = SigningKey::generate(KeyAlg::Es256).unwrap();
        let mut jwk = es.jwk().clone();
        jwk.y = Some(URL_SAFE_NO_PAD.encode([1u8; 32]));
        assert!(matches!(VerifyingKey::from_jwk(&jwk), Err(KeyError::InvalidJwk { .. })));
    }

    #[test]
    fn pem_files_from_openssl_genpkey_sign_and_their_public_pems_verify() {
        for (alg, private, public) in
            [(KeyAlg::EdDsa, OPENSSL_ED25519, OPENSSL_ED25519_PUB), (KeyAlg::Es256, OPENSSL_P256, OPENSSL_P256_PUB)]
        {
            let key = SigningKey::from_pem("k1", alg, private.as_bytes()).unwrap();
            let verifier = VerifyingKey::from_public_pem("k1", alg, public.as_bytes()).unwrap();
            let token = key.sign(&claims()).unwrap();
            let (message, signature) = token.rsplit_once('.').unwrap();
            assert!(verifier.verify(signature, message.as_bytes()), "{alg}");
            assert!(VerifyingKey::from_public_pem("k1", alg, private.as_bytes()).is_err(), "{alg}: private as public");
        }
        assert!(VerifyingKey::from_public_pem("k1", KeyAlg::Es256, OPENSSL_ED25519_PUB.as_bytes()).is_err());
        assert!(SigningKey::from_pem("k1", KeyAlg::EdDsa, OPENSSL_P256.as_bytes()).is_err());
    }

    #[test]
    fn an_hs256_verifying_key_needs_a_long_enough_secret() {
        assert!(matches!(VerifyingKey::hs256("k", &[0; 16]), Err(KeyError::WeakSecret { .. })));
        assert_eq!(VerifyingKey::hs256("k", &[0; 32]).unwrap().alg(), KeyAlg::Hs256);
    }

    #[test]
    fn verify_agrees_with_jsonwebtoken_for_every_algorithm_and_input() {
        for alg in KeyAlg::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let other = SigningKey::generate(alg).unwrap();
            let token = key.sign(&claims()).unwrap();
            let (message, signature) = token.rsplit_once('.').unwrap();
            let foreign = other.sign(&claims()).unwrap();
            let (_, foreign_signature) = foreign.rsplit_once('.').unwrap();
            let padded = format!("{signature}=");
            let truncated = &signature[..signature.len() - 4];
            let huge = "A".repeat(4000);
            let from_jwks = key.public_jwk().map(|jwk| VerifyingKey::from_jwk(jwk).unwrap());
            for (why, signature, message) in [
                ("good", signature, message),
                ("other key", foreign_signature, message),
                ("other message", signature, "x.y"),
                ("padded", padded.as_str(), message),
                ("truncated", truncated, message),
                ("not base64", "!!!!", message),
                ("empty", "", message),
                ("huge", huge.as_str(), message),
            ] {
                let expected = jsonwebtoken::crypto::verify(
                    signature,
                    message.as_bytes(),
                    key.verifying_key().decoding_key(),
                    alg.algorithm(),
                )
                .unwrap_or(false);
                assert_eq!(key.verifying_key().verify(signature, message.as_bytes()), expected, "{alg}: {why}");
                if let Some(public) = &from_jwks {
                    assert_eq!(public.verify(signature, message.as_bytes()), expected, "{alg} from JWK: {why}");
                }
                assert_eq!(expected, why == "good", "{alg}: {why}");
            }
        }
    }
}
