//! DPoP (RFC 9449): the client's key, and the proof on each of its requests.
//!
//! With [`crate::ClientBuilder::dpop`] (or [`crate::ServiceClientBuilder::dpop`]) every request
//! the client sends carries a `DPoP` header: a JWT signed with the client's key, naming the
//! request's method (`htm`) and URL without query and fragment (`htu`), made now (`iat`, by the
//! client's clock), with a random `jti`, the hash of the access token sent with it (`ath`), and
//! the latest `DPoP-Nonce` the server at that origin handed out. keycard binds what it issues to
//! the key (`cnf.jkt`, `token_type: DPoP`), and the access token goes out as
//! `Authorization: DPoP <token>`: a copy of it, or of the refresh token, is useless without the
//! key.
//!
//! Nonces (RFC 9449 §8, §9): the `DPoP-Nonce` of every answer is remembered per origin
//! (scheme, host and port). An answer asking for a nonce (400 `use_dpop_nonce` from a token
//! endpoint, or 401 with `WWW-Authenticate: DPoP error="use_dpop_nonce"` from a resource server)
//! that brings one is answered by sending the request once more with a new proof carrying it
//! ([`crate::ClientStats::dpop_nonce_retries`] counts those).
//!
//! The key: a new one made when the client is built and held in memory only
//! ([`DpopKeySource::Generate`]; Ed25519 by default, P-256 with [`DpopAlg::Es256`]), or a
//! PKCS#8 PEM file read once when it is built ([`DpopKeySource::PemFile`]; write one with
//! [`DpopKey::to_pkcs8_pem`]), or a [`DpopKey`] the application holds ([`DpopKeySource::key`]).
//! A file that cannot be read or is not an Ed25519 or P-256 private key is a
//! [`DpopKeyError`] naming the file; neither errors nor `Debug` output ever hold key bytes (a
//! key shows its thumbprint only).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use keycard_core::clock::Clock;
use keycard_core::keys::KeyAlg;
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue, WWW_AUTHENTICATE};
use reqwest::{Method, Request, Response, StatusCode, Url};

pub use keycard_core::dpop::DpopKey;

use crate::error::ClientError;

/// The name of the proof header.
const DPOP: &str = "dpop";

/// The name of the header servers hand nonces out in.
const DPOP_NONCE: &str = "dpop-nonce";

/// Largest 400 body read to tell whether it asks for a nonce (the answer is handed on as read).
const BODY_LIMIT: usize = 64 * 1024;

/// The signature algorithm of a generated DPoP key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DpopAlg {
    /// Ed25519 (`EdDSA`): small, fast, the default.
    #[default]
    EdDsa,
    /// P-256 (`ES256`), for servers that accept nothing else.
    Es256,
}

impl DpopAlg {
    fn key_alg(self) -> KeyAlg {
        match self {
            Self::EdDsa => KeyAlg::EdDsa,
            Self::Es256 => KeyAlg::Es256,
        }
    }
}

/// Where a client's DPoP key comes from; see [`crate::ClientBuilder::dpop`]. `Debug` shows the
/// algorithm, the path or the key's thumbprint, never key bytes.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DpopKeySource {
    /// A new key, made when the client is built and kept in memory only: it dies with the
    /// process, and so do the tokens bound to it.
    Generate(DpopAlg),
    /// A PKCS#8 PEM file (`BEGIN PRIVATE KEY`: Ed25519 or P-256; SEC1 `BEGIN EC PRIVATE KEY`
    /// for P-256 too), read once when the client is built. Keep it readable by the application
    /// only (mode 0600).
    PemFile(PathBuf),
    /// A key the application already holds ([`DpopKeySource::key`]).
    Key(Box<DpopKey>),
}

impl Default for DpopKeySource {
    /// A new Ed25519 key in memory.
    fn default() -> Self {
        Self::Generate(DpopAlg::EdDsa)
    }
}

impl DpopKeySource {
    /// A new Ed25519 key in memory ([`DpopKeySource::Generate`] with [`DpopAlg::EdDsa`]).
    pub fn generate() -> Self {
        Self::default()
    }

    /// The key in the PEM file at `path` ([`DpopKeySource::PemFile`]).
    pub fn pem_file(path: impl Into<PathBuf>) -> Self {
        Self::PemFile(path.into())
    }

    /// A key the application already holds ([`DpopKeySource::Key`]).
    pub fn key(key: DpopKey) -> Self {
        Self::Key(Box::new(key))
    }

    /// The key itself: made, read or taken.
    pub(crate) fn load(self) -> Result<DpopKey, DpopKeyError> {
        match self {
            Self::Generate(alg) => DpopKey::generate(alg.key_alg()).map_err(|e| DpopKeyError::Generate(e.to_string())),
            Self::PemFile(path) => {
                let text = match std::fs::read(&path) {
                    Ok(text) => text,
                    Err(source) => return Err(DpopKeyError::Unreadable { path, source }),
                };
                // keycard-core's reasons never quote the document.
                DpopKey::from_pem(&text).map_err(|e| DpopKeyError::Invalid { path, reason: e.to_string() })
            }
            Self::Key(key) => Ok(*key),
        }
    }
}

