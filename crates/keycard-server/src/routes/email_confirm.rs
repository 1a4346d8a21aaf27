//! `POST /auth/email/confirm`: spend the token mailed to a new address; the address changes.

use axum::Json;
use axum::extract::State;
use keycard_core::wire::{EmailLinkDone, EmailTokenRequest};

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::state::AppState;

/// `POST /auth/email/confirm`: the account's address is now the new one.
pub async fn confirm(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<EmailTokenRequest>,
) -> Result<Json<EmailLinkDone>, ApiError> {
    Ok(Json(crate::email::confirm(&state, &client, req).await?))
}
