//! The [`Store`] trait for [`SqliteStore`]: each write method is one job of the writer thread (one
//! savepoint of a group transaction), each read one statement on the thread's read connection.

use async_trait::async_trait;
use keycard_core::events::{AuditKind, RevocationReason};
use keycard_core::refresh::TokenHash;
use rusqlite::{Connection, OptionalExtension, Row, params};

use super::SqliteStore;
use super::rotate::rotate;
use super::writer::Done;
use crate::mfa::*;
use crate::model::*;
use crate::webhook::*;
use crate::{Result, Store, StoreError};

const INSERT_USER: &str =
    "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)";
const USER_BY_EMAIL: &str =
    "SELECT id, email, password_hash, created_at, disabled_at, email_verified_at FROM users WHERE email = ?1";
const USER_BY_ID: &str =
    "SELECT id, email, password_hash, created_at, disabled_at, email_verified_at FROM users WHERE id = ?1";
const INSERT_SESSION: &str = "INSERT INTO sessions
     (id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip, email_verified, amr,
      auth_time, dpop_jkt)
     VALUES (?1, ?2, ?3, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)";
pub(super) const INSERT_TOKEN: &str = "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)";
const SESSION_BY_REFRESH: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE t.hash = ?1 AND t.used_at IS NULL AND ",
    live!(2)
);
/// Idle expiry does not end an access token early: only revocation, the absolute limit and
/// disabling the user do.
const SESSION_USER: &str = "SELECT u.id, u.email, u.password_hash, u.created_at, u.disabled_at, u.email_verified_at
     FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL AND s.absolute_expires_at > ?3
       AND u.disabled_at IS NULL";
const LIST_SESSIONS: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM sessions s WHERE s.user_id = ?1 AND ",
    live!(2),
    " ORDER BY s.created_at DESC, s.id"
);
const OWN_LIVE_SESSION: &str = concat!("SELECT s.id FROM sessions s WHERE s.id = ?1 AND s.user_id = ?2 AND ", live!(3));
const LIVE_SESSION_IDS: &str =
    concat!("SELECT s.id FROM sessions s WHERE s.user_id = ?1 AND (?2 IS NULL OR s.id <> ?2) AND ", live!(3));
/// Operators' listing (`keycard users list`), by email from after `?3` (the unique index on email
/// gives the order), with each user's live sessions counted on `sessions_by_user`.
const LIST_USERS: &str = concat!(
    "SELECT u.id, u.email, u.created_at, u.disabled_at, (SELECT count(*) FROM sessions s WHERE s.user_id = u.id AND ",
    live!(1),
    ") FROM users u WHERE u.email > ?3 AND (?2 IS NULL OR instr(u.email, ?2) > 0) ORDER BY u.email LIMIT ?4"
);
const USER_DISABLED_AT: &str = "SELECT disabled_at FROM users WHERE id = ?1";
const USER_STATE: &str = "SELECT disabled_at, email_verified_at IS NOT NULL FROM users WHERE id = ?1";
/// Spends a mailed email token of kind `?3`: only an unused, unexpired one gets its row back.
const SPEND_EMAIL_TOKEN: &str = "UPDATE email_tokens SET used_at = ?2
     WHERE token_hash = ?1 AND kind = ?3 AND used_at IS NULL AND expires_at > ?2
     RETURNING user_id, email, old_email, change_id";
