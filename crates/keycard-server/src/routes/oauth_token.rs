//! `POST /oauth/token`: the OAuth 2.0 token endpoint (RFC 6749 §3.2), form-encoded, beside
//! keycard's JSON `/auth/refresh` and `/auth/login`. The rules are in [`crate::oauth`].

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use keycard_core::ErrorCode;

use crate::error::ApiError;
use crate::extract::ClientInfo;
use crate::oauth::{OAuthError, OAuthForm};
use crate::state::AppState;

/// Issues tokens for `grant_type` `refresh_token`, `client_credentials` or (when enabled)
/// `password`; errors are RFC 6749 §5.2's.
pub async fn token(
    State(state): State<AppState>,
    headers: HeaderMap,
    mut client: ClientInfo,
    form: OAuthForm,
) -> Result<Response, OAuthError> {
    let grant = form.required("grant_type")?.to_owned();
    let oauth = state.oauth();
    let caller = oauth.authenticate(&headers, &form, "/oauth/token", &client).await?;
    // RFC 9449: a proof binds the tokens issued (required for `dpop_required_clients`).
    let proof = crate::dpop::token_proof(&state, &headers, &Method::POST, "/oauth/token", caller.id()).await?;
    client.dpop_jkt = proof.map(|p| p.jkt);
    let issued = match grant.as_str() {
        "refresh_token" => oauth.refresh(&caller, &form, client).await?,
        "client_credentials" => oauth.client_credentials(&caller, &form, &client).await?,
        "password" => oauth.password(&caller, &form, &client).await?,
        other => {
            let text = format!("the grant type {other:?} is not supported");
            return Err(ApiError::new(ErrorCode::UnsupportedGrantType, text).into());
        }
    };
    Ok(Json(issued).into_response())
}
