//! Records of second factors (issue 17): factors, recovery codes, and logins waiting for their
//! second step. The rules (what a code proves, when a factor may change) are the server's; the
//! store makes each step atomic: a TOTP time step is accepted once ([`Store::use_totp_step`]),
//! a recovery code spent once, an `mfa_token` completed once.
//!
//! [`Store::use_totp_step`]: crate::Store::use_totp_step

use keycard_core::refresh::TokenHash;

use crate::model::AuditEvent;

/// A second factor. Pending until its first code is confirmed.
#[derive(Clone)]
pub struct FactorRecord {
    /// Factor id (UUID).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// `totp`.
    pub kind: String,
    /// The name the user sees.
    pub name: String,
    /// The secret, sealed under the master key (never stored in clear).
    pub secret: Vec<u8>,
    /// When it was made.
    pub created_at: i64,
    /// When its first code was confirmed; `None` while pending.
    pub confirmed_at: Option<i64>,
    /// When it last completed a sign-in or step-up.
    pub last_used_at: Option<i64>,
    /// The highest TOTP time step accepted.
    pub last_step: Option<i64>,
}

impl std::fmt::Debug for FactorRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactorRecord")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("kind", &self.kind)
            .field("confirmed_at", &self.confirmed_at)
            .finish_non_exhaustive()
    }
}

/// The first code of a pending factor, accepted ([`Store::confirm_factor`]).
///
/// [`Store::confirm_factor`]: crate::Store::confirm_factor
#[derive(Clone)]
pub struct FactorConfirmation {
    /// Owner.
    pub user_id: String,
    /// The pending factor.
    pub factor_id: String,
    /// The TOTP time step of the accepted code (spent by the confirmation).
    pub step: i64,
    /// Now.
    pub now: i64,
    /// Recovery codes to store when the account has none (its first factor).
    pub recovery_codes: Vec<TokenHash>,
    /// The `mfa_enrolled` event.
    pub audit: AuditEvent,
}

impl std::fmt::Debug for FactorConfirmation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FactorConfirmation").field("factor_id", &self.factor_id).finish_non_exhaustive()
    }
}

/// What a confirmation did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FactorConfirmed {
    /// No pending factor of the user by that id (confirmed already, removed, never made), or
    /// the code's step was not newer than one already accepted.
    NotPending,
    /// Active now; the recovery codes were stored (the account had none).
    WithRecoveryCodes,
    /// Active now; the account keeps the recovery codes it had.
    Active,
}

/// A login waiting for its second factor.
#[derive(Clone)]
pub struct MfaChallengeRecord {
    /// SHA-256 of the `mfa_token`.
    pub token: TokenHash,
    /// The user whose password was right.
    pub user_id: String,
    /// What the login asked for, as the server wrote it (JSON).
    pub data: String,
    /// Answers tried so far, this one included when read by
    /// [`Store::attempt_mfa_challenge`](crate::Store::attempt_mfa_challenge).
    pub attempts: i64,
    /// When the password was checked.
    pub created_at: i64,
    /// When the token stops working.
    pub expires_at: i64,
}

impl std::fmt::Debug for MfaChallengeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MfaChallengeRecord")
            .field("user_id", &self.user_id)
            .field("attempts", &self.attempts)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A WebAuthn ceremony waiting for its answer (a passkey registration, a passwordless sign-in,
/// a step-up). Taken once by [`Store::take_webauthn_challenge`](crate::Store::take_webauthn_challenge).
#[derive(Clone)]
pub struct WebauthnChallengeRecord {
    /// SHA-256 of the `passkey_token`.
    pub token: TokenHash,
    /// The user it is for; `None` for a passwordless sign-in (the answer names its user).
    pub user_id: Option<String>,
    /// What it is for (`register`, `login`, `step_up`): an answer is only good for its purpose.
    pub purpose: String,
    /// The ceremony's state, as the server wrote it (JSON).
    pub data: String,
    /// When it was made.
    pub created_at: i64,
    /// When it stops working.
    pub expires_at: i64,
}

impl std::fmt::Debug for WebauthnChallengeRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebauthnChallengeRecord")
            .field("user_id", &self.user_id)
            .field("purpose", &self.purpose)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}
