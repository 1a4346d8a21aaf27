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

use std::collections::HashMap;
use std::sync::Arc;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair};
use aws_lc_rs::signature::{ED25519, KeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, DecodingKeyKind, Header};
use serde::{Deserialize, Serialize};

use crate::ACCESS_TOKEN_TYP;
use crate::claims::AccessClaims;

/// Smallest HS256 secret accepted, in bytes (RFC 7518 §3.2: at least the hash output size).
pub const MIN_HS256_SECRET_BYTES: usize = 32;

/// RSA modulus sizes accepted, in bytes (2048 to 8192 bits).
const RSA_MODULUS_BYTES: std::ops::RangeInclusive<usize> = 256..=1024;

/// Algorithms keycard signs and verifies with. Each key has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// Ed25519 signatures (the default): resource servers verify with public keys only.
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; keycard generates 2048-bit keys.
    Rs256,
    /// HMAC-SHA-256 with a shared secret: for a single service that holds the secret. Never
    /// published in JWKS.
    Hs256,
}

impl KeyAlg {
    /// Every supported algorithm.
    pub const ALL: [KeyAlg; 4] = [Self::EdDsa, Self::Es256, Self::Rs256, Self::Hs256];

    /// The JOSE name (`alg` header value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::Hs256 => "HS256",
        }
    }

    /// Parses a JOSE name; unknown names (including `none`) are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "HS256" => Some(Self::Hs256),
            _ => None,
        }
    }

    /// Whether keys of this algorithm are shared secrets (HS256) rather than key pairs.
    pub fn is_symmetric(self) -> bool {
        self == Self::Hs256
    }

    /// The matching jsonwebtoken algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
            Self::Hs256 => Algorithm::HS256,
        }
    }

    /// The JWK key type (`kty`) of keys of this algorithm.
    pub fn kty(self) -> &'static str {
        match self {
            Self::EdDsa => "OKP",
            Self::Es256 => "EC",
            Self::Rs256 => "RSA",
            Self::Hs256 => "oct",
        }
    }
}

impl std::fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

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
    /// Signing failed inside the crypto library.
    #[error("signing failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

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

