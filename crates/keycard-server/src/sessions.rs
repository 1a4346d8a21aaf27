//! The session service: the rules of login, refresh, logout, revocation and password checks,
//! between the routes (HTTP in and out) and the store. Handlers extract, call one method here and
//! map the result to a response; every decision about who may do what, when, lives here.
//!
//! ```text
//! routes/*.rs  ──extract──▶  Sessions::{login, refresh, logout, revoke, confirm_password}
//!                                 │  throttling (ratelimit.rs), device tokens (devices.rs)
//!                                 ▼
//!                           Store (one call per decision; a refresh is one transaction)
//! ```

use keycard_core::ErrorCode;
use keycard_core::amr::{Amr, AuthMethod};
use keycard_core::refresh::RefreshToken;
use keycard_core::wire::{Delivery, LogoutScope};
use keycard_store::{AuditKind, NewSession, RevocationReason, RotateOutcome, Rotation, SessionRecord, UserRecord};

use crate::devices;
use crate::email::EmailVerification;
use crate::error::ApiError;
use crate::extract::{Authenticated, ClientInfo};
use crate::mfa::LoginStep;
use crate::password::MAX_PASSWORD_BYTES;
use crate::ratelimit::Rule;
use crate::routes::Email;
use crate::state::{AppState, log_audit};

/// The session rules, over one server's state.
pub struct Sessions<'a> {
    state: &'a AppState,
}

/// A session just started (login) or continued (refresh), with its new refresh token and the
/// access token signed for it.
pub struct Issued {
    /// The session.
    pub session: SessionRecord,
    /// Its live refresh token (the only copy: the store keeps its hash).
    pub refresh: RefreshToken,
    /// When it was issued (Unix seconds).
    pub now: i64,
    /// The access token signed for the session at `now`.
    pub access_token: String,
}

/// A refresh that did not rotate: the error, and whether the session it named is over (then the
/// browser's cookies are cleared too).
pub struct RefreshRefused {
    /// The answer.
    pub error: ApiError,
    /// Whether the session was revoked by this refresh (reuse, binding mismatch).
    pub session_ended: bool,
}

impl From<ApiError> for RefreshRefused {
    fn from(error: ApiError) -> Self {
        Self { error, session_ended: false }
    }
}

impl AppState {
    /// The session rules over this state.
    pub fn sessions(&self) -> Sessions<'_> {
        Sessions { state: self }
    }
}

