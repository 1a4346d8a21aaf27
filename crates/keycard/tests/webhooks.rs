//! Webhooks across a crash, with the real binaries: an endpoint added with `keycard webhooks
//! add` (secret shown once), security events caused through the API while the receiver is down,
//! `keycard serve` SIGKILLed with the deliveries pending, the receiver started and the server
//! restarted on the same database: every event arrives once, verified by the Python
//! `standardwebhooks` package (`.ci/install-webhooks.sh`), under the id it was queued with.
//! `keycard webhooks list` shows the status before and after; `test` and `remove` work; a
//! non-http(s) URL is refused at `add`.

use std::collections::HashSet;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../keycard-server/tests/api/webhook_receiver.py");
const PASSWORD: &str = "correct horse battery staple";

/// The Python of the venv that has `standardwebhooks` (see the API tests' `receiver_python`).
fn receiver_python() -> Option<PathBuf> {
    let venv = std::env::var_os("KEYCARD_WEBHOOKS_VENV").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share/keycard/webhooks-venv"))
    })?;
    let python = venv.join("bin/python");
    let usable = Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if usable {
        return Some(python);
    }
    assert!(std::env::var_os("CI").is_none(), "the webhook tests need standardwebhooks: run .ci/install-webhooks.sh");
    eprintln!("skipped: no standardwebhooks in {} (run .ci/install-webhooks.sh)", venv.display());
    None
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// `keycard <args> --database <db>`.
fn keycard(db: &Path, args: &[&str]) -> Output {
    let out = Command::new(env!("CARGO_BIN_EXE_keycard"))
        .args(args)
        .arg("--database")
        .arg(db)
        .env("KEYCARD_LOG", "warn")
        .env_remove("KEYCARD_CONFIG")
        .output()
        .expect("keycard runs");
    println!("$ keycard {}\n{}{}", args.join(" "), text(&out.stdout), text(&out.stderr));
    out
}

fn ok(db: &Path, args: &[&str]) -> String {
    let out = keycard(db, args);
    assert!(out.status.success(), "keycard {args:?} failed: {}", text(&out.stderr));
    text(&out.stdout)
}

fn endpoints(db: &Path) -> Vec<Value> {
    serde_json::from_str(&ok(db, &["webhooks", "list", "--json"])).unwrap()
}

