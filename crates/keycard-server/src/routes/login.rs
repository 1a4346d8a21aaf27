//! `POST /auth/login`: password login, a new session, or the second step when the account has
//! a second factor.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::wire::LoginRequest;

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::issue;
use crate::mfa::LoginStep;
use crate::state::AppState;

/// Checks the password and starts a session (a new refresh-token family), or answers
/// `{mfa_required, mfa_token, methods}`; the rules are in [`crate::sessions::Sessions::login`].
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let device = req.device_token.as_deref().or_else(|| cookies::device_cookie(&jar, &state.config));
    let delivery = req.delivery.unwrap_or_default();
    match state.sessions().login(&req.email, req.password, device, delivery, &client).await? {
        LoginStep::Done(issued, user) => issue::login_response(&state, jar, *issued, &user.id, delivery),
        LoginStep::Mfa(challenge) => Ok(Json(challenge).into_response()),
    }
}