/// A usable signing key: its material parsed once into signing and verifying forms, plus its JWK.
#[derive(Clone)]
pub struct SigningKey {
    signer: Arc<Signer>,
    /// `base64url({"typ":"at+jwt","alg":…,"kid":…})`, the first part of every token it signs.
    header_b64: Arc<str>,
    verifying: VerifyingKey,
    jwk: Jwk,
    material: KeyMaterial,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid()).field("alg", &self.alg()).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A new Ed25519 key with a random `kid`.
    pub fn generate_ed25519() -> Result<Self, KeyError> {
        Self::generate(KeyAlg::EdDsa)
    }

    /// A new key of `alg` with a random `kid`: Ed25519, P-256, RSA 2048 or a 32-byte HS256 secret.
    pub fn generate(alg: KeyAlg) -> Result<Self, KeyError> {
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
        Self::from_material(KeyMaterial { kid: random_kid()?, alg, private_der })
    }

    /// Loads an unencrypted PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`), the form secret
    /// managers and `openssl genpkey` hand keys over in. HS256 secrets are not PEM: build those
    /// with [`SigningKey::from_material`].
    pub fn from_pem(kid: impl Into<String>, alg: KeyAlg, pem_text: &[u8]) -> Result<Self, KeyError> {
        let kid = kid.into();
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
        Self::from_material(KeyMaterial { kid, alg, private_der: parsed.into_contents() })
    }

    /// Parses stored material into a usable key.
    pub fn from_material(material: KeyMaterial) -> Result<Self, KeyError> {
        crate::install_crypto_provider();
        check_kid(&material.kid)?;
        let invalid = || KeyError::InvalidMaterial { kid: material.kid.clone(), alg: material.alg.as_str() };
        let der = material.private_der.as_slice();
        let mut jwk = Jwk {
            kty: material.alg.kty().into(),
            crv: None,
            x: None,
            y: None,
            n: None,
            e: None,
            kid: material.kid.clone(),
            alg: material.alg.as_str().into(),
            use_: "sig".into(),
        };
        let (signer, decoding) = match material.alg {
            KeyAlg::EdDsa => {
                let pair = Ed25519KeyPair::from_pkcs8(der).map_err(|_| invalid())?;
                let public = pair.public_key().as_ref();
                jwk.crv = Some("Ed25519".into());
                jwk.x = Some(URL_SAFE_NO_PAD.encode(public));
                let decoding = DecodingKey::from_ed_der(public);
                (Signer::Ed25519(pair), decoding)
            }
            KeyAlg::Es256 => {
                let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).map_err(|_| invalid())?;
                // Uncompressed SEC1 point: 0x04 || x (32 bytes) || y (32 bytes).
                let point = pair.public_key().as_ref();
                let (x, y) = point.get(1..).filter(|xy| xy.len() == 64).ok_or_else(invalid)?.split_at(32);
                jwk.crv = Some("P-256".into());
                jwk.x = Some(URL_SAFE_NO_PAD.encode(x));
                jwk.y = Some(URL_SAFE_NO_PAD.encode(y));
                let decoding = DecodingKey::from_ec_der(point);
                (Signer::Ecdsa(pair), decoding)
            }
            KeyAlg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(|_| invalid())?;
                if !RSA_MODULUS_BYTES.contains(&pair.public_modulus_len()) {
                    return Err(invalid());
                }
                let parts = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
                jwk.n = Some(URL_SAFE_NO_PAD.encode(&parts.n));
                jwk.e = Some(URL_SAFE_NO_PAD.encode(&parts.e));
                (Signer::Rsa(pair), DecodingKey::from_rsa_raw_components(&parts.n, &parts.e))
            }
            KeyAlg::Hs256 => {
                if der.len() < MIN_HS256_SECRET_BYTES {
                    return Err(KeyError::WeakSecret { kid: material.kid.clone() });
                }
                (Signer::Hmac(hmac::Key::new(hmac::HMAC_SHA256, der)), DecodingKey::from_secret(der))
            }
        };
        let header_b64 = access_token_header(material.alg, &material.kid)?.into();
        let verifying = VerifyingKey::assemble(material.kid.clone(), material.alg, decoding).ok_or_else(invalid)?;
        Ok(Self { signer: Arc::new(signer), header_b64, verifying, jwk, material })
    }

    /// The key id.
    pub fn kid(&self) -> &str {
        &self.verifying.kid
    }

    /// The algorithm bound to this key.
    pub fn alg(&self) -> KeyAlg {
        self.verifying.alg
    }

    /// The key's JWK. For HS256 keys this is a descriptor (`kty: oct`, kid, alg) that holds no
    /// key material; [`SigningKey::public_jwk`] is what may be published.
    pub fn jwk(&self) -> &Jwk {
        &self.jwk
    }

    /// The public half as a JWK, for JWKS; `None` for HS256, whose secret is never published.
    pub fn public_jwk(&self) -> Option<&Jwk> {
        (!self.alg().is_symmetric()).then_some(&self.jwk)
    }

    /// The verifying half (for HS256, the same secret).
    pub fn verifying_key(&self) -> &VerifyingKey {
        &self.verifying
    }

    /// The material, for the store.
    pub fn material(&self) -> &KeyMaterial {
        &self.material
    }

    /// A jsonwebtoken encoding key of the same material (tests forge tokens with arbitrary
    /// headers through it).
    #[cfg(test)]
    pub(crate) fn encoding_key(&self) -> jsonwebtoken::EncodingKey {
        use jsonwebtoken::EncodingKey;
        let der = self.material.private_der.as_slice();
        match self.alg() {
            KeyAlg::EdDsa => EncodingKey::from_ed_der(der),
            KeyAlg::Es256 => EncodingKey::from_ec_der(der),
            KeyAlg::Rs256 => {
                EncodingKey::from_rsa_pem(pem::encode(&pem::Pem::new("PRIVATE KEY", der.to_vec())).as_bytes()).unwrap()
            }
            KeyAlg::Hs256 => EncodingKey::from_secret(der),
        }
    }

    /// Signs access-token claims with this key: header `{typ: "at+jwt", alg, kid}`, the JWS
    /// compact serialization (RFC 7515 §7.1) of the claims as JSON.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        let mut payload = Vec::with_capacity(320);
        serde_json::to_writer(&mut payload, claims).map_err(jsonwebtoken::errors::Error::from)?;
        let payload_b64_len = (payload.len() * 4).div_ceil(3);
        // The longest signature is RSA's (up to 1 KiB, 1366 characters); the others fit in 88.
        let mut token = String::with_capacity(self.header_b64.len() + payload_b64_len + 2 + 88);
        token.push_str(&self.header_b64);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let failed = |what: &str| jsonwebtoken::errors::Error::from(ErrorKind::Signing(what.to_owned()));
        let message = token.as_bytes();
        match self.signer.as_ref() {
            Signer::Ed25519(pair) => {
                let signature = pair.sign(message);
                push_b64(&mut token, signature.as_ref());
            }
            Signer::Ecdsa(pair) => {
                let signature = pair.sign(&SystemRandom::new(), message).map_err(|_| failed("ES256"))?;
                push_b64(&mut token, signature.as_ref());
            }
            Signer::Rsa(pair) => {
                let mut signature = vec![0u8; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature)
                    .map_err(|_| failed("RS256"))?;
                push_b64(&mut token, &signature);
            }
            Signer::Hmac(key) => {
                let tag = hmac::sign(key, message);
                push_b64(&mut token, tag.as_ref());
            }
        }
        Ok(token)
    }
}

