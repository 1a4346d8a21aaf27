//! keycard-store: where users, sessions, refresh-token hashes, signing keys and the audit log live.
//!
//! Layout:
//! - [`model`]: the records the store reads and writes.
//! - [`webhook`]: which audit events go out as webhooks, their payload, endpoints and deliveries.
//! - [`Store`]: the trait every backend implements; the server only sees `Arc<dyn Store>`.
//! - [`sqlite`]: the embedded default (one file, WAL, one writer thread committing in groups).
//! - [`postgres`]: the shared backend for several instances (a pool per instance).
//!
//! Rotation is one atomic operation of the store ([`Store::rotate_refresh`]): the presented token
//! is marked used by `UPDATE … WHERE used_at IS NULL`, so of N concurrent refreshes exactly one
//! wins, and a token that was already used revokes its whole session in the same transaction.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod mfa;
pub mod model;
pub mod postgres;
pub mod sqlite;
#[doc(hidden)]
pub mod testing;
pub mod webhook;

use async_trait::async_trait;
use keycard_core::refresh::TokenHash;

pub use keycard_core::events::{AuditKind, ReuseVerdict, RevocationReason};
pub use mfa::*;
pub use model::*;
pub use postgres::{PgStore, PgStoreOptions};
pub use sqlite::SqliteStore;
pub use webhook::*;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// An account with this email already exists.
    #[error("an account with this email already exists")]
    EmailTaken,
    /// The user is disabled (`keycard users disable`): no new session.
    #[error("the user is disabled")]
    UserDisabled,
    /// The database could not be reached or answered with an error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Migrations failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// SQLite answered with an error.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The store cannot serve: it is closed, or its SQLite writer thread stopped.
    #[error("the store is unavailable: {0}")]
    Unavailable(String),
    /// A bug inside the store (e.g. a write job panicked); the store itself carries on.
    #[error("internal store error: {0}")]
    Internal(String),
}

impl StoreError {
    /// Whether the store is unreachable (as opposed to a logic error): worth a 503.
    ///
    /// A refused connection surfaces as [`sqlx::Error::PoolTimedOut`] (the pool retries refused
    /// connects until its acquire timeout), other network failures as `Io`/`Tls`. PostgreSQL
    /// also answers some requests with an error while it is unable to serve, by SQLSTATE: class
    /// 08 (connection exception), class 53 (insufficient resources, e.g. too many connections),
    /// 57P01–57P03 (shutting down, crash recovery, not accepting connections yet), 57014 (our
    /// `statement_timeout` fired: overloaded) and 25006 (a read-only standby after a fail-over).
    ///
    /// On SQLite: [`StoreError::Unavailable`], a closed store or a stopped writer thread.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Database(
                sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_) | sqlx::Error::Tls(_),
            ) => true,
            Self::Database(sqlx::Error::Database(e)) => {
                e.try_downcast_ref::<sqlx::postgres::PgDatabaseError>().is_some_and(|e| {
                    let code = e.code();
                    code.starts_with("08")
                        || code.starts_with("53")
                        || matches!(code, "57P01" | "57P02" | "57P03" | "57014" | "25006")
                })
            }
            _ => false,
        }
    }
}

