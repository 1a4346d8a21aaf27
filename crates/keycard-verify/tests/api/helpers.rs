//! A real keycard server and the example resource server, started in-process, plus token
//! forging helpers for the attack tests.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_core::keys::{KeyAlg, KeyRing, SigningKey};
use keycard_core::wire::TokenResponse;
use keycard_server::{AppState, Application, Settings};
use keycard_verify::Verifier;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

pub const PASSWORD: &str = "correct horse battery staple";

/// A keycard server running in this process.
pub struct Keycard {
    pub addr: SocketAddr,
    pub issuer: String,
    pub state: AppState,
    pub settings: Settings,
    pub http: reqwest::Client,
    _dir: Arc<TempDir>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

pub async fn start_keycard() -> Keycard {
    start_keycard_with(|_| {}).await
}

pub async fn start_keycard_with(configure: impl FnOnce(&mut Settings)) -> Keycard {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = Settings::loopback(dir.path().join("k.db").display().to_string());
    configure(&mut settings);
    run(settings, dir).await
}

async fn run(settings: Settings, dir: Arc<TempDir>) -> Keycard {
    let app = Application::build(settings.clone()).await.expect("keycard starts");
    let addr = app.local_addr();
    let state = app.state().clone();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(app.run_until(async move {
        let _ = stopped.await;
    }));
    Keycard {
        addr,
        issuer: format!("http://{addr}"),
        state,
        settings,
        http: reqwest::Client::new(),
        _dir: dir,
        stop: Some(stop),
        task: Some(task),
    }
}

impl Keycard {
    /// Shuts the server down and waits until it no longer answers.
    pub async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
    }

    /// Starts the server again on the same address with the same database.
    pub async fn restart(&mut self) {
        self.stop().await;
        let mut settings = self.settings.clone();
        settings.bind = self.addr;
        let again = run(settings, self._dir.clone()).await;
        *self = again;
    }

    /// The server's key ring as it is now.
    pub fn ring(&self) -> Arc<KeyRing> {
        Arc::new(self.state.keys().local().expect("a local key ring").clone())
    }

    /// Signs up (once) and logs in with body delivery.
    pub async fn login(&self, email: &str) -> TokenResponse {
        let signup = self
            .http
            .post(format!("{}/auth/signup", self.issuer))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert!(signup.status() == 201 || signup.status() == 409, "signup: {}", signup.status());
        let login = self
            .http
            .post(format!("{}/auth/login", self.issuer))
            .json(&json!({"email": email, "password": PASSWORD, "delivery": "body"}))
            .send()
            .await
            .unwrap();
        assert_eq!(login.status(), 200, "login");
        login.json().await.unwrap()
    }

