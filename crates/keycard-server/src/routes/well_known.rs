//! `GET /.well-known/jwks.json`, `GET /.well-known/oauth-authorization-server` (RFC 8414) and
//! `GET /.well-known/openid-configuration` (the same document).

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

/// `GET /.well-known/openid-configuration`: the metadata under the name OpenID Connect clients
/// look for (keycard issues no ID tokens, and the document says only what is true).
pub async fn openid_configuration(State(state): State<AppState>) -> Json<Discovery> {
    authorization_server(State(state)).await
}

/// `GET /.well-known/oauth-authorization-server` (RFC 8414).
pub async fn authorization_server(State(state): State<AppState>) -> Json<Discovery> {
    let c = &state.config;
    Json(Discovery::new(&c.issuer, state.keys().alg(), c.oauth_password_grant))
}
