//! Opening a fresh store per test on each backend, and the small builders every case uses.
//!
//! PostgreSQL comes from `KEYCARD_TEST_POSTGRES_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/test`): each test creates its own database
//! `kc_test_<uuid>` there and drops it when done, even when it fails. Unset, the PostgreSQL
//! tests print a notice and pass — unless `CI` is set, where they fail.

use std::sync::Arc;

use keycard_core::refresh::{RefreshToken, TokenHash};
use keycard_store::Binding;
use keycard_store::testing::TestDatabase;
use keycard_store::{
    AuditEvent, AuditKind, NewSession, NewUser, PgStore, PgStoreOptions, Rotation, SqliteStore, Store,
};

/// A fixed "now" (2023-11-14), so expiry arithmetic reads plainly.
pub const NOW: i64 = 1_700_000_000;
/// Session idle lifetime used by the cases.
pub const IDLE: i64 = 7 * 86_400;
/// Session absolute lifetime used by the cases.
pub const ABSOLUTE: i64 = 30 * 86_400;

/// The audit event a case hands to a store method that writes one with its change (the kind
/// does not matter to the store).
pub fn audited() -> AuditEvent {
    AuditEvent::new(AuditKind::Logout, NOW)
}

/// What the PostgreSQL notices and failures call these tests.
const POSTGRES_TESTS: &str = "the PostgreSQL conformance tests";

/// A fresh PostgreSQL database (`kc_test_<uuid>`), dropped with the value; `None` when
/// PostgreSQL tests are not configured (outside CI).
pub async fn test_database() -> Option<TestDatabase> {
    TestDatabase::create(POSTGRES_TESTS).await
}

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
        let db = test_database().await?;
        let store = PgStore::connect(&db.url, options).await.expect("PgStore connects and migrates");
        let url = db.url.clone();
        Some((Self { store: Arc::new(store), _dir: None, _db: Some(db) }, url))
    }
}

/// A random refresh-token hash.
pub fn token() -> TokenHash {
    RefreshToken::generate().hash()
}

/// Creates a user with this email; returns its id.
pub async fn user(store: &dyn Store, email: &str) -> String {
    let id = uuid::Uuid::new_v4().to_string();
    let new = NewUser {
        id: id.clone(),
        email: email.into(),
        password_hash: "$argon2id$stub".into(),
        created_at: NOW,
        verification: None,
    };
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
        amr: keycard_core::amr::Amr::of(&[keycard_core::amr::AuthMethod::Pwd]),
        auth_time: at,
        dpop_jkt: None,
    };
    store.create_session(&new, &first, &audited()).await.expect("session created");
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
        dpop_jkt: None,
    }
}
