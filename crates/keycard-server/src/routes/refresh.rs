//! `POST /auth/refresh`: rotation with reuse detection.

use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::ErrorCode;
use keycard_core::wire::RefreshRequest;

use crate::error::ApiError;
use crate::extract::{ClientInfo, OptionalJson};
use crate::issue;
use crate::oauth::PUBLIC_CLIENT;
use crate::routes::presented_refresh;
use crate::sessions::RefreshRefused;
use crate::state::AppState;
use crate::{cookies, dpop};

/// Rotates a refresh token: the presented one becomes used, a new pair is issued. The rules
/// (reuse detection, binding) are in [`crate::sessions::Sessions::refresh`].
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    mut client: ClientInfo,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    // A DPoP-bound session rotates only with a proof of its key (checked in the rotation).
    let proof = dpop::token_proof(&state, &headers, &Method::POST, "/auth/refresh", PUBLIC_CLIENT).await?;
    client.dpop_jkt = proof.map(|p| p.jkt);
    let Some((raw, delivery)) = presented_refresh(req.refresh_token, &headers, &jar, &state)? else {
        return Err(ApiError::new(ErrorCode::InvalidGrant, "no refresh token was presented"));
    };
    match state.sessions().refresh(&raw, client).await {
        Ok(issued) => issue::token_response(&state, jar, issued, delivery, None),
        Err(RefreshRefused { error, session_ended: true }) => {
            Ok((cookies::clear_session_cookies(jar, &state.config), error).into_response())
        }
        Err(RefreshRefused { error, .. }) => Err(error),
    }
}
