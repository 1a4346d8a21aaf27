//! Browser delivery: the refresh token in an HTTP-only cookie scoped to `/auth`, a readable CSRF
//! cookie, the device cookie of login throttling, and the double-submit + Origin check on
//! cookie-authenticated POSTs.
//!
//! The CSRF and device cookies are `__Host-` cookies (Secure, `Path=/`, no `Domain`): a sibling
//! subdomain cannot plant one. A request carrying two cookies of one of keycard's names is
//! refused ([`duplicate_cookie`]) rather than answered with whichever copy a parser picks.

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
    if config.cookie_secure { "__Host-keycard_csrf" } else { "keycard_csrf" }
}

/// The CSRF cookie's name before it became a `__Host-` cookie: still read when the new one is
/// absent (a browser that logged in before the upgrade), and expired at its next rotation.
const LEGACY_CSRF: &str = "__Secure-keycard_csrf";

/// The device cookie's name (login throttling, `devices.rs`).
pub fn device_name(config: &RuntimeConfig) -> &'static str {
    if config.cookie_secure { "__Host-keycard_device" } else { "keycard_device" }
}

/// Every cookie name keycard sets, in both the prefixed and the plain form.
const KEYCARD_COOKIES: [&str; 7] = [
    "__Secure-keycard_refresh",
    "keycard_refresh",
    "__Host-keycard_csrf",
    LEGACY_CSRF,
    "keycard_csrf",
    "__Host-keycard_device",
    "keycard_device",
];

/// The first of keycard's cookie names that `headers` carry more than once (a planted copy).
pub fn duplicate_cookie(headers: &HeaderMap) -> Option<&'static str> {
    let mut seen = [0u8; KEYCARD_COOKIES.len()];
    for value in headers.get_all(header::COOKIE) {
        let Ok(value) = value.to_str() else { continue };
        for pair in value.split(';') {
            let name = pair.split_once('=').map_or(pair, |(name, _)| name).trim();
            if let Some(i) = KEYCARD_COOKIES.iter().position(|known| *known == name) {
                seen[i] += 1;
                if seen[i] > 1 {
                    return Some(KEYCARD_COOKIES[i]);
                }
            }
        }
    }
    None
}

/// The device cookie: HTTP-only, `__Host-` (when Secure), living `max_age_secs`.
pub fn set_device_cookie(jar: CookieJar, config: &RuntimeConfig, token: String, max_age_secs: i64) -> CookieJar {
    jar.add(
        Cookie::build((device_name(config), token))
            .http_only(true)
            .secure(config.cookie_secure)
            .same_site(SameSite::Strict)
            .path("/")
            .max_age(Duration::seconds(max_age_secs)),
    )
}

/// The device token from its cookie, if sent.
pub fn device_cookie<'a>(jar: &'a CookieJar, config: &RuntimeConfig) -> Option<&'a str> {
    jar.get(device_name(config)).map(|c| c.value()).filter(|v| !v.is_empty())
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
    let jar = if config.cookie_secure && jar.get(LEGACY_CSRF).is_some() { expire_legacy_csrf(jar) } else { jar };
    jar.add(refresh).add(csrf)
}

fn expire_legacy_csrf(jar: CookieJar) -> CookieJar {
    jar.add(Cookie::build((LEGACY_CSRF, "")).secure(true).same_site(SameSite::Strict).path("/").max_age(Duration::ZERO))
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

/// The CSRF cookie's value: the `__Host-` cookie, or the legacy `__Secure-` one when only it
/// was sent.
pub fn csrf_cookie<'a>(jar: &'a CookieJar, config: &RuntimeConfig) -> Option<&'a str> {
    jar.get(csrf_name(config)).or_else(|| jar.get(LEGACY_CSRF).filter(|_| config.cookie_secure)).map(|c| c.value())
}

/// Checks a cookie-authenticated request: `Origin`, when present, is allowed, and `X-CSRF-Token`
/// equals the CSRF cookie (compared in constant time).
pub fn check_csrf(headers: &HeaderMap, jar: &CookieJar, config: &RuntimeConfig) -> Result<(), ApiError> {
    check_origin(headers, config)?;
    let cookie = csrf_cookie(jar, config).unwrap_or("");
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

#[cfg(test)]
mod tests {
    use super::*;

    fn with_cookies(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(header::COOKIE, v.parse().unwrap());
        }
        headers
    }

    #[test]
    fn duplicate_keycard_cookies_are_found_in_one_or_several_headers() {
        assert_eq!(duplicate_cookie(&with_cookies(&["__Host-keycard_csrf=a; other=1"])), None);
        assert_eq!(duplicate_cookie(&with_cookies(&["other=1; other=2"])), None, "only keycard's names");
        assert_eq!(
            duplicate_cookie(&with_cookies(&["__Host-keycard_csrf=a; __Host-keycard_csrf=b"])),
            Some("__Host-keycard_csrf")
        );
        assert_eq!(
            duplicate_cookie(&with_cookies(&["__Secure-keycard_refresh=a", " __Secure-keycard_refresh=b"])),
            Some("__Secure-keycard_refresh")
        );
    }
}
