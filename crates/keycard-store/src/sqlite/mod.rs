//! The embedded SQLite backend: one database file in WAL mode.
//!
//! SQLite allows one writer at a time, so one thread owns the one read-write connection
//! (`writer`): every write operation of the store is one job sent to it, and the jobs waiting
//! in its queue are committed together in one `BEGIN IMMEDIATE` transaction, a savepoint each
//! (group commit; answers go out after the commit). `BEGIN IMMEDIATE` because a deferred
//! transaction that reads and then writes can fail with "database is locked" whatever the busy
//! timeout, e.g. when `keycard users` runs beside the server. Reads run inline on a read-only
//! connection per thread (`reader`) and proceed in parallel under WAL.
//!
//! Connections come from rusqlite, the one SQLite library of keycard. Migrations run on the
//! writer's connection before it serves (`migrate`), in the `_sqlx_migrations` table that
//! databases created by earlier versions (migrated by sqlx) already carry, so their history is
//! kept.

/// The session columns, in the order [`session`] reads them.
macro_rules! cols {
    () => {
        "s.id, s.user_id, s.created_at, s.last_used_at, s.idle_expires_at, s.absolute_expires_at, s.user_agent, s.ip, \
         s.email_verified, s.amr, s.auth_time, s.dpop_jkt"
    };
}

/// A session is live when not revoked and before both its expiries; `$now` is the parameter
/// number of now.
macro_rules! live {
    ($now:literal) => {
        concat!("s.revoked_at IS NULL AND s.idle_expires_at > ?", $now, " AND s.absolute_expires_at > ?", $now)
    };
}

mod mfa;
mod migrate;
mod queries;
mod reader;
mod rotate;
mod webhooks;
mod writer;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use crate::{Result, StoreError};
use writer::{Done, Writer};

/// The SQLite store. Clones share the writer thread; the last one dropped stops it.
#[derive(Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

/// What the clones of one store share.
struct Shared {
    /// Tells this store's read connections from others' in a thread's cache.
    id: u64,
    path: PathBuf,
    writer: Writer,
    closed: AtomicBool,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.shared.path)
            .field("closed", &self.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl SqliteStore {
    /// Opens (creating if missing) the database at `url` (`sqlite://path`, `sqlite:path` or a
    /// plain path; a `?query` suffix is ignored) and runs migrations.
    ///
    /// `readers` is accepted for compatibility and not used: reads run on a read-only connection
    /// per calling thread (see `reader`), so there are as many read connections as threads that
    /// read (the tokio workers), never more than a few per thread.
    pub async fn open(url: &str, readers: u32) -> Result<Self> {
        let _ = readers;
        if url.contains(":memory:") || url.contains("mode=memory") {
            return Err(StoreError::Unavailable("the SQLite store needs a file, not an in-memory database".into()));
        }
        let path = database_path(url);
        static NEXT_ID: AtomicU64 = AtomicU64::new(0);
        let writer = Writer::start(path.clone()).await?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Self { shared: Arc::new(Shared { id, path, writer, closed: AtomicBool::new(false) }) })
    }

    /// Runs SQLite's integrity check; `Ok(true)` when it reports "ok". On a connection of its
    /// own, off the async workers (it reads the whole file).
    pub async fn integrity_check(&self) -> Result<bool> {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(writer::stopped());
        }
        let path = self.shared.path.clone();
        let check = tokio::task::spawn_blocking(move || -> Result<String> {
            let conn = reader::open(&path)?;
            Ok(conn.query_row("PRAGMA integrity_check", [], |row| row.get(0))?)
        });
        let result = check.await.map_err(|e| StoreError::Internal(format!("the integrity check stopped: {e}")))??;
        Ok(result == "ok")
    }

    /// Stops the writer once it has committed what is queued, checkpointing the WAL into the
    /// database file. Every later call fails with an error that
    /// [`is_unavailable`](StoreError::is_unavailable).
    pub async fn close(&self) {
        self.shared.closed.store(true, Ordering::Release);
        reader::forget(&self.shared);
        self.shared.writer.close().await;
    }

    /// Runs `work` as one job on the writer thread; see [`writer`].
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&rusqlite::Connection) -> Result<Done<T>> + Send + 'static,
    {
        if self.shared.closed.load(Ordering::Acquire) {
            return Err(writer::stopped());
        }
        self.shared.writer.write(work).await
    }

    /// Runs `read` inline on this thread's read connection; see [`reader`].
    fn read<T>(&self, read: impl FnOnce(&rusqlite::Connection) -> rusqlite::Result<T>) -> Result<T> {
        reader::read(&self.shared, read)
    }
}

/// The file a database URL names: `sqlite://path`, `sqlite:path` or a plain path, without a
/// `?mode=rwc`-style query (the store always creates a missing file).
fn database_path(url: &str) -> PathBuf {
    let path = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")).unwrap_or(url);
    let path = if url.starts_with("sqlite:") { path.split_once('?').map_or(path, |(path, _)| path) } else { path };
    PathBuf::from(path)
}

#[cfg(test)]
mod tests {
    use super::database_path;

    #[test]
    fn urls_and_plain_paths_name_the_same_file() {
        for url in ["sqlite:///tmp/k.db", "sqlite:/tmp/k.db", "/tmp/k.db", "sqlite:///tmp/k.db?mode=rwc"] {
            assert_eq!(database_path(url), std::path::Path::new("/tmp/k.db"), "{url}");
        }
        assert_eq!(database_path("sqlite://k.db"), std::path::Path::new("k.db"));
        assert_eq!(database_path("data/k?.db"), std::path::Path::new("data/k?.db"), "a plain path keeps its '?'");
    }
}
