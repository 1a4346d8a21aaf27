//! A real HTTP reverse proxy (axum in front, reqwest behind, over loopback TCP) between the
//! verifier under test and the real keycard: it forwards every request and counts them by path,
//! so tests count introspection requests on the wire. It can hold requests at a gate (to pile up
//! concurrent checks behind one request in flight).
//!
//! It can also act as a reference-token ("phantom token") gateway: keycard issues only JWT
//! access tokens, so to give the verifier a genuinely opaque access token, a test registers a
//! random handle for a real keycard JWT ([`Proxy::reference`]); the proxy replaces the handle
//! with the JWT in the `token` field of introspection requests before forwarding them. The
//! verifier only ever sees the handle, and every verdict is keycard's own answer about a real
//! token.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;

pub struct Proxy {
    /// `http://127.0.0.1:PORT`: the proxy's own address.
    pub base: String,
    shared: Arc<Shared>,
    gate: watch::Sender<bool>,
}

struct Shared {
    upstream: String,
    http: reqwest::Client,
    counts: Mutex<HashMap<String, usize>>,
    gate: watch::Receiver<bool>,
    /// Reference handle → the real token it stands for.
    references: Mutex<HashMap<String, String>>,
}

/// Starts a proxy forwarding to `upstream` (e.g. keycard's base URL).
pub async fn start_proxy(upstream: &str) -> Proxy {
    let (gate, gate_open) = watch::channel(true);
    let shared = Arc::new(Shared {
        upstream: upstream.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        counts: Mutex::default(),
        gate: gate_open,
        references: Mutex::default(),
    });
    let app = axum::Router::new().fallback(forward).with_state(shared.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Proxy { base, shared, gate }
}

impl Proxy {
    /// Requests received for `path` so far (held and refused ones included).
    pub fn count(&self, path: &str) -> usize {
        self.shared.counts.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    /// The paths requested so far.
    pub fn paths(&self) -> Vec<String> {
        let mut paths: Vec<String> = self.shared.counts.lock().unwrap().keys().cloned().collect();
        paths.sort();
        paths
    }

    /// Holds every request until [`Proxy::open_gate`].
    pub fn close_gate(&self) {
        self.gate.send_replace(false);
    }

    /// Lets held and later requests through.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// A new opaque handle standing for `token` in introspection requests.
    pub fn reference(&self, token: &str) -> String {
        let handle = format!("ref_{}", crate::helpers::random_id());
        self.shared.references.lock().unwrap().insert(handle.clone(), token.to_owned());
        handle
    }

    /// Waits (real time, at most 10 s) until `path` has received `n` requests.
    pub async fn wait_for_count(&self, path: &str, n: usize) {
        for _ in 0..1000 {
            if self.count(path) >= n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("{path} received {} requests, expected {n}", self.count(path));
    }
}

async fn forward(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    *shared.counts.lock().unwrap().entry(parts.uri.path().to_owned()).or_default() += 1;
    let mut gate = shared.gate.clone();
    let _ = gate.wait_for(|open| *open).await;
    let mut body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
    if parts.uri.path().ends_with("/introspect") {
        body = shared.dereference(&body).into();
    }
    let url = format!("{}{}", shared.upstream, parts.uri.path_and_query().map_or("/", |pq| pq.as_str()));
    let mut outgoing = shared.http.request(parts.method.clone(), url).body(body);
    for (name, value) in &parts.headers {
        if name != header::HOST && name != header::CONTENT_LENGTH {
            outgoing = outgoing.header(name, value);
        }
    }
    let Ok(answer) = outgoing.send().await else { return StatusCode::BAD_GATEWAY.into_response() };
    let (status, headers) = (answer.status(), answer.headers().clone());
    let bytes = answer.bytes().await.unwrap_or_default();
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    for (name, value) in &headers {
        if name != header::TRANSFER_ENCODING && name != header::CONTENT_LENGTH && name != header::CONNECTION {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

impl Shared {
    /// The form body with a reference handle in `token` replaced by the token it stands for.
    fn dereference(&self, body: &[u8]) -> Vec<u8> {
        let references = self.references.lock().unwrap();
        let mut form = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(body) {
            let value = match references.get(value.as_ref()) {
                Some(real) if name == "token" => real.clone(),
                _ => value.into_owned(),
            };
            form.append_pair(&name, &value);
        }
        form.finish().into_bytes()
    }
}
