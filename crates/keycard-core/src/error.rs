//! The wire error of the HTTP API: `{"error": "<code>", "error_description": "<text>"}`.

use serde::{Deserialize, Serialize};

/// Every error code of SPEC.md's HTTP API, with the status it is sent with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ErrorCode {
    /// 400: the request is malformed.
    InvalidRequest,
    /// 401: wrong email or password (never says which).
    InvalidCredentials,
    /// 401: the access token failed validation.
    InvalidToken,
    /// 401: the refresh token is unknown, expired or its session is revoked.
    InvalidGrant,
    /// 401: a refresh token was presented a second time; its whole session is now revoked.
    RefreshTokenReused,
    /// 400: a password-reset token is unknown, malformed, already used, superseded by a newer
    /// request or expired (one answer for all: it says nothing about the account).
    InvalidResetToken,
    /// 400: an email-verification token is unknown, malformed, used, superseded, expired, or for
    /// an address the account no longer has.
    InvalidVerificationToken,
    /// 400: an email-change confirmation or cancel token is unknown, malformed, used,
    /// superseded, expired or of a change that was cancelled.
    InvalidEmailChangeToken,
    /// 403: the password is right but the address is not verified yet (`email_verification =
    /// required`).
    EmailNotVerified,
    /// 401: the route needs a more recent or stronger sign-in (RFC 9470): a second factor, or a
    /// sign-in within the last `max_age` seconds; `POST /auth/step-up` gives one.
    InsufficientUserAuthentication,
    /// 400: the second-factor answer (TOTP code, recovery code) is wrong or already used, or the
    /// `mfa_token` is unknown, spent or expired.
    InvalidMfa,
    /// 403: the CSRF double-submit or Origin check failed.
    CsrfFailed,
    /// 403: authenticated, but not allowed.
    Forbidden,
    /// 404: no such resource.
    NotFound,
    /// 405: the path exists but not with this method.
    MethodNotAllowed,
    /// 409: an account with this email exists.
    EmailTaken,
    /// 413: the request body is too large.
    PayloadTooLarge,
    /// 422: the password does not meet the policy.
    WeakPassword,
    /// 429: too many requests; see `Retry-After`.
    RateLimited,
    /// 401: OAuth client authentication failed (unknown client, wrong secret, bad assertion).
    InvalidClient,
    /// 400: the OAuth client may not use this grant type.
    UnauthorizedClient,
    /// 400: the OAuth grant type is not supported (or not enabled).
    UnsupportedGrantType,
    /// 400: the requested scope is unknown or beyond what the client may have.
    InvalidScope,
    /// 400 (401 on a protected route, with `WWW-Authenticate: DPoP`): the DPoP proof (RFC 9449)
    /// is missing, malformed, replayed or fails a check.
    InvalidDpopProof,
    /// 400 (401 on a protected route): the server wants a DPoP nonce; retry with the one in the
    /// `DPoP-Nonce` header (RFC 9449 §8).
    UseDpopNonce,
    /// 500: something failed inside keycard; the cause is logged, never sent.
    ServerError,
    /// 503: a dependency (the store) is unavailable or keycard is saturated.
    TemporarilyUnavailable,
}

impl ErrorCode {
    /// The HTTP status this code is sent with.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidRequest
            | Self::InvalidResetToken
            | Self::InvalidVerificationToken
            | Self::InvalidEmailChangeToken
            | Self::InvalidMfa
            | Self::UnauthorizedClient
            | Self::UnsupportedGrantType
            | Self::InvalidScope
            | Self::InvalidDpopProof
            | Self::UseDpopNonce => 400,
            Self::InvalidClient => 401,
            Self::InvalidCredentials | Self::InvalidToken | Self::InvalidGrant | Self::RefreshTokenReused => 401,
            Self::InsufficientUserAuthentication => 401,
            Self::CsrfFailed | Self::Forbidden | Self::EmailNotVerified => 403,
            Self::NotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::EmailTaken => 409,
            Self::PayloadTooLarge => 413,
            Self::WeakPassword => 422,
            Self::RateLimited => 429,
            Self::ServerError => 500,
            Self::TemporarilyUnavailable => 503,
        }
    }

    /// The code as it appears on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidCredentials => "invalid_credentials",
            Self::InvalidToken => "invalid_token",
            Self::InvalidGrant => "invalid_grant",
            Self::RefreshTokenReused => "refresh_token_reused",
            Self::InvalidResetToken => "invalid_reset_token",
            Self::InvalidVerificationToken => "invalid_verification_token",
            Self::InvalidEmailChangeToken => "invalid_email_change_token",
            Self::EmailNotVerified => "email_not_verified",
            Self::InsufficientUserAuthentication => "insufficient_user_authentication",
            Self::InvalidMfa => "invalid_mfa",
            Self::CsrfFailed => "csrf_failed",
            Self::Forbidden => "forbidden",
            Self::NotFound => "not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::EmailTaken => "email_taken",
            Self::PayloadTooLarge => "payload_too_large",
            Self::WeakPassword => "weak_password",
            Self::RateLimited => "rate_limited",
            Self::InvalidClient => "invalid_client",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::InvalidDpopProof => "invalid_dpop_proof",
            Self::UseDpopNonce => "use_dpop_nonce",
            Self::ServerError => "server_error",
            Self::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// Machine-readable code.
    pub error: ErrorCode,
    /// Human-readable explanation; never holds a secret.
    pub error_description: String,
}

impl ErrorBody {
    /// An error body with the given code and description.
    pub fn new(error: ErrorCode, description: impl Into<String>) -> Self {
        Self { error, error_description: description.into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_serialize_as_their_wire_names() {
        for code in [ErrorCode::InvalidRequest, ErrorCode::RefreshTokenReused, ErrorCode::CsrfFailed] {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
        }
    }

    #[test]
    fn every_token_failure_code_is_a_401() {
        for code in [ErrorCode::InvalidToken, ErrorCode::InvalidGrant, ErrorCode::RefreshTokenReused] {
            assert_eq!(code.status(), 401, "{code}");
        }
    }
}