    /// Logs the session of `access_token` out.
    pub async fn logout(&self, access_token: &str) {
        let response = self
            .http
            .post(format!("{}/auth/logout", self.issuer))
            .bearer_auth(access_token)
            .json(&json!({"scope": "local"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 204, "logout");
    }

    /// Registers a confidential client `name` with `scope` (what `keycard clients add` does).
    pub async fn register_client(&self, name: &str, scope: &str) -> RegisteredClient {
        let scopes = [scope.to_owned()];
        let store = self.state.store.clone();
        let now = keycard_core::now_unix();
        let registered =
            keycard_server::oauth::register_client(store.as_ref(), name, &scopes, None, now).await.unwrap();
        RegisteredClient { id: registered.client.id, secret: registered.secret.expect("a secret client") }
    }

    /// keycard's introspection answer for `token` (RFC 7662), asked directly as `client`.
    pub async fn introspect(&self, token: &str, client: &RegisteredClient) -> Value {
        let response = self
            .http
            .post(format!("{}/oauth/introspect", self.issuer))
            .basic_auth(&client.id, Some(&client.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("token={}", form_urlencoded::byte_serialize(token.as_bytes()).collect::<String>()))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "introspection");
        response.json().await.unwrap()
    }

    /// An access token for `client` from the client-credentials grant.
    pub async fn client_credentials(&self, client: &RegisteredClient) -> String {
        let response = self
            .http
            .post(format!("{}/oauth/token", self.issuer))
            .basic_auth(&client.id, Some(&client.secret))
            .header("content-type", "application/x-www-form-urlencoded")
            .body("grant_type=client_credentials")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "client credentials");
        let body: Value = response.json().await.unwrap();
        body["access_token"].as_str().unwrap().to_owned()
    }

    /// Claims as keycard would issue them, for forging variants.
    pub fn claims(&self, now: i64) -> Value {
        json!({
            "iss": self.issuer, "aud": self.settings.audience, "sub": "user-1", "sid": "session-1",
            "jti": random_id(), "iat": now, "nbf": now, "exp": now + 600,
        })
    }
}

/// A confidential client registered with keycard.
pub struct RegisteredClient {
    pub id: String,
    pub secret: String,
}

/// The example resource server, serving `verifier`'s protection.
pub struct ResourceServer {
    pub base: String,
    pub http: reqwest::Client,
    _task: JoinHandle<()>,
}

pub async fn start_resource_server(verifier: Verifier) -> ResourceServer {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = crate::resource_server::app(verifier);
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    ResourceServer { base, http: reqwest::Client::new(), _task: task }
}

impl ResourceServer {
    /// `GET /api/hello` with this Authorization header value (none if `None`).
    pub async fn hello_with_header(&self, authorization: Option<&str>) -> reqwest::Response {
        let mut request = self.http.get(format!("{}/api/hello", self.base));
        if let Some(value) = authorization {
            request = request.header("authorization", value);
        }
        request.send().await.unwrap()
    }

    /// `GET /api/hello` with a Bearer token.
    pub async fn hello(&self, token: &str) -> reqwest::Response {
        self.hello_with_header(Some(&format!("Bearer {token}"))).await
    }

    /// The status of `GET /api/hello` with a Bearer token.
    pub async fn status(&self, token: &str) -> u16 {
        self.hello(token).await.status().as_u16()
    }
}

/// Asserts a 401 with the RFC 6750 challenge and the JSON error body; returns the description.
pub async fn assert_invalid_token(response: reqwest::Response, why: &str) -> String {
    assert_eq!(response.status(), 401, "{why}");
    let challenge = response.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).map(str::to_owned);
    assert_eq!(challenge.as_deref(), Some("Bearer error=\"invalid_token\""), "{why}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"], "invalid_token", "{why}: {body}");
    body["error_description"].as_str().unwrap_or_default().to_owned()
}

pub fn random_id() -> String {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).unwrap();
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(value).unwrap())
}

/// A JWS over arbitrary header and claims, signed with `key`'s material as `alg`.
pub fn forge(key: &SigningKey, alg: KeyAlg, header: &Value, claims: &Value) -> String {
    let message = format!("{}.{}", b64(header), b64(claims));
    let material = &key.material().private_der;
    let encoding = match key.alg() {
        KeyAlg::EdDsa => jsonwebtoken::EncodingKey::from_ed_der(material),
        KeyAlg::Es256 => jsonwebtoken::EncodingKey::from_ec_der(material),
        KeyAlg::Hs256 => jsonwebtoken::EncodingKey::from_secret(material),
        KeyAlg::Rs256 => {
            let pem = format!(
                "-----BEGIN PRIVATE KEY-----\n{}\n-----END PRIVATE KEY-----\n",
                base64::engine::general_purpose::STANDARD.encode(material)
            );
            jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()).unwrap()
        }
    };
    let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &encoding, alg.algorithm()).unwrap();
    format!("{message}.{signature}")
}

/// A standard header for `key`.
pub fn header_for(key: &SigningKey) -> Value {
    json!({"alg": key.alg().as_str(), "typ": "at+jwt", "kid": key.kid()})
}

/// Polls `probe` every 20 ms until it returns true or `limit` passes; returns the time it took.
pub async fn wait_until<F, Fut>(limit: Duration, mut probe: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if probe().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}
