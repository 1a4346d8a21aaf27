//! The names keycard records: audit-event kinds and session-revocation reasons.
//!
//! Both are stored as text (`audit_events.kind`, `sessions.revoked_reason`,
//! `revocations.reason`), shown by `keycard audit`, filtered on, and used as metric labels; one
//! enum each keeps every writer and reader on the same spelling. A name this version does not
//! know (a row written by a newer keycard) reads as `Unknown` rather than failing the read.

use std::fmt;
use std::str::FromStr;

/// Defines a string-valued enum with `as_str`, `ALL`, `Display`, `FromStr` and serde as its
/// snake_case name, and an `Unknown` variant for names from elsewhere.
macro_rules! names {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
            /// A name this version of keycard does not know (written by a newer version).
            Unknown,
        }

        impl $name {
            /// Every known name, in declaration order.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The stored and displayed name.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                    $name::Unknown => "unknown",
                }
            }

            /// The known name `text`, or `Unknown`: for reading stored rows.
            pub fn parse_lenient(text: &str) -> Self {
                text.parse().unwrap_or($name::Unknown)
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(text: &str) -> Result<Self, UnknownName> {
                match text {
                    $($text => Ok($name::$variant),)+
                    _ => Err(UnknownName {
                        what: stringify!($name),
                        given: text.chars().take(64).collect(),
                        known: $name::ALL.iter().map(|n| n.as_str()).collect(),
                    }),
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }
    };
}

names! {
    /// What an audit event records (`keycard audit --kind …`).
    AuditKind {
        /// An account was created.
        Signup = "signup",
        /// A password login succeeded.
        Login = "login",
        /// A password login failed (wrong password, unknown account, throttled, disabled).
        LoginFailed = "login_failed",
        /// A refresh token was rotated.
        Refresh = "refresh",
        /// A used refresh token came back: its session was revoked.
        RefreshTokenReused = "refresh_token_reused",
        /// The user logged out (this session, the others, or all).
        Logout = "logout",
        /// One session was revoked (by its user, an operator, or a binding mismatch).
        SessionRevoked = "session_revoked",
        /// The user changed their password.
        PasswordChanged = "password_changed",
        /// A password re-check (password change, account deletion) failed.
        PasswordCheckFailed = "password_check_failed",
        /// The user deleted their account.
        AccountDeleted = "account_deleted",
        /// An operator disabled the user.
        UserDisabled = "user_disabled",
        /// An operator enabled the user again.
        UserEnabled = "user_enabled",
        /// An operator revoked all of the user's sessions.
        SessionsRevokedByOperator = "sessions_revoked_by_operator",
        /// An operator registered an OAuth client (`keycard clients add`).
        ClientCreated = "client_created",
        /// An operator replaced a client's secret (`keycard clients rotate-secret`).
        ClientSecretRotated = "client_secret_rotated",
        /// An operator removed a client (its tokens are revoked).
        ClientRemoved = "client_removed",
        /// A client obtained an access token with its own credentials (`client_credentials`).
        ClientToken = "client_token",
        /// A client failed to authenticate at an OAuth endpoint.
        ClientAuthFailed = "client_auth_failed",
        /// A token was revoked through `POST /oauth/revoke`.
        TokenRevoked = "token_revoked",
        /// A client introspected a token (`POST /oauth/introspect`).
        TokenIntrospected = "token_introspected",
        /// A password reset was asked for an existing account (a link was mailed).
        PasswordResetRequested = "password_reset_requested",
        /// A password was reset with a mailed token (every session ends).
        PasswordReset = "password_reset",
        /// A link to verify the account's address was mailed (at signup, or asked for again).
        EmailVerificationSent = "email_verification_sent",
        /// The account's address was verified with a mailed link.
        EmailVerified = "email_verified",
        /// The user asked to change their address (a confirmation link went to the new one).
        EmailChangeRequested = "email_change_requested",
        /// The new address was confirmed: the account's address changed.
        EmailChanged = "email_changed",
        /// The change was cancelled from the old address (a change already made is undone).
        EmailChangeCancelled = "email_change_cancelled",
        /// A second factor (authenticator app) was confirmed and is active.
        MfaEnrolled = "mfa_enrolled",
        /// A second factor was removed.
        MfaRemoved = "mfa_removed",
        /// A second-factor step of a login succeeded.
        MfaVerified = "mfa_verified",
        /// A second-factor step of a login failed.
        MfaFailed = "mfa_failed",
        /// A passkey was registered.
        PasskeyAdded = "passkey_added",
        /// A passkey was deleted.
        PasskeyRemoved = "passkey_removed",
        /// A recovery code was spent.
        RecoveryCodeUsed = "recovery_code_used",
        /// The recovery codes were replaced by new ones.
        RecoveryCodesRegenerated = "recovery_codes_regenerated",
        /// A passkey's signature counter went backwards (a possible clone).
        PasskeyCounterRegressed = "passkey_counter_regressed",
        /// A DPoP-bound session's refresh token came without a proof of its key (RFC 9449):
        /// refused, the session left as it was.
        DpopMismatch = "dpop_mismatch",
    }
}

