//! Building and running the server: `Application::build(settings)` binds (port 0 works),
//! opens the store, loads keys, and reports its address; `app(state)` is the router.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request};
use axum::response::Response;
use axum_server::tls_rustls::RustlsConfig;
use keycard_core::clock::Clock;
use keycard_store::{SqliteStore, Store};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tower::{Service, ServiceBuilder};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::password::Passwords;
use crate::ratelimit::RateLimits;
use crate::settings::{Database, Settings};
use crate::signer::Keys;
use crate::state::{AppState, RuntimeConfig};
use crate::{keys, middleware, routes};

/// A bound, ready-to-run server.
pub struct Application {
    listener: TcpListener,
    /// The routes, without the global layers (added once, around the whole router, when serving).
    router: Router,
    max_body_bytes: usize,
    addr: SocketAddr,
    state: AppState,
    /// Background tasks (key reloading, housekeeping, the mail sender), stopped with the server.
    background: Vec<JoinHandle<()>>,
    /// Certificate and key (PEM) when serving HTTPS.
    tls: Option<RustlsConfig>,
    /// Connection cap and timeouts of the connection loop.
    limits: crate::serve::ConnectionLimits,
    /// The separate `/metrics` listener (`metrics_bind`).
    metrics_listener: Option<TcpListener>,
}

impl Application {
    /// Binds `settings.bind`, opens the store (creating and migrating it), loads or generates the
    /// signing key, and assembles the router.
    pub async fn build(settings: Settings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(keycard_core::clock::SystemClock)).await
    }

    /// [`Application::build`] with the clock every time-based decision reads (tests pass a
    /// [`keycard_core::clock::ManualClock`] to move time without sleeping).
    pub async fn build_with_clock(settings: Settings, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(settings.bind).await?;
        let addr = listener.local_addr()?;
        let config = RuntimeConfig::try_from((&settings, addr))?;
        let tls = match (&settings.tls_cert, &settings.tls_key) {
            (Some(cert), Some(key)) => {
                // One crypto provider for the process: aws-lc-rs, like every other crypto here.
                let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
                let config = RustlsConfig::from_pem_file(cert, key)
                    .await
                    .map_err(|e| anyhow::anyhow!("loading TLS certificate {cert} and key {key}: {e}"))?;
                Some(config)
            }
            _ => None,
        };
        if !addr.ip().is_loopback() && tls.is_none() {
            tracing::warn!(%addr, "serving plain HTTP on a non-loopback address: put TLS in front (or use --tls-cert/--tls-key)");
        }
        let store = open_store(&settings).await?;
        let master = keys::master_key(&settings, store.as_ref()).await?;
        let transit = crate::transit_keys::TransitSigner::from_settings(&settings).await?;
        let (ring, key_files) = if let Some(signer) = &transit {
            let ring = signer.ring(clock.now(), config.key_overlap).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            // A policy without `sign`, or a key keycard cannot use, is a start-up error, not 503s.
            signer.probe(&ring).await.map_err(|e| anyhow::anyhow!("{e}"))?;
            tracing::info!(
                transit_key = signer.key_name(),
                version = ring.active_version(),
                kid = ring.active_kid(),
                "access tokens are signed by OpenBao/Vault Transit"
            );
            (Keys::Transit(ring), None)
        } else if settings.signing_key_files.0.is_empty() {
            let ring = keys::KeyManager::new(store.as_ref(), &master, config.key_overlap)
                .ring(clock.now(), config.signing_alg)
                .await?;
            (Keys::Local(ring), None)
        } else {
            let specs = crate::key_files::specs(&settings.signing_key_files.0)?;
            let (files, ring) = crate::key_files::FileKeys::load(specs, config.key_overlap)?;
            (Keys::Local(ring), Some(files))
        };
        let passwords =
            Passwords::new(settings.argon2_memory_kib, settings.hash_concurrency, settings.hash_queue_timeout.0)?;
        let limits = match (settings.rate_limit_enabled, settings.redis.as_deref()) {
            (false, _) => RateLimits::disabled(settings.limit_config(), clock.clone()),
            (true, Some(url)) => RateLimits::redis(settings.limit_config(), url, clock.clone()).await?,
            (true, None) => RateLimits::memory(settings.limit_config(), clock.clone()),
        };
        let state = AppState::new(
            store,
            passwords,
            config,
            ring,
            key_files,
            transit,
            master,
            limits,
            settings.verify_cache_size,
            clock,
        );
        let mut background: Vec<JoinHandle<()>> =
            spawn_key_reloader(state.clone(), settings.key_reload_interval.0).into_iter().collect();
        background.push(spawn_housekeeping(state.clone(), settings.audit_retention.as_secs_i64()));
        background.push(crate::mail::spawn_sender(state.clone()));
        background.push(crate::webhooks::spawn_sender(state.clone()));
        let router = routes(state.clone());
        let max_connections = match settings.max_connections {
            0 => crate::serve::automatic_max_connections(),
            n => n,
        };
        tracing::debug!(max_connections, "connection cap");
        let limits = crate::serve::ConnectionLimits {
            max_connections,
            header_read_timeout: settings.header_read_timeout.0,
            idle_timeout: settings.idle_timeout.0,
        };
        let metrics_listener = match settings.metrics_bind {
            Some(bind) => {
                Some(TcpListener::bind(bind).await.map_err(|e| anyhow::anyhow!("binding metrics_bind {bind}: {e}"))?)
            }
            None => None,
        };
        Ok(Self {
            listener,
            router,
            max_body_bytes: settings.max_body_bytes,
            addr,
            state,
            background,
            tls,
            limits,
            metrics_listener,
        })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (tests reach the store through it).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send + 'static) -> std::io::Result<()> {
        tracing::info!(addr = %self.addr, issuer = %self.state.config.issuer, tls = self.tls.is_some(), "keycard listening");
        let service = with_global_layers(self.router, &self.state, self.max_body_bytes);
        let tls = self.tls.map(|config| tokio_rustls::TlsAcceptor::from(config.get_inner()));
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let metrics = self.metrics_listener.map(|listener| {
            let mut stop = stop_rx.clone();
            let router = Router::new()
                .route("/metrics", axum::routing::get(crate::telemetry::render))
                .fallback(middleware::not_found);
            let service = with_global_layers(router, &self.state, self.max_body_bytes);
            tracing::info!(addr = ?listener.local_addr().ok(), "serving /metrics");
            tokio::spawn(crate::serve::serve(listener, service, None, self.limits.clone(), async move {
                let _ = stop.wait_for(|stopped| *stopped).await;
            }))
        });
        let served = crate::serve::serve(self.listener, service, tls, self.limits, async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        })
        .await;
        if let Some(metrics) = metrics {
            let _ = metrics.await;
        }
        for task in self.background {
            task.abort();
        }
        served
    }

    /// The address of the separate `/metrics` listener (`metrics_bind`), if any.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref().and_then(|l| l.local_addr().ok())
    }
}

