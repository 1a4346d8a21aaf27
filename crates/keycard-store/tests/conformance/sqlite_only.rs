//! SQLite only: databases created by earlier versions (sqlx's migration table) open without
//! migrating again; a closed store answers errors that `is_unavailable()`, never hangs; `close`
//! checkpoints the WAL; many stores in one process and two stores on one file work.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use keycard_store::{RotateOutcome, SqliteStore, Store};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{Connection, SqliteConnection};

use crate::harness::{NOW, rotation, session, token, user};

async fn open(path: &Path) -> SqliteStore {
    SqliteStore::open(&path.display().to_string(), 4).await.expect("SQLite opens")
}

async fn applied_migrations(path: &Path) -> Vec<(i64, Vec<u8>, String)> {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display())).await.unwrap();
    let rows = sqlx::query_as("SELECT version, checksum, installed_on FROM _sqlx_migrations ORDER BY version")
        .fetch_all(&mut conn)
        .await
        .unwrap();
    conn.close().await.unwrap();
    rows
}

/// A one-connection sqlx pool on a new WAL file, as earlier versions of the store opened it.
async fn sqlx_pool(path: &Path) -> sqlx::SqlitePool {
    let options =
        SqliteConnectOptions::new().filename(path).create_if_missing(true).journal_mode(SqliteJournalMode::Wal);
    SqlitePoolOptions::new().max_connections(1).connect_with(options).await.unwrap()
}

#[tokio::test]
async fn a_database_created_by_the_sqlx_store_opens_without_migrating_again() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    // The layout the sqlx-only store left: migrations recorded in `_sqlx_migrations`, a user in it.
    let pool = sqlx_pool(&path).await;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await.unwrap();
    sqlx::query("INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ('u1', 'old@example.com', 'h', 1, 1)")
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;
    let before = applied_migrations(&path).await;
    assert_eq!(before.len(), sqlx::migrate!("./migrations/sqlite").iter().count());

    let store = open(&path).await;

    assert_eq!(store.user_by_email("old@example.com").await.unwrap().expect("the old user is there").id, "u1");
    let (_, first) = session(&store, "u1").await;
    assert!(matches!(
        store.rotate_refresh(&rotation(first, token(), NOW + 1)).await.unwrap(),
        RotateOutcome::Rotated(_)
    ));
    store.close().await;
    assert_eq!(applied_migrations(&path).await, before, "nothing migrated again");
    let store = open(&path).await;
    assert!(store.integrity_check().await.unwrap());
    store.close().await;
}

/// The other direction: a database the store migrated (with rusqlite) is one that sqlx's own
/// migrator finds up to date, with the same bookkeeping rows it would have written.
#[tokio::test]
async fn sqlx_finds_a_database_migrated_by_the_store_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("new.db");
    open(&path).await.close().await;
    let ours = applied_migrations(&path).await;

    let pool = sqlx_pool(&path).await;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await.expect("sqlx accepts the store's history");
    pool.close().await;
    assert_eq!(applied_migrations(&path).await, ours, "sqlx applied nothing");

    let fresh = dir.path().join("sqlx.db");
    let pool = sqlx_pool(&fresh).await;
    sqlx::migrate!("./migrations/sqlite").run(&pool).await.unwrap();
    let theirs = bookkeeping(&pool).await;
    pool.close().await;
    let pool = sqlx_pool(&path).await;
    assert_eq!(bookkeeping(&pool).await, theirs, "the same versions, descriptions and checksums");
    pool.close().await;
}