/// The key in the form aws-lc-rs signs with, parsed once (none of these is `Clone`).
enum Signer {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Hmac(hmac::Key),
}

/// Appends `.` and the base64url form of `signature` to `token`.
fn push_b64(token: &mut String, signature: &[u8]) {
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, token);
}

/// The base64url JOSE header of every access token `kid` signs, exactly as jsonwebtoken
/// serializes it: `{"typ":"at+jwt","alg":…,"kid":…}`.
fn access_token_header(alg: KeyAlg, kid: &str) -> Result<String, KeyError> {
    let mut header = Header::new(alg.algorithm());
    header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
    header.kid = Some(kid.to_owned());
    let json = serde_json::to_vec(&header).map_err(|e| KeyError::Sign(e.into()))?;
    Ok(URL_SAFE_NO_PAD.encode(json))
}

fn random_kid() -> Result<String, KeyError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|_| KeyError::Generate)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

fn check_kid(kid: &str) -> Result<(), KeyError> {
    let ok = !kid.is_empty() && kid.len() <= 128 && kid.bytes().all(|b| b.is_ascii_graphic());
    if ok { Ok(()) } else { Err(KeyError::InvalidKid(kid.chars().take(140).collect())) }
}

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
        key.verifying.clone()
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

    fn assemble(kid: String, alg: KeyAlg, decoding: DecodingKey) -> Option<Self> {
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

/// Where validation looks keys up by `kid`.
pub trait KeySource {
    /// The verifying key with this id, if any.
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey>;
}

impl<T: KeySource + ?Sized> KeySource for &T {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        (**self).verifying_key(kid)
    }
}

impl<T: KeySource + ?Sized> KeySource for Arc<T> {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        (**self).verifying_key(kid)
    }
}

impl<T: KeySource + ?Sized> KeySource for Box<T> {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        (**self).verifying_key(kid)
    }
}

/// A set of verifying keys by `kid`: what a resource server accepts (from JWKS or configured).
#[derive(Debug, Clone, Default)]
pub struct PublicKeys {
    keys: HashMap<String, VerifyingKey>,
}

impl PublicKeys {
    /// A set of `keys`; a later key with the same kid replaces an earlier one.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self { keys: keys.into_iter().map(|k| (k.kid.clone(), k)).collect() }
    }

    /// The usable keys of a JWK set, and an error for each key left out (unsupported, malformed,
    /// a secret, or a kid already seen: the first key with a kid wins).
    pub fn from_jwk_set(set: &JwkSet) -> (Self, Vec<KeyError>) {
        let mut keys = HashMap::with_capacity(set.keys.len());
        let mut skipped = Vec::new();
        for jwk in &set.keys {
            match VerifyingKey::from_jwk(jwk) {
                Ok(key) if keys.contains_key(&key.kid) => skipped
                    .push(KeyError::InvalidJwk { kid: key.kid.clone(), reason: "duplicate kid in the key set".into() }),
                Ok(key) => {
                    keys.insert(key.kid.clone(), key);
                }
                Err(e) => skipped.push(e),
            }
        }
        (Self { keys }, skipped)
    }

    /// Adds `key`, returning the one it replaces.
    pub fn insert(&mut self, key: VerifyingKey) -> Option<VerifyingKey> {
        self.keys.insert(key.kid.clone(), key)
    }

    /// Removes the key with this id.
    pub fn remove(&mut self, kid: &str) -> Option<VerifyingKey> {
        self.keys.remove(kid)
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// The key ids, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeySource for PublicKeys {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }
}

