//! Crash safety: the real `keycard serve` binary, on a SQLite file or on a PostgreSQL database,
//! under concurrent refresh-chain load, is SIGKILLed at random moments and restarted on the same
//! database, several times. The chains, the ledger and the assertions are the same on both
//! backends; only how the database is given to the server and how it is checked differ
//! ([`Backend`]).
//!
//! What is asserted, precisely. Each chain is one client (its own user) that logs in with body
//! delivery and then refreshes in a loop, always presenting the last refresh token it received.
//! A request whose response never arrived (the kill cut it) is "lost": the client cannot know
//! whether it committed, so it presents the same token again once the server is back.
//! - Durability: a refresh token received in a 200 is never unknown to the server afterwards —
//!   presenting it again yields 200, or (only after a lost attempt, with no reuse interval)
//!   401 `refresh_token_reused`, meaning the lost attempt had committed: that chain is lost by
//!   the client, as designed, and the client logs in again. After two or more lost attempts in a
//!   row with the same token, 401 `invalid_grant` is also expected: one lost attempt spent the
//!   token and a later one was refused as reuse, which revoked the session (and so deleted its
//!   tokens) before its answer was lost too; that chain is lost as well, and the feed count
//!   below proves the revocation. Any other answer (`invalid_grant` after one lost attempt, a
//!   5xx) is a failure.
//! - Single use: no token ever yields two 200s to the client.
//! - No session lost: after the last restart every chain's current token refreshes (200); in
//!   the store each user's live sessions are exactly their chain's current session, plus at most
//!   one per login whose response was lost (a session the client never learned of); every
//!   revocation in the feed is a `refresh_token_reused`, one per chain the client lost.
//! - The database is consistent after every kill and at the end ([`Backend::check`]):
//!   - SQLite: `PRAGMA integrity_check` is `ok` and `PRAGMA foreign_key_check` finds nothing;
//!   - PostgreSQL has no such pragma (and a killed client cannot corrupt its files), so what is
//!     checked is what the killed process could have left half-done: within 10 s no connection
//!     of the dead instance is left (no open transaction keeps row or advisory locks), and, when
//!     the `amcheck` extension is available, `bt_index_check` (with `heapallindexed`) of every
//!     index and `verify_heapam` of every table of the schema find nothing;
//!   - on both, the store's own invariants, in SQL ([`INVARIANTS`]): every refresh token belongs
//!     to an existing session and no token was used before it was created; no session has two
//!     unused refresh tokens, and every unrevoked session has exactly one (nothing expires in
//!     this test); a revoked session has no refresh tokens left; every revoked session appears
//!     in the revocation feed exactly once, with its user, time and reason, and every feed entry
//!     is a revoked session (no user is deleted here); session times are in order. The feed's
//!     `seq` is unique (its primary key) but not asserted gapless: a PostgreSQL identity value
//!     taken by a transaction that the kill rolled back is skipped, by design — what the feed
//!     promises is that `seq` order is commit order, which readers rely on, not density.
//! - With a reuse interval (the `*_reuse_interval_*` tests), a lost refresh is retried
//!   successfully: no chain is lost and nothing is revoked.
//!
//! PostgreSQL comes from `KEYCARD_TEST_POSTGRES_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/test`): each PostgreSQL test creates its own database
//! `kc_crash_<pid>_<n>` there and drops it when done, even when it fails. Unset, the PostgreSQL
//! tests print a notice and pass — unless `CI` is set, where they fail.

use std::collections::HashSet;
use std::io::Write;
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::{Duration, Instant};

use keycard_store::{PgStore, PgStoreOptions, SqliteStore, Store};
use serde_json::{Value, json};
use sqlx::Connection;
use tokio::sync::watch;

const CHAINS: usize = 8;
const CYCLES: usize = 5;
const PASSWORD: &str = "correct horse battery staple";
const POSTGRES_URL_VAR: &str = "KEYCARD_TEST_POSTGRES_URL";

