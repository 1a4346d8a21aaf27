//! `POST /auth/password/forgot`: ask for a password-reset link (rules in `reset.rs`).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keycard_core::wire::{Accepted, ForgotPasswordRequest};

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::state::AppState;

/// `POST /auth/password/forgot`: 202 with one body whether or not the address has an account.
pub async fn forgot(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<ForgotPasswordRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let accepted = crate::reset::forgot(&state, &client, req).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
