//! `POST /oauth/introspect`: token introspection (RFC 7662), for registered clients.

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use keycard_core::wire::Introspection;

use crate::extract::ClientInfo;
use crate::oauth::{OAuthError, OAuthForm};
use crate::state::AppState;

/// `{"active": false}` for an expired, revoked, unknown or malformed token; the token's claims
/// and `sid` for a live one. The public client `keycard` may not introspect (401).
pub async fn introspect(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    form: OAuthForm,
) -> Result<Json<Introspection>, OAuthError> {
    let oauth = state.oauth();
    let caller = oauth.authenticate(&headers, &form, "/oauth/introspect", &client).await?;
    Ok(Json(oauth.introspect(&caller, form.required("token")?, &client).await?))
}