const INSERT_EMAIL_TOKEN: &str = "INSERT INTO email_tokens
     (token_hash, kind, user_id, email, old_email, change_id, created_at, expires_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const MARK_VERIFIED: &str =
    "UPDATE users SET email_verified_at = COALESCE(email_verified_at, ?2), updated_at = ?2 WHERE id = ?1";
const SESSIONS_VERIFIED: &str = "UPDATE sessions SET email_verified = 1 WHERE user_id = ?1 AND revoked_at IS NULL";
/// A change still waiting for its confirmation, with its cancel token: superseded by a new one.
const DROP_PENDING_CHANGE: &str = "DELETE FROM email_tokens WHERE user_id = ?1 AND change_id IN
     (SELECT change_id FROM email_tokens WHERE user_id = ?1 AND kind = 'change' AND used_at IS NULL)";
const SET_EMAIL: &str = "UPDATE users SET email = ?2, email_verified_at = ?3, updated_at = ?3 WHERE id = ?1";
/// Links mailed to an address the account no longer has stop working: verification links…
const DROP_VERIFY_LINKS: &str = "DELETE FROM email_tokens WHERE user_id = ?1 AND kind = 'verify'";
/// … and unspent password-reset links.
const DROP_RESET_LINKS: &str = "DELETE FROM password_resets WHERE user_id = ?1 AND used_at IS NULL";
/// Disabling keeps the first `disabled_at` when disabled again.
const DISABLE_USER: &str = "UPDATE users SET disabled_at = COALESCE(disabled_at, ?2), updated_at = ?2 WHERE id = ?1";
const ENABLE_USER: &str = "UPDATE users SET disabled_at = NULL, updated_at = ?2 WHERE id = ?1";
/// Every user's live sessions, newest first, on `sessions_by_created` read backwards.
const ALL_LIVE_SESSIONS: &str =
    concat!("SELECT ", cols!(), " FROM sessions s WHERE ", live!(1), " ORDER BY s.created_at DESC, s.id DESC LIMIT ?2");
/// One user's live sessions for operators, in the same order as [`ALL_LIVE_SESSIONS`].
const USER_LIVE_SESSIONS: &str = concat!(
    "SELECT ",
    cols!(),
    " FROM sessions s WHERE s.user_id = ?1 AND ",
    live!(2),
    " ORDER BY s.created_at DESC, s.id DESC LIMIT ?3"
);
const LIVE_SESSION_OWNER: &str = concat!("SELECT s.user_id FROM sessions s WHERE s.id = ?1 AND ", live!(2));
const REVOKE: &str = "UPDATE sessions SET revoked_at = ?1, revoked_reason = ?2 WHERE id = ?3 AND revoked_at IS NULL";
const DROP_TOKENS: &str = "DELETE FROM refresh_tokens WHERE session_id = ?1";
const PUBLISH: &str = "INSERT INTO revocations (session_id, user_id, revoked_at, reason) VALUES (?1, ?2, ?3, ?4)";
const SET_PASSWORD: &str = "UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE id = ?3";
const DELETE_USER: &str = "DELETE FROM users WHERE id = ?1";
const REVOCATIONS: &str =
    "SELECT seq, session_id, user_id, revoked_at, reason FROM revocations WHERE seq > ?1 ORDER BY seq LIMIT ?2";
const SIGNING_KEYS: &str =
    "SELECT kid, alg, private_key, created_at, retired_at FROM signing_keys ORDER BY created_at, kid";
const INSERT_KEY: &str =
    "INSERT INTO signing_keys (kid, alg, private_key, created_at, retired_at) VALUES (?1, ?2, ?3, ?4, ?5)
     ON CONFLICT (kid) DO NOTHING";
const RETIRE_KEY: &str = "UPDATE signing_keys SET retired_at = ?1 WHERE kid = ?2 AND retired_at IS NULL";
const WRAPPED_MASTER_KEY: &str = "SELECT key_name, ciphertext, updated_at FROM wrapped_master_key WHERE id = 1";
const INSERT_WRAPPED_MASTER_KEY: &str =
    "INSERT OR IGNORE INTO wrapped_master_key (id, key_name, ciphertext, updated_at) VALUES (1, ?1, ?2, ?3)";
const REPLACE_WRAPPED_MASTER_KEY: &str =
    "UPDATE wrapped_master_key SET key_name = ?1, ciphertext = ?2, updated_at = ?3 WHERE id = 1 AND ciphertext = ?4";
const CLIENT_COLS: &str = "id, name, secret_hash, jwks, scopes, grant_id, created_at, secret_rotated_at";
const INSERT_CLIENT: &str = "INSERT INTO oauth_clients
     (id, name, secret_hash, jwks, scopes, grant_id, created_at, secret_rotated_at)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)";
const SET_CLIENT_SECRET: &str = "UPDATE oauth_clients SET secret_hash = ?2, secret_rotated_at = ?3 WHERE id = ?1";
const CLIENT_GRANT: &str = "SELECT grant_id FROM oauth_clients WHERE id = ?1";
const DELETE_CLIENT: &str = "DELETE FROM oauth_clients WHERE id = ?1";
const SET_CLIENT_GRANT: &str = "UPDATE oauth_clients SET grant_id = ?3 WHERE id = ?1 AND grant_id = ?2";
const FORGET_ASSERTIONS: &str = "DELETE FROM oauth_assertions WHERE client_id = ?1 AND expires_at <= ?2";
const FORGET_DPOP_PROOFS: &str = "DELETE FROM dpop_proofs WHERE expires_at < ?1";
const SPEND_DPOP_PROOF: &str =
    "INSERT INTO dpop_proofs (jkt, jti, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
const SPEND_ASSERTION: &str =
    "INSERT INTO oauth_assertions (client_id, jti, expires_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING";
const APPEND_AUDIT: &str = "INSERT INTO audit_events (at, kind, user_id, session_id, ip, user_agent, detail)
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";
const PRUNE_AUDIT: &str = "DELETE FROM audit_events WHERE at < ?1";
const AUDIT_EVENTS: &str = "SELECT id, at, kind, user_id, session_id, ip, user_agent, detail FROM audit_events
     WHERE (?1 IS NULL OR user_id = ?1) AND (?2 IS NULL OR kind = ?2) AND (?3 IS NULL OR at >= ?3)
     ORDER BY id DESC LIMIT ?4";

/// A session from the columns of [`cols!`] (or the same list in a `RETURNING`).
pub(super) fn session(row: &Row<'_>) -> rusqlite::Result<SessionRecord> {
    Ok(SessionRecord {
        id: row.get(0)?,
        user_id: row.get(1)?,
        created_at: row.get(2)?,
        last_used_at: row.get(3)?,
        idle_expires_at: row.get(4)?,
        absolute_expires_at: row.get(5)?,
        user_agent: row.get(6)?,
        ip: row.get(7)?,
        email_verified: row.get(8)?,
        amr: keycard_core::amr::Amr::from_bits(row.get(9)?),
        auth_time: row.get(10)?,
        dpop_jkt: row.get(11)?,
    })
}

/// A user from `id, email, password_hash, created_at, disabled_at, email_verified_at`.
fn user(row: &Row<'_>) -> rusqlite::Result<UserRecord> {
    Ok(UserRecord {
        id: row.get(0)?,
        email: row.get(1)?,
        password_hash: row.get(2)?,
        created_at: row.get(3)?,
        disabled_at: row.get(4)?,
        email_verified_at: row.get(5)?,
    })
}

/// The limit of an operator's listing: 0 or less means 100.
fn page(limit: i64) -> i64 {
    if limit > 0 { limit } else { 100 }
}

/// Whether `e` is a unique or primary-key violation (as sqlx's `is_unique_violation` decides).
fn is_unique_violation(e: &rusqlite::Error) -> bool {
    matches!(
        e.sqlite_error(),
        Some(rusqlite::ffi::Error { extended_code, .. })
            if *extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || *extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    )
}

