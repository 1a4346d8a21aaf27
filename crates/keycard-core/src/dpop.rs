//! DPoP (RFC 9449): checking the proof a client sends in the `DPoP` header, and the helpers
//! around it that the server, `keycard-verify` and `keycard-client` share.
//!
//! - [`verify_proof`] runs the checks of RFC 9449 §4.3 on one proof against a
//!   [`ProofExpectations`] (method, URI, access token, nonce) and a [`DpopPolicy`] (algorithms,
//!   time window, size), and returns a [`VerifiedProof`]: the key's thumbprint (`jkt`), `jti`
//!   and `iat`. Every refusal is a [`DpopError`], which maps to the wire error
//!   `invalid_dpop_proof` or `use_dpop_nonce` ([`DpopErrorCode`]).
//! - Replay: a proof is accepted for a window, so the caller must refuse a `(jkt, jti)` pair it
//!   has seen before until [`VerifiedProof::replay_until`]. [`JtiCache`] is that check;
//!   [`MemoryJtiCache`] is a bounded in-process implementation. Several instances need a shared
//!   one (the store or Redis), which is the server's to provide.
//! - Nonces: [`NonceSource`] makes stateless server nonces (an HMAC of a time bucket), so every
//!   instance holding the same secret issues and accepts the same values without storage.
//! - Clients: [`DpopKey`] holds an Ed25519 or P-256 key and makes proofs.
//! - Tokens: [`Confirmation`] is the `cnf` claim (`{"jkt": …}`) of a DPoP-bound token.
//!
//! What is deliberately not here: reading the HTTP request (exactly one `DPoP` header, the
//! method, the URI the client used behind proxies), answering with `WWW-Authenticate` and
//! `DPoP-Nonce`, and comparing [`VerifiedProof::jkt`] with the token's `cnf.jkt`
//! ([`Confirmation::matches`] does the comparison; the caller decides when it applies).
//!
//! The signature is checked with the key's own algorithm through [`VerifyingKey`] (aws-lc-rs),
//! built from the proof's `jwk`; the header's `alg` must be on the allow-list and is only
//! compared with that key. Symmetric algorithms and `none` are never accepted.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::keys::{Jwk, KeyAlg, KeyError, SigningKey, VerifyingKey};

/// The `typ` header value of every DPoP proof (RFC 9449 §4.2).
pub const DPOP_PROOF_TYP: &str = "dpop+jwt";

/// Largest proof accepted by default, in bytes.
pub const DEFAULT_MAX_PROOF_BYTES: usize = 8 * 1024;

/// How long after its `iat` a proof is accepted by default, in seconds.
pub const DEFAULT_MAX_AGE_SECS: i64 = 60;

/// How far in the future a proof's `iat` may be by default (clock skew), in seconds.
pub const DEFAULT_LEEWAY_SECS: i64 = 5;

/// Longest `jti` accepted, in bytes. RFC 9449 asks for at least 96 bits of randomness; a UUID
/// is 36 characters.
pub const MAX_JTI_BYTES: usize = 256;

/// Longest `nonce` accepted in a proof, in bytes.
const MAX_NONCE_BYTES: usize = 256;

/// JWK members that only a private (or secret) key has (RFC 7518 §6.2.2, §6.3.2, §6.4).
const PRIVATE_JWK_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The wire error a refused proof is answered with (RFC 9449 §7.1, §8, §12.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopErrorCode {
    /// The proof is missing, malformed or fails a check.
    InvalidDpopProof,
    /// The proof lacks the nonce the server requires, or carries an old or wrong one: the
    /// client retries with the nonce sent in the `DPoP-Nonce` header.
    UseDpopNonce,
}

impl DpopErrorCode {
    /// The `error` value on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
        }
    }
}

impl std::fmt::Display for DpopErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a DPoP proof was refused. The text is safe to send and log: it never quotes the proof.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopError {
    /// Longer than the policy's `max_proof_bytes`.
    #[error("DPoP proof is too large")]
    TooLarge,
    /// Not a JWS compact serialization with a JSON header and payload.
    #[error("DPoP proof is not a well-formed JWT")]
    Malformed,
    /// The header's `typ` is not `dpop+jwt`.
    #[error("DPoP proof typ is not dpop+jwt")]
    WrongType,
    /// The header's `alg` is missing, `none`, symmetric or not on the allow-list.
    #[error("DPoP proof algorithm is not accepted")]
    UnsupportedAlgorithm,
    /// The header carries `crit` extensions, none of which keycard understands.
    #[error("DPoP proof has unsupported critical header parameters")]
    UnsupportedCritical,
    /// The header has no `jwk`.
    #[error("DPoP proof header has no jwk")]
    MissingJwk,
    /// The header's `jwk` holds private key members.
    #[error("DPoP proof jwk holds a private key")]
    PrivateJwk,
    /// The header's `jwk` is not a usable public key for the proof's `alg`.
    #[error("DPoP proof jwk is not a valid public key for its alg")]
    InvalidJwk,
    /// The signature does not verify with the header's `jwk`.
    #[error("DPoP proof signature is invalid")]
    BadSignature,
    /// A required claim is missing or has the wrong type.
    #[error("DPoP proof lacks the {0} claim")]
    MissingClaim(&'static str),
    /// `jti` is empty or longer than [`MAX_JTI_BYTES`].
    #[error("DPoP proof jti is empty or too long")]
    InvalidJti,
    /// `htm` is not the method of the request.
    #[error("DPoP proof htm does not match the request method")]
    WrongMethod,
    /// `htu` is not the URI of the request (after normalisation, without query and fragment).
    #[error("DPoP proof htu does not match the request URI")]
    WrongUri,
    /// The server requires a nonce and the proof has none.
    #[error("a DPoP nonce is required")]
    NonceRequired,
    /// The proof's nonce is not one the server accepts (unknown or expired).
    #[error("DPoP proof nonce is invalid or expired")]
    WrongNonce,
    /// `iat` is older than the policy's `max_age`.
    #[error("DPoP proof is too old")]
    TooOld,
    /// `iat` is further in the future than the policy's `leeway`.
    #[error("DPoP proof was issued in the future")]
    IssuedInFuture,
    /// `ath` is not the hash of the access token presented with the proof.
    #[error("DPoP proof ath does not match the access token")]
    WrongAccessTokenHash,
    /// The key's thumbprint is not the `cnf.jkt` of the access token.
    #[error("DPoP proof key does not match the access token's binding")]
    KeyMismatch,
    /// The `(jkt, jti)` pair was seen before within the window (replay).
    #[error("DPoP proof has been used before")]
    Replayed,
}

impl DpopError {
    /// The wire error this refusal is answered with: `use_dpop_nonce` for a missing or wrong
    /// nonce, `invalid_dpop_proof` for everything else.
    pub fn code(&self) -> DpopErrorCode {
        match self {
            Self::NonceRequired | Self::WrongNonce => DpopErrorCode::UseDpopNonce,
            _ => DpopErrorCode::InvalidDpopProof,
        }
    }
}

/// What a server accepts, whatever the request: algorithms, time window and size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopPolicy {
    /// Signature algorithms accepted. A symmetric one (HS256) is ignored if listed.
    pub algs: Vec<KeyAlg>,
    /// Seconds after its `iat` that a proof is still accepted.
    pub max_age: i64,
    /// Seconds a proof's `iat` may be ahead of the server's clock.
    pub leeway: i64,
    /// Largest proof accepted, in bytes.
    pub max_proof_bytes: usize,
}

