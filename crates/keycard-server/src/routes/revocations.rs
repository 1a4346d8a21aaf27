//! `GET /auth/revocations?after=<seq>`: the revocation feed resource servers follow, so they can
//! reject access tokens of revoked sessions long before the tokens expire.
//!
//! Public like JWKS: it holds random session ids and times only, useless without a token.

use axum::Json;
use axum::extract::{Query, State};
use keycard_core::wire::{RevocationFeed, RevokedSession};
use serde::Deserialize;

use crate::error::ApiError;
use crate::state::AppState;

/// Most entries one page returns.
pub const PAGE_LIMIT: i64 = 1000;

/// Query of the feed.
#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    /// Return entries after this position (0 for the beginning).
    #[serde(default)]
    after: i64,
}

/// The feed page after `after`.
pub async fn feed(
    State(state): State<AppState>,
    query: Result<Query<FeedQuery>, axum::extract::rejection::QueryRejection>,
) -> Result<Json<RevocationFeed>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let rows = state.store.revocations_since(query.after, PAGE_LIMIT).await?;
    let lifetime = state.config.access_ttl + state.config.leeway;
    let next = rows.last().map_or(query.after, |r| r.seq);
    let revocations = rows
        .into_iter()
        .map(|r| RevokedSession {
            seq: r.seq,
            sid: r.session_id,
            revoked_at: r.revoked_at,
            expires_at: r.revoked_at + lifetime,
        })
        .collect();
    Ok(Json(RevocationFeed { revocations, next }))
}