/// The store's invariants as queries counting the rows that break them; the same SQL on both
/// backends. See the module docs for why each holds in this test.
const INVARIANTS: &[(&str, &str)] = &[
    (
        "refresh tokens of a session that does not exist",
        "SELECT count(*) FROM refresh_tokens t WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = t.session_id)",
    ),
    ("refresh tokens used before they were created", "SELECT count(*) FROM refresh_tokens WHERE used_at < created_at"),
    (
        "sessions with two or more unused refresh tokens",
        "SELECT count(*) FROM (SELECT session_id FROM refresh_tokens WHERE used_at IS NULL
         GROUP BY session_id HAVING count(*) > 1) x",
    ),
    (
        "unrevoked sessions without an unused refresh token",
        "SELECT count(*) FROM sessions s WHERE s.revoked_at IS NULL
         AND NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id AND t.used_at IS NULL)",
    ),
    (
        "revoked sessions that still have refresh tokens",
        "SELECT count(*) FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id WHERE s.revoked_at IS NOT NULL",
    ),
    (
        "revoked sessions not in the feed exactly once with their user, time and reason",
        "SELECT count(*) FROM sessions s WHERE s.revoked_at IS NOT NULL AND (SELECT count(*) FROM revocations r
         WHERE r.session_id = s.id AND r.user_id = s.user_id AND r.revoked_at = s.revoked_at
         AND r.reason = s.revoked_reason) <> 1",
    ),
    (
        "feed entries that are not a revoked session",
        "SELECT count(*) FROM revocations r
         WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.session_id AND s.revoked_at IS NOT NULL)",
    ),
    (
        "sessions of a user that does not exist",
        "SELECT count(*) FROM sessions s WHERE NOT EXISTS (SELECT 1 FROM users u WHERE u.id = s.user_id)",
    ),
    (
        "sessions with times out of order, or a revocation time without a reason",
        "SELECT count(*) FROM sessions WHERE NOT (created_at <= last_used_at AND last_used_at <= idle_expires_at
         AND idle_expires_at <= absolute_expires_at) OR (revoked_at IS NULL) <> (revoked_reason IS NULL)",
    ),
];

/// xorshift64*, seeded from the clock or `KEYCARD_CRASH_SEED` (printed, to replay a failure).
struct Rng(u64);

impl Rng {
    fn new() -> Self {
        let seed = std::env::var("KEYCARD_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        println!("KEYCARD_CRASH_SEED={seed}");
        Self(seed)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
    }
}

/// Where the server keeps its state: a SQLite file in a temporary directory, or a PostgreSQL
/// database of its own (dropped with this value).
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres { admin_url: String, name: String, url: String },
}

/// A pool for the checks, on either backend.
enum Pool {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Pool {
    /// The single `i64` that `sql` selects.
    async fn count(&self, sql: &'static str) -> i64 {
        let n = match self {
            Self::Sqlite(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
            Self::Postgres(pool) => sqlx::query_scalar(sql).fetch_one(pool).await,
        };
        n.unwrap_or_else(|e| panic!("{sql}: {e}"))
    }

    async fn close(self) {
        match self {
            Self::Sqlite(pool) => pool.close().await,
            Self::Postgres(pool) => pool.close().await,
        }
    }
}

/// Whether we run under CI, where a missing PostgreSQL must fail the run.
fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "0" && !v.eq_ignore_ascii_case("false"))
}

/// Prints `text` to stderr once per process (the harness captures `eprintln!` of passing tests).
fn notice_once(once: &'static Once, text: &str) {
    once.call_once(|| {
        let _ = writeln!(std::io::stderr(), "notice: {text}");
    });
}

impl Backend {
    fn sqlite() -> Self {
        Self::Sqlite(tempfile::tempdir().unwrap())
    }

