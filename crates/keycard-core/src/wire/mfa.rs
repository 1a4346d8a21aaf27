//! The second-factor part of the HTTP API (issue 17): the login's MFA step, step-up, TOTP
//! enrolment, recovery codes and the factor list.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// The answer to a correct password on an account with a second factor: 200, no tokens.
/// `POST /auth/mfa/verify` with the `mfa_token` and an answer completes the login.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MfaChallenge {
    /// Always `true`: tells this answer from a token response.
    pub mfa_required: bool,
    /// Single use, bound to this login attempt, valid `expires_in` seconds.
    pub mfa_token: String,
    /// The answers the account can give.
    pub methods: Vec<MfaMethod>,
    /// Seconds until `mfa_token` expires.
    pub expires_in: i64,
    /// When `methods` has `webauthn`: the request options for the account's passkeys, as
    /// `{"publicKey": {...}}` in WebAuthn's JSON form (`PublicKeyCredential.parseRequestOptionsFromJSON`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub webauthn: Option<serde_json::Value>,
}

/// A way to answer the second-factor step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum MfaMethod {
    /// A code from an authenticator app (RFC 6238): `code`.
    Totp,
    /// One of the account's single-use recovery codes: `recovery_code`.
    RecoveryCode,
    /// One of the account's passkeys: `webauthn` (the assertion, as `PublicKeyCredential.toJSON()`).
    Webauthn,
}

/// `POST /auth/mfa/verify`: the second step of a login. Exactly one answer.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MfaVerifyRequest {
    /// The login's `mfa_token`.
    pub mfa_token: String,
    /// A 6-digit code from the authenticator app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A recovery code (spent by this request when it matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<String>,
    /// A passkey's assertion for the challenge's `webauthn` options (`PublicKeyCredential.toJSON()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub webauthn: Option<serde_json::Value>,
}

impl std::fmt::Debug for MfaVerifyRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MfaVerifyRequest(<redacted>)")
    }
}

/// `POST /auth/step-up`: proves the user again on the current session, so sensitive routes
/// accept it for `step_up_max_age`. An account with a second factor answers with it (`code` or
/// `recovery_code`, or a passkey: the `passkey_token` of `POST /auth/step-up/options` and the
/// `webauthn` assertion); an account without one with its `password`.
#[derive(Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct StepUpRequest {
    /// The account's password (accounts without a second factor).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A 6-digit code from the authenticator app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// A recovery code (spent when it matches).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_code: Option<String>,
    /// The token of `POST /auth/step-up/options` (with `webauthn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passkey_token: Option<String>,
    /// A passkey's assertion for those options (`PublicKeyCredential.toJSON()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub webauthn: Option<serde_json::Value>,
}

impl std::fmt::Debug for StepUpRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StepUpRequest(<redacted>)")
    }
}

/// The answer to a step-up: a new access token for the same session, carrying the new
/// `auth_time` and `amr` (the refresh token is unchanged; later refreshes carry them too).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StepUpResponse {
    /// The signed access token.
    pub access_token: String,
    /// `Bearer`, or `DPoP` for a DPoP-bound session.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
}

/// `POST /auth/mfa/totp`: a new authenticator-app secret, waiting for its first code
/// (`POST /auth/mfa/totp/confirm`). Shown once; the server keeps it sealed.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpEnrollment {
    /// The factor's id, for the confirmation.
    pub factor_id: String,
    /// The secret in base32, for typing into an app by hand.
    pub secret: String,
    /// `otpauth://totp/…` (the Key Uri Format authenticator apps read).
    pub otpauth_uri: String,
    /// The same URI as a QR code: an SVG image, as a `data:image/svg+xml;base64,…` URL.
    pub qr_code: String,
}

impl std::fmt::Debug for TotpEnrollment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpEnrollment").field("factor_id", &self.factor_id).finish_non_exhaustive()
    }
}

/// `POST /auth/mfa/totp/confirm`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TotpConfirmRequest {
    /// The factor from the enrolment.
    pub factor_id: String,
    /// The app's current code.
    pub code: String,
}

impl std::fmt::Debug for TotpConfirmRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpConfirmRequest").field("factor_id", &self.factor_id).finish_non_exhaustive()
    }
}

