//! Extractors: JSON bodies that fail with the JSON error of SPEC.md, the authenticated caller
//! behind a Bearer token (or a DPoP-bound token with its proof), and the client's IP and user
//! agent.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use keycard_core::claims::AccessClaims;
use keycard_core::{ErrorCode, TokenError};
use keycard_store::{AuditEvent, AuditKind, UserRecord};
use serde::de::DeserializeOwned;

use crate::error::ApiError;
use crate::state::AppState;

fn body_rejection(status: StatusCode, detail: String) -> ApiError {
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
    } else {
        ApiError::bad_request(detail)
    }
}

/// A JSON body; malformed JSON, wrong types, unknown fields and a missing content type are 400
/// `invalid_request`, an oversized body 413 `payload_too_large`.
pub struct ApiJson<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let detail = match &rejection {
        JsonRejection::MissingJsonContentType(_) => {
            "expected a JSON body with Content-Type: application/json".to_owned()
        }
        other => format!("invalid JSON body: {}", other.body_text()),
    };
    body_rejection(rejection.status(), detail)
}

/// A path parameter; one that does not decode (invalid percent-encoded UTF-8, say) is 400
/// `invalid_request` in the JSON error shape, like every other bad input.
pub struct ApiPath<T>(pub T);

impl<T: DeserializeOwned + Send, S: Send + Sync> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Self(value)),
            Err(rejection) => Err(ApiError::bad_request(format!("invalid path: {}", rejection.body_text()))),
        }
    }
}

/// A JSON body that may be absent (empty): then `T::default()`. Used where cookie clients send
/// no body (refresh, logout).
pub struct OptionalJson<T>(pub T);

impl<T: DeserializeOwned + Default, S: Send + Sync> FromRequest<S> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|r| body_rejection(r.status(), r.body_text()))?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(T::default()));
        }
        serde_json::from_slice(&bytes).map(Self).map_err(|e| ApiError::bad_request(format!("invalid JSON body: {e}")))
    }
}

/// The caller's address and user agent, for sessions and the audit log.
#[derive(Debug, Clone, Default)]
pub struct ClientInfo {
    /// Client IP (canonical: an IPv4 peer arriving as `::ffff:a.b.c.d` is `a.b.c.d`).
    pub ip: Option<String>,
    /// `User-Agent`, truncated to 512 bytes.
    pub user_agent: Option<String>,
    /// On token requests: the RFC 7638 thumbprint of the DPoP key whose proof came with the
    /// request (checked by [`crate::dpop::token_proof`]); what it obtains is bound to that key.
    pub dpop_jkt: Option<String>,
}

impl ClientInfo {
    /// An audit event of this client's request.
    pub fn event(
        &self,
        kind: AuditKind,
        user_id: Option<String>,
        session_id: Option<String>,
        detail: Option<String>,
        at: i64,
    ) -> AuditEvent {
        AuditEvent { at, kind, user_id, session_id, ip: self.ip.clone(), user_agent: self.user_agent.clone(), detail }
    }

    /// The key of per-IP rate limits: the IPv4 address, or the /64 network of an IPv6 address
    /// (one host usually owns a whole /64, so per-address budgets would be multiplied by 2^64).
    /// Borrowed for IPv4 (the common case costs nothing).
    pub fn rate_key(&self) -> std::borrow::Cow<'_, str> {
        use std::borrow::Cow;
        match self.ip.as_deref() {
            None => Cow::Borrowed("-"),
            Some(ip) if !ip.contains(':') => Cow::Borrowed(ip),
            Some(ip) => match ip.parse::<IpAddr>() {
                Ok(IpAddr::V6(v6)) => {
                    let s = v6.segments();
                    Cow::Owned(format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3]))
                }
                _ => Cow::Borrowed(ip),
            },
        }
    }
}

impl FromRequestParts<AppState> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(addr)| addr.ip());
        let ip = client_ip(peer, &parts.headers, &state.config.trusted_proxies).map(|ip| ip.to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|ua| ua.chars().take(512).collect::<String>());
        Ok(Self { ip, user_agent, dpop_jkt: None })
    }
}

/// The client's IP: the peer address, or — only when the peer is a trusted proxy — the
/// right-most address of `X-Forwarded-For` that is not itself a trusted proxy. Addresses are
/// compared in canonical form (`::ffff:127.0.0.1` is `127.0.0.1`, as a dual-stack socket reports
/// IPv4 peers); `trusted` must be canonical already (the settings make it so).
pub fn client_ip(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &[IpAddr]) -> Option<IpAddr> {
    let peer = peer?.to_canonical();
    if !trusted.contains(&peer) {
        return Some(peer);
    }
    let forwarded =
        headers.get_all("x-forwarded-for").iter().filter_map(|v| v.to_str().ok()).collect::<Vec<_>>().join(",");
    let mut hops = forwarded.split(',').rev().map(str::trim).filter(|h| !h.is_empty());
    let mut client = peer;
    for hop in hops.by_ref() {
        match hop.parse::<IpAddr>().map(|ip| ip.to_canonical()) {
            Ok(ip) if trusted.contains(&ip) => client = ip,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(client)
}

/// The Bearer token from a present `Authorization` header.
pub fn bearer_token_from(headers: &HeaderMap) -> Result<&str, TokenError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Err(TokenError::Malformed);
    };
    let token = value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|t| !t.is_empty());
    token.ok_or(TokenError::Malformed)
}

/// A caller whose access token passed the whole checklist: signature and claims, session not
/// revoked, user still there.
#[derive(Debug, Clone)]
pub struct Authenticated {
    /// The validated claims.
    pub claims: AccessClaims,
    /// The user, as stored now.
    pub user: UserRecord,
}

