//! `DELETE /auth/account`: delete the account (every session ends).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::wire::DeleteAccountRequest;
use keycard_store::AuditKind;

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, ClientInfo};
use crate::state::AppState;

/// `DELETE /auth/account`: deletes the user and revokes everything.
pub async fn delete_account(
    State(state): State<AppState>,
    auth: Authenticated,
    jar: CookieJar,
    client: ClientInfo,
    ApiJson(req): ApiJson<DeleteAccountRequest>,
) -> Result<Response, ApiError> {
    // With a second factor on the account, the password alone is not enough (issue 17).
    state.factors().require_recent(&auth, true).await?;
    state.sessions().confirm_password(&auth, &client, req.password).await?;
    let now = state.now();
    let detail = format!("revoked {} sessions", keycard_store::REVOKED_COUNT);
    let event =
        client.event(AuditKind::AccountDeleted, Some(auth.user.id.clone()), Some(auth.claims.sid), Some(detail), now);
    state.store.delete_user(&auth.user.id, now, &event).await?;
    state.recorded(&event);
    Ok((cookies::clear_session_cookies(jar, &state.config), StatusCode::NO_CONTENT).into_response())
}
