//! `GET /.well-known/jwks.json` and `GET /.well-known/openid-configuration`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use keycard_core::wire::Discovery;

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
