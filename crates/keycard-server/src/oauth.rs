//! The OAuth 2.0 service beside keycard's own JSON API: client authentication, the grants of
//! `POST /oauth/token`, revocation (RFC 7009) and introspection (RFC 7662), and client
//! registration for `keycard clients`.
//!
//! ```text
//! routes/oauth_*.rs ──form──▶ OAuth::{authenticate, refresh, client_credentials, password, revoke, introspect}
//!                                  │ refresh and password: the session service (one code path
//!                                  ▼ with /auth/refresh and /auth/login)
//!                            Store (clients, grants on the revocation feed, spent assertions)
//! ```
//!
//! Sessions from keycard's own login belong to the built-in public client [`PUBLIC_CLIENT`]
//! (no secret, auth method `none`). Registered clients are confidential: a secret (sent with
//! `client_secret_basic` or `client_secret_post`) or a JWK set (`private_key_jwt`). Their
//! `client_credentials` tokens carry `sid` = the client's current grant id, so revoking one
//! publishes the grant on the revocation feed like a session.

use std::collections::HashMap;

use aws_lc_rs::digest;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use keycard_core::ErrorCode;
use keycard_core::claims::AccessClaims;
use keycard_core::refresh::RefreshToken;
use keycard_core::wire::{Introspection, OAuthTokenResponse};
use keycard_store::{AuditEvent, AuditKind, ClientRecord, RevocationReason, Store};
use serde::Deserialize;
use subtle::ConstantTimeEq as _;

use crate::error::{ApiError, error_response};
use crate::extract::ClientInfo;
use crate::ratelimit::Rule;
use crate::sessions::{Issued, RefreshRefused};
use crate::state::AppState;

/// The built-in public client that owns every session of keycard's own login.
pub const PUBLIC_CLIENT: &str = "keycard";

/// `client_assertion_type` of `private_key_jwt` (RFC 7523 §2.2).
pub const JWT_BEARER: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// The longest a client assertion may live: its `jti` is remembered until it expires.
const MAX_ASSERTION_LIFETIME: i64 = 3600;

/// Prefixes of what keycard generates for clients.
const CLIENT_ID_PREFIX: &str = "kcc_";
const SECRET_PREFIX: &str = "kcs_";
const GRANT_PREFIX: &str = "kcg_";

/// An OAuth error response: RFC 6749 §5.2 codes and statuses. keycard's JSON API answers a bad
/// refresh token with 401; OAuth clients expect 400 `invalid_grant`, and know no
/// `refresh_token_reused` or `invalid_credentials` (both become `invalid_grant`, with the same
/// description as the JSON API). `invalid_client` is 401 with a `Basic` challenge.
#[derive(Debug)]
pub struct OAuthError(pub ApiError);

impl<E: Into<ApiError>> From<E> for OAuthError {
    fn from(error: E) -> Self {
        Self(error.into())
    }
}

impl OAuthError {
    fn new(code: ErrorCode, description: impl Into<String>) -> Self {
        Self(ApiError::new(code, description))
    }

    /// 401 `invalid_client`, one answer for an unknown client, a wrong secret and a bad assertion.
    fn invalid_client() -> Self {
        Self::new(ErrorCode::InvalidClient, "client authentication failed")
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let (code, description) = match self.0 {
            ApiError::Client { code, description } => (code, description),
            other => return other.into_response(),
        };
        match code {
            // The password grant's refusals (a wrong password, an unverified address) are
            // `invalid_grant` to an OAuth client (RFC 6749 §5.2); the description says which.
            ErrorCode::InvalidGrant
            | ErrorCode::RefreshTokenReused
            | ErrorCode::InvalidCredentials
            | ErrorCode::EmailNotVerified => {
                let mut response = error_response(ErrorCode::InvalidGrant, description, None);
                *response.status_mut() = StatusCode::BAD_REQUEST;
                response.headers_mut().remove(header::WWW_AUTHENTICATE);
                response
            }
            ErrorCode::InvalidClient => {
                let mut response = error_response(code, description, None);
                let challenge = HeaderValue::from_static("Basic realm=\"keycard\"");
                response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
                response
            }
            _ => ApiError::new(code, description).into_response(),
        }
    }
}

