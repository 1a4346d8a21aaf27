//! `/auth/password/reset`: the form a mailed link opens (GET, `web.rs`) and the reset itself
//! (POST; rules in `reset.rs`).

use axum::extract::State;
use axum::http::StatusCode;
use keycard_core::wire::ResetPasswordRequest;

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::state::AppState;

/// `POST /auth/password/reset`: spends the mailed token and sets the new password.
pub async fn reset(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<ResetPasswordRequest>,
) -> Result<StatusCode, ApiError> {
    crate::reset::reset(&state, &client, req).await?;
    Ok(StatusCode::NO_CONTENT)
}
