//! `POST /auth/email/verify`: spend the token of a mailed verification link.

use axum::Json;
use axum::extract::State;
use keycard_core::wire::{EmailLinkDone, EmailTokenRequest};

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::state::AppState;

/// `POST /auth/email/verify`: the address is verified.
pub async fn verify(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<EmailTokenRequest>,
) -> Result<Json<EmailLinkDone>, ApiError> {
    Ok(Json(crate::email::verify(&state, &client, req).await?))
}
