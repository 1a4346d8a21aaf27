//! `POST /auth/signup`: creates an account.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use keycard_core::wire::{SignupRequest, UserInfo};
use keycard_store::{AuditKind, NewUser};

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::password::Passwords;
use crate::ratelimit::Rule;
use crate::routes::{Email, user_info};
use crate::state::{AppState, log_audit};

/// Creates an account.
pub async fn signup(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<Response, ApiError> {
    state.limits.check(Rule::SignupIp, &client.rate_key()).await?;
    let email = Email::parse(&req.email)?;
    Passwords::check_policy(&req.password)?;
    let password_hash = state.passwords.hash(req.password).await?;
    let now = state.now();
    // With verification on, the link's token, message and event go in the signup's transaction.
    let verification = crate::email::verification(&state, &client, &email.0, now);
    let user =
        NewUser { id: uuid::Uuid::new_v4().to_string(), email: email.0, password_hash, created_at: now, verification };
    state.store.create_user(&user).await?;
    if user.verification.is_some() {
        state.wake_mail_sender();
        log_audit(AuditKind::EmailVerificationSent, Some(&user.id), None, client.ip.as_deref(), None);
    }
    state.audit(client.event(AuditKind::Signup, Some(user.id.clone()), None, None, now)).await;
    let info: UserInfo = user_info(&user.id, &user.email, false, user.created_at);
    Ok((StatusCode::CREATED, Json(info)).into_response())
}
