//! The connection loop: accepts TCP connections (with TLS when configured) and serves HTTP/1.1
//! and HTTP/2 on them with hyper, under limits that keep slow or idle clients from holding the
//! server's file descriptors:
//!
//! - at most `max_connections` connections at once (more wait in the kernel's listen backlog);
//! - a TLS handshake, and every request's header block, must arrive within
//!   `header_read_timeout` (hyper's timer restarts it for each request of a keep-alive
//!   connection, so it also bounds the wait for the next request);
//! - a connection that moves no byte either way for `idle_timeout` is closed (HTTP/2 included);
//! - accept errors (`EMFILE` when the process is out of descriptors) pause accepting briefly
//!   instead of ending the server.
//!
//! The request timeout is a middleware (`middleware::request_timeout`), inside this loop.

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::Response;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::{Service, ServiceExt as _};

/// How long in-flight requests may finish after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// File descriptors kept back from connections when the cap is automatic: the store's files,
/// the listener, the runtime's own, logs, key files.
const RESERVED_FDS: u64 = 48;

/// The limits of the connection loop (from the settings).
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Most connections served at once.
    pub max_connections: usize,
    /// Time allowed for a TLS handshake and for each request's header block.
    pub header_read_timeout: Duration,
    /// A connection silent in both directions this long is closed.
    pub idle_timeout: Duration,
}

/// The automatic connection cap: the soft limit on open files less an eighth and a fixed
/// reserve, so a flood of connections can never take the descriptors the store needs.
pub fn automatic_max_connections() -> usize {
    #[cfg(target_os = "linux")]
    let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile).current.unwrap_or(65_536);
    #[cfg(not(target_os = "linux"))]
    let soft: u64 = 1024;
    let usable = soft.saturating_sub(soft / 8).saturating_sub(RESERVED_FDS).clamp(8, 65_536);
    usize::try_from(usable).unwrap_or(65_536)
}

/// Serves `service` on `listener` until `shutdown` resolves, then lets in-flight requests finish
/// (for at most `SHUTDOWN_GRACE`).
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    tls: Option<TlsAcceptor>,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    builder.http2().timer(TokioTimer::new());
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            () = &mut shutdown => break,
            permit = slots.clone().acquire_owned() => permit.map_err(io::Error::other)?,
        };
        let (stream, peer) = tokio::select! {
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after_accept_error(&e).await;
                    continue;
                }
            },
        };
        let connection = Connection {
            builder: builder.clone(),
            service: service.clone(),
            tls: tls.clone(),
            peer,
            limits: limits.clone(),
            watcher: graceful.watcher(),
        };
        tokio::spawn(async move {
            connection.run(stream).await;
            drop(permit);
        });
    }
    drop(listener);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown()).await.is_err() {
        tracing::warn!("connections still open {} s after shutdown began; closing them", SHUTDOWN_GRACE.as_secs());
    }
    Ok(())
}

/// One accepted connection and what it needs to be served.
struct Connection<S> {
    builder: Arc<Builder<TokioExecutor>>,
    service: S,
    tls: Option<TlsAcceptor>,
    peer: SocketAddr,
    limits: ConnectionLimits,
    watcher: hyper_util::server::graceful::Watcher,
}

