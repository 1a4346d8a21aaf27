//! Crash safety: the real `keycard serve` binary on a SQLite file, under concurrent refresh-chain
//! load, is SIGKILLed at random moments and restarted on the same database, several times.
//!
//! What is asserted, precisely. Each chain is one client (its own user) that logs in with body
//! delivery and then refreshes in a loop, always presenting the last refresh token it received.
//! A request whose response never arrived (the kill cut it) is "lost": the client cannot know
//! whether it committed, so it presents the same token again once the server is back.
//! - Durability: a refresh token received in a 200 is never unknown to the server afterwards —
//!   presenting it again yields 200, or (only after a lost attempt, with no reuse interval)
//!   401 `refresh_token_reused`, meaning the lost attempt had committed: that chain is lost by
//!   the client, as designed, and the client logs in again. Any other answer (401
//!   `invalid_grant`, a 5xx) is a failure.
//! - Single use: no token ever yields two 200s to the client.
//! - No session lost: after the last restart every chain's current token refreshes (200); in
//!   the store each user's live sessions are exactly their chain's current session, plus at most
//!   one per login whose response was lost (a session the client never learned of); every
//!   revocation in the feed is a `refresh_token_reused` the client saw.
//! - The database passes `PRAGMA integrity_check` after every kill and at the end.
//! - With a reuse interval (second test), a lost refresh is retried successfully: no chain is
//!   lost and nothing is revoked.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use keycard_store::{SqliteStore, Store};
use serde_json::{Value, json};
use tokio::sync::watch;

const CHAINS: usize = 8;
const CYCLES: usize = 5;
const PASSWORD: &str = "correct horse battery staple";

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

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn spawn_server(db: &Path, port: u16, reuse_interval: &str) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keycard"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("KEYCARD_")) {
        cmd.env_remove(key);
    }
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database"])
        .arg(db)
        .args(["--issuer", "http://crash.test", "--reuse-interval", reuse_interval])
        .env("KEYCARD_LOG", "error")
        .env("KEYCARD_RATE_LIMIT_ENABLED", "false")
        .env("KEYCARD_ARGON2_MEMORY_KIB", "64")
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

async fn integrity_ok(db: &Path) {
    let store = SqliteStore::open(&db.display().to_string(), 1).await.expect("the database opens after a kill");
    assert!(store.integrity_check().await.unwrap(), "PRAGMA integrity_check failed");
    store.close().await;
}

/// What the clients saw, shared by the chains.
#[derive(Default)]
struct Ledger {
    /// Refresh tokens that yielded a 200 to a client.
    rotated: HashSet<String>,
    violations: Vec<String>,
    refreshes_ok: u64,
    lost_requests: u64,
    /// Chains whose lost refresh had committed (401 refresh_token_reused on retry).
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
    let mut lost_token = false;
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
                        (401, _) if code == "refresh_token_reused" && lost_token => {
                            // The lost attempt had committed: the client lost this chain.
                            l.chains_lost += 1;
                            chain.current = None;
                        }
                        _ => l.violations.push(format!(
                            "a token received in a 200 answered {status} {body} (after a lost attempt: {lost_token})"
                        )),
                    }
                    lost_token = false;
                    Ok(())
                }
                Err(e) => {
                    lost_token = true;
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

async fn crash_cycles(reuse_interval: &str) {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("keycard.db");
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
        let mut child = spawn_server(&db, port, reuse_interval);
        wait_ready(&probe, &base, &mut child).await;
        tx.send_replace(Some((generation, base)));
        tokio::time::sleep(Duration::from_millis(250 + rng.below(900))).await;
        child.kill().unwrap(); // SIGKILL: no graceful shutdown, no WAL checkpoint.
        child.wait().unwrap();
        tx.send_replace(None);
        integrity_ok(&db).await;
    }

    // The last life: let the chains catch up, then stop them and check every one.
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let mut child = spawn_server(&db, port, reuse_interval);
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

    let store = SqliteStore::open(&db.display().to_string(), 1).await.unwrap();
    assert!(store.integrity_check().await.unwrap(), "PRAGMA integrity_check failed at the end");
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
    store.close().await;
    println!(
        "reuse interval {reuse_interval}: {CYCLES} kills, {} refreshes answered 200, {} requests lost, {} chains lost by the client, {:.1} s",
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
    crash_cycles("0s").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_reuse_interval_a_refresh_lost_to_a_crash_is_retried_successfully() {
    crash_cycles("30s").await;
}
