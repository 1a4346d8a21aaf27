//! Public documents and probes: JWKS, OpenID-style discovery, liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use keycard_core::wire::{Discovery, ProbeStatus};

use crate::error::ApiError;
use crate::state::AppState;

/// `GET /.well-known/jwks.json`: the public keys. Cacheable briefly, so a rotated key is
/// picked up by verifiers within minutes (they also refetch on an unknown `kid`).
pub async fn jwks(State(state): State<AppState>) -> Response {
    let mut response = Json(state.keys().jwks()).into_response();
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("public, max-age=300"));
    response
}

/// `GET /.well-known/openid-configuration`.
pub async fn openid_configuration(State(state): State<AppState>) -> Json<Discovery> {
    Json(Discovery::new(&state.config.issuer, state.keys().active().alg()))
}

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
