//! `POST /auth/login`: password login, a new session, or the second step when the account has
//! a second factor.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::wire::LoginRequest;

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::issue;
use crate::mfa::LoginStep;
use crate::oauth::PUBLIC_CLIENT;
use crate::state::AppState;
use crate::{cookies, dpop};

/// Checks the password and starts a session (a new refresh-token family), or answers
/// `{mfa_required, mfa_token, methods}`; the rules are in [`crate::sessions::Sessions::login`].
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    mut client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    // A DPoP proof binds the session to its key (RFC 9449).
    let proof = dpop::token_proof(&state, &headers, &Method::POST, "/auth/login", PUBLIC_CLIENT).await?;
    client.dpop_jkt = proof.map(|p| p.jkt);
    let device = req.device_token.as_deref().or_else(|| cookies::device_cookie(&jar, &state.config));
    let delivery = req.delivery.unwrap_or_default();
    match state.sessions().login(&req.email, req.password, device, delivery, &client).await? {
        LoginStep::Done(issued, user) => issue::login_response(&state, jar, *issued, &user.id, delivery),
        LoginStep::Mfa(challenge) => Ok(Json(challenge).into_response()),
    }
}