/// A form-encoded OAuth request body (`application/x-www-form-urlencoded`). A parameter sent
/// twice is refused (RFC 6749 §3.2), as are other content types.
pub struct OAuthForm(HashMap<String, String>);

impl<S: Send + Sync> FromRequest<S> for OAuthForm {
    type Rejection = OAuthError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"));
        if !form_type {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "expected a form body with Content-Type: application/x-www-form-urlencoded",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                OAuthError::new(ErrorCode::PayloadTooLarge, "the request body is too large")
            } else {
                OAuthError::new(ErrorCode::InvalidRequest, r.body_text())
            }
        })?;
        let mut params = HashMap::new();
        for (name, value) in form_urlencoded::parse(&bytes) {
            if params.insert(name.to_string(), value.into_owned()).is_some() {
                return Err(OAuthError::new(ErrorCode::InvalidRequest, format!("the parameter {name} is repeated")));
            }
        }
        Ok(Self(params))
    }
}

impl OAuthForm {
    /// A parameter; an empty value counts as absent (RFC 6749 §3.1).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A parameter that must be there; 400 `invalid_request` naming it when it is not.
    pub fn required(&self, name: &str) -> Result<&str, OAuthError> {
        self.get(name)
            .ok_or_else(|| OAuthError::new(ErrorCode::InvalidRequest, format!("the parameter {name} is missing")))
    }
}

/// Who is calling an OAuth endpoint.
#[derive(Debug, Clone)]
pub enum OAuthClient {
    /// The built-in public client `keycard`.
    Public,
    /// A registered client that proved its credentials.
    Registered(ClientRecord),
}

impl OAuthClient {
    /// The `client_id`.
    pub fn id(&self) -> &str {
        match self {
            Self::Public => PUBLIC_CLIENT,
            Self::Registered(client) => &client.id,
        }
    }
}

/// The OAuth rules, over one server's state.
pub struct OAuth<'a> {
    state: &'a AppState,
}

impl AppState {
    /// The OAuth rules over this state.
    pub fn oauth(&self) -> OAuth<'_> {
        OAuth { state: self }
    }
}

/// The claims of a client assertion keycard reads (jsonwebtoken checks the signature, `iss`,
/// `sub` and `aud`; the times are checked on keycard's clock).
#[derive(Deserialize)]
struct AssertionClaims {
    exp: i64,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
}

/// The `iss` of an assertion, read before its signature is checked (to find the client's keys).
#[derive(Deserialize)]
struct AssertionIssuer {
    #[serde(default)]
    iss: Option<String>,
}

