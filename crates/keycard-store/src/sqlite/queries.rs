//! The [`Store`] trait for [`SqliteStore`]: each method is one statement or one transaction.

use async_trait::async_trait;
use keycard_core::refresh::TokenHash;
use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::model::*;
use crate::{Result, Store, StoreError};

type SessionRow = (String, String, i64, i64, i64, i64, Option<String>, Option<String>);
const SESSION_COLUMNS: &str =
    "s.id, s.user_id, s.created_at, s.last_used_at, s.idle_expires_at, s.absolute_expires_at, s.user_agent, s.ip";

fn session(row: SessionRow) -> SessionRecord {
    let (id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip) = row;
    SessionRecord { id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip }
}

type UserRow = (String, String, String, i64);

fn user((id, email, password_hash, created_at): UserRow) -> UserRecord {
    UserRecord { id, email, password_hash, created_at }
}

/// A session is live when not revoked and before both its expiries.
const LIVE: &str = "s.revoked_at IS NULL AND s.idle_expires_at > ?now AND s.absolute_expires_at > ?now";

/// Expands `{cols}` and `{live}` in `sql`; `?now` becomes the positional parameter `?{now}`.
fn live(sql: &str, now: u8) -> sqlx::AssertSqlSafe<String> {
    let sql = sql.replace("{cols}", SESSION_COLUMNS).replace("{live}", LIVE).replace("?now", &format!("?{now}"));
    sqlx::AssertSqlSafe(sql)
}

