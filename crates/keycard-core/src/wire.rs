//! Request and response bodies of the HTTP API v1: one definition for server and clients
//! (and, with the `openapi` feature, for the server's OpenAPI document). Also the discovery
//! document and the probe bodies; the JWK set is [`crate::keys::JwkSet`].
//!
//! Request bodies deny unknown fields: a typo such as `pasword` is a 400, not a silent default.

pub mod mfa;

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

/// `POST /auth/email/verify/resend`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResendVerificationRequest {
    /// The account's address.
    pub email: String,
}

/// `POST /auth/email/verify`, `/auth/email/confirm` and `/auth/email/cancel`: the token of a
/// mailed link (`kcev_…`, `kcec_…` or `kcex_…`).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct EmailTokenRequest {
    /// The token from the link's fragment.
    pub token: String,
}

impl std::fmt::Debug for EmailTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("EmailTokenRequest(<redacted>)")
    }
}

/// `POST /auth/email`: change the account's address.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    /// The address the account should have.
    pub new_email: String,
    /// The password in force now.
    pub password: String,
}

impl std::fmt::Debug for ChangeEmailRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChangeEmailRequest").finish_non_exhaustive()
    }
}

/// The answer of a mailed link's action: `verified`, `changed` or `cancelled`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EmailLinkDone {
    /// `verified` (`/auth/email/verify`), `changed` (`/auth/email/confirm`) or `cancelled`
    /// (`/auth/email/cancel`).
    pub status: String,
}

/// `POST /auth/password/forgot`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ForgotPasswordRequest {
    /// The account's address.
    pub email: String,
}

/// The 202 answer of a request that mails a link (`POST /auth/password/forgot`,
/// `/auth/email/verify/resend`, `/auth/email`): the same whether or not an account has the address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Accepted {
    /// Always `accepted`.
    pub status: String,
    /// What happens next, in words.
    pub message: String,
}

impl Accepted {
    /// `accepted`, with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self { status: "accepted".into(), message: message.into() }
    }
}

/// The answer of `POST /auth/password/forgot` (its earlier name).
pub type ForgotPasswordAccepted = Accepted;

/// `POST /auth/password/reset`.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ResetPasswordRequest {
    /// The token of the mailed link (`kcpr_…`).
    pub token: String,
    /// The new password; must meet the policy.
    pub new_password: String,
}

impl std::fmt::Debug for ResetPasswordRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetPasswordRequest(<redacted>)")
    }
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
    /// Whether the address was verified with a mailed link (or by confirming it as a new address).
    #[serde(default)]
    pub email_verified: bool,
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
    /// `Bearer`, or `DPoP` for a session bound to a DPoP key (RFC 9449).
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

