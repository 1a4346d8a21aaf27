//! PostgreSQL only: instances starting at once migrate safely; an unreachable or failing
//! database gives errors that `is_unavailable()` (so the server answers 503), never a panic,
//! and never a half-applied rotation.

use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use keycard_store::{PgStore, PgStoreOptions, RotateOutcome, Store};
use sqlx::postgres::PgConnectOptions;
use sqlx::{Connection, PgConnection};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

use crate::harness::{NOW, rotation, session, test_database, token, user};

fn quick_failing() -> PgStoreOptions {
    PgStoreOptions { acquire_timeout: Duration::from_secs(1), min_connections: 0, ..PgStoreOptions::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_instances_starting_at_once_on_an_empty_database_all_migrate() {
    let Some(db) = test_database().await else { return };

    let mut starts = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = db.url.clone();
        starts.spawn(async move { PgStore::connect(&url, PgStoreOptions::default()).await });
    }
    let stores: Vec<PgStore> = starts.join_all().await.into_iter().map(|s| s.expect("every instance starts")).collect();

    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let (applied,): (i64,) =
        sqlx::query_as("SELECT count(*) FROM _sqlx_migrations WHERE success").fetch_one(&mut conn).await.unwrap();
    let shipped = sqlx::migrate!("./migrations/postgres").iter().count();
    assert_eq!(usize::try_from(applied).unwrap(), shipped, "each migration applied once");
    for store in &stores {
        store.ping().await.unwrap();
        store.close().await;
    }
}

#[tokio::test]
async fn connecting_to_a_database_that_refuses_connections_is_unavailable() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();

    let result = PgStore::connect(&format!("postgres://postgres@{closed}/keycard"), quick_failing()).await;

    let err = result.expect_err("nothing listens there");
    assert!(err.is_unavailable(), "a refused connection is 'unavailable': {err:?}");
}

/// A TCP relay to PostgreSQL that can be cut (listener and open connections) and restored.
struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let mut relay = Self { addr: "127.0.0.1:0".parse().unwrap(), target, task: None };
        relay.restore().await;
        relay
    }

    async fn restore(&mut self) {
        let listener = TcpListener::bind(self.addr).await.expect("the relay binds (again)");
        self.addr = listener.local_addr().unwrap();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every relayed connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        }));
    }

    async fn cut(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
    }
}

/// `url` with its host and port replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find('/').map_or(url.len(), |i| start + i);
    let host_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    format!("{}{addr}{}", &url[..host_start], &url[end..])
}

#[tokio::test]
async fn an_outage_is_unavailable_and_a_rotation_retried_after_it_succeeds() {
    let Some(db) = test_database().await else { return };
    let options = PgConnectOptions::from_str(&db.url).unwrap();
    let target = tokio::net::lookup_host((options.get_host(), options.get_port())).await.unwrap().next().unwrap();
    let mut relay = Relay::start(target).await;
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&via(&db.url, relay.addr), quick_failing()).await.unwrap());
    let uid = user(&*store, "ada@example.com").await;
    let (_, first) = session(&*store, &uid).await;

    relay.cut().await;
    let rotated = store.rotate_refresh(&rotation(first, token(), NOW + 60)).await;
    let pinged = store.ping().await;
    let looked_up = store.user_by_id(&uid).await;

    for (what, err) in [("rotate", rotated.err()), ("ping", pinged.err()), ("lookup", looked_up.err())] {
        let err = err.unwrap_or_else(|| panic!("{what} fails while the database is unreachable"));
        assert!(err.is_unavailable(), "{what}: {err:?} should be 'unavailable'");
    }
    relay.restore().await;
    let again = store.rotate_refresh(&rotation(first, token(), NOW + 61)).await.expect("the database is back");
    assert!(matches!(again, RotateOutcome::Rotated(_)), "the failed attempt used nothing up: {again:?}");
}

/// How a rotation blocked in its last statement gets cut off.
enum Cut {
    /// `pg_terminate_backend`: the connection dies mid-transaction.
    Terminate,
    /// `statement_timeout` fires.
    Timeout,
}

/// Blocks a rotation at its final INSERT (another transaction holds the same token hash
/// uncommitted), cuts it off, and checks that nothing of it was applied.
async fn cut_mid_rotation(cut: Cut) {
    let Some(db) = test_database().await else { return };
    let statement_timeout = match cut {
        Cut::Terminate => Some(Duration::from_secs(30)),
        Cut::Timeout => Some(Duration::from_millis(500)),
    };
    let options = PgStoreOptions { statement_timeout, ..quick_failing() };
    let store: Arc<dyn Store> = Arc::new(PgStore::connect(&db.url, options).await.unwrap());
    let uid = user(&*store, "ada@example.com").await;
    let (sid, first) = session(&*store, &uid).await;
    let (other_sid, _) = session(&*store, &uid).await;
    let replacement = token();
    let mut blocker = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut blocker).await.unwrap();
    sqlx::query("INSERT INTO refresh_tokens (hash, session_id, created_at) VALUES ($1, $2, 0)")
        .bind(replacement.as_bytes())
        .bind(&other_sid)
        .execute(&mut blocker)
        .await
        .unwrap();

    let rotating = tokio::spawn({
        let store = store.clone();
        async move { store.rotate_refresh(&rotation(first, replacement, NOW + 60)).await }
    });
    if let Cut::Terminate = cut {
        let mut admin = PgConnection::connect(&db.url).await.unwrap();
        let mut terminated = false;
        for _ in 0..100 {
            let (n,): (i64,) = sqlx::query_as(
                "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND application_name = 'keycard' AND wait_event_type = 'Lock') t",
            )
            .fetch_one(&mut admin)
            .await
            .unwrap();
            if n > 0 {
                terminated = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert!(terminated, "the rotation never blocked on the held token");
    }
    let result = tokio::time::timeout(Duration::from_secs(20), rotating).await.expect("the rotation ends").unwrap();
    sqlx::query("ROLLBACK").execute(&mut blocker).await.unwrap();

    let err = result.expect_err("the cut-off rotation fails");
    assert!(err.is_unavailable(), "{err:?} should be 'unavailable'");
    let listed = store.list_sessions(&uid, NOW + 61).await.unwrap();
    let this = listed.iter().find(|s| s.id == sid).expect("the session is still live");
    assert_eq!(this.last_used_at, NOW, "the session update was rolled back");
    assert!(store.session_by_refresh(&first, NOW + 61).await.unwrap().is_some(), "the token is still unused");
    let retry = store.rotate_refresh(&rotation(first, token(), NOW + 62)).await.unwrap();
    assert!(matches!(retry, RotateOutcome::Rotated(_)), "a retry rotates normally: {retry:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_whose_connection_dies_mid_transaction_applies_nothing() {
    cut_mid_rotation(Cut::Terminate).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotation_stopped_by_the_statement_timeout_applies_nothing() {
    cut_mid_rotation(Cut::Timeout).await;
}
