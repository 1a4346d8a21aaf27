//! Errors: why a request was refused ([`VerifyError`], which knows its HTTP answer), and why
//! keys or the revocation feed could not be fetched ([`FetchError`], [`BuildError`]).

use std::time::Duration;

use axum_core::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use keycard_core::dpop::DpopError;
use keycard_core::{ErrorBody, ErrorCode, TokenError};

use crate::step_up::StepUp;

/// Why a request's access token was refused. Every variant is 401 `invalid_token` but a step-up
/// requirement not met (401 `insufficient_user_authentication`), stale revocation data and
/// unavailable introspection (503) and a missing verifier (500); the text is safe to log (it
/// never holds the token or a secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// The request carries no `Authorization` header.
    #[error("a Bearer access token is required")]
    MissingToken,
    /// The `Authorization` header is not one `Bearer <token>`.
    #[error("the Authorization header must be one \"Bearer <token>\"")]
    MalformedHeader,
    /// The token failed a check of the validation checklist (including a revoked `sid`).
    #[error("invalid access token: {0}")]
    Token(#[from] TokenError),
    /// The revocation feed was not refreshed within the staleness bound, and the verifier is
    /// configured to fail closed ([`crate::WhenStale::Reject`]): 503, retry shortly.
    #[error("revocation data is stale (last refreshed {}); refusing tokens until it is fresh", describe_age(*.age))]
    RevocationFeedStale {
        /// Time since the last complete refresh began; `None` if there never was one.
        age: Option<Duration>,
        /// The configured staleness bound.
        bound: Duration,
    },
    /// Introspection (the opt-in fallback for opaque tokens) reported the token not active:
    /// expired, revoked, or unknown to keycard.
    #[error("invalid access token: token is not active")]
    Inactive,
    /// An opaque token could not be introspected (keycard unreachable, an error status, an
    /// unexpected answer): 503, retry shortly. The token may well be valid.
    #[error("token introspection failed: {reason}")]
    IntrospectionUnavailable {
        /// What failed (for logs; never sent to the client, never holds the token).
        reason: String,
    },
    /// The shared DPoP replay record ([`crate::DpopOptions::shared_replay`]) could not answer
    /// whether a proof is new: 503, retry shortly (refused rather than risk a replay).
    #[error("the DPoP replay record is unavailable: {reason}")]
    ReplayStoreUnavailable {
        /// What failed (for logs; never sent to the client).
        reason: String,
    },
    /// An extractor ran on a route without [`crate::VerifierLayer`] or an `Extension(Verifier)`:
    /// a programming error, answered 500.
    #[error("no keycard Verifier is installed for this route")]
    NotConfigured,
    /// The token is DPoP-bound (it carries `cnf`) but was presented as a Bearer token: refused
    /// by every verifier, with or without DPoP support, so a stolen bound token cannot be used
    /// without its key. 401 `invalid_token` with the Bearer challenge.
    #[error("the access token is DPoP-bound: it must be sent with the DPoP scheme and a proof")]
    DpopBoundAsBearer,
    /// A request with `Authorization: DPoP` was refused: 401 with the
    /// `WWW-Authenticate: DPoP error=…, algs=…` challenge.
    #[error("{reason}")]
    Dpop {
        /// What was wrong.
        reason: DpopFailure,
        /// The proof algorithms accepted, space-separated (the challenge's `algs`).
        algs: String,
    },
    /// A DPoP request arrived, but its public URI is unknown: no
    /// [`crate::DpopOptions::public_origin`] is set and the request URI is not absolute. A
    /// configuration error, answered 500.
    #[error("the public URI of the request is unknown: set DpopOptions::public_origin")]
    DpopRequestUriUnknown,
    /// The token is valid, but the user's sign-in does not meet the route's [`StepUp`]
    /// requirement (RFC 9470): no second factor, too long ago, or no `auth_time`. 401
    /// `insufficient_user_authentication` with the challenge's `max_age` when a time was
    /// required; the client has the user step up at keycard and retries with the new token.
    #[error("this request needs {required}")]
    InsufficientUserAuthentication {
        /// What the route requires.
        required: StepUp,
        /// `Some` when the token is DPoP-bound: the challenge then uses the `DPoP` scheme with
        /// these `algs` (the proof algorithms accepted); `None`: the `Bearer` scheme.
        dpop_algs: Option<String>,
    },
}