/// The DPoP key could not be made or read, or a proof could not be signed. The text names the
/// file and what is wrong with it, never its content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DpopKeyError {
    /// The key file could not be read (missing, a directory, no permission).
    #[error("DPoP key file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },
    /// The key file holds no usable key: not PEM, encrypted, a public key or certificate, or a
    /// key that is neither Ed25519 nor P-256.
    #[error("DPoP key file {}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong, and how to fix it.
        reason: String,
    },
    /// No key could be generated (no OS randomness).
    #[error("could not generate a DPoP key: {0}")]
    Generate(String),
    /// A proof could not be signed.
    #[error("could not sign a DPoP proof: {0}")]
    Sign(String),
}

/// A client's DPoP state: the key, and the latest nonce of each origin.
pub(crate) struct Dpop {
    key: DpopKey,
    /// Origin (`scheme://host:port`) → the latest `DPoP-Nonce` it sent.
    nonces: Mutex<HashMap<String, String>>,
    nonce_retries: AtomicU64,
}

impl std::fmt::Debug for Dpop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dpop").field("key", &self.key).finish_non_exhaustive()
    }
}

impl Dpop {
    pub(crate) fn new(key: DpopKey) -> Self {
        Self { key, nonces: Mutex::default(), nonce_retries: AtomicU64::new(0) }
    }

    /// The RFC 7638 thumbprint of the key (what bound tokens carry as `cnf.jkt`).
    pub(crate) fn jkt(&self) -> String {
        self.key.jkt()
    }

    /// Requests sent again with a server's new nonce.
    pub(crate) fn nonce_retries(&self) -> u64 {
        self.nonce_retries.load(Ordering::Relaxed)
    }

    fn nonces(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.nonces.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A proof for `method url` at `now` (Unix seconds), with `ath` of `access_token` and the
    /// origin's latest nonce.
    pub(crate) fn proof(
        &self,
        method: &Method,
        url: &Url,
        access_token: Option<&str>,
        now: i64,
    ) -> Result<String, ClientError> {
        let mut htu = url.clone();
        htu.set_query(None);
        htu.set_fragment(None);
        // Userinfo becomes Basic authorization on the wire; it is no part of the URI addressed.
        let _ = htu.set_username("");
        let _ = htu.set_password(None);
        let nonce = self.nonces().get(&origin(url)).cloned();
        self.key
            .proof(method.as_str(), htu.as_str(), access_token, nonce.as_deref(), now)
            .map_err(|e| ClientError::DpopKey(DpopKeyError::Sign(e.to_string())))
    }

    /// Keeps the `DPoP-Nonce` of an answer from `url`'s origin; whether it had one.
    fn remember(&self, url: &Url, headers: &HeaderMap) -> bool {
        let Some(nonce) = headers.get(DPOP_NONCE).and_then(|v| v.to_str().ok()) else { return false };
        // RFC 9449 §8.1: NQCHAR (visible ASCII but '"' and '\'); anything else is not a nonce.
        if nonce.is_empty() || !nonce.bytes().all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\') {
            return false;
        }
        self.nonces().insert(origin(url), nonce.to_owned());
        true
    }
}

