//! Errors: why a request was refused ([`VerifyError`], which knows its HTTP answer), and why
//! keys or the revocation feed could not be fetched ([`FetchError`], [`BuildError`]).

use std::time::Duration;

use axum_core::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use keycard_core::{ErrorBody, ErrorCode, TokenError};

/// Why a request's access token was refused. Every variant is 401 `invalid_token` but stale
/// revocation data and unavailable introspection (503) and a missing verifier (500); the text is
/// safe to log (it never holds the token or a secret).
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
    /// An extractor ran on a route without [`crate::VerifierLayer`] or an `Extension(Verifier)`:
    /// a programming error, answered 500.
    #[error("no keycard Verifier is installed for this route")]
    NotConfigured,
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
            Self::MissingToken | Self::MalformedHeader | Self::Token(_) | Self::Inactive => ErrorCode::InvalidToken,
            Self::RevocationFeedStale { .. } | Self::IntrospectionUnavailable { .. } => {
                ErrorCode::TemporarilyUnavailable
            }
            Self::NotConfigured => ErrorCode::ServerError,
        }
    }

    /// The HTTP status: 401, 503 (stale revocation data, introspection unavailable) or 500 (not
    /// configured).
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.code().status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The JSON error body (`{"error", "error_description"}`).
    pub fn error_body(&self) -> ErrorBody {
        let description = match self {
            Self::NotConfigured => "internal error".to_owned(),
            // The reason names keycard's endpoint and what failed: for the logs, not the caller.
            Self::IntrospectionUnavailable { .. } => "the token cannot be checked right now; retry shortly".to_owned(),
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
        if matches!(self, Self::NotConfigured) {
            tracing::warn!(error = %self, "refusing request");
        } else {
            tracing::debug!(error = %self, "refusing request");
        }
        let body = serde_json::to_vec(&self.error_body()).unwrap_or_default();
        let mut response = (status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        match self {
            // RFC 6750 §3; SPEC.md answers every token failure with the invalid_token challenge.
            Self::MissingToken | Self::MalformedHeader | Self::Token(_) | Self::Inactive => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer error=\"invalid_token\""));
            }
            Self::RevocationFeedStale { .. } | Self::IntrospectionUnavailable { .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::NotConfigured => {}
        }
        response
    }
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
