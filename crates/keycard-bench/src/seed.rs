//! Seeds a keycard SQLite database with many live sessions, fast: rows inserted directly
//! (schema of crates/keycard-store/migrations/sqlite/0001_init.sql), 5,000 per transaction.
//!
//! Creating 100k sessions through `POST /auth/login` would take half an hour of Argon2 on two
//! cores; the memory target only needs them to exist. Each session gets one unused refresh token
//! (`kcrt_` + base64url of 32 random bytes, stored as its SHA-256), like a fresh login's: made
//! and hashed by keycard-core's `refresh` module, as the server does.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context, bail};
use keycard_core::refresh::{RefreshToken, TokenHash};
use sqlx::Connection;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};

const BATCH: usize = 5_000;
const IDLE_TTL: i64 = 7 * 86_400;
const ABSOLUTE_TTL: i64 = 30 * 86_400;

/// Inserts `count` sessions, spread over the existing users, into the database at `path` (which
/// a keycard server has already created and migrated). Returns the number of sessions now live.
pub async fn seed_sessions(path: &Path, count: usize) -> anyhow::Result<i64> {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))?
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true);
    let mut db = SqliteConnection::connect_with(&options).await.with_context(|| format!("open {}", path.display()))?;
    let users: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM users ORDER BY created_at, id").fetch_all(&mut db).await?;
    if users.is_empty() {
        bail!("{} has no users: sign some up first (the compare command does)", path.display());
    }
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let mut done = 0;
    while done < count {
        let mut tx = db.begin().await?;
        for i in done..(done + BATCH).min(count) {
            let session_id = uuid_v4()?;
            let (user_id,) = &users[i % users.len()];
            sqlx::query(
                "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip)
                 VALUES (?1, ?2, ?3, ?3, ?4, ?5, 'keycard-bench seed', '127.0.0.1')",
            )
            .bind(&session_id)
            .bind(user_id)
            .bind(now)
            .bind(now + IDLE_TTL)
            .bind(now + ABSOLUTE_TTL)
            .execute(&mut *tx)
            .await?;
            sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)")
                .bind(random_token_hash().as_bytes())
                .bind(&session_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        done = (done + BATCH).min(count);
    }
    let (live,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND idle_expires_at > ?1")
            .bind(now)
            .fetch_one(&mut db)
            .await?;
    db.close().await?;
    Ok(live)
}

fn random<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("OS randomness: {e}"))?;
    Ok(bytes)
}

/// The stored form of a fresh refresh token.
pub fn random_token_hash() -> TokenHash {
    RefreshToken::generate().hash()
}

/// A random (version 4) UUID in its hyphenated form, like the server's session ids.
pub fn uuid_v4() -> anyhow::Result<String> {
    let mut b = random::<16>()?;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[0..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..32]))
}
