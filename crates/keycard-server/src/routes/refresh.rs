//! `POST /auth/refresh` (rotation with reuse detection) and `POST /auth/logout`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::ErrorCode;
use keycard_core::wire::{Delivery, LogoutRequest, LogoutScope, RefreshRequest};

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{Authenticated, ClientInfo, OptionalJson};
use crate::issue;
use crate::sessions::RefreshRefused;
use crate::state::AppState;

/// Where a presented refresh token came from: the body (no CSRF needed: no ambient credential)
/// or the cookie (CSRF double-submit and Origin checked).
fn presented_refresh(
    body_token: Option<String>,
    headers: &HeaderMap,
    jar: &CookieJar,
    state: &AppState,
) -> Result<Option<(String, Delivery)>, ApiError> {
    if let Some(token) = body_token {
        return Ok(Some((token, Delivery::Body)));
    }
    match cookies::refresh_cookie(jar, &state.config) {
        Some(token) => {
            cookies::check_csrf(headers, jar, &state.config)?;
            Ok(Some((token.to_owned(), Delivery::Cookie)))
        }
        None => Ok(None),
    }
}

/// Rotates a refresh token: the presented one becomes used, a new pair is issued. The rules
/// (reuse detection, binding) are in [`crate::sessions::Sessions::refresh`].
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    client: ClientInfo,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    let Some((raw, delivery)) = presented_refresh(req.refresh_token, &headers, &jar, &state)? else {
        return Err(ApiError::new(ErrorCode::InvalidGrant, "no refresh token was presented"));
    };
    match state.sessions().refresh(&raw, client).await {
        Ok(issued) => issue::token_response(&state, jar, &issued.session, &issued.refresh, delivery, None, issued.now),
        Err(RefreshRefused { error, session_ended: true }) => {
            Ok((cookies::clear_session_cookies(jar, &state.config), error).into_response())
        }
        Err(RefreshRefused { error, .. }) => Err(error),
    }
}

/// Ends this session, all the user's sessions, or all but this one.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    client: ClientInfo,
    OptionalJson(req): OptionalJson<LogoutRequest>,
) -> Result<Response, ApiError> {
    let (user_id, session_id) = if headers.contains_key(axum::http::header::AUTHORIZATION) {
        let token = crate::extract::bearer_token_from(&headers)?;
        let auth = Authenticated::from_token(&state, token).await?;
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
        (session.user_id, session.id)
    };
    let scope = req.scope.unwrap_or_default();
    state.sessions().logout(user_id, session_id, scope, &client).await?;
    let jar = if scope == LogoutScope::Others { jar } else { cookies::clear_session_cookies(jar, &state.config) };
    Ok((jar, StatusCode::NO_CONTENT).into_response())
}