impl OAuth<'_> {
    /// Authenticates the caller of `endpoint` (its path, e.g. `/oauth/token`): HTTP Basic
    /// (`client_secret_basic`), `client_id` + `client_secret` in the form (`client_secret_post`),
    /// a signed assertion (`private_key_jwt`), or none (only the public client `keycard`). More
    /// than one method is `invalid_request` (RFC 6749 §2.3); any failure `invalid_client`,
    /// audited and counted toward the caller's backoff.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
        form: &OAuthForm,
        endpoint: &str,
        client: &ClientInfo,
    ) -> Result<OAuthClient, OAuthError> {
        let state = self.state;
        let basic = basic_credentials(headers)?;
        let (form_id, form_secret, assertion) =
            (form.get("client_id"), form.get("client_secret"), form.get("client_assertion"));
        if [basic.is_some(), form_secret.is_some(), assertion.is_some()].iter().filter(|m| **m).count() > 1 {
            return Err(OAuthError::new(ErrorCode::InvalidRequest, "use one client authentication method"));
        }
        if let Some((id, _)) = &basic
            && form_id.is_some_and(|f| f != id)
        {
            return Err(OAuthError::new(ErrorCode::InvalidRequest, "client_id differs from the Basic credentials"));
        }
        if form_secret.is_some() && form_id.is_none() {
            return Err(OAuthError::new(ErrorCode::InvalidRequest, "client_secret needs client_id"));
        }
        if assertion.is_some() && form.get("client_assertion_type") != Some(JWT_BEARER) {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                format!("client_assertion_type must be {JWT_BEARER}"),
            ));
        }
        // Failures back off per claimed client and IP: a misconfigured service does not lock
        // out its neighbours behind the same address, and guessing is slowed where it happens.
        let claimed = basic.as_ref().map(|(id, _)| id.as_str()).or(form_id).unwrap_or("-").to_owned();
        let public = match &basic {
            Some((id, secret)) => id == PUBLIC_CLIENT && secret.is_empty(),
            None => form_secret.is_none() && assertion.is_none(),
        };
        if public {
            // Nothing to verify (and nothing to guess): the public client, or a registered one
            // that sent no credentials.
            return match form_id.or(basic.as_ref().map(|(id, _)| id.as_str())) {
                None | Some(PUBLIC_CLIENT) => Ok(OAuthClient::Public),
                Some(_) => Err(OAuthError::invalid_client()),
            };
        }
        let backoff_key = format!("oauth:{claimed}:{}", client.rate_key());
        state.limits.check_backoff(&backoff_key).await?;
        let result = match (basic, form_secret, assertion) {
            (Some((id, secret)), _, _) => self.check_secret(&id, &secret).await,
            (None, Some(secret), _) => self.check_secret(&claimed, secret).await,
            (None, None, assertion) => self.check_assertion(assertion.unwrap_or(""), form_id, endpoint).await,
        };
        match result {
            Ok(authenticated) => {
                state.limits.reset_failures(&backoff_key).await?;
                Ok(authenticated)
            }
            Err(error) => {
                state.limits.record_failure(&backoff_key).await?;
                metrics::counter!("keycard_oauth_client_auth_failures_total").increment(1);
                let detail = format!("{endpoint}: client {claimed}");
                state.audit(client.event(AuditKind::ClientAuthFailed, None, None, Some(detail), state.now())).await;
                Err(error)
            }
        }
    }

    /// A registered client whose secret is `secret`; one answer, in about the same time, for an
    /// unknown client, a client without a secret and a wrong secret.
    async fn check_secret(&self, id: &str, secret: &str) -> Result<OAuthClient, OAuthError> {
        let client = self.state.store.client(id).await?;
        let presented = secret_hash(secret);
        let stored = client.as_ref().and_then(|c| c.secret_hash.as_deref()).unwrap_or("");
        let matched: bool = presented.as_bytes().ct_eq(stored.as_bytes()).into();
        match client {
            Some(client) if matched && !stored.is_empty() => Ok(OAuthClient::Registered(client)),
            _ => Err(OAuthError::invalid_client()),
        }
    }

    /// A `private_key_jwt` assertion (RFC 7523 §3): signed by a key of the client's registered
    /// JWK set, `iss` = `sub` = the client, `aud` = the issuer or the URL of the endpoint (or of
    /// the token endpoint), unexpired, living at most an hour, with a `jti` used once.
    async fn check_assertion(
        &self,
        assertion: &str,
        form_id: Option<&str>,
        endpoint: &str,
    ) -> Result<OAuthClient, OAuthError> {
        let state = self.state;
        let header = jsonwebtoken::decode_header(assertion).map_err(|_| OAuthError::invalid_client())?;
        let issuer: AssertionIssuer =
            jsonwebtoken::dangerous::insecure_decode_claims(assertion).map_err(|_| OAuthError::invalid_client())?;
        let Some(id) = issuer.iss.or_else(|| form_id.map(str::to_owned)) else {
            return Err(OAuthError::invalid_client());
        };
        if form_id.is_some_and(|f| f != id) {
            return Err(OAuthError::invalid_client());
        }
        let Some(client) = state.store.client(&id).await? else { return Err(OAuthError::invalid_client()) };
        let Some(jwks) = client.jwks.as_deref().and_then(|j| serde_json::from_str::<JwkSet>(j).ok()) else {
            return Err(OAuthError::invalid_client());
        };
        let allowed = keycard_core::wire::ASSERTION_ALGS.iter().filter_map(|a| a.parse::<Algorithm>().ok());
        if !allowed.into_iter().any(|a| a == header.alg) {
            return Err(OAuthError::invalid_client());
        }
        let issuer = &state.config.issuer;
        let audiences = [issuer.clone(), format!("{issuer}/oauth/token"), format!("{issuer}{endpoint}")];
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&audiences);
        validation.set_issuer(&[&id]);
        validation.sub = Some(id.clone());
        validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
        // Times are checked below on keycard's clock, not the system's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        let keys = jwks.keys.iter().filter(|k| header.kid.is_none() || k.common.key_id == header.kid);
        let claims = keys
            .filter_map(|jwk| DecodingKey::from_jwk(jwk).ok())
            .find_map(|key| jsonwebtoken::decode::<AssertionClaims>(assertion, &key, &validation).ok())
            .map(|data| data.claims)
            .ok_or_else(OAuthError::invalid_client)?;
        let (now, leeway) = (state.now(), state.config.leeway);
        let fresh = claims.exp + leeway > now
            && claims.exp <= now + MAX_ASSERTION_LIFETIME
            && claims.nbf.is_none_or(|nbf| nbf - leeway <= now);
        let Some(jti) = claims.jti.filter(|j| !j.is_empty() && j.len() <= 256) else {
            return Err(OAuthError::invalid_client());
        };
        if !fresh || !state.store.spend_assertion(&id, &jti, claims.exp + leeway, now).await? {
            return Err(OAuthError::invalid_client());
        }
        Ok(OAuthClient::Registered(client))
    }

    /// `grant_type=refresh_token`: the rotation of `/auth/refresh` (one code path). Refresh
    /// tokens belong to the public client; a registered client's presentation is refused
    /// without touching the token. keycard's sessions carry no scopes, so asking for one is
    /// `invalid_scope`.
    pub async fn refresh(
        &self,
        caller: &OAuthClient,
        form: &OAuthForm,
        client: ClientInfo,
    ) -> Result<OAuthTokenResponse, OAuthError> {
        let raw = form.required("refresh_token")?;
        if !matches!(caller, OAuthClient::Public) {
            return Err(OAuthError::new(ErrorCode::InvalidGrant, "the refresh token was not issued to this client"));
        }
        if form.get("scope").is_some() {
            return Err(OAuthError::new(ErrorCode::InvalidScope, "this session has no scopes to narrow"));
        }
        match self.state.sessions().refresh(raw, client).await {
            Ok(issued) => self.user_tokens(issued),
            Err(RefreshRefused { error, .. }) => Err(error.into()),
        }
    }

    /// `grant_type=password` (only when `oauth_password_grant` is on): keycard's login, with
    /// its throttling, for the public client.
    pub async fn password(
        &self,
        caller: &OAuthClient,
        form: &OAuthForm,
        client: &ClientInfo,
    ) -> Result<OAuthTokenResponse, OAuthError> {
        if !self.state.config.oauth_password_grant {
            return Err(OAuthError::new(ErrorCode::UnsupportedGrantType, "the password grant is not enabled"));
        }
        if !matches!(caller, OAuthClient::Public) {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "only the public client keycard signs users in",
            ));
        }
        let (username, password) = (form.required("username")?, form.required("password")?);
        if form.get("scope").is_some() {
            return Err(OAuthError::new(ErrorCode::InvalidScope, "keycard sessions have no scopes"));
        }
        let delivery = keycard_core::wire::Delivery::Body;
        match self.state.sessions().login(username, password.to_owned(), None, delivery, client).await? {
            crate::mfa::LoginStep::Done(issued, _user) => self.user_tokens(*issued),
            // RFC 6749's password grant has no second step: such accounts use keycard's login.
            crate::mfa::LoginStep::Mfa(_) => Err(OAuthError::new(
                ErrorCode::InvalidGrant,
                "this account has a second factor: sign in with POST /auth/login and /auth/mfa/verify",
            )),
        }
    }

    fn user_tokens(&self, issued: Issued) -> Result<OAuthTokenResponse, OAuthError> {
        let session = &issued.session;
        Ok(OAuthTokenResponse {
            access_token: issued.access_token,
            token_type: crate::dpop::token_type(session.dpop_jkt.is_some()).into(),
            expires_in: self.state.config.access_ttl,
            refresh_token: Some(issued.refresh.expose().to_owned()),
            scope: None,
            session_id: Some(session.id.clone()),
            refresh_expires_in: Some(session.idle_expires_at.min(session.absolute_expires_at) - issued.now),
        })
    }

    /// `grant_type=client_credentials`: an access token for a registered client itself
    /// (`sub` = `client_id` = its id, `sid` = its current grant), no refresh token. The scope
    /// asked for must be within the client's; none asked: all of them.
    pub async fn client_credentials(
        &self,
        caller: &OAuthClient,
        form: &OAuthForm,
        client: &ClientInfo,
    ) -> Result<OAuthTokenResponse, OAuthError> {
        let OAuthClient::Registered(registered) = caller else {
            return Err(OAuthError::new(
                ErrorCode::UnauthorizedClient,
                "the public client keycard cannot use client_credentials",
            ));
        };
        let state = self.state;
        state.limits.check(Rule::ClientToken, &registered.id).await?;
        let allowed: Vec<&str> = registered.scopes.split_whitespace().collect();
        let scope = match form.get("scope") {
            Some(asked) => {
                let asked: Vec<&str> = asked.split_whitespace().collect();
                if let Some(unknown) = asked.iter().find(|s| !allowed.contains(s)) {
                    return Err(OAuthError::new(
                        ErrorCode::InvalidScope,
                        format!("the scope {unknown:?} is not registered for this client"),
                    ));
                }
                let mut granted: Vec<&str> = allowed.iter().copied().filter(|s| asked.contains(s)).collect();
                granted.dedup();
                granted.join(" ")
            }
            None => allowed.join(" "),
        };
        let now = state.now();
        let c = &state.config;
        let mut claims =
            AccessClaims::new(&c.issuer, &c.audience, &registered.id, &registered.grant_id, now, c.access_ttl);
        claims.client_id = Some(registered.id.clone());
        claims.scope = (!scope.is_empty()).then(|| scope.clone());
        claims.cnf = client.dpop_jkt.clone().map(|jkt| keycard_core::dpop::Confirmation { jkt });
        let access_token = state.sign(&claims).await?;
        metrics::counter!("keycard_oauth_tokens_total", "grant" => "client_credentials").increment(1);
        let detail = Some(format!("client {} scope {scope:?}", registered.id));
        state.audit(client.event(AuditKind::ClientToken, None, Some(registered.grant_id.clone()), detail, now)).await;
        Ok(OAuthTokenResponse {
            access_token,
            token_type: crate::dpop::token_type(client.dpop_jkt.is_some()).into(),
            expires_in: c.access_ttl,
            refresh_token: None,
            scope: (!scope.is_empty()).then_some(scope),
            session_id: None,
            refresh_expires_in: None,
        })
    }

    /// RFC 7009: a refresh token revokes its session (family); an access token its session, or
    /// for a client's own token its grant; both onto the revocation feed. Only the client a
    /// token was issued to can revoke it; anything else (unknown, expired, another client's)
    /// changes nothing, and the answer is the same.
    pub async fn revoke(&self, caller: &OAuthClient, token: &str, client: &ClientInfo) -> Result<(), OAuthError> {
        let state = self.state;
        // Revocations share the per-IP refresh budget: each may look a token up and write.
        state.limits.check(Rule::RefreshIp, &client.rate_key()).await?;
        let now = state.now();
        let detail = Some(format!("client {}", caller.id()));
        let event = |user_id: Option<String>, sid: &str| {
            client.event(AuditKind::TokenRevoked, user_id, Some(sid.to_owned()), detail.clone(), now)
        };
        let revoked = if let Some(refresh) = RefreshToken::parse(token) {
            match (caller, state.store.session_by_refresh(&refresh.hash(), now).await?) {
                (OAuthClient::Public, Some(session)) => {
                    let event = event(Some(session.user_id.clone()), &session.id);
                    let reason = RevocationReason::TokenRevoked;
                    let done = state.store.revoke_session(&session.user_id, &session.id, reason, now, &event).await?;
                    if done {
                        state.recorded(&event);
                    }
                    done
                }
                _ => false,
            }
        } else {
            match state.validator().validate(&*state.keys(), token, now) {
                Ok(claims) if claims.client_id.as_deref().unwrap_or(PUBLIC_CLIENT) == caller.id() => {
                    let user = matches!(caller, OAuthClient::Public).then(|| claims.sub.clone());
                    self.revoke_access(caller, &claims, event(user, &claims.sid), now).await?
                }
                _ => false,
            }
        };
        if revoked {
            metrics::counter!("keycard_revocations_total", "reason" => RevocationReason::TokenRevoked.as_str())
                .increment(1);
        }
        Ok(())
    }

    /// Revokes the session (public client) or the grant (registered client) of an access token,
    /// writing `event`; false when there was nothing live to revoke.
    async fn revoke_access(
        &self,
        caller: &OAuthClient,
        claims: &AccessClaims,
        event: AuditEvent,
        now: i64,
    ) -> Result<bool, OAuthError> {
        let (state, reason) = (self.state, RevocationReason::TokenRevoked);
        match caller {
            OAuthClient::Public => {
                let done = state.store.revoke_session(&claims.sub, &claims.sid, reason, now, &event).await?;
                if done {
                    state.recorded(&event);
                }
                Ok(done)
            }
            OAuthClient::Registered(c) => {
                // A client's grant, not a user's session: no webhook event, so its own statement.
                let done = state.store.revoke_client_grant(&c.id, &claims.sid, &new_grant_id(), reason, now).await?;
                if done {
                    state.audit(event).await;
                }
                Ok(done)
            }
        }
    }

    /// RFC 7662 for a registered client: `active` only for a live token, with its claims.
    pub async fn introspect(
        &self,
        caller: &OAuthClient,
        token: &str,
        client: &ClientInfo,
    ) -> Result<Introspection, OAuthError> {
        let OAuthClient::Registered(registered) = caller else {
            return Err(OAuthError::new(ErrorCode::InvalidClient, "introspection is for registered clients"));
        };
        let state = self.state;
        state.limits.check(Rule::ClientToken, &registered.id).await?;
        let now = state.now();
        let answer = if let Some(refresh) = RefreshToken::parse(token) {
            state.store.session_by_refresh(&refresh.hash(), now).await?.map(|s| Introspection {
                active: true,
                client_id: Some(PUBLIC_CLIENT.into()),
                token_type: Some("refresh_token".into()),
                exp: Some(s.idle_expires_at.min(s.absolute_expires_at)),
                iat: Some(s.last_used_at),
                sub: Some(s.user_id),
                iss: Some(state.config.issuer.clone()),
                sid: Some(s.id),
                ..Introspection::default()
            })
        } else {
            match state.validator().validate(&*state.keys(), token, now) {
                Ok(claims) if self.live(&claims, now).await? => Some(Introspection {
                    active: true,
                    scope: claims.scope,
                    client_id: Some(claims.client_id.unwrap_or_else(|| PUBLIC_CLIENT.into())),
                    token_type: Some("Bearer".into()),
                    exp: Some(claims.exp),
                    iat: Some(claims.iat),
                    nbf: Some(claims.nbf),
                    sub: Some(claims.sub),
                    aud: Some(claims.aud),
                    iss: Some(claims.iss),
                    jti: Some(claims.jti),
                    sid: Some(claims.sid),
                }),
                _ => None,
            }
        };
        let answer = answer.unwrap_or_default();
        metrics::counter!("keycard_introspections_total", "active" => if answer.active { "true" } else { "false" })
            .increment(1);
        let detail = Some(format!("by client {} active={}", registered.id, answer.active));
        let (user, sid) =
            (answer.sub.clone().filter(|_| answer.client_id.as_deref() == Some(PUBLIC_CLIENT)), answer.sid.clone());
        state.audit(client.event(AuditKind::TokenIntrospected, user, sid, detail, now)).await;
        Ok(answer)
    }

    /// Whether a validated access token's session (or client grant) is live.
    async fn live(&self, claims: &AccessClaims, now: i64) -> Result<bool, OAuthError> {
        let store = &self.state.store;
        Ok(match claims.client_id.as_deref() {
            None | Some(PUBLIC_CLIENT) => store.session_user(&claims.sid, &claims.sub, now).await?.is_some(),
            Some(id) => store.client(id).await?.is_some_and(|c| c.grant_id == claims.sid && claims.sub == c.id),
        })
    }
}

