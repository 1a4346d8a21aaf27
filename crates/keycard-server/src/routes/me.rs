//! `GET /auth/me`: the caller.

use axum::Json;
use keycard_core::wire::UserInfo;

use crate::extract::Authenticated;
use crate::routes::user_info;

/// `GET /auth/me`.
pub async fn me(auth: Authenticated) -> Json<UserInfo> {
    Json(user_info(&auth.user.id, &auth.user.email, auth.user.email_verified_at.is_some(), auth.user.created_at))
}