impl From<&KeyRing> for PublicKeys {
    /// Every key of the ring, HS256 secrets included (a service sharing the secret verifies with it).
    fn from(ring: &KeyRing) -> Self {
        Self::new(ring.keys().map(VerifyingKey::from))
    }
}

/// The keys a server signs with and accepts, looked up by `kid`; one of them is active.
#[derive(Clone)]
pub struct KeyRing {
    keys: HashMap<String, Arc<SigningKey>>,
    active: Arc<SigningKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("KeyRing").field("active", &self.active.kid()).field("kids", &kids).finish()
    }
}

impl KeyRing {
    /// A ring of `keys` that signs with the one whose kid is `active`.
    pub fn new(keys: Vec<SigningKey>, active: String) -> Result<Self, KeyError> {
        let keys: HashMap<_, _> = keys.into_iter().map(|k| (k.kid().to_owned(), Arc::new(k))).collect();
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

    /// Every key of the ring, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.values().map(|k| k.as_ref())
    }

    /// Every public key, for JWKS, sorted by kid. HS256 keys are left out: their secret is never
    /// published.
    pub fn jwks(&self) -> JwkSet {
        let mut keys: Vec<Jwk> = self.keys.values().filter_map(|k| k.public_jwk().cloned()).collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        JwkSet { keys }
    }
}