/// The authorization-server metadata (RFC 8414), served at
/// `GET /.well-known/oauth-authorization-server` and, with the same content, at
/// `GET /.well-known/openid-configuration`: only what keycard supports. keycard's own JSON
/// endpoints are extension fields named `keycard_…`.
///
/// keycard always sends every field. Read from another issuer, only `issuer` and `jwks_uri` must
/// be there: the other fields default to empty, and fields not listed here are ignored. The
/// extension fields also read their names from before they had the `keycard_` prefix.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = AuthorizationServerMetadata))]
pub struct Discovery {
    /// The `iss` of every access token.
    pub issuer: String,
    /// `POST /oauth/token` (RFC 6749 §3.2).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub token_endpoint: String,
    /// URL of the JWK set.
    pub jwks_uri: String,
    /// `refresh_token` and `client_credentials`, plus `password` when `oauth_password_grant` is on.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub grant_types_supported: Vec<String>,
    /// Empty: keycard has no authorization endpoint (RFC 8414 requires the field).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub response_types_supported: Vec<String>,
    /// `none` (the built-in public client `keycard`), `client_secret_basic`,
    /// `client_secret_post`, `private_key_jwt`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub token_endpoint_auth_methods_supported: Vec<String>,
    /// Algorithms accepted for `private_key_jwt` client assertions.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub token_endpoint_auth_signing_alg_values_supported: Vec<String>,
    /// `POST /oauth/revoke` (RFC 7009).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub revocation_endpoint: String,
    /// Client authentication methods of the revocation endpoint (those of the token endpoint).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub revocation_endpoint_auth_methods_supported: Vec<String>,
    /// `POST /oauth/introspect` (RFC 7662).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub introspection_endpoint: String,
    /// Client authentication methods of the introspection endpoint: confidential clients only.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub introspection_endpoint_auth_methods_supported: Vec<String>,
    /// The algorithm access tokens are signed with (the active key's).
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub access_token_signing_alg_values_supported: Vec<String>,
    /// The algorithms accepted for DPoP proofs (RFC 9449 §5.1): keycard-core's default policy.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub dpop_signing_alg_values_supported: Vec<String>,
    /// The interactive API reference, `/docs`.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub service_documentation: String,
    /// keycard's `POST /auth/signup`.
    #[serde(default, alias = "signup_endpoint")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub keycard_signup_endpoint: String,
    /// keycard's `POST /auth/login` (JSON).
    #[serde(default, alias = "login_endpoint")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub keycard_login_endpoint: String,
    /// keycard's `POST /auth/refresh` (JSON or cookie).
    #[serde(default, alias = "refresh_endpoint")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub keycard_refresh_endpoint: String,
    /// keycard's `POST /auth/logout`.
    #[serde(default, alias = "logout_endpoint")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub keycard_logout_endpoint: String,
    /// keycard's `GET /auth/me` (not an OpenID Connect userinfo endpoint).
    #[serde(default, alias = "userinfo_endpoint")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub keycard_me_endpoint: String,
    /// keycard's `GET /auth/sessions`.
    #[serde(default, alias = "sessions_endpoint")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub keycard_sessions_endpoint: String,
    /// keycard's revocation feed, `GET /auth/revocations`.
    #[serde(default, alias = "revocation_feed_endpoint")]
    #[cfg_attr(feature = "openapi", schema(required = true))]
    pub keycard_revocation_feed_endpoint: String,
}

/// The client authentication methods of `POST /oauth/token` and `POST /oauth/revoke`.
pub const CLIENT_AUTH_METHODS: [&str; 4] = ["none", "client_secret_basic", "client_secret_post", "private_key_jwt"];

/// The algorithms accepted for `private_key_jwt` client assertions.
pub const ASSERTION_ALGS: [&str; 9] = ["EdDSA", "ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "PS384", "PS512"];

impl Discovery {
    /// The document keycard serves for `issuer` (no trailing slash) signing with `alg`;
    /// `password_grant`: whether `grant_type=password` is enabled.
    pub fn new(issuer: &str, alg: KeyAlg, password_grant: bool) -> Self {
        let url = |path: &str| format!("{issuer}{path}");
        let strings = |list: &[&str]| list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let mut grants = strings(&["refresh_token", "client_credentials"]);
        if password_grant {
            grants.push("password".into());
        }
        Self {
            issuer: issuer.to_owned(),
            token_endpoint: url("/oauth/token"),
            jwks_uri: url("/.well-known/jwks.json"),
            grant_types_supported: grants,
            response_types_supported: Vec::new(),
            token_endpoint_auth_methods_supported: strings(&CLIENT_AUTH_METHODS),
            token_endpoint_auth_signing_alg_values_supported: strings(&ASSERTION_ALGS),
            revocation_endpoint: url("/oauth/revoke"),
            revocation_endpoint_auth_methods_supported: strings(&CLIENT_AUTH_METHODS),
            introspection_endpoint: url("/oauth/introspect"),
            introspection_endpoint_auth_methods_supported: strings(&CLIENT_AUTH_METHODS[1..]),
            access_token_signing_alg_values_supported: vec![alg.as_str().to_owned()],
            dpop_signing_alg_values_supported: strings(&crate::dpop::DpopPolicy::default().alg_names()),
            service_documentation: url("/docs"),
            keycard_signup_endpoint: url("/auth/signup"),
            keycard_login_endpoint: url("/auth/login"),
            keycard_refresh_endpoint: url("/auth/refresh"),
            keycard_logout_endpoint: url("/auth/logout"),
            keycard_me_endpoint: url("/auth/me"),
            keycard_sessions_endpoint: url("/auth/sessions"),
            keycard_revocation_feed_endpoint: url("/auth/revocations"),
        }
    }
}

/// A successful answer of `POST /oauth/token` (RFC 6749 §5.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthTokenResponse {
    /// The access token (a JWT, RFC 9068).
    pub access_token: String,
    /// `Bearer`, or `DPoP` for tokens bound to the key of the request's DPoP proof (RFC 9449).
    pub token_type: String,
    /// Seconds until the access token expires.
    pub expires_in: i64,
    /// The replacement refresh token (`refresh_token` and `password` grants; single use).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// The scopes granted (`client_credentials`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The session (refresh-token family) the tokens belong to (user grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// Seconds until the refresh token expires unless used (user grants).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_expires_in: Option<i64>,
}