/// `client_secret_basic` credentials: the id and secret, each form-urlencoded before being
/// joined (RFC 6749 §2.3.1). `None` without an `Authorization: Basic` header.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else { return Ok(None) };
    let value = value.to_str().unwrap_or("");
    let Some((scheme, encoded)) = value.split_once(' ') else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("basic") {
        return Ok(None);
    }
    let malformed = || OAuthError::new(ErrorCode::InvalidRequest, "malformed Basic credentials");
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let text = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = text.split_once(':').ok_or_else(malformed)?;
    let unescape =
        |s: &str| percent_encoding::percent_decode_str(&s.replace('+', " ")).decode_utf8().map(|s| s.into_owned());
    Ok(Some((unescape(id).map_err(|_| malformed())?, unescape(secret).map_err(|_| malformed())?)))
}

/// The stored form of a client secret: SHA-256, hex. Secrets are 256 random bits, so a slow
/// password hash would add nothing but latency.
pub fn secret_hash(secret: &str) -> String {
    digest::digest(&digest::SHA256, secret.as_bytes()).as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

fn random(bytes: usize) -> Vec<u8> {
    let mut buf = vec![0u8; bytes];
    getrandom::fill(&mut buf).expect("the operating system's random source failed");
    buf
}

fn new_secret() -> String {
    format!("{SECRET_PREFIX}{}", URL_SAFE_NO_PAD.encode(random(32)))
}

fn new_grant_id() -> String {
    format!("{GRANT_PREFIX}{}", uuid::Uuid::new_v4().simple())
}

/// What registering a client gave: its record and, for a secret client, the secret (shown once;
/// only its hash is stored).
pub struct Registered {
    /// The stored client.
    pub client: ClientRecord,
    /// The secret, for a client without a JWK set.
    pub secret: Option<String>,
}

/// Checks a JWK set for `private_key_jwt`: valid JSON, at least one key, every key public and
/// usable for signatures (no private members, no symmetric keys).
pub fn check_jwks(text: &str) -> anyhow::Result<String> {
    let raw: serde_json::Value =
        serde_json::from_str(text).map_err(|e| anyhow::anyhow!("the JWK set is not JSON: {e}"))?;
    let keys = raw["keys"].as_array().ok_or_else(|| anyhow::anyhow!("the JWK set has no \"keys\" array"))?;
    if keys.is_empty() {
        anyhow::bail!("the JWK set has no keys");
    }
    for key in keys {
        if key.get("d").is_some() || key.get("p").is_some() || key.get("k").is_some() {
            anyhow::bail!("the JWK set holds private or symmetric key material; register only public keys");
        }
    }
    let set: JwkSet = serde_json::from_value(raw.clone()).map_err(|e| anyhow::anyhow!("the JWK set: {e}"))?;
    for jwk in &set.keys {
        DecodingKey::from_jwk(jwk).map_err(|e| anyhow::anyhow!("a key of the JWK set cannot verify: {e}"))?;
    }
    Ok(raw.to_string())
}

/// Scopes as stored: space-separated, each a printable ASCII word without quotes or
/// backslashes (RFC 6749 §3.3), deduplicated, in the order given.
pub fn normalize_scopes(scopes: &[String]) -> anyhow::Result<String> {
    let mut out: Vec<&str> = Vec::new();
    for scope in scopes.iter().flat_map(|s| s.split([' ', ','])).filter(|s| !s.is_empty()) {
        if !scope.bytes().all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b)) {
            anyhow::bail!("the scope {scope:?} has a character OAuth does not allow");
        }
        if !out.contains(&scope) {
            out.push(scope);
        }
    }
    Ok(out.join(" "))
}