impl Sessions<'_> {
    /// Checks the password and starts a session (a new refresh-token family); returns it with the
    /// user it belongs to.
    ///
    /// Throttling follows OWASP's device-cookie defence (`devices.rs`): attempts are limited per
    /// IP; failures are counted per known device when the client presents a valid device token
    /// for this account, and otherwise in one budget shared by every unknown device of the
    /// account. A success clears its own count.
    ///
    /// An account with a second factor gets no session yet: [`LoginStep::Mfa`], completed by
    /// `POST /auth/mfa/verify` in `delivery` ([`crate::mfa`]).
    pub async fn login(
        &self,
        email: &str,
        password: String,
        device_token: Option<&str>,
        delivery: Delivery,
        client: &ClientInfo,
    ) -> Result<LoginStep, ApiError> {
        let state = self.state;
        // A malformed email cannot belong to an account: same answer as a wrong password.
        let email = Email::parse(email).map(|e| e.0).unwrap_or_default();
        state.limits.check(Rule::LoginIp, &client.rate_key()).await?;
        let user = if email.is_empty() { None } else { state.store.user_by_email(&email).await? };
        let now = state.now();
        let device = match (&user, device_token) {
            (Some(user), Some(token)) => {
                devices::verify(state.device_key(), token, &user.id, now, state.config.device_ttl)
            }
            _ => None,
        };
        let failure_key = match &device {
            Some(device) => format!("login:device:{device}"),
            None => {
                state.limits.check_failures(Rule::LoginAccount, &email).await?;
                format!("login:account:{email}")
            }
        };
        state.limits.check_backoff(&failure_key).await?;
        let matched = password.len() <= MAX_PASSWORD_BYTES
            && state.passwords.verify(password, user.as_ref().map(|u| u.password_hash.clone())).await?;
        let user = match user {
            Some(user) if matched => user,
            other => {
                state.limits.record_failure(&failure_key).await?;
                if device.is_none() {
                    state.limits.record_failures(Rule::LoginAccount, &email).await?;
                }
                metrics::counter!("keycard_logins_total", "outcome" => "failure").increment(1);
                let detail = if device.is_some() { "known device" } else { "unknown device" };
                state
                    .audit(client.event(AuditKind::LoginFailed, other.map(|u| u.id), None, Some(detail.into()), now))
                    .await;
                return Err(ApiError::invalid_credentials());
            }
        };
        self.admit(&user, client, now).await?;
        let factors = state.factors().active(&user.id).await?;
        if !factors.is_empty() {
            // The failures are not cleared by the password: the code's failures count on
            // (a stolen password must not buy a fresh set of guesses per login).
            metrics::counter!("keycard_logins_total", "outcome" => "mfa_required").increment(1);
            let challenge =
                state.factors().begin_login(&user, delivery, device.is_some(), failure_key, &factors).await?;
            return Ok(LoginStep::Mfa(challenge));
        }
        state.limits.reset_failures(&failure_key).await?;
        // A login without a valid device token for this account: sent as `new_device_login`.
        let detail = device.is_none().then(|| keycard_store::NEW_DEVICE_DETAIL.to_owned());
        let issued = self.start(&user, client, detail, Amr::of(&[AuthMethod::Pwd]), now).await?;
        metrics::counter!("keycard_logins_total", "outcome" => "success").increment(1);
        Ok(LoginStep::Done(Box::new(issued), user))
    }

    /// What a login that proved who it is (a right password, a passkey) still has to pass: the
    /// account is not disabled, and its address is verified when that is required. Only such a
    /// login learns either.
    pub(crate) async fn admit(&self, user: &UserRecord, client: &ClientInfo, now: i64) -> Result<(), ApiError> {
        let state = self.state;
        if user.disabled_at.is_some() {
            metrics::counter!("keycard_logins_total", "outcome" => "disabled").increment(1);
            let detail = Some("account disabled".to_owned());
            state.audit(client.event(AuditKind::LoginFailed, Some(user.id.clone()), None, detail, now)).await;
            return Err(ApiError::new(ErrorCode::Forbidden, "this account is disabled"));
        }
        if state.config.email_verification == EmailVerification::Required && user.email_verified_at.is_none() {
            metrics::counter!("keycard_logins_total", "outcome" => "email_not_verified").increment(1);
            let detail = Some("email not verified".to_owned());
            state.audit(client.event(AuditKind::LoginFailed, Some(user.id.clone()), None, detail, now)).await;
            return Err(ApiError::new(
                ErrorCode::EmailNotVerified,
                "the account's address is not verified yet: follow the link mailed to it, or ask for a new one",
            ));
        }
        Ok(())
    }

    /// Starts a session for `user` at `now`, signed in with `amr`, its `login` audit event (with
    /// `detail`) written in the same transaction. Its access token is signed first: when the
    /// signer (Transit) is unavailable the login fails with 503 and no session is created.
    pub(crate) async fn start(
        &self,
        user: &UserRecord,
        client: &ClientInfo,
        detail: Option<String>,
        amr: Amr,
        now: i64,
    ) -> Result<Issued, ApiError> {
        let c = &self.state.config;
        let absolute_expires_at = now + c.absolute_ttl;
        let new = NewSession {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id.clone(),
            created_at: now,
            idle_expires_at: (now + c.idle_ttl).min(absolute_expires_at),
            absolute_expires_at,
            user_agent: client.user_agent.clone(),
            ip: client.ip.clone(),
            amr,
            auth_time: now,
            dpop_jkt: client.dpop_jkt.clone(),
        };
        let refresh = RefreshToken::generate();
        let email_verified = user.email_verified_at.is_some();
        let mut claims = crate::issue::claims_for(self.state, &new.user_id, &new.id, email_verified, amr, now, now);
        claims.cnf = new.dpop_jkt.clone().map(|jkt| keycard_core::dpop::Confirmation { jkt });
        let access_token = self.state.sign(&claims).await?;
        let event = client.event(AuditKind::Login, Some(new.user_id.clone()), Some(new.id.clone()), detail, now);
        self.state.store.create_session(&new, &refresh.hash(), &event).await?;
        self.state.recorded(&event);
        let session = SessionRecord {
            id: new.id,
            user_id: new.user_id,
            created_at: now,
            last_used_at: now,
            idle_expires_at: new.idle_expires_at,
            absolute_expires_at,
            user_agent: new.user_agent,
            ip: new.ip,
            email_verified,
            amr,
            auth_time: now,
            dpop_jkt: new.dpop_jkt,
        };
        Ok(Issued { session, refresh, now, access_token })
    }

    /// Rotates the presented refresh token (raw text): one store call, one transaction, in which
    /// the store also applies reuse detection and the device binding, and records the audit row.
    ///
    /// With a remote signer (Transit) the access token is signed before the token is spent: the
    /// live session is read by the presented token, its claims signed, and only then rotated, so
    /// a 503 (Transit unavailable) leaves the presented token live. A token that is not live is
    /// left to the rotation to judge (invalid, reuse) as with local signing.
    pub async fn refresh(&self, raw: &str, client: ClientInfo) -> Result<Issued, RefreshRefused> {
        let state = self.state;
        state.limits.check(Rule::RefreshIp, &client.rate_key()).await?;
        let presented = RefreshToken::parse(raw).ok_or_else(ApiError::invalid_grant)?;
        let now = state.now();
        let signed_first = match state.signs_remotely() {
            false => None,
            true => match state.store.session_by_refresh(&presented.hash(), now).await.map_err(ApiError::from)? {
                Some(live) => {
                    let token = crate::issue::access_token(state, &live, now).await?;
                    Some((live, token))
                }
                None => None,
            },
        };
        let replacement = RefreshToken::generate();
        let c = &state.config;
        let rotation = Rotation {
            presented: presented.hash(),
            replacement: replacement.hash(),
            now,
            idle_ttl: c.idle_ttl,
            reuse_interval: c.reuse_interval,
            ip: client.ip,
            user_agent: client.user_agent,
            binding: c.refresh_binding,
            dpop_jkt: client.dpop_jkt,
        };
        let (kind, reason, user_id, session_id, message) = match state
            .store
            .rotate_refresh(&rotation)
            .await
            .map_err(ApiError::from)?
        {
            RotateOutcome::Rotated(session) => {
                metrics::counter!("keycard_refreshes_total", "outcome" => "rotated").increment(1);
                // The store wrote the audit row in the rotation's transaction.
                log_audit(AuditKind::Refresh, Some(&session.user_id), Some(&session.id), rotation.ip.as_deref(), None);
                let access_token = match signed_first {
                    Some((live, token)) if crate::issue::same_claims(&live, &session) => token,
                    // The session changed between the read and the rotation (the address was
                    // verified meanwhile): sign its claims now. Should Transit fail in that
                    // instant, the token signed before the rotation goes out rather than a 503
                    // for a spent refresh token; its `email_verified` is a moment stale, in the
                    // safe direction (false for an address just verified).
                    Some((_, token)) => match crate::issue::access_token(state, &session, rotation.now).await {
                        Ok(fresh) => fresh,
                        Err(_) => token,
                    },
                    // Local signing; or the token was not live but rotated inside the reuse
                    // interval: sign now. Should Transit fail in that instant, the answer is 503
                    // and the client's retry of the same token is a rotation inside the reuse
                    // interval again (docs/DECISIONS.md).
                    None => crate::issue::access_token(state, &session, rotation.now).await?,
                };
                return Ok(Issued { session, refresh: replacement, now: rotation.now, access_token });
            }
            RotateOutcome::Invalid => {
                metrics::counter!("keycard_refreshes_total", "outcome" => "invalid").increment(1);
                return Err(ApiError::invalid_grant().into());
            }
            RotateOutcome::DpopMismatch { session_id, user_id } => {
                // A copied refresh token without the session's key: refused, nothing changed
                // (the rightful client still holds the key and the token).
                metrics::counter!("keycard_refreshes_total", "outcome" => "dpop_mismatch").increment(1);
                let client =
                    ClientInfo { ip: rotation.ip, user_agent: rotation.user_agent, dpop_jkt: rotation.dpop_jkt };
                return Err(self.dpop_mismatch("refresh", user_id, session_id, &client, rotation.now).await.into());
            }
            RotateOutcome::Reused { session_id, user_id, verdict } => {
                tracing::warn!(
                    session_id = %session_id,
                    verdict = verdict.as_str(),
                    "refresh token reuse detected; session revoked"
                );
                metrics::counter!("keycard_refreshes_total", "outcome" => "reused").increment(1);
                metrics::counter!("keycard_refresh_reuse_total", "verdict" => verdict.as_str()).increment(1);
                let message = "this refresh token was already used; the session has been revoked";
                (AuditKind::RefreshTokenReused, RevocationReason::RefreshTokenReused, user_id, session_id, message)
            }
            RotateOutcome::BindingMismatch { session_id, user_id } => {
                // Another device presents this session's token: stolen, or moved. The session ended.
                let message = "this session is bound to another device and has been revoked";
                (AuditKind::SessionRevoked, RevocationReason::BindingMismatch, user_id, session_id, message)
            }
        };
        metrics::counter!("keycard_revocations_total", "reason" => reason.as_str()).increment(1);
        log_audit(kind, Some(&user_id), Some(&session_id), rotation.ip.as_deref(), None);
        // The rotation's transaction queued the event's webhook deliveries.
        state.wake_webhook_sender();
        let code = if reason == RevocationReason::RefreshTokenReused {
            ErrorCode::RefreshTokenReused
        } else {
            ErrorCode::InvalidGrant
        };
        Err(RefreshRefused { error: ApiError::new(code, message), session_ended: true })
    }

    /// The live session an unused refresh token belongs to (logout by refresh token).
    pub async fn by_refresh(&self, raw: &str) -> Result<Option<SessionRecord>, ApiError> {
        let token = RefreshToken::parse(raw).ok_or_else(ApiError::invalid_grant)?;
        Ok(self.state.store.session_by_refresh(&token.hash(), self.state.now()).await?)
    }

    /// A refresh token of a DPoP-bound session presented for `action` without a proof of its key
    /// (`client.dpop_jkt` is the key that did come, if any): nothing changes, the rightful
    /// client still holds the key and the token. Audited `dpop_mismatch`; the refusal to send.
    pub async fn dpop_mismatch(
        &self,
        action: &str,
        user_id: String,
        session_id: String,
        client: &ClientInfo,
        now: i64,
    ) -> ApiError {
        let detail = match &client.dpop_jkt {
            Some(_) => format!("{action} with another DPoP key"),
            None => format!("{action} without a DPoP proof"),
        };
        let event = client.event(AuditKind::DpopMismatch, Some(user_id), Some(session_id), Some(detail), now);
        self.state.audit(event).await;
        ApiError::new(
            ErrorCode::InvalidGrant,
            format!("this session is bound to a DPoP key: {action} needs a DPoP proof made with that key"),
        )
    }

    /// Ends `session_id` (`Local`), every session of the user (`Global`), or all but it
    /// (`Others`); audited, published on the revocation feed by the store.
    pub async fn logout(
        &self,
        user_id: String,
        session_id: String,
        scope: LogoutScope,
        client: &ClientInfo,
    ) -> Result<(), ApiError> {
        let (store, now) = (&self.state.store, self.state.now());
        let detail = format!("scope={} revoked={}", format!("{scope:?}").to_lowercase(), keycard_store::REVOKED_COUNT);
        let event = client.event(AuditKind::Logout, Some(user_id.clone()), Some(session_id.clone()), Some(detail), now);
        let revoked = match scope {
            LogoutScope::Local => {
                let done = store.revoke_session(&user_id, &session_id, RevocationReason::Logout, now, &event).await?;
                if done { vec![session_id.clone()] } else { vec![] }
            }
            LogoutScope::Global => {
                store.revoke_user_sessions(&user_id, None, RevocationReason::LogoutGlobal, now, &event).await?
            }
            LogoutScope::Others => {
                let reason = RevocationReason::LogoutOthers;
                store.revoke_user_sessions(&user_id, Some(&session_id), reason, now, &event).await?
            }
        };
        self.state.recorded(&event);
        metrics::counter!("keycard_revocations_total", "reason" => RevocationReason::Logout.as_str())
            .increment(revoked.len() as u64);
        Ok(())
    }

    /// Revokes one of the caller's sessions; 404 when it is not theirs or not live.
    pub async fn revoke(&self, auth: &Authenticated, session_id: String, client: &ClientInfo) -> Result<(), ApiError> {
        let now = self.state.now();
        let detail = Some(format!("by session {}", auth.claims.sid));
        let event =
            client.event(AuditKind::SessionRevoked, Some(auth.user.id.clone()), Some(session_id.clone()), detail, now);
        let reason = RevocationReason::RevokedByUser;
        if !self.state.store.revoke_session(&auth.user.id, &session_id, reason, now, &event).await? {
            return Err(ApiError::new(ErrorCode::NotFound, "no such session"));
        }
        self.state.recorded(&event);
        Ok(())
    }

    /// Checks the caller's current password (password change, account deletion); a wrong one is
    /// 401 `invalid_credentials`.
    ///
    /// Throttled like login: attempts per user and per IP per minute (a flood of guesses, each a
    /// full Argon2 hash, cannot crowd out logins), exponential backoff after repeated failures per
    /// user and per IP, every failure audited (`password_check_failed`) and counted in metrics.
    pub async fn confirm_password(
        &self,
        auth: &Authenticated,
        client: &ClientInfo,
        password: String,
    ) -> Result<(), ApiError> {
        let state = self.state;
        let ip = client.rate_key();
        let (user_key, ip_key) = (format!("pwcheck:user:{}", auth.user.id), format!("pwcheck:ip:{ip}"));
        state.limits.check_backoff(&user_key).await?;
        state.limits.check_backoff(&ip_key).await?;
        state.limits.check(Rule::PasswordCheckUser, &auth.user.id).await?;
        state.limits.check(Rule::PasswordCheckIp, &ip).await?;
        let matched = password.len() <= MAX_PASSWORD_BYTES
            && state.passwords.verify(password, Some(auth.user.password_hash.clone())).await?;
        if matched {
            state.limits.reset_failures(&user_key).await?;
            metrics::counter!("keycard_password_checks_total", "outcome" => "success").increment(1);
            return Ok(());
        }
        state.limits.record_failure(&user_key).await?;
        state.limits.record_failure(&ip_key).await?;
        metrics::counter!("keycard_password_checks_total", "outcome" => "failure").increment(1);
        let (user_id, sid) = (Some(auth.user.id.clone()), Some(auth.claims.sid.clone()));
        state.audit(client.event(AuditKind::PasswordCheckFailed, user_id, sid, None, state.now())).await;
        Err(ApiError::new(ErrorCode::InvalidCredentials, "the current password is incorrect"))
    }
}
