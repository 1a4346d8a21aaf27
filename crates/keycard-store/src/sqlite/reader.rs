//! Reads: inline, on a read-only connection kept per thread and per store.
//!
//! A point lookup on a connection with its statement cached takes a few microseconds, less than
//! handing it to another thread and back, so reads run right on the calling (tokio worker)
//! thread. Under WAL a reader never waits for the writer; each read is one statement, so one
//! consistent snapshot, and sees every committed write (writes are answered only after their
//! commit).
//!
//! Inline rather than `tokio::task::block_in_place`, measured: `/auth/me` at 64 connections
//! (docs/BENCHMARKS.md, "Before/after: SQLite writer thread with group commit") costs 48 µs of
//! server CPU and 0.4 context switches per request inline, 73–76 µs and 2.9–3.0 with
//! `block_in_place` (which hands the worker's run queue to another thread on every call; RSS
//! grew from 23 to 91–94 MiB with the extra blocking threads, each opening its own read
//! connection; and it panics on a current-thread runtime).
//! The reads here are point lookups and short index scans; `integrity_check`, which reads the
//! whole file, runs on the blocking pool instead.
//!
//! Each thread keeps at most [`PER_THREAD`] connections (tests open many databases in one
//! process), keyed by store instance, least recently used first out; connections of closed or
//! dropped stores are let go when the thread next opens one, or when it exits.

use std::cell::RefCell;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use super::Shared;
use crate::Result;

/// Read connections a thread keeps open (for as many stores).
const PER_THREAD: usize = 4;

struct Reader {
    store: u64,
    owner: Weak<Shared>,
    conn: Connection,
}

thread_local! {
    static READERS: RefCell<Vec<Reader>> = const { RefCell::new(Vec::new()) };
}

/// Runs `read` on this thread's read connection to `shared`'s database.
pub(super) fn read<T>(shared: &Arc<Shared>, read: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
    if shared.closed.load(Ordering::Acquire) {
        return Err(super::writer::stopped());
    }
    let mut read = Some(read);
    let inline = READERS.try_with(|cell| {
        let mut readers = cell.try_borrow_mut().ok()?;
        let read = read.take()?;
        Some(cached(&mut readers, shared, read))
    });
    match (inline, read) {
        (Ok(Some(result)), _) => result,
        // The thread is exiting, or a read runs inside a read: a connection for this read only.
        (_, Some(read)) => Ok(read(&open(&shared.path)?)?),
        (_, None) => Err(crate::StoreError::Internal("a read was lost".into())),
    }
}

fn cached<T>(
    readers: &mut Vec<Reader>,
    shared: &Arc<Shared>,
    read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
) -> Result<T> {
    let last = match readers.iter().position(|r| r.store == shared.id) {
        Some(i) => {
            readers[i..].rotate_left(1);
            readers.len() - 1
        }
        None => {
            readers.retain(|r| r.owner.upgrade().is_some_and(|s| !s.closed.load(Ordering::Acquire)));
            if readers.len() >= PER_THREAD {
                readers.remove(0);
            }
            let conn = open(&shared.path)?;
            readers.push(Reader { store: shared.id, owner: Arc::downgrade(shared), conn });
            readers.len() - 1
        }
    };
    let result = read(&readers[last].conn);
    if result.is_err() {
        // Whatever went wrong, the next read starts on a fresh connection.
        readers.pop();
    }
    Ok(result?)
}

/// Lets go of this thread's connection to `shared`'s database.
pub(super) fn forget(shared: &Shared) {
    let _ = READERS.try_with(|cell| {
        if let Ok(mut readers) = cell.try_borrow_mut() {
            readers.retain(|r| r.store != shared.id);
        }
    });
}

/// A read-only connection with the same busy timeout as the writer's.
pub(super) fn open(path: &Path) -> rusqlite::Result<Connection> {
    let conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(5))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}
