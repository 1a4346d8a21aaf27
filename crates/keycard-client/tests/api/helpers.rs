//! A real keycard server in this process, and the audit-log counts the tests assert on.

use std::sync::Arc;

use keycard_client::Client;
use keycard_server::settings::HumanDuration;
use keycard_server::{Application, Settings};
use keycard_store::{AuditFilter, Store};
use tempfile::TempDir;

pub const PASSWORD: &str = "correct horse battery staple";

/// A keycard server running in this process.
pub struct Keycard {
    pub base: String,
    pub store: Arc<dyn Store>,
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
    let app = Application::build(settings).await.expect("keycard starts");
    let addr = app.local_addr();
    let store = app.state().store.clone();
    tokio::spawn(app.run_until(std::future::pending()));
    Keycard { base: format!("http://{addr}"), store, _dir: dir }
}

impl Keycard {
    /// A client of this keycard, signed up and logged in as `email`.
    pub async fn logged_in(&self, email: &str) -> Client {
        self.logged_in_with(email, Client::builder(&self.base)).await
    }

    /// Like [`Keycard::logged_in`], with a configured builder.
    pub async fn logged_in_with(&self, email: &str, builder: keycard_client::ClientBuilder) -> Client {
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
