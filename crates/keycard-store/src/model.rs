//! Records the store reads and writes. Times are Unix seconds.

use keycard_core::events::{AuditKind, ReuseVerdict, RevocationReason};

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// UUID.
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub created_at: i64,
    /// A verification link to mail in the signup's own transaction (`email_verification` on);
    /// its `email` is the new user's.
    pub verification: Option<LinkRequest>,
}

/// A stored user.
#[derive(Clone)]
pub struct UserRecord {
    /// UUID.
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Creation time.
    pub created_at: i64,
    /// When an operator disabled the account (`keycard users disable`); `None` while enabled.
    /// A disabled user's access tokens are refused and their sessions do not rotate.
    pub disabled_at: Option<i64>,
    /// When the address was verified; `None` while it is not.
    pub email_verified_at: Option<i64>,
}

impl std::fmt::Debug for UserRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserRecord")
            .field("id", &self.id)
            .field("created_at", &self.created_at)
            .field("disabled_at", &self.disabled_at)
            .finish_non_exhaustive()
    }
}

/// Which users an operator lists ([`Store::list_users`](crate::Store::list_users)), by email.
#[derive(Debug, Clone, Default)]
pub struct UserFilter {
    /// Only users whose email contains this text (compared exactly: emails are stored normalised,
    /// lower-cased).
    pub email_contains: Option<String>,
    /// Only users whose email sorts after this one: the last email of the previous page.
    pub after_email: Option<String>,
    /// At most this many; 0 or less means 100.
    pub limit: i64,
}

/// A user as operators list them: no password hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    /// UUID.
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// Creation time.
    pub created_at: i64,
    /// When disabled, if the account is.
    pub disabled_at: Option<i64>,
    /// How many of the user's sessions are live now.
    pub live_sessions: i64,
}

/// A session (refresh-token family) to create at login.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Session id, the `sid` claim.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Login time.
    pub created_at: i64,
    /// Idle expiry: pushed forward by each rotation, never past `absolute_expires_at`.
    pub idle_expires_at: i64,
    /// Absolute expiry.
    pub absolute_expires_at: i64,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// How the user signed in (RFC 8176).
    pub amr: keycard_core::amr::Amr,
    /// When the user signed in (usually `created_at`).
    pub auth_time: i64,
    /// The RFC 7638 thumbprint of the DPoP key the session is bound to (RFC 9449), when it was
    /// started with a DPoP proof: every refresh must then come with a proof of that key.
    pub dpop_jkt: Option<String>,
}

/// A stored session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// Session id.
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Login time.
    pub created_at: i64,
    /// Last rotation (or login).
    pub last_used_at: i64,
    /// Idle expiry.
    pub idle_expires_at: i64,
    /// Absolute expiry.
    pub absolute_expires_at: i64,
    /// User agent at login.
    pub user_agent: Option<String>,
    /// Client IP at login.
    pub ip: Option<String>,
    /// Whether the user's address is verified (kept up to date on the session, so a refresh
    /// reads it without looking the user up): the `email_verified` claim.
    pub email_verified: bool,
    /// How the user signed in (RFC 8176): the `amr` claim.
    pub amr: keycard_core::amr::Amr,
    /// When the user last proved who they are (the login or a step-up): `auth_time`.
    pub auth_time: i64,
    /// The thumbprint of the DPoP key the session is bound to (its access tokens carry it as
    /// `cnf.jkt`); `None` for a Bearer session.
    pub dpop_jkt: Option<String>,
}

/// Refresh-token binding: what must stay the same between login and each refresh. Carried by
/// each [`Rotation`], so the store decides it in the rotation's own transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Binding {
    /// No binding.
    #[default]
    None,
    /// The exact `User-Agent`.
    UserAgent,
    /// The client IP's network: /24 for IPv4, /48 for IPv6.
    IpPrefix,
}