impl KeySource for KeyRing {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid).map(|k| &k.verifying)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> AccessClaims {
        AccessClaims::new("https://id.example", "api", "u", "s", crate::now_unix(), 900)
    }

    /// The verifying key a resource server holding only the JWK (or, for HS256, the secret)
    /// would build with jsonwebtoken alone.
    fn jsonwebtoken_public_key(key: &SigningKey) -> DecodingKey {
        let jwk = key.jwk();
        let field = |v: &Option<String>| v.clone().unwrap();
        match key.alg() {
            KeyAlg::EdDsa => DecodingKey::from_ed_components(&field(&jwk.x)).unwrap(),
            KeyAlg::Es256 => DecodingKey::from_ec_components(&field(&jwk.x), &field(&jwk.y)).unwrap(),
            KeyAlg::Rs256 => DecodingKey::from_rsa_components(&field(&jwk.n), &field(&jwk.e)).unwrap(),
            KeyAlg::Hs256 => DecodingKey::from_secret(&key.material().private_der),
        }
    }

    #[test]
    fn tokens_signed_with_the_parsed_key_verify_with_jsonwebtoken_decode() {
        for alg in KeyAlg::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let mut claims = claims();
            (claims.scope, claims.role) = (Some("read write".into()), Some("admin".into()));
            let token = key.sign(&claims).unwrap();
            let mut validation = jsonwebtoken::Validation::new(alg.algorithm());
            validation.set_issuer(&["https://id.example"]);
            validation.set_audience(&["api"]);
            let decoded = jsonwebtoken::decode::<AccessClaims>(&token, &jsonwebtoken_public_key(&key), &validation)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(decoded.claims, claims, "{alg}");
            assert_eq!(decoded.header.alg, alg.algorithm(), "{alg}");
            assert_eq!(decoded.header.typ.as_deref(), Some(ACCESS_TOKEN_TYP), "{alg}");
            assert_eq!(decoded.header.kid.as_deref(), Some(key.kid()), "{alg}");
            // A different key of the same algorithm refuses it.
            let other = SigningKey::generate(alg).unwrap();
            assert!(
                jsonwebtoken::decode::<AccessClaims>(&token, &jsonwebtoken_public_key(&other), &validation).is_err(),
                "{alg}"
            );
        }
    }

    #[test]
    fn tokens_are_what_jsonwebtoken_encode_produced() {
        for alg in KeyAlg::ALL {
            let key = SigningKey::generate(alg).unwrap();
            let claims = claims();
            let ours = key.sign(&claims).unwrap();
            let mut header = Header::new(alg.algorithm());
            header.typ = Some(ACCESS_TOKEN_TYP.to_owned());
            header.kid = Some(key.kid().to_owned());
            let theirs = jsonwebtoken::encode(&header, &claims, &key.encoding_key()).unwrap();
            let parts = |t: &str| t.split('.').map(str::to_owned).collect::<Vec<_>>();
            let (ours_parts, theirs_parts) = (parts(&ours), parts(&theirs));
            assert_eq!(ours_parts.len(), 3, "{alg}");
            // Same header and payload bytes, so the same fields in the same order.
            assert_eq!(ours_parts[..2], theirs_parts[..2], "{alg}");
            let header_json: serde_json::Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(&ours_parts[0]).unwrap()).unwrap();
            assert_eq!(
                header_json,
                serde_json::json!({"typ": "at+jwt", "alg": alg.as_str(), "kid": key.kid()}),
                "{alg}"
            );
            // Ed25519, RSASSA-PKCS1-v1_5 and HMAC are deterministic: the whole token is the same.
            // ECDSA signatures are randomized.
            if alg != KeyAlg::Es256 {
                assert_eq!(ours, theirs, "{alg}");
            }
        }
    }

    #[test]
    fn signing_keys_loaded_from_openssl_pems_sign_the_same_tokens_as_jsonwebtoken() {
        let key = SigningKey::from_pem("k1", KeyAlg::EdDsa, OPENSSL_ED25519.as_bytes()).unwrap();
        let mut header = Header::new(Algorithm::EdDSA);
        (header.typ, header.kid) = (Some(ACCESS_TOKEN_TYP.into()), Some("k1".into()));
        let claims = claims();
        assert_eq!(key.sign(&claims).unwrap(), jsonwebtoken::encode(&header, &claims, &key.encoding_key()).unwrap());
    }

    #[test]
    fn material_round_trips_to_the_same_public_key() {
        let key = SigningKey::generate_ed25519().unwrap();
        let again = SigningKey::from_material(key.material().clone()).unwrap();
        assert_eq!(key.jwk(), again.jwk());
        assert_eq!(key.jwk().alg, "EdDSA");
    }

    #[test]
    fn every_algorithm_generates_and_reloads_from_its_material() {
        for alg in KeyAlg::ALL {
            let key = SigningKey::generate(alg).unwrap();
            assert_eq!(key.alg(), alg);
            let again = SigningKey::from_material(key.material().clone()).unwrap();
            assert_eq!(key.jwk(), again.jwk(), "{alg}");
            assert_eq!(KeyAlg::parse(alg.as_str()), Some(alg));
        }
    }

    #[test]
    fn garbage_material_is_an_error_not_a_panic() {
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256, KeyAlg::Rs256] {
            let err = SigningKey::from_material(KeyMaterial { kid: "k".into(), alg, private_der: vec![1, 2, 3] });
            assert!(matches!(err, Err(KeyError::InvalidMaterial { .. })), "{alg}");
        }
        let short =
            SigningKey::from_material(KeyMaterial { kid: "k".into(), alg: KeyAlg::Hs256, private_der: vec![7; 31] });
        assert!(matches!(short, Err(KeyError::WeakSecret { .. })));
    }

    #[test]
    fn material_of_one_algorithm_is_refused_as_another() {
        let ed = SigningKey::generate(KeyAlg::EdDsa).unwrap();
        let es = SigningKey::generate(KeyAlg::Es256).unwrap();
        let rs = SigningKey::generate(KeyAlg::Rs256).unwrap();
        for (key, other) in [(&ed, KeyAlg::Es256), (&ed, KeyAlg::Rs256), (&es, KeyAlg::EdDsa), (&rs, KeyAlg::Es256)] {
            let mut material = key.material().clone();
            material.alg = other;
            assert!(SigningKey::from_material(material).is_err(), "{} as {other}", key.alg());
        }
    }

    #[test]
    fn jwks_publish_each_public_key_type_and_never_an_hs256_secret() {
        let keys: Vec<SigningKey> = KeyAlg::ALL.iter().map(|a| SigningKey::generate(*a).unwrap()).collect();
        let hs_kid = keys[3].kid().to_owned();
        let ring = KeyRing::new(keys, hs_kid.clone()).unwrap();
        let set = ring.jwks();
        let ktys: Vec<&str> = set.keys.iter().map(|k| k.kty.as_str()).collect();
        assert_eq!(set.keys.len(), 3);
        for kty in ["OKP", "EC", "RSA"] {
            assert!(ktys.contains(&kty), "{kty} missing from {ktys:?}");
        }
        assert!(!set.keys.iter().any(|k| k.kid == hs_kid || k.kty == "oct"));
        let json = serde_json::to_string(&set).unwrap();
        let secret = URL_SAFE_NO_PAD.encode(&ring.get(&hs_kid).unwrap().material().private_der);
        assert!(!json.contains(&secret));
        assert!(ring.get(&hs_kid).unwrap().public_jwk().is_none());
    }

    #[test]
    fn a_public_key_set_from_jwks_verifies_what_the_ring_signs() {
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256, KeyAlg::Rs256] {
            let key = SigningKey::generate(alg).unwrap();
            let ring = KeyRing::new(vec![key.clone()], key.kid().to_owned()).unwrap();
            let json = serde_json::to_string(&ring.jwks()).unwrap();
            let (public, skipped) = PublicKeys::from_jwk_set(&serde_json::from_str(&json).unwrap());
            assert!(skipped.is_empty(), "{skipped:?}");
            let token = ring.sign(&claims()).unwrap();
            let (message, signature) = token.rsplit_once('.').unwrap();
            assert!(public.verifying_key(key.kid()).unwrap().verify(signature, message.as_bytes()), "{alg}");
        }
    }

    #[test]
    fn unusable_jwks_entries_are_skipped_with_a_reason() {
        let ed = SigningKey::generate(KeyAlg::EdDsa).unwrap();
        let good = ed.jwk().clone();
        let mut oct = good.clone();
        (oct.kty, oct.alg, oct.kid) = ("oct".into(), "HS256".into(), "secret".into());
        let mut no_alg = good.clone();
        (no_alg.alg, no_alg.kid) = (String::new(), "no-alg".into());
        let mut mismatch = good.clone();
        (mismatch.alg, mismatch.kid) = ("RS256".into(), "mismatch".into());
        let mut short = good.clone();
        (short.x, short.kid) = (Some("AAAA".into()), "short".into());
        let mut enc = good.clone();
        (enc.use_, enc.kid) = ("enc".into(), "enc".into());
        let set = JwkSet { keys: vec![good.clone(), oct, no_alg, mismatch, short, enc, good] };
        let (keys, skipped) = PublicKeys::from_jwk_set(&set);
        assert_eq!(keys.len(), 1);
        assert_eq!(skipped.len(), 6, "{skipped:?}");
    }

    #[test]
    fn an_ec_jwk_off_the_curve_is_refused() {
        let es = SigningKey::generate(KeyAlg::Es256).unwrap();
        let mut jwk = es.jwk().clone();
        jwk.y = Some(URL_SAFE_NO_PAD.encode([1u8; 32]));
        assert!(matches!(VerifyingKey::from_jwk(&jwk), Err(KeyError::InvalidJwk { .. })));
    }

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

    const OPENSSL_ED25519: &str = "-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIMZtSbXDVlRmcGQ5lPtla+mU0xet+NU/zzNbbo3px2Jx
