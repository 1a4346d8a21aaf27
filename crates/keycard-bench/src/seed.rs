//! Seeds a keycard SQLite database with many live sessions, fast: through keycard-store's own
//! `Store::create_session` (the schema and its rules stay the store's), many at once so the
//! writer commits them in large groups.
//!
//! Creating 100k sessions through `POST /auth/login` would take half an hour of Argon2 on two
//! cores; the memory target only needs them to exist. Each session gets one unused refresh token
//! (`kcrt_` + base64url of 32 random bytes, stored as its SHA-256), like a fresh login's: made
//! and hashed by keycard-core's `refresh` module, as the server does.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, bail};
use keycard_core::refresh::{RefreshToken, TokenHash};
use keycard_store::{AuditEvent, AuditKind, NewSession, SqliteStore, Store, UserFilter, UserSummary};
use tokio::task::JoinSet;

/// Sessions created at once (each one job of the store's writer, committed in groups).
const IN_FLIGHT: usize = 512;
const IDLE_TTL: i64 = 7 * 86_400;
const ABSOLUTE_TTL: i64 = 30 * 86_400;

/// Creates `count` sessions, spread over the existing users, in the database at `path` (which
/// a keycard server has already created; the server must be stopped). Returns the number of
/// live sessions now in the store.
pub async fn seed_sessions(path: &Path, count: usize) -> anyhow::Result<i64> {
    let store =
        SqliteStore::open(&path.display().to_string(), 1).await.with_context(|| format!("open {}", path.display()))?;
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_secs() as i64;
    let users: Vec<String> = all_users(&store, now).await?.into_iter().map(|u| u.id).collect();
    if users.is_empty() {
        bail!("{} has no users: sign some up first (the compare command does)", path.display());
    }
    let shared: Arc<dyn Store> = Arc::new(store.clone());
    let mut running: JoinSet<keycard_store::Result<()>> = JoinSet::new();
    for i in 0..count {
        if running.len() >= IN_FLIGHT {
            running
                .join_next()
                .await
                .context("a seeding task")?
                .context("a seeding task")?
                .context("creating a session")?;
        }
        let session = NewSession {
            id: uuid_v4()?,
            user_id: users[i % users.len()].clone(),
            created_at: now,
            idle_expires_at: now + IDLE_TTL,
            absolute_expires_at: now + ABSOLUTE_TTL,
            user_agent: Some("keycard-bench seed".into()),
            ip: Some("127.0.0.1".into()),
            amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
            auth_time: now,
            dpop_jkt: None,
        };
        let login = AuditEvent {
            user_id: Some(session.user_id.clone()),
            session_id: Some(session.id.clone()),
            ..AuditEvent::new(AuditKind::Login, now)
        };
        let store = shared.clone();
        running.spawn(async move { store.create_session(&session, &random_token_hash(), &login).await });
    }
    while let Some(done) = running.join_next().await {
        done.context("a seeding task")?.context("creating a session")?;
    }
    let live = all_users(&store, now).await?.iter().map(|u| u.live_sessions).sum();
    store.close().await;
    Ok(live)
}

/// Every user, a page at a time.
async fn all_users(store: &SqliteStore, now: i64) -> anyhow::Result<Vec<UserSummary>> {
    let (mut users, mut filter) = (Vec::new(), UserFilter { limit: 1000, ..UserFilter::default() });
    loop {
        let page = store.list_users(&filter, now).await?;
        let Some(last) = page.last() else { return Ok(users) };
        filter.after_email = Some(last.email.clone());
        users.extend(page);
    }
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
