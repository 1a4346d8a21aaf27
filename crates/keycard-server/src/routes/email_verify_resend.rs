//! `POST /auth/email/verify/resend`: mail a new verification link.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keycard_core::wire::{Accepted, ResendVerificationRequest};

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::state::AppState;

/// `POST /auth/email/verify/resend`: 202 whatever the address.
pub async fn resend(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<ResendVerificationRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let accepted = crate::email::resend(&state, &client, req).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
