//! A real HTTP reverse proxy (axum in front, reqwest behind, over loopback TCP) between the
//! clients under test and the real keycard: it forwards every request unchanged and counts them
//! by path, so tests count token requests on the wire. It can also hold requests at a gate (to
//! pile up concurrent callers behind one request in flight) and answer 503 instead of
//! forwarding (keycard unreachable behind a load balancer), or fail the next refreshes one by one
//! (a status with or without `Retry-After`, or a stall the client times out on).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
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
    failing: AtomicBool,
    gate: watch::Receiver<bool>,
    refresh_failures: Mutex<VecDeque<Failure>>,
}

/// How the proxy fails one `POST /auth/refresh` instead of forwarding it (keycard never sees it).
#[derive(Debug, Clone, Copy)]
pub enum Failure {
    /// Answer this status, with `Retry-After: N` when given.
    Status(u16, Option<u64>),
    /// Answer nothing for 5 s (the client's timeout fires first: a network error).
    Stall,
}

/// Starts a proxy forwarding to `upstream` (e.g. keycard's base URL).
pub async fn start_proxy(upstream: &str) -> Proxy {
    let (gate, gate_open) = watch::channel(true);
    let shared = Arc::new(Shared {
        upstream: upstream.trim_end_matches('/').to_owned(),
        http: reqwest::Client::new(),
        counts: Mutex::default(),
        failing: AtomicBool::new(false),
        gate: gate_open,
        refresh_failures: Mutex::default(),
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

    /// Holds every request until [`Proxy::open_gate`].
    pub fn close_gate(&self) {
        self.gate.send_replace(false);
    }

    /// Lets held and later requests through.
    pub fn open_gate(&self) {
        self.gate.send_replace(true);
    }

    /// Answer 503 instead of forwarding (`true`), or forward again (`false`).
    pub fn set_failing(&self, failing: bool) {
        self.shared.failing.store(failing, Ordering::SeqCst);
    }

    /// Fails the next refreshes, one failure each, in order; later ones are forwarded again.
    pub fn fail_refreshes(&self, failures: &[Failure]) {
        self.shared.refresh_failures.lock().unwrap().extend(failures.iter().copied());
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
    if parts.uri.path() == "/auth/refresh" {
        let failure = shared.refresh_failures.lock().unwrap().pop_front();
        match failure {
            None => {}
            Some(Failure::Stall) => {
                tokio::time::sleep(Duration::from_secs(5)).await;
                return StatusCode::GATEWAY_TIMEOUT.into_response();
            }
            Some(Failure::Status(status, retry_after)) => {
                let mut response = (StatusCode::from_u16(status).unwrap(), "failed by the test proxy").into_response();
                if let Some(secs) = retry_after {
                    response.headers_mut().insert(header::RETRY_AFTER, secs.into());
                }
                return response;
            }
        }
    }
    if shared.failing.load(Ordering::SeqCst) {
        return (StatusCode::SERVICE_UNAVAILABLE, "no healthy upstream").into_response();
    }
    let body = axum::body::to_bytes(body, 1 << 20).await.unwrap_or_default();
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
