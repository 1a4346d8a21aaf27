//! Request and response bodies of the HTTP API v1: one definition for server and clients
//! (and, with the `openapi` feature, for the server's OpenAPI document). Also the discovery
//! document and the probe bodies; the JWK set is [`crate::keys::JwkSet`].
//!
//! Request bodies deny unknown fields: a typo such as `pasword` is a 400, not a silent default.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::keys::KeyAlg;

/// `POST /auth/signup`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct SignupRequest {
    /// Email address; normalised (trimmed, lower-cased) by the server.
    pub email: String,
    /// Password in clear, over TLS only.
    pub password: String,
}

/// Where the refresh token goes after login or refresh.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    /// In an HTTP-only cookie, with a CSRF token (browsers). The default.
    #[default]
    Cookie,
    /// In the JSON body (native apps, CLIs, services).
    Body,
}

/// `POST /auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    /// Email address.
    pub email: String,
    /// Password.
    pub password: String,
    /// Cookie (default) or body delivery of the refresh token.
    #[serde(default)]
    pub delivery: Option<Delivery>,
    /// The `device_token` of an earlier successful login from this client (non-browser clients;
    /// browsers send the device cookie): failures from other devices never throttle it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// `POST /auth/refresh` with a body-delivered token (cookie clients send no body).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct RefreshRequest {
    /// The refresh token, for body delivery.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// Which sessions a logout ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum LogoutScope {
    /// This session only (the default).
    #[default]
    Local,
    /// Every session of the user.
    Global,
    /// Every session of the user but this one.
    Others,
}

/// `POST /auth/logout`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct LogoutRequest {
    /// Which sessions to end; `local` when absent.
    #[serde(default)]
    pub scope: Option<LogoutScope>,
    /// The refresh token, for body-delivery clients without a Bearer token.
    #[serde(default)]
    pub refresh_token: Option<String>,
}

/// `POST /auth/password`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeRequest {
    /// The password in force now.
    pub current_password: String,
    /// The new password; must meet the policy.
    pub new_password: String,
}

/// `DELETE /auth/account`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    /// The account's password, to confirm.
    pub password: String,
}

/// A user as the API shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserInfo {
    /// User id (UUID).
    pub id: String,
    /// Normalised email.
    pub email: String,
    /// When the account was created (RFC 3339).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
}

/// The answer to a successful login or refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    /// The signed access token.
    pub access_token: String,
    /// Always `Bearer`.
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The session (token family) id, the `sid` claim.
    pub session_id: String,
    /// Seconds until the refresh token (its session) expires if not used.
    pub refresh_expires_in: i64,
    /// The new refresh token, with body delivery only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The CSRF token to send as `X-CSRF-Token`, with cookie delivery only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub csrf_token: Option<String>,
    /// After a login with body delivery: this client's device token, to send as `device_token`
    /// with its next logins (cookie delivery sets the device cookie instead).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_token: Option<String>,
}

/// One entry of `GET /auth/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionInfo {
    /// Session id.
    pub id: String,
    /// When the session began (login).
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last refresh (or login).
    #[serde(with = "time::serde::rfc3339")]
    pub last_used_at: OffsetDateTime,
    /// User agent seen at login.
    pub user_agent: Option<String>,
    /// Client IP seen at login.
    pub ip: Option<String>,
    /// Whether the caller's own access token belongs to this session.
    pub current: bool,
}

/// One entry of the revocation feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokedSession {
    /// Feed position; ask for entries after the last one seen.
    pub seq: i64,
    /// The revoked session id (`sid` claim).
    pub sid: String,
    /// When it was revoked (Unix seconds).
    pub revoked_at: i64,
    /// After this time (Unix seconds) no access token of this session can still be valid
    /// (revocation time + access-token lifetime + leeway): verifiers may forget the entry.
    pub expires_at: i64,
}

/// `GET /auth/revocations?after=<seq>`: revoked sessions after a feed position.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevocationFeed {
    /// Entries, oldest first.
    pub revocations: Vec<RevokedSession>,
    /// The position to ask from next time (the last `seq` returned, or `after` when none).
    pub next: i64,
}