    /// A fresh database through `KEYCARD_TEST_POSTGRES_URL`; `None` (with a notice) when that is
    /// unset outside CI, a panic when it is unset in CI.
    async fn postgres() -> Option<Self> {
        let admin_url = match std::env::var(POSTGRES_URL_VAR) {
            Ok(url) if !url.trim().is_empty() => url,
            _ if in_ci() => panic!(
                "{POSTGRES_URL_VAR} is not set, but CI is: the PostgreSQL crash tests must run in CI. \
                 Set it to an admin URL, e.g. postgres://postgres@127.0.0.1:5432/test"
            ),
            _ => {
                static NOTICE: Once = Once::new();
                notice_once(&NOTICE, &format!("{POSTGRES_URL_VAR} is unset; the PostgreSQL crash tests are skipped"));
                return None;
            }
        };
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let name = format!("kc_crash_{}_{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed));
        // postgres://user@host:port/db?params: the same with our database's name.
        let (before, params) = admin_url.split_once('?').map_or((admin_url.as_str(), None), |(b, p)| (b, Some(p)));
        let server = before.rsplit_once('/').filter(|(s, _)| s.contains("://")).map_or(before, |(s, _)| s);
        let url = format!("{server}/{name}{}", params.map(|p| format!("?{p}")).unwrap_or_default());
        PgStore::create_database(&url)
            .await
            .unwrap_or_else(|e| panic!("cannot create a database through {POSTGRES_URL_VAR} ({admin_url}): {e}"));
        Some(Self::Postgres { admin_url, name, url })
    }

    /// What `keycard serve --database` is given.
    fn database(&self) -> String {
        match self {
            Self::Sqlite(dir) => dir.path().join("keycard.db").display().to_string(),
            Self::Postgres { url, .. } => url.clone(),
        }
    }

    /// The store, as the server opens it (SQLite: this replays the WAL).
    async fn store(&self) -> Box<dyn Store> {
        match self {
            Self::Sqlite(_) => Box::new(SqliteStore::open(&self.database(), 1).await.expect("the database opens")),
            Self::Postgres { url, .. } => {
                Box::new(PgStore::connect(url, PgStoreOptions::default()).await.expect("the database opens"))
            }
        }
    }

    async fn pool(&self) -> Pool {
        match self {
            Self::Sqlite(_) => {
                let options = sqlx::sqlite::SqliteConnectOptions::new().filename(self.database());
                let pool = sqlx::pool::PoolOptions::new().max_connections(1).connect_with(options).await;
                Pool::Sqlite(pool.expect("the SQLite file opens after a kill"))
            }
            Self::Postgres { url, .. } => {
                let pool = sqlx::pool::PoolOptions::new().max_connections(1).connect(url).await;
                Pool::Postgres(pool.expect("the PostgreSQL database is reachable after a kill"))
            }
        }
    }

    /// Checks the database while no server runs on it (after a kill, and at the end); see the
    /// module docs.
    async fn check(&self, when: &str) {
        let pool = self.pool().await;
        match &pool {
            Pool::Sqlite(db) => {
                let report: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check").fetch_all(db).await.unwrap();
                assert_eq!(report, ["ok"], "PRAGMA integrity_check {when}");
                assert_eq!(pool.count("SELECT count(*) FROM pragma_foreign_key_check").await, 0, "foreign keys {when}");
            }
            Pool::Postgres(db) => {
                // The dead instance's connections end when PostgreSQL reads EOF on them, which
                // rolls back their transactions and releases their locks.
                let deadline = Instant::now() + Duration::from_secs(10);
                let backends = "SELECT count(*) FROM pg_stat_activity
                    WHERE datname = current_database() AND application_name = 'keycard'";
                while pool.count(backends).await > 0 {
                    assert!(Instant::now() < deadline, "connections of the killed server still open 10 s {when}");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                amcheck(db, &pool, when).await;
            }
        }
        for (what, sql) in INVARIANTS {
            let n = pool.count(sql).await;
            assert_eq!(n, 0, "{n} {what}, {when}");
        }
        pool.close().await;
    }
}

/// PostgreSQL's own check of the schema's indexes and tables, when `amcheck` can be installed.
async fn amcheck(db: &sqlx::PgPool, pool: &Pool, when: &str) {
    let available = "SELECT count(*) FROM pg_available_extensions WHERE name = 'amcheck'";
    if pool.count(available).await == 0
        || sqlx::query("CREATE EXTENSION IF NOT EXISTS amcheck").execute(db).await.is_err()
    {
        static NOTICE: Once = Once::new();
        notice_once(&NOTICE, "amcheck is not available: PostgreSQL is checked by the SQL invariants only");
        return;
    }
    let indexes = "SELECT count(*) FROM (SELECT bt_index_check(c.oid, true) FROM pg_index i
        JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam
        WHERE a.amname = 'btree' AND c.relnamespace = 'public'::regnamespace) checked";
    assert!(pool.count(indexes).await > 0, "no index checked {when}");
    let heap = "SELECT count(*) FROM pg_class c, LATERAL verify_heapam(c.oid::regclass)
        WHERE c.relkind = 'r' AND c.relnamespace = 'public'::regnamespace";
    assert_eq!(pool.count(heap).await, 0, "verify_heapam found corruption {when}");
}

impl Drop for Backend {
    fn drop(&mut self) {
        let Self::Postgres { admin_url, name, .. } = self else { return };
        // Drop may run inside the test's runtime, and while unwinding: plain SQL on a thread of its
        // own, with a runtime of its own.
        let drop = format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)");
        let admin_url = admin_url.clone();
        let done = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().ok()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(drop)).execute(&mut admin).await.ok()
            })
        })
        .join();
        if !matches!(done, Ok(Some(_))) {
            eprintln!("warning: could not drop the test database {name}");
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_server(backend: &Backend, port: u16, reuse_interval: &str) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keycard"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("KEYCARD_")) {
        cmd.env_remove(key);
    }
    if let Backend::Postgres { .. } = backend {
        // Every instance on one PostgreSQL database needs the same master key. A test value.
        let key: String = b"keycard-crash-test-master-key-01".iter().map(|b| format!("{b:02x}")).collect();
        cmd.env("KEYCARD_MASTER_KEY", key);
    }
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database", &backend.database()])
        .args(["--issuer", "http://crash.test", "--reuse-interval", reuse_interval])
        .env("KEYCARD_LOG", "error")
        .env("KEYCARD_RATE_LIMIT_ENABLED", "false")
        .env("KEYCARD_ARGON2_MEMORY_KIB", "64")
        // No verification mail: on PostgreSQL it would land in the working directory's `mail`.
        .env("KEYCARD_EMAIL_VERIFICATION", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("keycard serve starts")
}

