//! `spawn_app()` and the small helpers every test uses.

use std::net::SocketAddr;
use std::sync::Arc;

use keycard_core::clock::{Clock, ManualClock};
use keycard_core::wire::TokenResponse;
use keycard_server::settings::HumanDuration;
use keycard_server::{AppState, Application, Settings};
use keycard_store::{AuditFilter, Store};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "correct horse battery staple";

/// A running server and a client for it.
#[allow(dead_code)] // not every test binary reads every field
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub client: reqwest::Client,
    pub state: AppState,
    pub settings: Settings,
    /// The server's clock: it stands still unless a test moves it (`advance`).
    pub clock: Arc<ManualClock>,
    /// Keeps the database directory alive as long as the app.
    pub dir: Arc<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

/// Whether this run of the suite targets PostgreSQL (`KEYCARD_TEST_BACKEND=postgres`, with
/// `KEYCARD_TEST_POSTGRES_URL`) instead of SQLite: one suite, two backends.
pub fn on_postgres() -> bool {
    std::env::var("KEYCARD_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// Settings for a test server on port 0 with a fresh database: a SQLite file in `dir`, or a new
/// PostgreSQL database (`kc_api_<random>`; scripts/test drops leftovers before each run).
pub async fn test_settings(dir: &TempDir) -> Settings {
    let _ = tracing_subscriber_init();
    let mut settings = Settings::loopback(dir.path().join("keycard.db").display().to_string());
    if on_postgres() {
        let base = std::env::var("KEYCARD_TEST_POSTGRES_URL")
            .expect("KEYCARD_TEST_BACKEND=postgres needs KEYCARD_TEST_POSTGRES_URL");
        let (server, _) = base.rsplit_once('/').expect("a postgres://host/db URL");
        let url = format!("{server}/kc_api_{}", uuid::Uuid::new_v4().simple());
        keycard_store::PgStore::create_database(&url).await.expect("PostgreSQL is reachable");
        settings.database = url.into();
        let (_, master) = keycard_server::keys::MasterKey::generate().unwrap();
        settings.master_key = Some(keycard_server::settings::Secret::new(master));
        // Without SMTP, mail goes to `.eml` files: beside the SQLite file, or here (PostgreSQL's
        // default is the working directory's `mail`).
        settings.mail_dir = Some(dir.path().join("mail"));
    }
    settings
}

fn tracing_subscriber_init() -> Option<()> {
    // Test logs stay quiet unless TEST_LOG is set.
    std::env::var_os("TEST_LOG")?;
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    });
    Some(())
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

pub async fn spawn_app_with(configure: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(&dir).await;
    configure(&mut settings);
    start(settings, dir).await
}

/// Starts a server with exactly these settings (the restart test reuses a directory).
pub async fn start(settings: Settings, dir: Arc<TempDir>) -> TestApp {
    start_with_clock(settings, dir, Arc::new(ManualClock::starting_now())).await
}

/// Starts a server reading `clock` (two servers standing in for two instances share one).
pub async fn start_with_clock(settings: Settings, dir: Arc<TempDir>, clock: Arc<ManualClock>) -> TestApp {
    let app = Application::build_with_clock(settings.clone(), clock.clone()).await.expect("the server starts");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        client: reqwest::Client::builder().cookie_store(false).build().unwrap(),
        state,
        settings,
        clock,
        dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl TestApp {
    /// Now by the server's clock (Unix seconds).
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// Moves the server's clock forward by `secs` seconds (no sleeping).
    pub fn advance(&self, secs: f64) {
        self.clock.advance(std::time::Duration::from_secs_f64(secs));
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.state.store
    }

    /// Stops the server and waits for it to finish.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub async fn post_json(&self, path: &str, body: Value) -> reqwest::Response {
        self.client.post(self.url(path)).json(&body).send().await.unwrap()
    }

    pub async fn signup(&self, email: &str) -> Value {
        let resp = self.post_json("/auth/signup", json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(resp.status(), StatusCode::CREATED, "signup of {email}");
        resp.json().await.unwrap()
    }

    /// Logs in with body delivery.
    pub async fn login(&self, email: &str) -> TokenResponse {
        let resp =
            self.post_json("/auth/login", json!({"email": email, "password": PASSWORD, "delivery": "body"})).await;
        assert_eq!(resp.status(), StatusCode::OK, "login of {email}");
        resp.json().await.unwrap()
    }

    /// Signs a new user up and logs in (body delivery).
    pub async fn user(&self) -> (String, TokenResponse) {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        self.signup(&email).await;
        let tokens = self.login(&email).await;
        (email, tokens)
    }

    pub async fn refresh(&self, refresh_token: &str) -> reqwest::Response {
        self.post_json("/auth/refresh", json!({"refresh_token": refresh_token})).await
    }

    pub async fn get_authed(&self, path: &str, access: &str) -> reqwest::Response {
        self.client.get(self.url(path)).bearer_auth(access).send().await.unwrap()
    }

    pub async fn audit_kinds(&self, user_id: &str) -> Vec<String> {
        let filter = AuditFilter { user_id: Some(user_id.to_owned()), limit: 1000, ..Default::default() };
        let mut events = self.store().audit_events(&filter).await.unwrap();
        events.reverse();
        events.into_iter().map(|e| e.event.kind.to_string()).collect()
    }
}

/// Asserts the JSON error shape of SPEC.md and returns the response's headers.
pub async fn assert_error(resp: reqwest::Response, status: u16, code: &str) -> reqwest::header::HeaderMap {
    let headers = resp.headers().clone();
    let actual = resp.status().as_u16();
    let body: Value = resp.json().await.expect("error bodies are JSON");
    assert_eq!((actual, body["error"].as_str().unwrap_or("<none>")), (status, code), "body: {body}");
    assert!(body["error_description"].as_str().is_some_and(|d| !d.is_empty()), "body: {body}");
    if status == 401 && code == "invalid_token" {
        assert_eq!(headers.get("www-authenticate").unwrap(), "Bearer error=\"invalid_token\"");
    }
    headers
}

/// The claims of a JWT, unverified (tests read what the server put in them).
pub fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1).expect("a JWT");
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
}

pub fn secs(n: u64) -> HumanDuration {
    HumanDuration::secs(n)
}
