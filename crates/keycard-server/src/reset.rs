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
use keycard_core::wire::{ForgotPasswordAccepted, ForgotPasswordRequest, ResetPasswordRequest};
use keycard_store::{AuditKind, NewMail, PasswordReset, PasswordResetRequest};

use crate::error::ApiError;
use crate::extract::ClientInfo;
use crate::password::Passwords;
use crate::ratelimit::Rule;
use crate::routes::Email;
use crate::state::{AppState, log_audit};

/// The one answer to a refused reset token, whatever the reason.
pub fn invalid_reset_token() -> ApiError {
    ApiError::new(
        ErrorCode::InvalidResetToken,
        "the reset link is invalid, expired, already used or replaced by a newer one; ask for a new one",
    )
}

/// The path of keycard's own reset form, which mailed links open under `app_url`.
pub const RESET_PATH: &str = "/auth/password/reset";

/// Text safe inside HTML (element text and quoted attributes).
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The message with the reset link.
pub fn reset_link_message(recipient: &str, link: &str, ttl_minutes: i64, now: i64) -> NewMail {
    let text = format!(
        "Someone (hopefully you) asked to reset the password of your account.\n\n\
         To choose a new password, open this link within {ttl_minutes} minutes:\n\n{link}\n\n\
         The link works once. If you did not ask for this, ignore this message: your password \
         stays as it is.\n"
    );
    let link = html_escape(link);
    let html = format!(
        "<!doctype html><html><body>\
         <p>Someone (hopefully you) asked to reset the password of your account.</p>\
         <p><a href=\"{link}\">Choose a new password</a> (the link works once, for {ttl_minutes} minutes).</p>\
         <p>If the button does not work, copy this address into your browser:<br>{link}</p>\
         <p>If you did not ask for this, ignore this message: your password stays as it is.</p>\
         </body></html>"
    );
    NewMail {
        id: uuid::Uuid::new_v4().to_string(),
        recipient: recipient.to_owned(),
        subject: "Reset your password".into(),
        text_body: text,
        html_body: Some(html),
        created_at: now,
    }
}

/// The "your password was changed" notice (the store addresses it to the user).
pub fn password_changed_notice(now: i64) -> NewMail {
    NewMail {
        id: uuid::Uuid::new_v4().to_string(),
        recipient: String::new(),
        subject: "Your password was changed".into(),
        text_body: "The password of your account was just reset with a link sent to this address, \
                    and every session was signed out.\n\nIf this was not you, reset your password \
                    again at once and check the security of this mailbox.\n"
            .into(),
        html_body: Some(
            "<!doctype html><html><body><p>The password of your account was just reset with a link \
             sent to this address, and every session was signed out.</p><p>If this was not you, \
             reset your password again at once and check the security of this mailbox.</p></body></html>"
                .into(),
        ),
        created_at: now,
    }
}

/// The forgot answer, the same for every address.
fn accepted() -> ForgotPasswordAccepted {
    ForgotPasswordAccepted {
        status: "accepted".into(),
        message: "if an account has this address, a link to reset its password is on its way".into(),
    }
}

/// The answer of `POST /auth/password/forgot`, whether or not the address has an account.
pub async fn forgot(
    state: &AppState,
    client: &ClientInfo,
    req: ForgotPasswordRequest,
) -> Result<ForgotPasswordAccepted, ApiError> {
    let Email(email) = Email::parse(&req.email)?;
    state.limits.check(Rule::ForgotIp, &client.rate_key()).await?;
    state.limits.check(Rule::ForgotAddress, &email).await?;
    let now = state.now();
    let token = ResetToken::generate();
    let link = format!("{}{RESET_PATH}#token={}", state.config.app_url, token.expose());
    let ttl = state.config.password_reset_ttl;
    let request = PasswordResetRequest {
        mail: reset_link_message(&email, &link, ttl / 60, now),
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
        notice: password_changed_notice(now),
        audit: client.event(AuditKind::PasswordReset, None, None, None, now),
    };
    let done = state.store.reset_password(&reset).await?.ok_or_else(invalid_reset_token)?;
    state.wake_mail_sender();
    let detail = format!("revoked {} sessions", done.revoked.len());
    log_audit(AuditKind::PasswordReset, Some(&done.user_id), None, client.ip.as_deref(), Some(&detail));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_link_is_escaped_in_html_and_whole_in_text() {
        let mail = reset_link_message("a@example.com", "https://app.test/x?a=1&b=\"2\"#token=kcpr_x", 30, 0);
        assert!(mail.text_body.contains("https://app.test/x?a=1&b=\"2\"#token=kcpr_x"));
        let html = mail.html_body.unwrap_or_default();
        assert!(html.contains("a=1&amp;b=&quot;2&quot;"));
        assert!(!html.contains("b=\"2\""));
    }
}