async fn wait_ready(client: &reqwest::Client, base: &str, child: &mut Child) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        assert!(child.try_wait().unwrap().is_none(), "the server exited during start-up");
        if let Ok(r) = client.get(format!("{base}/readyz")).send().await
            && r.status() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// What the clients saw, shared by the chains.
#[derive(Default)]
struct Ledger {
    /// Refresh tokens that yielded a 200 to a client.
    rotated: HashSet<String>,
    violations: Vec<String>,
    refreshes_ok: u64,
    lost_requests: u64,
    /// Chains whose lost refresh had committed (401 refresh_token_reused on retry, or
    /// `invalid_grant` after two or more lost attempts; see the module docs).
    chains_lost: u64,
}

/// One client: its user, its current session and token, and what it could not learn.
struct Chain {
    email: String,
    signed_up: bool,
    user_id: Option<String>,
    current: Option<(String, String)>,
    /// Logins whose answer was lost: each may have created a session the client never saw.
    lost_logins: usize,
}

type Server = watch::Receiver<Option<(u64, String)>>;

/// Waits until a server generation other than `seen` is up; returns it.
async fn next_server(rx: &mut Server, seen: u64) -> Option<(u64, String)> {
    loop {
        if let Some((generation, base)) = rx.borrow_and_update().clone()
            && generation != seen
        {
            return Some((generation, base));
        }
        rx.changed().await.ok()?;
    }
}

/// The `sub` claim of an access token.
fn subject(token: &str) -> Option<String> {
    use base64::Engine;
    let payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token.split('.').nth(1)?).ok()?;
    serde_json::from_slice::<Value>(&payload).ok()?["sub"].as_str().map(str::to_owned)
}

