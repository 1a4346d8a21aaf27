//! Password reset (issue 16): `POST /auth/password/forgot` mails a link with a single-use token,
//! `GET /auth/password/reset` shows the form the link opens (it never looks at the token), and
//! `POST /auth/password/reset` spends the token and sets the new password.
//!
//! The forgot answer must not tell whether the address has an account, by its body or by its
//! time. So the handler does the same work on both paths (a token generated and hashed, the
//! message rendered, one store operation queued) and answers before that operation runs: the
//! store looks the address up and writes the token, the message and the event in one
//! transaction, or nothing for an unknown address, in a task of its own. The answer's time cannot
//! depend on the store's work; `tests/api/password_reset.rs` measures it.
//!
//! The link is `{app_url}/auth/password/reset#token=kcpr_…`: the token is in the fragment, which
//! browsers never send, so it reaches no server log, proxy or `Referer`. Logs never hold the
//! link or the token.

use keycard_core::ErrorCode;
use keycard_core::refresh::ResetToken;
use keycard_core::wire::{Accepted, ForgotPasswordRequest, ResetPasswordRequest};
use keycard_store::{AuditKind, LinkRequest, PasswordReset};
use minijinja::context;

use crate::error::ApiError;
use crate::extract::ClientInfo;
use crate::password::Passwords;
use crate::ratelimit::Rule;
use crate::routes::Email;
use crate::state::{AppState, log_audit};
use crate::templates::{Template, valid_for};

/// The one answer to a refused reset token, whatever the reason.
pub fn invalid_reset_token() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidResetToken,
        "the reset link is invalid, expired, already used or replaced by a newer one; ask for a new one",
    )
}

/// The path of keycard's own reset form, which mailed links open under `app_url`.
pub const RESET_PATH: &str = "/auth/password/reset";

/// The forgot answer, the same for every address.
fn accepted() -> Accepted {
    Accepted::new("if an account has this address, a link to reset its password is on its way")
}

/// The answer of `POST /auth/password/forgot`, whether or not the address has an account.
pub async fn forgot(state: &AppState, client: &ClientInfo, req: ForgotPasswordRequest) -> Result<Accepted, ApiError> {
    let Email(email) = Email::parse(&req.email)?;
    state.limits.check(Rule::ForgotIp, &client.rate_key()).await?;
    state.limits.check(Rule::ForgotAddress, &email).await?;
    let now = state.now();
    let token = ResetToken::generate();
    let link = format!("{}{RESET_PATH}#token={}", state.config.app_url, token.expose());
    let ttl = state.config.password_reset_ttl;
    let request = LinkRequest {
        mail: state.mail(
            Template::ResetLink,
            &email,
            context! { link => link.as_str(), valid_for => valid_for(ttl) },
            now,
        ),
        email,
        token: token.hash(),
        expires_at: now + ttl,
        audit: client.event(AuditKind::PasswordResetRequested, None, None, None, now),
    };
    drop((token, link));
    // Answered before the store's work, on both paths alike (see the module's documentation).
    let task_state = state.clone();
    tokio::spawn(async move {
        match task_state.store.request_password_reset(&request).await {
            Ok(true) => {
                task_state.wake_mail_sender();
                log_audit(AuditKind::PasswordResetRequested, None, None, request.audit.ip.as_deref(), None);
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "could not record a password-reset request"),
        }
    });
    Ok(accepted())
}

/// `POST /auth/password/reset`: spends the token, sets the password, ends every session.
pub async fn reset(state: &AppState, client: &ClientInfo, req: ResetPasswordRequest) -> Result<(), ApiError> {
    // Each attempt costs a password hash: the budget of password checks per IP.
    state.limits.check(Rule::PasswordCheckIp, &client.rate_key()).await?;
    let token = ResetToken::parse(&req.token).ok_or_else(invalid_reset_token)?;
    Passwords::check_policy(&req.new_password)?;
    let password_hash = state.passwords.hash(req.new_password).await?;
    let now = state.now();
    let reset = PasswordReset {
        token: token.hash(),
        password_hash,
        now,
        notice: state.mail(Template::PasswordChanged, "", context! {}, now),
        audit: client.event(AuditKind::PasswordReset, None, None, None, now),
    };
    let done = state.store.reset_password(&reset).await?.ok_or_else(invalid_reset_token)?;
    state.wake_mail_sender();
    state.wake_webhook_sender();
    let detail = format!("revoked {} sessions", done.revoked.len());
    log_audit(AuditKind::PasswordReset, Some(&done.user_id), None, client.ip.as_deref(), Some(&detail));
    Ok(())
}
