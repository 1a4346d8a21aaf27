//! The [`Store`] trait for [`PgStore`]: each method is one statement or one transaction, with
//! the same results as the SQLite backend (the conformance suite in `tests/` runs on both).

use async_trait::async_trait;
use keycard_core::events::{AuditKind, RevocationReason};
use keycard_core::refresh::TokenHash;
use sqlx::AssertSqlSafe;

use super::PgStore;
use super::revoke::{self, Which};
use super::rotate::{self, SESSION_COLUMNS, SessionRow, session};
use crate::mfa::*;
use crate::model::*;
use crate::webhook::*;
use crate::{Result, Store, StoreError};

type UserRow = (String, String, String, i64, Option<i64>, Option<i64>);

fn user((id, email, password_hash, created_at, disabled_at, email_verified_at): UserRow) -> UserRecord {
    UserRecord { id, email, password_hash, created_at, disabled_at, email_verified_at }
}

/// A spent email token: its user, address, old address and change id.
type SpentLink = (String, String, Option<String>, Option<String>);

/// Stores the hash of a mailed email token (`kind`: `verify`, `change` or `cancel`).
#[allow(clippy::too_many_arguments)]
async fn insert_link(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    kind: &str,
    user_id: &str,
    email: &str,
    old_email: Option<&str>,
    change_id: Option<&str>,
    token: &TokenHash,
    created_at: i64,
    expires_at: i64,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO email_tokens (token_hash, kind, user_id, email, old_email, change_id, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(token.as_bytes())
    .bind(kind)
    .bind(user_id)
    .bind(email)
    .bind(old_email)
    .bind(change_id)
    .bind(created_at)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Spends an email token of `kind`, locking its user's row first (the lock order of every
/// write to a user): only an unused, unexpired token gets its row back. With the user's current
/// address, if the user is not disabled.
async fn spend_link(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    kind: &str,
    used: &EmailTokenUse,
) -> Result<Option<(SpentLink, Option<String>)>> {
    let owner: Option<(String,)> =
        sqlx::query_as("SELECT user_id FROM email_tokens WHERE token_hash = $1 AND kind = $2")
            .bind(used.token.as_bytes())
            .bind(kind)
            .fetch_optional(&mut **tx)
            .await?;
    let Some((user_id,)) = owner else { return Ok(None) };
    let current: Option<(String, Option<i64>)> =
        sqlx::query_as("SELECT email, disabled_at FROM users WHERE id = $1 FOR UPDATE")
            .bind(&user_id)
            .fetch_optional(&mut **tx)
            .await?;
    // Of concurrent spends, the ones that waited for the lock re-check `used_at IS NULL`.
    let spent: Option<SpentLink> = sqlx::query_as(
        "UPDATE email_tokens SET used_at = $2
         WHERE token_hash = $1 AND kind = $3 AND used_at IS NULL AND expires_at > $2
         RETURNING user_id, email, old_email, change_id",
    )
    .bind(used.token.as_bytes())
    .bind(used.now)
    .bind(kind)
    .fetch_optional(&mut **tx)
    .await?;
    let current = current.and_then(|(email, disabled_at)| disabled_at.is_none().then_some(email));
    Ok(spent.map(|spent| (spent, current)))
}

/// Whether an account other than `user_id` has `email`.
async fn email_taken(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, email: &str, user_id: &str) -> Result<bool> {
    let found: Option<(i32,)> = sqlx::query_as("SELECT 1 FROM users WHERE email = $1 AND id <> $2")
        .bind(email)
        .bind(user_id)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(found.is_some())
}

/// Sets the user's address (verified at `now`) and marks their sessions verified; a unique
/// violation (another account took the address in a race) is `EmailTaken`.
async fn set_email(
    tx: &mut sqlx::Transaction<'static, sqlx::Postgres>,
    user_id: &str,
    email: &str,
    now: i64,
) -> Result<()> {
    let set = sqlx::query("UPDATE users SET email = $2, email_verified_at = $3, updated_at = $3 WHERE id = $1")
        .bind(user_id)
        .bind(email)
        .bind(now)
        .execute(&mut **tx)
        .await;
    match set {
        Ok(_) => {}
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Err(StoreError::EmailTaken),
        Err(e) => return Err(e.into()),
    }
    sessions_verified(tx, user_id).await
}

/// Marks the user's live sessions verified (their next access tokens say so).
async fn sessions_verified(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, user_id: &str) -> Result<()> {
    sqlx::query("UPDATE sessions SET email_verified = TRUE WHERE user_id = $1 AND revoked_at IS NULL")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Links mailed to an address the account no longer has stop working (verification links and
/// unspent password-reset links).
async fn drop_old_address_links(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, user_id: &str) -> Result<()> {
    sqlx::query("DELETE FROM email_tokens WHERE user_id = $1 AND kind = 'verify'")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    sqlx::query("DELETE FROM password_resets WHERE user_id = $1 AND used_at IS NULL")
        .bind(user_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Deletes the user's change still waiting for confirmation, with its cancel token (superseded).
async fn drop_pending_change(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, user_id: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM email_tokens WHERE user_id = $1 AND change_id IN
         (SELECT change_id FROM email_tokens WHERE user_id = $1 AND kind = 'change' AND used_at IS NULL)",
    )
    .bind(user_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// The limit of an operator's listing: 0 or less means 100.
fn page(limit: i64) -> i64 {
    if limit > 0 { limit } else { 100 }
}

#[async_trait]
impl Store for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_user(&self, u: &NewUser) -> Result<()> {
        let mut tx = self.write_tx().await?;
        let result = sqlx::query(
            "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $4, $4)",
        )
        .bind(&u.id)
        .bind(&u.email)
        .bind(&u.password_hash)
        .bind(u.created_at)
        .execute(&mut *tx)
        .await;
        match result {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => return Err(StoreError::EmailTaken),
            Err(e) => return Err(e.into()),
        }
        if let Some(v) = &u.verification {
            insert_link(&mut tx, "verify", &u.id, &v.email, None, None, &v.token, u.created_at, v.expires_at).await?;
            insert_mail(&mut tx, &v.mail).await?;
            rotate::append_audit(&mut *tx, &AuditEvent { user_id: Some(u.id.clone()), ..v.audit.clone() }).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, password_hash, created_at, disabled_at, email_verified_at FROM users WHERE email = $1",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(user))
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT id, email, password_hash, created_at, disabled_at, email_verified_at FROM users WHERE id = $1",
        )
        .bind(id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(user))
    }

    async fn create_session(&self, s: &NewSession, first_token: &TokenHash, audit: &AuditEvent) -> Result<()> {
        let mut tx = self.write_tx().await?;
        // A disabled user gets no new session. FOR SHARE waits for a disabling in progress (it
        // locks the user row FOR UPDATE), so a login racing it either sees `disabled_at` or
        // commits first and has its session revoked by it.
        let state: Option<(Option<i64>, bool)> =
            sqlx::query_as("SELECT disabled_at, email_verified_at IS NOT NULL FROM users WHERE id = $1 FOR SHARE")
                .bind(&s.user_id)
                .fetch_optional(&mut *tx)
                .await?;
        if matches!(state, Some((Some(_), _))) {
            return Err(StoreError::UserDisabled);
        }
        let verified = state.is_some_and(|(_, verified)| verified);
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip,
                                   email_verified, amr, auth_time, dpop_jkt)
             VALUES ($1, $2, $3, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(&s.id)
        .bind(&s.user_id)
        .bind(s.created_at)
        .bind(s.idle_expires_at)
        .bind(s.absolute_expires_at)
        .bind(&s.user_agent)
        .bind(&s.ip)
        .bind(verified)
        .bind(i16::from(s.amr.bits()))
        .bind(s.auth_time)
        .bind(&s.dpop_jkt)
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, $3)")
            .bind(first_token.as_bytes())
            .bind(&s.id)
            .bind(s.created_at)
            .execute(&mut *tx)
            .await?;
        rotate::append_audit(&mut *tx, &audit.completed(&s.user_id, 0)).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn rotate_refresh(&self, r: &Rotation) -> Result<RotateOutcome> {
        rotate::rotate(self.write_tx().await?, r).await
    }

    async fn session_by_refresh(&self, token: &TokenHash, now: i64) -> Result<Option<SessionRecord>> {
        let row: Option<SessionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id
             WHERE t.hash = $1 AND t.used_at IS NULL
               AND s.revoked_at IS NULL AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2"
        )))
        .bind(token.as_bytes())
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(session))
    }

    async fn session_user(&self, session_id: &str, user_id: &str, now: i64) -> Result<Option<UserRecord>> {
        // Idle expiry does not end an access token early: only revocation, the absolute limit and
        // disabling the user do.
        let row: Option<UserRow> = sqlx::query_as(
            "SELECT u.id, u.email, u.password_hash, u.created_at, u.disabled_at, u.email_verified_at
             FROM sessions s JOIN users u ON u.id = s.user_id
             WHERE s.id = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.absolute_expires_at > $3
               AND u.disabled_at IS NULL",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(user))
    }

    async fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionRecord>> {
        let rows: Vec<SessionRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {SESSION_COLUMNS} FROM sessions s
             WHERE s.user_id = $1 AND s.revoked_at IS NULL AND s.idle_expires_at > $2 AND s.absolute_expires_at > $2
             ORDER BY s.created_at DESC, s.id"
        )))
        .bind(user_id)
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(session).collect())
    }

    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        reason: RevocationReason,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let ids = revoke::mark(&mut tx, user_id, Which::Only(session_id), reason, now).await?;
        if ids.is_empty() {
            return Ok(false);
        }
        revoke::publish(&mut tx, &ids, user_id, reason, now).await?;
        rotate::append_audit(&mut *tx, &audit.completed(user_id, ids.len())).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
        reason: RevocationReason,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        let ids = revoke::mark(&mut tx, user_id, Which::AllBut(except), reason, now).await?;
        revoke::publish(&mut tx, &ids, user_id, reason, now).await?;
        rotate::append_audit(&mut *tx, &audit.completed(user_id, ids.len())).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep: Option<&str>,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        // Updating the user row first keeps the lock order: user, sessions, tokens, feed.
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(password_hash)
            .bind(now)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        let ids = revoke::mark(&mut tx, user_id, Which::AllBut(keep), RevocationReason::PasswordChange, now).await?;
        revoke::publish(&mut tx, &ids, user_id, RevocationReason::PasswordChange, now).await?;
        rotate::append_audit(&mut *tx, &audit.completed(user_id, ids.len())).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn delete_user(&self, user_id: &str, now: i64, audit: &AuditEvent) -> Result<Vec<String>> {
        let mut tx = self.write_tx().await?;
        // Lock the user first: a login creating a session for them (its foreign-key check takes a
        // KEY SHARE lock on this row) either committed before — and its session is revoked and
        // published below — or waits and then fails because the user is gone. Without this, a
        // session committed between our revocation and our DELETE would vanish in the cascade
        // without ever reaching the revocation feed.
        sqlx::query("SELECT id FROM users WHERE id = $1 FOR UPDATE").bind(user_id).execute(&mut *tx).await?;
        let ids = revoke::mark(&mut tx, user_id, Which::AllBut(None), RevocationReason::AccountDeleted, now).await?;
        // Sessions and their token hashes go with the user (ON DELETE CASCADE); the revocation
        // feed keeps the session ids so resource servers still reject their access tokens.
        sqlx::query("DELETE FROM users WHERE id = $1").bind(user_id).execute(&mut *tx).await?;
        revoke::publish(&mut tx, &ids, user_id, RevocationReason::AccountDeleted, now).await?;
        rotate::append_audit(&mut *tx, &audit.completed(user_id, ids.len())).await?;
        tx.commit().await?;
        Ok(ids)
    }

    async fn revocations_since(&self, after: i64, limit: i64) -> Result<Vec<Revocation>> {
        let rows: Vec<(i64, String, String, i64, String)> = sqlx::query_as(
            "SELECT seq, session_id, user_id, revoked_at, reason FROM revocations WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(after)
        // SQLite reads a negative LIMIT as "no limit"; PostgreSQL rejects it but reads NULL so.
        .bind((limit >= 0).then_some(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(seq, session_id, user_id, revoked_at, reason)| Revocation {
                seq,
                session_id,
                user_id,
                revoked_at,
                reason: RevocationReason::parse_lenient(&reason),
            })
            .collect())
    }

    async fn list_users(&self, f: &UserFilter, now: i64) -> Result<Vec<UserSummary>> {
        // By email from after the cursor (emails are never empty, so "after ''" is every user),
        // in the order of the unique index on email; live sessions counted on `sessions_by_user`.
        let rows: Vec<(String, String, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT u.id, u.email, u.created_at, u.disabled_at,
                    (SELECT count(*) FROM sessions s WHERE s.user_id = u.id
                       AND s.revoked_at IS NULL AND s.idle_expires_at > $1 AND s.absolute_expires_at > $1)
             FROM users u WHERE u.email > $3 AND ($2::text IS NULL OR strpos(u.email, $2) > 0)
             ORDER BY u.email LIMIT $4",
        )
        .bind(now)
        .bind(&f.email_contains)
        .bind(f.after_email.as_deref().unwrap_or(""))
        .bind(page(f.limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, email, created_at, disabled_at, live_sessions)| UserSummary {
                id,
                email,
                created_at,
                disabled_at,
                live_sessions,
            })
            .collect())
    }

    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Option<Vec<String>>> {
        let mut tx = self.write_tx().await?;
        // Lock the user first (lock order: user, sessions, tokens, feed), as `delete_user` does: a
        // login creating a session for them (its foreign-key check takes a KEY SHARE lock on this
        // row, which a plain UPDATE of other columns would not wait for) either committed before —
        // and its session is revoked and published below — or waits until the user is disabled.
        let found: Option<(Option<i64>,)> = sqlx::query_as("SELECT disabled_at FROM users WHERE id = $1 FOR UPDATE")
            .bind(user_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((was,)) = found else { return Ok(None) };
        if !disabled && was.is_none() {
            return Ok(Some(Vec::new())); // enabled already: nothing changes
        }
        // Disabling again keeps the first time.
        let set = if disabled {
            "UPDATE users SET disabled_at = COALESCE(disabled_at, $2), updated_at = $2 WHERE id = $1"
        } else {
            "UPDATE users SET disabled_at = NULL, updated_at = $2 WHERE id = $1"
        };
        sqlx::query(set).bind(user_id).bind(now).execute(&mut *tx).await?;
        // Disabling ends every live session; enabling, those created while disabled (logins that
        // should have been refused): either way, none from before comes back.
        let ids = revoke::mark(&mut tx, user_id, Which::AllBut(None), RevocationReason::UserDisabled, now).await?;
        revoke::publish(&mut tx, &ids, user_id, RevocationReason::UserDisabled, now).await?;
        rotate::append_audit(&mut *tx, &audit.completed(user_id, ids.len())).await?;
        tx.commit().await?;
        Ok(Some(ids))
    }

    async fn list_all_sessions(&self, user_id: Option<&str>, now: i64, limit: i64) -> Result<Vec<SessionRecord>> {
        // Two statements rather than `$1 IS NULL OR s.user_id = $1`, so each has its index:
        // `sessions_by_user`, or `sessions_by_created` read backwards.
        const LIVE: &str = "s.revoked_at IS NULL AND s.idle_expires_at > $1 AND s.absolute_expires_at > $1";
        let rows: Vec<SessionRow> = match user_id {
            Some(user_id) => {
                sqlx::query_as(AssertSqlSafe(format!(
                    "SELECT {SESSION_COLUMNS} FROM sessions s WHERE s.user_id = $3 AND {LIVE}
                     ORDER BY s.created_at DESC, s.id DESC LIMIT $2"
                )))
                .bind(now)
                .bind(page(limit))
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?
            }
            None => sqlx::query_as(AssertSqlSafe(format!(
                "SELECT {SESSION_COLUMNS} FROM sessions s WHERE {LIVE} ORDER BY s.created_at DESC, s.id DESC LIMIT $2"
            )))
            .bind(now)
            .bind(page(limit))
            .fetch_all(&self.pool)
            .await?,
        };
        Ok(rows.into_iter().map(session).collect())
    }

    async fn revoke_session_by_id(
        &self,
        session_id: &str,
        reason: RevocationReason,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Option<String>> {
        let mut tx = self.write_tx().await?;
        // A session's owner never changes; `mark` locks the session and re-checks it is live.
        let owner: Option<(String,)> = sqlx::query_as("SELECT user_id FROM sessions WHERE id = $1")
            .bind(session_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((user_id,)) = owner else { return Ok(None) };
        let ids = revoke::mark(&mut tx, &user_id, Which::Only(session_id), reason, now).await?;
        if ids.is_empty() {
            return Ok(None);
        }
        revoke::publish(&mut tx, &ids, &user_id, reason, now).await?;
        rotate::append_audit(&mut *tx, &audit.completed(&user_id, ids.len())).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        let rows: Vec<(String, String, Vec<u8>, i64, Option<i64>)> = sqlx::query_as(
            "SELECT kid, alg, private_key, created_at, retired_at FROM signing_keys ORDER BY created_at, kid",
        )
        .fetch_all(&self.pool)
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
            "INSERT INTO signing_keys (kid, alg, private_key, created_at, retired_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(&k.kid)
        .bind(&k.alg)
        .bind(&k.private_key)
        .bind(k.created_at)
        .bind(k.retired_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE signing_keys SET retired_at = $1 WHERE kid = $2 AND retired_at IS NULL")
            .bind(now)
            .bind(kid)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn wrapped_master_key(&self) -> Result<Option<WrappedMasterKey>> {
        let row: Option<(String, String, i64)> =
            sqlx::query_as("SELECT key_name, ciphertext, updated_at FROM wrapped_master_key WHERE id = 1")
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(|(key_name, ciphertext, updated_at)| WrappedMasterKey { key_name, ciphertext, updated_at }))
    }

    async fn replace_wrapped_master_key(&self, expected: Option<&str>, new: &WrappedMasterKey) -> Result<bool> {
        let done = match expected {
            None => {
                sqlx::query(
                    "INSERT INTO wrapped_master_key (id, key_name, ciphertext, updated_at) VALUES (1, $1, $2, $3)
                     ON CONFLICT (id) DO NOTHING",
                )
                .bind(&new.key_name)
                .bind(&new.ciphertext)
                .bind(new.updated_at)
                .execute(&self.pool)
                .await?
            }
            Some(old) => {
                sqlx::query(
                    "UPDATE wrapped_master_key SET key_name = $1, ciphertext = $2, updated_at = $3
                     WHERE id = 1 AND ciphertext = $4",
                )
                .bind(&new.key_name)
                .bind(&new.ciphertext)
                .bind(new.updated_at)
                .bind(old)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(done.rows_affected() == 1)
    }

    async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        rotate::append_audit(&self.pool, e).await
    }

    async fn prune_audit(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM audit_events WHERE at < $1").bind(before).execute(&self.pool).await?;
        Ok(done.rows_affected())
    }

    async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        type Row = (i64, i64, String, Option<String>, Option<String>, Option<String>, Option<String>, Option<String>);
        let rows: Vec<Row> = sqlx::query_as(
            "SELECT id, at, kind, user_id, session_id, ip, user_agent, detail FROM audit_events
             WHERE ($1::text IS NULL OR user_id = $1) AND ($2::text IS NULL OR kind = $2) AND ($3::bigint IS NULL OR at >= $3)
             ORDER BY id DESC LIMIT $4",
        )
        .bind(&f.user_id)
        .bind(f.kind.map(AuditKind::as_str))
        .bind(f.since)
        .bind(if f.limit > 0 { f.limit } else { 100 })
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, at, kind, user_id, session_id, ip, user_agent, detail)| AuditRecord {
                id,
                event: AuditEvent {
                    at,
                    kind: AuditKind::parse_lenient(&kind),
                    user_id,
                    session_id,
                    ip,
                    user_agent,
                    detail,
                },
            })
            .collect())
    }

    async fn create_client(&self, k: &ClientRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO oauth_clients (id, name, secret_hash, jwks, scopes, grant_id, created_at, secret_rotated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&k.id)
        .bind(&k.name)
        .bind(&k.secret_hash)
        .bind(&k.jwks)
        .bind(&k.scopes)
        .bind(&k.grant_id)
        .bind(k.created_at)
        .bind(k.secret_rotated_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn client(&self, id: &str) -> Result<Option<ClientRecord>> {
        let row: Option<ClientRow> =
            sqlx::query_as(AssertSqlSafe(format!("SELECT {CLIENT_COLS} FROM oauth_clients WHERE id = $1")))
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        Ok(row.map(client))
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>> {
        let rows: Vec<ClientRow> =
            sqlx::query_as(AssertSqlSafe(format!("SELECT {CLIENT_COLS} FROM oauth_clients ORDER BY id")))
                .fetch_all(&self.pool)
                .await?;
        Ok(rows.into_iter().map(client).collect())
    }

    async fn set_client_secret(&self, id: &str, secret_hash: &str, now: i64) -> Result<bool> {
        let done = sqlx::query("UPDATE oauth_clients SET secret_hash = $2, secret_rotated_at = $3 WHERE id = $1")
            .bind(id)
            .bind(secret_hash)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn remove_client(&self, id: &str, now: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let grant: Option<(String,)> = sqlx::query_as("DELETE FROM oauth_clients WHERE id = $1 RETURNING grant_id")
            .bind(id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((grant,)) = grant else { return Ok(false) };
        sqlx::query("DELETE FROM oauth_assertions WHERE client_id = $1").bind(id).execute(&mut *tx).await?;
        revoke::publish(&mut tx, &[grant], id, RevocationReason::ClientRemoved, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn revoke_client_grant(
        &self,
        id: &str,
        grant_id: &str,
        new_grant_id: &str,
        reason: RevocationReason,
        now: i64,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done = sqlx::query("UPDATE oauth_clients SET grant_id = $3 WHERE id = $1 AND grant_id = $2")
            .bind(id)
            .bind(grant_id)
            .bind(new_grant_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Ok(false);
        }
        revoke::publish(&mut tx, &[grant_id.to_owned()], id, reason, now).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn spend_dpop_proof(&self, jkt: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool> {
        // One statement each, no transaction: the insert alone decides (the primary key).
        sqlx::query("DELETE FROM dpop_proofs WHERE expires_at < $1").bind(now).execute(&self.pool).await?;
        let done =
            sqlx::query("INSERT INTO dpop_proofs (jkt, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(jkt)
                .bind(jti)
                .bind(expires_at)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn spend_assertion(&self, client_id: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM oauth_assertions WHERE client_id = $1 AND expires_at <= $2")
            .bind(client_id)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query(
            "INSERT INTO oauth_assertions (client_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        )
        .bind(client_id)
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn enqueue_mail(&self, mail: &NewMail) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_mail(&mut tx, mail).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn request_password_reset(&self, r: &LinkRequest) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        // The user row first (the lock order of `set_password`): concurrent requests for one
        // user take turns, so the user is left with exactly one token.
        let found: Option<(String, Option<i64>)> =
            sqlx::query_as("SELECT id, disabled_at FROM users WHERE email = $1 FOR UPDATE")
                .bind(&r.email)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((user_id, disabled_at)) = found else { return Ok(false) };
        if disabled_at.is_some() {
            return Ok(true);
        }
        sqlx::query("DELETE FROM password_resets WHERE user_id = $1").bind(&user_id).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
        )
        .bind(r.token.as_bytes())
        .bind(&user_id)
        .bind(r.mail.created_at)
        .bind(r.expires_at)
        .execute(&mut *tx)
        .await?;
        insert_mail(&mut tx, &r.mail).await?;
        rotate::append_audit(&mut *tx, &AuditEvent { user_id: Some(user_id), ..r.audit.clone() }).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn reset_password(&self, r: &PasswordReset) -> Result<Option<PasswordResetDone>> {
        let mut tx = self.write_tx().await?;
        let owner: Option<(String,)> = sqlx::query_as("SELECT user_id FROM password_resets WHERE token_hash = $1")
            .bind(r.token.as_bytes())
            .fetch_optional(&mut *tx)
            .await?;
        let Some((user_id,)) = owner else { return Ok(None) };
        // The user row before the token row, as `request_password_reset` locks them.
        let email: Option<(String,)> = sqlx::query_as("SELECT email FROM users WHERE id = $1 FOR UPDATE")
            .bind(&user_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some((email,)) = email else { return Ok(None) };
        // Of concurrent spends, the ones that waited re-check `used_at IS NULL` and find none.
        let spent = sqlx::query(
            "UPDATE password_resets SET used_at = $2
             WHERE token_hash = $1 AND user_id = $3 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(r.token.as_bytes())
        .bind(r.now)
        .bind(&user_id)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() != 1 {
            return Ok(None);
        }
        sqlx::query("UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3")
            .bind(&r.password_hash)
            .bind(r.now)
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        let reason = RevocationReason::PasswordReset;
        let ids = revoke::mark(&mut tx, &user_id, Which::AllBut(None), reason, r.now).await?;
        insert_mail(&mut tx, &NewMail { recipient: email, ..r.notice.clone() }).await?;
        rotate::append_audit(&mut *tx, &AuditEvent { user_id: Some(user_id.clone()), ..r.audit.clone() }).await?;
        revoke::publish(&mut tx, &ids, &user_id, reason, r.now).await?;
        tx.commit().await?;
        Ok(Some(PasswordResetDone { user_id, revoked: ids }))
    }

    async fn request_verification(&self, r: &LinkRequest) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let found: Option<(String, Option<i64>, Option<i64>)> =
            sqlx::query_as("SELECT id, disabled_at, email_verified_at FROM users WHERE email = $1 FOR UPDATE")
                .bind(&r.email)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((user_id, disabled_at, verified_at)) = found else { return Ok(false) };
        if disabled_at.is_some() || verified_at.is_some() {
            return Ok(true);
        }
        sqlx::query("DELETE FROM email_tokens WHERE user_id = $1 AND kind = 'verify'")
            .bind(&user_id)
            .execute(&mut *tx)
            .await?;
        insert_link(&mut tx, "verify", &user_id, &r.email, None, None, &r.token, r.mail.created_at, r.expires_at)
            .await?;
        insert_mail(&mut tx, &r.mail).await?;
        rotate::append_audit(&mut *tx, &AuditEvent { user_id: Some(user_id), ..r.audit.clone() }).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn verify_email(&self, used: &EmailTokenUse) -> Result<Option<String>> {
        let mut tx = self.write_tx().await?;
        let Some(((user_id, email, ..), current)) = spend_link(&mut tx, "verify", used).await? else { return Ok(None) };
        if current.as_deref() != Some(email.as_str()) {
            // The account's address changed since the link was sent (or it was disabled).
            return Ok(None);
        }
        sqlx::query(
            "UPDATE users SET email_verified_at = COALESCE(email_verified_at, $2), updated_at = $2 WHERE id = $1",
        )
        .bind(&user_id)
        .bind(used.now)
        .execute(&mut *tx)
        .await?;
        sessions_verified(&mut tx, &user_id).await?;
        rotate::append_audit(&mut *tx, &AuditEvent { user_id: Some(user_id.clone()), ..used.audit.clone() }).await?;
        tx.commit().await?;
        Ok(Some(user_id))
    }

    async fn request_email_change(&self, r: &EmailChangeRequest) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let current: Option<(String,)> =
            sqlx::query_as("SELECT email FROM users WHERE id = $1 AND disabled_at IS NULL FOR UPDATE")
                .bind(&r.user_id)
                .fetch_optional(&mut *tx)
                .await?;
        let Some((current,)) = current else { return Ok(false) };
        if current == r.new_email || email_taken(&mut tx, &r.new_email, &r.user_id).await? {
            let event = AuditEvent { detail: Some("address taken".into()), ..r.audit.clone() };
            rotate::append_audit(&mut *tx, &event).await?;
            tx.commit().await?;
            return Ok(false);
        }
        drop_pending_change(&mut tx, &r.user_id).await?;
        let (old, id, at) = (Some(current.as_str()), Some(r.change_id.as_str()), r.confirm_mail.created_at);
        insert_link(&mut tx, "change", &r.user_id, &r.new_email, old, id, &r.confirm, at, r.expires_at).await?;
        insert_link(&mut tx, "cancel", &r.user_id, &r.new_email, old, id, &r.cancel, at, r.cancel_expires_at).await?;
        insert_mail(&mut tx, &r.confirm_mail).await?;
        insert_mail(&mut tx, &NewMail { recipient: current, ..r.notice_mail.clone() }).await?;
        rotate::append_audit(&mut *tx, &r.audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    async fn confirm_email_change(&self, used: &EmailTokenUse) -> Result<EmailChangeOutcome> {
        let mut tx = self.write_tx().await?;
        let Some(((user_id, new_email, Some(old_email), _), current)) = spend_link(&mut tx, "change", used).await?
        else {
            return Ok(EmailChangeOutcome::Invalid);
        };
        if current.as_deref() != Some(old_email.as_str()) {
            return Ok(EmailChangeOutcome::Invalid);
        }
        if email_taken(&mut tx, &new_email, &user_id).await? {
            return Ok(EmailChangeOutcome::Taken);
        }
        match set_email(&mut tx, &user_id, &new_email, used.now).await {
            Ok(()) => {}
            Err(StoreError::EmailTaken) => return Ok(EmailChangeOutcome::Taken),
            Err(e) => return Err(e),
        }
        drop_old_address_links(&mut tx, &user_id).await?;
        rotate::append_audit(&mut *tx, &AuditEvent { user_id: Some(user_id.clone()), ..used.audit.clone() }).await?;
        tx.commit().await?;
        Ok(EmailChangeOutcome::Changed { user_id })
    }

    async fn cancel_email_change(&self, used: &EmailTokenUse) -> Result<Option<EmailChangeCancelled>> {
        let mut tx = self.write_tx().await?;
        let Some(((user_id, new_email, Some(old_email), Some(change_id)), current)) =
            spend_link(&mut tx, "cancel", used).await?
        else {
            return Ok(None);
        };
        let pending = sqlx::query(
            "UPDATE email_tokens SET used_at = $2 WHERE change_id = $1 AND kind = 'change' AND used_at IS NULL",
        )
        .bind(&change_id)
        .bind(used.now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        let audit = |detail: &str| AuditEvent {
            user_id: Some(user_id.clone()),
            detail: Some(detail.to_owned()),
            ..used.audit.clone()
        };
        if pending {
            rotate::append_audit(&mut *tx, &audit("pending change cancelled")).await?;
            tx.commit().await?;
            return Ok(Some(EmailChangeCancelled { user_id, undone: false, revoked: Vec::new() }));
        }
        // Confirmed already: undo it, if the account still has the new address and nobody took
        // the old one since.
        if current.as_deref() != Some(new_email.as_str()) || email_taken(&mut tx, &old_email, &user_id).await? {
            return Ok(None);
        }
        match set_email(&mut tx, &user_id, &old_email, used.now).await {
            Ok(()) => {}
            Err(StoreError::EmailTaken) => return Ok(None),
            Err(e) => return Err(e),
        }
        drop_pending_change(&mut tx, &user_id).await?;
        drop_old_address_links(&mut tx, &user_id).await?;
        let reason = RevocationReason::EmailChangeCancelled;
        let ids = revoke::mark(&mut tx, &user_id, Which::AllBut(None), reason, used.now).await?;
        rotate::append_audit(&mut *tx, &audit("confirmed change undone")).await?;
        revoke::publish(&mut tx, &ids, &user_id, reason, used.now).await?;
        tx.commit().await?;
        Ok(Some(EmailChangeCancelled { user_id, undone: true, revoked: ids }))
    }

    async fn claim_mail(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<MailRecord>> {
        // SKIP LOCKED: a message another instance is claiming right now is left to it; once that
        // claim commits, its lease makes the message not due, so it is not claimed twice.
        let rows: Vec<MailRow> = sqlx::query_as(AssertSqlSafe(format!(
            "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = $2
             WHERE id IN (SELECT id FROM mail_outbox WHERE state = 'queued' AND next_attempt_at <= $1
                          ORDER BY next_attempt_at, created_at, id LIMIT $3 FOR UPDATE SKIP LOCKED)
             RETURNING {MAIL_COLS}"
        )))
        .bind(now)
        .bind(lease_until)
        .bind(limit.max(1))
        .fetch_all(&self.pool)
        .await?;
        let mut claimed = rows.into_iter().map(mail).collect::<Result<Vec<_>>>()?;
        claimed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claimed)
    }

    async fn mail_sent(&self, id: &str, now: i64) -> Result<bool> {
        let done =
            sqlx::query("UPDATE mail_outbox SET state = 'sent', sent_at = $2 WHERE id = $1 AND state = 'queued'")
                .bind(id)
                .bind(now)
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn mail_failed(&self, id: &str, error: &str, retry_at: Option<i64>) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE mail_outbox SET last_error = $2,
                state = CASE WHEN $3::BIGINT IS NULL THEN 'failed' ELSE 'queued' END,
                next_attempt_at = COALESCE($3, next_attempt_at)
             WHERE id = $1 AND state = 'queued'",
        )
        .bind(id)
        .bind(error)
        .bind(retry_at)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn add_webhook_endpoint(&self, endpoint: &NewWebhookEndpoint) -> Result<()> {
        self.wh_add(endpoint).await
    }

    async fn webhook_endpoints(&self) -> Result<Vec<WebhookEndpoint>> {
        self.wh_endpoints().await
    }

    async fn remove_webhook_endpoint(&self, id: &str) -> Result<bool> {
        self.wh_remove(id).await
    }

    async fn enqueue_webhook(&self, endpoint_id: &str, message: &WebhookMessage, now: i64) -> Result<bool> {
        self.wh_enqueue(endpoint_id, message, now).await
    }

    async fn claim_webhooks(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<WebhookDelivery>> {
        self.wh_claim(now, lease_until, limit).await
    }

    async fn webhook_delivered(&self, endpoint_id: &str, id: &str, now: i64) -> Result<bool> {
        self.wh_delivered(endpoint_id, id, now).await
    }

    async fn webhook_failed(&self, endpoint_id: &str, id: &str, error: &str, retry_at: Option<i64>) -> Result<bool> {
        self.wh_failed(endpoint_id, id, error, retry_at).await
    }

    async fn webhook_deliveries(&self, endpoint_id: Option<&str>, limit: i64) -> Result<Vec<WebhookDelivery>> {
        self.wh_deliveries(endpoint_id, limit).await
    }

    async fn list_mail(&self, f: &MailFilter) -> Result<Vec<MailRecord>> {
        let rows: Vec<MailRow> = sqlx::query_as(AssertSqlSafe(format!(
            "SELECT {MAIL_COLS} FROM mail_outbox WHERE ($1::TEXT IS NULL OR state = $1)
             ORDER BY created_at DESC, id DESC LIMIT $2"
        )))
        .bind(f.state.map(MailState::as_str))
        .bind(page(f.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(mail).collect()
    }

    async fn factors(&self, user_id: &str) -> Result<Vec<FactorRecord>> {
        self.mfa_factors(user_id).await
    }

    async fn add_factor(&self, factor: &FactorRecord) -> Result<()> {
        self.mfa_add_factor(factor).await
    }

    async fn confirm_factor(&self, confirmation: &FactorConfirmation) -> Result<FactorConfirmed> {
        self.mfa_confirm_factor(confirmation).await
    }

    async fn use_totp_step(&self, factor_id: &str, step: i64, now: i64) -> Result<bool> {
        self.mfa_use_totp_step(factor_id, step, now).await
    }

    async fn remove_factor(&self, user_id: &str, factor_id: &str, audit: &AuditEvent) -> Result<bool> {
        self.mfa_remove_factor(user_id, factor_id, audit).await
    }

    async fn replace_recovery_codes(&self, user_id: &str, codes: &[TokenHash], audit: &AuditEvent) -> Result<bool> {
        self.mfa_replace_recovery_codes(user_id, codes, audit).await
    }

    async fn spend_recovery_code(&self, user_id: &str, code: &TokenHash, audit: &AuditEvent) -> Result<bool> {
        self.mfa_spend_recovery_code(user_id, code, audit).await
    }

    async fn recovery_codes_left(&self, user_id: &str) -> Result<i64> {
        self.mfa_recovery_codes_left(user_id).await
    }

    async fn create_mfa_challenge(&self, challenge: &MfaChallengeRecord) -> Result<()> {
        self.mfa_create_challenge(challenge).await
    }

    async fn attempt_mfa_challenge(
        &self,
        token: &TokenHash,
        now: i64,
        max_attempts: i64,
    ) -> Result<Option<MfaChallengeRecord>> {
        self.mfa_attempt_challenge(token, now, max_attempts).await
    }

    async fn finish_mfa_challenge(&self, token: &TokenHash) -> Result<bool> {
        self.mfa_finish_challenge(token).await
    }

    async fn use_passkey(&self, factor_id: &str, counter: i64, credential: &[u8], now: i64) -> Result<bool> {
        self.mfa_use_passkey(factor_id, counter, credential, now).await
    }

    async fn rename_factor(&self, user_id: &str, factor_id: &str, name: &str) -> Result<bool> {
        self.mfa_rename_factor(user_id, factor_id, name).await
    }

    async fn create_webauthn_challenge(&self, challenge: &WebauthnChallengeRecord) -> Result<()> {
        self.mfa_create_webauthn_challenge(challenge).await
    }

    async fn take_webauthn_challenge(&self, token: &TokenHash, now: i64) -> Result<Option<WebauthnChallengeRecord>> {
        self.mfa_take_webauthn_challenge(token, now).await
    }

    async fn set_session_auth(
        &self,
        user_id: &str,
        session_id: &str,
        amr: keycard_core::amr::Amr,
        auth_time: i64,
    ) -> Result<bool> {
        self.mfa_set_session_auth(user_id, session_id, amr, auth_time).await
    }
}

const MAIL_COLS: &str =
    "id, recipient, subject, text_body, html_body, created_at, state, attempts, next_attempt_at, last_error, sent_at";
type MailRow = (String, String, String, String, Option<String>, i64, String, i64, i64, Option<String>, Option<i64>);

fn mail(
    (id, recipient, subject, text_body, html_body, created_at, state, attempts, next_attempt_at, last_error, sent_at): MailRow,
) -> Result<MailRecord> {
    let state = MailState::parse(&state).ok_or_else(|| StoreError::Internal(format!("unknown mail state {state}")))?;
    Ok(MailRecord {
        id,
        recipient,
        subject,
        text_body,
        html_body,
        created_at,
        state,
        attempts,
        next_attempt_at,
        last_error,
        sent_at,
    })
}

/// Queues `m` in the outbox inside the caller's transaction (a flow that sends mail because of
/// an event writes both in one transaction).
pub(super) async fn insert_mail(tx: &mut sqlx::Transaction<'static, sqlx::Postgres>, m: &NewMail) -> Result<()> {
    sqlx::query(
        "INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, created_at, next_attempt_at)
         VALUES ($1, $2, $3, $4, $5, $6, $6)",
    )
    .bind(&m.id)
    .bind(&m.recipient)
    .bind(&m.subject)
    .bind(&m.text_body)
    .bind(&m.html_body)
    .bind(m.created_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const CLIENT_COLS: &str = "id, name, secret_hash, jwks, scopes, grant_id, created_at, secret_rotated_at";
type ClientRow = (String, String, Option<String>, Option<String>, String, String, i64, Option<i64>);

fn client((id, name, secret_hash, jwks, scopes, grant_id, created_at, secret_rotated_at): ClientRow) -> ClientRecord {
    ClientRecord { id, name, secret_hash, jwks, scopes, grant_id, created_at, secret_rotated_at }
}
