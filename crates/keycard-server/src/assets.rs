//! Files built into the binary and served as they are: the demo page and its scripts
//! (`routes/web.rs`) and the API docs page (`openapi.rs`), each with its type, its content
//! security policy and `no-cache`.

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};

/// Scripts and stylesheets run nothing by themselves; a locked-down policy in case one is opened
/// directly.
pub(crate) const ASSET_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

/// An embedded file with its type and policy. `no-cache`: browsers revalidate, so a new
/// binary's files are picked up at once (the global default, `no-store`, is for token responses).
pub(crate) fn asset(body: &'static str, content_type: &'static str, csp: &'static str) -> Response {
    let headers: [(HeaderName, HeaderValue); 3] = [
        (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
        (header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(csp)),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, body).into_response()
}