/// Why a request with the `DPoP` scheme was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DpopFailure {
    /// No `DPoP` header: `invalid_dpop_proof`.
    #[error("a DPoP proof is required in one DPoP header")]
    MissingProof,
    /// More than one `DPoP` header: `invalid_dpop_proof`.
    #[error("exactly one DPoP header is allowed")]
    MultipleProofs,
    /// The proof failed a check, is made with another key than the token's `cnf.jkt`
    /// ([`DpopError::KeyMismatch`]), or was seen before ([`DpopError::Replayed`]): its own
    /// wire error (`invalid_dpop_proof`, or `use_dpop_nonce`).
    #[error("{0}")]
    Proof(DpopError),
    /// The token failed the validation checklist: `invalid_token`.
    #[error("invalid access token: {0}")]
    Token(TokenError),
    /// The token is not DPoP-bound (no `cnf`): `invalid_token`.
    #[error("the access token is not DPoP-bound")]
    NotBound,
}

impl DpopFailure {
    /// The `error` value sent: `invalid_dpop_proof`, `use_dpop_nonce` or `invalid_token`.
    pub fn wire_error(&self) -> &'static str {
        match self {
            Self::MissingProof | Self::MultipleProofs => "invalid_dpop_proof",
            Self::Proof(error) => error.code().as_str(),
            Self::Token(_) | Self::NotBound => "invalid_token",
        }
    }
}

fn describe_age(age: Option<Duration>) -> String {
    match age {
        Some(age) => format!("{} ms ago", age.as_millis()),
        None => "never".to_owned(),
    }
}

impl VerifyError {
    /// The wire error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::MissingToken
            | Self::MalformedHeader
            | Self::Token(_)
            | Self::Inactive
            | Self::DpopBoundAsBearer
            | Self::Dpop { .. } => ErrorCode::InvalidToken,
            Self::RevocationFeedStale { .. }
            | Self::IntrospectionUnavailable { .. }
            | Self::ReplayStoreUnavailable { .. } => ErrorCode::TemporarilyUnavailable,
            Self::NotConfigured | Self::DpopRequestUriUnknown => ErrorCode::ServerError,
            Self::InsufficientUserAuthentication { .. } => ErrorCode::InsufficientUserAuthentication,
        }
    }

    /// The `error` value sent in the body and the challenge: [`Self::code`]'s, except for
    /// DPoP proof refusals, which are `invalid_dpop_proof` (or `use_dpop_nonce`), codes of RFC
    /// 9449 that [`ErrorCode`] does not have (for those, [`Self::code`] is `invalid_token`).
    pub fn wire_error(&self) -> &'static str {
        match self {
            Self::Dpop { reason, .. } => reason.wire_error(),
            other => other.code().as_str(),
        }
    }

    /// The HTTP status: 401 (an invalid token, or a step-up requirement not met), 503 (stale
    /// revocation data, introspection or the shared DPoP replay record unavailable) or 500 (not
    /// configured).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The JSON error body (`{"error", "error_description"}`).
    pub fn error_body(&self) -> ErrorBody {
        let description = match self {
            Self::NotConfigured | Self::DpopRequestUriUnknown => "internal error".to_owned(),
            // The reason names keycard's endpoint and what failed: for the logs, not the caller.
            Self::IntrospectionUnavailable { .. } | Self::ReplayStoreUnavailable { .. } => {
                "the token cannot be checked right now; retry shortly".to_owned()
            }
            other => other.to_string(),
        };
        ErrorBody::new(self.code(), description)
    }

    /// Whether the token was refused because its session is revoked.
    pub fn is_revoked(&self) -> bool {
        matches!(self, Self::Token(TokenError::Revoked))
    }
}

