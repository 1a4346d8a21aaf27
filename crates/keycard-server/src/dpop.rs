//! DPoP (RFC 9449) on keycard's own routes: reading the `DPoP` header of a request, checking its
//! proof with [`keycard_core::dpop::verify_proof`] against the server's public URL, refusing
//! replays across instances (the store, or Redis when rate limits share one), and the server
//! nonces. The proof rules themselves live in keycard-core; this module owns the HTTP edge:
//!
//! - token requests (`/auth/login`, `/auth/mfa/verify`, `/auth/refresh`, `/oauth/token`):
//!   [`token_proof`] — an optional proof (required by `dpop_required` or
//!   `dpop_required_clients`), whose key the new session or client token is bound to;
//! - protected routes (the `Authenticated` extractor): [`resource_proof`] — the proof of an
//!   `Authorization: DPoP` request, with `ath`, made with the token's `cnf.jkt` key.
//!
//! `htu` is compared with the issuer (the URL clients address keycard by) followed by the
//! request's path: the `Host` header is never trusted.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use keycard_core::ErrorCode;
use keycard_core::dpop::{
    Confirmation, DEFAULT_NONCE_PERIOD_SECS, DpopError, DpopPolicy, NonceCheck, NonceSource, ProofExpectations,
    VerifiedProof, verify_proof,
};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::keys::MasterKey;
use crate::settings::Settings;
use crate::state::AppState;

/// Whether every session must be DPoP-bound (the `dpop_required` setting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DpopRequired {
    /// Proofs are accepted (and bind what they obtain) but not required.
    #[default]
    Off,
    /// Every login, MFA step, refresh and `/oauth/token` request needs a proof.
    All,
}

/// The DPoP settings, resolved.
#[derive(Debug, Clone)]
pub struct DpopConfig {
    /// Proofs required for everything.
    pub required: DpopRequired,
    /// OAuth clients (ids) that must use DPoP; `keycard` covers keycard's own login and refresh.
    pub required_clients: Vec<String>,
    /// Whether proofs must carry a server nonce.
    pub nonce: bool,
    /// Algorithms (EdDSA, also named Ed25519, and ES256), window (60 s back, 5 s ahead) and size (8 KiB).
    pub policy: DpopPolicy,
    /// `algs` of the `WWW-Authenticate: DPoP` challenge.
    pub algs: String,
}

impl DpopConfig {
    /// From the settings.
    pub fn from_settings(settings: &Settings) -> Self {
        let policy = DpopPolicy::default();
        let algs = policy.alg_names().join(" ");
        Self {
            required: settings.dpop_required,
            required_clients: settings.dpop_required_clients.0.clone(),
            nonce: settings.dpop_nonce,
            policy,
            algs,
        }
    }

    /// Whether a token request of OAuth client `client_id` must carry a proof.
    pub fn required_for(&self, client_id: &str) -> bool {
        self.required == DpopRequired::All || self.required_clients.iter().any(|c| c == client_id)
    }
}

/// The nonce source of a server: its secret is an HMAC of a label under the master key's derived
/// device key, so instances sharing the master key agree without storing anything.
pub fn nonce_source(master: &MasterKey) -> NonceSource {
    let secret = aws_lc_rs::hmac::sign(master.device_key(), b"keycard dpop nonce secret v1");
    match NonceSource::new(secret.as_ref(), DEFAULT_NONCE_PERIOD_SECS) {
        Ok(source) => source,
        Err(_) => unreachable!("a 32-byte secret and a positive period are always accepted"),
    }
}

/// Where a proof is checked: decides the status (400 at token endpoints, 401 with a
/// `WWW-Authenticate: DPoP` challenge on protected routes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// A token request.
    Token,
    /// A protected route.
    Resource,
}

impl ApiError {
    /// A refused proof (or DPoP-bound token) at `place`, with the current nonce when nonces are on.
    pub fn dpop(state: &AppState, place: Place, code: ErrorCode, description: impl Into<String>) -> Self {
        let nonce = state.config.dpop.nonce.then(|| state.dpop_nonces.nonce(state.now()));
        Self::Dpop {
            code,
            description: description.into(),
            resource: place == Place::Resource,
            algs: state.config.dpop.algs.clone(),
            nonce,
        }
    }

    fn dpop_proof(state: &AppState, place: Place, error: &DpopError) -> Self {
        let code = match error.code() {
            keycard_core::dpop::DpopErrorCode::UseDpopNonce => ErrorCode::UseDpopNonce,
            _ => ErrorCode::InvalidDpopProof,
        };
        Self::dpop(state, place, code, error.to_string())
    }
}

