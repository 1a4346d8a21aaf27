//! The signed-in user's own resources: `me`, sessions, password change, account deletion.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::ErrorCode;
use keycard_core::wire::{DeleteAccountRequest, PasswordChangeRequest, SessionInfo, UserInfo};
use keycard_store::AuditEvent;

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Authenticated, ClientInfo};
use crate::password::{MAX_PASSWORD_BYTES, Passwords};
use crate::ratelimit::Rule;
use crate::routes::{timestamp, user_info};
use crate::state::AppState;

/// `GET /auth/me`.
pub async fn me(auth: Authenticated) -> Json<UserInfo> {
    Json(user_info(&auth.user.id, &auth.user.email, auth.user.created_at))
}

/// `GET /auth/sessions`: the user's live sessions.
pub async fn list_sessions(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<Vec<SessionInfo>>, ApiError> {
    let sessions = state.store.list_sessions(&auth.user.id, keycard_core::now_unix()).await?;
    Ok(Json(
        sessions
            .into_iter()
            .map(|s| SessionInfo {
                current: s.id == auth.claims.sid,
                id: s.id,
                created_at: timestamp(s.created_at),
                last_used_at: timestamp(s.last_used_at),
                user_agent: s.user_agent,
                ip: s.ip,
            })
            .collect(),
    ))
}

/// `DELETE /auth/sessions/{id}`: revokes one of the user's sessions.
pub async fn revoke_session(
    State(state): State<AppState>,
    auth: Authenticated,
    client: ClientInfo,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    let now = keycard_core::now_unix();
    if !state.store.revoke_session(&auth.user.id, &id, "revoked_by_user", now).await? {
        return Err(ApiError::new(ErrorCode::NotFound, "no such session"));
    }
    state
        .audit(AuditEvent {
            at: now,
            kind: "session_revoked".into(),
            user_id: Some(auth.user.id),
            session_id: Some(id),
            ip: client.ip,
            user_agent: client.user_agent,
            detail: Some(format!("by session {}", auth.claims.sid)),
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// Checks the caller's password; a wrong one is 401 `invalid_credentials`.
///
/// Throttled like login: attempts per user and per IP per minute (a flood of guesses, each a
/// full Argon2 hash, cannot crowd out logins), exponential backoff after repeated failures per
/// user and per IP, every failure audited (`password_check_failed`) and counted in metrics.
async fn confirm_password(
    state: &AppState,
    auth: &Authenticated,
    client: &ClientInfo,
    password: String,
) -> Result<(), ApiError> {
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
    state
        .audit(AuditEvent {
            at: keycard_core::now_unix(),
            kind: "password_check_failed".into(),
            user_id: Some(auth.user.id.clone()),
            session_id: Some(auth.claims.sid.clone()),
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
            detail: None,
        })
        .await;
    Err(ApiError::new(ErrorCode::InvalidCredentials, "the current password is incorrect"))
}

/// `POST /auth/password`: changes the password and revokes every other session.
pub async fn change_password(
    State(state): State<AppState>,
    auth: Authenticated,
    client: ClientInfo,
    ApiJson(req): ApiJson<PasswordChangeRequest>,
) -> Result<StatusCode, ApiError> {
    Passwords::check_policy(&req.new_password)?;
    confirm_password(&state, &auth, &client, req.current_password).await?;
    let hash = state.passwords.hash(req.new_password).await?;
    let now = keycard_core::now_unix();
    let revoked = state.store.set_password(&auth.user.id, &hash, Some(&auth.claims.sid), now).await?;
    state
        .audit(AuditEvent {
            at: now,
            kind: "password_changed".into(),
            user_id: Some(auth.user.id),
            session_id: Some(auth.claims.sid),
            ip: client.ip,
            user_agent: client.user_agent,
            detail: Some(format!("revoked {} other sessions", revoked.len())),
        })
        .await;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /auth/account`: deletes the user and revokes everything.
pub async fn delete_account(
    State(state): State<AppState>,
    auth: Authenticated,
    jar: CookieJar,
    client: ClientInfo,
    ApiJson(req): ApiJson<DeleteAccountRequest>,
) -> Result<Response, ApiError> {
    confirm_password(&state, &auth, &client, req.password).await?;
    let now = keycard_core::now_unix();
    let revoked = state.store.delete_user(&auth.user.id, now).await?;
    state
        .audit(AuditEvent {
            at: now,
            kind: "account_deleted".into(),
            user_id: Some(auth.user.id),
            session_id: Some(auth.claims.sid),
            ip: client.ip,
            user_agent: client.user_agent,
            detail: Some(format!("revoked {} sessions", revoked.len())),
        })
        .await;
    Ok((cookies::clear_session_cookies(jar, &state.config), StatusCode::NO_CONTENT).into_response())
}