impl Binding {
    /// The setting's name of this policy (`none`, `user_agent`, `ip_prefix`).
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::UserAgent => "user_agent",
            Self::IpPrefix => "ip_prefix",
        }
    }

    /// The policy named `name`; `None` for an unknown name (never a silent "no binding").
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::None, Self::UserAgent, Self::IpPrefix].into_iter().find(|b| b.name() == name)
    }

    /// Whether a refresh from `(ua, ip)` matches a session started from `(login_ua, login_ip)`.
    pub fn matches(self, login_ua: Option<&str>, login_ip: Option<&str>, ua: Option<&str>, ip: Option<&str>) -> bool {
        match self {
            Self::None => true,
            Self::UserAgent => login_ua == ua,
            Self::IpPrefix => match (login_ip.and_then(|i| i.parse().ok()), ip.and_then(|i| i.parse().ok())) {
                (Some(a), Some(b)) => ip_prefix(a) == ip_prefix(b),
                _ => login_ip == ip,
            },
        }
    }
}

fn ip_prefix(ip: std::net::IpAddr) -> Vec<u8> {
    match ip {
        std::net::IpAddr::V4(v4) => v4.octets()[..3].to_vec(),
        std::net::IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => v4.octets()[..3].to_vec(),
            None => v6.octets()[..6].to_vec(),
        },
    }
}

/// One refresh: present a token, get a replacement.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// Hash of the presented token.
    pub presented: keycard_core::refresh::TokenHash,
    /// Hash of the token that replaces it.
    pub replacement: keycard_core::refresh::TokenHash,
    /// Now.
    pub now: i64,
    /// Idle lifetime in seconds: the session's idle expiry becomes `now + idle_ttl` (capped).
    pub idle_ttl: i64,
    /// Seconds after its use during which a used token still rotates (0 = strictly single-use).
    pub reuse_interval: i64,
    /// The requesting client's IP, for the audit row the rotation writes in its own transaction.
    pub ip: Option<String>,
    /// The requesting client's user agent, for the same audit row.
    pub user_agent: Option<String>,
    /// The binding the session must keep: on a mismatch the rotation revokes the session
    /// instead (reason `binding_mismatch`, audit `session_revoked`), in the same transaction.
    pub binding: Binding,
    /// The thumbprint of the DPoP key whose proof came with this refresh (already verified), if
    /// any. A session bound to a key rotates only with that key's proof; otherwise nothing
    /// changes and the outcome is [`RotateOutcome::DpopMismatch`].
    pub dpop_jkt: Option<String>,
}

impl Rotation {
    /// Whether this refresh satisfies the session's DPoP binding: an unbound session takes any
    /// refresh; a bound one only a proof of its key.
    pub fn dpop_holds(&self, session: &SessionRecord) -> bool {
        match (&session.dpop_jkt, &self.dpop_jkt) {
            (None, _) => true,
            (Some(bound), Some(presented)) => bound == presented,
            (Some(_), None) => false,
        }
    }

    /// Whether this refresh comes from the device `session` was started on (per the binding).
    pub fn binding_holds(&self, session: &SessionRecord) -> bool {
        self.binding.matches(
            session.user_agent.as_deref(),
            session.ip.as_deref(),
            self.user_agent.as_deref(),
            self.ip.as_deref(),
        )
    }

    /// The audit event of a session ended by a binding mismatch.
    pub fn binding_event(&self, session: &SessionRecord) -> AuditEvent {
        let mut event = self.audit_event(AuditKind::SessionRevoked, &session.user_id, &session.id);
        event.detail = Some(format!("refresh binding ({}) mismatch", self.binding.name()));
        event
    }

    /// The audit event a rotation records with its outcome: `refresh` when it rotated,
    /// `refresh_token_reused` when it revoked the session (nothing when the token was invalid).
    pub fn audit_event(&self, kind: AuditKind, user_id: &str, session_id: &str) -> AuditEvent {
        AuditEvent {
            at: self.now,
            kind,
            user_id: Some(user_id.into()),
            session_id: Some(session_id.into()),
            ip: self.ip.clone(),
            user_agent: self.user_agent.clone(),
            detail: None,
        }
    }
}