/// Shorthand for store results.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Persistence for keycard. Every method is one transaction.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers (for `/readyz`).
    async fn ping(&self) -> Result<()>;

    /// Creates a user; [`StoreError::EmailTaken`] when the email exists.
    async fn create_user(&self, user: &NewUser) -> Result<()>;
    /// The user with this (normalised) email.
    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>>;
    /// The user with this id.
    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>>;

    /// Starts a session with its first refresh token and writes `audit` (the login) in the same
    /// transaction; [`StoreError::UserDisabled`] for a disabled user.
    async fn create_session(&self, session: &NewSession, first_token: &TokenHash, audit: &AuditEvent) -> Result<()>;
    /// Marks `presented` used and issues `replacement` in one atomic step; see [`RotateOutcome`].
    /// The same transaction records the audit event of the outcome ([`Rotation::audit_event`]).
    /// A session of a disabled user does not rotate ([`RotateOutcome::Invalid`]).
    async fn rotate_refresh(&self, rotation: &Rotation) -> Result<RotateOutcome>;
    /// The live session an unused refresh token belongs to (for logout by refresh token).
    async fn session_by_refresh(&self, token: &TokenHash, now: i64) -> Result<Option<SessionRecord>>;
    /// The user behind an access token's session, if that session is live and belongs to `user_id`
    /// and the user is not disabled. Runs on every authenticated request: one indexed statement.
    async fn session_user(&self, session_id: &str, user_id: &str, now: i64) -> Result<Option<UserRecord>>;
    /// The user's live sessions, newest first.
    async fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionRecord>>;
    /// Revokes one of the user's sessions and writes `audit` with it; false (and nothing
    /// written) when it is not theirs or not live.
    ///
    /// The methods that change users and sessions take the audit event of the change and write
    /// it, completed by [`AuditEvent::completed`], in their own transaction: the event, and the
    /// webhook deliveries it queues, exist exactly when the change does.
    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        reason: RevocationReason,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool>;
    /// Revokes all the user's live sessions but `except` and writes `audit`; returns the revoked ids.
    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
        reason: RevocationReason,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Vec<String>>;
    /// Sets a new password hash, revokes every session but `keep` and writes `audit`; returns the
    /// revoked ids.
    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep: Option<&str>,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Vec<String>>;
    /// Deletes the user and everything of theirs, revoking their sessions, and writes `audit`;
    /// returns the revoked ids.
    async fn delete_user(&self, user_id: &str, now: i64, audit: &AuditEvent) -> Result<Vec<String>>;
    /// Revocations with a sequence number above `after`, oldest first (the revocation feed).
    async fn revocations_since(&self, after: i64, limit: i64) -> Result<Vec<Revocation>>;

    /// Users for operators (`keycard users list`), by email, with their live-session counts.
    async fn list_users(&self, filter: &UserFilter, now: i64) -> Result<Vec<UserSummary>>;
    /// Disables (`disabled`) or enables the user; `None` when there is no such user.
    ///
    /// Disabling sets `disabled_at` (kept if already set) and, in the same transaction, revokes
    /// every live session of the user with reason `user_disabled`, onto the revocation feed; it
    /// returns the revoked ids. From then on the user's access tokens are refused
    /// ([`session_user`](Self::session_user)) and no session of theirs rotates. Enabling clears
    /// `disabled_at`; revoked sessions stay revoked, and sessions created while the user was
    /// disabled (logins that should have been refused) are revoked too, the same way, so that
    /// no session from before comes back to life. Returns the ids revoked. `audit` is written
    /// when something changed (not for enabling a user who is not disabled).
    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Option<Vec<String>>>;
    /// Live sessions for operators (`keycard sessions list`): all users' or only `user_id`'s,
    /// newest first (ties by id, descending), at most `limit` (0 or less means 100).
    async fn list_all_sessions(&self, user_id: Option<&str>, now: i64, limit: i64) -> Result<Vec<SessionRecord>>;
    /// Revokes the session whatever its user (`keycard sessions revoke`), onto the revocation
    /// feed, and writes `audit` (its user filled in); returns its user's id, or `None` (nothing
    /// written) when there is no such live session.
    async fn revoke_session_by_id(
        &self,
        session_id: &str,
        reason: RevocationReason,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Option<String>>;

    /// Every stored signing key.
    async fn signing_keys(&self) -> Result<Vec<StoredKey>>;
    /// Stores a signing key; false when one with this kid exists.
    async fn insert_signing_key(&self, key: &StoredKey) -> Result<bool>;
    /// Marks a key retired at `now` (it leaves JWKS and verification at once); false when there
    /// is no such unretired key.
    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool>;
    /// The master key as wrapped by a key-management service (envelope encryption), if stored.
    async fn wrapped_master_key(&self) -> Result<Option<WrappedMasterKey>>;
    /// Stores `new` if the stored ciphertext is `expected` (`None`: nothing stored yet). False,
    /// with nothing changed, when it is not (another instance stored or rewrapped it first).
    async fn replace_wrapped_master_key(&self, expected: Option<&str>, new: &WrappedMasterKey) -> Result<bool>;

    /// Registers an OAuth client (ids are random: a clash is an error).
    async fn create_client(&self, client: &ClientRecord) -> Result<()>;
    /// The client with this id.
    async fn client(&self, id: &str) -> Result<Option<ClientRecord>>;
    /// Every registered client, by id.
    async fn list_clients(&self) -> Result<Vec<ClientRecord>>;
    /// Replaces the client's secret hash; false when there is no such client.
    async fn set_client_secret(&self, id: &str, secret_hash: &str, now: i64) -> Result<bool>;
    /// Removes the client, publishing its current grant on the revocation feed (reason
    /// `client_removed`) so its access tokens are refused everywhere; false when there is no such
    /// client.
    async fn remove_client(&self, id: &str, now: i64) -> Result<bool>;
    /// Revokes the client's access tokens of grant `grant_id`: when that is still its current
    /// grant, publishes it on the revocation feed and makes `new_grant_id` current. False when
    /// the client is gone or the grant was already replaced.
    async fn revoke_client_grant(
        &self,
        id: &str,
        grant_id: &str,
        new_grant_id: &str,
        reason: RevocationReason,
        now: i64,
    ) -> Result<bool>;
    /// Spends the `jti` of a client assertion valid until `expires_at`: true the first time,
    /// false when it was already used (and has not expired). Expired ones are forgotten.
    async fn spend_assertion(&self, client_id: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool>;
    /// Spends the `(jkt, jti)` of a DPoP proof accepted until `expires_at` (RFC 9449 §11.1):
    /// true the first time, false when it was seen before and has not expired (a replay).
    /// Expired pairs are forgotten. Shared by every instance on the same database.
    async fn spend_dpop_proof(&self, jkt: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool>;

    /// Puts a message in the mail outbox, due at once. Flows that send mail because of an event
    /// write it in the event's own transaction instead (each backend's `insert_mail` helper), so
    /// that the event and its message are committed together or not at all.
    async fn enqueue_mail(&self, mail: &NewMail) -> Result<()>;
    /// Claims up to `limit` queued messages due at `now` (oldest due first) for delivery: each one's
    /// `attempts` goes up by one and it is not due again before `lease_until`, so a sender that
    /// stops mid-delivery leaves it to be claimed again once the lease is over. Concurrent claims
    /// (several instances on PostgreSQL) never return the same message.
    async fn claim_mail(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<MailRecord>>;
    /// Marks a queued message delivered at `now`; false when it is not queued.
    async fn mail_sent(&self, id: &str, now: i64) -> Result<bool>;
    /// Records a failed delivery attempt with its reply `error`: the message is due again at
    /// `retry_at`, or, with `None`, has failed for good. False when it is not queued.
    async fn mail_failed(&self, id: &str, error: &str, retry_at: Option<i64>) -> Result<bool>;
    /// Outbox messages matching `filter`, newest first.
    async fn list_mail(&self, filter: &MailFilter) -> Result<Vec<MailRecord>>;

    /// Records a password-reset request for the account with `request.email`, if there is one:
    /// in one transaction, every earlier reset token of the user is deleted (a new request
    /// supersedes older ones), the new token's hash is stored, the message is queued and the
    /// audit event (with the user's id) appended. For an unknown address nothing is written.
    /// True when the account exists. A disabled user gets no token.
    async fn request_password_reset(&self, request: &LinkRequest) -> Result<bool>;
    /// Spends a reset token and sets the new password, in one transaction: the token is marked
    /// used only if it is unused and not expired (of concurrent spends exactly one wins), the
    /// password hash replaced, every live session of the user revoked (reason `password_reset`,
    /// onto the revocation feed), the notice queued to the user's address and the audit event
    /// appended. `None` (and nothing written) for an unknown, used, superseded or expired token.
    async fn reset_password(&self, reset: &PasswordReset) -> Result<Option<PasswordResetDone>>;

    /// Mails a new verification link to the account with `request.email`, if it exists, is not
    /// disabled and is not verified yet: in one transaction, the user's earlier verification
    /// tokens are deleted (superseded), the new hash stored, the message queued and the event
    /// appended. True when the account exists.
    async fn request_verification(&self, request: &LinkRequest) -> Result<bool>;
    /// Spends a verification token: when it is unused, unexpired and for the address the user
    /// has now, the address is marked verified (on the user and every session) and the event
    /// appended. The user's id, or `None` with nothing written.
    async fn verify_email(&self, used: &EmailTokenUse) -> Result<Option<String>>;
    /// Records an address change: unless `new_email` belongs to an account (then false, and
    /// only the event is appended, with detail `address taken`), the user's pending change is
    /// superseded (a confirmed change keeps its cancel token), both token hashes are stored, the
    /// confirmation is queued to the new address and the notice to the current one.
    async fn request_email_change(&self, change: &EmailChangeRequest) -> Result<bool>;
    /// Spends a confirmation token: the address becomes the new one, verified (on the user and
    /// every session); the user's unspent password-reset and verification tokens (mailed to the
    /// old address) are deleted.
    async fn confirm_email_change(&self, used: &EmailTokenUse) -> Result<EmailChangeOutcome>;
    /// Spends a cancel token: a pending change is cancelled (its confirmation token stops
    /// working); a confirmed one is undone (the old address is back, verified, and every session
    /// revoked with reason `email_change_cancelled`, onto the feed) unless the account's address
    /// changed again or the old address was taken since. `None` with nothing written otherwise.
    async fn cancel_email_change(&self, used: &EmailTokenUse) -> Result<Option<EmailChangeCancelled>>;

    /// Appends an audit event and, for an event of a webhook kind ([`WebhookEvent::of`]), in the
    /// same transaction one delivery per endpoint subscribed to it.
    async fn append_audit(&self, event: &AuditEvent) -> Result<()>;
    /// Deletes audit events older than `before`; returns how many.
    async fn prune_audit(&self, before: i64) -> Result<u64>;
    /// Audit events matching `filter`, newest first.
    async fn audit_events(&self, filter: &AuditFilter) -> Result<Vec<AuditRecord>>;

    /// Adds a webhook endpoint; deliveries of the events it lists are queued from then on.
    async fn add_webhook_endpoint(&self, endpoint: &NewWebhookEndpoint) -> Result<()>;
    /// Every webhook endpoint, by creation time, with its delivery status.
    async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>>;
    /// Removes an endpoint and its deliveries (pending ones are never sent); false when there is
    /// no such endpoint.
    async fn remove_webhook_endpoint(&self, id: &str) -> Result<bool>;
    /// Queues `message` to one endpoint, due at `now` (`keycard webhooks test`); false when there
    /// is no such endpoint. Events queue their deliveries themselves, in the transaction that
    /// appends them (see [`webhook`]).
    async fn enqueue_webhook(&self, endpoint_id: &str, message: &WebhookMessage, now: i64) -> Result<bool>;
    /// Claims up to `limit` pending deliveries due at `now` (oldest due first), as
    /// [`claim_mail`](Self::claim_mail) does: `attempts` goes up by one and each is not due again
    /// before `lease_until`; concurrent claims never return the same delivery.
    async fn claim_webhooks(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<WebhookDelivery>>;
    /// Marks a pending delivery delivered at `now`; false when it is not pending.
    async fn webhook_delivered(&self, endpoint_id: &str, id: &str, now: i64) -> Result<bool>;
    /// Records a failed attempt: due again at `retry_at`, or with `None` failed for good. False
    /// when it is not pending.
    async fn webhook_failed(&self, endpoint_id: &str, id: &str, error: &str, retry_at: Option<i64>) -> Result<bool>;
    /// Deliveries, newest first: one endpoint's or every endpoint's, at most `limit` (0 or less
    /// means 100).
    async fn webhook_deliveries(&self, endpoint_id: Option<&str>, limit: i64) -> Result<Vec<WebhookDelivery>>;

    /// Every factor of the user, pending ones included, oldest first.
    async fn factors(&self, user_id: &str) -> Result<Vec<FactorRecord>>;
    /// Adds a pending factor, replacing the user's other pending factors of its kind (an
    /// enrolment started again).
    async fn add_factor(&self, factor: &FactorRecord) -> Result<()>;
    /// Activates a pending factor with its first code: spends the code's step, stores the
    /// recovery codes when the account has none, and writes the event, in one transaction.
    async fn confirm_factor(&self, confirmation: &FactorConfirmation) -> Result<FactorConfirmed>;
    /// Accepts TOTP time `step` of an active factor at `now`: true only when it is newer than
    /// every step accepted before (a code is good once, across every instance).
    async fn use_totp_step(&self, factor_id: &str, step: i64, now: i64) -> Result<bool>;
    /// Removes one of the user's factors (pending or active) with its event; when no active
    /// factor is left the recovery codes go too. False when there is no such factor.
    async fn remove_factor(&self, user_id: &str, factor_id: &str, audit: &AuditEvent) -> Result<bool>;
    /// Replaces all of the user's recovery codes, with the event; false (nothing written) when
    /// the account has no active factor.
    async fn replace_recovery_codes(&self, user_id: &str, codes: &[TokenHash], audit: &AuditEvent) -> Result<bool>;
    /// Spends one unused recovery code of the user, with the event; false when it is not one.
    async fn spend_recovery_code(&self, user_id: &str, code: &TokenHash, audit: &AuditEvent) -> Result<bool>;
    /// How many unused recovery codes the user has.
    async fn recovery_codes_left(&self, user_id: &str) -> Result<i64>;
    /// Stores a login waiting for its second factor (and forgets expired ones).
    async fn create_mfa_challenge(&self, challenge: &MfaChallengeRecord) -> Result<()>;
    /// Counts one answer against a live challenge and returns it, attempts included; `None` when
    /// it is unknown, expired, completed, or has had `max_attempts` answers already.
    async fn attempt_mfa_challenge(
        &self,
        token: &TokenHash,
        now: i64,
        max_attempts: i64,
    ) -> Result<Option<MfaChallengeRecord>>;
    /// Completes a challenge: true for the one caller that deletes it.
    async fn finish_mfa_challenge(&self, token: &TokenHash) -> Result<bool>;
    /// Records a passkey's use at `now`: its new `credential` state and signature `counter`.
    /// Accepted only when the counter moves forward (or stays 0 on an authenticator that keeps
    /// none), so a cloned authenticator's older counter is refused on every instance. False when
    /// it was not accepted or the factor is not active.
    async fn use_passkey(&self, factor_id: &str, counter: i64, credential: &[u8], now: i64) -> Result<bool>;
    /// Renames one of the user's factors; false when there is no such factor.
    async fn rename_factor(&self, user_id: &str, factor_id: &str, name: &str) -> Result<bool>;
    /// Stores a WebAuthn ceremony waiting for its answer (and forgets expired ones).
    async fn create_webauthn_challenge(&self, challenge: &WebauthnChallengeRecord) -> Result<()>;
    /// Takes (deletes) a ceremony: `Some` for the one caller that deletes it while it is live,
    /// `None` when it is unknown, taken already or expired.
    async fn take_webauthn_challenge(&self, token: &TokenHash, now: i64) -> Result<Option<WebauthnChallengeRecord>>;
    /// Records a step-up on a live session of the user: its `amr` and `auth_time`, which the
    /// access tokens of its later refreshes carry. False when the session is not live.
    async fn set_session_auth(
        &self,
        user_id: &str,
        session_id: &str,
        amr: keycard_core::amr::Amr,
        auth_time: i64,
    ) -> Result<bool>;
}