impl Authenticated {
    /// Validates `token` and looks its session and user up.
    pub async fn from_token(state: &AppState, token: &str) -> Result<Self, ApiError> {
        let now = state.now();
        let claims = match state.verified.get(token, now, state.config.leeway) {
            // This exact token passed validation under the current key ring, and is in its
            // validity window still (see verify_cache).
            Some(claims) => claims,
            None => {
                let generation = state.verified.generation();
                let claims = match state.validator().validate(&state.keys(), token, now) {
                    // A key rotated by another process: look again, once.
                    Err(TokenError::UnknownKey) if state.reload_keys_for_unknown_kid().await => {
                        state.validator().validate(&state.keys(), token, now)?
                    }
                    other => other?,
                };
                state.verified.insert(token, &claims, generation);
                claims
            }
        };
        // Never cached: revocation and deletion take effect on the next request.
        let user = state.store.session_user(&claims.sid, &claims.sub, now).await?.ok_or(TokenError::Revoked)?;
        Ok(Self { claims, user })
    }
}

impl FromRequestParts<AppState> for Authenticated {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Self::Rejection> {
        // The path the client addressed, also when this router is nested under a prefix; only
        // looked up for a DPoP request.
        let path = || parts.extensions.get::<axum::extract::OriginalUri>().map_or(parts.uri.path(), |u| u.0.path());
        Self::from_headers(state, &parts.headers, &parts.method, path).await
    }
}

impl Authenticated {
    /// The caller of a request with these headers to `method path()`: a Bearer token, or a
    /// DPoP-bound token with its proof (`path` is only asked for then).
    pub async fn from_headers<'p>(
        state: &AppState,
        headers: &HeaderMap,
        method: &axum::http::Method,
        path: impl FnOnce() -> &'p str,
    ) -> Result<Self, ApiError> {
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(ApiError::new(ErrorCode::InvalidToken, "a Bearer access token is required"));
        };
        if let Some(token) = dpop_token(value) {
            return Self::from_dpop(state, headers, method, path(), token).await;
        }
        let token = bearer_token_from(headers)?;
        let auth = Self::from_token(state, token).await?;
        if auth.claims.cnf.is_some() {
            // A stolen DPoP-bound token cannot be downgraded to Bearer (RFC 9449 §7.1).
            let text = "this access token is DPoP-bound: send it as Authorization: DPoP with a proof";
            return Err(ApiError::dpop(state, crate::dpop::Place::Resource, ErrorCode::InvalidToken, text));
        }
        Ok(auth)
    }
}

/// The token of `Authorization: DPoP <token>`; `None` for any other scheme. The scheme is looked
/// at on the bytes first, so a Bearer header is not scanned whole here (the `/auth/me` path).
fn dpop_token(value: &axum::http::HeaderValue) -> Option<&str> {
    if !value.as_bytes().get(..5).is_some_and(|scheme| scheme.eq_ignore_ascii_case(b"dpop ")) {
        return None;
    }
    let (scheme, token) = value.to_str().ok()?.split_once(' ')?;
    scheme.eq_ignore_ascii_case("dpop").then(|| token.trim()).filter(|t| !t.is_empty())
}

impl Authenticated {
    /// `Authorization: DPoP <token>`: the token passes the checklist, is DPoP-bound, and the
    /// request's one `DPoP` header holds a new proof for this request and token made with the
    /// bound key. The proof is checked on every request, never cached (the token's claims are).
    async fn from_dpop(
        state: &AppState,
        headers: &HeaderMap,
        method: &axum::http::Method,
        path: &str,
        token: &str,
    ) -> Result<Self, ApiError> {
        use crate::dpop::Place;
        let auth = match Self::from_token(state, token).await {
            Ok(auth) => auth,
            Err(ApiError::Token(e)) => {
                return Err(ApiError::dpop(state, Place::Resource, ErrorCode::InvalidToken, e.to_string()));
            }
            Err(other) => return Err(other),
        };
        let Some(cnf) = &auth.claims.cnf else {
            let text = "this access token is not DPoP-bound: send it as a Bearer token";
            return Err(ApiError::dpop(state, Place::Resource, ErrorCode::InvalidToken, text));
        };
        crate::dpop::resource_proof(state, headers, method, path, token, cnf).await?;
        Ok(auth)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().unwrap());
        headers
    }

    #[test]
    fn a_v4_mapped_proxy_is_trusted() {
        let trusted = ["127.0.0.1".parse().unwrap()];
        let peer = "::ffff:127.0.0.1".parse().ok();
        assert_eq!(client_ip(peer, &forwarded("203.0.113.9"), &trusted), "203.0.113.9".parse().ok());
        // A mapped client address is reported in its IPv4 form.
        assert_eq!(client_ip(peer, &forwarded("::ffff:203.0.113.9"), &trusted), "203.0.113.9".parse().ok());
        // An untrusted peer's header is ignored.
        let stranger = "::ffff:198.51.100.1".parse().ok();
        assert_eq!(client_ip(stranger, &forwarded("203.0.113.9"), &trusted), "198.51.100.1".parse().ok());
    }

    #[test]
    fn ipv6_clients_share_a_budget_per_64() {
        let key =
            |ip: &str| ClientInfo { ip: Some(ip.into()), user_agent: None, dpop_jkt: None }.rate_key().into_owned();
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:bbbb::2"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("2001:db8:1:2::1"), "2001:db8:1:2::/64");
        assert_eq!(key("192.0.2.7"), "192.0.2.7");
        assert_eq!(ClientInfo::default().rate_key(), "-");
    }
}
