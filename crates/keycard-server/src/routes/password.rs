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
    // With a second factor on the account, the password alone is not enough (issue 17).
    state.factors().require_recent(&auth, true).await?;
    state.sessions().confirm_password(&auth, &client, req.current_password).await?;
    let hash = state.passwords.hash(req.new_password).await?;
    let now = state.now();
    let detail = format!("revoked {} other sessions", keycard_store::REVOKED_COUNT);
    let (user, sid) = (&auth.user.id, &auth.claims.sid);
    let event = client.event(AuditKind::PasswordChanged, Some(user.clone()), Some(sid.clone()), Some(detail), now);
    state.store.set_password(user, &hash, Some(sid), now, &event).await?;
    state.recorded(&event);
    Ok(StatusCode::NO_CONTENT)
}