impl Default for DpopPolicy {
    /// EdDSA (Ed25519) and ES256; 60 s back, 5 s forward; 8 KiB.
    fn default() -> Self {
        Self {
            algs: vec![KeyAlg::EdDsa, KeyAlg::Es256],
            max_age: DEFAULT_MAX_AGE_SECS,
            leeway: DEFAULT_LEEWAY_SECS,
            max_proof_bytes: DEFAULT_MAX_PROOF_BYTES,
        }
    }
}

impl DpopPolicy {
    /// Whether proofs signed with `alg` are accepted: listed and asymmetric.
    pub fn allows(&self, alg: KeyAlg) -> bool {
        !alg.is_symmetric() && self.algs.contains(&alg)
    }

    /// The `alg` names proofs may carry, as advertised (`dpop_signing_alg_values_supported`,
    /// the `algs` of a `WWW-Authenticate: DPoP` challenge): EdDSA is also accepted under its
    /// fully-specified name `Ed25519` (RFC 9864), which newer clients (oauth4webapi) send.
    pub fn alg_names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        for alg in self.algs.iter().copied().filter(|a| self.allows(*a)) {
            names.push(alg.as_str());
            if alg == KeyAlg::EdDsa {
                names.push(ED25519_ALG);
            }
        }
        names
    }
}

/// The fully-specified JOSE name of EdDSA with Ed25519 (RFC 9864), accepted in proofs.
pub const ED25519_ALG: &str = "Ed25519";

/// The algorithm a proof's `alg` names: keycard's names, and `Ed25519` (RFC 9864) for EdDSA.
fn proof_alg(name: &str) -> Option<KeyAlg> {
    match name {
        ED25519_ALG => Some(KeyAlg::EdDsa),
        other => KeyAlg::parse(other),
    }
}

/// How the proof's `nonce` is checked, when the server requires one.
#[derive(Debug, Clone, Copy)]
pub enum NonceCheck<'a> {
    /// The nonce must be exactly this value.
    Equals(&'a str),
    /// The nonce must be one `source` accepts now (its current or previous bucket).
    Source(&'a NonceSource),
}

/// What one request expects of its proof.
#[derive(Debug, Clone, Copy)]
pub struct ProofExpectations<'a> {
    /// Algorithms, window and size.
    pub policy: &'a DpopPolicy,
    /// The request's HTTP method, compared exactly (methods are case-sensitive).
    pub htm: &'a str,
    /// The URI of the request as the client addressed it (scheme, host and path the client
    /// used, not the one behind a proxy); compared after [`normalize_htu`].
    pub htu: &'a str,
    /// The access token presented with the proof (resource requests): `ath` must be its hash.
    pub access_token: Option<&'a str>,
    /// The nonce the server requires, if it requires one.
    pub nonce: Option<NonceCheck<'a>>,
}

impl<'a> ProofExpectations<'a> {
    /// Expects a proof for `htm htu` under `policy`, with no access token and no nonce.
    pub fn new(policy: &'a DpopPolicy, htm: &'a str, htu: &'a str) -> Self {
        Self { policy, htm, htu, access_token: None, nonce: None }
    }

    /// Also expects `ath` to be the hash of `token`.
    pub fn with_access_token(mut self, token: &'a str) -> Self {
        self.access_token = Some(token);
        self
    }

    /// Also requires a nonce, checked by `check`.
    pub fn with_nonce(mut self, check: NonceCheck<'a>) -> Self {
        self.nonce = Some(check);
        self
    }
}

/// A proof that passed every check of [`verify_proof`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedProof {
    /// RFC 7638 thumbprint of the proof's key: what `cnf.jkt` of a bound token holds.
    pub jkt: String,
    /// The proof's unique id, for replay detection.
    pub jti: String,
    /// When the client made the proof (seconds since the Unix epoch).
    pub iat: i64,
    /// The algorithm it was signed with.
    pub alg: KeyAlg,
    /// The last second at which this proof would be accepted (`iat + max_age`): the caller
    /// keeps `(jkt, jti)` until then to refuse a replay (see [`JtiCache`]).
    pub replay_until: i64,
}

#[derive(Deserialize)]
struct ProofHeader {
    typ: Option<String>,
    alg: Option<String>,
    jwk: Option<serde_json::Value>,
    /// Whether the header names `crit` at all (whatever its value).
    #[serde(default, deserialize_with = "present")]
    crit: bool,
}

/// `true` for a member that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| true)
}

#[derive(Deserialize)]
struct ProofClaims {
    jti: Option<String>,
    htm: Option<String>,
    htu: Option<String>,
    iat: Option<serde_json::Number>,
    ath: Option<String>,
    nonce: Option<String>,
}

/// Checks one DPoP proof against `expect` at time `now` (seconds since the Unix epoch), in the
/// order of RFC 9449 §4.3:
///
/// 1. at most `max_proof_bytes`, a JWS compact serialization with JSON header and payload;
/// 2. `typ` is `dpop+jwt`; `alg` is on the allow-list and asymmetric; no `crit`;
/// 3. `jwk` is present, holds no private members, and is a public key of `alg`;
/// 4. the signature verifies with that key;
/// 5. `jti` (1 to [`MAX_JTI_BYTES`] bytes), `htm`, `htu` and `iat` are present;
/// 6. `htm` equals the method, `htu` equals the request URI after [`normalize_htu`];
/// 7. when a nonce is required, `nonce` is present and accepted (else a `use_dpop_nonce` error);
/// 8. `iat` is no older than `max_age` and no further ahead than `leeway`;
/// 9. with an access token, `ath` is base64url(SHA-256(token)), compared in constant time.
///
/// Not checked here: that the request had exactly one `DPoP` header, that the `(jkt, jti)` pair
/// is new ([`JtiCache`]), and that `jkt` matches the token's `cnf.jkt` ([`Confirmation`]).
pub fn verify_proof(proof: &str, expect: &ProofExpectations<'_>, now: i64) -> Result<VerifiedProof, DpopError> {
    let policy = expect.policy;
    if proof.len() > policy.max_proof_bytes {
        return Err(DpopError::TooLarge);
    }
    let (signing_input, signature) = proof.rsplit_once('.').ok_or(DpopError::Malformed)?;
    let (header_b64, payload_b64) = signing_input.split_once('.').ok_or(DpopError::Malformed)?;
    if signature.is_empty() || payload_b64.contains('.') {
        return Err(DpopError::Malformed);
    }
    let header: ProofHeader = decode_json(header_b64)?;
    let claims: ProofClaims = decode_json(payload_b64)?;

    if header.typ.as_deref() != Some(DPOP_PROOF_TYP) {
        return Err(DpopError::WrongType);
    }
    let alg = header.alg.as_deref().and_then(proof_alg).ok_or(DpopError::UnsupportedAlgorithm)?;
    if !policy.allows(alg) {
        return Err(DpopError::UnsupportedAlgorithm);
    }
    if header.crit {
        return Err(DpopError::UnsupportedCritical);
    }
    let jwk = header.jwk.ok_or(DpopError::MissingJwk)?;
    let (key, jkt) = public_key_of(jwk, alg)?;
    if !key.verify(signature, signing_input.as_bytes()) {
        return Err(DpopError::BadSignature);
    }

    let jti = claims.jti.ok_or(DpopError::MissingClaim("jti"))?;
    let htm = claims.htm.ok_or(DpopError::MissingClaim("htm"))?;
    let htu = claims.htu.ok_or(DpopError::MissingClaim("htu"))?;
    let iat = claims.iat.as_ref().and_then(numeric_date).ok_or(DpopError::MissingClaim("iat"))?;
    if jti.is_empty() || jti.len() > MAX_JTI_BYTES {
        return Err(DpopError::InvalidJti);
    }
    if htm != expect.htm {
        return Err(DpopError::WrongMethod);
    }
    match (normalize_htu(&htu), normalize_htu(expect.htu)) {
        (Some(got), Some(wanted)) if got == wanted => {}
        _ => return Err(DpopError::WrongUri),
    }
    if let Some(check) = expect.nonce {
        let nonce = claims.nonce.as_deref().ok_or(DpopError::NonceRequired)?;
        let accepted = nonce.len() <= MAX_NONCE_BYTES
            && match check {
                NonceCheck::Equals(wanted) => bool::from(nonce.as_bytes().ct_eq(wanted.as_bytes())),
                NonceCheck::Source(source) => source.accepts(nonce, now),
            };
        if !accepted {
            return Err(DpopError::WrongNonce);
        }
    }
    if iat < now.saturating_sub(policy.max_age) {
        return Err(DpopError::TooOld);
    }
    if iat > now.saturating_add(policy.leeway) {
        return Err(DpopError::IssuedInFuture);
    }
    if let Some(token) = expect.access_token {
        let ath = claims.ath.ok_or(DpopError::MissingClaim("ath"))?;
        if !bool::from(ath.as_bytes().ct_eq(access_token_hash(token).as_bytes())) {
            return Err(DpopError::WrongAccessTokenHash);
        }
    }
    Ok(VerifiedProof { jkt, jti, iat, alg, replay_until: iat.saturating_add(policy.max_age) })
}

