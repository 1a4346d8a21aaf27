//! A real keycard server in this process, reading a manual clock the tests move (and hand to
//! their clients), and the audit-log counts the tests assert on.

use std::sync::Arc;
use std::time::Duration;

use keycard_client::{Client, ClientBuilder};
use keycard_core::clock::{Clock, ManualClock};
use keycard_server::settings::HumanDuration;
use keycard_server::{Application, Settings};
use keycard_store::{AuditFilter, Store};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";

/// A keycard server running in this process.
pub struct Keycard {
    pub base: String,
    pub store: Arc<dyn Store>,
    /// The server's clock, shared with the clients of [`Keycard::client`]: it stands still
    /// unless a test moves it ([`Keycard::advance`]).
    pub clock: Arc<ManualClock>,
    _dir: TempDir,
}

pub async fn start_keycard() -> Keycard {
    start_keycard_with(|_| {}).await
}

/// Starts keycard with `access_ttl` seconds of access-token lifetime and no leeway.
pub async fn start_keycard_with_ttl(access_ttl: u64) -> Keycard {
    start_keycard_with(|s| {
        s.access_ttl = HumanDuration::secs(access_ttl);
        s.leeway = HumanDuration::secs(0);
    })
    .await
}

pub async fn start_keycard_with(configure: impl FnOnce(&mut Settings)) -> Keycard {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings::loopback(dir.path().join("k.db").display().to_string());
    configure(&mut settings);
    let clock = Arc::new(ManualClock::starting_now());
    let app = Application::build_with_clock(settings, clock.clone()).await.expect("keycard starts");
    let addr = app.local_addr();
    let store = app.state().store.clone();
    tokio::spawn(app.run_until(std::future::pending()));
    Keycard { base: format!("http://{addr}"), store, clock, _dir: dir }
}

impl Keycard {
    /// A client builder for this keycard, reading its clock.
    pub fn client(&self) -> ClientBuilder {
        Client::builder(&self.base).clock(self.clock.clone())
    }

    /// Moves the clock of keycard and its clients forward by `millis` (no sleeping).
    pub fn advance(&self, millis: u64) {
        self.clock.advance(Duration::from_millis(millis));
    }

    /// A client of this keycard (reading its clock), signed up and logged in as `email`.
    pub async fn logged_in(&self, email: &str) -> Client {
        self.logged_in_with(email, self.client()).await
    }

    /// Like [`Keycard::logged_in`], with a configured builder.
    pub async fn logged_in_with(&self, email: &str, builder: ClientBuilder) -> Client {
        let client = builder.build().unwrap();
        match client.signup(email, PASSWORD).await {
            Ok(_) => {}
            Err(e) if e.status().map(|s| s.as_u16()) == Some(409) => {}
            Err(e) => panic!("signup: {e}"),
        }
        client.login(email, PASSWORD).await.unwrap();
        client
    }

    /// How many audit events of `kind` keycard recorded.
    pub async fn audit_count(&self, kind: &str) -> usize {
        let filter = AuditFilter { kind: Some(kind.parse().unwrap()), limit: 10_000, ..Default::default() };
        self.store.audit_events(&filter).await.unwrap().len()
    }
}

/// A confidential client registered with keycard.
pub struct RegisteredClient {
    pub id: String,
    pub secret: String,
}

impl Keycard {
    /// Registers a confidential client `name` with `scope` (what `keycard clients add` does).
    pub async fn register_client(&self, name: &str, scope: &str) -> RegisteredClient {
        let scopes = [scope.to_owned()];
        let registered =
            keycard_server::oauth::register_client(self.store.as_ref(), name, &scopes, None, self.clock.now())
                .await
                .unwrap();
        RegisteredClient { id: registered.client.id, secret: registered.secret.expect("a secret client") }
    }

    /// keycard's introspection answer for `token` (RFC 7662), asked as `client`.
    pub async fn introspect(&self, token: &str, client: &RegisteredClient) -> serde_json::Value {
        let form = format!("token={}", form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>());
        let response = reqwest::Client::new()
            .post(format!("{}/oauth/introspect", self.base))
            .basic_auth(&client.id, Some(&client.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "introspection");
        response.json().await.unwrap()
    }
}
