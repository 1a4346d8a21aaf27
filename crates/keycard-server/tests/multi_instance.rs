//! Two keycard servers sharing one PostgreSQL database behave as one service: tokens issued by
//! either are accepted by both, a rotation on one is seen by the other, reuse detected on one
//! revokes the family everywhere, and 50 concurrent refreshes across both have one winner. And
//! an instance that loses the database answers 503 (and `/readyz` fails) until it is back.
//!
//! PostgreSQL comes from `KEYCARD_TEST_POSTGRES_URL` (an admin URL such as
//! `postgres://postgres@127.0.0.1:5432/test`); each test creates its own database and drops it
//! afterwards. Unset, the tests pass with a notice — unless `CI` is set, where they fail.

use std::net::SocketAddr;
use std::sync::Once;

use keycard_server::settings::Secret;
use keycard_server::{Application, Settings};
use keycard_store::testing::TestDatabase;
use reqwest::StatusCode;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";
/// What the PostgreSQL notices and failures call these tests.
const POSTGRES_TESTS: &str = "the multi-instance tests";

fn init_test_log() {
    // Test logs stay quiet unless TEST_LOG is set.
    if std::env::var_os("TEST_LOG").is_some() {
        static ONCE: Once = Once::new();
        ONCE.call_once(|| {
            let _ = tracing_subscriber::fmt().with_test_writer().try_init();
        });
    }
}

/// One running instance and a client for it.
struct Instance {
    base: String,
    client: reqwest::Client,
}

/// Two instances, A and B, on a fresh database (kept alive as long as this is).
struct Pair {
    a: Instance,
    b: Instance,
    _db: TestDatabase,
}

async fn start(settings: Settings) -> Instance {
    let app = Application::build(settings).await.expect("the instance starts");
    let addr: SocketAddr = app.local_addr();
    tokio::spawn(app.run_until(std::future::pending()));
    Instance { base: format!("http://{addr}"), client: reqwest::Client::new() }
}

/// Starts A, then B (B finds the signing key A generated), on one new database. Both share the
/// issuer, so each accepts the other's access tokens, and the master key sealing the keys.
async fn pair() -> Option<Pair> {
    init_test_log();
    let db = TestDatabase::create(POSTGRES_TESTS).await?;
    let (_, master_key) = keycard_server::keys::MasterKey::generate().unwrap();
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: db.url.as_str().into(),
        issuer: Some("http://keycard.multi-instance.test".into()),
        master_key: Some(Secret::new(master_key)),
        ..Settings::default()
    };
    let a = start(settings.clone()).await;
    let b = start(settings).await;
    Some(Pair { a, b, _db: db })
}

impl Instance {
    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap()
    }

    /// Signs `email` up and logs in with body delivery; returns the token response.
    async fn user(&self, email: &str) -> Value {
        let signup = self.post("/auth/signup", json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(signup.status(), StatusCode::CREATED, "signup of {email}");
        let login = self.post("/auth/login", json!({"email": email, "password": PASSWORD, "delivery": "body"})).await;
        assert_eq!(login.status(), StatusCode::OK, "login of {email}");
        login.json().await.unwrap()
    }

    async fn refresh(&self, refresh_token: &str) -> (StatusCode, Value) {
        let resp = self.post("/auth/refresh", json!({"refresh_token": refresh_token})).await;
        (resp.status(), resp.json().await.unwrap_or(Value::Null))
    }

    async fn me(&self, access_token: &str) -> StatusCode {
        let url = format!("{}/auth/me", self.base);
        self.client.get(url).bearer_auth(access_token).send().await.unwrap().status()
    }
}