async fn post(client: &reqwest::Client, url: String, body: Value) -> Result<(u16, Value), reqwest::Error> {
    let resp = client.post(url).json(&body).send().await?;
    let status = resp.status().as_u16();
    Ok((status, resp.json().await.unwrap_or(Value::Null)))
}

async fn run_chain(mut chain: Chain, mut rx: Server, ledger: Arc<Mutex<Ledger>>, stop: Arc<AtomicBool>) -> Chain {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut server = next_server(&mut rx, 0).await;
    // Attempts in a row with the current token whose answer was lost.
    let mut lost_attempts = 0u32;
    while !stop.load(Ordering::Relaxed) {
        let Some((generation, base)) = server.clone() else { break };
        let attempt = if !chain.signed_up {
            post(&client, format!("{base}/auth/signup"), json!({"email": chain.email, "password": PASSWORD})).await.map(
                |(status, body)| {
                    // 409: an earlier signup whose answer was lost had committed.
                    chain.signed_up = matches!(status, 201 | 409);
                    if !chain.signed_up {
                        ledger.lock().unwrap().violations.push(format!("signup answered {status}: {body}"));
                    }
                },
            )
        } else if chain.current.is_none() {
            let body = json!({"email": chain.email, "password": PASSWORD, "delivery": "body"});
            match post(&client, format!("{base}/auth/login"), body).await {
                Ok((200, body)) => {
                    chain.user_id = body["access_token"].as_str().and_then(subject);
                    let (rt, sid) = (body["refresh_token"].as_str(), body["session_id"].as_str());
                    chain.current = rt.zip(sid).map(|(rt, sid)| (rt.to_owned(), sid.to_owned()));
                    Ok(())
                }
                Ok((status, body)) => {
                    ledger.lock().unwrap().violations.push(format!("login answered {status}: {body}"));
                    Ok(())
                }
                Err(e) => {
                    chain.lost_logins += 1;
                    Err(e)
                }
            }
        } else {
            let (token, sid) = chain.current.clone().unwrap();
            match post(&client, format!("{base}/auth/refresh"), json!({"refresh_token": token})).await {
                Ok((status, body)) => {
                    let mut l = ledger.lock().unwrap();
                    let code = body["error"].as_str().unwrap_or("");
                    match (status, body["refresh_token"].as_str()) {
                        (200, Some(next)) => {
                            if !l.rotated.insert(token.clone()) {
                                l.violations.push("a refresh token yielded a second 200".into());
                            }
                            l.refreshes_ok += 1;
                            chain.current = Some((next.to_owned(), sid));
                        }
                        (401, _)
                            if (code == "refresh_token_reused" && lost_attempts >= 1)
                                || (code == "invalid_grant" && lost_attempts >= 2) =>
                        {
                            // A lost attempt had committed: the client lost this chain.
                            l.chains_lost += 1;
                            chain.current = None;
                        }
                        _ => l.violations.push(format!(
                            "{}: a token received in a 200 answered {status} {body} after {lost_attempts} lost attempts",
                            chain.email
                        )),
                    }
                    lost_attempts = 0;
                    Ok(())
                }
                Err(e) => {
                    lost_attempts += 1;
                    Err(e)
                }
            }
        };
        if attempt.is_err() {
            ledger.lock().unwrap().lost_requests += 1;
            // The server is gone: wait for the next one and present the same token again.
            server = next_server(&mut rx, generation).await;
        }
        if !ledger.lock().unwrap().violations.is_empty() {
            break;
        }
    }
    chain
}

