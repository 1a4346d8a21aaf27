//! `GET /healthz` (the process answers) and `GET /readyz` (the store answers).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keycard_core::wire::ProbeStatus;

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<ProbeStatus> {
    Json(ProbeStatus::ok())
}

/// `GET /readyz`: the store answers.
pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, Json<ProbeStatus>), ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok((StatusCode::OK, Json(ProbeStatus::ready()))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(keycard_core::ErrorCode::TemporarilyUnavailable, "the token store is unreachable"))
        }
    }
}