/// Who presented a refresh token: when, and from which device signals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Presenter {
    /// When.
    pub at: i64,
    /// Client IP.
    pub ip: Option<String>,
    /// User agent.
    pub user_agent: Option<String>,
}

/// A replay within this many seconds of the rotation that spent the token, from the same
/// device signals, is a [`ReuseVerdict::Race`].
pub const RACE_WINDOW_SECS: i64 = 10;
/// A replay this long after the rotation is [`ReuseVerdict::TheftSuspected`] even from the same
/// device signals (no client retries a refresh that late).
pub const LONG_AFTER_SECS: i64 = 300;

/// Race or theft: compares the rotation that spent a token (`spent`, when it is known) with the
/// replay. Same IP network (/24, /48) and same user agent within [`RACE_WINDOW_SECS`]: `race`.
/// Another network or user agent, or more than [`LONG_AFTER_SECS`] later: `theft_suspected`.
/// Otherwise, or with the rotation unknown: `unknown`. A thief on the same network with the same
/// browser, replaying at once, looks like a race: the verdict informs, the session is revoked
/// whatever it says.
pub fn classify_reuse(spent: Option<&Presenter>, replay: &Presenter) -> ReuseVerdict {
    let Some(spent) = spent else { return ReuseVerdict::Unknown };
    let same_network = Binding::IpPrefix.matches(None, spent.ip.as_deref(), None, replay.ip.as_deref());
    let same_device = same_network && spent.user_agent == replay.user_agent;
    let after = replay.at - spent.at;
    if !same_device || after > LONG_AFTER_SECS {
        ReuseVerdict::TheftSuspected
    } else if after <= RACE_WINDOW_SECS {
        ReuseVerdict::Race
    } else {
        ReuseVerdict::Unknown
    }
}

/// The `detail` of a `refresh_token_reused` event: the verdict and both presenters, as JSON.
pub fn reuse_detail(verdict: ReuseVerdict, spent: Option<&Presenter>, replay: &Presenter) -> String {
    let rotation = spent.map(|p| serde_json::json!({"at": p.at, "ip": p.ip, "user_agent": p.user_agent}));
    serde_json::json!({
        "verdict": verdict.as_str(),
        "rotation": rotation,
        "replay": {"at": replay.at, "ip": replay.ip, "user_agent": replay.user_agent},
        "seconds_after_rotation": spent.map(|p| replay.at - p.at),
    })
    .to_string()
}

impl Rotation {
    /// The replay's presenter (this rotation's request).
    pub fn presenter(&self) -> Presenter {
        Presenter { at: self.now, ip: self.ip.clone(), user_agent: self.user_agent.clone() }
    }

    /// The `refresh_token_reused` event with its verdict, and the verdict.
    pub fn reuse_event(
        &self,
        user_id: &str,
        session_id: &str,
        spent: Option<&Presenter>,
    ) -> (AuditEvent, ReuseVerdict) {
        let replay = self.presenter();
        let verdict = classify_reuse(spent, &replay);
        let mut event = self.audit_event(AuditKind::RefreshTokenReused, user_id, session_id);
        event.detail = Some(reuse_detail(verdict, spent, &replay));
        (event, verdict)
    }
}

/// What a rotation did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RotateOutcome {
    /// The token was live: it is now used, and the replacement is the session's live token.
    Rotated(SessionRecord),
    /// The token had been used already (outside the reuse interval): the session is now revoked.
    Reused {
        /// The revoked session.
        session_id: String,
        /// Its owner.
        user_id: String,
        /// Race or theft, as far as the two presenters tell ([`classify_reuse`]).
        verdict: ReuseVerdict,
    },
    /// The token was live but presented from another device than its session's binding allows:
    /// the session is now revoked (reason `binding_mismatch`).
    BindingMismatch {
        /// The revoked session.
        session_id: String,
        /// Its owner.
        user_id: String,
    },
    /// Unknown token, or its session is revoked or expired, or its user is disabled. Nothing
    /// changed.
    Invalid,
    /// The token was live but its session is DPoP-bound and the refresh came without a proof of
    /// that key. Nothing changed (the token stays live: the rightful client still has the key).
    DpopMismatch {
        /// The session.
        session_id: String,
        /// Its owner.
        user_id: String,
    },
}

