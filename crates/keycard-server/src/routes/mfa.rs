//! Second factors (issue 17): the login's second step, step-up, TOTP enrolment, recovery codes
//! and the factor list. The rules are in [`crate::mfa`].

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use axum_extra::extract::CookieJar;
use keycard_core::wire::mfa::*;

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, Authenticated, ClientInfo};
use crate::issue;
use crate::state::AppState;

/// `POST /auth/mfa/verify`: completes a login with its second factor; the token response in the
/// delivery the login asked for.
pub async fn verify(
    State(state): State<AppState>,
    jar: CookieJar,
    headers: HeaderMap,
    mut client: ClientInfo,
    ApiJson(req): ApiJson<MfaVerifyRequest>,
) -> Result<Response, ApiError> {
    // The session starts here: a DPoP proof binds it to its key (RFC 9449).
    let path = "/auth/mfa/verify";
    let proof = crate::dpop::token_proof(&state, &headers, &Method::POST, path, crate::oauth::PUBLIC_CLIENT).await?;
    client.dpop_jkt = proof.map(|p| p.jkt);
    let (issued, user, delivery) = state.factors().verify_login(req, &client).await?;
    issue::login_response(&state, jar, issued, &user.id, delivery)
}

/// `POST /auth/step-up`: a new access token for the caller's session with `auth_time` now.
pub async fn step_up(
    State(state): State<AppState>,
    auth: Authenticated,
    client: ClientInfo,
    ApiJson(req): ApiJson<StepUpRequest>,
) -> Result<Json<StepUpResponse>, ApiError> {
    Ok(Json(state.factors().step_up(&auth, &client, req).await?))
}

/// `GET /auth/mfa`: the caller's active factors and recovery codes left.
pub async fn list(State(state): State<AppState>, auth: Authenticated) -> Result<Json<FactorList>, ApiError> {
    Ok(Json(state.factors().list(&auth.user.id).await?))
}

/// `POST /auth/mfa/totp`: starts an authenticator-app enrolment.
pub async fn begin_totp(State(state): State<AppState>, auth: Authenticated) -> Result<Json<TotpEnrollment>, ApiError> {
    Ok(Json(state.factors().begin_totp(&auth).await?))
}

/// `POST /auth/mfa/totp/confirm`: activates the factor with its first code.
pub async fn confirm_totp(
    State(state): State<AppState>,
    auth: Authenticated,
    client: ClientInfo,
    ApiJson(req): ApiJson<TotpConfirmRequest>,
) -> Result<Json<TotpConfirmed>, ApiError> {
    Ok(Json(state.factors().confirm_totp(&auth, &client, req).await?))
}

/// `DELETE /auth/mfa/factors/{id}`: removes a factor.
pub async fn remove(
    State(state): State<AppState>,
    auth: Authenticated,
    client: ClientInfo,
    ApiPath(id): ApiPath<String>,
) -> Result<StatusCode, ApiError> {
    state.factors().remove(&auth, &client, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `PATCH /auth/mfa/factors/{id}`: renames a factor.
pub async fn rename(
    State(state): State<AppState>,
    auth: Authenticated,
    ApiPath(id): ApiPath<String>,
    ApiJson(req): ApiJson<RenameFactorRequest>,
) -> Result<StatusCode, ApiError> {
    state.factors().rename(&auth, &id, &req.name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /auth/mfa/recovery-codes`: ten new recovery codes replace the old ones.
pub async fn regenerate_codes(
    State(state): State<AppState>,
    auth: Authenticated,
    client: ClientInfo,
) -> Result<Json<RecoveryCodes>, ApiError> {
    Ok(Json(state.factors().regenerate_codes(&auth, &client).await?))
}