/// Recovery codes, shown once: after the first factor is confirmed, and when regenerated
/// (`POST /auth/mfa/recovery-codes`, which replaces every earlier code).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryCodes {
    /// Ten single-use codes; none of them is stored in clear.
    pub recovery_codes: Vec<String>,
}

impl std::fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecoveryCodes({} codes, <redacted>)", self.recovery_codes.len())
    }
}

/// The answer to `POST /auth/mfa/totp/confirm`: the factor is active; `recovery_codes` when this
/// was the account's first factor (the codes are made then, and shown this once).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TotpConfirmed {
    /// The factor now active.
    pub factor_id: String,
    /// The account's new recovery codes, when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

impl std::fmt::Debug for TotpConfirmed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TotpConfirmed").field("factor_id", &self.factor_id).finish_non_exhaustive()
    }
}

/// The kind of a second factor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FactorKind {
    /// An authenticator app (TOTP).
    Totp,
    /// A passkey (WebAuthn).
    Passkey,
}

/// One factor of `GET /auth/mfa`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FactorInfo {
    /// Factor id (for `DELETE /auth/mfa/factors/{id}`).
    pub id: String,
    /// What it is.
    pub kind: FactorKind,
    /// Its name.
    pub name: String,
    /// When it was confirmed (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// When it last completed a sign-in or step-up (RFC 3339).
    #[serde(default, with = "time::serde::rfc3339::option")]
    pub last_used_at: Option<OffsetDateTime>,
    /// Passkeys: whether the credential is backed up (synced by its provider), as the
    /// authenticator last said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backed_up: Option<bool>,
}

/// `GET /auth/mfa`: the account's active factors and how many recovery codes are left.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FactorList {
    /// Active factors, oldest first.
    pub factors: Vec<FactorInfo>,
    /// Unused recovery codes.
    pub recovery_codes_left: i64,
}

/// A WebAuthn ceremony's options: `passkey_token` names the state the server keeps for it (single
/// use, five minutes); `options` is what `navigator.credentials.create` / `.get` takes, as
/// `{"publicKey": {...}}` in WebAuthn's JSON form (binary fields in base64url).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyOptions {
    /// Single use, valid five minutes; sent back with the answer.
    pub passkey_token: String,
    /// `PublicKeyCredentialCreationOptions` or `…RequestOptions`, under `publicKey`.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub options: serde_json::Value,
}

impl std::fmt::Debug for PasskeyOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasskeyOptions(<redacted>)")
    }
}

/// `POST /auth/passkeys/register`: the authenticator's answer to the registration options.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeyRegisterRequest {
    /// From `POST /auth/passkeys/register/options`.
    pub passkey_token: String,
    /// The name the user sees (1 to 64 characters; default "Passkey").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The new credential (`PublicKeyCredential.toJSON()`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
}

impl std::fmt::Debug for PasskeyRegisterRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyRegisterRequest").field("name", &self.name).finish_non_exhaustive()
    }
}

/// The answer to a passkey registration: the factor is active; `recovery_codes` when it was the
/// account's first factor (shown this once).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PasskeyAdded {
    /// The new factor.
    pub factor_id: String,
    /// Its name.
    pub name: String,
    /// The account's new recovery codes, when it had none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recovery_codes: Option<Vec<String>>,
}

impl std::fmt::Debug for PasskeyAdded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasskeyAdded").field("factor_id", &self.factor_id).finish_non_exhaustive()
    }
}

/// `POST /auth/passkeys/login`: a passwordless sign-in with a discoverable passkey.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasskeyLoginRequest {
    /// From `POST /auth/passkeys/login/options`.
    pub passkey_token: String,
    /// The assertion (`PublicKeyCredential.toJSON()`).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub credential: serde_json::Value,
    /// Cookie (default) or body delivery of the refresh token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivery: Option<super::Delivery>,
    /// The `device_token` of an earlier login from this client (non-browser clients).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

impl std::fmt::Debug for PasskeyLoginRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasskeyLoginRequest(<redacted>)")
    }
}

/// `PATCH /auth/mfa/factors/{id}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RenameFactorRequest {
    /// The new name (1 to 64 characters).
    pub name: String,
}
