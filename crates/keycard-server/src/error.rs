//! The one place errors become HTTP responses: the JSON error body of SPEC.md, with
//! `WWW-Authenticate` on 401s and `Retry-After` on 429s and 503s. Internal causes are logged, never sent.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keycard_core::{ErrorBody, ErrorCode, TokenError};
use keycard_store::StoreError;

/// An error answered to the client.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// A client mistake or refusal, sent as is.
    #[error("{code}: {description}")]
    Client {
        /// Wire code (and status).
        code: ErrorCode,
        /// Human text; never holds a secret.
        description: String,
    },
    /// The access token failed a check of the validation checklist.
    #[error("invalid access token: {0}")]
    Token(#[from] TokenError),
    /// Too many requests; retry after this many seconds.
    #[error("rate limited for {0} s")]
    RateLimited(u64),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Access tokens cannot be signed now: the remote signer (OpenBao/Vault Transit) is
    /// unreachable or refuses. 503 with `Retry-After`; the cause is logged, never sent.
    #[error("cannot sign access tokens: {0}")]
    SigningUnavailable(String),
    /// The route needs a more recent sign-in (`max_age` seconds), with a second factor when
    /// the account has one: 401 `insufficient_user_authentication` with RFC 9470's challenge.
    #[error("step-up required")]
    StepUp {
        /// `step_up_max_age`, in seconds.
        max_age: i64,
        /// Whether the sign-in must include the account's second factor.
        second_factor: bool,
    },
    /// A DPoP proof (RFC 9449) was refused, or a DPoP-bound token came without one: 400 at
    /// token endpoints; 401 with `WWW-Authenticate: DPoP error=…` on protected routes. With
    /// nonces on, the current one goes out in `DPoP-Nonce`. Built by [`ApiError::dpop`].
    #[error("{code}: {description}")]
    Dpop {
        /// `invalid_dpop_proof`, `use_dpop_nonce` or `invalid_token`.
        code: ErrorCode,
        /// Human text; never quotes the proof or the token.
        description: String,
        /// Whether it answers a protected route (401 and the challenge) or a token request (400).
        resource: bool,
        /// The accepted algorithms, for the challenge's `algs`.
        algs: String,
        /// The nonce to use next, when nonces are on.
        nonce: Option<String>,
    },
    /// Anything else that failed inside keycard.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    /// A client error with this code and text.
    pub fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self::Client { code, description: description.into() }
    }

    /// 400 `invalid_request`.
    pub fn bad_request(description: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, description)
    }

    /// 401 `invalid_grant`: the refresh token is unknown, expired or its session is over.
    pub fn invalid_grant() -> Self {
        Self::new(ErrorCode::InvalidGrant, "the refresh token is invalid, expired or revoked")
    }

    /// 401 `invalid_credentials`, the same answer for unknown email and wrong password.
    pub fn invalid_credentials() -> Self {
        Self::new(ErrorCode::InvalidCredentials, "email or password is incorrect")
    }

    fn parts(&self) -> (ErrorCode, String) {
        match self {
            Self::Client { code, description } | Self::Dpop { code, description, .. } => (*code, description.clone()),
            Self::Token(e) => (ErrorCode::InvalidToken, e.to_string()),
            Self::RateLimited(_) => (ErrorCode::RateLimited, "too many requests; slow down".into()),
            Self::Store(e) if e.is_unavailable() => {
                (ErrorCode::TemporarilyUnavailable, "the token store is unavailable; retry shortly".into())
            }
            Self::SigningUnavailable(_) => (
                ErrorCode::TemporarilyUnavailable,
                "access tokens cannot be signed right now (the signing service is unavailable); retry shortly".into(),
            ),
            Self::Store(StoreError::EmailTaken) => (ErrorCode::EmailTaken, "an account with this email exists".into()),
            Self::Store(StoreError::UserDisabled) => (ErrorCode::Forbidden, "this account is disabled".into()),
            Self::StepUp { second_factor: true, .. } => (
                ErrorCode::InsufficientUserAuthentication,
                "this change needs a recent sign-in with your second factor: POST /auth/step-up with a code".into(),
            ),
            Self::StepUp { second_factor: false, .. } => (
                ErrorCode::InsufficientUserAuthentication,
                "this change needs a recent sign-in: POST /auth/step-up with your password".into(),
            ),
            Self::Store(_) | Self::Internal(_) => (ErrorCode::ServerError, "internal error".into()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (code, description) = self.parts();
        if code.status() >= 500 {
            tracing::error!(error = %self, "request failed");
        }
        if let Self::Dpop { resource, algs, nonce, .. } = &self {
            return dpop_response(code, description, *resource, algs, nonce.as_deref());
        }
        let mut response = error_response(code, description, self.retry_after());
        if let Self::StepUp { max_age, .. } = self {
            // RFC 9470 §3: the error and the freshness the route wants.
            let challenge = format!("Bearer error=\"insufficient_user_authentication\", max_age={max_age}");
            if let Ok(value) = HeaderValue::from_str(&challenge) {
                response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
            }
        }
        response
    }
}

impl ApiError {
    fn retry_after(&self) -> Option<u64> {
        match self {
            Self::RateLimited(secs) => Some(*secs),
            Self::Store(e) if e.is_unavailable() => Some(1),
            Self::SigningUnavailable(_) => Some(1),
            _ => None,
        }
    }
}

/// The answer to a refused DPoP request: the JSON error; on a protected route 401 with
/// `WWW-Authenticate: DPoP error="…", algs="…"` (RFC 9449 §7.1); `DPoP-Nonce` when given.
fn dpop_response(code: ErrorCode, description: String, resource: bool, algs: &str, nonce: Option<&str>) -> Response {
    let mut response = error_response(code, description, None);
    if resource {
        *response.status_mut() = StatusCode::UNAUTHORIZED;
        let challenge = format!("DPoP error=\"{}\", algs=\"{algs}\"", code.as_str());
        if let Ok(value) = HeaderValue::from_str(&challenge) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
    } else {
        response.headers_mut().remove(header::WWW_AUTHENTICATE);
    }
    if let Some(value) = nonce.and_then(|n| HeaderValue::from_str(n).ok()) {
        response.headers_mut().insert(crate::dpop::NONCE_HEADER, value);
    }
    response
}

/// Builds the JSON error response for `code`.
pub fn error_response(code: ErrorCode, description: String, retry_after: Option<u64>) -> Response {
    let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = (status, axum::Json(ErrorBody::new(code, description))).into_response();
    let headers = response.headers_mut();
    if status == StatusCode::UNAUTHORIZED {
        let challenge = if code == ErrorCode::InvalidToken { "Bearer error=\"invalid_token\"" } else { "Bearer" };
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
    }
    if let Some(secs) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