-----END PRIVATE KEY-----";
    const OPENSSL_ED25519_PUB: &str = "-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAVkqJNg51zFSyUorA+yRimuD+9jBiCCUTf++7KrD/K04=
-----END PUBLIC KEY-----";
    const OPENSSL_P256: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgYuQR807M34xAM2Yq
ccgPIEGYwEcHRhq4zhGi2Z0/SY2hRANCAATqjUjQdBsDpD3ynPPzpNBZTpSCqPIf
M9W3LSGP+gZqEOpyXWtJPsUE08IRnDu+CpK6PZFvceptSE1/Ye2kngwh
-----END PRIVATE KEY-----";
    const OPENSSL_P256_PUB: &str = "-----BEGIN PUBLIC KEY-----
MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE6o1I0HQbA6Q98pzz86TQWU6Ugqjy
HzPVty0hj/oGahDqcl1rST7FBNPCEZw7vgqSuj2Rb3HqbUhNf2HtpJ4MIQ==
-----END PUBLIC KEY-----";

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

    #[test]
    fn kids_must_be_short_visible_ascii() {
        let key = SigningKey::generate(KeyAlg::EdDsa).unwrap();
        for kid in ["", "has space", "é", &"k".repeat(129)] {
            let mut material = key.material().clone();
            material.kid = kid.into();
            assert!(matches!(SigningKey::from_material(material), Err(KeyError::InvalidKid(_))), "{kid:?}");
        }
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