names! {
    /// Why a session was revoked (stored with it and in the revocation feed's table).
    RevocationReason {
        /// `POST /auth/logout` of this session.
        Logout = "logout",
        /// `POST /auth/logout` with `scope: global`.
        LogoutGlobal = "logout_global",
        /// `POST /auth/logout` with `scope: others`.
        LogoutOthers = "logout_others",
        /// `DELETE /auth/sessions/{id}` by its user.
        RevokedByUser = "revoked_by_user",
        /// `keycard sessions revoke` or `keycard users logout`.
        RevokedByOperator = "revoked_by_operator",
        /// The user changed their password (every other session ends).
        PasswordChange = "password_change",
        /// The user deleted their account.
        AccountDeleted = "account_deleted",
        /// An operator disabled the user.
        UserDisabled = "user_disabled",
        /// A used refresh token came back.
        RefreshTokenReused = "refresh_token_reused",
        /// A refresh came from another device than the session's binding allows.
        BindingMismatch = "binding_mismatch",
        /// A token of this session (or client grant) was revoked through `POST /oauth/revoke`.
        TokenRevoked = "token_revoked",
        /// The OAuth client whose tokens these were was removed.
        ClientRemoved = "client_removed",
        /// The password was reset with a mailed token (every session ends).
        PasswordReset = "password_reset",
        /// An address change was undone from the old address (every session ends).
        EmailChangeCancelled = "email_change_cancelled",
    }
}

names! {
    /// Why a used refresh token came back, as far as keycard can tell (the session is revoked in
    /// every case): the rotation that spent the token and the replay compared.
    ReuseVerdict {
        /// The same device signals (IP network and user agent) within a few seconds of the
        /// rotation: two tabs or retries of one client racing (a client bug, not an attack).
        Race = "race",
        /// Other device signals than the rotation's, or the same ones long after: a copy of the
        /// token in someone else's hands.
        TheftSuspected = "theft_suspected",
    }
}

/// A name that is not one of the known ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownName {
    what: &'static str,
    given: String,
    known: Vec<&'static str>,
}

impl fmt::Display for UnknownName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.what == "AuditKind" { "audit kind" } else { "revocation reason" };
        write!(f, "unknown {what} {:?}; known: {}", self.given, self.known.join(", "))
    }
}

impl std::error::Error for UnknownName {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_round_trips_and_is_distinct() {
        for kind in AuditKind::ALL {
            assert_eq!(kind.as_str().parse::<AuditKind>().unwrap(), *kind);
            assert_eq!(serde_json::to_string(kind).unwrap(), format!("\"{kind}\""));
            assert_eq!(AuditKind::ALL.iter().filter(|k| k.as_str() == kind.as_str()).count(), 1);
        }
        for reason in RevocationReason::ALL {
            assert_eq!(reason.as_str().parse::<RevocationReason>().unwrap(), *reason);
            assert_eq!(serde_json::from_str::<RevocationReason>(&format!("\"{reason}\"")).unwrap(), *reason);
        }
    }

    #[test]
    fn unknown_names_are_named_in_the_error_and_lenient_reads_keep_going() {
        let error = "refresh_reused".parse::<AuditKind>().unwrap_err().to_string();
        assert!(error.starts_with("unknown audit kind \"refresh_reused\"; known: signup, login,"), "{error}");
        assert!("unknown".parse::<RevocationReason>().is_err(), "Unknown is not a name one can ask for");
        assert_eq!(AuditKind::parse_lenient("from_the_future"), AuditKind::Unknown);
        assert_eq!(RevocationReason::parse_lenient("logout_others"), RevocationReason::LogoutOthers);
        assert!(AuditKind::Refresh == "refresh");
    }

    #[test]
    fn the_readme_lists_every_name() {
        let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md")).unwrap();
        let names = AuditKind::ALL.iter().map(|k| k.as_str()).chain(RevocationReason::ALL.iter().map(|r| r.as_str()));
        for name in names {
            assert!(readme.contains(&format!("`{name}`")), "README.md does not list `{name}`");
        }
    }
}