/// `scheme://host:port` of `url`.
fn origin(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The `Authorization` header of a request: `Bearer <token>`, or `DPoP <token>` for a token
/// bound to the client's key.
fn authorization(scheme: &str, token: &str) -> Result<HeaderValue, ClientError> {
    let mut value = HeaderValue::from_str(&format!("{scheme} {token}"))
        .map_err(|_| ClientError::Protocol("the access token is not a valid header value".into()))?;
    value.set_sensitive(true);
    Ok(value)
}

/// `request` with its `Authorization` (when `access_token` is given) and, with DPoP, a fresh
/// proof.
fn prepare(
    mut request: Request,
    dpop: Option<&Dpop>,
    access_token: Option<&str>,
    clock: &dyn Clock,
) -> Result<Request, ClientError> {
    let scheme = if dpop.is_some() { "DPoP" } else { "Bearer" };
    if let Some(token) = access_token {
        request.headers_mut().insert(AUTHORIZATION, authorization(scheme, token)?);
    }
    if let Some(dpop) = dpop {
        let proof = dpop.proof(request.method(), request.url(), access_token, clock.now())?;
        let mut value = HeaderValue::from_str(&proof)
            .map_err(|_| ClientError::Protocol("a DPoP proof is not a valid header value".into()))?;
        value.set_sensitive(true);
        request.headers_mut().insert(DPOP, value);
    }
    Ok(request)
}

/// Sends `request` through `http` with `access_token` (as `Bearer`, or as `DPoP` when `dpop` is
/// on) and, with DPoP, a fresh proof for it. The answer's `DPoP-Nonce` is remembered; an answer
/// asking for a nonce and bringing one gets the request sent once more with a new proof (when
/// the request can be cloned: a streaming body cannot be sent twice). The answer is returned
/// whatever its status, for the caller to read as before.
pub(crate) async fn execute(
    http: &reqwest::Client,
    request: Request,
    dpop: Option<&Dpop>,
    access_token: Option<&str>,
    clock: &dyn Clock,
) -> Result<Response, ClientError> {
    let Some(dpop) = dpop else {
        return Ok(http.execute(prepare(request, None, access_token, clock)?).await?);
    };
    let url = request.url().clone();
    let retry = request.try_clone();
    let response = http.execute(prepare(request, Some(dpop), access_token, clock)?).await?;
    if !dpop.remember(&url, response.headers()) {
        return Ok(response);
    }
    let Some(retry) = retry else { return Ok(response) };
    let response = match response.status() {
        StatusCode::UNAUTHORIZED if challenge_asks_for_nonce(response.headers()) => response,
        StatusCode::BAD_REQUEST => {
            let (response, asks) = read_bad_request(response).await?;
            if !asks {
                return Ok(response);
            }
            response
        }
        _ => return Ok(response),
    };
    drop(response);
    dpop.nonce_retries.fetch_add(1, Ordering::Relaxed);
    tracing::debug!(origin = %origin(&url), "the server asked for a DPoP nonce; sending again with it");
    let response = http.execute(prepare(retry, Some(dpop), access_token, clock)?).await?;
    dpop.remember(&url, response.headers());
    Ok(response)
}

/// Whether a 401's `WWW-Authenticate` is a DPoP challenge with `error="use_dpop_nonce"`.
fn challenge_asks_for_nonce(headers: &HeaderMap) -> bool {
    headers.get_all(WWW_AUTHENTICATE).iter().filter_map(|v| v.to_str().ok()).any(|v| {
        let v = v.trim_start();
        v.get(..5).is_some_and(|s| s.eq_ignore_ascii_case("dpop ")) && v.contains("error=\"use_dpop_nonce\"")
    })
}

/// Reads a 400 answer (up to [`BODY_LIMIT`]) to tell whether its error is `use_dpop_nonce`, and
/// gives back an answer with the same status, headers and body for the caller.
async fn read_bad_request(mut response: Response) -> Result<(Response, bool), ClientError> {
    #[derive(serde::Deserialize)]
    struct Error {
        error: String,
    }
    let (status, version, headers) = (response.status(), response.version(), response.headers().clone());
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > BODY_LIMIT {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let asks = serde_json::from_slice::<Error>(&body).is_ok_and(|e| e.error == "use_dpop_nonce");
    let mut rebuilt = http::Response::new(body);
    *rebuilt.status_mut() = status;
    *rebuilt.version_mut() = version;
    *rebuilt.headers_mut() = headers;
    Ok((Response::from(rebuilt), asks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonces_are_kept_per_origin_and_only_when_well_formed() {
        let dpop = Dpop::new(DpopKey::generate(KeyAlg::EdDsa).unwrap());
        let a: Url = "https://a.example/x?y=1".parse().unwrap();
        let a_port: Url = "https://a.example:8443/x".parse().unwrap();
        let mut headers = HeaderMap::new();
        assert!(!dpop.remember(&a, &headers));
        headers.insert(DPOP_NONCE, HeaderValue::from_static("n-1"));
        assert!(dpop.remember(&a, &headers));
        headers.insert(DPOP_NONCE, HeaderValue::from_static("bad\"nonce"));
        assert!(!dpop.remember(&a, &headers));
        assert_eq!(dpop.nonces().get("https://a.example").map(String::as_str), Some("n-1"));
        assert!(!dpop.nonces().contains_key(&origin(&a_port)));
    }

    #[test]
    fn only_a_dpop_challenge_asking_for_a_nonce_counts() {
        let with = |value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(value));
            challenge_asks_for_nonce(&headers)
        };
        assert!(with("DPoP error=\"use_dpop_nonce\", algs=\"EdDSA ES256\""));
        assert!(with("dpop error=\"use_dpop_nonce\""));
        assert!(!with("DPoP error=\"invalid_dpop_proof\""));
        assert!(!with("Bearer error=\"use_dpop_nonce\""));
    }

    #[test]
    fn debug_shows_the_thumbprint_never_the_key() {
        let key = DpopKey::generate(KeyAlg::Es256).unwrap();
        let pem = key.to_pkcs8_pem();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        for shown in [format!("{:?}", Dpop::new(key.clone())), format!("{:?}", DpopKeySource::key(key.clone()))] {
            assert!(shown.contains(&key.jkt()), "{shown}");
            assert!(!shown.contains(&body[..24]) && !shown.contains(&body[body.len() - 24..]), "{shown}");
        }
    }
}