fn field<'a>(body: &'a Value, name: &str) -> &'a str {
    body[name].as_str().unwrap_or_else(|| panic!("{name} in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_family_rotated_on_b_and_reused_on_a_is_revoked_on_both() {
    let Some(Pair { a, b, _db }) = pair().await else { return };
    let login = a.user("ada@example.com").await;
    let (first_access, first_refresh) = (field(&login, "access_token"), field(&login, "refresh_token"));
    assert_eq!(b.me(first_access).await, StatusCode::OK, "B accepts an access token issued by A");

    let (status, rotated) = b.refresh(first_refresh).await;
    assert_eq!(status, StatusCode::OK, "B rotates a token issued by A: {rotated}");
    let (new_access, new_refresh) = (field(&rotated, "access_token"), field(&rotated, "refresh_token"));
    assert_eq!(a.me(new_access).await, StatusCode::OK, "A accepts an access token issued by B");

    let (status, reused) = a.refresh(first_refresh).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(field(&reused, "error"), "refresh_token_reused", "A sees B's rotation: {reused}");

    for (name, instance) in [("A", &a), ("B", &b)] {
        let (status, body) = instance.refresh(new_refresh).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: the replacement died with its family");
        assert_eq!(field(&body, "error"), "invalid_grant", "{name}: {body}");
        assert_eq!(instance.me(new_access).await, StatusCode::UNAUTHORIZED, "{name}: new access token revoked");
        assert_eq!(instance.me(first_access).await, StatusCode::UNAUTHORIZED, "{name}: old access token revoked");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_refreshes_split_across_two_instances_have_exactly_one_success() {
    let Some(Pair { a, b, _db }) = pair().await else { return };
    let login = a.user("ada@example.com").await;
    let refresh_token = field(&login, "refresh_token").to_owned();
    let (a, b) = (std::sync::Arc::new(a), std::sync::Arc::new(b));
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(50));

    let mut requests = tokio::task::JoinSet::new();
    for i in 0..50 {
        let instance = if i % 2 == 0 { a.clone() } else { b.clone() };
        let (token, start) = (refresh_token.clone(), start.clone());
        requests.spawn(async move {
            start.wait().await;
            instance.refresh(&token).await
        });
    }
    let answers = requests.join_all().await;

    let ok = answers.iter().filter(|(s, _)| *s == StatusCode::OK).count();
    let refused: Vec<&str> = answers
        .iter()
        .filter(|(s, _)| *s == StatusCode::UNAUTHORIZED)
        .map(|(_, body)| body["error"].as_str().unwrap_or("?"))
        .collect();
    assert_eq!(ok, 1, "exactly one refresh wins: {answers:?}");
    assert_eq!(refused.len(), 49, "every other one is refused with 401 (no 5xx): {answers:?}");
    assert!(refused.iter().all(|e| *e == "refresh_token_reused" || *e == "invalid_grant"), "{refused:?}");
    assert_eq!(refused.iter().filter(|e| **e == "refresh_token_reused").count(), 1, "the family is revoked once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_on_one_instance_rejects_the_access_token_on_the_other() {
    let Some(Pair { a, b, _db }) = pair().await else { return };
    let login = a.user("ada@example.com").await;
    let access = field(&login, "access_token");
    assert_eq!(b.me(access).await, StatusCode::OK);

    let logout = a.client.post(format!("{}/auth/logout", a.base)).bearer_auth(access).json(&json!({})).send().await;
    assert_eq!(logout.unwrap().status(), StatusCode::NO_CONTENT);

    assert_eq!(b.me(access).await, StatusCode::UNAUTHORIZED, "B rejects the access token of a session ended on A");
    let (status, body) = b.refresh(field(&login, "refresh_token")).await;
    assert_eq!((status, field(&body, "error")), (StatusCode::UNAUTHORIZED, "invalid_grant"), "{body}");
}

/// A TCP relay to PostgreSQL that can be cut (listener and open connections) and restored.
struct Relay {
    addr: SocketAddr,
    target: SocketAddr,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Relay {
    async fn start(target: SocketAddr) -> Self {
        let mut relay = Self { addr: "127.0.0.1:0".parse().unwrap(), target, task: None };
        relay.restore().await;
        relay
    }

    async fn restore(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr).await.expect("the relay binds (again)");
        self.addr = listener.local_addr().unwrap();
        let target = self.target;
        self.task = Some(tokio::spawn(async move {
            // Dropping this set (when the task is aborted) aborts every relayed connection.
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((mut inbound, _)) = listener.accept().await {
                connections.spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(target).await {
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

/// `url` with its `host:port` replaced by `addr`.
fn via(url: &str, addr: SocketAddr) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..].find(['/', '?']).map_or(url.len(), |i| start + i);
    let host_start = url[start..end].rfind('@').map_or(start, |i| start + i + 1);
    format!("{}{addr}{}", &url[..host_start], &url[end..])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_loses_the_database_answers_503_until_it_is_back() {
    init_test_log();
    let Some(db) = TestDatabase::create(POSTGRES_TESTS).await else { return };
    let authority = db.url.split("://").nth(1).and_then(|rest| rest.split(['/', '?']).next()).unwrap();
    let host_port = authority.rsplit('@').next().unwrap();
    let host_port = if host_port.contains(':') { host_port.to_owned() } else { format!("{host_port}:5432") };
    let target = tokio::net::lookup_host(host_port).await.unwrap().next().unwrap();
    let mut relay = Relay::start(target).await;
    let (_, master_key) = keycard_server::keys::MasterKey::generate().unwrap();
    let instance = start(Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: via(&db.url, relay.addr).into(),
        master_key: Some(Secret::new(master_key)),
        ..Settings::default()
    })
    .await;
    let login = instance.user("ada@example.com").await;
    let refresh_token = field(&login, "refresh_token");
    let readyz = || async { instance.client.get(format!("{}/readyz", instance.base)).send().await.unwrap().status() };
    assert_eq!(readyz().await, StatusCode::OK);

    relay.cut().await;

    assert_eq!(readyz().await, StatusCode::SERVICE_UNAVAILABLE, "/readyz fails without the database");
    let resp = instance.post("/auth/refresh", json!({"refresh_token": refresh_token})).await;
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert!(resp.headers().contains_key("retry-after"), "503 says when to retry");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(field(&body, "error"), "temporarily_unavailable", "{body}");
    assert_eq!(instance.me(field(&login, "access_token")).await, StatusCode::SERVICE_UNAVAILABLE);

    relay.restore().await;
    assert_eq!(readyz().await, StatusCode::OK, "ready again once the database is back");
    let (status, body) = instance.refresh(refresh_token).await;
    assert_eq!(status, StatusCode::OK, "the refresh that failed with 503 used nothing up: {body}");
}
