//! `POST /auth/email`: change the account's address (confirmed from the new one).

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use keycard_core::wire::{Accepted, ChangeEmailRequest};

use crate::error::ApiError;
use crate::extract::{ApiJson, Authenticated, ClientInfo};
use crate::state::AppState;

/// `POST /auth/email`: 202 once the password matched, whether or not the new address is free.
pub async fn change_email(
    State(state): State<AppState>,
    auth: Authenticated,
    client: ClientInfo,
    ApiJson(req): ApiJson<ChangeEmailRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let accepted = crate::email::change(&state, &auth, &client, req).await?;
    Ok((StatusCode::ACCEPTED, Json(accepted)))
}
