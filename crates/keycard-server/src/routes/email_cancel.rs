//! `POST /auth/email/cancel`: spend the token mailed to the old address; the change is cancelled
//! (or undone, ending every session).

use axum::Json;
use axum::extract::State;
use keycard_core::wire::{EmailLinkDone, EmailTokenRequest};

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::state::AppState;

/// `POST /auth/email/cancel`: the change is off.
pub async fn cancel(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<EmailTokenRequest>,
) -> Result<Json<EmailLinkDone>, ApiError> {
    Ok(Json(crate::email::cancel(&state, &client, req).await?))
}
