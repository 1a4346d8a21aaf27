//! Cross-cutting layers: tokens in URLs and duplicate cookies refused, a deadline on request
//! bodies, JSON 404/405/500, security headers, CORS, and request tracing that never records a
//! header or a query string.

use std::any::Any;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::Response;
use keycard_core::ErrorCode;
use tower_http::cors::{AllowOrigin, CorsLayer};

use crate::error::{ApiError, error_response};

/// Query parameters that mean a token travelled in a URL (logs, history, Referer leak it).
const TOKEN_PARAMS: [&str; 3] = ["access_token", "refresh_token", "id_token"];

/// 400 for any request carrying a token in its query string (parameter names compared without
/// regard to case: `?Access_Token=` leaks as much as `?access_token=`), or two cookies of one of
/// keycard's names (a copy planted by a sibling site would otherwise win or lose by position).
///
/// The same layer gives the request body `limit` in all to arrive (`DeadlineBody`): one
/// middleware instead of two on every request.
pub async fn guard_request(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    if let Some(query) = req.uri().query() {
        let leaked = form_urlencoded::parse(query.as_bytes())
            .any(|(k, _)| TOKEN_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(k.trim())));
        if leaked {
            return error_response(
                ErrorCode::InvalidRequest,
                "tokens must never be sent in a URL; use the Authorization header, a cookie or the body".into(),
                None,
            );
        }
    }
    if let Some(name) = crate::cookies::duplicate_cookie(req.headers()) {
        return error_response(
            ErrorCode::InvalidRequest,
            format!(
                "the request carries the cookie {name} more than once; clear this site's cookies and sign in again"
            ),
            None,
        );
    }
    with_body_deadline(limit, req, next).await
}

/// Gives the request body `limit` in all to arrive: a client trickling a body byte by byte
/// cannot hold a connection and a handler for longer. Past the deadline, reading the body fails
/// (the handler answers 400). Bodiless requests (every `GET`) are passed through untouched.
/// Handlers themselves are never cut short: a refresh whose rotation committed always answers.
async fn with_body_deadline(limit: Duration, req: Request, next: Next) -> Response {
    use http_body::Body as _;
    if req.body().is_end_stream() {
        return next.run(req).await;
    }
    let started = tokio::time::Instant::now();
    let req = req.map(|body| Body::new(DeadlineBody { inner: body, started, limit, deadline: None }));
    next.run(req).await
}

/// A body that fails once its deadline passes. The timer is armed only when the body is not all
/// there at once (most bodies arrive with the headers): no timer at all on the common path.
struct DeadlineBody {
    inner: Body,
    started: tokio::time::Instant,
    limit: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl http_body::Body for DeadlineBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.inner).poll_frame(cx) {
            return Poll::Ready(frame);
        }
        let at = self.started + self.limit;
        let deadline = self.deadline.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(at)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(axum::Error::new(format!(
                "the request body did not arrive within {} s",
                self.limit.as_secs()
            ))))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// JSON 404 for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::new(ErrorCode::NotFound, "no such endpoint")
}

/// JSON 405 for a known path with another method.
pub async fn method_not_allowed() -> ApiError {
    ApiError::new(ErrorCode::MethodNotAllowed, "this endpoint does not accept this method")
}

/// Turns a handler panic into the generic JSON 500 (the panic message is logged, not sent).
pub fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(panic = %crate::redact::redact(what), "handler panicked");
    error_response(ErrorCode::ServerError, "internal error".into(), None)
}

/// Sets the [`security_headers`] (and HSTS when `tls`) on a response, each unless the handler set
/// its own: one middleware for all of them.
pub async fn set_security_headers(State(tls): State<bool>, mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in security_headers() {
        if !headers.contains_key(&name) {
            headers.insert(name, value);
        }
    }
    if tls && !headers.contains_key(header::STRICT_TRANSPORT_SECURITY) {
        headers
            .insert(header::STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    response
}

/// Security headers every response carries unless the handler set its own.
pub fn security_headers() -> [(HeaderName, HeaderValue); 5] {
    [
        (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
        (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
        (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static("frame-ancestors 'none'")),
        // Token responses must never be cached; JWKS overrides this with its own max-age.
        (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
    ]
}

/// CORS for the allowed origins, with credentials (so cookies flow) and never a wildcard. The
/// list sits behind an `Arc` (a predicate), so the per-request clone of the layer copies no list.
pub fn cors(allowed_origins: &[String]) -> CorsLayer {
    let origins: Arc<[HeaderValue]> = allowed_origins.iter().filter_map(|o| HeaderValue::from_str(o).ok()).collect();
    CorsLayer::new()
        .allow_origin(AllowOrigin::predicate(move |origin, _| origins.contains(origin)))
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST, Method::PATCH, Method::DELETE])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            HeaderName::from_static(crate::cookies::CSRF_HEADER),
            HeaderName::from_static("dpop"),
        ])
        // keycard.js on another origin reads `Retry-After` of a 429/503 to back off, the DPoP
        // challenge and nonce, and `Date` (to date its proofs on keycard's clock when the
        // device's is off); none is a CORS-safelisted response header.
        .expose_headers([
            header::RETRY_AFTER,
            header::DATE,
            header::WWW_AUTHENTICATE,
            HeaderName::from_static(crate::dpop::NONCE_HEADER),
        ])
        .max_age(std::time::Duration::from_secs(600))
}
