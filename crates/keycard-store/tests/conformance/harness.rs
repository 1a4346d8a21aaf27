//! Opening a fresh store per test on each backend, and the small builders every case uses.
//!
//! PostgreSQL comes from `KEYCARD_TEST_POSTGRES_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/test`): each test creates its own database
//! `kc_test_<uuid>` there and drops it when done, even when it fails. Unset, the PostgreSQL
//! tests print a notice and pass — unless `CI` is set, where they fail.

use std::io::Write;
use std::sync::{Arc, Once};

use keycard_core::refresh::{RefreshToken, TokenHash};
use keycard_store::Binding;
use keycard_store::{NewSession, NewUser, PgStore, PgStoreOptions, Rotation, SqliteStore, Store};

/// A fixed "now" (2023-11-14), so expiry arithmetic reads plainly.
pub const NOW: i64 = 1_700_000_000;
/// Session idle lifetime used by the cases.
pub const IDLE: i64 = 7 * 86_400;
/// Session absolute lifetime used by the cases.
pub const ABSOLUTE: i64 = 30 * 86_400;

/// The environment variable naming the PostgreSQL admin URL.
pub const POSTGRES_URL_VAR: &str = "KEYCARD_TEST_POSTGRES_URL";

/// A store under test and what keeps its database alive. Fields drop in order: the store
/// (closing its pool) before the database.
pub struct Backend {
    pub store: Arc<dyn Store>,
    _dir: Option<tempfile::TempDir>,
    _db: Option<TestDatabase>,
}

impl Backend {
    /// A fresh SQLite file in a temporary directory.
    pub async fn sqlite() -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("keycard.db");
        let store = SqliteStore::open(&path.display().to_string(), 4).await.expect("SQLite opens");
        Self { store: Arc::new(store), _dir: Some(dir), _db: None }
    }

    /// A fresh PostgreSQL database with default pool options, or `None` when PostgreSQL tests
    /// are not configured (outside CI).
    pub async fn postgres() -> Option<Self> {
        Self::postgres_with(PgStoreOptions::default()).await.map(|(backend, _)| backend)
    }

    /// A fresh PostgreSQL database and the URL of that database.
    pub async fn postgres_with(options: PgStoreOptions) -> Option<(Self, String)> {
        let db = TestDatabase::create().await?;
        let store = PgStore::connect(&db.url, options).await.expect("PgStore connects and migrates");
        let url = db.url.clone();
        Some((Self { store: Arc::new(store), _dir: None, _db: Some(db) }, url))
    }
}

/// Whether we run under CI, where a missing database must fail the run.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// The admin URL, `None` (with a notice, once) when unset outside CI; panics when unset in CI.
pub fn postgres_admin_url() -> Option<String> {
    match std::env::var(POSTGRES_URL_VAR) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if in_ci() => panic!(
            "{POSTGRES_URL_VAR} is not set, but CI is: the PostgreSQL conformance tests must run in CI. \
             Set it to an admin URL, e.g. postgres://postgres@127.0.0.1:5432/test"
        ),
        _ => {
            static NOTICE: Once = Once::new();
            NOTICE.call_once(|| {
                // Straight to stderr: the test harness captures eprintln! of passing tests.
                let _ = writeln!(
                    std::io::stderr(),
                    "notice: {POSTGRES_URL_VAR} is unset; the PostgreSQL tests pass without running (SQLite only)"
                );
            });
            None
        }
    }
}

/// `url` with its database name replaced by `db` (query parameters kept).
pub fn with_database(url: &str, db: &str) -> String {
    let (base, query) = url.split_once('?').map_or((url, None), |(b, q)| (b, Some(q)));
    let host_start = base.find("://").map_or(0, |i| i + 3);
    let base = base[host_start..].find('/').map_or(base, |i| &base[..host_start + i]);
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

/// A database created for one test, dropped (connections and all) when this drops.
pub struct TestDatabase {
    name: String,
    /// URL of the new database.
    pub url: String,
}

impl TestDatabase {
    /// Creates `kc_test_<uuid>`; `None` when PostgreSQL tests are not configured.
    pub async fn create() -> Option<Self> {
        let admin_url = postgres_admin_url()?;
        let name = format!("kc_test_{}", uuid::Uuid::new_v4().simple());
        let url = with_database(&admin_url, &name);
        PgStore::create_database(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot create a database through {POSTGRES_URL_VAR} ({admin_url}): {e}"));
        Some(Self { name, url })
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop may run inside the test's runtime (and while unwinding): do the async clean-up on
        // a thread of its own with a runtime of its own.
        let url = self.url.clone();
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(PgStore::drop_database(&url)).ok()
        })
        .join();
        if !matches!(dropped, Ok(Some(()))) {
            eprintln!("warning: could not drop test database {}", self.name);
        }
    }
}

/// A random refresh-token hash.
pub fn token() -> TokenHash {
    RefreshToken::generate().hash()
}

/// Creates a user with this email; returns its id.
pub async fn user(store: &dyn Store, email: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let new = NewUser { id: id.clone(), email: email.into(), password_hash: "$argon2id$stub".into(), created_at: NOW };
    store.create_user(&new).await.expect("user created");
    id
}

/// Starts a session for `user_id` at `at` with the default lifetimes; returns its id and first token.
pub async fn session_at(store: &dyn Store, user_id: &str, at: i64) -> (String, TokenHash) {
    let id = uuid::Uuid::new_v4().to_string();
    let first = token();
    let new = NewSession {
        id: id.clone(),
        user_id: user_id.into(),
        created_at: at,
        idle_expires_at: at + IDLE,
        absolute_expires_at: at + ABSOLUTE,
        user_agent: Some("conformance".into()),
        ip: Some("192.0.2.1".into()),
    };
    store.create_session(&new, &first).await.expect("session created");
    (id, first)
}

/// Starts a session at [`NOW`].
pub async fn session(store: &dyn Store, user_id: &str) -> (String, TokenHash) {
    session_at(store, user_id, NOW).await
}

/// A strictly single-use rotation of `presented` at `now`.
pub fn rotation(presented: TokenHash, replacement: TokenHash, now: i64) -> Rotation {
    Rotation {
        presented,
        replacement,
        now,
        idle_ttl: IDLE,
        reuse_interval: 0,
        ip: None,
        user_agent: None,
        binding: Binding::None,
    }
}