/// Registers a client (`keycard clients add`): with `jwks`, a `private_key_jwt` client;
/// otherwise a secret client, whose secret is returned once.
pub async fn register_client(
    store: &dyn Store,
    name: &str,
    scopes: &[String],
    jwks: Option<&str>,
    now: i64,
) -> anyhow::Result<Registered> {
    let scopes = normalize_scopes(scopes)?;
    let jwks = jwks.map(check_jwks).transpose()?;
    let secret = jwks.is_none().then(new_secret);
    let mut id = String::from(CLIENT_ID_PREFIX);
    id.extend(random(12).iter().map(|b| format!("{b:02x}")));
    let client = ClientRecord {
        id,
        name: name.to_owned(),
        secret_hash: secret.as_deref().map(secret_hash),
        jwks,
        scopes,
        grant_id: new_grant_id(),
        created_at: now,
        secret_rotated_at: None,
    };
    store.create_client(&client).await?;
    let mut event = keycard_store::AuditEvent::new(AuditKind::ClientCreated, now);
    event.detail = Some(format!("client {} ({})", client.id, client.name));
    store.append_audit(&event).await?;
    Ok(Registered { client, secret })
}

/// Replaces a secret client's secret (`keycard clients rotate-secret`); the new one is returned
/// once. The old secret stops working at once; tokens already issued stay valid until they expire.
pub async fn rotate_client_secret(store: &dyn Store, id: &str, now: i64) -> anyhow::Result<String> {
    let client = store.client(id).await?.ok_or_else(|| anyhow::anyhow!("no client {id}"))?;
    if client.jwks.is_some() {
        anyhow::bail!("client {id} authenticates with private_key_jwt; it has no secret");
    }
    let secret = new_secret();
    if !store.set_client_secret(id, &secret_hash(&secret), now).await? {
        anyhow::bail!("no client {id}");
    }
    let mut event = keycard_store::AuditEvent::new(AuditKind::ClientSecretRotated, now);
    event.detail = Some(format!("client {id}"));
    store.append_audit(&event).await?;
    Ok(secret)
}

