//! [`ClientError`]: what went wrong, with the HTTP status and keycard's decoded error body when
//! the server answered.

use std::sync::Arc;

use keycard_core::{ErrorBody, ErrorCode};
use reqwest::StatusCode;

use crate::mfa::{MfaChallenge, MfaMethod};
use crate::oauth::{OAuthError, OAuthErrorCode};

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
    /// A refresh is needed but an earlier one failed for a passing reason (429, 5xx, network) and
    /// the wait it asked for is not over: nothing was sent. The session is kept; try again after
    /// `retry_in`.
    #[error("the token refresh is backing off; retry in {retry_in:?}")]
    RefreshDeferred {
        /// How long until the client refreshes again.
        retry_in: std::time::Duration,
    },
    /// The authorization server refused a token request with an RFC 6749 §5.2 error:
    /// `invalid_client` (unknown client, wrong secret), `invalid_scope`, `unauthorized_client`…
    /// See [`ClientError::oauth_error`] and [`ClientError::is_invalid_client`].
    #[error("HTTP {status} {error}")]
    OAuth {
        /// The status code (400, or 401 for `invalid_client`).
        status: StatusCode,
        /// The decoded `{"error", "error_description"}` body.
        error: OAuthError,
    },
    /// The authorization server's answer breaks the protocol: a discovery document naming
    /// another issuer or no token endpoint, a token type other than `Bearer` (or other than
    /// `DPoP` for a client that uses DPoP).
    #[error("unexpected answer from the authorization server: {0}")]
    Protocol(String),
    /// The DPoP key could not be made or read (building the client), or a proof could not be
    /// signed. Names the key file, never its content.
    #[error(transparent)]
    DpopKey(#[from] crate::dpop::DpopKeyError),
    /// The password was right and the account has a second factor: no session yet (one the
    /// client held is kept). Answer with [`crate::Client::complete_mfa`], or log in with
    /// [`crate::Client::login_with_mfa`]. The challenge's token is never printed.
    #[error("the account has a second factor: complete the login with a code ({})", methods(.0))]
    MfaRequired(Box<MfaChallenge>),
    /// The second-factor callback of [`crate::Client::login_with_mfa`] gave up (return it from
    /// the callback to cancel the login).
    #[error("the second-factor step was cancelled")]
    MfaCancelled,
    /// The route wants a more recent sign-in, or one with the second factor (401
    /// `insufficient_user_authentication`, RFC 9470): [`crate::Client::step_up`], then call it
    /// again. The session is fine; this is no logout.
    #[error("HTTP 401 {}: {}{}", .error.error, .error.error_description, describe_max_age(.max_age))]
    StepUpRequired {
        /// The `max_age` of the `WWW-Authenticate` challenge: how recent the sign-in must be.
        max_age: Option<std::time::Duration>,
        /// keycard's error body (made up from the challenge when the server sent none).
        error: ErrorBody,
    },
    /// A failure of a token request shared by every caller that waited on it
    /// ([`crate::ServiceClient::token`] makes one request for all of them). Transport and decoding
    /// failures cannot be copied, so each caller gets this handle on the one error; the helper
    /// methods ([`ClientError::status`], [`ClientError::oauth_error`]…) look through it.
    #[error(transparent)]
    Shared(Arc<ClientError>),
}

fn describe(error: &Option<ErrorBody>) -> String {
    match error {
        Some(body) => format!(" {}: {}", body.error, body.error_description),
        None => String::new(),
    }
}

fn methods(challenge: &MfaChallenge) -> String {
    let names: Vec<&str> = challenge
        .methods()
        .iter()
        .map(|m| match m {
            MfaMethod::Totp => "totp",
            MfaMethod::RecoveryCode => "recovery_code",
            MfaMethod::Webauthn => "webauthn",
        })
        .collect();
    names.join(", ")
}

fn describe_max_age(max_age: &Option<std::time::Duration>) -> String {
    match max_age {
        Some(age) => format!(" (a sign-in within {} s)", age.as_secs()),
        None => String::new(),
    }
}

