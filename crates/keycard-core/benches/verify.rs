//! Access-token cost per algorithm: signing (`SigningKey::sign`: claims to JSON, base64url, the
//! signature, against `aws_lc_sign`, the bare aws-lc-rs signature of the same message bytes with a
//! key pair parsed once), the whole `Validator::validate` checklist, and the signature check
//! alone three ways: `VerifyingKey::verify` (what `validate` calls: base64 decode
//! plus aws-lc-rs on a key parsed once), `jsonwebtoken::crypto::verify` (which rebuilds its
//! verifier per call), and the bare aws-lc-rs primitive with a pre-parsed key and a pre-decoded
//! signature (the floor).
//!
//! Run: `cargo bench -p keycard-core --bench verify -- --warm-up-time 1 --measurement-time 3`.
//! Results and the machine they came from: docs/BENCHMARKS.md.

use std::hint::black_box;

use aws_lc_rs::hmac;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, KeyPair, ParsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RSA_PKCS1_SHA256};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keycard_core::claims::AccessClaims;
use keycard_core::keys::{KeyAlg, KeyRing, SigningKey};
use keycard_core::validate::Validator;

const ISS: &str = "https://auth.example.com";
const AUD: &str = "api";

/// The bare primitive for one key: verifies `message` against raw signature bytes.
#[allow(clippy::large_enum_variant)] // built once per benchmark, never moved in the loop
enum Bare {
    Public(ParsedPublicKey),
    Hmac(hmac::Key),
}

impl Bare {
    fn new(key: &SigningKey) -> Self {
        let der = &key.material().private_der;
        let jwk = key.jwk();
        let decode = |v: &Option<String>| URL_SAFE_NO_PAD.decode(v.as_deref().unwrap_or_default()).unwrap_or_default();
        match key.alg() {
            KeyAlg::EdDsa => Self::Public(ParsedPublicKey::new(&ED25519, decode(&jwk.x)).unwrap()),
            KeyAlg::Es256 => {
                let point = [&[0x04][..], &decode(&jwk.x), &decode(&jwk.y)].concat();
                Self::Public(ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).unwrap())
            }
            KeyAlg::Rs256 => {
                let pair = RsaKeyPair::from_pkcs8(der).unwrap();
                Self::Public(ParsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, pair.public_key().as_ref()).unwrap())
            }
            KeyAlg::Hs256 => Self::Hmac(hmac::Key::new(hmac::HMAC_SHA256, der)),
        }
    }

    fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            Self::Public(key) => key.verify_sig(message, signature).is_ok(),
            Self::Hmac(key) => hmac::verify(key, message, signature).is_ok(),
        }
    }
}

/// The bare signing primitive for one key, parsed once: signs `message`, returns the raw
/// signature length (the signature itself is dropped, as keycard's is after encoding).
#[allow(clippy::large_enum_variant)] // one per key, built before the measurement
enum BareSigner {
    Ed25519(Ed25519KeyPair),
    Ecdsa(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Hmac(hmac::Key),
}

impl BareSigner {
    fn new(key: &SigningKey) -> Self {
        let der = key.material().private_der.as_slice();
        match key.alg() {
            KeyAlg::EdDsa => Self::Ed25519(Ed25519KeyPair::from_pkcs8(der).unwrap()),
            KeyAlg::Es256 => Self::Ecdsa(EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der).unwrap()),
            KeyAlg::Rs256 => Self::Rsa(RsaKeyPair::from_pkcs8(der).unwrap()),
            KeyAlg::Hs256 => Self::Hmac(hmac::Key::new(hmac::HMAC_SHA256, der)),
        }
    }

    fn sign(&self, message: &[u8]) -> usize {
        match self {
            Self::Ed25519(pair) => pair.sign(message).as_ref().len(),
            Self::Ecdsa(pair) => pair.sign(&SystemRandom::new(), message).unwrap().as_ref().len(),
            Self::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), message, &mut signature).unwrap();
                signature.len()
            }
            Self::Hmac(key) => hmac::sign(key, message).as_ref().len(),
        }
    }
}

fn typical_claims(now: i64) -> AccessClaims {
    let mut claims = AccessClaims::new(ISS, AUD, "0b6f1e9a-6f3c-4a8e-9a51-3f2d7c1e4b2a", "9d2c4b1a7e6f4c3d", now, 900);
    claims.scope = Some("read write profile".into());
    claims.role = Some("user".into());
    claims
}

fn bench_algorithms(c: &mut Criterion) {
    let now = keycard_core::now_unix();
    let claims = typical_claims(now);
    let validator = Validator::new(ISS, AUD, 30);
    let mut group = c.benchmark_group("token");
    for alg in KeyAlg::ALL {
        let key = SigningKey::generate(alg).unwrap();
        let ring = KeyRing::new(vec![key.clone()], key.kid().to_owned()).unwrap();
        let token = ring.sign(&claims).unwrap();
        assert!(validator.validate(&ring, &token, now).is_ok());
        let (message, signature_b64) = token.rsplit_once('.').unwrap();
        let signature = URL_SAFE_NO_PAD.decode(signature_b64).unwrap();
        let decoding = key.verifying_key().decoding_key();
        let bare = Bare::new(&key);
        assert!(bare.verify(message.as_bytes(), &signature));

        group.bench_function(BenchmarkId::new("sign", alg), |b| b.iter(|| key.sign(black_box(&claims)).unwrap()));
        let bare_signer = BareSigner::new(&key);
        group.bench_function(BenchmarkId::new("aws_lc_sign", alg), |b| {
            b.iter(|| bare_signer.sign(black_box(message.as_bytes())))
        });
        group.bench_function(BenchmarkId::new("validate", alg), |b| {
            b.iter(|| validator.validate(&ring, black_box(&token), now).unwrap())
        });
        let verifying = key.verifying_key();
        group.bench_function(BenchmarkId::new("key_verify", alg), |b| {
            b.iter(|| verifying.verify(black_box(signature_b64), message.as_bytes()))
        });
        group.bench_function(BenchmarkId::new("jsonwebtoken_verify", alg), |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(black_box(signature_b64), message.as_bytes(), decoding, alg.algorithm())
                    .unwrap()
            })
        });
        group.bench_function(BenchmarkId::new("aws_lc_verify", alg), |b| {
            b.iter(|| bare.verify(black_box(message.as_bytes()), black_box(&signature)))
        });
    }
    group.finish();
}

criterion_group!(benches, bench_algorithms);
criterion_main!(benches);