/// Decodes one base64url (unpadded) JSON part of the proof.
fn decode_json<T: serde::de::DeserializeOwned>(part_b64: &str) -> Result<T, DpopError> {
    let bytes = URL_SAFE_NO_PAD.decode(part_b64).map_err(|_| DpopError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| DpopError::Malformed)
}

/// `iat` as whole seconds: an integer, or a finite non-integer NumericDate rounded down.
fn numeric_date(n: &serde_json::Number) -> Option<i64> {
    n.as_i64().or_else(|| n.as_f64().filter(|f| f.is_finite() && f.abs() < 1e15).map(|f| f.floor() as i64))
}

/// The verifying key and RFC 7638 thumbprint of the proof's `jwk`, which must be a public key
/// of `alg` (checked by [`VerifyingKey::from_jwk`]: curve, sizes, point on the curve).
fn public_key_of(jwk: serde_json::Value, alg: KeyAlg) -> Result<(VerifyingKey, String), DpopError> {
    let serde_json::Value::Object(members) = jwk else { return Err(DpopError::InvalidJwk) };
    if PRIVATE_JWK_MEMBERS.iter().any(|m| members.contains_key(*m)) {
        return Err(DpopError::PrivateJwk);
    }
    let mut jwk: Jwk = serde_json::from_value(serde_json::Value::Object(members)).map_err(|_| DpopError::InvalidJwk)?;
    // A JWK may name its algorithm; then it must be the proof's.
    if !jwk.alg.is_empty() && jwk.alg != alg.as_str() {
        return Err(DpopError::InvalidJwk);
    }
    // The proof's key has no kid in keycard's sense; from_jwk wants one, and the alg to use.
    jwk.kid = "dpop-proof".into();
    jwk.alg = alg.as_str().into();
    let jkt = jwk.thumbprint().ok_or(DpopError::InvalidJwk)?;
    let key = VerifyingKey::from_jwk(&jwk).map_err(|_| DpopError::InvalidJwk)?;
    Ok((key, jkt))
}

/// `ath` for an access token: base64url(SHA-256(token)) (RFC 9449 §4.2).
pub fn access_token_hash(access_token: &str) -> String {
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access_token.as_bytes());
    URL_SAFE_NO_PAD.encode(digest.as_ref())
}

/// Normalises an `htu` (or the request URI it is compared with) the way RFC 9449 §4.3 point 9
/// asks: without query and fragment, and with the syntax-based normalisation of RFC 3986
/// §6.2.2 and the scheme-based one of §6.2.3. `None` for what is not an absolute `http` or
/// `https` URI.
///
/// - the query (from `?`) and fragment (from `#`) are dropped;
/// - scheme and host are lower-cased; the port is dropped when it is the scheme's default (80,
///   443) or empty, and written without leading zeros otherwise;
/// - an empty path becomes `/`; dot segments are removed (RFC 3986 §5.2.4);
/// - percent-encodings of unreserved characters are decoded, the others upper-cased;
/// - userinfo (`user@`), a percent-encoded host, non-ASCII, whitespace or control characters,
///   and malformed percent-encodings or ports make it `None`.
///
/// Both sides go through the same function, so `HTTPS://Server.Example.COM:443/a/../token?x#y`
/// and `https://server.example.com/token` compare equal.
pub fn normalize_htu(uri: &str) -> Option<String> {
    if !uri.bytes().all(|b| b.is_ascii_graphic()) {
        return None;
    }
    let uri = uri.split(['?', '#']).next().unwrap_or_default();
    let (scheme, rest) = uri.split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let default_port = match scheme.as_str() {
        "https" => 443,
        "http" => 80,
        _ => return None,
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
    if authority.contains('@') {
        return None;
    }
    // The port follows the last ':' outside an IPv6 literal's brackets.
    let port_start = authority.rfind(':').filter(|&i| !authority[i..].contains(']'));
    let (host, port) = match port_start {
        Some(i) => (&authority[..i], &authority[i + 1..]),
        None => (authority, ""),
    };
    let bracketed = host.starts_with('[') && host.ends_with(']');
    if host.is_empty() || host.contains('%') || (host.contains(':') && !bracketed) {
        return None;
    }
    let mut out = format!("{scheme}://{}", host.to_ascii_lowercase());
    if !port.is_empty() {
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let digits = port.trim_start_matches('0');
        let port: u16 = if digits.is_empty() { 0 } else { digits.parse().ok()? };
        if port != default_port {
            out.push(':');
            out.push_str(&port.to_string());
        }
    }
    let path = normalize_percent(path)?;
    out.push_str(&remove_dot_segments(if path.is_empty() { "/" } else { &path }));
    Some(out)
}

/// Decodes percent-encoded unreserved characters and upper-cases the hex of the others
/// (RFC 3986 §6.2.2.1, §6.2.2.2); `None` for a `%` not followed by two hex digits.
fn normalize_percent(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).filter(|h| h.bytes().all(|b| b.is_ascii_hexdigit()))?;
            let byte = u8::from_str_radix(hex, 16).ok()?;
            if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
                out.push(char::from(byte));
            } else {
                out.push('%');
                out.push_str(&hex.to_ascii_uppercase());
            }
            i += 3;
        } else {
            out.push(char::from(bytes[i]));
            i += 1;
        }
    }
    Some(out)
}

/// RFC 3986 §5.2.4 on an absolute path: resolves `.` and `..` segments.
fn remove_dot_segments(path: &str) -> String {
    let mut segments: Vec<&str> = Vec::new();
    let parts: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in parts.iter().enumerate() {
        let last = i + 1 == parts.len();
        match *segment {
            "." | ".." => {
                if *segment == ".." {
                    segments.pop();
                }
                // A trailing dot segment leaves the path ending in '/'.
                if last {
                    segments.push("");
                }
            }
            other => segments.push(other),
        }
    }
    format!("/{}", segments.join("/"))
}

/// Replay detection for DPoP proofs: a `(jkt, jti)` pair is accepted once until its expiry.
///
/// Proofs are accepted for [`DpopPolicy::max_age`] after their `iat`; the caller stores each
/// accepted pair until [`VerifiedProof::replay_until`] and refuses a pair it holds. With several
/// instances the store must be shared (the database or Redis, an atomic insert-if-absent with a
/// TTL); [`MemoryJtiCache`] serves one process.
pub trait JtiCache: Send + Sync {
    /// Records `(jkt, jti)` as seen until `expires_at` (inclusive) and returns `true`, or
    /// returns `false` when the pair was already seen and has not expired by `now` (a replay),
    /// or when the cache cannot record it.
    fn check_and_insert(&self, jkt: &str, jti: &str, expires_at: i64, now: i64) -> bool;
}