/// Revokes the given live sessions and records them in the revocation feed.
pub(super) fn revoke_in(
    c: &Connection,
    ids: &[String],
    user_id: &str,
    reason: RevocationReason,
    now: i64,
) -> rusqlite::Result<()> {
    let (mut revoke, mut drop_tokens, mut publish) =
        (c.prepare_cached(REVOKE)?, c.prepare_cached(DROP_TOKENS)?, c.prepare_cached(PUBLISH)?);
    for id in ids {
        revoke.execute(params![now, reason.as_str(), id])?;
        drop_tokens.execute(params![id])?;
        publish.execute(params![id, user_id, now, reason.as_str()])?;
    }
    Ok(())
}

fn live_session_ids(c: &Connection, user_id: &str, except: Option<&str>, now: i64) -> rusqlite::Result<Vec<String>> {
    c.prepare_cached(LIVE_SESSION_IDS)?.query_map(params![user_id, except, now], |row| row.get(0))?.collect()
}

pub(super) fn append_audit(c: &Connection, e: &AuditEvent) -> rusqlite::Result<()> {
    c.prepare_cached(APPEND_AUDIT)?.execute(params![
        e.at,
        e.kind.as_str(),
        e.user_id,
        e.session_id,
        e.ip,
        e.user_agent,
        e.detail
    ])?;
    if let Some(message) = WebhookMessage::of(e) {
        super::webhooks::queue_deliveries(c, &message, e.at)?;
    }
    Ok(())
}

/// Stores the hash of a mailed email token.
#[allow(clippy::too_many_arguments)]
fn insert_link(
    c: &Connection,
    kind: &str,
    user_id: &str,
    email: &str,
    old_email: Option<&str>,
    change_id: Option<&str>,
    token: &TokenHash,
    created_at: i64,
    expires_at: i64,
) -> rusqlite::Result<()> {
    c.prepare_cached(INSERT_EMAIL_TOKEN)?.execute(params![
        token.as_bytes(),
        kind,
        user_id,
        email,
        old_email,
        change_id,
        created_at,
        expires_at
    ])?;
    Ok(())
}

/// A spent email token: its user, address, old address and change id.
type SpentLink = (String, String, Option<String>, Option<String>);

/// Spends an email token of `kind` (see [`SPEND_EMAIL_TOKEN`]).
fn spend_link(c: &Connection, kind: &str, used: &EmailTokenUse) -> rusqlite::Result<Option<SpentLink>> {
    c.prepare_cached(SPEND_EMAIL_TOKEN)?
        .query_row(params![used.token.as_bytes(), used.now, kind], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })
        .optional()
}

/// The user's address, if the user exists and is not disabled.
fn enabled_email(c: &Connection, user_id: &str) -> rusqlite::Result<Option<String>> {
    c.prepare_cached("SELECT email FROM users WHERE id = ?1 AND disabled_at IS NULL")?
        .query_row(params![user_id], |row| row.get(0))
        .optional()
}

/// Links mailed to an address the account no longer has stop working (verification links and
/// unspent password-reset links), as PostgreSQL's twin does.
fn drop_old_address_links(c: &Connection, user_id: &str) -> rusqlite::Result<()> {
    c.prepare_cached(DROP_VERIFY_LINKS)?.execute(params![user_id])?;
    c.prepare_cached(DROP_RESET_LINKS)?.execute(params![user_id])?;
    Ok(())
}

