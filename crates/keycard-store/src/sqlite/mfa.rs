//! Second factors on SQLite (issue 17): what the [`Store`](crate::Store) methods of
//! [`crate::mfa`] run. Each change is one job of the writer thread, so each is atomic; the reads
//! use the thread's read connection.

use keycard_core::amr::Amr;
use keycard_core::refresh::TokenHash;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::queries::append_audit;
use super::writer::Done;
use crate::Result;
use crate::mfa::*;
use crate::model::AuditEvent;

const FACTOR_COLS: &str = "id, user_id, kind, name, secret, created_at, confirmed_at, last_used_at, last_step";
/// A step is accepted only when it is newer than every step accepted before.
const USE_STEP: &str = "UPDATE mfa_factors SET last_step = ?2, last_used_at = ?3
     WHERE id = ?1 AND confirmed_at IS NOT NULL AND (last_step IS NULL OR last_step < ?2)";
/// A passkey's counter must move forward, or stay 0 on an authenticator that keeps none.
const USE_PASSKEY: &str = "UPDATE mfa_factors SET last_step = ?2, last_used_at = ?3, secret = ?4
     WHERE id = ?1 AND confirmed_at IS NOT NULL
       AND (last_step IS NULL OR last_step < ?2 OR (?2 = 0 AND last_step = 0))";
const HAS_ACTIVE_FACTOR: &str =
    "SELECT EXISTS (SELECT 1 FROM mfa_factors WHERE user_id = ?1 AND confirmed_at IS NOT NULL)";
const DROP_CODES: &str = "DELETE FROM recovery_codes WHERE user_id = ?1";
const INSERT_CODE: &str = "INSERT INTO recovery_codes (user_id, code_hash, created_at) VALUES (?1, ?2, ?3)";

fn factor(row: &Row<'_>) -> rusqlite::Result<FactorRecord> {
    Ok(FactorRecord {
        id: row.get(0)?,
        user_id: row.get(1)?,
        kind: row.get(2)?,
        name: row.get(3)?,
        secret: row.get(4)?,
        created_at: row.get(5)?,
        confirmed_at: row.get(6)?,
        last_used_at: row.get(7)?,
        last_step: row.get(8)?,
    })
}

fn insert_codes(c: &Connection, user_id: &str, codes: &[TokenHash], now: i64) -> rusqlite::Result<()> {
    let mut insert = c.prepare_cached(INSERT_CODE)?;
    for code in codes {
        insert.execute(params![user_id, code.as_bytes(), now])?;
    }
    Ok(())
}

impl SqliteStore {
    pub(super) async fn mfa_factors(&self, user_id: &str) -> Result<Vec<FactorRecord>> {
        let sql = format!("SELECT {FACTOR_COLS} FROM mfa_factors WHERE user_id = ?1 ORDER BY created_at, id");
        self.read(|c| c.prepare_cached(&sql)?.query_map(params![user_id], factor)?.collect())
    }