fn serve(db: &Path, port: u16) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_keycard"));
    for (key, _) in std::env::vars().filter(|(k, _)| k.starts_with("KEYCARD_")) {
        cmd.env_remove(key);
    }
    cmd.args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database"])
        .arg(db)
        .env("KEYCARD_LOG", "error")
        .env("KEYCARD_RATE_LIMIT_ENABLED", "false")
        .env("KEYCARD_ARGON2_MEMORY_KIB", "64")
        .env("KEYCARD_EMAIL_VERIFICATION", "off")
        .env("KEYCARD_WEBHOOK_RETRY_BASE", "1s")
        .env("KEYCARD_WEBHOOK_TIMEOUT", "2s")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("keycard serve starts")
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn ready(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !http.get(format!("{base}/readyz")).send().await.is_ok_and(|r| r.status() == 200) {
        assert!(Instant::now() < deadline, "the server did not become ready");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The verified deliveries the receiver logged: (id, type).
fn verified(log: &Path) -> Vec<(String, String)> {
    let log = std::fs::read_to_string(log).unwrap_or_default();
    let records: Vec<Value> = log.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records.iter().all(|r| r["verified"] == true), "every signature verifies: {records:#?}");
    records.iter().map(|r| (r["id"].as_str().unwrap().to_owned(), r["type"].as_str().unwrap().to_owned())).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn deliveries_pending_when_keycard_is_killed_arrive_once_after_the_restart() {
    let Some(python) = receiver_python() else { return };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("keycard.db");
    let (hook_port, port) = (free_port(), free_port());

    let refused = keycard(&db, &["webhooks", "add", "ftp://127.0.0.1/hook"]);
    assert!(!refused.status.success() && text(&refused.stderr).contains("only http:// and https://"));
    let added = ok(&db, &["webhooks", "add", &format!("http://127.0.0.1:{hook_port}/hook")]);
    let field = |name: &str| {
        added.lines().find_map(|l| l.strip_prefix(name)).unwrap_or_else(|| panic!("{name} in {added}")).to_owned()
    };
    let (id, secret) = (field("id: "), field("secret: "));
    assert!(secret.starts_with("whsec_"));
    assert!(!ok(&db, &["webhooks", "list"]).contains(&secret), "the secret is shown once, at add");
    let other = ok(&db, &["webhooks", "add", "https://hooks.example.com/x", "--events", "account_deleted"]);
    let other_id = other.lines().find_map(|l| l.strip_prefix("id: ")).unwrap().to_owned();
    ok(&db, &["webhooks", "remove", &other_id]);
    assert!(!keycard(&db, &["webhooks", "remove", &other_id]).status.success());

    // Events while the receiver is down: three new-device logins and a test.
    let mut server = serve(&db, port);
    let (http, base) = (reqwest::Client::new(), format!("http://127.0.0.1:{port}"));
    ready(&http, &base).await;
    for n in 0..3 {
        let email = format!("user{n}@example.com");
        let signup = http.post(format!("{base}/auth/signup")).json(&json!({"email": email, "password": PASSWORD}));
        assert_eq!(signup.send().await.unwrap().status(), 201);
        let body = json!({"email": email, "password": PASSWORD, "delivery": "body"});
        assert_eq!(http.post(format!("{base}/auth/login")).json(&body).send().await.unwrap().status(), 200);
    }
    ok(&db, &["webhooks", "test", &id]);
    eventually("every delivery failing", || {
        let e = &endpoints(&db)[0];
        e["pending"] == 4 && e["failing"] == 4
    })
    .await;
    let listed = ok(&db, &["webhooks", "list"]);
    assert!(listed.contains(&id) && listed.contains("could not connect"), "{listed}");

    server.kill().unwrap(); // SIGKILL: the deliveries stay pending in the database.
    server.wait().unwrap();
    let log = dir.path().join("receiver.jsonl");
    let mut receiver = Command::new(&python)
        .arg(SCRIPT)
        .args(["--port", &hook_port.to_string(), "--secret", &secret, "--log"])
        .arg(&log)
        .stdout(Stdio::null())
        .spawn()
        .expect("the receiver starts");
    let mut server = serve(&db, port);
    ready(&http, &base).await;
    eventually("the four deliveries after the restart", || verified(&log).len() >= 4).await;
    eventually("recorded delivered", || endpoints(&db)[0]["delivered"] == 4).await;
    server.kill().unwrap();
    server.wait().unwrap();
    receiver.kill().unwrap();
    receiver.wait().unwrap();

    let got = verified(&log);
    let ids: HashSet<&String> = got.iter().map(|(id, _)| id).collect();
    assert_eq!(ids.len(), got.len(), "no id delivered twice: {got:?}");
    let types: Vec<&str> = got.iter().map(|(_, t)| t.as_str()).collect();
    assert_eq!(types.iter().filter(|t| **t == "new_device_login").count(), 3, "{types:?}");
    assert_eq!(types.iter().filter(|t| **t == "webhook.test").count(), 1, "{types:?}");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    let queued: Vec<(String,)> = sqlx::query_as("SELECT id FROM webhook_deliveries").fetch_all(&pool).await.unwrap();
    let queued: HashSet<&String> = queued.iter().map(|(id,)| id).collect();
    assert_eq!(ids, queued, "exactly the queued events, under their ids");
    let status = &endpoints(&db)[0];
    assert_eq!((status["pending"].as_i64(), status["failed"].as_i64()), (Some(0), Some(0)), "{status}");
}
