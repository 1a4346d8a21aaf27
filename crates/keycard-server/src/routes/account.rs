//! The signed-in user's own resources: `me`, sessions, password change, account deletion.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::wire::{DeleteAccountRequest, PasswordChangeRequest, SessionInfo, UserInfo};
use keycard_store::AuditEvent;

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Authenticated, ClientInfo};
use crate::password::Passwords;
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
    let sessions = state.store.list_sessions(&auth.user.id, state.now()).await?;
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
    state.sessions().revoke(&auth, id, &client).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/password`: changes the password and revokes every other session.
pub async fn change_password(
    State(state): State<AppState>,
    auth: Authenticated,
    client: ClientInfo,
    ApiJson(req): ApiJson<PasswordChangeRequest>,
) -> Result<StatusCode, ApiError> {
    Passwords::check_policy(&req.new_password)?;
    state.sessions().confirm_password(&auth, &client, req.current_password).await?;
    let hash = state.passwords.hash(req.new_password).await?;
    let now = state.now();
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
    state.sessions().confirm_password(&auth, &client, req.password).await?;
    let now = state.now();
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