/// The one `DPoP` header of a request: `None` without one; refused when there are several or it
/// is not text.
fn header_proof<'h>(state: &AppState, place: Place, headers: &'h HeaderMap) -> Result<Option<&'h str>, ApiError> {
    let mut values = headers.get_all("dpop").iter();
    let Some(first) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err(ApiError::dpop(state, place, ErrorCode::InvalidDpopProof, "send exactly one DPoP header"));
    }
    first.to_str().map(Some).map_err(|_| ApiError::dpop_proof(state, place, &DpopError::Malformed))
}

/// Checks `proof` for `method path` (and `access_token`), then spends its `(jkt, jti)`.
async fn check(
    state: &AppState,
    place: Place,
    proof: &str,
    method: &Method,
    path: &str,
    access_token: Option<&str>,
    cnf: Option<&Confirmation>,
) -> Result<VerifiedProof, ApiError> {
    let config = &state.config.dpop;
    let htu = format!("{}{path}", state.config.issuer.trim_end_matches('/'));
    let mut expect = ProofExpectations::new(&config.policy, method.as_str(), &htu);
    if let Some(token) = access_token {
        expect = expect.with_access_token(token);
    }
    if config.nonce {
        expect = expect.with_nonce(NonceCheck::Source(&state.dpop_nonces));
    }
    let now = state.now();
    let verified = verify_proof(proof, &expect, now).map_err(|e| ApiError::dpop_proof(state, place, &e))?;
    if let Some(cnf) = cnf {
        cnf.check(&verified).map_err(|e| ApiError::dpop_proof(state, place, &e))?;
    }
    // Last, so that a proof refused for another reason is not spent.
    let fresh = match state.limits.spend_once(&replay_key(&verified), ttl(&verified, now)).await {
        Some(spent) => spent?,
        None => state.store.spend_dpop_proof(&verified.jkt, &verified.jti, verified.replay_until, now).await?,
    };
    if !fresh {
        metrics::counter!("keycard_dpop_refused_total", "reason" => "replayed").increment(1);
        return Err(ApiError::dpop_proof(state, place, &DpopError::Replayed));
    }
    Ok(verified)
}

/// The Redis key of a proof: the thumbprint and a SHA-256 of the `jti` (any length, any bytes).
fn replay_key(proof: &VerifiedProof) -> String {
    let jti = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, proof.jti.as_bytes());
    let hex: String = jti.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("keycard:dpop:{}:{hex}", proof.jkt)
}

/// Seconds until the proof could no longer be accepted anyway, plus one.
fn ttl(proof: &VerifiedProof, now: i64) -> u64 {
    u64::try_from(proof.replay_until - now + 1).unwrap_or(1)
}

/// The proof of a token request to `path` by OAuth client `client_id`: `None` without a `DPoP`
/// header (refused with `invalid_dpop_proof` when the settings require one for this client).
pub async fn token_proof(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    client_id: &str,
) -> Result<Option<VerifiedProof>, ApiError> {
    match header_proof(state, Place::Token, headers)? {
        Some(proof) => check(state, Place::Token, proof, method, path, None, None).await.map(Some),
        None if state.config.dpop.required_for(client_id) => Err(ApiError::dpop(
            state,
            Place::Token,
            ErrorCode::InvalidDpopProof,
            "a DPoP proof is required (RFC 9449): send one in the DPoP header",
        )),
        None => Ok(None),
    }
}

/// The proof of an `Authorization: DPoP <token>` request to a protected route, for a token
/// bound to `cnf`: present, valid for this request and token (`ath`), made with the bound key,
/// and new.
pub async fn resource_proof(
    state: &AppState,
    headers: &HeaderMap,
    method: &Method,
    path: &str,
    token: &str,
    cnf: &Confirmation,
) -> Result<VerifiedProof, ApiError> {
    let Some(proof) = header_proof(state, Place::Resource, headers)? else {
        return Err(ApiError::dpop(state, Place::Resource, ErrorCode::InvalidDpopProof, "the DPoP proof is missing"));
    };
    check(state, Place::Resource, proof, method, path, Some(token), Some(cnf)).await
}

/// With server nonces on (a layer added only then): the answer to a request that carried a
/// `DPoP` header gets the current nonce in `DPoP-Nonce` unless it has one (refusals set their
/// own), so a client's next proof can carry it before the nonce it holds expires.
pub async fn offer_nonce(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let sent_proof = request.headers().contains_key("dpop");
    let mut response = next.run(request).await;
    if sent_proof && !response.headers().contains_key(NONCE_HEADER) {
        let nonce = state.dpop_nonces.nonce(state.now());
        if let Ok(value) = HeaderValue::from_str(&nonce) {
            response.headers_mut().insert(NONCE_HEADER, value);
        }
    }
    response
}

/// The response header carrying a server nonce.
pub const NONCE_HEADER: &str = "dpop-nonce";

/// The `token_type` of a response for a token bound (or not) to a key.
pub fn token_type(bound: bool) -> &'static str {
    if bound { "DPoP" } else { "Bearer" }
}
