//! Second factors on PostgreSQL (issue 17): what the [`Store`](crate::Store) methods of
//! [`crate::mfa`] run. Changes that read before they write (confirming a factor, removing one,
//! replacing recovery codes) first lock the user's row, so two of them for one account never
//! interleave; single-statement steps (a TOTP step, a recovery code, a challenge attempt) are
//! conditional updates, which PostgreSQL re-checks on the row a concurrent transaction committed.

use keycard_core::amr::Amr;
use keycard_core::refresh::TokenHash;
use sqlx::{Postgres, Transaction};

use super::PgStore;
use super::rotate::append_audit;
use crate::Result;
use crate::mfa::*;
use crate::model::AuditEvent;

type FactorRow = (String, String, String, String, Vec<u8>, i64, Option<i64>, Option<i64>, Option<i64>);

fn factor(row: FactorRow) -> FactorRecord {
    let (id, user_id, kind, name, secret, created_at, confirmed_at, last_used_at, last_step) = row;
    FactorRecord { id, user_id, kind, name, secret, created_at, confirmed_at, last_used_at, last_step }
}

async fn lock_user(tx: &mut Transaction<'static, Postgres>, user_id: &str) -> Result<()> {
    sqlx::query("SELECT 1 FROM users WHERE id = $1 FOR UPDATE").bind(user_id).execute(&mut **tx).await?;
    Ok(())
}

async fn has_active_factor(tx: &mut Transaction<'static, Postgres>, user_id: &str) -> Result<bool> {
    let (active,): (bool,) =
        sqlx::query_as("SELECT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = $1 AND confirmed_at IS NOT NULL)")
            .bind(user_id)
            .fetch_one(&mut **tx)
            .await?;
    Ok(active)
}

async fn insert_codes(
    tx: &mut Transaction<'static, Postgres>,
    user_id: &str,
    codes: &[TokenHash],
    now: i64,
) -> Result<()> {
    sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut **tx).await?;
    let hashes: Vec<Vec<u8>> = codes.iter().map(|c| c.as_bytes().to_vec()).collect();
    sqlx::query(
        "INSERT INTO recovery_codes (user_id, code_hash, created_at) SELECT $1, h, $3 FROM UNNEST($2::bytea[]) AS h",
    )
    .bind(user_id)
    .bind(hashes)
    .bind(now)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

