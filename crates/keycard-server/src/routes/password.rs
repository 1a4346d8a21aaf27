//! `POST /auth/password`: change the password (every other session ends).

use axum::extract::State;
use axum::http::StatusCode;
use keycard_core::wire::PasswordChangeRequest;
use keycard_store::AuditKind;

use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, ClientInfo};
use crate::password::Passwords;
use crate::state::AppState;

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
        .audit(client.event(
            AuditKind::PasswordChanged,
            Some(auth.user.id),
            Some(auth.claims.sid),
            Some(format!("revoked {} other sessions", revoked.len())),
            now,
        ))
        .await;
    Ok(StatusCode::NO_CONTENT)
}