/// The discovery document, `GET /.well-known/openid-configuration`: the issuer, its JWK set and
/// its endpoints, with the OpenID Connect Discovery names where one exists.
///
/// keycard always sends every field. Read from another issuer, only `issuer` and `jwks_uri` must
/// be there: the other fields default to empty, and fields not listed here are ignored.
// The fields are in alphabetical order: the document has always been served with its keys in
// that order (a `json!` map), and the struct serializes to the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = OpenIdConfiguration))]
pub struct Discovery {
    /// The active signing algorithm.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub access_token_signing_alg_values_supported: Vec<String>,
    /// `password` and `refresh_token`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub grant_types_supported: Vec<String>,
    /// The active signing algorithm.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub id_token_signing_alg_values_supported: Vec<String>,
    /// The `iss` of every access token.
    pub issuer: String,
    /// URL of the JWK set.
    pub jwks_uri: String,
    /// `POST /auth/login`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub login_endpoint: String,
    /// `POST /auth/logout`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub logout_endpoint: String,
    /// `POST /auth/refresh`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub refresh_endpoint: String,
    /// `GET /auth/revocations`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub revocation_feed_endpoint: String,
    /// `GET /auth/sessions`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub sessions_endpoint: String,
    /// `POST /auth/signup`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub signup_endpoint: String,
    /// `POST /auth/refresh`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub token_endpoint: String,
    /// Always `["none"]`: keycard's clients are public.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// `GET /auth/me`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub userinfo_endpoint: String,
}

impl Discovery {
    /// The document keycard serves for `issuer` (no trailing slash) signing with `alg`.
    pub fn new(issuer: &str, alg: KeyAlg) -> Self {
        let url = |path: &str| format!("{issuer}{path}");
        let alg = vec![alg.as_str().to_owned()];
        Self {
            access_token_signing_alg_values_supported: alg.clone(),
            grant_types_supported: vec!["password".into(), "refresh_token".into()],
            id_token_signing_alg_values_supported: alg,
            issuer: issuer.to_owned(),
            jwks_uri: url("/.well-known/jwks.json"),
            login_endpoint: url("/auth/login"),
            logout_endpoint: url("/auth/logout"),
            refresh_endpoint: url("/auth/refresh"),
            revocation_feed_endpoint: url("/auth/revocations"),
            sessions_endpoint: url("/auth/sessions"),
            signup_endpoint: url("/auth/signup"),
            token_endpoint: url("/auth/refresh"),
            token_endpoint_auth_methods_supported: vec!["none".into()],
            userinfo_endpoint: url("/auth/me"),
        }
    }
}

/// A probe's answer: `{"status": "ok"}` from `GET /healthz`, `{"status": "ready"}` from
/// `GET /readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = Status))]
pub struct ProbeStatus {
    /// `ok` (liveness) or `ready` (readiness).
    pub status: String,
}

impl ProbeStatus {
    /// Liveness: the process is up.
    pub fn ok() -> Self {
        Self { status: "ok".into() }
    }

    /// Readiness: the store answers.
    pub fn ready() -> Self {
        Self { status: "ready".into() }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_discovery_document_serializes_to_the_bytes_always_served() {
        let doc = Discovery::new("https://id.example", KeyAlg::EdDsa);
        let expected = concat!(
            r#"{"access_token_signing_alg_values_supported":["EdDSA"],"#,
            r#""grant_types_supported":["password","refresh_token"],"#,
            r#""id_token_signing_alg_values_supported":["EdDSA"],"#,
            r#""issuer":"https://id.example","#,
            r#""jwks_uri":"https://id.example/.well-known/jwks.json","#,
            r#""login_endpoint":"https://id.example/auth/login","#,
            r#""logout_endpoint":"https://id.example/auth/logout","#,
            r#""refresh_endpoint":"https://id.example/auth/refresh","#,
            r#""revocation_feed_endpoint":"https://id.example/auth/revocations","#,
            r#""sessions_endpoint":"https://id.example/auth/sessions","#,
            r#""signup_endpoint":"https://id.example/auth/signup","#,
            r#""token_endpoint":"https://id.example/auth/refresh","#,
            r#""token_endpoint_auth_methods_supported":["none"],"#,
            r#""userinfo_endpoint":"https://id.example/auth/me"}"#,
        );
        assert_eq!(serde_json::to_string(&doc).unwrap(), expected);
        assert_eq!(serde_json::from_str::<Discovery>(expected).unwrap(), doc);
    }

    #[test]
    fn another_issuers_discovery_document_needs_only_issuer_and_jwks_uri() {
        let foreign = r#"{"issuer":"https://other.example","jwks_uri":"https://other.example/keys",
            "authorization_endpoint":"https://other.example/authorize","scopes_supported":["openid"]}"#;
        let doc: Discovery = serde_json::from_str(foreign).unwrap();
        assert_eq!(
            (doc.issuer.as_str(), doc.jwks_uri.as_str()),
            ("https://other.example", "https://other.example/keys")
        );
        assert!(doc.revocation_feed_endpoint.is_empty() && doc.grant_types_supported.is_empty());
        assert!(serde_json::from_str::<Discovery>(r#"{"issuer":"https://other.example"}"#).is_err());
    }

    #[test]
    fn probe_bodies_are_a_status_field() {
        assert_eq!(serde_json::to_string(&ProbeStatus::ok()).unwrap(), r#"{"status":"ok"}"#);
        assert_eq!(serde_json::to_string(&ProbeStatus::ready()).unwrap(), r#"{"status":"ready"}"#);
    }
}