/// Revokes the given live sessions inside `tx` and records them in the revocation feed.
async fn revoke_in(
    tx: &mut Transaction<'static, Sqlite>,
    ids: &[String],
    user_id: &str,
    reason: &str,
    now: i64,
) -> Result<()> {
    for id in ids {
        sqlx::query("UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2 WHERE id = ?3 AND revoked_at IS NULL")
            .bind(now)
            .bind(reason)
            .bind(id)
            .execute(&mut **tx)
            .await?;
        sqlx::query("DELETE FROM refresh_tokens WHERE session_id = ?1").bind(id).execute(&mut **tx).await?;
        sqlx::query("INSERT INTO revocations (session_id, user_id, revoked_at, reason) VALUES (?1, ?2, ?3, ?4)")
            .bind(id)
            .bind(user_id)
            .bind(now)
            .bind(reason)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

async fn live_session_ids(
    tx: &mut Transaction<'static, Sqlite>,
    user_id: &str,
    except: Option<&str>,
    now: i64,
) -> Result<Vec<String>> {
    let rows: Vec<(String,)> = sqlx::query_as(live(
        "SELECT s.id FROM sessions s WHERE s.user_id = ?1 AND (?2 IS NULL OR s.id <> ?2) AND {live}",
        3,
    ))
    .bind(user_id)
    .bind(except)
    .bind(now)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_user(&self, u: &NewUser) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .execute(&self.writer)
        .await;
        match result {
            Ok(_) => Ok(()),
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => Err(StoreError::EmailTaken),
            Err(e) => Err(e.into()),
        }
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let row: Option<UserRow> =
            sqlx::query_as("SELECT id, email, password_hash, created_at FROM users WHERE email = ?1")
                .bind(email)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(user))
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        let row: Option<UserRow> =
            sqlx::query_as("SELECT id, email, password_hash, created_at FROM users WHERE id = ?1")
                .bind(id)
                .fetch_optional(&self.reader)
                .await?;
        Ok(row.map(user))
    }

    async fn create_session(&self, s: &NewSession, first_token: &TokenHash) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip)
             VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(s.created_at)
        .bind(s.idle_expires_at)
        .bind(s.absolute_expires_at)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)")
            .bind(first_token.as_bytes())
            .bind(&s.id)
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_refresh(&self, r: &Rotation) -> Result<RotateOutcome> {
        let mut tx = self.write_tx().await?;
        // The one step that decides the winner: only a still-unused token gets a row back.
        let won: Option<(String,)> = sqlx::query_as(
            "UPDATE refresh_tokens SET used_at = ?1 WHERE hash = ?2 AND used_at IS NULL RETURNING session_id",
        )
        .bind(r.now)
        .bind(r.presented.as_bytes())
        .fetch_optional(&mut *tx)
        .await?;
        let session_id = match won {
            Some((sid,)) => sid,
            None => {
                let used: Option<(String, Option<i64>)> =
                    sqlx::query_as("SELECT session_id, used_at FROM refresh_tokens WHERE hash = ?1")
                        .bind(r.presented.as_bytes())
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((sid, Some(used_at))) = used else {
                    return Ok(RotateOutcome::Invalid);
                };
                let current: Option<SessionRow> =
                    sqlx::query_as(live("SELECT {cols} FROM sessions s WHERE s.id = ?1 AND {live}", 2))
                        .bind(&sid)
                        .bind(r.now)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(current) = current.map(session) else {
                    return Ok(RotateOutcome::Invalid);
                };
                if r.now - used_at >= r.reuse_interval {
                    revoke_in(&mut tx, std::slice::from_ref(&sid), &current.user_id, "refresh_token_reused", r.now)
                        .await?;
                    tx.commit().await?;
                    return Ok(RotateOutcome::Reused { session_id: sid, user_id: current.user_id });
                }
                // Inside the reuse interval: the client lost our answer. Retire whichever token we
                // handed out in it, so the family keeps exactly one live token.
                sqlx::query("UPDATE refresh_tokens SET used_at = ?1 WHERE session_id = ?2 AND used_at IS NULL")
                    .bind(r.now)
                    .bind(&sid)
                    .execute(&mut *tx)
                    .await?;
                sid
            }
        };
        let rotated: Option<SessionRow> = sqlx::query_as(
            "UPDATE sessions SET last_used_at = ?3, idle_expires_at = MIN(?2 + ?3, absolute_expires_at)
             WHERE id = ?1 AND revoked_at IS NULL AND idle_expires_at > ?3 AND absolute_expires_at > ?3
             RETURNING id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip",
        )
        .bind(&session_id)
        .bind(r.idle_ttl)
        .bind(r.now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(rotated) = rotated.map(session) else {
            // Revoked or expired session: roll back, the presented token stays as it was.
            return Ok(RotateOutcome::Invalid);
        };
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)")
            .bind(r.replacement.as_bytes())
            .bind(&session_id)
            .bind(r.now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(RotateOutcome::Rotated(rotated))
    }

    async fn session_by_refresh(&self, token: &TokenHash, now: i64) -> Result<Option<SessionRecord>> {
        let row: Option<SessionRow> = sqlx::query_as(live(
            "SELECT {cols} FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.hash = ?1 AND t.used_at IS NULL AND {live}",
            2,
        ))
        .bind(token.as_bytes())
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(session))
    }

    async fn session_user(&self, session_id: &str, user_id: &str, now: i64) -> Result<Option<UserRecord>> {
        // Idle expiry does not end an access token early: only revocation and the absolute limit do.
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT u.id, u.email, u.password_hash, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL AND s.absolute_expires_at > ?3",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&self.reader)
        .await?;
        Ok(row.map(user))
    }

    async fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionRecord>> {
        let rows: Vec<SessionRow> = sqlx::query_as(live(
            "SELECT {cols} FROM sessions s WHERE s.user_id = ?1 AND {live} ORDER BY s.created_at DESC, s.id",
            2,
        ))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows.into_iter().map(session).collect())
    }

    async fn revoke_session(&self, user_id: &str, session_id: &str, reason: &str, now: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let found: Option<(String,)> =
            sqlx::query_as(live("SELECT s.id FROM sessions s WHERE s.id = ?1 AND s.user_id = ?2 AND {live}", 3))
                .bind(session_id)
                .bind(user_id)
                .bind(now)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((id,)) = found else { return Ok(false) };
        revoke_in(&mut tx, &[id], user_id, reason, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
        reason: &str,
        now: i64,
    ) -> Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let ids = live_session_ids(&mut tx, user_id, except, now).await?;
        revoke_in(&mut tx, &ids, user_id, reason, now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep: Option<&str>,
        now: i64,
    ) -> Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        sqlx::query("UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE id = ?3")
            .bind(password_hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let ids = live_session_ids(&mut tx, user_id, keep, now).await?;
        revoke_in(&mut tx, &ids, user_id, "password_change", now).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn delete_user(&self, user_id: &str, now: i64) -> Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let ids = live_session_ids(&mut tx, user_id, None, now).await?;
        revoke_in(&mut tx, &ids, user_id, "account_deleted", now).await?;
        // Sessions and their token hashes go with the user (ON DELETE CASCADE); the revocation
        // feed keeps the session ids so resource servers still reject their access tokens.
        sqlx::query("DELETE FROM users WHERE id = ?1").bind(user_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn revocations_since(&self, after: i64, limit: i64) -> Result<Vec<Revocation>> {
        let rows: Vec<(i64, String, String, i64, String)> = sqlx::query_as(
            "SELECT seq, session_id, user_id, revoked_at, reason FROM revocations WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, session_id, user_id, revoked_at, reason)| Revocation {
                seq,
                session_id,
                user_id,
                revoked_at,
                reason,
            })
            .collect())
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        let rows: Vec<(String, String, Vec<u8>, i64, Option<i64>)> = sqlx::query_as(
            "SELECT kid, alg, private_key, created_at, retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.writer)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(kid, alg, private_key, created_at, retired_at)| StoredKey {
                kid,
                alg,
                private_key,
                created_at,
                retired_at,
            })
            .collect())
    }

    async fn insert_signing_key(&self, k: &StoredKey) -> Result<bool> {
        let done = sqlx::query(
            "INSERT INTO signing_keys (kid, alg, private_key, created_at, retired_at) VALUES (?1, ?2, ?3, ?4, ?5)
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_key)
        .bind(k.created_at)
        .bind(k.retired_at)
        .execute(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE signing_keys SET retired_at = ?1 WHERE kid = ?2 AND retired_at IS NULL")
            .bind(now)
            .bind(kid)
            .execute(&self.writer)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        sqlx::query(
            "INSERT INTO audit_events (at, kind, user_id, session_id, ip, user_agent, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(e.at)
        .bind(&e.kind)
        .bind(&e.user_id)
        .bind(&e.session_id)
        .bind(&e.ip)
        .bind(&e.user_agent)
        .bind(&e.detail)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    async fn prune_audit(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < ?1").bind(before).execute(&self.writer).await?;
        Ok(done.rows_affected())
    }

    async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        type Row = (i64, i64, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, kind, user_id, session_id, ip, user_agent, detail FROM audit_events
             WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR at >= ?3)
             ORDER BY id DESC LIMIT ?4",
        )
        .bind(&f.user_id)
        .bind(&f.kind)
        .bind(f.since)
        .bind(if f.limit > 0 { f.limit } else { 100 })
        .fetch_all(&self.reader)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, at, kind, user_id, session_id, ip, user_agent, detail)| AuditRecord {
                id,
                event: AuditEvent { at, kind, user_id, session_id, ip, user_agent, detail },
            })
            .collect())
    }
}