impl<S> Connection<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + Sync + 'static,
    S::Future: Send + 'static,
{
    async fn run(self, stream: TcpStream) {
        let activity = Activity::new();
        let io = Tracked { inner: stream, activity: activity.clone() };
        // hyper's header timer starts only once it knows the protocol, which takes the first
        // bytes: a connection that sends nothing (or half an HTTP/2 preface) is cut off here.
        let (idle, first) = (self.limits.idle_timeout, self.limits.header_read_timeout);
        let watch = activity.clone();
        let idle = async move {
            tokio::select! {
                () = watch.clone().idle_for(idle) => {}
                () = watch.first_request_within(first) => {}
            }
        };
        match self.tls.clone() {
            None => self.http(io, activity, idle).await,
            Some(acceptor) => match tokio::time::timeout(self.limits.header_read_timeout, acceptor.accept(io)).await {
                Ok(Ok(tls)) => self.http(tls, activity, idle).await,
                Ok(Err(e)) => tracing::debug!(peer = %self.peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(peer = %self.peer, "TLS handshake timed out"),
            },
        }
    }

    async fn http<I>(self, io: I, activity: Activity, idle: impl Future<Output = ()> + Send + 'static)
    where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let (service, peer) = (self.service, self.peer);
        let hyper_service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            let busy = activity.begin_request();
            let response = service.clone().oneshot(req);
            async move {
                let response = response.await;
                drop(busy);
                response
            }
        });
        let served = self.builder.serve_connection_with_upgrades(TokioIo::new(io), hyper_service);
        let served = self.watcher.watch(served.into_owned());
        // The watchdog runs as its own task and says when to close: polled in the connection's
        // task, its timers would be polled again on every wake of every request.
        let (expired, closing) = tokio::sync::oneshot::channel::<()>();
        let watchdog = tokio::spawn(async move {
            idle.await;
            let _ = expired.send(());
        });
        tokio::select! {
            result = served => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
            }
            _ = closing => tracing::debug!(%peer, "idle connection closed"),
        }
        watchdog.abort();
    }
}

/// Waits out an accept error: per-connection errors (the client hung up) need no pause; others,
/// `EMFILE`/`ENFILE` above all, would spin, so accepting pauses briefly and resumes.
async fn pause_after_accept_error(e: &io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(e.kind(), ConnectionRefused | ConnectionAborted | ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accepting a connection failed; pausing accepts");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

/// When a connection last moved a byte (milliseconds since it was accepted), how many of its
/// requests are being handled, and whether one ever arrived: a connection is idle only with none
/// in flight, so a request waiting for a hashing slot is never cut off. One allocation per
/// connection; a request costs two atomic operations on it.
#[derive(Clone)]
struct Activity(Arc<ActivityState>);

struct ActivityState {
    start: Instant,
    last_ms: AtomicU64,
    in_flight: AtomicUsize,
    /// Whether any request has arrived whole (headers parsed).
    started: std::sync::atomic::AtomicBool,
}

/// A request in flight; the connection counts as active until it is dropped.
struct Busy(Activity);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.0.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.0.touch();
    }
}

impl Activity {
    fn new() -> Self {
        Self(Arc::new(ActivityState {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            in_flight: AtomicUsize::new(0),
            started: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    fn begin_request(&self) -> Busy {
        if !self.0.started.load(Ordering::Relaxed) {
            self.0.started.store(true, Ordering::Relaxed);
        }
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        Busy(self.clone())
    }

    fn touch(&self) {
        let ms = u64::try_from(self.0.start.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.0.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Resolves when no request has arrived whole `limit` after the connection was accepted;
    /// never once one has (hyper's own timer covers the requests after the first).
    async fn first_request_within(self, limit: Duration) {
        tokio::time::sleep_until(self.0.start + limit).await;
        if self.0.started.load(Ordering::Relaxed) {
            std::future::pending::<()>().await;
        }
    }

    /// Resolves once the connection has been silent, with no request in flight, for `limit`.
    async fn idle_for(self, limit: Duration) {
        loop {
            let last = self.0.start + Duration::from_millis(self.0.last_ms.load(Ordering::Relaxed));
            let deadline = last + limit;
            if Instant::now() >= deadline {
                if self.0.in_flight.load(Ordering::Relaxed) == 0 {
                    return;
                }
                self.touch();
                continue;
            }
            tokio::time::sleep_until(deadline).await;
        }
    }
}

/// A stream that records when bytes move.
struct Tracked<T> {
    inner: T,
    activity: Activity,
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, data: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
