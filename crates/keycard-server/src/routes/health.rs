//! `GET /healthz` (the process answers) and `GET /readyz` (the store answers, and with
//! Transit signing, Transit does).

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

/// `GET /readyz`: the store answers; with `signing_backend = "transit"`, Transit answers too (its
/// key versions are read, which also refreshes them), so an instance that cannot sign leaves
/// the load balancer's rotation and returns by itself when Transit is back.
pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, Json<ProbeStatus>), ApiError> {
    if let Err(e) = state.store.ping().await {
        tracing::warn!(error = %e, "readiness check failed");
        return Err(ApiError::new(keycard_core::ErrorCode::TemporarilyUnavailable, "the token store is unreachable"));
    }
    if state.signs_remotely()
        && let Err(e) = state.reload_keys().await
    {
        tracing::warn!(error = %e, "readiness check failed: Transit cannot be read");
        return Err(ApiError::new(
            keycard_core::ErrorCode::TemporarilyUnavailable,
            "the signing service (OpenBao/Vault Transit) is unavailable",
        ));
    }
    Ok((StatusCode::OK, Json(ProbeStatus::ready())))
}
