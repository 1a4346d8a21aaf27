//! `keycard-bench store`: a what-if for the SQLite hot paths, in-process, on keycard's own schema
//! (a database created by `keycard serve`). The same statements as keycard-store's SQLite
//! backend, run three ways:
//!
//! - `sqlx`: as keycard-store does it today (a one-connection writer pool, `BEGIN IMMEDIATE`, one
//!   statement per round trip to sqlx's worker thread, the audit row in its own transaction after
//!   the commit; reads through a pool of reader connections);
//! - `thread`: one writer thread owning a rusqlite connection; a rotation (audit row included) is
//!   one job, one hand-off; reads run inline on a per-thread read-only connection;
//! - `group`: the same writer thread committing every job waiting in its queue in one
//!   transaction (a savepoint per job, so one bad job does not undo the others).
//!
//! It measures what the server would gain from changing how it talks to SQLite, before anyone
//! rewrites the store.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use keycard_core::refresh::TokenHash;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous};
use tokio::sync::{mpsc, oneshot};

use crate::seed;
use crate::stats::{Stats, ms, proc_sample};

const ROTATE: &str = "UPDATE refresh_tokens SET used_at = ?1 WHERE hash = ?2 AND used_at IS NULL RETURNING session_id";
const TOUCH: &str = "UPDATE sessions SET last_used_at = ?3, idle_expires_at = MIN(?2 + ?3, absolute_expires_at)
     WHERE id = ?1 AND revoked_at IS NULL AND idle_expires_at > ?3 AND absolute_expires_at > ?3
     RETURNING id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at, user_agent, ip";
const INSERT: &str = "INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)";
const AUDIT: &str = "INSERT INTO audit_events (at, kind, user_id, session_id, ip, user_agent, detail)
     VALUES (?1, 'refresh', ?2, ?3, '127.0.0.1', 'keycard-bench', NULL)";
const SESSION_USER: &str =
    "SELECT u.id, u.email, u.password_hash, u.created_at FROM sessions s JOIN users u ON u.id = s.user_id
     WHERE s.id = ?1 AND s.user_id = ?2 AND s.revoked_at IS NULL AND s.absolute_expires_at > ?3";
const IDLE_TTL: i64 = 7 * 86_400;

type SessionRow = (String, String, i64, i64, i64, i64, Option<String>, Option<String>);
type UserRow = (String, String, String, i64);

/// One chain: its session, its user, and the hash of its current refresh token.
#[derive(Clone)]
struct Chain {
    session: String,
    user: String,
    token: TokenHash,
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

/// A user (no password: nobody logs in) and `n` live sessions with known token hashes.
async fn create_chains(database: &Path, n: usize) -> anyhow::Result<Vec<Chain>> {
    let pool = sqlx_pool(database, 1, false).await?;
    let (user, now) = (seed::uuid_v4()?, now());
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES (?1, ?2, 'x', ?3, ?3)")
        .bind(&user)
        .bind(format!("store-bench-{user}@example.com"))
        .bind(now)
        .execute(&pool)
        .await?;
    let mut chains = Vec::with_capacity(n);
    for _ in 0..n {
        let chain = Chain { session: seed::uuid_v4()?, user: user.clone(), token: seed::random_token_hash() };
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at)
             VALUES (?1, ?2, ?3, ?3, ?3 + 604800, ?3 + 2592000)",
        )
        .bind(&chain.session)
        .bind(&user)
        .bind(now)
        .execute(&pool)
        .await?;
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES (?1, ?2, ?3)")
            .bind(chain.token.as_bytes())
            .bind(&chain.session)
            .bind(now)
            .execute(&pool)
            .await?;
        chains.push(chain);
    }
    pool.close().await;
    Ok(chains)
}

