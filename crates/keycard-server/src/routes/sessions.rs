//! `GET /auth/sessions` and `DELETE /auth/sessions/{id}`: the caller's live sessions.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keycard_core::wire::SessionInfo;

use crate::error::ApiError;
use crate::extract::{ApiPath, Authenticated, ClientInfo};
use crate::routes::timestamp;
use crate::state::AppState;

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
