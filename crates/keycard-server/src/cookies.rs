//! Browser delivery: the refresh token in an HTTP-only cookie scoped to `/auth`, a readable CSRF
//! cookie, and the double-submit + Origin check on cookie-authenticated POSTs.

use axum::http::{HeaderMap, header};
use axum_extra::extract::CookieJar;
use axum_extra::extract::cookie::{Cookie, SameSite};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_core::ErrorCode;
use subtle::ConstantTimeEq;
use time::Duration;

use crate::error::ApiError;
use crate::state::RuntimeConfig;

/// Header carrying the CSRF token on cookie-authenticated requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// The refresh cookie's name (`__Secure-` prefix when cookies are Secure).
pub fn refresh_name(config: &RuntimeConfig) -> &'static str {
    if config.cookie_secure { "__Secure-keycard_refresh" } else { "keycard_refresh" }
}

/// The CSRF cookie's name.
pub fn csrf_name(config: &RuntimeConfig) -> &'static str {
    if config.cookie_secure { "__Secure-keycard_csrf" } else { "keycard_csrf" }
}

/// A fresh CSRF token: 32 random bytes, base64url.
pub fn new_csrf_token() -> String {
    let mut bytes = [0u8; 32];
    #[allow(clippy::expect_used)] // no OS randomness means no tokens at all
    getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Adds the refresh and CSRF cookies, both living `max_age_secs`.
pub fn set_session_cookies(
    jar: CookieJar,
    config: &RuntimeConfig,
    refresh: &str,
    csrf: &str,
    max_age_secs: i64,
) -> CookieJar {
    let refresh = Cookie::build((refresh_name(config), refresh.to_owned()))
        .http_only(true)
        .secure(config.cookie_secure)
        .same_site(SameSite::Strict)
        .path("/auth")
        .max_age(Duration::seconds(max_age_secs));
    let csrf = Cookie::build((csrf_name(config), csrf.to_owned()))
        .http_only(false)
        .secure(config.cookie_secure)
        .same_site(SameSite::Strict)
        .path("/")
        .max_age(Duration::seconds(max_age_secs));
    jar.add(refresh).add(csrf)
}

/// Expires both cookies.
pub fn clear_session_cookies(jar: CookieJar, config: &RuntimeConfig) -> CookieJar {
    let expired = |name: &'static str, path: &'static str, http_only: bool| {
        Cookie::build((name, ""))
            .http_only(http_only)
            .secure(config.cookie_secure)
            .same_site(SameSite::Strict)
            .path(path)
            .max_age(Duration::ZERO)
    };
    jar.add(expired(refresh_name(config), "/auth", true)).add(expired(csrf_name(config), "/", false))
}

/// The refresh token from its cookie, if sent.
pub fn refresh_cookie<'a>(jar: &'a CookieJar, config: &RuntimeConfig) -> Option<&'a str> {
    jar.get(refresh_name(config)).map(|c| c.value()).filter(|v| !v.is_empty())
}

/// Checks a cookie-authenticated request: `Origin`, when present, is allowed, and `X-CSRF-Token`
/// equals the CSRF cookie (compared in constant time).
pub fn check_csrf(headers: &HeaderMap, jar: &CookieJar, config: &RuntimeConfig) -> Result<(), ApiError> {
    check_origin(headers, config)?;
    let cookie = jar.get(csrf_name(config)).map(|c| c.value()).unwrap_or("");
    let header = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    if cookie.is_empty() || header.is_empty() || !bool::from(cookie.as_bytes().ct_eq(header.as_bytes())) {
        return Err(ApiError::new(ErrorCode::CsrfFailed, "the X-CSRF-Token header must match the CSRF cookie"));
    }
    Ok(())
}

/// Refuses a request whose `Origin` header is present and not allowed.
pub fn check_origin(headers: &HeaderMap, config: &RuntimeConfig) -> Result<(), ApiError> {
    match headers.get(header::ORIGIN).map(|v| v.to_str()) {
        None => Ok(()),
        Some(Ok(origin)) if config.allowed_origins.iter().any(|o| o == origin) => Ok(()),
        Some(_) => Err(ApiError::new(ErrorCode::CsrfFailed, "requests from this origin are not allowed")),
    }
}
