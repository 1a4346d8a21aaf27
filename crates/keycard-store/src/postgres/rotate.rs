//! Refresh-token rotation on PostgreSQL: one winner across every instance.
//!
//! The decision is the conditional `UPDATE refresh_tokens SET used_at = now WHERE hash = $1 AND
//! used_at IS NULL RETURNING session_id`. At READ COMMITTED, a second transaction updating the
//! same row waits for the first; when the first commits, PostgreSQL re-evaluates the WHERE clause
//! on the committed row, finds `used_at` set, and updates nothing. So of N concurrent rotations of
//! one token exactly one gets a row back; the others see the token as used — reuse.
//!
//! Before that UPDATE the session row is locked (`SELECT … FOR UPDATE`). That is not the
//! decision (the token's session never changes, so reading it first decides nothing); it keeps
//! the lock order of every write path — session, then tokens — so a rotation racing a logout
//! or a reuse revocation of the same family waits instead of deadlocking, and it makes the
//! reuse-interval retry (which retires the family's other live token) one at a time per family.
//! Nothing is written until the transaction commits; an error or a dropped future rolls it back.

use keycard_core::events::{AuditKind, RevocationReason};
use sqlx::{Postgres, Transaction};

use super::revoke::{self, Which};
use crate::Result;
use crate::model::{AuditEvent, Presenter, RotateOutcome, Rotation, SessionRecord};

/// A session row as selected by [`SESSION_COLUMNS`].
pub(super) type SessionRow =
    (String, String, i64, i64, i64, i64, Option<String>, Option<String>, bool, i16, i64, Option<String>);

/// The columns of a [`SessionRow`], on the table alias `s`.
pub(super) const SESSION_COLUMNS: &str = "s.id, s.user_id, s.created_at, s.last_used_at, s.idle_expires_at, s.absolute_expires_at, s.user_agent, s.ip, \
     s.email_verified, s.amr, s.auth_time, s.dpop_jkt";

/// A row as a record.
pub(super) fn session(row: SessionRow) -> SessionRecord {
    let (
        id,
        user_id,
        created_at,
        last_used_at,
        idle_expires_at,
        absolute_expires_at,
        user_agent,
        ip,
        email_verified,
        amr,
        auth_time,
        dpop_jkt,
    ) = row;
    SessionRecord {
        id,
        user_id,
        created_at,
        last_used_at,
        idle_expires_at,
        absolute_expires_at,
        user_agent,
        ip,
        email_verified,
        amr: keycard_core::amr::Amr::from_bits(amr as u8),
        auth_time,
        dpop_jkt,
    }
}