/// Whether an account other than `user_id` has `email`.
fn email_taken(c: &Connection, email: &str, user_id: &str) -> rusqlite::Result<bool> {
    Ok(c.prepare_cached("SELECT 1 FROM users WHERE email = ?1 AND id <> ?2")?
        .query_row(params![email, user_id], |_| Ok(()))
        .optional()?
        .is_some())
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        if !self.shared.writer.is_running() {
            return Err(super::writer::stopped());
        }
        self.read(|c| c.prepare_cached("SELECT 1")?.query_row([], |row| row.get::<_, i64>(0)))?;
        Ok(())
    }

    async fn create_user(&self, u: &NewUser) -> Result<()> {
        let u = u.clone();
        self.write(move |c| {
            match c.prepare_cached(INSERT_USER)?.execute(params![u.id, u.email, u.password_hash, u.created_at]) {
                Ok(_) => {}
                Err(e) if is_unique_violation(&e) => return Err(StoreError::EmailTaken),
                Err(e) => return Err(e.into()),
            }
            if let Some(v) = &u.verification {
                insert_link(c, "verify", &u.id, &v.email, None, None, &v.token, u.created_at, v.expires_at)?;
                insert_mail(c, &v.mail)?;
                append_audit(c, &AuditEvent { user_id: Some(u.id.clone()), ..v.audit.clone() })?;
            }
            Ok(Done::Keep(()))
        })
        .await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        self.read(|c| c.prepare_cached(USER_BY_EMAIL)?.query_row(params![email], user).optional())
    }

    async fn user_by_id(&self, id: &str) -> Result<Option<UserRecord>> {
        self.read(|c| c.prepare_cached(USER_BY_ID)?.query_row(params![id], user).optional())
    }

    async fn create_session(&self, s: &NewSession, first_token: &TokenHash, audit: &AuditEvent) -> Result<()> {
        let (s, first_token, audit) = (s.clone(), *first_token, audit.clone());
        self.write(move |c| {
            // A disabled user gets no new session: with disabling revoking every live one in its
            // own transaction, no session of a disabled user is ever live (so rotation, the hot
            // path, needs no look at the user).
            let state: Option<(Option<i64>, bool)> = c
                .prepare_cached(USER_STATE)?
                .query_row(params![s.user_id], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            if matches!(state, Some((Some(_), _))) {
                return Err(StoreError::UserDisabled);
            }
            let verified = state.is_some_and(|(_, verified)| verified);
            c.prepare_cached(INSERT_SESSION)?.execute(params![
                s.id,
                s.user_id,
                s.created_at,
                s.idle_expires_at,
                s.absolute_expires_at,
                s.user_agent,
                s.ip,
                verified,
                s.amr.bits(),
                s.auth_time,
                s.dpop_jkt
            ])?;
            c.prepare_cached(INSERT_TOKEN)?.execute(params![first_token.as_bytes(), s.id, s.created_at])?;
            append_audit(c, &audit.completed(&s.user_id, 0))?;
            Ok(Done::Keep(()))
        })
        .await
    }

    async fn rotate_refresh(&self, r: &Rotation) -> Result<RotateOutcome> {
        let r = r.clone();
        self.write(move |c| rotate(c, &r)).await
    }

    async fn session_by_refresh(&self, token: &TokenHash, now: i64) -> Result<Option<SessionRecord>> {
        self.read(|c| {
            c.prepare_cached(SESSION_BY_REFRESH)?.query_row(params![token.as_bytes(), now], session).optional()
        })
    }

    async fn session_user(&self, session_id: &str, user_id: &str, now: i64) -> Result<Option<UserRecord>> {
        self.read(|c| c.prepare_cached(SESSION_USER)?.query_row(params![session_id, user_id, now], user).optional())
    }

    async fn list_sessions(&self, user_id: &str, now: i64) -> Result<Vec<SessionRecord>> {
        self.read(|c| c.prepare_cached(LIST_SESSIONS)?.query_map(params![user_id, now], session)?.collect())
    }

    async fn revoke_session(
        &self,
        user_id: &str,
        session_id: &str,
        reason: RevocationReason,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<bool> {
        let (user_id, session_id, audit) = (user_id.to_owned(), session_id.to_owned(), audit.clone());
        self.write(move |c| {
            let found: Option<String> = c
                .prepare_cached(OWN_LIVE_SESSION)?
                .query_row(params![session_id, user_id, now], |row| row.get(0))
                .optional()?;
            let Some(id) = found else { return Ok(Done::Keep(false)) };
            revoke_in(c, &[id], &user_id, reason, now)?;
            append_audit(c, &audit.completed(&user_id, 1))?;
            Ok(Done::Keep(true))
        })
        .await
    }

    async fn revoke_user_sessions(
        &self,
        user_id: &str,
        except: Option<&str>,
        reason: RevocationReason,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Vec<String>> {
        let (user_id, except, audit) = (user_id.to_owned(), except.map(str::to_owned), audit.clone());
        self.write(move |c| {
            let ids = live_session_ids(c, &user_id, except.as_deref(), now)?;
            revoke_in(c, &ids, &user_id, reason, now)?;
            append_audit(c, &audit.completed(&user_id, ids.len()))?;
            Ok(Done::Keep(ids))
        })
        .await
    }

    async fn set_password(
        &self,
        user_id: &str,
        password_hash: &str,
        keep: Option<&str>,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Vec<String>> {
        let (user_id, password_hash, keep) = (user_id.to_owned(), password_hash.to_owned(), keep.map(str::to_owned));
        let audit = audit.clone();
        self.write(move |c| {
            c.prepare_cached(SET_PASSWORD)?.execute(params![password_hash, now, user_id])?;
            let ids = live_session_ids(c, &user_id, keep.as_deref(), now)?;
            revoke_in(c, &ids, &user_id, RevocationReason::PasswordChange, now)?;
            append_audit(c, &audit.completed(&user_id, ids.len()))?;
            Ok(Done::Keep(ids))
        })
        .await
    }

    async fn delete_user(&self, user_id: &str, now: i64, audit: &AuditEvent) -> Result<Vec<String>> {
        let (user_id, audit) = (user_id.to_owned(), audit.clone());
        self.write(move |c| {
            let ids = live_session_ids(c, &user_id, None, now)?;
            revoke_in(c, &ids, &user_id, RevocationReason::AccountDeleted, now)?;
            // Sessions and their token hashes go with the user (ON DELETE CASCADE); the revocation
            // feed keeps the session ids so resource servers still reject their access tokens.
            c.prepare_cached(DELETE_USER)?.execute(params![user_id])?;
            append_audit(c, &audit.completed(&user_id, ids.len()))?;
            Ok(Done::Keep(ids))
        })
        .await
    }

    async fn revocations_since(&self, after: i64, limit: i64) -> Result<Vec<Revocation>> {
        self.read(|c| {
            c.prepare_cached(REVOCATIONS)?
                .query_map(params![after, limit], |row| {
                    Ok(Revocation {
                        seq: row.get(0)?,
                        session_id: row.get(1)?,
                        user_id: row.get(2)?,
                        revoked_at: row.get(3)?,
                        reason: RevocationReason::parse_lenient(&row.get::<_, String>(4)?),
                    })
                })?
                .collect()
        })
    }

    async fn list_users(&self, f: &UserFilter, now: i64) -> Result<Vec<UserSummary>> {
        // Emails are never empty, so "after ''" is every user and the range stays on the index.
        let after = f.after_email.as_deref().unwrap_or("");
        self.read(|c| {
            c.prepare_cached(LIST_USERS)?
                .query_map(params![now, f.email_contains, after, page(f.limit)], |row| {
                    Ok(UserSummary {
                        id: row.get(0)?,
                        email: row.get(1)?,
                        created_at: row.get(2)?,
                        disabled_at: row.get(3)?,
                        live_sessions: row.get(4)?,
                    })
                })?
                .collect()
        })
    }

    async fn set_user_disabled(
        &self,
        user_id: &str,
        disabled: bool,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Option<Vec<String>>> {
        let (user_id, audit) = (user_id.to_owned(), audit.clone());
        self.write(move |c| {
            let was: Option<Option<i64>> =
                c.prepare_cached(USER_DISABLED_AT)?.query_row(params![user_id], |row| row.get(0)).optional()?;
            let Some(was) = was else { return Ok(Done::Keep(None)) };
            if !disabled && was.is_none() {
                return Ok(Done::Keep(Some(Vec::new()))); // enabled already: nothing changes
            }
            c.prepare_cached(if disabled { DISABLE_USER } else { ENABLE_USER })?.execute(params![user_id, now])?;
            // Disabling ends every live session; enabling, those created while disabled (logins
            // that should have been refused): either way, none from before comes back.
            let ids = live_session_ids(c, &user_id, None, now)?;
            revoke_in(c, &ids, &user_id, RevocationReason::UserDisabled, now)?;
            append_audit(c, &audit.completed(&user_id, ids.len()))?;
            Ok(Done::Keep(Some(ids)))
        })
        .await
    }

    async fn list_all_sessions(&self, user_id: Option<&str>, now: i64, limit: i64) -> Result<Vec<SessionRecord>> {
        let limit = page(limit);
        self.read(|c| match user_id {
            Some(user_id) => {
                c.prepare_cached(USER_LIVE_SESSIONS)?.query_map(params![user_id, now, limit], session)?.collect()
            }
            None => c.prepare_cached(ALL_LIVE_SESSIONS)?.query_map(params![now, limit], session)?.collect(),
        })
    }

    async fn revoke_session_by_id(
        &self,
        session_id: &str,
        reason: RevocationReason,
        now: i64,
        audit: &AuditEvent,
    ) -> Result<Option<String>> {
        let (session_id, audit) = (session_id.to_owned(), audit.clone());
        self.write(move |c| {
            let owner: Option<String> = c
                .prepare_cached(LIVE_SESSION_OWNER)?
                .query_row(params![session_id, now], |row| row.get(0))
                .optional()?;
            let Some(user_id) = owner else { return Ok(Done::Keep(None)) };
            revoke_in(c, std::slice::from_ref(&session_id), &user_id, reason, now)?;
            append_audit(c, &audit.completed(&user_id, 1))?;
            Ok(Done::Keep(Some(user_id)))
        })
        .await
    }

    async fn signing_keys(&self) -> Result<Vec<StoredKey>> {
        // A read connection sees every committed insert or retirement, and a caller's own are
        // answered only once committed; no need to queue behind the writer or take its lock.
        self.read(|c| {
            c.prepare_cached(SIGNING_KEYS)?
                .query_map([], |row| {
                    Ok(StoredKey {
                        kid: row.get(0)?,
                        alg: row.get(1)?,
                        private_key: row.get(2)?,
                        created_at: row.get(3)?,
                        retired_at: row.get(4)?,
                    })
                })?
                .collect()
        })
    }

    async fn insert_signing_key(&self, k: &StoredKey) -> Result<bool> {
        let k = k.clone();
        self.write(move |c| {
            let inserted = c.prepare_cached(INSERT_KEY)?.execute(params![
                k.kid,
                k.alg,
                k.private_key,
                k.created_at,
                k.retired_at
            ])?;
            Ok(Done::Keep(inserted == 1))
        })
        .await
    }

    async fn retire_signing_key(&self, kid: &str, now: i64) -> Result<bool> {
        let kid = kid.to_owned();
        self.write(move |c| Ok(Done::Keep(c.prepare_cached(RETIRE_KEY)?.execute(params![now, kid])? == 1))).await
    }

    async fn wrapped_master_key(&self) -> Result<Option<WrappedMasterKey>> {
        self.read(|c| {
            c.prepare_cached(WRAPPED_MASTER_KEY)?
                .query_row([], |row| {
                    Ok(WrappedMasterKey { key_name: row.get(0)?, ciphertext: row.get(1)?, updated_at: row.get(2)? })
                })
                .optional()
        })
    }

    async fn replace_wrapped_master_key(&self, expected: Option<&str>, new: &WrappedMasterKey) -> Result<bool> {
        let (expected, new) = (expected.map(str::to_owned), new.clone());
        self.write(move |c| {
            let changed = match expected {
                None => c.prepare_cached(INSERT_WRAPPED_MASTER_KEY)?.execute(params![
                    new.key_name,
                    new.ciphertext,
                    new.updated_at
                ])?,
                Some(old) => c.prepare_cached(REPLACE_WRAPPED_MASTER_KEY)?.execute(params![
                    new.key_name,
                    new.ciphertext,
                    new.updated_at,
                    old
                ])?,
            };
            Ok(Done::Keep(changed == 1))
        })
        .await
    }

    async fn append_audit(&self, e: &AuditEvent) -> Result<()> {
        let e = e.clone();
        self.write(move |c| Ok(Done::Keep(append_audit(c, &e)?))).await
    }

    async fn prune_audit(&self, before: i64) -> Result<u64> {
        self.write(move |c| Ok(Done::Keep(c.prepare_cached(PRUNE_AUDIT)?.execute(params![before])? as u64))).await
    }

    async fn audit_events(&self, f: &AuditFilter) -> Result<Vec<AuditRecord>> {
        let limit = if f.limit > 0 { f.limit } else { 100 };
        self.read(|c| {
            c.prepare_cached(AUDIT_EVENTS)?
                .query_map(params![f.user_id, f.kind.map(AuditKind::as_str), f.since, limit], |row| {
                    Ok(AuditRecord {
                        id: row.get(0)?,
                        event: AuditEvent {
                            at: row.get(1)?,
                            kind: AuditKind::parse_lenient(&row.get::<_, String>(2)?),
                            user_id: row.get(3)?,
                            session_id: row.get(4)?,
                            ip: row.get(5)?,
                            user_agent: row.get(6)?,
                            detail: row.get(7)?,
                        },
                    })
                })?
                .collect()
        })
    }

    async fn create_client(&self, client: &ClientRecord) -> Result<()> {
        let k = client.clone();
        self.write(move |c| {
            c.prepare_cached(INSERT_CLIENT)?.execute(params![
                k.id,
                k.name,
                k.secret_hash,
                k.jwks,
                k.scopes,
                k.grant_id,
                k.created_at,
                k.secret_rotated_at
            ])?;
            Ok(Done::Keep(()))
        })
        .await
    }

    async fn client(&self, id: &str) -> Result<Option<ClientRecord>> {
        let sql = format!("SELECT {CLIENT_COLS} FROM oauth_clients WHERE id = ?1");
        self.read(|c| c.prepare_cached(&sql)?.query_row(params![id], client).optional())
    }

    async fn list_clients(&self) -> Result<Vec<ClientRecord>> {
        let sql = format!("SELECT {CLIENT_COLS} FROM oauth_clients ORDER BY id");
        self.read(|c| c.prepare_cached(&sql)?.query_map([], client)?.collect())
    }

    async fn set_client_secret(&self, id: &str, secret_hash: &str, now: i64) -> Result<bool> {
        let (id, hash) = (id.to_owned(), secret_hash.to_owned());
        self.write(move |c| Ok(Done::Keep(c.prepare_cached(SET_CLIENT_SECRET)?.execute(params![id, hash, now])? == 1)))
            .await
    }

    async fn remove_client(&self, id: &str, now: i64) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |c| {
            let grant: Option<String> =
                c.prepare_cached(CLIENT_GRANT)?.query_row(params![id], |row| row.get(0)).optional()?;
            let Some(grant) = grant else { return Ok(Done::Keep(false)) };
            c.prepare_cached(DELETE_CLIENT)?.execute(params![id])?;
            c.prepare_cached(FORGET_ASSERTIONS)?.execute(params![id, i64::MAX])?;
            c.prepare_cached(PUBLISH)?.execute(params![grant, id, now, RevocationReason::ClientRemoved.as_str()])?;
            Ok(Done::Keep(true))
        })
        .await
    }

    async fn revoke_client_grant(
        &self,
        id: &str,
        grant_id: &str,
        new_grant_id: &str,
        reason: RevocationReason,
        now: i64,
    ) -> Result<bool> {
        let (id, grant, new_grant) = (id.to_owned(), grant_id.to_owned(), new_grant_id.to_owned());
        self.write(move |c| {
            if c.prepare_cached(SET_CLIENT_GRANT)?.execute(params![id, grant, new_grant])? == 0 {
                return Ok(Done::Keep(false));
            }
            c.prepare_cached(PUBLISH)?.execute(params![grant, id, now, reason.as_str()])?;
            Ok(Done::Keep(true))
        })
        .await
    }

    async fn spend_assertion(&self, client_id: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool> {
        let (client_id, jti) = (client_id.to_owned(), jti.to_owned());
        self.write(move |c| {
            c.prepare_cached(FORGET_ASSERTIONS)?.execute(params![client_id, now])?;
            Ok(Done::Keep(c.prepare_cached(SPEND_ASSERTION)?.execute(params![client_id, jti, expires_at])? == 1))
        })
        .await
    }

    async fn spend_dpop_proof(&self, jkt: &str, jti: &str, expires_at: i64, now: i64) -> Result<bool> {
        let (jkt, jti) = (jkt.to_owned(), jti.to_owned());
        self.write(move |c| {
            c.prepare_cached(FORGET_DPOP_PROOFS)?.execute(params![now])?;
            Ok(Done::Keep(c.prepare_cached(SPEND_DPOP_PROOF)?.execute(params![jkt, jti, expires_at])? == 1))
        })
        .await
    }

    async fn enqueue_mail(&self, mail: &NewMail) -> Result<()> {
        let m = mail.clone();
        self.write(move |c| {
            insert_mail(c, &m)?;
            Ok(Done::Keep(()))
        })
        .await
    }

    async fn request_password_reset(&self, r: &LinkRequest) -> Result<bool> {
        let r = r.clone();
        self.write(move |c| {
            let found: Option<(String, Option<i64>)> = c
                .prepare_cached("SELECT id, disabled_at FROM users WHERE email = ?1")?
                .query_row(params![r.email], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let Some((user_id, disabled_at)) = found else { return Ok(Done::Keep(false)) };
            if disabled_at.is_some() {
                return Ok(Done::Keep(true));
            }
            c.prepare_cached("DELETE FROM password_resets WHERE user_id = ?1")?.execute(params![user_id])?;
            c.prepare_cached(
                "INSERT INTO password_resets (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
            )?
            .execute(params![r.token.as_bytes(), user_id, r.mail.created_at, r.expires_at])?;
            insert_mail(c, &r.mail)?;
            append_audit(c, &AuditEvent { user_id: Some(user_id), ..r.audit.clone() })?;
            Ok(Done::Keep(true))
        })
        .await
    }

    async fn reset_password(&self, r: &PasswordReset) -> Result<Option<PasswordResetDone>> {
        let r = r.clone();
        self.write(move |c| {
            let spent: Option<(String, String)> = c
                .prepare_cached(
                    "UPDATE password_resets SET used_at = ?2
                     WHERE token_hash = ?1 AND used_at IS NULL AND expires_at > ?2
                     RETURNING user_id, (SELECT email FROM users WHERE users.id = password_resets.user_id)",
                )?
                .query_row(params![r.token.as_bytes(), r.now], |row| Ok((row.get(0)?, row.get(1)?)))
                .optional()?;
            let Some((user_id, email)) = spent else { return Ok(Done::Keep(None)) };
            c.prepare_cached(SET_PASSWORD)?.execute(params![r.password_hash, r.now, user_id])?;
            let ids = live_session_ids(c, &user_id, None, r.now)?;
            revoke_in(c, &ids, &user_id, RevocationReason::PasswordReset, r.now)?;
            insert_mail(c, &NewMail { recipient: email, ..r.notice.clone() })?;
            append_audit(c, &AuditEvent { user_id: Some(user_id.clone()), ..r.audit.clone() })?;
            Ok(Done::Keep(Some(PasswordResetDone { user_id, revoked: ids })))
        })
        .await
    }

    async fn request_verification(&self, r: &LinkRequest) -> Result<bool> {
        let r = r.clone();
        self.write(move |c| {
            let found: Option<(String, Option<i64>, Option<i64>)> = c
                .prepare_cached("SELECT id, disabled_at, email_verified_at FROM users WHERE email = ?1")?
                .query_row(params![r.email], |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)))
                .optional()?;
            let Some((user_id, disabled_at, verified_at)) = found else { return Ok(Done::Keep(false)) };
            if disabled_at.is_some() || verified_at.is_some() {
                return Ok(Done::Keep(true));
            }
            c.prepare_cached(DROP_VERIFY_LINKS)?.execute(params![user_id])?;
            insert_link(c, "verify", &user_id, &r.email, None, None, &r.token, r.mail.created_at, r.expires_at)?;
            insert_mail(c, &r.mail)?;
            append_audit(c, &AuditEvent { user_id: Some(user_id), ..r.audit.clone() })?;
            Ok(Done::Keep(true))
        })
        .await
    }

    async fn verify_email(&self, used: &EmailTokenUse) -> Result<Option<String>> {
        let used = used.clone();
        self.write(move |c| {
            let Some((user_id, email, ..)) = spend_link(c, "verify", &used)? else { return Ok(Done::Undo(None)) };
            if enabled_email(c, &user_id)?.as_deref() != Some(email.as_str()) {
                // The account's address changed since the link was sent (or it was disabled).
                return Ok(Done::Undo(None));
            }
            c.prepare_cached(MARK_VERIFIED)?.execute(params![user_id, used.now])?;
            c.prepare_cached(SESSIONS_VERIFIED)?.execute(params![user_id])?;
            append_audit(c, &AuditEvent { user_id: Some(user_id.clone()), ..used.audit.clone() })?;
            Ok(Done::Keep(Some(user_id)))
        })
        .await
    }

    async fn request_email_change(&self, r: &EmailChangeRequest) -> Result<bool> {
        let r = r.clone();
        self.write(move |c| {
            let Some(current) = enabled_email(c, &r.user_id)? else { return Ok(Done::Keep(false)) };
            if email_taken(c, &r.new_email, &r.user_id)? || current == r.new_email {
                append_audit(c, &AuditEvent { detail: Some("address taken".into()), ..r.audit.clone() })?;
                return Ok(Done::Keep(false));
            }
            c.prepare_cached(DROP_PENDING_CHANGE)?.execute(params![r.user_id])?;
            let (old, id, at) = (Some(current.as_str()), Some(r.change_id.as_str()), r.confirm_mail.created_at);
            insert_link(c, "change", &r.user_id, &r.new_email, old, id, &r.confirm, at, r.expires_at)?;
            insert_link(c, "cancel", &r.user_id, &r.new_email, old, id, &r.cancel, at, r.cancel_expires_at)?;
            insert_mail(c, &r.confirm_mail)?;
            insert_mail(c, &NewMail { recipient: current, ..r.notice_mail.clone() })?;
            append_audit(c, &r.audit)?;
            Ok(Done::Keep(true))
        })
        .await
    }

    async fn confirm_email_change(&self, used: &EmailTokenUse) -> Result<EmailChangeOutcome> {
        let used = used.clone();
        self.write(move |c| {
            let Some((user_id, new_email, Some(old_email), _)) = spend_link(c, "change", &used)? else {
                return Ok(Done::Undo(EmailChangeOutcome::Invalid));
            };
            if enabled_email(c, &user_id)?.as_deref() != Some(old_email.as_str()) {
                return Ok(Done::Undo(EmailChangeOutcome::Invalid));
            }
            if email_taken(c, &new_email, &user_id)? {
                return Ok(Done::Undo(EmailChangeOutcome::Taken));
            }
            c.prepare_cached(SET_EMAIL)?.execute(params![user_id, new_email, used.now])?;
            c.prepare_cached(SESSIONS_VERIFIED)?.execute(params![user_id])?;
            drop_old_address_links(c, &user_id)?;
            append_audit(c, &AuditEvent { user_id: Some(user_id.clone()), ..used.audit.clone() })?;
            Ok(Done::Keep(EmailChangeOutcome::Changed { user_id }))
        })
        .await
    }

    async fn cancel_email_change(&self, used: &EmailTokenUse) -> Result<Option<EmailChangeCancelled>> {
        let used = used.clone();
        self.write(move |c| {
            let Some((user_id, new_email, Some(old_email), Some(change_id))) = spend_link(c, "cancel", &used)? else {
                return Ok(Done::Undo(None));
            };
            let pending = c
                .prepare_cached(
                    "UPDATE email_tokens SET used_at = ?2 WHERE change_id = ?1 AND kind = 'change' AND used_at IS NULL",
                )?
                .execute(params![change_id, used.now])?
                == 1;
            let audit = |detail: &str| AuditEvent {
                user_id: Some(user_id.clone()),
                detail: Some(detail.to_owned()),
                ..used.audit.clone()
            };
            if pending {
                append_audit(c, &audit("pending change cancelled"))?;
                return Ok(Done::Keep(Some(EmailChangeCancelled { user_id, undone: false, revoked: Vec::new() })));
            }
            // Confirmed already: undo it, if the account still has the new address and nobody
            // took the old one since.
            if enabled_email(c, &user_id)?.as_deref() != Some(new_email.as_str())
                || email_taken(c, &old_email, &user_id)?
            {
                return Ok(Done::Undo(None));
            }
            c.prepare_cached(SET_EMAIL)?.execute(params![user_id, old_email, used.now])?;
            c.prepare_cached(DROP_PENDING_CHANGE)?.execute(params![user_id])?;
            drop_old_address_links(c, &user_id)?;
            let ids = live_session_ids(c, &user_id, None, used.now)?;
            revoke_in(c, &ids, &user_id, RevocationReason::EmailChangeCancelled, used.now)?;
            append_audit(c, &audit("confirmed change undone"))?;
            Ok(Done::Keep(Some(EmailChangeCancelled { user_id, undone: true, revoked: ids })))
        })
        .await
    }

    async fn claim_mail(&self, now: i64, lease_until: i64, limit: i64) -> Result<Vec<MailRecord>> {
        let sql = format!(
            "UPDATE mail_outbox SET attempts = attempts + 1, next_attempt_at = ?2
             WHERE id IN (SELECT id FROM mail_outbox WHERE state = 'queued' AND next_attempt_at <= ?1
                          ORDER BY next_attempt_at, created_at, id LIMIT ?3)
             RETURNING {MAIL_COLS}"
        );
        let limit = limit.max(1);
        let mut claimed = self
            .write(move |c| {
                let rows = c
                    .prepare_cached(&sql)?
                    .query_map(params![now, lease_until, limit], mail)?
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Done::Keep(rows))
            })
            .await?;
        claimed.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(claimed)
    }

    async fn mail_sent(&self, id: &str, now: i64) -> Result<bool> {
        let id = id.to_owned();
        self.write(move |c| {
            let done = c
                .prepare_cached(
                    "UPDATE mail_outbox SET state = 'sent', sent_at = ?2 WHERE id = ?1 AND state = 'queued'",
                )?
                .execute(params![id, now])?;
            Ok(Done::Keep(done == 1))
        })
        .await
    }

    async fn mail_failed(&self, id: &str, error: &str, retry_at: Option<i64>) -> Result<bool> {
        let (id, error) = (id.to_owned(), error.to_owned());
        self.write(move |c| {
            let done = c
                .prepare_cached(
                    "UPDATE mail_outbox SET last_error = ?2,
                        state = CASE WHEN ?3 IS NULL THEN 'failed' ELSE 'queued' END,
                        next_attempt_at = COALESCE(?3, next_attempt_at)
                     WHERE id = ?1 AND state = 'queued'",
                )?
                .execute(params![id, error, retry_at])?;
            Ok(Done::Keep(done == 1))
        })
        .await
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
        let sql = format!(
            "SELECT {MAIL_COLS} FROM mail_outbox WHERE (?1 IS NULL OR state = ?1)
             ORDER BY created_at DESC, id DESC LIMIT ?2"
        );
        let state = f.state.map(MailState::as_str);
        self.read(|c| c.prepare_cached(&sql)?.query_map(params![state, page(f.limit)], mail)?.collect())
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

/// The columns of a [`MailRecord`], in [`mail`]'s order.
const MAIL_COLS: &str =
    "id, recipient, subject, text_body, html_body, created_at, state, attempts, next_attempt_at, last_error, sent_at";

/// Queues `m` in the outbox on `c`: in the caller's job, so in its transaction (a flow that sends
/// mail because of an event writes both in one job).
pub(super) fn insert_mail(c: &Connection, m: &NewMail) -> rusqlite::Result<()> {
    c.prepare_cached(
        "INSERT INTO mail_outbox (id, recipient, subject, text_body, html_body, created_at, next_attempt_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
    )?
    .execute(params![m.id, m.recipient, m.subject, m.text_body, m.html_body, m.created_at])?;
    Ok(())
}

/// An outbox row in [`MAIL_COLS`] order.
fn mail(row: &Row<'_>) -> rusqlite::Result<MailRecord> {
    let state: String = row.get(6)?;
    Ok(MailRecord {
        id: row.get(0)?,
        recipient: row.get(1)?,
        subject: row.get(2)?,
        text_body: row.get(3)?,
        html_body: row.get(4)?,
        created_at: row.get(5)?,
        state: MailState::parse(&state).ok_or_else(|| {
            rusqlite::Error::FromSqlConversionFailure(
                6,
                rusqlite::types::Type::Text,
                format!("mail state {state}").into(),
            )
        })?,
        attempts: row.get(7)?,
        next_attempt_at: row.get(8)?,
        last_error: row.get(9)?,
        sent_at: row.get(10)?,
    })
}

/// A client row in [`CLIENT_COLS`] order.
fn client(row: &Row<'_>) -> rusqlite::Result<ClientRecord> {
    Ok(ClientRecord {
        id: row.get(0)?,
        name: row.get(1)?,
        secret_hash: row.get(2)?,
        jwks: row.get(3)?,
        scopes: row.get(4)?,
        grant_id: row.get(5)?,
        created_at: row.get(6)?,
        secret_rotated_at: row.get(7)?,
    })
}