/// Removes a client (`keycard clients remove`); its access tokens are revoked on the feed.
pub async fn remove_client(store: &dyn Store, id: &str, now: i64) -> anyhow::Result<()> {
    if !store.remove_client(id, now).await? {
        anyhow::bail!("no client {id}");
    }
    let mut event = keycard_store::AuditEvent::new(AuditKind::ClientRemoved, now);
    event.detail = Some(format!("client {id}"));
    store.append_audit(&event).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        let mut headers = HeaderMap::new();
        let encoded = STANDARD.encode("my%20client:s%3Ac+r");
        headers.insert(header::AUTHORIZATION, format!("Basic {encoded}").parse().unwrap());
        let (id, secret) = basic_credentials(&headers).ok().flatten().unwrap();
        assert_eq!((id.as_str(), secret.as_str()), ("my client", "s:c r"));
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(basic_credentials(&headers).is_err());
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert!(basic_credentials(&headers).ok().flatten().is_none());
    }

    #[test]
    fn scopes_are_words_deduplicated_in_order() {
        let scopes = ["read write".to_owned(), "read,admin".to_owned()];
        assert_eq!(normalize_scopes(&scopes).unwrap(), "read write admin");
        assert!(normalize_scopes(&["a\"b".to_owned()]).is_err());
        assert!(normalize_scopes(&["caf\u{e9}".to_owned()]).is_err());
    }

    #[test]
    fn a_jwk_set_with_private_material_is_refused() {
        let public =
            r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"a"}]}"#;
        assert!(check_jwks(public).is_ok());
        let private = r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}"#;
        assert!(check_jwks(private).is_err());
        assert!(check_jwks(r#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#).is_err());
        assert!(check_jwks(r#"{"keys":[]}"#).is_err());
    }

    #[test]
    fn secrets_are_random_and_hashed() {
        let (a, b) = (new_secret(), new_secret());
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX) && a.len() == SECRET_PREFIX.len() + 43);
        assert_eq!(secret_hash("abc").len(), 64);
        assert_ne!(secret_hash(&a), secret_hash(&b));
    }
}
