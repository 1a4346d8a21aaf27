//! [`ClientError`]: what went wrong, with the HTTP status and keycard's decoded error body when
//! the server answered.

use keycard_core::{ErrorBody, ErrorCode};
use reqwest::StatusCode;

/// A failed client call.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// No session: never logged in, logged out, or the session ended (refresh refused).
    #[error("not logged in")]
    NotLoggedIn,
    /// The server answered with an error status.
    #[error("HTTP {status}{}", describe(.error))]
    Api {
        /// The status code.
        status: StatusCode,
        /// keycard's `{"error", "error_description"}` body, when the body was one.
        error: Option<ErrorBody>,
    },
    /// The request failed before an answer (connection, timeout, TLS).
    #[error("request failed: {0}")]
    Http(#[from] reqwest::Error),
    /// A success answer whose body is not what the endpoint returns.
    #[error("unexpected response body: {0}")]
    Decode(#[source] serde_json::Error),
    /// A URL that cannot be used (bad base URL or path).
    #[error("invalid URL: {0}")]
    InvalidUrl(String),
    /// The background refresh task died (a panic inside it); the session is unchanged.
    #[error("the token refresh did not complete")]
    RefreshInterrupted,
}

fn describe(error: &Option<ErrorBody>) -> String {
    match error {
        Some(body) => format!(" {}: {}", body.error, body.error_description),
        None => String::new(),
    }
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            Self::Http(e) => e.status(),
            _ => None,
        }
    }

    /// keycard's error code, when the server sent one.
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { error: Some(body), .. } => Some(body.error),
            _ => None,
        }
    }

    /// Whether the session is over and the user must log in again.
    pub fn is_session_ended(&self) -> bool {
        matches!(self, Self::NotLoggedIn)
            || matches!(self.code(), Some(ErrorCode::InvalidGrant | ErrorCode::RefreshTokenReused))
    }
}