/// An in-memory [`JtiCache`] holding at most `capacity` pairs, each as a SHA-256 of the pair
/// (32 bytes, whatever the `jti`'s length). Expired pairs are pruned on each call. When full of
/// unexpired pairs it refuses new ones (fails closed: evicting would re-admit replays).
#[derive(Debug)]
pub struct MemoryJtiCache {
    capacity: usize,
    state: Mutex<JtiState>,
}

#[derive(Debug, Default)]
struct JtiState {
    expiry_of: HashMap<[u8; 32], i64>,
    by_expiry: BTreeSet<(i64, [u8; 32])>,
}

impl MemoryJtiCache {
    /// An empty cache that holds at most `capacity` unexpired pairs.
    pub fn new(capacity: usize) -> Self {
        Self { capacity, state: Mutex::new(JtiState::default()) }
    }

    /// How many pairs are held (expired ones included until the next call prunes them).
    pub fn len(&self) -> usize {
        self.lock().expiry_of.len()
    }

    /// Whether no pair is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, JtiState> {
        // The state stays consistent at every step, so a panic elsewhere does not spoil it.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// SHA-256 of the length-prefixed jkt and the jti: distinct pairs give distinct inputs.
    fn key(jkt: &str, jti: &str) -> [u8; 32] {
        let mut ctx = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        ctx.update(&(jkt.len() as u64).to_be_bytes());
        ctx.update(jkt.as_bytes());
        ctx.update(jti.as_bytes());
        let mut key = [0u8; 32];
        key.copy_from_slice(ctx.finish().as_ref());
        key
    }
}

impl JtiCache for MemoryJtiCache {
    fn check_and_insert(&self, jkt: &str, jti: &str, expires_at: i64, now: i64) -> bool {
        let key = Self::key(jkt, jti);
        let mut state = self.lock();
        while let Some(&(expiry, old)) = state.by_expiry.first() {
            if expiry >= now {
                break;
            }
            state.by_expiry.pop_first();
            state.expiry_of.remove(&old);
        }
        if state.expiry_of.contains_key(&key) || state.expiry_of.len() >= self.capacity {
            return false;
        }
        state.expiry_of.insert(key, expires_at);
        state.by_expiry.insert((expires_at, key));
        true
    }
}

/// Default length of a nonce time bucket, in seconds: a nonce is accepted for 5 to 10 minutes.
pub const DEFAULT_NONCE_PERIOD_SECS: i64 = 300;

/// Smallest nonce secret accepted, in bytes.
pub const MIN_NONCE_SECRET_BYTES: usize = 32;

/// Stateless server nonces (RFC 9449 §8, §9): a nonce is base64url(HMAC-SHA-256(secret,
/// time bucket)), and a nonce of the current or the previous bucket is accepted. Instances
/// sharing the secret issue and accept the same nonces without storing anything; a nonce lives
/// between one and two periods.
pub struct NonceSource {
    key: hmac::Key,
    period: i64,
}

impl std::fmt::Debug for NonceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceSource").field("period", &self.period).finish_non_exhaustive()
    }
}

impl NonceSource {
    /// Nonces from a shared `secret` (at least [`MIN_NONCE_SECRET_BYTES`]) and buckets of
    /// `period_secs` seconds (at least 1).
    pub fn new(secret: &[u8], period_secs: i64) -> Result<Self, KeyError> {
        if secret.len() < MIN_NONCE_SECRET_BYTES {
            let reason = format!("a DPoP nonce secret needs at least {MIN_NONCE_SECRET_BYTES} bytes");
            return Err(KeyError::Unusable { reason });
        }
        if period_secs < 1 {
            return Err(KeyError::Unusable { reason: "the DPoP nonce period must be at least 1 second".into() });
        }
        Ok(Self { key: hmac::Key::new(hmac::HMAC_SHA256, secret), period: period_secs })
    }

    /// Nonces from a random secret: for a single instance (others would not accept them).
    pub fn generate(period_secs: i64) -> Result<Self, KeyError> {
        let mut secret = [0u8; MIN_NONCE_SECRET_BYTES];
        getrandom::fill(&mut secret).map_err(|_| KeyError::Generate)?;
        Self::new(&secret, period_secs)
    }

    /// The nonce to hand out at `now` (the `DPoP-Nonce` header value).
    pub fn nonce(&self, now: i64) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, &Self::message(self.bucket(now))).as_ref())
    }

    /// Whether `nonce` is the nonce of the bucket of `now` or of the one before.
    pub fn accepts(&self, nonce: &str, now: i64) -> bool {
        let mut tag = [0u8; 48];
        let Ok(len) = URL_SAFE_NO_PAD.decode_slice(nonce, &mut tag) else { return false };
        let bucket = self.bucket(now);
        [bucket, bucket - 1].iter().any(|b| hmac::verify(&self.key, &Self::message(*b), &tag[..len]).is_ok())
    }

    fn bucket(&self, now: i64) -> i64 {
        now.div_euclid(self.period)
    }

    /// What is signed: a label (so the secret signs nothing else meaningfully) and the bucket.
    fn message(bucket: i64) -> [u8; 28] {
        let mut message = [0u8; 28];
        message[..20].copy_from_slice(b"keycard dpop nonce\0\x01");
        message[20..].copy_from_slice(&bucket.to_be_bytes());
        message
    }
}

/// A client's DPoP key (Ed25519 or P-256) that makes proofs.
#[derive(Clone)]
pub struct DpopKey {
    key: SigningKey,
    encoding: EncodingKey,
    /// base64url of `{"typ":"dpop+jwt","alg":…,"jwk":{…}}`, the first part of every proof.
    header_b64: String,
}

impl std::fmt::Debug for DpopKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopKey").field("alg", &self.alg()).field("jkt", &self.jkt()).finish_non_exhaustive()
    }
}

impl DpopKey {
    /// A new key of `alg`: [`KeyAlg::EdDsa`] (Ed25519) or [`KeyAlg::Es256`] (P-256).
    pub fn generate(alg: KeyAlg) -> Result<Self, KeyError> {
        if !matches!(alg, KeyAlg::EdDsa | KeyAlg::Es256) {
            return Err(Self::unsupported(alg));
        }
        Self::from_signing_key(SigningKey::generate(alg)?)
    }

    /// Loads a key from a PEM file's content: PKCS#8 Ed25519, or PKCS#8 or SEC1 P-256.
    pub fn from_pem(pem_text: &[u8]) -> Result<Self, KeyError> {
        Self::from_signing_key(SigningKey::from_key_file(pem_text)?)
    }

