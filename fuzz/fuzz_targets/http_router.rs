//! JSON request bodies and headers through the real router, in process: every layer (token-in-URL
//! refusal, body limit, CORS, security headers, panic catcher) and every handler, on a real
//! SQLite store.
//!
//! Input, HTTP/1-like text: `METHOD /path?query`, header lines, a blank line, the body. Before
//! parsing, placeholders become live credentials of a user made for this input: `$AT` access
//! token, `$RT` refresh token, `$SID` session id, `$UID` user id, `$EMAIL`, `$PASSWORD`.
//!
//! Invariants: no 5xx (a panic would be caught and turned into a 500, so it counts); a token in
//! the query string is always 400; every error is the JSON error body of SPEC.md, 401s carry
//! `WWW-Authenticate`; every response carries the security headers.
#![no_main]

use std::net::SocketAddr;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Method, Request, StatusCode, Uri, header};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const TOKEN_PARAMS: [&str; 3] = ["access_token", "refresh_token", "id_token"];

static DEBUG: std::sync::LazyLock<bool> = std::sync::LazyLock::new(|| std::env::var_os("KEYCARD_FUZZ_DEBUG").is_some());

fn substitute(data: &[u8]) -> Vec<u8> {
    if !data.contains(&b'$') {
        return data.to_vec();
    }
    let server = keycard_fuzz::server();
    let p = server.principal();
    let mut out = data.to_vec();
    for (from, to) in [
        ("$AT", p.access.as_str()),
        ("$RT", p.refresh.as_str()),
        ("$SID", p.session_id.as_str()),
        ("$UID", p.user_id.as_str()),
        ("$EMAIL", p.email.as_str()),
        ("$PASSWORD", server.password),
    ] {
        out = replace(&out, from.as_bytes(), to.as_bytes());
    }
    out
}

fn replace(haystack: &[u8], from: &[u8], to: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(haystack.len());
    let mut i = 0;
    while i < haystack.len() {
        if haystack[i..].starts_with(from) {
            out.extend_from_slice(to);
            i += from.len();
        } else {
            out.push(haystack[i]);
            i += 1;
        }
    }
    out
}

fn request(data: &[u8]) -> Option<Request<Body>> {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &b""[..]),
    };
    let mut lines = head.split(|b| *b == b'\n');
    let first = lines.next()?;
    let space = first.iter().position(|b| *b == b' ')?;
    let method = Method::from_bytes(&first[..space]).ok()?;
    let uri = Uri::try_from(&first[space + 1..]).ok()?;
    uri.path_and_query()?;
    let mut req = Request::builder().method(method).uri(uri).body(Body::from(body.to_vec())).ok()?;
    for line in lines {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let value = &line[colon + 1..];
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(&line[..colon]), HeaderValue::from_bytes(value)) {
            req.headers_mut().append(name, value);
        }
    }
    let peer: SocketAddr = "127.0.0.1:40000".parse().ok()?;
    req.extensions_mut().insert(ConnectInfo(peer));
    Some(req)
}

fuzz_target!(|data: &[u8]| {
    if data.len() > 16 * 1024 {
        return;
    }
    let Some(req) = request(&substitute(data)) else { return };
    let method = req.method().clone();
    let token_in_query = req
        .uri()
        .query()
        .is_some_and(|q| form_urlencoded::parse(q.as_bytes()).any(|(k, _)| TOKEN_PARAMS.contains(&k.as_ref())));
    let server = keycard_fuzz::server();
    let (status, headers, body) = server.rt.block_on(async {
        let response = server.router.clone().oneshot(req).await.expect("the router is infallible");
        let (parts, body) = response.into_parts();
        let body = axum::body::to_bytes(body, usize::MAX).await.expect("the body reads");
        (parts.status, parts.headers, body)
    });

    if *DEBUG {
        // KEYCARD_FUZZ_DEBUG=1 with -runs=0 shows what each seed reaches (seed maintenance).
        eprintln!("{method} -> {status} {}", String::from_utf8_lossy(&body[..body.len().min(160)]));
    }
    assert!(!status.is_server_error(), "{status}: {}", String::from_utf8_lossy(&body));
    if token_in_query {
        assert_eq!(status, StatusCode::BAD_REQUEST, "a token in the URL was not refused");
    }
    assert_eq!(headers.get(header::X_CONTENT_TYPE_OPTIONS).map(|v| v.as_bytes()), Some(&b"nosniff"[..]));
    assert!(headers.contains_key(header::CACHE_CONTROL), "no Cache-Control");
    if status.is_client_error() && method != Method::HEAD {
        let error: serde_json::Value = serde_json::from_slice(&body)
            .unwrap_or_else(|e| panic!("{status}: error body is not JSON ({e}): {}", String::from_utf8_lossy(&body)));
        assert!(error["error"].is_string() && error["error_description"].is_string(), "{status}: {error}");
        if status == StatusCode::UNAUTHORIZED {
            assert!(headers.contains_key(header::WWW_AUTHENTICATE), "401 without WWW-Authenticate");
        }
    }
    if status.is_success() && body.starts_with(b"{\"access_token\"") {
        assert_eq!(headers.get(header::CACHE_CONTROL).map(|v| v.as_bytes()), Some(&b"no-store"[..]));
    }
});
