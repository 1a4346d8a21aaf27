//! Email verification and address change (issue 16), next to the password reset of `reset.rs`.
//!
//! - Verification: with `email_verification` on (`optional`, the default, or `required`), signup
//!   mails a link `{app_url}/auth/email/verify#token=kcev_…` in the signup's own transaction;
//!   `POST /auth/email/verify` spends it. `POST /auth/email/verify/resend` mails a new one (the
//!   old ones stop working) and answers 202 whatever the address, before the store's work, like
//!   the forgot-password answer. With `required`, login answers 403 `email_not_verified` until
//!   then (and only after the password matched).
//! - Change: `POST /auth/email` (signed in, with the password) mails a confirmation link
//!   `…/auth/email/confirm#token=kcec_…` to the new address and a notice with a cancel link
//!   `…/auth/email/cancel#token=kcex_…` to the old one. The address changes only when the new one
//!   is confirmed. A taken address gets the same answer, in the same time (the store's work runs
//!   after the answer), and no mail. The cancel link also undoes a change already confirmed
//!   (within `email_change_cancel_ttl`): the old address comes back and every session ends, so a
//!   thief who changed the address does not keep the account.
//!
//! Tokens are 256-bit, single use, stored as SHA-256, in the link's fragment (never sent to a
//! server, never in a log); each flow has its own prefix, so a token of one flow is refused by
//! every other. A GET of a link only shows keycard's page: a click posts the token.

use keycard_core::ErrorCode;
use keycard_core::refresh::{EmailCancelToken, EmailChangeToken, VerifyEmailToken};
use keycard_core::wire::{Accepted, ChangeEmailRequest, EmailLinkDone, EmailTokenRequest, ResendVerificationRequest};
use keycard_store::{AuditKind, EmailChangeOutcome, EmailChangeRequest, EmailTokenUse, LinkRequest};
use minijinja::context;
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{Authenticated, ClientInfo};
use crate::ratelimit::Rule;
use crate::routes::Email;
use crate::state::{AppState, log_audit};
use crate::templates::{Template, valid_for};

/// Whether addresses are verified, and whether login waits for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailVerification {
    /// No verification mail; tokens carry no `email_verified`.
    Off,
    /// Signup mails a verification link; tokens say whether it was followed.
    #[default]
    Optional,
    /// As `optional`, and login is refused (403 `email_not_verified`) until it is.
    Required,
}

impl std::str::FromStr for EmailVerification {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "off" => Ok(Self::Off),
            "optional" => Ok(Self::Optional),
            "required" => Ok(Self::Required),
            other => Err(format!("{other:?} is not one of off, optional, required")),
        }
    }
}

/// The path of keycard's verification page, which mailed links open under `app_url`.
pub const VERIFY_PATH: &str = "/auth/email/verify";
/// The path of keycard's page confirming a new address.
pub const CONFIRM_PATH: &str = "/auth/email/confirm";
/// The path of keycard's page cancelling an address change.
pub const CANCEL_PATH: &str = "/auth/email/cancel";

/// The one answer to a refused verification token.
fn invalid_verification_token() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidVerificationToken,
        "the verification link is invalid, expired, already used or replaced by a newer one; ask for a new one",
    )
}

/// The one answer to a refused confirm or cancel token.
fn invalid_change_token() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidEmailChangeToken,
        "the link is invalid, expired, already used, replaced by a newer change, or its change was cancelled",
    )
}

/// `{app_url}{path}#token={token}`.
fn link(state: &AppState, path: &str, token: &str) -> String {
    format!("{}{path}#token={token}", state.config.app_url)
}

/// A verification link for `email`, when verification is on: the token's hash, the message and
/// the `email_verification_sent` event, for the store to write in one transaction.
pub fn verification(state: &AppState, client: &ClientInfo, email: &str, now: i64) -> Option<LinkRequest> {
    if state.config.email_verification == EmailVerification::Off {
        return None;
    }
    let token = VerifyEmailToken::generate();
    let ttl = state.config.email_verification_ttl;
    let link = link(state, VERIFY_PATH, token.expose());
    let values = context! { link => link.as_str(), valid_for => valid_for(ttl) };
    Some(LinkRequest {
        email: email.to_owned(),
        token: token.hash(),
        expires_at: now + ttl,
        mail: state.mail(Template::VerifyEmail, email, values, now),
        audit: client.event(AuditKind::EmailVerificationSent, None, None, None, now),
    })
}

/// `POST /auth/email/verify/resend`: the same 202 whatever the address (see the module docs).
pub async fn resend(
    state: &AppState,
    client: &ClientInfo,
    req: ResendVerificationRequest,
) -> Result<Accepted, ApiError> {
    let Email(email) = Email::parse(&req.email)?;
    state.limits.check(Rule::VerifyResendIp, &client.rate_key()).await?;
    state.limits.check(Rule::VerifyResendAddress, &email).await?;
    let answer = Accepted::new("if an account has this address and it is not verified yet, a new link is on its way");
    let Some(request) = verification(state, client, &email, state.now()) else { return Ok(answer) };
    let task_state = state.clone();
    tokio::spawn(async move {
        match task_state.store.request_verification(&request).await {
            Ok(true) => task_state.wake_mail_sender(),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not record a verification request"),
        }
    });
    Ok(answer)
}