    pub(super) async fn mfa_add_factor(&self, f: &FactorRecord) -> Result<()> {
        let f = f.clone();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM mfa_factors WHERE user_id = ?1 AND kind = ?2 AND confirmed_at IS NULL")?
                .execute(params![f.user_id, f.kind])?;
            c.prepare_cached(&format!(
                "INSERT INTO mfa_factors ({FACTOR_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
            ))?
            .execute(params![
                f.id,
                f.user_id,
                f.kind,
                f.name,
                f.secret,
                f.created_at,
                f.confirmed_at,
                f.last_used_at,
                f.last_step
            ])?;
            Ok(Done::Keep(()))
        })
        .await
    }

    pub(super) async fn mfa_confirm_factor(&self, f: &FactorConfirmation) -> Result<FactorConfirmed> {
        let f = f.clone();
        self.write(move |c| {
            let activated = c
                .prepare_cached(
                    "UPDATE mfa_factors SET confirmed_at = ?3, last_used_at = ?3, last_step = ?4
                     WHERE id = ?1 AND user_id = ?2 AND confirmed_at IS NULL",
                )?
                .execute(params![f.factor_id, f.user_id, f.now, f.step])?;
            if activated == 0 {
                return Ok(Done::Keep(FactorConfirmed::NotPending));
            }
            let has_codes: bool = c
                .prepare_cached("SELECT EXISTS (SELECT 1 FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL)")?
                .query_row(params![f.user_id], |row| row.get(0))?;
            let outcome = if has_codes || f.recovery_codes.is_empty() {
                FactorConfirmed::Active
            } else {
                c.prepare_cached(DROP_CODES)?.execute(params![f.user_id])?;
                insert_codes(c, &f.user_id, &f.recovery_codes, f.now)?;
                FactorConfirmed::WithRecoveryCodes
            };
            append_audit(c, &f.audit)?;
            Ok(Done::Keep(outcome))
        })
        .await
    }

    pub(super) async fn mfa_use_totp_step(&self, factor_id: &str, step: i64, now: i64) -> Result<bool> {
        let id = factor_id.to_owned();
        self.write(move |c| Ok(Done::Keep(c.prepare_cached(USE_STEP)?.execute(params![id, step, now])? == 1))).await
    }

    pub(super) async fn mfa_remove_factor(&self, user_id: &str, factor_id: &str, audit: &AuditEvent) -> Result<bool> {
        let (user_id, id, audit) = (user_id.to_owned(), factor_id.to_owned(), audit.clone());
        self.write(move |c| {
            let removed = c
                .prepare_cached("DELETE FROM mfa_factors WHERE id = ?1 AND user_id = ?2")?
                .execute(params![id, user_id])?;
            if removed == 0 {
                return Ok(Done::Keep(false));
            }
            let active: bool = c.prepare_cached(HAS_ACTIVE_FACTOR)?.query_row(params![user_id], |row| row.get(0))?;
            if !active {
                c.prepare_cached(DROP_CODES)?.execute(params![user_id])?;
            }
            append_audit(c, &audit)?;
            Ok(Done::Keep(true))
        })
        .await
    }

    pub(super) async fn mfa_replace_recovery_codes(
        &self,
        user_id: &str,
        codes: &[TokenHash],
        audit: &AuditEvent,
    ) -> Result<bool> {
        let (user_id, codes, audit) = (user_id.to_owned(), codes.to_vec(), audit.clone());
        self.write(move |c| {
            let active: bool = c.prepare_cached(HAS_ACTIVE_FACTOR)?.query_row(params![user_id], |row| row.get(0))?;
            if !active {
                return Ok(Done::Keep(false));
            }
            c.prepare_cached(DROP_CODES)?.execute(params![user_id])?;
            insert_codes(c, &user_id, &codes, audit.at)?;
            append_audit(c, &audit)?;
            Ok(Done::Keep(true))
        })
        .await
    }

    pub(super) async fn mfa_spend_recovery_code(
        &self,
        user_id: &str,
        code: &TokenHash,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let (user_id, code, audit) = (user_id.to_owned(), *code, audit.clone());
        self.write(move |c| {
            let spent = c
                .prepare_cached(
                    "UPDATE recovery_codes SET used_at = ?3 WHERE user_id = ?1 AND code_hash = ?2 AND used_at IS NULL",
                )?
                .execute(params![user_id, code.as_bytes(), audit.at])?;
            if spent == 0 {
                return Ok(Done::Keep(false));
            }
            append_audit(c, &audit)?;
            Ok(Done::Keep(true))
        })
        .await
    }

    pub(super) async fn mfa_recovery_codes_left(&self, user_id: &str) -> Result<i64> {
        self.read(|c| {
            c.prepare_cached("SELECT count(*) FROM recovery_codes WHERE user_id = ?1 AND used_at IS NULL")?
                .query_row(params![user_id], |row| row.get(0))
        })
    }

    pub(super) async fn mfa_create_challenge(&self, ch: &MfaChallengeRecord) -> Result<()> {
        let ch = ch.clone();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM mfa_challenges WHERE expires_at <= ?1")?.execute(params![ch.created_at])?;
            c.prepare_cached(
                "INSERT INTO mfa_challenges (token_hash, user_id, data, attempts, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                ch.token.as_bytes(),
                ch.user_id,
                ch.data,
                ch.attempts,
                ch.created_at,
                ch.expires_at
            ])?;
            Ok(Done::Keep(()))
        })
        .await
    }

    pub(super) async fn mfa_attempt_challenge(
        &self,
        token: &TokenHash,
        now: i64,
        max_attempts: i64,
    ) -> Result<Option<MfaChallengeRecord>> {
        let token = *token;
        self.write(move |c| {
            let found = c
                .prepare_cached(
                    "UPDATE mfa_challenges SET attempts = attempts + 1
                     WHERE token_hash = ?1 AND expires_at > ?2 AND attempts < ?3
                     RETURNING user_id, data, attempts, created_at, expires_at",
                )?
                .query_row(params![token.as_bytes(), now, max_attempts], |row| {
                    Ok(MfaChallengeRecord {
                        token,
                        user_id: row.get(0)?,
                        data: row.get(1)?,
                        attempts: row.get(2)?,
                        created_at: row.get(3)?,
                        expires_at: row.get(4)?,
                    })
                })
                .optional()?;
            Ok(Done::Keep(found))
        })
        .await
    }

    pub(super) async fn mfa_finish_challenge(&self, token: &TokenHash) -> Result<bool> {
        let token = *token;
        self.write(move |c| {
            let deleted = c
                .prepare_cached("DELETE FROM mfa_challenges WHERE token_hash = ?1")?
                .execute(params![token.as_bytes()])?;
            Ok(Done::Keep(deleted == 1))
        })
        .await
    }

    pub(super) async fn mfa_use_passkey(
        &self,
        factor_id: &str,
        counter: i64,
        credential: &[u8],
        now: i64,
    ) -> Result<bool> {
        let (id, credential) = (factor_id.to_owned(), credential.to_vec());
        self.write(move |c| {
            let used = c.prepare_cached(USE_PASSKEY)?.execute(params![id, counter, now, credential])?;
            Ok(Done::Keep(used == 1))
        })
        .await
    }

    pub(super) async fn mfa_rename_factor(&self, user_id: &str, factor_id: &str, name: &str) -> Result<bool> {
        let (user_id, id, name) = (user_id.to_owned(), factor_id.to_owned(), name.to_owned());
        self.write(move |c| {
            let renamed = c
                .prepare_cached("UPDATE mfa_factors SET name = ?3 WHERE id = ?1 AND user_id = ?2")?
                .execute(params![id, user_id, name])?;
            Ok(Done::Keep(renamed == 1))
        })
        .await
    }

    pub(super) async fn mfa_create_webauthn_challenge(&self, ch: &WebauthnChallengeRecord) -> Result<()> {
        let ch = ch.clone();
        self.write(move |c| {
            c.prepare_cached("DELETE FROM webauthn_challenges WHERE expires_at <= ?1")?
                .execute(params![ch.created_at])?;
            c.prepare_cached(
                "INSERT INTO webauthn_challenges (token_hash, user_id, purpose, data, created_at, expires_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?
            .execute(params![
                ch.token.as_bytes(),
                ch.user_id,
                ch.purpose,
                ch.data,
                ch.created_at,
                ch.expires_at
            ])?;
            Ok(Done::Keep(()))
        })
        .await
    }

    pub(super) async fn mfa_take_webauthn_challenge(
        &self,
        token: &TokenHash,
        now: i64,
    ) -> Result<Option<WebauthnChallengeRecord>> {
        let token = *token;
        self.write(move |c| {
            let taken = c
                .prepare_cached(
                    "DELETE FROM webauthn_challenges WHERE token_hash = ?1
                     RETURNING user_id, purpose, data, created_at, expires_at",
                )?
                .query_row(params![token.as_bytes()], |row| {
                    Ok(WebauthnChallengeRecord {
                        token,
                        user_id: row.get(0)?,
                        purpose: row.get(1)?,
                        data: row.get(2)?,
                        created_at: row.get(3)?,
                        expires_at: row.get(4)?,
                    })
                })
                .optional()?;
            Ok(Done::Keep(taken.filter(|ch| ch.expires_at > now)))
        })
        .await
    }

    pub(super) async fn mfa_set_session_auth(
        &self,
        user_id: &str,
        session_id: &str,
        amr: Amr,
        auth_time: i64,
    ) -> Result<bool> {
        let (user_id, session_id) = (user_id.to_owned(), session_id.to_owned());
        self.write(move |c| {
            let set = c
                .prepare_cached(
                    "UPDATE sessions SET amr = ?3, auth_time = ?4
                     WHERE id = ?1 AND user_id = ?2 AND revoked_at IS NULL
                       AND idle_expires_at > ?4 AND absolute_expires_at > ?4",
                )?
                .execute(params![session_id, user_id, amr.bits(), auth_time])?;
            Ok(Done::Keep(set == 1))
        })
        .await
    }
}