    fn from_signing_key(key: SigningKey) -> Result<Self, KeyError> {
        crate::install_crypto_provider();
        let der = key.material().private_der.as_slice();
        let encoding = match key.alg() {
            KeyAlg::EdDsa => EncodingKey::from_ed_der(der),
            KeyAlg::Es256 => EncodingKey::from_ec_der(der),
            other => return Err(Self::unsupported(other)),
        };
        let jwk = key.jwk();
        let public = match key.alg() {
            KeyAlg::EdDsa => serde_json::json!({"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x}),
            _ => serde_json::json!({"kty": jwk.kty, "crv": jwk.crv, "x": jwk.x, "y": jwk.y}),
        };
        let header = serde_json::json!({"typ": DPOP_PROOF_TYP, "alg": key.alg().as_str(), "jwk": public});
        let header_b64 = URL_SAFE_NO_PAD.encode(header.to_string());
        Ok(Self { key, encoding, header_b64 })
    }

    fn unsupported(alg: KeyAlg) -> KeyError {
        KeyError::Unusable { reason: format!("a DPoP key must be Ed25519 or P-256, not {alg}") }
    }

    /// The algorithm of the proofs it makes.
    pub fn alg(&self) -> KeyAlg {
        self.key.alg()
    }

    /// The RFC 7638 thumbprint of the public key: the `jkt` a bound token carries, and the
    /// `dpop_jkt` of an authorization request.
    pub fn jkt(&self) -> String {
        self.key.thumbprint()
    }

    /// The public key as a JWK (its `kid` is not part of proofs).
    pub fn public_jwk(&self) -> &Jwk {
        self.key.jwk()
    }

    /// The private key as a PKCS#8 PEM document, to store it ([`DpopKey::from_pem`] reads it).
    pub fn to_pkcs8_pem(&self) -> String {
        pem::encode(&pem::Pem::new("PRIVATE KEY", self.key.material().private_der.clone()))
    }

    /// A proof for a request `htm htu` at `now`: a random `jti`, `ath` when an access token is
    /// sent with it, and the server's `nonce` when it asked for one. `htu` should be the URI
    /// without query and fragment (RFC 9449 §4.2); it is sent as given.
    pub fn proof(
        &self,
        htm: &str,
        htu: &str,
        access_token: Option<&str>,
        nonce: Option<&str>,
        now: i64,
    ) -> Result<String, KeyError> {
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).map_err(|_| KeyError::Generate)?;
        let mut claims = serde_json::json!({"jti": URL_SAFE_NO_PAD.encode(jti), "htm": htm, "htu": htu, "iat": now});
        if let Some(token) = access_token {
            claims["ath"] = access_token_hash(token).into();
        }
        if let Some(nonce) = nonce {
            claims["nonce"] = nonce.into();
        }
        let mut proof = self.header_b64.clone();
        proof.push('.');
        URL_SAFE_NO_PAD.encode_string(claims.to_string(), &mut proof);
        let signature = jsonwebtoken::crypto::sign(proof.as_bytes(), &self.encoding, self.alg().algorithm())?;
        proof.push('.');
        proof.push_str(&signature);
        Ok(proof)
    }
}

/// The `cnf` (confirmation) claim of a DPoP-bound token (RFC 9449 §6.1, RFC 7800): in the
/// claims it reads `"cnf": {"jkt": "<thumbprint>"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    /// RFC 7638 thumbprint of the key the token is bound to.
    pub jkt: String,
}

impl Confirmation {
    /// The binding to the key of a verified proof.
    pub fn for_proof(proof: &VerifiedProof) -> Self {
        Self { jkt: proof.jkt.clone() }
    }

    /// Whether `proof` was made with the key this token is bound to (constant time).
    pub fn matches(&self, proof: &VerifiedProof) -> bool {
        self.jkt.as_bytes().ct_eq(proof.jkt.as_bytes()).into()
    }

