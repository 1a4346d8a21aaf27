//! `POST /auth/logout`: ends this session, the others, or all.

use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::ErrorCode;
use keycard_core::wire::{LogoutRequest, LogoutScope};

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{Authenticated, ClientInfo, OptionalJson};
use crate::oauth::PUBLIC_CLIENT;
use crate::routes::presented_refresh;
use crate::state::AppState;

/// Ends this session, all the user's sessions, or all but this one.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    client: ClientInfo,
    OptionalJson(req): OptionalJson<LogoutRequest>,
) -> Result<Response, ApiError> {
    let (user_id, session_id) = if headers.contains_key(axum::http::header::AUTHORIZATION) {
        let auth = Authenticated::from_headers(&state, &headers, &Method::POST, || "/auth/logout").await?;
        (auth.user.id, auth.claims.sid)
    } else {
        let Some((raw, _)) = presented_refresh(req.refresh_token, &headers, &jar, &state)? else {
            return Err(ApiError::new(ErrorCode::InvalidGrant, "a refresh token or a Bearer access token is required"));
        };
        let Some(session) = state.sessions().by_refresh(&raw).await? else {
            // Nothing left to end; still clear whatever cookies the browser holds.
            let err = ApiError::invalid_grant();
            return Ok((cookies::clear_session_cookies(jar, &state.config), err).into_response());
        };
        // A bound session ends only with its key's proof: a copied cookie or token can't end it.
        if let Some(bound) = &session.dpop_jkt {
            let proof =
                crate::dpop::token_proof(&state, &headers, &Method::POST, "/auth/logout", PUBLIC_CLIENT).await?;
            if proof.as_ref().is_none_or(|p| &p.jkt != bound) {
                let presented = ClientInfo { dpop_jkt: proof.map(|p| p.jkt), ..client };
                let sessions = state.sessions();
                let now = state.now();
                return Err(sessions.dpop_mismatch("logout", session.user_id, session.id, &presented, now).await);
            }
        }
        (session.user_id, session.id)
    };
    let scope = req.scope.unwrap_or_default();
    state.sessions().logout(user_id, session_id, scope, &client).await?;
    let jar = if scope == LogoutScope::Others { jar } else { cookies::clear_session_cookies(jar, &state.config) };
    Ok((jar, StatusCode::NO_CONTENT).into_response())
}
