//! Passkeys (issue 17): registration, passwordless sign-in, and the step-up challenge. The rules
//! are in [`crate::passkeys`].

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use keycard_core::wire::mfa::*;

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, ClientInfo};
use crate::issue;
use crate::state::AppState;

/// `POST /auth/passkeys/register/options`: starts a registration for the caller.
pub async fn register_options(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<PasskeyOptions>, ApiError> {
    Ok(Json(state.passkeys().register_options(&auth).await?))
}

/// `POST /auth/passkeys/register`: adds the passkey the authenticator made.
pub async fn register(
    State(state): State<AppState>,
    auth: Authenticated,
    client: ClientInfo,
    ApiJson(req): ApiJson<PasskeyRegisterRequest>,
) -> Result<Json<PasskeyAdded>, ApiError> {
    Ok(Json(state.passkeys().register(&auth, &client, req).await?))
}

/// `POST /auth/passkeys/login/options`: a challenge any discoverable passkey of this site answers.
pub async fn login_options(
    State(state): State<AppState>,
    client: ClientInfo,
) -> Result<Json<PasskeyOptions>, ApiError> {
    Ok(Json(state.passkeys().login_options(&client).await?))
}

/// `POST /auth/passkeys/login`: signs in with a passkey; the login's token response (bound to the
/// key of a DPoP proof, as a password login is).
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    mut client: ClientInfo,
    ApiJson(req): ApiJson<PasskeyLoginRequest>,
) -> Result<Response, ApiError> {
    let path = "/auth/passkeys/login";
    let proof = crate::dpop::token_proof(&state, &headers, &Method::POST, path, crate::oauth::PUBLIC_CLIENT).await?;
    client.dpop_jkt = proof.map(|p| p.jkt);
    let device = req.device_token.as_deref().or_else(|| cookies::device_cookie(&jar, &state.config));
    let delivery = req.delivery.unwrap_or_default();
    let (issued, user) = state.passkeys().login(&req.passkey_token, req.credential.clone(), device, &client).await?;
    issue::login_response(&state, jar, issued, &user.id, delivery)
}

/// `POST /auth/step-up/options`: a challenge for the caller's passkeys (answered at
/// `POST /auth/step-up`).
pub async fn step_up_options(
    State(state): State<AppState>,
    auth: Authenticated,
) -> Result<Json<PasskeyOptions>, ApiError> {
    Ok(Json(state.passkeys().step_up_options(&auth).await?))
}