/// The answer of `POST /oauth/introspect` (RFC 7662 §2.2): only `active: false` for a token that
/// is expired, revoked, unknown or malformed.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Introspection {
    /// Whether the token is valid now.
    pub active: bool,
    /// Space-separated scopes of the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The client the token was issued to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// `Bearer` (an access token) or `refresh_token`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type: Option<String>,
    /// Expiry (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    /// Issued at (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    /// Not before (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// The user id, or the client id of a `client_credentials` token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    /// The audience.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The issuer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    /// The access token's id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    /// The session (or client grant) the token belongs to: what the revocation feed names.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
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
    fn the_metadata_says_exactly_what_keycard_supports() {
        let doc = Discovery::new("https://id.example", KeyAlg::EdDsa, false);
        let json = serde_json::to_value(&doc).unwrap();
        assert_eq!(json["token_endpoint"], "https://id.example/oauth/token");
        assert_eq!(json["grant_types_supported"], serde_json::json!(["refresh_token", "client_credentials"]));
        assert_eq!(json["response_types_supported"], serde_json::json!([]));
        assert!(json.get("id_token_signing_alg_values_supported").is_none(), "keycard issues no ID tokens");
        assert!(json.get("userinfo_endpoint").is_none(), "/auth/me is not an OpenID Connect userinfo endpoint");
        let with_password = Discovery::new("https://id.example", KeyAlg::EdDsa, true);
        assert!(with_password.grant_types_supported.contains(&"password".to_owned()));
        assert_eq!(serde_json::from_value::<Discovery>(json).unwrap(), doc);
    }

    #[test]
    fn documents_of_older_keycards_still_name_the_feed() {
        let old = r#"{"issuer":"https://id.example","jwks_uri":"https://id.example/.well-known/jwks.json",
            "revocation_feed_endpoint":"https://id.example/auth/revocations","login_endpoint":"https://id.example/auth/login"}"#;
        let doc: Discovery = serde_json::from_str(old).unwrap();
        assert_eq!(doc.keycard_revocation_feed_endpoint, "https://id.example/auth/revocations");
        assert_eq!(doc.keycard_login_endpoint, "https://id.example/auth/login");
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
        assert!(doc.keycard_revocation_feed_endpoint.is_empty() && doc.grant_types_supported.is_empty());
        assert!(serde_json::from_str::<Discovery>(r#"{"issuer":"https://other.example"}"#).is_err());
    }

    #[test]
    fn probe_bodies_are_a_status_field() {
        assert_eq!(serde_json::to_string(&ProbeStatus::ok()).unwrap(), r#"{"status":"ok"}"#);
        assert_eq!(serde_json::to_string(&ProbeStatus::ready()).unwrap(), r#"{"status":"ready"}"#);
    }
}