impl ClientError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } | Self::OAuth { status, .. } => Some(*status),
            Self::StepUpRequired { .. } => Some(StatusCode::UNAUTHORIZED),
            Self::Http(e) => e.status(),
            Self::Shared(inner) => inner.status(),
            _ => None,
        }
    }

    /// keycard's error code, when the server sent one (an OAuth error whose code is also one of
    /// keycard's, such as `invalid_request` or `invalid_grant`, included).
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            Self::Api { error: Some(body), .. } => Some(body.error),
            Self::StepUpRequired { error, .. } => Some(error.error),
            Self::OAuth { error, .. } => serde_json::from_value(error.error.as_str().into()).ok(),
            Self::Shared(inner) => inner.code(),
            _ => None,
        }
    }

    /// The RFC 6749 §5.2 error of a refused token request.
    pub fn oauth_error(&self) -> Option<&OAuthError> {
        match self {
            Self::OAuth { error, .. } => Some(error),
            Self::Shared(inner) => inner.oauth_error(),
            _ => None,
        }
    }

    /// Whether the authorization server refused the client's credentials (`invalid_client`:
    /// unknown client id, wrong or rotated secret). Retrying will not help.
    pub fn is_invalid_client(&self) -> bool {
        self.oauth_error().is_some_and(|e| e.error == OAuthErrorCode::InvalidClient)
    }

    /// A copy of a shared error for one more caller: errors made of plain values are copied,
    /// others (transport, decoding) become [`ClientError::Shared`].
    pub(crate) fn share(error: &Arc<ClientError>) -> ClientError {
        match &**error {
            Self::NotLoggedIn => Self::NotLoggedIn,
            Self::Api { status, error } => Self::Api { status: *status, error: error.clone() },
            Self::OAuth { status, error } => Self::OAuth { status: *status, error: error.clone() },
            Self::InvalidUrl(url) => Self::InvalidUrl(url.clone()),
            Self::Protocol(what) => Self::Protocol(what.clone()),
            Self::RefreshInterrupted => Self::RefreshInterrupted,
            Self::RefreshDeferred { retry_in } => Self::RefreshDeferred { retry_in: *retry_in },
            Self::MfaRequired(challenge) => Self::MfaRequired(challenge.clone()),
            Self::MfaCancelled => Self::MfaCancelled,
            Self::StepUpRequired { max_age, error } => Self::StepUpRequired { max_age: *max_age, error: error.clone() },
            Self::Shared(inner) => Self::Shared(inner.clone()),
            Self::Http(_) | Self::Decode(_) | Self::DpopKey(_) => Self::Shared(error.clone()),
        }
    }

    /// Whether the session is over and the user must log in again.
    pub fn is_session_ended(&self) -> bool {
        matches!(self, Self::NotLoggedIn)
            || matches!(self.code(), Some(ErrorCode::InvalidGrant | ErrorCode::RefreshTokenReused))
    }

    /// Whether the call needs a more recent sign-in ([`ClientError::StepUpRequired`]): step up
    /// with [`crate::Client::step_up`] and call again.
    pub fn is_step_up_required(&self) -> bool {
        match self {
            Self::StepUpRequired { .. } => true,
            Self::Shared(inner) => inner.is_step_up_required(),
            _ => false,
        }
    }

    /// The `max_age` of an `insufficient_user_authentication` challenge: the sign-in must be
    /// at most this old.
    pub fn step_up_max_age(&self) -> Option<std::time::Duration> {
        match self {
            Self::StepUpRequired { max_age, .. } => *max_age,
            Self::Shared(inner) => inner.step_up_max_age(),
            _ => None,
        }
    }

    /// The challenge of a login that needs its second step ([`ClientError::MfaRequired`]).
    pub fn mfa_challenge(&self) -> Option<&MfaChallenge> {
        match self {
            Self::MfaRequired(challenge) => Some(challenge),
            Self::Shared(inner) => inner.mfa_challenge(),
            _ => None,
        }
    }

    /// Whether keycard refused a second-factor answer (400 `invalid_mfa`): a wrong or already
    /// used code, or a spent or expired login challenge.
    pub fn is_invalid_mfa(&self) -> bool {
        self.code() == Some(ErrorCode::InvalidMfa)
    }
}