/// An OAuth client registered by an operator (`keycard clients add`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientRecord {
    /// The `client_id`.
    pub id: String,
    /// A name for people.
    pub name: String,
    /// SHA-256 of the secret, hex; `None` for a `private_key_jwt` client.
    pub secret_hash: Option<String>,
    /// The registered JWK set (JSON) of a `private_key_jwt` client.
    pub jwks: Option<String>,
    /// Space-separated scopes the client may ask for.
    pub scopes: String,
    /// The `sid` of the client's current access tokens; replaced when they are revoked.
    pub grant_id: String,
    /// When it was registered (Unix seconds).
    pub created_at: i64,
    /// When its secret was last replaced.
    pub secret_rotated_at: Option<i64>,
}

impl std::fmt::Debug for ClientRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientRecord")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("secret_hash", &self.secret_hash.as_ref().map(|_| "<redacted>"))
            .field("jwks", &self.jwks.is_some())
            .field("scopes", &self.scopes)
            .field("created_at", &self.created_at)
            .finish_non_exhaustive()
    }
}

/// A revoked session, as the revocation feed publishes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    /// Feed position.
    pub seq: i64,
    /// The revoked session.
    pub session_id: String,
    /// Its owner.
    pub user_id: String,
    /// When.
    pub revoked_at: i64,
    /// Why.
    pub reason: RevocationReason,
}

/// A signing key as stored.
#[derive(Clone)]
pub struct StoredKey {
    /// Key id.
    pub kid: String,
    /// JOSE algorithm name.
    pub alg: String,
    /// Private key (PKCS#8 DER, possibly encrypted by the server).
    pub private_key: Vec<u8>,
    /// Creation time; the newest unretired key is the active one.
    pub created_at: i64,
    /// When retired, if it is.
    pub retired_at: Option<i64>,
}

/// The master key as a key-management service wrapped it (envelope encryption): only this
/// ciphertext is stored, never the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrappedMasterKey {
    /// The name of the service's key that wrapped it (an OpenBao/Vault Transit key).
    pub key_name: String,
    /// The service's ciphertext (`vault:v1:…`).
    pub ciphertext: String,
    /// When it was stored or last rewrapped.
    pub updated_at: i64,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

/// An audit event to record. Never holds a token, a hash or a password.
#[derive(Debug, Clone)]
pub struct AuditEvent {
    /// When.
    pub at: i64,
    /// What happened.
    pub kind: AuditKind,
    /// The user concerned.
    pub user_id: Option<String>,
    /// The session concerned.
    pub session_id: Option<String>,
    /// Client IP.
    pub ip: Option<String>,
    /// Client user agent.
    pub user_agent: Option<String>,
    /// Free text (reason, scope).
    pub detail: Option<String>,
}

/// In the detail of an event a change writes, where the store puts the number of sessions the
/// change revoked (`"revoked {revoked} sessions"`): the count is known only inside its transaction.
pub const REVOKED_COUNT: &str = "{revoked}";

impl AuditEvent {
    /// An event of `kind` at `at` about nobody in particular (fill in the rest).
    pub fn new(kind: AuditKind, at: i64) -> Self {
        Self { at, kind, user_id: None, session_id: None, ip: None, user_agent: None, detail: None }
    }

    /// This event as the change that revoked `revoked` sessions of `user_id` writes it, in the
    /// same transaction: [`REVOKED_COUNT`] in the detail replaced by the count, and the user
    /// filled in where the caller did not know it (an operator revoking a session by id).
    pub fn completed(&self, user_id: &str, revoked: usize) -> Self {
        Self {
            user_id: Some(self.user_id.clone().unwrap_or_else(|| user_id.to_owned())),
            detail: self.detail.as_ref().map(|d| d.replace(REVOKED_COUNT, &revoked.to_string())),
            ..self.clone()
        }
    }
}