/// Runs every variant on `database` (a keycard database with users and sessions) with `tasks`
/// concurrent chains, `ops` operations per variant; prints one line per variant.
pub async fn run(database: &Path, tasks: usize, ops: usize) -> anyhow::Result<()> {
    let chains = create_chains(database, tasks).await?;
    println!("SQLite what-if on {} ({tasks} concurrent chains, {ops} operations each line)", database.display());
    println!("variant            op        ops/s      p50       p99   CPU µs/op  cswitch/op");
    let pool = sqlx_pool(database, 1, false).await?;
    let readers = sqlx_pool(database, 4, true).await?;
    let writer_pool = pool.clone();
    let sqlx_chains = measure("sqlx", "rotate", tasks, ops, chains.clone(), move |c| {
        let pool = writer_pool.clone();
        async move { sqlx_rotate(&pool, c).await }
    })
    .await?;
    pool.close().await;
    let reader_pool = readers.clone();
    measure("sqlx", "read", tasks, ops, sqlx_chains.clone(), move |c| {
        let readers = reader_pool.clone();
        async move { sqlx_read(&readers, c).await }
    })
    .await?;
    readers.close().await;
    let mut chains = sqlx_chains;
    for group in [false, true] {
        let writer = Writer::start(database, group)?;
        let name = if group { "group" } else { "thread" };
        chains = measure(name, "rotate", tasks, ops, chains, move |c| {
            let writer = writer.clone();
            async move { writer.rotate(c).await }
        })
        .await?;
    }
    let path = Arc::new(database.to_path_buf());
    measure("thread", "read", tasks, ops, chains, move |c| {
        let path = path.clone();
        async move { inline_read(&path, c) }
    })
    .await?;
    Ok(())
}

/// Runs `op` on `tasks` chains concurrently until `ops` operations are done, and prints the line.
async fn measure<F, Fut>(
    variant: &str,
    what: &str,
    tasks: usize,
    ops: usize,
    chains: Vec<Chain>,
    op: F,
) -> anyhow::Result<Vec<Chain>>
where
    F: Fn(Chain) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = anyhow::Result<Chain>> + Send,
{
    let left = Arc::new(AtomicUsize::new(ops));
    let before = proc_sample("self").unwrap_or_default();
    let started = Instant::now();
    let mut handles = Vec::new();
    for chain in chains.into_iter().take(tasks) {
        let (op, left) = (op.clone(), left.clone());
        handles.push(tokio::spawn(async move {
            let mut stats = Stats::default();
            let mut chain = chain;
            while left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok() {
                let t = Instant::now();
                chain = op(chain).await?;
                stats.answered(200, t.elapsed());
            }
            anyhow::Ok((chain, stats))
        }));
    }
    let mut all = Stats::default();
    let mut chains = Vec::new();
    for h in handles {
        let (chain, stats) = h.await??;
        chains.push(chain);
        all.merge(stats);
    }
    let elapsed = started.elapsed();
    let after = proc_sample("self").unwrap_or_default();
    let n = all.requests().max(1) as f64;
    let p = all.percentiles();
    println!(
        "{variant:<18} {what:<6} {:>10.0} {:>9} {:>9} {:>11.1} {:>11.1}",
        n / elapsed.as_secs_f64(),
        ms(p.p50),
        ms(p.p99),
        after.cpu.saturating_sub(before.cpu).as_secs_f64() * 1e6 / n,
        after.switches.saturating_sub(before.switches) as f64 / n
    );
    Ok(chains)
}

async fn sqlx_pool(database: &Path, connections: u32, read_only: bool) -> anyhow::Result<SqlitePool> {
    // The options of keycard-store's SqliteStore::open.
    let options = SqliteConnectOptions::new()
        .filename(database)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(5))
        .statement_cache_capacity(128)
        .read_only(read_only);
    Ok(SqlitePoolOptions::new().max_connections(connections).connect_with(options).await?)
}

/// keycard-store's `rotate_refresh` (winning path) plus the refresh handler's audit row.
async fn sqlx_rotate(pool: &SqlitePool, mut c: Chain) -> anyhow::Result<Chain> {
    let (now, next) = (now(), seed::random_token_hash());
    let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
    let won: Option<(String,)> =
        sqlx::query_as(ROTATE).bind(now).bind(c.token.as_bytes()).fetch_optional(&mut *tx).await?;
    let (session_id,) = won.context("token already used")?;
    let row: Option<SessionRow> =
        sqlx::query_as(TOUCH).bind(&session_id).bind(IDLE_TTL).bind(now).fetch_optional(&mut *tx).await?;
    row.context("session not live")?;
    sqlx::query(INSERT).bind(next.as_bytes()).bind(&session_id).bind(now).execute(&mut *tx).await?;
    tx.commit().await?;
    sqlx::query(AUDIT).bind(now).bind(&c.user).bind(&session_id).execute(pool).await?;
    c.token = next;
    Ok(c)
}