/// Version, description and checksum of each applied migration.
async fn bookkeeping(pool: &sqlx::SqlitePool) -> Vec<(i64, String, Vec<u8>)> {
    sqlx::query_as("SELECT version, description, checksum FROM _sqlx_migrations ORDER BY version")
        .fetch_all(pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_v1_database_keeps_its_refresh_tokens_through_the_rowid_migration() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("v1.db");
    // A database of schema v1 only (refresh tokens WITHOUT ROWID), with a live and a used token.
    let pool = sqlx_pool(&path).await;
    let mut v1 = sqlx::migrate!("./migrations/sqlite");
    v1.migrations = v1.migrations.iter().filter(|m| m.version == 1).cloned().collect::<Vec<_>>().into();
    v1.run(&pool).await.unwrap();
    let (live, used) = (token(), token());
    for statement in [
        "INSERT INTO users (id, email, password_hash, created_at, updated_at) VALUES ('u1', 'v1@example.com', 'h', 1, 1)",
        "INSERT INTO sessions (id, user_id, created_at, last_used_at, idle_expires_at, absolute_expires_at)
         VALUES ('s1', 'u1', 1, 1, 9999999999, 9999999999)",
    ] {
        sqlx::query(statement).execute(&pool).await.unwrap();
    }
    for (hash, used_at) in [(used, Some(NOW)), (live, None)] {
        sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at, used_at) VALUES (?1, 's1', ?2, ?3)")
            .bind(hash.as_bytes())
            .bind(NOW)
            .bind(used_at)
            .execute(&pool)
            .await
            .unwrap();
    }
    pool.close().await;

    let store = open(&path).await;

    assert_eq!(applied_migrations(&path).await.len(), sqlx::migrate!("./migrations/sqlite").iter().count());
    let next = token();
    let RotateOutcome::Rotated(session) = store.rotate_refresh(&rotation(live, next, NOW + 1)).await.unwrap() else {
        panic!("the live v1 token rotates");
    };
    assert_eq!(session.id, "s1");
    assert!(
        matches!(store.rotate_refresh(&rotation(used, token(), NOW + 2)).await.unwrap(), RotateOutcome::Reused { .. }),
        "the used v1 token is still known as used"
    );
    assert_eq!(store.rotate_refresh(&rotation(next, token(), NOW + 3)).await.unwrap(), RotateOutcome::Invalid);
    assert!(store.integrity_check().await.unwrap());
    store.close().await;
}

#[tokio::test]
async fn a_closed_store_answers_unavailable_and_never_hangs() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&dir.path().join("closed.db")).await;
    let ada = user(&store, "ada@example.com").await;
    let (_, first) = session(&store, &ada).await;
    let other = store.clone();

    store.close().await;

    let calls = async {
        let rotated = other.rotate_refresh(&rotation(first, token(), NOW + 1)).await;
        assert!(rotated.as_ref().is_err_and(|e| e.is_unavailable()), "{rotated:?}");
        let found = other.user_by_email("ada@example.com").await;
        assert!(found.as_ref().is_err_and(|e| e.is_unavailable()), "{found:?}");
        let ping = other.ping().await;
        assert!(ping.as_ref().is_err_and(|e| e.is_unavailable()), "{ping:?}");
        other.close().await; // twice is fine
    };
    tokio::time::timeout(Duration::from_secs(10), calls).await.expect("a closed store answers at once");
}

#[tokio::test]
async fn close_checkpoints_the_wal_into_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wal.db");
    let store = open(&path).await;
    let ada = user(&store, "ada@example.com").await;
    for _ in 0..20 {
        session(&store, &ada).await;
    }
    assert_eq!(store.list_sessions(&ada, NOW).await.unwrap().len(), 20);

    store.close().await;

    let wal = dir.path().join("wal.db-wal");
    let left = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(left, 0, "the WAL is checkpointed and emptied");
    let store = open(&path).await;
    assert_eq!(store.list_sessions(&ada, NOW).await.unwrap().len(), 20);
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_stores_in_one_process_each_read_their_own_database() {
    let dir = tempfile::tempdir().unwrap();
    let mut stores = Vec::new();
    for i in 0..7 {
        let store = open(&dir.path().join(format!("{i}.db"))).await;
        let id = user(&store, &format!("user{i}@example.com")).await;
        stores.push((store, id));
    }
    for round in 0..3 {
        for (i, (store, id)) in stores.iter().enumerate() {
            let found = store.user_by_id(id).await.unwrap().expect("each store finds its user");
            assert_eq!(found.email, format!("user{i}@example.com"), "round {round}");
            let other = format!("user{}@example.com", (i + 1) % 7);
            assert!(store.user_by_email(&other).await.unwrap().is_none(), "another store's user is not here");
        }
    }
    for (store, _) in stores.iter().step_by(2) {
        store.close().await;
    }
    for (i, (store, id)) in stores.iter().enumerate() {
        assert_eq!(store.user_by_id(id).await.is_ok(), i % 2 == 1, "store {i}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stores_on_one_file_both_write() {
    // As `keycard users` beside a running server: two writers, each with BEGIN IMMEDIATE.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.db");
    let (a, b) = (Arc::new(open(&path).await), Arc::new(open(&path).await));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let store = if i % 2 == 0 { a.clone() } else { b.clone() };
        tasks.spawn(async move { user(&*store, &format!("both{i}@example.com")).await });
    }
    let ids = tasks.join_all().await;
    for id in &ids {
        assert!(a.user_by_id(id).await.unwrap().is_some() && b.user_by_id(id).await.unwrap().is_some());
    }
    a.close().await;
    b.close().await;
}