/// Runs one rotation in `tx`, committing when something changed; see the module docs.
pub(super) async fn rotate(mut tx: Transaction<'static, Postgres>, r: &Rotation) -> Result<RotateOutcome> {
    // Lock the token's family if it is live. Waiting here for a concurrent rotation, PostgreSQL
    // re-checks the liveness conditions on the row that transaction committed. (A concurrent
    // disabling waits for this lock in its turn, then revokes the session it finds still live;
    // a disabled user gets no new session, so no live session belongs to one.)
    let family: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {SESSION_COLUMNS} FROM sessions s
         WHERE s.id = (SELECT t.session_id FROM refresh_tokens t WHERE t.hash = $1)
           AND s.revoked_at IS NULL AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2
         FOR UPDATE OF s"
    )))
    .bind(r.presented.as_bytes())
    .bind(r.now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(family) = family.map(session) else {
        // Unknown token, or its session revoked or expired: nothing changes.
        return Ok(RotateOutcome::Invalid);
    };

    // The one step that decides the winner: only a still-unused token gets a row back.
    let won: Option<(String,)> = sqlx::query_as(
        "UPDATE refresh_tokens SET used_at = $1 WHERE hash = $2 AND used_at IS NULL RETURNING session_id",
    )
    .bind(r.now)
    .bind(r.presented.as_bytes())
    .fetch_optional(&mut *tx)
    .await?;
    if won.is_none() {
        let used: Option<(Option<i64>,)> = sqlx::query_as("SELECT used_at FROM refresh_tokens WHERE hash = $1")
            .bind(r.presented.as_bytes())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((Some(used_at),)) = used else {
            // Gone meanwhile (cannot happen while we hold the session lock; be safe anyway).
            return Ok(RotateOutcome::Invalid);
        };
        if r.now - used_at >= r.reuse_interval {
            let ids = revoke::mark(
                &mut tx,
                &family.user_id,
                Which::Only(&family.id),
                RevocationReason::RefreshTokenReused,
                r.now,
            )
            .await?;
            revoke::publish(&mut tx, &ids, &family.user_id, RevocationReason::RefreshTokenReused, r.now).await?;
            // Where the rotation that spent the token came from: its `refresh` event.
            let spent: Option<(Option<String>, Option<String>)> = sqlx::query_as(
                "SELECT ip, user_agent FROM audit_events
                 WHERE user_id = $1 AND at = $2 AND kind = 'refresh' AND session_id = $3 ORDER BY id LIMIT 1",
            )
            .bind(&family.user_id)
            .bind(used_at)
            .bind(&family.id)
            .fetch_optional(&mut *tx)
            .await?;
            let spent = spent.map(|(ip, user_agent)| Presenter { at: used_at, ip, user_agent });
            let (event, verdict) = r.reuse_event(&family.user_id, &family.id, spent.as_ref());
            append_audit(&mut *tx, &event).await?;
            tx.commit().await?;
            return Ok(RotateOutcome::Reused { session_id: family.id, user_id: family.user_id, verdict });
        }
        // Inside the reuse interval: the client lost our answer. Retire whichever token we handed
        // out in it, so the family keeps exactly one live token.
        sqlx::query("UPDATE refresh_tokens SET used_at = $1 WHERE session_id = $2 AND used_at IS NULL")
            .bind(r.now)
            .bind(&family.id)
            .execute(&mut *tx)
            .await?;
    }

    if !r.dpop_holds(&family) {
        // A DPoP-bound session refreshed without its key's proof: roll back, the token stays live.
        return Ok(RotateOutcome::DpopMismatch { session_id: family.id, user_id: family.user_id });
    }
    if !r.binding_holds(&family) {
        // Another device presents this session's token: stolen, or moved. The session ends.
        let ids =
            revoke::mark(&mut tx, &family.user_id, Which::Only(&family.id), RevocationReason::BindingMismatch, r.now)
                .await?;
        revoke::publish(&mut tx, &ids, &family.user_id, RevocationReason::BindingMismatch, r.now).await?;
        append_audit(&mut *tx, &r.binding_event(&family)).await?;
        tx.commit().await?;
        return Ok(RotateOutcome::BindingMismatch { session_id: family.id, user_id: family.user_id });
    }

    let rotated: Option<SessionRow> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE sessions s SET last_used_at = $3, idle_expires_at = LEAST($2 + $3, s.absolute_expires_at)
         WHERE s.id = $1 AND s.revoked_at IS NULL AND s.idle_expires_at > $3 AND s.absolute_expires_at > $3
         RETURNING {SESSION_COLUMNS}"
    )))
    .bind(&family.id)
    .bind(r.idle_ttl)
    .bind(r.now)
    .fetch_optional(&mut *tx)
    .await?;
    let Some(rotated) = rotated.map(session) else {
        // Cannot happen under the lock; roll back so the presented token stays as it was.
        return Ok(RotateOutcome::Invalid);
    };
    sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)")
        .bind(r.replacement.as_bytes())
        .bind(&family.id)
        .bind(r.now)
        .execute(&mut *tx)
        .await?;
    append_audit(&mut *tx, &r.audit_event(AuditKind::Refresh, &rotated.user_id, &rotated.id)).await?;
    tx.commit().await?;
    Ok(RotateOutcome::Rotated(rotated))
}

/// Appends an audit event, in a rotation's transaction or on its own. An event of a webhook kind
/// queues its deliveries in the same statement (so in the same transaction).
pub(super) async fn append_audit<'c>(db: impl sqlx::PgExecutor<'c>, e: &AuditEvent) -> Result<()> {
    let message = crate::webhook::WebhookMessage::of(e);
    let sql = if message.is_some() {
        super::webhooks::APPEND_AUDIT_AND_QUEUE
    } else {
        "INSERT INTO audit_events (at, kind, user_id, session_id, ip, user_agent, detail) VALUES ($1, $2, $3, $4, $5, $6, $7)"
    };
    let mut query = sqlx::query(sql)
        .bind(e.at)
        .bind(e.kind.as_str())
        .bind(&e.user_id)
        .bind(&e.session_id)
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(&e.detail);
    if let Some(m) = message {
        query = query.bind(m.id).bind(m.event.as_str()).bind(m.payload);
    }
    query.execute(db).await?;
    Ok(())
}
