//! Public documents and probes: JWKS, OpenID-style discovery, liveness and readiness.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

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
pub async fn openid_configuration(State(state): State<AppState>) -> Json<serde_json::Value> {
    let iss = &state.config.issuer;
    Json(json!({
        "issuer": iss,
        "jwks_uri": format!("{iss}/.well-known/jwks.json"),
        "signup_endpoint": format!("{iss}/auth/signup"),
        "login_endpoint": format!("{iss}/auth/login"),
        "token_endpoint": format!("{iss}/auth/refresh"),
        "refresh_endpoint": format!("{iss}/auth/refresh"),
        "logout_endpoint": format!("{iss}/auth/logout"),
        "userinfo_endpoint": format!("{iss}/auth/me"),
        "sessions_endpoint": format!("{iss}/auth/sessions"),
        "revocation_feed_endpoint": format!("{iss}/auth/revocations"),
        "token_endpoint_auth_methods_supported": ["none"],
        "id_token_signing_alg_values_supported": [state.keys().active().alg().as_str()],
        "access_token_signing_alg_values_supported": [state.keys().active().alg().as_str()],
        "grant_types_supported": ["password", "refresh_token"],
    }))
}

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: the store answers.
pub async fn readyz(State(state): State<AppState>) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    match state.store.ping().await {
        Ok(()) => Ok((StatusCode::OK, Json(json!({"status": "ready"})))),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::new(keycard_core::ErrorCode::TemporarilyUnavailable, "the token store is unreachable"))
        }
    }
}