/// keycard-store's `session_user` (the `/auth/me` lookup).
async fn sqlx_read(pool: &SqlitePool, c: Chain) -> anyhow::Result<Chain> {
    let row: Option<UserRow> =
        sqlx::query_as(SESSION_USER).bind(&c.session).bind(&c.user).bind(now()).fetch_optional(pool).await?;
    row.context("no user")?;
    Ok(c)
}

thread_local! {
    static READER: std::cell::RefCell<Option<Connection>> = const { std::cell::RefCell::new(None) };
}

/// The same lookup on this thread's own read-only connection, inline: a cached point lookup
/// takes microseconds, less than a hand-off to another thread.
fn inline_read(path: &Path, c: Chain) -> anyhow::Result<Chain> {
    READER.with(|cell| {
        let mut slot = cell.borrow_mut();
        if slot.is_none() {
            let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            *slot = Some(conn);
        }
        let Some(conn) = slot.as_ref() else { anyhow::bail!("no reader") };
        let row: Option<UserRow> = conn
            .prepare_cached(SESSION_USER)?
            .query_row(params![c.session, c.user, now()], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .optional()?;
        row.context("no user")?;
        Ok(c)
    })
}

type Job = (Chain, oneshot::Sender<anyhow::Result<Chain>>);

/// The single writer thread.
#[derive(Clone)]
struct Writer {
    jobs: mpsc::Sender<Job>,
}

impl Writer {
    fn start(path: &Path, group: bool) -> anyhow::Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON;")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (jobs, mut queue) = mpsc::channel::<Job>(1024);
        std::thread::Builder::new().name("sqlite-writer".into()).spawn(move || {
            while let Some(first) = queue.blocking_recv() {
                let mut batch = vec![first];
                while group && batch.len() < 64 {
                    match queue.try_recv() {
                        Ok(job) => batch.push(job),
                        Err(_) => break,
                    }
                }
                let results = commit_batch(&conn, batch.iter().map(|(c, _)| c.clone()).collect());
                for ((_, reply), result) in batch.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
        })?;
        Ok(Self { jobs })
    }

    async fn rotate(&self, chain: Chain) -> anyhow::Result<Chain> {
        let (tx, rx) = oneshot::channel();
        self.jobs.send((chain, tx)).await.map_err(|_| anyhow::anyhow!("writer gone"))?;
        rx.await?
    }
}

/// One transaction for the whole batch; each rotation in a savepoint.
fn commit_batch(conn: &Connection, chains: Vec<Chain>) -> Vec<anyhow::Result<Chain>> {
    let begin = conn.execute_batch("BEGIN IMMEDIATE");
    if let Err(e) = begin {
        return chains.into_iter().map(|_| Err(anyhow::anyhow!("begin: {e}"))).collect();
    }
    let results: Vec<_> = chains
        .into_iter()
        .map(|c| {
            conn.execute_batch("SAVEPOINT r")?;
            match rotate_one(conn, c) {
                Ok(c) => {
                    conn.execute_batch("RELEASE r")?;
                    Ok(c)
                }
                Err(e) => {
                    conn.execute_batch("ROLLBACK TO r; RELEASE r")?;
                    Err(e)
                }
            }
        })
        .collect();
    match conn.execute_batch("COMMIT") {
        Ok(()) => results,
        Err(e) => results.into_iter().map(|_| Err(anyhow::anyhow!("commit: {e}"))).collect(),
    }
}

fn rotate_one(conn: &Connection, mut c: Chain) -> anyhow::Result<Chain> {
    let (now, next) = (now(), seed::random_token_hash());
    let session_id: String = conn
        .prepare_cached(ROTATE)?
        .query_row(params![now, c.token.as_bytes()], |r| r.get(0))
        .context("token already used")?;
    let live: Option<String> =
        conn.prepare_cached(TOUCH)?.query_row(params![session_id, IDLE_TTL, now], |r| r.get(0)).optional()?;
    live.context("session not live")?;
    conn.prepare_cached(INSERT)?.execute(params![next.as_bytes(), session_id, now])?;
    conn.prepare_cached(AUDIT)?.execute(params![now, c.user, session_id])?;
    c.token = next;
    Ok(c)
}
