//! [`SigningKey`]: key material parsed once into an aws-lc-rs signer, its verifying half and its
//! JWK; it signs access tokens in the JWS compact form with a header encoded once per key.

use std::sync::Arc;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, PublicKeyComponents};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{DecodingKey, Header};

use super::{Jwk, KeyAlg, KeyError, KeyMaterial, MIN_HS256_SECRET_BYTES, RSA_MODULUS_BYTES, VerifyingKey, check_kid};
use crate::ACCESS_TOKEN_TYP;
use crate::claims::AccessClaims;

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
        Self::from_material(KeyMaterial::generate(alg)?)
    }

    /// Loads an unencrypted PKCS#8 private key (`-----BEGIN PRIVATE KEY-----`), the form secret
    /// managers and `openssl genpkey` hand keys over in. HS256 secrets are not PEM: build those
    /// with [`SigningKey::from_material`].
    pub fn from_pem(kid: impl Into<String>, alg: KeyAlg, pem_text: &[u8]) -> Result<Self, KeyError> {
        Self::from_material(KeyMaterial::from_pem(kid.into(), alg, pem_text)?)
    }

    /// Loads a private key handed over as a PEM file (what Vault Agent, Kubernetes secrets and
    /// `openssl genpkey` produce), whatever its kind: PKCS#8 Ed25519, PKCS#8 or SEC1 P-256,
    /// PKCS#8 or PKCS#1 RSA of 2048 to 8192 bits. The algorithm is the key's; the kid is its
    /// RFC 7638 thumbprint ([`SigningKey::thumbprint`]), so every instance reading the same file
    /// names it the same way. Errors say what is wrong and never quote the key.
    pub fn from_key_file(pem_text: &[u8]) -> Result<Self, KeyError> {
        let material = KeyMaterial::from_any_pem(THUMBPRINT_PENDING.into(), pem_text)?;
        Self::with_thumbprint_kid(material)
    }

    /// An HS256 key from a shared secret (at least 32 bytes), its kid the RFC 7638 thumbprint
    /// of the secret's JWK (a SHA-256 of the secret: it does not reveal it).
    pub fn from_hs256_secret(secret: &[u8]) -> Result<Self, KeyError> {
        if secret.len() < MIN_HS256_SECRET_BYTES {
            let reason =
                format!("an HS256 secret of {} bytes: at least {MIN_HS256_SECRET_BYTES} are needed", secret.len());
            return Err(KeyError::Unusable { reason });
        }
        let material = KeyMaterial { kid: THUMBPRINT_PENDING.into(), alg: KeyAlg::Hs256, private_der: secret.to_vec() };
        Self::with_thumbprint_kid(material)
    }

    /// Parses `material`, then names it by its thumbprint.
    fn with_thumbprint_kid(mut material: KeyMaterial) -> Result<Self, KeyError> {
        let pending = Self::from_material(material.clone())?;
        material.kid = pending.thumbprint();
        Self::from_material(material)
    }

    /// The RFC 7638 JWK thumbprint of the key: of its public JWK, or for HS256 of
    /// `{"k": secret, "kty": "oct"}`.
    pub fn thumbprint(&self) -> String {
        match self.jwk.thumbprint() {
            Some(thumbprint) => thumbprint,
            None => super::jwk::thumbprint_of(
                &serde_json::json!({"k": URL_SAFE_NO_PAD.encode(&self.material.private_der), "kty": "oct"}),
            ),
        }
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
        self.verifying.kid()
    }

    /// The algorithm bound to this key.
    pub fn alg(&self) -> KeyAlg {
        self.verifying.alg()
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

/// The kid a key file's key carries until its thumbprint is known.
const THUMBPRINT_PENDING: &str = "thumbprint-pending";

/// The key in the form aws-lc-rs signs with, parsed once (none of these is `Clone`).
#[allow(clippy::large_enum_variant)] // built once per key and kept behind an Arc
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

#[cfg(test)]
mod tests {
    use jsonwebtoken::Algorithm;

    use super::*;
    use crate::keys::test_support::{OPENSSL_ED25519, claims, jsonwebtoken_public_key};

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
    fn kids_must_be_short_visible_ascii() {
        let key = SigningKey::generate(KeyAlg::EdDsa).unwrap();
        for kid in ["", "has space", "é", &"k".repeat(129)] {
            let mut material = key.material().clone();
            material.kid = kid.into();
            assert!(matches!(SigningKey::from_material(material), Err(KeyError::InvalidKid(_))), "{kid:?}");
        }
    }
}