/// The presented token's hash with the event to record, after the per-IP limit on links.
async fn token_use<T>(
    state: &AppState,
    client: &ClientInfo,
    token: Option<T>,
    hash: impl FnOnce(&T) -> keycard_core::refresh::TokenHash,
    kind: AuditKind,
    refused: fn() -> ApiError,
) -> Result<EmailTokenUse, ApiError> {
    state.limits.check(Rule::EmailLinkIp, &client.rate_key()).await?;
    let token = token.ok_or_else(refused)?;
    let now = state.now();
    Ok(EmailTokenUse { token: hash(&token), now, audit: client.event(kind, None, None, None, now) })
}

/// `POST /auth/email/verify`: spends a verification token.
pub async fn verify(state: &AppState, client: &ClientInfo, req: EmailTokenRequest) -> Result<EmailLinkDone, ApiError> {
    let token = VerifyEmailToken::parse(&req.token);
    let used =
        token_use(state, client, token, VerifyEmailToken::hash, AuditKind::EmailVerified, invalid_verification_token)
            .await?;
    let user_id = state.store.verify_email(&used).await?.ok_or_else(invalid_verification_token)?;
    log_audit(AuditKind::EmailVerified, Some(&user_id), None, client.ip.as_deref(), None);
    Ok(EmailLinkDone { status: "verified".into() })
}

/// `POST /auth/email`: checks the password, then mails the confirmation and the notice (unless
/// the address is taken) after answering, so both cases answer alike.
pub async fn change(
    state: &AppState,
    auth: &Authenticated,
    client: &ClientInfo,
    req: ChangeEmailRequest,
) -> Result<Accepted, ApiError> {
    let Email(new_email) = Email::parse(&req.new_email)?;
    // With a second factor on the account, the password alone is not enough (issue 17).
    state.factors().require_recent(auth, true).await?;
    state.sessions().confirm_password(auth, client, req.password).await?;
    if new_email == auth.user.email {
        return Err(ApiError::new(ErrorCode::InvalidRequest, "new_email is the account's address already"));
    }
    let now = state.now();
    let (confirm, cancel) = (EmailChangeToken::generate(), EmailCancelToken::generate());
    let (ttl, cancel_ttl) = (state.config.email_change_ttl, state.config.email_change_cancel_ttl);
    let confirm_link = link(state, CONFIRM_PATH, confirm.expose());
    let cancel_link = link(state, CANCEL_PATH, cancel.expose());
    let request = EmailChangeRequest {
        user_id: auth.user.id.clone(),
        change_id: uuid::Uuid::new_v4().to_string(),
        confirm: confirm.hash(),
        cancel: cancel.hash(),
        expires_at: now + ttl,
        cancel_expires_at: now + cancel_ttl,
        confirm_mail: state.mail(
            Template::EmailChangeConfirm,
            &new_email,
            context! { link => confirm_link.as_str(), valid_for => valid_for(ttl) },
            now,
        ),
        notice_mail: state.mail(
            Template::EmailChangeNotice,
            "",
            context! { link => cancel_link.as_str(), valid_for => valid_for(cancel_ttl), new_email => new_email.as_str() },
            now,
        ),
        audit: client.event(
            AuditKind::EmailChangeRequested,
            Some(auth.user.id.clone()),
            Some(auth.claims.sid.clone()),
            None,
            now,
        ),
        new_email,
    };
    drop((confirm, cancel, confirm_link, cancel_link));
    let task_state = state.clone();
    tokio::spawn(async move {
        match task_state.store.request_email_change(&request).await {
            Ok(sent) => {
                if sent {
                    task_state.wake_mail_sender();
                }
                let detail = (!sent).then_some("address taken");
                let ip = request.audit.ip.as_deref();
                log_audit(AuditKind::EmailChangeRequested, Some(&request.user_id), None, ip, detail);
            }
            Err(e) => tracing::warn!(error = %e, "could not record an address change"),
        }
    });
    Ok(Accepted::new(
        "a link to confirm the change is on its way to the new address, and a notice to the current one; \
         the address changes when the new one is confirmed",
    ))
}

/// `POST /auth/email/confirm`: spends a confirmation token; the address changes.
pub async fn confirm(state: &AppState, client: &ClientInfo, req: EmailTokenRequest) -> Result<EmailLinkDone, ApiError> {
    let token = EmailChangeToken::parse(&req.token);
    let used =
        token_use(state, client, token, EmailChangeToken::hash, AuditKind::EmailChanged, invalid_change_token).await?;
    match state.store.confirm_email_change(&used).await? {
        EmailChangeOutcome::Changed { user_id } => {
            log_audit(AuditKind::EmailChanged, Some(&user_id), None, client.ip.as_deref(), None);
            Ok(EmailLinkDone { status: "changed".into() })
        }
        EmailChangeOutcome::Taken => Err(ApiError::new(
            ErrorCode::EmailTaken,
            "another account has taken this address since the change was asked for",
        )),
        EmailChangeOutcome::Invalid => Err(invalid_change_token()),
    }
}

/// `POST /auth/email/cancel`: spends a cancel token; the change is cancelled, or undone.
pub async fn cancel(state: &AppState, client: &ClientInfo, req: EmailTokenRequest) -> Result<EmailLinkDone, ApiError> {
    let token = EmailCancelToken::parse(&req.token);
    let used =
        token_use(state, client, token, EmailCancelToken::hash, AuditKind::EmailChangeCancelled, invalid_change_token)
            .await?;
    let done = state.store.cancel_email_change(&used).await?.ok_or_else(invalid_change_token)?;
    let detail = done.undone.then(|| format!("change undone; revoked {} sessions", done.revoked.len()));
    log_audit(AuditKind::EmailChangeCancelled, Some(&done.user_id), None, client.ip.as_deref(), detail.as_deref());
    Ok(EmailLinkDone { status: "cancelled".into() })
}
