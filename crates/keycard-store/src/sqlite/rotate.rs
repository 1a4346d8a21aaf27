//! SQLite's refresh-token rotation ([`Store::rotate_refresh`](crate::Store::rotate_refresh)), one
//! job of the writer: the single `UPDATE … WHERE used_at IS NULL RETURNING` decides the winner of
//! a race; a used token inside the reuse interval retires the family's unused token instead; a
//! used token after it revokes the session (`refresh_token_reused`); a binding mismatch revokes
//! it (`binding_mismatch`). Every outcome, with its audit row, commits in one transaction.
//! PostgreSQL's twin is `postgres/rotate.rs`.

use keycard_core::events::{AuditKind, RevocationReason};
use rusqlite::{Connection, OptionalExtension, params};

use super::queries::{INSERT_TOKEN, append_audit, revoke_in, session};
use super::writer::Done;
use crate::Result;
use crate::model::{Presenter, RotateOutcome, Rotation};

/// The one step that decides the winner of a rotation: only a still-unused token gets a row back.
const USE_TOKEN: &str =
    "UPDATE refresh_tokens SET used_at = ?1 WHERE hash = ?2 AND used_at IS NULL RETURNING session_id";
const TOKEN: &str = "SELECT session_id, used_at FROM refresh_tokens WHERE hash = ?1";
const LIVE_SESSION: &str = concat!("SELECT ", cols!(), " FROM sessions s WHERE s.id = ?1 AND ", live!(2));
const RETIRE_UNUSED: &str = "UPDATE refresh_tokens SET used_at = ?1 WHERE session_id = ?2 AND used_at IS NULL";
/// Pushes a live session's idle expiry forward; a disabled user's session does not move (no row).
const TOUCH_SESSION: &str = "UPDATE sessions SET last_used_at = ?3, idle_expires_at = MIN(?2 + ?3, absolute_expires_at)
     WHERE id = ?1 AND revoked_at IS NULL AND idle_expires_at > ?3 AND absolute_expires_at > ?3
     RETURNING id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip,
               email_verified, amr, auth_time, dpop_jkt";

/// Where the rotation that spent a token came from: its `refresh` event (same user, session and
/// second). Only read when a used token comes back.
const SPENDING_ROTATION: &str = "SELECT ip, user_agent FROM audit_events
     WHERE user_id = ?1 AND at = ?2 AND kind = 'refresh' AND session_id = ?3 ORDER BY id LIMIT 1";

/// [`Store::rotate_refresh`], as one job.
pub(super) fn rotate(c: &Connection, r: &Rotation) -> Result<Done<RotateOutcome>> {
    let won: Option<String> =
        c.prepare_cached(USE_TOKEN)?.query_row(params![r.now, r.presented.as_bytes()], |row| row.get(0)).optional()?;
    let session_id = match won {
        Some(sid) => sid,
        None => {
            let used: Option<(String, Option<i64>)> = c
                .prepare_cached(TOKEN)?
                .query_row(params![r.presented.as_bytes()], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let Some((sid, Some(used_at))) = used else {
                return Ok(Done::Undo(RotateOutcome::Invalid));
            };
            let current = c.prepare_cached(LIVE_SESSION)?.query_row(params![sid, r.now], session).optional()?;
            let Some(current) = current else {
                return Ok(Done::Undo(RotateOutcome::Invalid));
            };
            if r.now - used_at >= r.reuse_interval {
                revoke_in(
                    c,
                    std::slice::from_ref(&sid),
                    &current.user_id,
                    RevocationReason::RefreshTokenReused,
                    r.now,
                )?;
                let spent = c
                    .prepare_cached(SPENDING_ROTATION)?
                    .query_row(params![current.user_id, used_at, sid], |row| {
                        Ok(Presenter { at: used_at, ip: row.get(0)?, user_agent: row.get(1)? })
                    })
                    .optional()?;
                let (event, verdict) = r.reuse_event(&current.user_id, &sid, spent.as_ref());
                append_audit(c, &event)?;
                return Ok(Done::Keep(RotateOutcome::Reused { session_id: sid, user_id: current.user_id, verdict }));
            }
            // Inside the reuse interval: the client lost our answer. Retire whichever token we
            // handed out in it, so the family keeps exactly one live token.
            c.prepare_cached(RETIRE_UNUSED)?.execute(params![r.now, sid])?;
            sid
        }
    };
    let rotated =
        c.prepare_cached(TOUCH_SESSION)?.query_row(params![session_id, r.idle_ttl, r.now], session).optional()?;
    let Some(rotated) = rotated else {
        // Revoked or expired session, or a disabled user: undo, the presented token stays as it was.
        return Ok(Done::Undo(RotateOutcome::Invalid));
    };
    if !r.dpop_holds(&rotated) {
        // A DPoP-bound session refreshed without its key's proof: undo, the token stays live.
        return Ok(Done::Undo(RotateOutcome::DpopMismatch { session_id: rotated.id, user_id: rotated.user_id }));
    }
    if !r.binding_holds(&rotated) {
        // Another device presents this session's token: stolen, or moved. The session ends.
        revoke_in(c, std::slice::from_ref(&rotated.id), &rotated.user_id, RevocationReason::BindingMismatch, r.now)?;
        append_audit(c, &r.binding_event(&rotated))?;
        return Ok(Done::Keep(RotateOutcome::BindingMismatch { session_id: rotated.id, user_id: rotated.user_id }));
    }
    c.prepare_cached(INSERT_TOKEN)?.execute(params![r.replacement.as_bytes(), session_id, r.now])?;
    append_audit(c, &r.audit_event(AuditKind::Refresh, &rotated.user_id, &rotated.id))?;
    Ok(Done::Keep(RotateOutcome::Rotated(rotated)))
}
