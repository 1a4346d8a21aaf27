//! Revoking sessions inside a transaction, and publishing them on the revocation feed.
//!
//! Two instances may revoke the same session at once (a global logout racing a reuse detection).
//! The sessions are marked revoked by one conditional `UPDATE … WHERE revoked_at IS NULL` after
//! locking them in id order; only the rows this transaction actually changed are returned, so
//! each session reaches the feed exactly once — as with SQLite, where writers are serialised.

use keycard_core::events::RevocationReason;
use sqlx::{Postgres, Transaction};

use crate::Result;

/// The advisory lock serialising writers of the revocation feed: ("kc", 1).
const REVOCATION_FEED_LOCK: (i32, i32) = (0x6b63, 1);

/// Which of a user's live sessions to revoke.
pub(super) enum Which<'a> {
    /// Every one but this (if given).
    AllBut(Option<&'a str>),
    /// Only this one.
    Only(&'a str),
}

/// Locks and marks revoked the user's live sessions selected by `which`; returns their ids,
/// sorted. Their tokens and feed entries follow in [`publish`].
pub(super) async fn mark(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    which: Which<'_>,
    reason: RevocationReason,
    now: i64,
) -> Result<Vec<String>> {
    let (only, except) = match which {
        Which::AllBut(except) => (None, except),
        Which::Only(id) => (Some(id), None),
    };
    // FOR UPDATE in id order: concurrent multi-session revocations lock in the same order. A row
    // changed by a transaction we waited for is re-checked against the WHERE clause, so a session
    // revoked meanwhile drops out here instead of being revoked twice.
    let rows: Vec<(String,)> = sqlx::query_as(
        "WITH target AS (
             SELECT s.id FROM sessions s
             WHERE s.user_id = $1 AND ($2::text IS NULL OR s.id = $2) AND ($3::text IS NULL OR s.id <> $3)
               AND s.revoked_at IS NULL AND s.idle_expires_at > $4 AND s.absolute_expires_at > $4
             ORDER BY s.id
             FOR UPDATE
         )
         UPDATE sessions s SET revoked_at = $4, revoked_reason = $5
         FROM target WHERE s.id = target.id
         RETURNING s.id",
    )
    .bind(user_id)
    .bind(only)
    .bind(except)
    .bind(now)
    .bind(reason.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let mut ids: Vec<String> = rows.into_iter().map(|(id,)| id).collect();
    ids.sort();
    Ok(ids)
}

/// Deletes the revoked sessions' refresh tokens and appends them to the revocation feed. Call it
/// last before committing: it takes the feed lock, held until the commit.
pub(super) async fn publish(
    tx: &mut Transaction<'static, Postgres>,
    ids: &[String],
    user_id: &str,
    reason: RevocationReason,
    now: i64,
) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM refresh_tokens WHERE session_id = ANY($1)").bind(ids).execute(&mut **tx).await?;
    // Identity values are handed out at INSERT but become visible at COMMIT, so two concurrent
    // revokers could commit seq 11 before seq 10, and a feed reader that already saw 11 would
    // skip 10 for good. This transaction-scoped lock makes feed writers take turns from their
    // INSERT to their COMMIT (PostgreSQL releases it only once the commit is visible), so seq
    // order is commit order. Readers take no lock. An advisory lock rather than a self-exclusive
    // table lock, which VACUUM and ANALYZE of `revocations` would conflict with and hold up. The
    // two-int form does not collide with sqlx's one-bigint migration lock.
    sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
        .bind(REVOCATION_FEED_LOCK.0)
        .bind(REVOCATION_FEED_LOCK.1)
        .execute(&mut **tx)
        .await?;
    sqlx::query(
        "INSERT INTO revocations (session_id, user_id, revoked_at, reason)
         SELECT id, $2, $3, $4 FROM unnest($1::text[]) WITH ORDINALITY AS t(id, n) ORDER BY n",
    )
    .bind(ids)
    .bind(user_id)
    .bind(now)
    .bind(reason.as_str())
    .execute(&mut **tx)
    .await?;
    Ok(())
}
