//! `POST /oauth/revoke`: token revocation (RFC 7009).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};

use crate::extract::ClientInfo;
use crate::oauth::{OAuthError, OAuthForm};
use crate::state::AppState;

/// Revokes `token` (a refresh token's session, an access token's session or client grant) when
/// it was issued to the caller; 200 with an empty body whether or not there was anything to
/// revoke. `token_type_hint` is accepted and not needed: keycard tells its tokens apart.
pub async fn revoke(
    State(state): State<AppState>,
    headers: HeaderMap,
    client: ClientInfo,
    form: OAuthForm,
) -> Result<StatusCode, OAuthError> {
    let oauth = state.oauth();
    let caller = oauth.authenticate(&headers, &form, "/oauth/revoke", &client).await?;
    oauth.revoke(&caller, form.required("token")?, &client).await?;
    Ok(StatusCode::OK)
}
