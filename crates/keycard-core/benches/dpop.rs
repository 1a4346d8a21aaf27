//! The cost of checking one DPoP proof (RFC 9449) next to the raw signature check inside it:
//! `verify_proof` (size, JSON header and claims, the public `jwk` turned into a key, the
//! signature, `htm`/`htu`/`iat`, `ath` hashed and compared) for a resource request, against the
//! bare aws-lc-rs verification of the same proof's signing input with a key parsed once and a
//! signature decoded once (the floor), for Ed25519 and P-256 proofs. Not included: the replay
//! check (a store row or a Redis `SET NX`), which the end-to-end figures measure.
//!
//! Run: `cargo bench -p keycard-core --bench dpop -- --warm-up-time 1 --measurement-time 3`.
//! Results and the machine they came from: docs/BENCHMARKS.md.

use std::hint::black_box;

use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED, ED25519, ParsedPublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use keycard_core::dpop::{DpopKey, DpopPolicy, ProofExpectations, verify_proof};
use keycard_core::keys::KeyAlg;

const HTU: &str = "https://auth.example.com/auth/me";
const NOW: i64 = 1_800_000_000;
/// About the size of a keycard access token.
const TOKEN: &str = "eyJhbGciOiJFZERTQSIsImtpZCI6ImsxIiwidHlwIjoiYXQrand0In0.eyJpc3MiOiJodHRwczovL2F1dGguZXhhbXBsZS5jb20iLCJzdWIiOiJ1c2VyIiwiYXVkIjoiYXBpIiwiZXhwIjoxODAwMDAwOTAwLCJpYXQiOjE4MDAwMDAwMDAsImp0aSI6IjAxSjBBQkNERUYiLCJzaWQiOiJzMSIsImNuZiI6eyJqa3QiOiJ0aHVtYiJ9fQ.c2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJlc2lnbmF0dXJl";

/// The key the proof names, parsed once, and the proof's signing input and signature decoded
/// once: what a bare signature check needs.
fn bare(key: &DpopKey, proof: &str) -> (ParsedPublicKey, Vec<u8>, Vec<u8>) {
    let jwk = key.public_jwk();
    let decode = |v: &Option<String>| URL_SAFE_NO_PAD.decode(v.as_deref().unwrap_or_default()).unwrap();
    let parsed = match key.alg() {
        KeyAlg::EdDsa => ParsedPublicKey::new(&ED25519, decode(&jwk.x)).unwrap(),
        _ => {
            let point = [&[0x04][..], &decode(&jwk.x), &decode(&jwk.y)].concat();
            ParsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point).unwrap()
        }
    };
    let (input, signature) = proof.rsplit_once('.').unwrap();
    (parsed, input.as_bytes().to_vec(), URL_SAFE_NO_PAD.decode(signature).unwrap())
}

fn proofs(c: &mut Criterion) {
    let policy = DpopPolicy::default();
    let mut group = c.benchmark_group("dpop");
    for alg in [KeyAlg::EdDsa, KeyAlg::Es256] {
        let key = DpopKey::generate(alg).unwrap();
        let proof = key.proof("GET", HTU, Some(TOKEN), None, NOW).unwrap();
        let expect = ProofExpectations::new(&policy, "GET", HTU).with_access_token(TOKEN);
        assert_eq!(verify_proof(&proof, &expect, NOW).unwrap().jkt, key.jkt());
        group.bench_with_input(BenchmarkId::new("verify_proof", alg.as_str()), &proof, |b, proof| {
            b.iter(|| verify_proof(black_box(proof), black_box(&expect), NOW).unwrap())
        });
        let (parsed, input, signature) = bare(&key, &proof);
        assert!(parsed.verify_sig(&input, &signature).is_ok());
        group.bench_function(BenchmarkId::new("signature_only", alg.as_str()), |b| {
            b.iter(|| parsed.verify_sig(black_box(&input), black_box(&signature)).is_ok())
        });
    }
    group.finish();
}

criterion_group!(benches, proofs);
criterion_main!(benches);