    /// `Ok` when `proof` was made with the bound key, else [`DpopError::KeyMismatch`].
    pub fn check(&self, proof: &VerifiedProof) -> Result<(), DpopError> {
        if self.matches(proof) { Ok(()) } else { Err(DpopError::KeyMismatch) }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::{Value, json};

    use super::*;

    const NOW: i64 = 1_700_000_000;
    const URI: &str = "https://id.example/token";

    fn b64(value: &Value) -> String {
        URL_SAFE_NO_PAD.encode(value.to_string())
    }

    /// The public members of a key's JWK, as a client would put them in a proof header.
    fn public_members(key: &SigningKey) -> Value {
        let jwk = serde_json::to_value(key.jwk()).unwrap();
        let mut members = serde_json::Map::new();
        for name in ["kty", "crv", "x", "y", "n", "e"] {
            if let Some(value) = jwk.get(name) {
                members.insert(name.into(), value.clone());
            }
        }
        Value::Object(members)
    }

    fn header_of(key: &SigningKey) -> Value {
        json!({"typ": "dpop+jwt", "alg": key.alg().as_str(), "jwk": public_members(key)})
    }

    fn claims() -> Value {
        json!({"jti": "j-1", "htm": "POST", "htu": URI, "iat": NOW})
    }

    /// A proof with any header and claims, signed by `signer` with its own algorithm.
    fn forge(header: &Value, claims: &Value, signer: &SigningKey) -> String {
        let input = format!("{}.{}", b64(header), b64(claims));
        let signature =
            jsonwebtoken::crypto::sign(input.as_bytes(), &signer.encoding_key(), signer.alg().algorithm()).unwrap();
        format!("{input}.{signature}")
    }

    fn check(proof: &str, policy: &DpopPolicy) -> Result<VerifiedProof, DpopError> {
        verify_proof(proof, &ProofExpectations::new(policy, "POST", URI), NOW)
    }

    #[test]
    fn ed25519_proofs_may_use_the_fully_specified_alg_name() {
        let policy = DpopPolicy::default();
        assert_eq!(policy.alg_names(), ["EdDSA", "Ed25519", "ES256"]);
        let es_only = DpopPolicy { algs: vec![KeyAlg::Es256, KeyAlg::Hs256], ..DpopPolicy::default() };
        assert_eq!(es_only.alg_names(), ["ES256"]);
        let key = SigningKey::generate(KeyAlg::EdDsa).unwrap();
        let claims = json!({"jti": "j-1", "htm": "POST", "htu": URI, "iat": NOW});
        let header = |alg: &str| json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.jwk()});
        for alg in ["EdDSA", "Ed25519"] {
            assert_eq!(check(&forge(&header(alg), &claims, &key), &policy).unwrap().alg, KeyAlg::EdDsa, "{alg}");
        }
        // The name still has to fit the key, and an EdDSA-less policy refuses both names.
        let p256 = SigningKey::generate(KeyAlg::Es256).unwrap();
        let mismatched = json!({"typ": "dpop+jwt", "alg": "Ed25519", "jwk": p256.jwk()});
        assert!(check(&forge(&mismatched, &claims, &p256), &policy).is_err());
        let es256 = DpopPolicy { algs: vec![KeyAlg::Es256], ..DpopPolicy::default() };
        for alg in ["EdDSA", "Ed25519", "ed25519"] {
            let refused = check(&forge(&header(alg), &claims, &key), &es256);
            assert_eq!(refused, Err(DpopError::UnsupportedAlgorithm), "{alg}");
        }
    }

    #[test]
    fn proofs_made_by_dpop_keys_verify_for_ed25519_and_es256() {
        let policy = DpopPolicy::default();
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256] {
            let key = DpopKey::generate(alg).unwrap();
            let proof = key.proof("POST", URI, None, None, NOW).unwrap();
            let verified = check(&proof, &policy).unwrap();
            assert_eq!(verified.jkt, key.jkt(), "{alg}");
            assert_eq!(key.public_jwk().thumbprint().as_deref(), Some(key.jkt().as_str()), "{alg}");
            assert_eq!((verified.iat, verified.alg, verified.replay_until), (NOW, alg, NOW + 60), "{alg}");
            assert_eq!(verified.jti.len(), 22, "{alg}: 128 random bits");
            let again = check(&key.proof("POST", URI, None, None, NOW).unwrap(), &policy).unwrap();
            assert_ne!(again.jti, verified.jti, "{alg}: a fresh jti per proof");

            // With an access token and a nonce.
            let proof = key.proof("GET", "https://api.example/r", Some("tok"), Some("n-1"), NOW).unwrap();
            let expect = ProofExpectations::new(&policy, "GET", "https://api.example/r")
                .with_access_token("tok")
                .with_nonce(NonceCheck::Equals("n-1"));
            assert_eq!(verify_proof(&proof, &expect, NOW).unwrap().jkt, key.jkt(), "{alg}");

            // The stored key reloads as the same key.
            let reloaded = DpopKey::from_pem(key.to_pkcs8_pem().as_bytes()).unwrap();
            assert_eq!((reloaded.alg(), reloaded.jkt()), (alg, key.jkt()), "{alg}");
            assert!(!format!("{key:?}").contains("PRIVATE"), "{alg}");
        }
        let rsa = SigningKey::generate(KeyAlg::Rs256).unwrap();
        let pem = pem::encode(&pem::Pem::new("PRIVATE KEY", rsa.material().private_der.clone()));
        assert!(DpopKey::from_pem(pem.as_bytes()).unwrap_err().to_string().contains("Ed25519 or P-256"));
        for alg in [KeyAlg::Rs256, KeyAlg::Hs256] {
            assert!(DpopKey::generate(alg).unwrap_err().to_string().contains("Ed25519 or P-256"), "{alg}");
        }
    }

    #[test]
    fn the_rfc_9449_example_proof_verifies_with_its_published_thumbprint() {
        // RFC 9449 figures 2 and 3 (an ES256 proof), figure 9 (the jkt of its key).
        const PROOF: &str = "eyJ0eXAiOiJkcG9wK2p3dCIsImFsZyI6IkVTMjU2IiwiandrIjp7Imt0eSI6IkVDIiwieCI6Imw4dEZyaHgtMzR0VjNoUklDUkRZOXpDa0RscEJoRjQyVVFVZldWQVdCRnMiLCJ5IjoiOVZFNGpmX09rX282NHpiVFRsY3VOSmFqSG10NnY5VERWclUwQ2R2R1JEQSIsImNydiI6IlAtMjU2In19.eyJqdGkiOiItQndDM0VTYzZhY2MybFRjIiwiaHRtIjoiUE9TVCIsImh0dSI6Imh0dHBzOi8vc2VydmVyLmV4YW1wbGUuY29tL3Rva2VuIiwiaWF0IjoxNTYyMjYyNjE2fQ.2-GxA6T8lP4vfrg8v-FdWP0A0zdrj8igiMLvqRMUvwnQg4PtFLbdLXiOSsX0x7NVY-FNyJK70nfbV37xRZT3Lg";
        const IAT: i64 = 1_562_262_616;
        let policy = DpopPolicy::default();
        let expect = ProofExpectations::new(&policy, "POST", "https://server.example.com/token");
        let verified = verify_proof(PROOF, &expect, IAT).unwrap();
        assert_eq!(verified.jkt, "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
        assert_eq!((verified.jti.as_str(), verified.iat, verified.alg), ("-BwC3ESc6acc2lTc", IAT, KeyAlg::Es256));
        assert_eq!(verify_proof(PROOF, &expect, IAT + 61), Err(DpopError::TooOld));
        let get = ProofExpectations::new(&policy, "GET", "https://server.example.com/token");
        assert_eq!(verify_proof(PROOF, &get, IAT), Err(DpopError::WrongMethod));
    }

    #[test]
    fn the_jkt_of_the_rfc_8037_ed25519_key_is_its_published_thumbprint() {
        // RFC 8037 appendix A.1 (private key d) and A.3 (thumbprint), the seed wrapped in the
        // fixed PKCS#8 v1 prefix of an Ed25519 key.
        let seed = URL_SAFE_NO_PAD.decode("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A").unwrap();
        let mut der =
            vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        der.extend_from_slice(&seed);
        let key = DpopKey::from_pem(pem::encode(&pem::Pem::new("PRIVATE KEY", der)).as_bytes()).unwrap();
        assert_eq!(key.public_jwk().x.as_deref(), Some("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"));
        assert_eq!(key.jkt(), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
        let proof = key.proof("POST", URI, None, None, NOW).unwrap();
        assert_eq!(check(&proof, &DpopPolicy::default()).unwrap().jkt, "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k");
    }

    #[test]
    fn ath_is_the_rfc_9449_hash_of_the_access_token() {
        // RFC 9449 §7.1: the example access token and the ath of the proof sent with it.
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }

    #[test]
    fn every_malformed_or_forged_header_is_refused() {
        let policy = DpopPolicy::default();
        let ed = SigningKey::generate(KeyAlg::EdDsa).unwrap();
        let es = SigningKey::generate(KeyAlg::Es256).unwrap();
        let hs = SigningKey::generate(KeyAlg::Hs256).unwrap();
        let good = forge(&header_of(&ed), &claims(), &ed);
        assert!(check(&good, &policy).is_ok());

        let with = |changes: &[(&str, Value)]| {
            let mut header = header_of(&ed);
            for (name, value) in changes {
                header[*name] = value.clone();
            }
            header
        };
        let without = |name: &str| {
            let mut header = header_of(&ed);
            header.as_object_mut().unwrap().remove(name);
            header
        };
        let mut private_jwk = public_members(&ed);
        private_jwk["d"] = json!("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
        let oct_jwk = json!({"kty": "oct", "k": URL_SAFE_NO_PAD.encode(&hs.material().private_der)});
        let mut jwk_with_other_alg = public_members(&ed);
        jwk_with_other_alg["alg"] = json!("ES256");
        let cases: Vec<(&str, String, DpopError)> = vec![
            ("typ JWT", forge(&with(&[("typ", json!("JWT"))]), &claims(), &ed), DpopError::WrongType),
            ("typ at+jwt", forge(&with(&[("typ", json!("at+jwt"))]), &claims(), &ed), DpopError::WrongType),
            ("no typ", forge(&without("typ"), &claims(), &ed), DpopError::WrongType),
            (
                "alg none",
                format!("{}.{}.AAAA", b64(&with(&[("alg", json!("none"))])), b64(&claims())),
                DpopError::UnsupportedAlgorithm,
            ),
            ("no alg", forge(&without("alg"), &claims(), &ed), DpopError::UnsupportedAlgorithm),
            (
                "HS256 with a symmetric jwk",
                forge(&json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": oct_jwk}), &claims(), &hs),
                DpopError::UnsupportedAlgorithm,
            ),
            ("ES384", forge(&with(&[("alg", json!("ES384"))]), &claims(), &ed), DpopError::UnsupportedAlgorithm),
            ("crit", forge(&with(&[("crit", json!(["exp"]))]), &claims(), &ed), DpopError::UnsupportedCritical),
            ("no jwk", forge(&without("jwk"), &claims(), &ed), DpopError::MissingJwk),
            ("private jwk", forge(&with(&[("jwk", private_jwk)]), &claims(), &ed), DpopError::PrivateJwk),
            ("jwk a string", forge(&with(&[("jwk", json!("x"))]), &claims(), &ed), DpopError::InvalidJwk),
            (
                "jwk names another alg",
                forge(&with(&[("jwk", jwk_with_other_alg)]), &claims(), &ed),
                DpopError::InvalidJwk,
            ),
            (
                "ES256 with an Ed25519 jwk",
                forge(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_members(&ed)}), &claims(), &es),
                DpopError::InvalidJwk,
            ),
            (
                "signed by another key than its jwk",
                forge(&json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": public_members(&es)}), &claims(), &{
                    SigningKey::generate(KeyAlg::Es256).unwrap()
                }),
                DpopError::BadSignature,
            ),
            (
                "tampered claims",
                {
                    let (header, rest) = good.split_once('.').unwrap();
                    let (_, signature) = rest.split_once('.').unwrap();
                    let mut claims = claims();
                    claims["htu"] = json!("https://id.example/admin");
                    format!("{header}.{}.{signature}", b64(&claims))
                },
                DpopError::BadSignature,
            ),
            (
                "tampered signature",
                {
                    let (input, signature) = good.rsplit_once('.').unwrap();
                    let mut bytes = URL_SAFE_NO_PAD.decode(signature).unwrap();
                    bytes[0] ^= 1;
                    format!("{input}.{}", URL_SAFE_NO_PAD.encode(bytes))
                },
                DpopError::BadSignature,
            ),
            ("two parts", good.rsplit_once('.').unwrap().0.to_owned(), DpopError::Malformed),
            ("four parts", format!("{good}.AAAA"), DpopError::Malformed),
            ("no signature", format!("{}.", good.rsplit_once('.').unwrap().0), DpopError::Malformed),
            (
                "padded header",
                format!("{}=.{}", b64(&header_of(&ed)), good.split_once('.').unwrap().1),
                DpopError::Malformed,
            ),
            ("header not JSON", format!("bm90IGpzb24.{}", good.split_once('.').unwrap().1), DpopError::Malformed),
            ("empty", String::new(), DpopError::Malformed),
        ];
        for (why, proof, expected) in cases {
            let err = check(&proof, &policy).expect_err(why);
            assert_eq!(err, expected, "{why}");
            assert_eq!(err.code(), DpopErrorCode::InvalidDpopProof, "{why}");
        }

        // A policy that lists HS256 still never accepts it.
        let lax = DpopPolicy { algs: KeyAlg::ALL.to_vec(), ..DpopPolicy::default() };
        let hs_proof = forge(&json!({"typ": "dpop+jwt", "alg": "HS256", "jwk": public_members(&ed)}), &claims(), &hs);
        assert_eq!(check(&hs_proof, &lax), Err(DpopError::UnsupportedAlgorithm));
    }

    #[test]
    fn rs256_is_accepted_only_when_the_policy_lists_it() {
        let rsa = SigningKey::generate(KeyAlg::Rs256).unwrap();
        let proof = forge(&header_of(&rsa), &claims(), &rsa);
        assert_eq!(check(&proof, &DpopPolicy::default()), Err(DpopError::UnsupportedAlgorithm));
        let with_rsa = DpopPolicy { algs: vec![KeyAlg::EdDsa, KeyAlg::Es256, KeyAlg::Rs256], ..DpopPolicy::default() };
        assert_eq!(check(&proof, &with_rsa).unwrap().jkt, rsa.thumbprint());
    }

    #[test]
    fn every_wrong_or_missing_claim_is_refused() {
        let policy = DpopPolicy::default();
        let key = SigningKey::generate(KeyAlg::EdDsa).unwrap();
        let with = |name: &str, value: Value| {
            let mut claims = claims();
            claims[name] = value;
            forge(&header_of(&key), &claims, &key)
        };
        let without = |name: &str| {
            let mut claims = claims();
            claims.as_object_mut().unwrap().remove(name);
            forge(&header_of(&key), &claims, &key)
        };
        let cases: Vec<(&str, String, DpopError)> = vec![
            ("no jti", without("jti"), DpopError::MissingClaim("jti")),
            ("empty jti", with("jti", json!("")), DpopError::InvalidJti),
            ("long jti", with("jti", json!("j".repeat(MAX_JTI_BYTES + 1))), DpopError::InvalidJti),
            ("no htm", without("htm"), DpopError::MissingClaim("htm")),
            ("no htu", without("htu"), DpopError::MissingClaim("htu")),
            ("no iat", without("iat"), DpopError::MissingClaim("iat")),
            ("iat a string", with("iat", json!("1700000000")), DpopError::Malformed),
            ("htm GET", with("htm", json!("GET")), DpopError::WrongMethod),
            ("htm post", with("htm", json!("post")), DpopError::WrongMethod),
            ("another path", with("htu", json!("https://id.example/token/x")), DpopError::WrongUri),
            ("another path, dot segments", with("htu", json!("https://id.example/a/../revoke")), DpopError::WrongUri),
            ("another host", with("htu", json!("https://evil.example/token")), DpopError::WrongUri),
            ("http", with("htu", json!("http://id.example/token")), DpopError::WrongUri),
            ("another port", with("htu", json!("https://id.example:8443/token")), DpopError::WrongUri),
            ("userinfo", with("htu", json!("https://a@id.example/token")), DpopError::WrongUri),
            ("relative", with("htu", json!("/token")), DpopError::WrongUri),
            ("iat 61 s ago", with("iat", json!(NOW - 61)), DpopError::TooOld),
            ("iat 6 s ahead", with("iat", json!(NOW + 6)), DpopError::IssuedInFuture),
            ("oversize", with("pad", json!("x".repeat(DEFAULT_MAX_PROOF_BYTES))), DpopError::TooLarge),
        ];
        for (why, proof, expected) in cases {
            let err = check(&proof, &policy).expect_err(why);
            assert_eq!(err, expected, "{why}");
            assert_eq!(err.code(), DpopErrorCode::InvalidDpopProof, "{why}");
            let shown = err.to_string();
            assert!(!shown.contains("eyJ") && !shown.contains("id.example"), "{why} quotes the proof: {shown}");
        }
        for (why, proof) in [
            ("query", with("htu", json!("https://id.example/token?a=1"))),
            ("fragment", with("htu", json!("https://id.example/token#f"))),
            ("host case", with("htu", json!("https://ID.Example/token"))),
            ("scheme case", with("htu", json!("HTTPS://id.example/token"))),
            ("default port", with("htu", json!("https://id.example:443/token"))),
            ("dot segment", with("htu", json!("https://id.example/a/../token"))),
            ("encoded unreserved", with("htu", json!("https://id.example/%74oken"))),
            ("iat 60 s ago", with("iat", json!(NOW - 60))),
            ("iat 5 s ahead", with("iat", json!(NOW + 5))),
            ("fractional iat", with("iat", json!(NOW as f64 + 0.5))),
            ("nonce not asked for", with("nonce", json!("whatever"))),
            ("ath without a token", with("ath", json!("whatever"))),
        ] {
            assert!(check(&proof, &policy).is_ok(), "{why}: {:?}", check(&proof, &policy));
        }
        // The request URI is normalised too.
        let proof = forge(&header_of(&key), &claims(), &key);
        let expect = ProofExpectations::new(&policy, "POST", "https://ID.EXAMPLE:443/token?grant_type=x");
        assert!(verify_proof(&proof, &expect, NOW).is_ok());
    }

    #[test]
    fn a_required_nonce_that_is_missing_or_wrong_asks_for_a_nonce() {
        let policy = DpopPolicy::default();
        let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
        let expect = ProofExpectations::new(&policy, "POST", URI).with_nonce(NonceCheck::Equals("n-1"));
        let missing = verify_proof(&key.proof("POST", URI, None, None, NOW).unwrap(), &expect, NOW).unwrap_err();
        assert_eq!((missing.clone(), missing.code()), (DpopError::NonceRequired, DpopErrorCode::UseDpopNonce));
        let wrong = verify_proof(&key.proof("POST", URI, None, Some("n-2"), NOW).unwrap(), &expect, NOW).unwrap_err();
        assert_eq!((wrong.clone(), wrong.code()), (DpopError::WrongNonce, DpopErrorCode::UseDpopNonce));
        assert_eq!(wrong.code().as_str(), "use_dpop_nonce");
        assert_eq!(serde_json::to_value(DpopErrorCode::InvalidDpopProof).unwrap(), json!("invalid_dpop_proof"));
        assert!(verify_proof(&key.proof("POST", URI, None, Some("n-1"), NOW).unwrap(), &expect, NOW).is_ok());

        // Stateless nonces: another instance with the same secret accepts what this one issued.
        let secret = [7u8; 32];
        let issuer = NonceSource::new(&secret, 300).unwrap();
        let other_instance = NonceSource::new(&secret, 300).unwrap();
        let nonce = issuer.nonce(NOW);
        let expect = ProofExpectations::new(&policy, "POST", URI).with_nonce(NonceCheck::Source(&other_instance));
        let proof = key.proof("POST", URI, None, Some(&nonce), NOW).unwrap();
        assert!(verify_proof(&proof, &expect, NOW).is_ok());
        let later = key.proof("POST", URI, None, Some(&nonce), NOW + 700).unwrap();
        assert_eq!(verify_proof(&later, &expect, NOW + 700), Err(DpopError::WrongNonce));
    }

    #[test]
    fn ath_must_hash_the_access_token_presented() {
        let policy = DpopPolicy::default();
        let key = DpopKey::generate(KeyAlg::Es256).unwrap();
        let expect = ProofExpectations::new(&policy, "GET", URI).with_access_token("token-a");
        let proof = |token| key.proof("GET", URI, token, None, NOW).unwrap();
        assert!(verify_proof(&proof(Some("token-a")), &expect, NOW).is_ok());
        assert_eq!(verify_proof(&proof(Some("token-b")), &expect, NOW), Err(DpopError::WrongAccessTokenHash));
        assert_eq!(verify_proof(&proof(None), &expect, NOW), Err(DpopError::MissingClaim("ath")));
    }

    #[test]
    fn htu_normalisation() {
        let same = [
            ("https://id.example/token", "https://id.example/token"),
            ("HTTPS://ID.example:443/token?x=1#f", "https://id.example/token"),
            ("http://id.example:80", "http://id.example/"),
            ("https://id.example:", "https://id.example/"),
            ("https://id.example:0443/a", "https://id.example/a"),
            ("https://id.example:8443/a", "https://id.example:8443/a"),
            ("http://id.example:443/a", "http://id.example:443/a"),
            ("https://[::1]:8443/a", "https://[::1]:8443/a"),
            ("https://[::1]/a", "https://[::1]/a"),
            ("https://h/a/./b/../c/", "https://h/a/c/"),
            ("https://h/a/..", "https://h/"),
            ("https://h/%7euser/%2fx%2F", "https://h/~user/%2Fx%2F"),
            ("https://h/A", "https://h/A"),
        ];
        for (input, expected) in same {
            assert_eq!(normalize_htu(input).as_deref(), Some(expected), "{input}");
        }
        for bad in [
            "ftp://h/a",
            "//h/a",
            "/a",
            "https://",
            "https:///a",
            "https://u:p@h/a",
            "https://h:99999/a",
            "https://h:x/a",
            "https://::1/a",
            "https://h/%zz",
            "https://h/%4",
            "https://h%41/a",
            "https://h/a b",
            "https://h/é",
        ] {
            assert_eq!(normalize_htu(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_jti_cache_refuses_a_seen_pair_until_it_expires() {
        let cache = MemoryJtiCache::new(100);
        assert!(cache.check_and_insert("k1", "j1", NOW + 60, NOW));
        assert!(!cache.check_and_insert("k1", "j1", NOW + 60, NOW + 1), "replay");
        assert!(!cache.check_and_insert("k1", "j1", NOW + 60, NOW + 60), "replay at the last second");
        assert!(cache.check_and_insert("k1", "j2", NOW + 60, NOW), "another jti");
        assert!(cache.check_and_insert("k2", "j1", NOW + 60, NOW), "another key");
        assert!(cache.check_and_insert("k", "1j1", NOW + 60, NOW), "no ambiguity between jkt and jti");
        assert!(cache.check_and_insert("k1j", "1", NOW + 60, NOW), "no ambiguity between jkt and jti");
        assert_eq!(cache.len(), 5);
        assert!(cache.check_and_insert("k1", "j1", NOW + 121, NOW + 61), "accepted again after expiry");
        assert_eq!(cache.len(), 1, "the expired pairs were pruned");

        // Full of live pairs: refuses (fails closed) until some expire.
        let small = MemoryJtiCache::new(2);
        assert!(small.check_and_insert("k", "a", NOW + 10, NOW));
        assert!(small.check_and_insert("k", "b", NOW + 20, NOW));
        assert!(!small.check_and_insert("k", "c", NOW + 20, NOW));
        assert!(small.check_and_insert("k", "c", NOW + 20, NOW + 11));
        assert!(!small.is_empty());

        // From a verified proof, across threads: exactly one of many concurrent inserts wins.
        let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
        let policy = DpopPolicy::default();
        let proof = check(&key.proof("POST", URI, None, None, NOW).unwrap(), &policy).unwrap();
        let cache = std::sync::Arc::new(MemoryJtiCache::new(100));
        let winners: usize = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (cache, proof) = (cache.clone(), &proof);
                    s.spawn(move || cache.check_and_insert(&proof.jkt, &proof.jti, proof.replay_until, NOW))
                })
                .collect();
            handles.into_iter().map(|h| usize::from(h.join().unwrap())).sum()
        });
        assert_eq!(winners, 1);
    }

    #[test]
    fn nonces_are_accepted_for_the_current_and_the_previous_bucket_only() {
        let source = NonceSource::new(&[1u8; 32], 300).unwrap();
        let start = 1_700_000_100; // a bucket starts at 1_700_000_100 (a multiple of 300)
        assert_eq!(start % 300, 0);
        let nonce = source.nonce(start);
        assert_eq!(nonce, source.nonce(start + 299), "one nonce per bucket");
        assert_ne!(nonce, source.nonce(start + 300));
        assert_eq!(nonce.len(), 43);
        assert!(source.accepts(&nonce, start));
        assert!(source.accepts(&nonce, start + 599), "previous bucket");
        assert!(!source.accepts(&nonce, start + 600), "two buckets old");
        assert!(!source.accepts(&nonce, start - 1), "a future bucket");
        assert!(!NonceSource::new(&[2u8; 32], 300).unwrap().accepts(&nonce, start), "another secret");
        assert!(!NonceSource::generate(300).unwrap().accepts(&nonce, start), "a random secret");
        for garbage in ["", "AAAA", "!!", &"A".repeat(1000), &format!("{nonce}=")] {
            assert!(!source.accepts(garbage, start), "{garbage}");
        }
        assert!(NonceSource::new(&[1u8; 31], 300).is_err());
        assert!(NonceSource::new(&[1u8; 32], 0).is_err());
        assert!(!format!("{source:?}").contains("[1"));
    }

    #[test]
    fn the_cnf_claim_carries_the_jkt_and_matches_only_its_key() {
        #[derive(Serialize, Deserialize)]
        struct Claims {
            cnf: Confirmation,
        }
        let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
        let policy = DpopPolicy::default();
        let proof = check(&key.proof("POST", URI, None, None, NOW).unwrap(), &policy).unwrap();
        let cnf = Confirmation::for_proof(&proof);
        assert_eq!(serde_json::to_value(Claims { cnf: cnf.clone() }).unwrap(), json!({"cnf": {"jkt": key.jkt()}}));
        let parsed: Claims = serde_json::from_value(json!({"cnf": {"jkt": key.jkt()}})).unwrap();
        assert_eq!(parsed.cnf, cnf);
        assert!(cnf.matches(&proof) && cnf.check(&proof).is_ok());
        let other = DpopKey::generate(KeyAlg::EdDsa).unwrap();
        let other_proof = check(&other.proof("POST", URI, None, None, NOW).unwrap(), &policy).unwrap();
        assert!(!cnf.matches(&other_proof));
        assert_eq!(cnf.check(&other_proof), Err(DpopError::KeyMismatch));
    }
}