/// Re-reads the key ring every `every`, so a rotation made elsewhere (the store, the key files,
/// a Transit key rotation) reaches this instance.
fn spawn_key_reloader(state: AppState, every: std::time::Duration) -> Option<JoinHandle<()>> {
    if every.is_zero() {
        return None;
    }
    Some(tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tick.tick().await;
            if let Err(e) = state.reload_keys().await {
                tracing::warn!(error = %e, "could not reload signing keys");
            }
        }
    }))
}

/// Prunes idle rate-limit state every minute and audit events past their retention hourly.
fn spawn_housekeeping(state: AppState, audit_retention: i64) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(crate::ratelimit::PRUNE_EVERY);
        let mut rounds: u64 = 0;
        loop {
            tick.tick().await;
            state.limits.prune();
            if rounds.is_multiple_of(60) && audit_retention > 0 {
                let before = state.now() - audit_retention;
                match state.store.prune_audit(before).await {
                    Ok(n) if n > 0 => tracing::info!(deleted = n, "pruned audit events past retention"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(error = %e, "could not prune audit events"),
                }
            }
            rounds += 1;
        }
    })
}

/// Opens the store named by `settings.database`.
pub async fn open_store(settings: &Settings) -> anyhow::Result<Arc<dyn Store>> {
    match &settings.database {
        Database::Postgres(url) => {
            let store = keycard_store::PgStore::connect(url, settings.pg_options()).await;
            Ok(Arc::new(anyhow::Context::context(store, "could not open the PostgreSQL store")?))
        }
        Database::Sqlite(path) => Ok(Arc::new(SqliteStore::open(&path.display().to_string(), 0).await?)),
    }
}

/// The whole application, routes plus every layer, as a [`Router`] (for in-process use: tests,
/// fuzzing). The server serves the same stack without the outer router.
pub fn app(state: AppState, settings: &Settings) -> Router {
    Router::new().fallback_service(with_global_layers(routes(state.clone()), &state, settings.max_body_bytes))
}

/// Every route with its state, the JSON 404/405 fallbacks and the per-route latency histogram
/// (a route layer: it reads the matched route template), without the global layers.
fn routes(state: AppState) -> Router {
    crate::telemetry::prometheus();
    routes::router()
        .route("/metrics", axum::routing::get(crate::telemetry::render_protected))
        .route_layer(axum::middleware::from_fn(crate::telemetry::track_latency))
        .fallback(middleware::not_found)
        .method_not_allowed_fallback(middleware::method_not_allowed)
        .with_state(state)
}

/// Wraps the finished router in the global layers once, so they are built once and cloned as one
/// concrete stack per request (layers added with `Router::layer` are boxed around every route
/// separately, and axum clones that nested stack of boxes for each request). Outermost first.
pub fn with_global_layers(
    router: Router,
    state: &AppState,
    max_body_bytes: usize,
) -> impl Service<Request, Response = Response, Error = Infallible, Future: Send> + Clone + Send + Sync + 'static {
    ServiceBuilder::new()
        .map_response(|response: Response<_>| response.map(Body::new))
        .layer(TraceLayer::new_for_http().make_span_with(|req: &Request| {
            // Method and path only: the query string and headers may carry secrets.
            tracing::info_span!("request", method = %req.method(), path = %req.uri().path())
        }))
        .layer(CatchPanicLayer::custom(middleware::panic_response))
        .layer(axum::middleware::map_response_with_state(state.config.tls, middleware::set_security_headers))
        // Outside CORS, so even a preflight carrying a token in its URL is refused.
        .layer(axum::middleware::from_fn_with_state(state.config.request_timeout, middleware::guard_request))
        .layer(middleware::cors(&state.config.allowed_origins))
        // With server nonces on, every answer to a DPoP request carries the current one (RFC 9449
        // §8.2), so clients rarely meet `use_dpop_nonce`. Off, nothing is added to the stack.
        .option_layer(
            state
                .config
                .dpop
                .nonce
                .then(|| axum::middleware::from_fn_with_state(state.clone(), crate::dpop::offer_nonce)),
        )
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .service(router)
}