/// A stored audit event.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    /// Sequence number.
    pub id: i64,
    /// The event.
    pub event: AuditEvent,
}

/// Which audit events to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only this kind.
    pub kind: Option<AuditKind>,
    /// Only at or after this time.
    pub since: Option<i64>,
    /// At most this many (newest first).
    pub limit: i64,
}

/// Where a message of the mail outbox is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MailState {
    /// Waiting for (another) delivery attempt.
    Queued,
    /// Delivered (accepted by the SMTP server, or written to the mail folder).
    Sent,
    /// Given up on: the last attempt failed for good.
    Failed,
}

impl MailState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Sent => "sent",
            Self::Failed => "failed",
        }
    }

    /// The state with this stored name.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "queued" => Some(Self::Queued),
            "sent" => Some(Self::Sent),
            "failed" => Some(Self::Failed),
            _ => None,
        }
    }
}

impl std::fmt::Display for MailState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message to put in the mail outbox ([`Store::enqueue_mail`](crate::Store::enqueue_mail)). Its
/// bodies may hold links with tokens: `Debug` leaves them out.
#[derive(Clone, PartialEq, Eq)]
pub struct NewMail {
    /// UUID.
    pub id: String,
    /// The address it goes to.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// The plain-text part.
    pub text_body: String,
    /// The HTML part, if there is one.
    pub html_body: Option<String>,
    /// When it was queued; it is due at once.
    pub created_at: i64,
}

impl std::fmt::Debug for NewMail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewMail").field("id", &self.id).field("created_at", &self.created_at).finish_non_exhaustive()
    }
}

/// A message of the mail outbox as stored. `Debug` leaves out its bodies and recipient.
#[derive(Clone, PartialEq, Eq)]
pub struct MailRecord {
    /// UUID.
    pub id: String,
    /// The address it goes to.
    pub recipient: String,
    /// Subject line.
    pub subject: String,
    /// The plain-text part.
    pub text_body: String,
    /// The HTML part, if there is one.
    pub html_body: Option<String>,
    /// When it was queued.
    pub created_at: i64,
    /// Queued, sent or failed.
    pub state: MailState,
    /// Delivery attempts started (claims), including the one under way.
    pub attempts: i64,
    /// While queued: when it is due (after a claim, the end of the claim's lease).
    pub next_attempt_at: i64,
    /// The reply of the last failed attempt (the SMTP server's, or the connection error).
    pub last_error: Option<String>,
    /// When it was delivered.
    pub sent_at: Option<i64>,
}

impl std::fmt::Debug for MailRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailRecord")
            .field("id", &self.id)
            .field("state", &self.state)
            .field("attempts", &self.attempts)
            .field("next_attempt_at", &self.next_attempt_at)
            .field("last_error", &self.last_error)
            .field("sent_at", &self.sent_at)
            .finish_non_exhaustive()
    }
}

/// Which outbox messages an operator lists ([`Store::list_mail`](crate::Store::list_mail)),
/// newest first.
#[derive(Debug, Clone, Default)]
pub struct MailFilter {
    /// Only messages in this state.
    pub state: Option<MailState>,
    /// At most this many; 0 or less means 100.
    pub limit: i64,
}

/// A request that mails a link to an address's account: a password reset
/// ([`Store::request_password_reset`](crate::Store::request_password_reset)) or an email
/// verification ([`Store::request_verification`](crate::Store::request_verification), and at
/// signup in [`NewUser::verification`]). Everything is prepared before the store knows whether
/// the address has an account, so both cases do the same work up to the store.
#[derive(Clone)]
pub struct LinkRequest {
    /// The (normalised) address the request names.
    pub email: String,
    /// SHA-256 of the reset token (the token itself is never stored).
    pub token: keycard_core::refresh::TokenHash,
    /// When the token stops working.
    pub expires_at: i64,
    /// The message holding the link, addressed to `email`.
    pub mail: NewMail,
    /// The event (`password_reset_requested`, `email_verification_sent`); the store fills in
    /// `user_id`.
    pub audit: AuditEvent,
}