async fn crash_cycles(backend: Backend, reuse_interval: &str) {
    let started = Instant::now();
    let db = &backend;
    let mut rng = Rng::new();
    let probe = reqwest::Client::new();
    let (tx, rx) = watch::channel::<Option<(u64, String)>>(None);
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let chains: Vec<_> = (0..CHAINS)
        .map(|i| {
            let chain = Chain {
                email: format!("chain{i}@example.com"),
                signed_up: false,
                user_id: None,
                current: None,
                lost_logins: 0,
            };
            tokio::spawn(run_chain(chain, rx.clone(), ledger.clone(), stop.clone()))
        })
        .collect();

    for generation in 1..=CYCLES as u64 {
        let port = free_port();
        let base = format!("http://127.0.0.1:{port}");
        let mut child = spawn_server(db, port, reuse_interval);
        wait_ready(&probe, &base, &mut child).await;
        tx.send_replace(Some((generation, base)));
        tokio::time::sleep(Duration::from_millis(250 + rng.below(900))).await;
        child.kill().unwrap(); // SIGKILL: no graceful shutdown, no WAL checkpoint.
        child.wait().unwrap();
        tx.send_replace(None);
        db.check(&format!("after kill {generation}")).await;
    }

    // The last life: let the chains catch up, then stop them and check every one.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_server(db, port, reuse_interval);
    wait_ready(&probe, &base, &mut child).await;
    tx.send_replace(Some((CYCLES as u64 + 1, base.clone())));
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let mut finished = Vec::new();
    for handle in chains {
        finished.push(tokio::time::timeout(Duration::from_secs(20), handle).await.expect("a chain hung").unwrap());
    }
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    assert!(ledger.violations.is_empty(), "violations: {:#?}", ledger.violations);
    for chain in &finished {
        let (token, _) = chain.current.as_ref().expect("every chain ends with a session");
        let (status, body) =
            post(&probe, format!("{base}/auth/refresh"), json!({"refresh_token": token})).await.unwrap();
        assert_eq!(status, 200, "{}'s current token after the last restart: {body}", chain.email);
    }
    child.kill().unwrap();
    child.wait().unwrap();

    db.check("at the end").await;
    let store = db.store().await;
    let now = keycard_core::now_unix();
    for chain in &finished {
        let user_id = chain.user_id.as_deref().expect("signed up");
        let live: HashSet<String> =
            store.list_sessions(user_id, now).await.unwrap().into_iter().map(|s| s.id).collect();
        let (_, current) = chain.current.as_ref().unwrap();
        assert!(live.contains(current), "{}: the current session is not live in the store", chain.email);
        assert!(
            live.len() <= 1 + chain.lost_logins,
            "{}: {} live sessions, {} lost logins",
            chain.email,
            live.len(),
            chain.lost_logins
        );
    }
    let feed = store.revocations_since(0, 100_000).await.unwrap();
    assert!(feed.iter().all(|r| r.reason == "refresh_token_reused"), "unexpected revocations: {feed:?}");
    assert_eq!(feed.len() as u64, ledger.chains_lost, "revocations in the store vs reuse answers seen");
    drop(store);
    println!(
        "{} reuse interval {reuse_interval}: {CYCLES} kills, {} refreshes answered 200, {} requests lost, {} chains lost by the client, {:.1} s",
        if matches!(backend, Backend::Sqlite(_)) { "SQLite" } else { "PostgreSQL" },
        ledger.refreshes_ok,
        ledger.lost_requests,
        ledger.chains_lost,
        started.elapsed().as_secs_f64()
    );
    assert!(ledger.refreshes_ok > 0 && ledger.lost_requests > 0, "the load or the kills did not happen");
    if reuse_interval != "0s" {
        assert_eq!(ledger.chains_lost, 0, "with a reuse interval a lost refresh is retried, never lost");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sigkill_under_refresh_load_loses_no_session_and_rotates_no_token_twice() {
    crash_cycles(Backend::sqlite(), "0s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_reuse_interval_a_refresh_lost_to_a_crash_is_retried_successfully() {
    crash_cycles(Backend::sqlite(), "30s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_sigkill_under_refresh_load_loses_no_session_and_rotates_no_token_twice() {
    let Some(backend) = Backend::postgres().await else { return };
    crash_cycles(backend, "0s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_with_a_reuse_interval_a_refresh_lost_to_a_crash_is_retried_successfully() {
    let Some(backend) = Backend::postgres().await else { return };
    crash_cycles(backend, "30s").await;
}