impl PgStore {
    pub(super) async fn mfa_factors(&self, user_id: &str) -> Result<Vec<FactorRecord>> {
        let rows: Vec<FactorRow> = sqlx::query_as(
            "SELECT id, user_id, kind, name, secret, created_at, confirmed_at, last_used_at, last_step
             FROM mfa_factors WHERE user_id = $1 ORDER BY created_at, id",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(factor).collect())
    }

    pub(super) async fn mfa_add_factor(&self, f: &FactorRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM mfa_factors WHERE user_id = $1 AND kind = $2 AND confirmed_at IS NULL")
            .bind(&f.user_id)
            .bind(&f.kind)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO mfa_factors (id, user_id, kind, name, secret, created_at, confirmed_at, last_used_at, last_step)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&f.id)
        .bind(&f.user_id)
        .bind(&f.kind)
        .bind(&f.name)
        .bind(&f.secret)
        .bind(f.created_at)
        .bind(f.confirmed_at)
        .bind(f.last_used_at)
        .bind(f.last_step)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn mfa_confirm_factor(&self, f: &FactorConfirmation) -> Result<FactorConfirmed> {
        let mut tx = self.write_tx().await?;
        lock_user(&mut tx, &f.user_id).await?;
        let activated = sqlx::query(
            "UPDATE mfa_factors SET confirmed_at = $3, last_used_at = $3, last_step = $4
             WHERE id = $1 AND user_id = $2 AND confirmed_at IS NULL",
        )
        .bind(&f.factor_id)
        .bind(&f.user_id)
        .bind(f.now)
        .bind(f.step)
        .execute(&mut *tx)
        .await?;
        if activated.rows_affected() == 0 {
            return Ok(FactorConfirmed::NotPending);
        }
        let (has_codes,): (bool,) =
            sqlx::query_as("SELECT EXISTS (SELECT 1 FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL)")
                .bind(&f.user_id)
                .fetch_one(&mut *tx)
                .await?;
        let outcome = if has_codes || f.recovery_codes.is_empty() {
            FactorConfirmed::Active
        } else {
            insert_codes(&mut tx, &f.user_id, &f.recovery_codes, f.now).await?;
            FactorConfirmed::WithRecoveryCodes
        };
        append_audit(&mut *tx, &f.audit).await?;
        tx.commit().await?;
        Ok(outcome)
    }

    pub(super) async fn mfa_use_passkey(
        &self,
        factor_id: &str,
        counter: i64,
        credential: &[u8],
        now: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE mfa_factors SET last_step = $2, last_used_at = $3, secret = $4
             WHERE id = $1 AND confirmed_at IS NOT NULL
               AND (last_step IS NULL OR last_step < $2 OR ($2 = 0 AND last_step = 0))",
        )
        .bind(factor_id)
        .bind(counter)
        .bind(now)
        .bind(credential)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn mfa_rename_factor(&self, user_id: &str, factor_id: &str, name: &str) -> Result<bool> {
        let done = sqlx::query("UPDATE mfa_factors SET name = $3 WHERE id = $1 AND user_id = $2")
            .bind(factor_id)
            .bind(user_id)
            .bind(name)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn mfa_create_webauthn_challenge(&self, ch: &WebauthnChallengeRecord) -> Result<()> {
        sqlx::query("DELETE FROM webauthn_challenges WHERE expires_at <= $1")
            .bind(ch.created_at)
            .execute(&self.pool)
            .await?;
        sqlx::query(
            "INSERT INTO webauthn_challenges (token_hash, user_id, purpose, data, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(ch.token.as_bytes())
        .bind(&ch.user_id)
        .bind(&ch.purpose)
        .bind(&ch.data)
        .bind(ch.created_at)
        .bind(ch.expires_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    pub(super) async fn mfa_take_webauthn_challenge(
        &self,
        token: &TokenHash,
        now: i64,
    ) -> Result<Option<WebauthnChallengeRecord>> {
        let row: Option<(Option<String>, String, String, i64, i64)> = sqlx::query_as(
            "DELETE FROM webauthn_challenges WHERE token_hash = $1
             RETURNING user_id, purpose, data, created_at, expires_at",
        )
        .bind(token.as_bytes())
        .fetch_optional(&self.pool)
        .await?;
        Ok(row
            .map(|(user_id, purpose, data, created_at, expires_at)| WebauthnChallengeRecord {
                token: *token,
                user_id,
                purpose,
                data,
                created_at,
                expires_at,
            })
            .filter(|ch| ch.expires_at > now))
    }

    pub(super) async fn mfa_use_totp_step(&self, factor_id: &str, step: i64, now: i64) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE mfa_factors SET last_step = $2, last_used_at = $3
             WHERE id = $1 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)",
        )
        .bind(factor_id)
        .bind(step)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn mfa_remove_factor(&self, user_id: &str, factor_id: &str, audit: &AuditEvent) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        lock_user(&mut tx, user_id).await?;
        let removed = sqlx::query("DELETE FROM mfa_factors WHERE id = $1 AND user_id = $2")
            .bind(factor_id)
            .bind(user_id)
            .execute(&mut *tx)
            .await?;
        if removed.rows_affected() == 0 {
            return Ok(false);
        }
        if !has_active_factor(&mut tx, user_id).await? {
            sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1").bind(user_id).execute(&mut *tx).await?;
        }
        append_audit(&mut *tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn mfa_replace_recovery_codes(
        &self,
        user_id: &str,
        codes: &[TokenHash],
        audit: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        lock_user(&mut tx, user_id).await?;
        if !has_active_factor(&mut tx, user_id).await? {
            return Ok(false);
        }
        insert_codes(&mut tx, user_id, codes, audit.at).await?;
        append_audit(&mut *tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn mfa_spend_recovery_code(
        &self,
        user_id: &str,
        code: &TokenHash,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let spent = sqlx::query(
            "UPDATE recovery_codes SET used_at = $3 WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL",
        )
        .bind(user_id)
        .bind(code.as_bytes())
        .bind(audit.at)
        .execute(&mut *tx)
        .await?;
        if spent.rows_affected() == 0 {
            return Ok(false);
        }
        append_audit(&mut *tx, audit).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub(super) async fn mfa_recovery_codes_left(&self, user_id: &str) -> Result<i64> {
        let (left,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM recovery_codes WHERE user_id = $1 AND used_at IS NULL")
                .bind(user_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(left)
    }

    pub(super) async fn mfa_create_challenge(&self, ch: &MfaChallengeRecord) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query("DELETE FROM mfa_challenges WHERE expires_at <= $1").bind(ch.created_at).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO mfa_challenges (token_hash, user_id, data, attempts, created_at, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(ch.token.as_bytes())
        .bind(&ch.user_id)
        .bind(&ch.data)
        .bind(ch.attempts as i32)
        .bind(ch.created_at)
        .bind(ch.expires_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub(super) async fn mfa_attempt_challenge(
        &self,
        token: &TokenHash,
        now: i64,
        max_attempts: i64,
    ) -> Result<Option<MfaChallengeRecord>> {
        let row: Option<(String, String, i32, i64, i64)> = sqlx::query_as(
            "UPDATE mfa_challenges SET attempts = attempts + 1
             WHERE token_hash = $1 AND expires_at > $2 AND attempts < $3
             RETURNING user_id, data, attempts, created_at, expires_at",
        )
        .bind(token.as_bytes())
        .bind(now)
        .bind(max_attempts)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|(user_id, data, attempts, created_at, expires_at)| MfaChallengeRecord {
            token: *token,
            user_id,
            data,
            attempts: i64::from(attempts),
            created_at,
            expires_at,
        }))
    }

    pub(super) async fn mfa_finish_challenge(&self, token: &TokenHash) -> Result<bool> {
        let done = sqlx::query("DELETE FROM mfa_challenges WHERE token_hash = $1")
            .bind(token.as_bytes())
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() == 1)
    }

    pub(super) async fn mfa_set_session_auth(
        &self,
        user_id: &str,
        session_id: &str,
        amr: Amr,
        auth_time: i64,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE sessions SET amr = $3, auth_time = $4
             WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND idle_expires_at > $4 AND absolute_expires_at > $4",
        )
        .bind(session_id)
        .bind(user_id)
        .bind(i16::from(amr.bits()))
        .bind(auth_time)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
