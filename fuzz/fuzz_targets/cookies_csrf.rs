//! Cookie and CSRF header handling: a `HeaderMap` and `CookieJar` built from fuzz bytes, through
//! `cookies::check_csrf`, `check_origin`, `refresh_cookie`, and the header readers beside them
//! (`bearer_token_from`, `client_ip`).
//!
//! Input: header lines `Name: value`, one per line (invalid names or values are skipped, as
//! hyper would refuse them). The first byte picks Secure cookie names or plain ones.
//!
//! Invariant: a request passes the CSRF check only when its `Origin` is absent or allowed, and
//! its `X-CSRF-Token` header equals a non-empty CSRF cookie.
#![no_main]

use std::net::IpAddr;

use axum::http::{HeaderMap, HeaderName, HeaderValue, header};
use axum_extra::extract::CookieJar;
use keycard_server::cookies;
use keycard_server::extract::{bearer_token_from, client_ip};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let mut headers = HeaderMap::new();
    for line in rest.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else { continue };
        let (name, value) = (&line[..colon], &line[colon + 1..]);
        let value = value.strip_prefix(b" ").unwrap_or(value);
        if let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) {
            headers.append(name, value);
        }
    }
    let server = keycard_fuzz::server();
    let mut config = server.state.config.clone();
    config.cookie_secure = flags & 1 == 0;
    let jar = CookieJar::from_headers(&headers);

    let refresh = cookies::refresh_cookie(&jar, &config);
    if let Some(value) = refresh {
        assert!(!value.is_empty(), "an empty refresh cookie was returned");
    }
    let origin_ok = cookies::check_origin(&headers, &config).is_ok();
    if cookies::check_csrf(&headers, &jar, &config).is_ok() {
        assert!(origin_ok, "CSRF passed with a refused Origin");
        let origin = headers.get(header::ORIGIN).map(|o| o.to_str().expect("an allowed origin is text"));
        assert!(origin.is_none_or(|o| config.allowed_origins.iter().any(|a| a == o)), "origin {origin:?} passed");
        let cookie = cookies::csrf_cookie(&jar, &config).expect("CSRF passed without a cookie");
        if jar.get(cookies::csrf_name(&config)).is_some() {
            assert_eq!(jar.get(cookies::csrf_name(&config)).map(|c| c.value()), Some(cookie), "legacy cookie won");
        }
        let sent = headers.get(cookies::CSRF_HEADER).and_then(|v| v.to_str().ok()).expect("no CSRF header");
        assert!(!cookie.is_empty() && cookie == sent, "CSRF passed with a mismatched token");
    }
    if let Ok(token) = bearer_token_from(&headers) {
        assert!(!token.is_empty() && token.trim() == token, "bearer token {token:?}");
    }
    let trusted: Vec<IpAddr> = config.trusted_proxies.clone();
    for peer in ["127.0.0.1", "10.0.0.7", "::1"] {
        let peer: IpAddr = peer.parse().expect("ip");
        let ip = client_ip(Some(peer), &headers, &trusted).expect("a peer gives an ip");
        if !trusted.contains(&peer) {
            assert_eq!(ip, peer, "X-Forwarded-For believed from an untrusted peer");
        }
    }
});
