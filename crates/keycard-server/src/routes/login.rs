//! `POST /auth/login`: password login, a new session.

use axum::extract::State;
use axum::response::Response;
use axum_extra::extract::CookieJar;
use keycard_core::wire::LoginRequest;

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::issue;
use crate::state::AppState;

/// Checks the password and starts a session (a new refresh-token family); the rules are in
/// [`crate::sessions::Sessions::login`].
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let device = req.device_token.as_deref().or_else(|| cookies::device_cookie(&jar, &state.config));
    let (issued, user) = state.sessions().login(&req.email, req.password, device, &client).await?;
    issue::login_response(&state, jar, issued, &user.id, req.delivery.unwrap_or_default())
}