impl IntoResponse for VerifyError {
    fn into_response(self) -> Response {
        let status = self.status();
        // Per-request refusals stay at debug: an outage or an attack must not flood the log (the
        // feed poller logs each failed round). A missing verifier is a wiring bug worth a warning.
        if matches!(self, Self::NotConfigured | Self::DpopRequestUriUnknown) {
            tracing::warn!(error = %self, "refusing request");
        } else {
            tracing::debug!(error = %self, "refusing request");
        }
        let description = self.error_body().error_description;
        let body =
            serde_json::to_vec(&serde_json::json!({"error": self.wire_error(), "error_description": description}))
                .unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            // RFC 6750 §3; SPEC.md answers every token failure with the invalid_token challenge.
            Self::MissingToken | Self::MalformedHeader | Self::Token(_) | Self::Inactive | Self::DpopBoundAsBearer => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            }
            // RFC 9449 §7.1. The description is one of this crate's fixed texts, quoted safely.
            Self::Dpop { ref reason, ref algs } => {
                let challenge = format!(
                    "DPoP error=\"{}\", error_description=\"{}\", algs=\"{}\"",
                    reason.wire_error(),
                    quotable(&description),
                    quotable(algs)
                );
                let value = HeaderValue::from_str(&challenge)
                    .unwrap_or_else(|_| HeaderValue::from_static("DPoP error=\"invalid_token\""));
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
            Self::RevocationFeedStale { .. }
            | Self::IntrospectionUnavailable { .. }
            | Self::ReplayStoreUnavailable { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            // RFC 9470 §3, in the token's own scheme (RFC 9449 §7.1 for a DPoP-bound one).
            Self::InsufficientUserAuthentication { ref required, ref dpop_algs } => {
                let scheme = if dpop_algs.is_some() { "DPoP" } else { "Bearer" };
                let mut challenge = format!(
                    "{scheme} error=\"{}\", error_description=\"{}\"",
                    self.wire_error(),
                    quotable(&description)
                );
                if let Some(max_age) = required.max_age_secs() {
                    challenge.push_str(&format!(", max_age={max_age}"));
                }
                if let Some(algs) = dpop_algs {
                    challenge.push_str(&format!(", algs=\"{}\"", quotable(algs)));
                }
                let value = HeaderValue::from_str(&challenge)
                    .unwrap_or_else(|_| HeaderValue::from_static("Bearer error=\"insufficient_user_authentication\""));
                headers.insert(header::WWW_AUTHENTICATE, value);
            }
            Self::NotConfigured | Self::DpopRequestUriUnknown => {}
        }
        response
    }
}

/// `text` fit for a quoted-string: printable ASCII without `"` and `\`.
fn quotable(text: &str) -> String {
    text.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '?' }).collect()
}

/// Fetching a document from keycard (discovery, JWKS, revocation feed) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FetchError {
    /// The request failed (connection, timeout, TLS).
    #[error("GET {url}: {source}")]
    Http {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: reqwest::Error,
    },
    /// keycard answered with a non-success status.
    #[error("GET {url}: HTTP {status}")]
    Status {
        /// The URL.
        url: String,
        /// The status code.
        status: u16,
    },
    /// The body exceeded the size limit for this document.
    #[error("GET {url}: the response is larger than {limit} bytes")]
    TooLarge {
        /// The URL.
        url: String,
        /// The limit, in bytes.
        limit: usize,
    },
    /// The body is not the expected JSON document.
    #[error("GET {url}: unexpected response body: {source}")]
    Decode {
        /// The URL.
        url: String,
        /// The cause.
        #[source]
        source: serde_json::Error,
    },
    /// Discovery names another issuer than the one configured.
    #[error("discovery document names issuer {found:?}, expected {expected:?}")]
    IssuerMismatch {
        /// The configured issuer.
        expected: String,
        /// The issuer the document names.
        found: String,
    },
    /// The JWKS holds no key this verifier can use.
    #[error("GET {url}: the key set holds no usable key")]
    NoUsableKeys {
        /// The URL.
        url: String,
    },
}

/// Building a [`crate::Verifier`] failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is invalid (the message says which).
    #[error("invalid verifier configuration: {0}")]
    Config(String),
    /// A URL uses plain HTTP to a non-loopback host; keys fetched that way could be forged in
    /// transit. Use https, or `allow_plain_http(true)` on a trusted network.
    #[error("refusing plain-HTTP URL {0}: use https, or allow_plain_http(true) on a trusted network")]
    InsecureUrl(String),
    /// The HTTP client could not be built.
    #[error("could not build the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
    /// Discovery, the first JWKS fetch or the first revocation-feed sync failed.
    #[error(transparent)]
    Fetch(#[from] FetchError),
}