impl std::fmt::Debug for LinkRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LinkRequest").field("expires_at", &self.expires_at).finish_non_exhaustive()
    }
}

/// A password reset ([`Store::reset_password`](crate::Store::reset_password)): the presented
/// token is spent and, in the same transaction, the password replaced.
#[derive(Clone)]
pub struct PasswordReset {
    /// SHA-256 of the presented token.
    pub token: keycard_core::refresh::TokenHash,
    /// The new Argon2id PHC string.
    pub password_hash: String,
    /// Now: a token expired at this time is refused.
    pub now: i64,
    /// The "your password was changed" notice; the store sets `recipient` to the user's address.
    pub notice: NewMail,
    /// The `password_reset` event; the store fills in `user_id`.
    pub audit: AuditEvent,
}

impl std::fmt::Debug for PasswordReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PasswordReset").field("now", &self.now).finish_non_exhaustive()
    }
}

/// A password reset that happened: whose, and the sessions it revoked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PasswordResetDone {
    /// The user whose password was reset.
    pub user_id: String,
    /// The sessions revoked (reason `password_reset`, on the revocation feed).
    pub revoked: Vec<String>,
}

/// An address change asked for by a signed-in user
/// ([`Store::request_email_change`](crate::Store::request_email_change)).
#[derive(Clone)]
pub struct EmailChangeRequest {
    /// The user.
    pub user_id: String,
    /// The (normalised) address they want.
    pub new_email: String,
    /// Pairs the confirm and cancel tokens of this change.
    pub change_id: String,
    /// SHA-256 of the confirmation token, mailed to the new address.
    pub confirm: keycard_core::refresh::TokenHash,
    /// SHA-256 of the cancel token, mailed to the old address.
    pub cancel: keycard_core::refresh::TokenHash,
    /// When the confirmation token stops working.
    pub expires_at: i64,
    /// When the cancel token stops working (it also undoes a change already confirmed).
    pub cancel_expires_at: i64,
    /// The message with the confirmation link, addressed to `new_email`.
    pub confirm_mail: NewMail,
    /// The notice with the cancel link; the store addresses it to the current address.
    pub notice_mail: NewMail,
    /// The `email_change_requested` event.
    pub audit: AuditEvent,
}

impl std::fmt::Debug for EmailChangeRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailChangeRequest").field("user_id", &self.user_id).finish_non_exhaustive()
    }
}

/// What spending a mailed email token ([`Store::verify_email`](crate::Store::verify_email),
/// [`Store::confirm_email_change`](crate::Store::confirm_email_change),
/// [`Store::cancel_email_change`](crate::Store::cancel_email_change)) needs.
#[derive(Clone)]
pub struct EmailTokenUse {
    /// SHA-256 of the presented token.
    pub token: keycard_core::refresh::TokenHash,
    /// Now: an expired token is refused.
    pub now: i64,
    /// The event to record (`email_verified`, `email_changed`, `email_change_cancelled`); the
    /// store fills in `user_id`.
    pub audit: AuditEvent,
}

impl std::fmt::Debug for EmailTokenUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EmailTokenUse").field("now", &self.now).finish_non_exhaustive()
    }
}

/// The outcome of confirming an address change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EmailChangeOutcome {
    /// The account's address is now the new one (and verified).
    Changed {
        /// The user.
        user_id: String,
    },
    /// Another account took the new address meanwhile: nothing changed, the token is unspent.
    Taken,
    /// Unknown, used, superseded, expired or cancelled token: nothing changed.
    Invalid,
}

/// A cancelled address change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailChangeCancelled {
    /// The user.
    pub user_id: String,
    /// The change had been confirmed and was undone: the old address is back and every session
    /// of the user was revoked (reason `email_change_cancelled`).
    pub undone: bool,
    /// The sessions revoked.
    pub revoked: Vec<String>,
}
