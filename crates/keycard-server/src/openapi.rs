//! The OpenAPI 3.1 description of the HTTP API v1 (`GET /openapi.json`), and the interactive
//! reference that renders it (`GET /docs`): Swagger UI, vendored in `openapi/vendor/` and served
//! from the binary, so the page loads nothing from anywhere but this server.
//!
//! Operations are described with `#[utoipa::path]` on the dummy functions of `paths` (the
//! handlers in `routes/` stay free of documentation attributes); the error responses of each
//! operation come from one table, [`ERRORS`], turned into responses by the `ErrorResponses`
//! modifier: each status lists its error codes, with an `ErrorBody` example per code.
//!
//! `tests/openapi.rs` checks that the documented operations are exactly the router's routes.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use axum::http::{HeaderName, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use keycard_core::ErrorCode;
use utoipa::openapi::example::ExampleBuilder;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, RefOr, Required, Schema, Type};
use utoipa::{Modify, OpenApi};

use crate::assets::{ASSET_CSP, asset};

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "keycard HTTP API",
        description = "HTTP API v1 of keycard, a self-hosted JWT token service: short-lived signed \
                       access tokens, single-use rotating refresh tokens with reuse detection, \
                       revocation, cookie + CSRF delivery for browsers.\n\n\
                       Every error is `{\"error\": \"<code>\", \"error_description\": \"<text>\"}` \
                       (`ErrorBody`). A request carrying `access_token=`, `refresh_token=` or \
                       `id_token=` in its query string is refused with 400 `invalid_request`.",
        license(name = "MIT OR Apache-2.0", identifier = "MIT OR Apache-2.0")
    ),
    paths(
        paths::signup,
        paths::login,
        paths::refresh,
        paths::logout,
        paths::me,
        paths::list_sessions,
        paths::revoke_session,
        paths::change_password,
        paths::forgot_password,
        paths::reset_page,
        paths::reset_password,
        paths::reset_js,
        paths::change_email,
        paths::verify_email,
        paths::resend_verification,
        paths::confirm_email_change,
        paths::cancel_email_change,
        paths::verify_page,
        paths::email_confirm_page,
        paths::email_cancel_page,
        paths::link_js,
        paths::delete_account,
        paths::mfa_verify,
        paths::step_up,
        paths::list_factors,
        paths::begin_totp,
        paths::confirm_totp,
        paths::remove_factor,
        paths::rename_factor,
        paths::regenerate_recovery_codes,
        paths::step_up_options,
        paths::passkey_register_options,
        paths::passkey_register,
        paths::passkey_login_options,
        paths::passkey_login,
        paths::revocations,
        paths::jwks,
        paths::openid_configuration,
        paths::authorization_server,
        paths::oauth_token,
        paths::oauth_revoke,
        paths::oauth_introspect,
        paths::healthz,
        paths::readyz,
        paths::metrics,
        paths::index,
        paths::keycard_js,
        paths::demo_js,
        paths::style_css,
        paths::openapi_json,
        paths::docs,
        paths::docs_js,
        paths::swagger_ui_js,
        paths::swagger_ui_css,
    ),
    components(schemas(keycard_core::ErrorBody, keycard_core::ErrorCode)),
    modifiers(&SecuritySchemes, &OptionalBodies, &ErrorResponses),
    tags(
        (name = "auth", description = "Accounts, login, token refresh and logout."),
        (name = "account", description = "The signed-in user's own resources (Bearer access token)."),
        (name = "mfa", description = "Second factors: the login's second step, step-up (RFC 9470), authenticator apps (RFC 6238), passkeys (WebAuthn) and recovery codes."),
        (name = "oauth", description = "Standard OAuth 2.0 beside the JSON API: the token endpoint (RFC 6749), revocation (RFC 7009) and introspection (RFC 7662), form-encoded, with RFC 6749 §5.2 errors."),
        (name = "discovery", description = "Public keys, authorization-server metadata and the revocation feed, for resource servers."),
        (name = "operations", description = "Liveness, readiness and Prometheus metrics."),
        (name = "web", description = "The demo page, the browser client and these docs."),
    )
)]
pub struct ApiDoc;

/// The document as JSON, built once.
pub fn document() -> &'static str {
    static DOC: OnceLock<String> = OnceLock::new();
    DOC.get_or_init(|| ApiDoc::openapi().to_json().expect("the OpenAPI document serializes"))
}

/// `GET /openapi.json`.
pub async fn openapi_json() -> Response {
    let headers: [(HeaderName, HeaderValue); 2] = [
        (header::CONTENT_TYPE, HeaderValue::from_static("application/json")),
        (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
    ];
    (headers, document()).into_response()
}

/// The docs page runs Swagger UI and its start script from this server and reads `/openapi.json`
/// (and, from "Try it out", the API), nothing else. Its styles come from the vendored stylesheet
/// (no inline style is needed) and its icons are `data:` images. Unlike the demo page, no
/// `require-trusted-types-for`: React sets the rendered Markdown (sanitized by DOMPurify) with
/// `innerHTML` (docs/DECISIONS.md).
const DOCS_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                        connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
const DOCS_HTML: &str = include_str!("openapi/docs.html");
const DOCS_JS: &str = include_str!("openapi/docs.js");
/// Swagger UI, unchanged from the npm package `swagger-ui-dist` (`openapi/vendor/README.md`).
const SWAGGER_UI_JS: &str = include_str!("openapi/vendor/swagger-ui-bundle.js");
const SWAGGER_UI_CSS: &str = include_str!("openapi/vendor/swagger-ui.css");

/// `GET /docs`: the API reference page.
pub async fn docs() -> Response {
    asset(DOCS_HTML, "text/html; charset=utf-8", DOCS_CSP)
}

/// `GET /docs/docs.js`: the script that starts Swagger UI on `/openapi.json`.
pub async fn docs_js() -> Response {
    asset(DOCS_JS, "application/javascript", ASSET_CSP)
}

/// `GET /docs/swagger-ui-bundle.js`: Swagger UI.
pub async fn swagger_ui_js() -> Response {
    asset(SWAGGER_UI_JS, "application/javascript", ASSET_CSP)
}

/// `GET /docs/swagger-ui.css`: Swagger UI's stylesheet.
pub async fn swagger_ui_css() -> Response {
    asset(SWAGGER_UI_CSS, "text/css; charset=utf-8", ASSET_CSP)
}

/// The operations. The functions are never called: they carry the `#[utoipa::path]` attributes.
#[allow(dead_code, clippy::unused_async)]
mod paths {
    use keycard_core::keys::JwkSet;
    use keycard_core::wire::mfa::{
        FactorList, MfaChallenge, MfaVerifyRequest, PasskeyAdded, PasskeyLoginRequest, PasskeyOptions,
        PasskeyRegisterRequest, RecoveryCodes, RenameFactorRequest, StepUpRequest, StepUpResponse, TotpConfirmRequest,
        TotpConfirmed, TotpEnrollment,
    };
    use keycard_core::wire::{
        Accepted, ChangeEmailRequest, DeleteAccountRequest, Discovery, EmailLinkDone, EmailTokenRequest,
        ForgotPasswordRequest, Introspection, LoginRequest, LogoutRequest, OAuthTokenResponse, PasswordChangeRequest,
        ProbeStatus, RefreshRequest, ResendVerificationRequest, ResetPasswordRequest, RevocationFeed, SessionInfo,
        SignupRequest, TokenResponse, UserInfo,
    };

    /// The form of `POST /oauth/token` (`application/x-www-form-urlencoded`). Client
    /// authentication: HTTP Basic, or `client_id` + `client_secret`, or `client_assertion_type` +
    /// `client_assertion` (`private_key_jwt`), or only `client_id=keycard` (the public client).
    #[derive(utoipa::ToSchema)]
    #[allow(dead_code)]
    pub struct TokenForm {
        /// `refresh_token`, `client_credentials`, or `password` (when `oauth_password_grant` is on).
        grant_type: String,
        /// `refresh_token` grant: the refresh token (single use; a replay revokes its session).
        refresh_token: Option<String>,
        /// `client_credentials`: the scopes wanted, within the client's (default: all of them).
        scope: Option<String>,
        /// `password` grant: the email.
        username: Option<String>,
        /// `password` grant: the password.
        password: Option<String>,
        /// The client: `keycard` (public) or a registered client's id.
        client_id: Option<String>,
        /// `client_secret_post`: the client's secret.
        client_secret: Option<String>,
        /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
        client_assertion_type: Option<String>,
        /// `private_key_jwt`: a JWT signed by a key of the client's registered JWK set.
        client_assertion: Option<String>,
    }

    /// The form of `POST /oauth/revoke` and `POST /oauth/introspect`, plus the client
    /// authentication of [`TokenForm`].
    #[derive(utoipa::ToSchema)]
    #[allow(dead_code)]
    pub struct TokenActionForm {
        /// The token: a refresh token or an access token.
        token: String,
        /// `refresh_token` or `access_token`; optional (keycard tells its tokens apart).
        token_type_hint: Option<String>,
        /// The client: `keycard` (public, revocation only) or a registered client's id.
        client_id: Option<String>,
        /// `client_secret_post`: the client's secret.
        client_secret: Option<String>,
        /// `private_key_jwt`: `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`.
        client_assertion_type: Option<String>,
        /// `private_key_jwt`: the signed assertion.
        client_assertion: Option<String>,
    }

    /// The answer to a right password: a token response, or (an account with a second factor)
    /// the second step.
    #[derive(serde::Serialize, utoipa::ToSchema)]
    #[serde(untagged)]
    #[allow(dead_code)]
    pub enum LoginAnswer {
        /// Signed in.
        Tokens(TokenResponse),
        /// `POST /auth/mfa/verify` next.
        Mfa(MfaChallenge),
    }

    /// Creates an account.
    ///
    /// The email is trimmed and lower-cased; the password must meet the policy (length, not a
    /// common password). Rate-limited per IP.
    #[utoipa::path(
        post, path = "/auth/signup", tag = "auth",
        request_body = SignupRequest,
        responses((status = 201, description = "The account was created.", body = UserInfo)),
    )]
    pub async fn signup() {}

    /// Checks email and password and starts a session (a refresh-token family).
    ///
    /// `delivery: "cookie"` (default, browsers): the refresh token is set in the HTTP-only cookie
    /// `__Secure-keycard_refresh` (Path=/auth) and a CSRF token in the readable cookie
    /// `__Host-keycard_csrf` and in the body as `csrf_token`. `delivery: "body"` (native apps,
    /// CLIs, services): the refresh token is in the body as `refresh_token`, and no cookie is set.
    /// Unknown email and wrong password answer the same. Rate-limited per IP and per account, with
    /// backoff after repeated failures.
    ///
    /// An account with a second factor answers a right password with `{mfa_required: true,
    /// mfa_token, methods, expires_in}` (`MfaChallenge`) and no tokens; `POST /auth/mfa/verify`
    /// completes the login in the delivery asked for here.
    #[utoipa::path(
        post, path = "/auth/login", tag = "auth",
        request_body = LoginRequest,
        params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449) for this request: the session (or client token) is bound to its key, the token response says `token_type: DPoP` and the access tokens carry `cnf.jkt`. Required with `dpop_required = \"all\"` or for the clients in `dpop_required_clients`. 400 `invalid_dpop_proof`, or `use_dpop_nonce` with the nonce to use in `DPoP-Nonce` when `dpop_nonce` is on.")),
        responses((
            status = 200, description = "Signed in: a token response; or, with a second factor on the account, the second step.",
            body = inline(LoginAnswer),
            headers(("Set-Cookie" = String, description = "With cookie delivery: the refresh and CSRF cookies."))
        )),
    )]
    pub async fn login() {}

    /// Completes a login with its second factor: the `mfa_token` and exactly one of `code` (the
    /// authenticator app's, each code good once), `recovery_code` (spent) or `webauthn` (a
    /// passkey's assertion for the challenge's `webauthn` options).
    ///
    /// The `mfa_token` works for 5 minutes and 5 answers, and once; wrong answers count toward the
    /// login's backoff. The session's access tokens carry `amr: ["pwd", "otp", "mfa"]` and
    /// `auth_time`. 400 `invalid_mfa` for a wrong, used or expired answer or token.
    #[utoipa::path(
        post, path = "/auth/mfa/verify", tag = "mfa",
        request_body = MfaVerifyRequest,
        params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449) for this request: the session (or client token) is bound to its key, the token response says `token_type: DPoP` and the access tokens carry `cnf.jkt`. Required with `dpop_required = \"all\"` or for the clients in `dpop_required_clients`. 400 `invalid_dpop_proof`, or `use_dpop_nonce` with the nonce to use in `DPoP-Nonce` when `dpop_nonce` is on.")),
        responses((
            status = 200, description = "Signed in: a token response in the login's delivery.", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "With cookie delivery: the refresh and CSRF cookies."))
        )),
    )]
    pub async fn mfa_verify() {}

    /// Signs the user in again on the current session (RFC 9470 step-up).
    ///
    /// An account with a second factor answers with it (`code`, `recovery_code`, or a passkey:
    /// `passkey_token` from `POST /auth/step-up/options` and the `webauthn` assertion; `password`
    /// optional); one without, with its `password`. The answer is a new access token with
    /// `auth_time` now; the session keeps it, so later refreshes carry it too. Routes that need a
    /// recent sign-in answer 401 `insufficient_user_authentication` with `WWW-Authenticate:
    /// Bearer error="insufficient_user_authentication", max_age=<step_up_max_age>`.
    #[utoipa::path(
        post, path = "/auth/step-up", tag = "mfa",
        request_body = StepUpRequest,
        security(("bearer" = [])),
        responses((status = 200, description = "A new access token for the session.", body = StepUpResponse)),
    )]
    pub async fn step_up() {}

    /// The caller's active second factors and how many recovery codes are left.
    #[utoipa::path(
        get, path = "/auth/mfa", tag = "mfa",
        security(("bearer" = [])),
        responses((status = 200, description = "Factors, oldest first.", body = FactorList)),
    )]
    pub async fn list_factors() {}

    /// Starts an authenticator-app (TOTP) enrolment: a new secret, as base32, an `otpauth://`
    /// URI and a QR code (SVG data URL). Shown once; active after `POST /auth/mfa/totp/confirm`.
    ///
    /// Needs a recent sign-in (`step_up_max_age`; with a second factor already, one with it).
    #[utoipa::path(
        post, path = "/auth/mfa/totp", tag = "mfa",
        security(("bearer" = [])),
        responses((status = 200, description = "The pending factor.", body = TotpEnrollment)),
    )]
    pub async fn begin_totp() {}

    /// Activates a pending authenticator app with its current code. The account's first factor
    /// also gets ten recovery codes, returned this once.
    #[utoipa::path(
        post, path = "/auth/mfa/totp/confirm", tag = "mfa",
        request_body = TotpConfirmRequest,
        security(("bearer" = [])),
        responses((status = 200, description = "The factor is active.", body = TotpConfirmed)),
    )]
    pub async fn confirm_totp() {}

    /// Removes a factor. Needs a recent sign-in with a second factor (a pending factor excepted).
    /// With the last factor the recovery codes go too.
    #[utoipa::path(
        delete, path = "/auth/mfa/factors/{id}", tag = "mfa",
        params(("id" = String, Path, description = "The factor id.")),
        security(("bearer" = [])),
        responses((status = 204, description = "The factor is removed.")),
    )]
    pub async fn remove_factor() {}

    /// Renames a factor (1 to 64 characters).
    #[utoipa::path(
        patch, path = "/auth/mfa/factors/{id}", tag = "mfa",
        params(("id" = String, Path, description = "The factor id.")),
        request_body = RenameFactorRequest,
        security(("bearer" = [])),
        responses((status = 204, description = "Renamed.")),
    )]
    pub async fn rename_factor() {}

    /// A passkey challenge for the caller's passkeys, answered at `POST /auth/step-up` with its
    /// `passkey_token` and the `webauthn` assertion. 404 when the account has no passkey.
    #[utoipa::path(
        post, path = "/auth/step-up/options", tag = "mfa",
        security(("bearer" = [])),
        responses((status = 200, description = "WebAuthn request options.", body = PasskeyOptions)),
    )]
    pub async fn step_up_options() {}

    /// Starts a passkey registration for the caller: WebAuthn creation options (a discoverable
    /// credential preferred, user verification required, the account's passkeys excluded).
    /// Needs a recent sign-in (`step_up_max_age`; with a second factor already, one with it).
    #[utoipa::path(
        post, path = "/auth/passkeys/register/options", tag = "mfa",
        security(("bearer" = [])),
        responses((status = 200, description = "WebAuthn creation options.", body = PasskeyOptions)),
    )]
    pub async fn passkey_register_options() {}

    /// Adds the passkey the authenticator made (`passkey_added`). The origin and relying-party id
    /// are checked against `webauthn_origins` and `webauthn_rp_id` (400 `invalid_mfa` saying
    /// which). The account's first factor also gets ten recovery codes, returned this once.
    #[utoipa::path(
        post, path = "/auth/passkeys/register", tag = "mfa",
        request_body = PasskeyRegisterRequest,
        security(("bearer" = [])),
        responses((status = 200, description = "The passkey is active.", body = PasskeyAdded)),
    )]
    pub async fn passkey_register() {}

    /// A passwordless sign-in's challenge: request options with no credentials listed, answered by
    /// any discoverable passkey of this site (also through the browser's autofill, with
    /// `mediation: "conditional"`). Single use, 5 minutes.
    #[utoipa::path(
        post, path = "/auth/passkeys/login/options", tag = "mfa",
        responses((status = 200, description = "WebAuthn request options.", body = PasskeyOptions)),
    )]
    pub async fn passkey_login_options() {}

    /// Signs in with a passkey alone. Access tokens carry `amr: ["hwk" or "swk", "mfa"]` (a
    /// passkey is possession plus user verification). 401 `invalid_credentials` for any refused
    /// answer, saying nothing about the account.
    #[utoipa::path(
        post, path = "/auth/passkeys/login", tag = "mfa",
        request_body = PasskeyLoginRequest,
        params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449), as at `POST /auth/login`: the session is bound to its key.")),
        responses((
            status = 200, description = "Signed in: a token response in the requested delivery.", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "With cookie delivery: the refresh and CSRF cookies."))
        )),
    )]
    pub async fn passkey_login() {}

    /// Ten new recovery codes replace every earlier one; shown this once. Needs a recent sign-in
    /// with a second factor.
    #[utoipa::path(
        post, path = "/auth/mfa/recovery-codes", tag = "mfa",
        security(("bearer" = [])),
        responses((status = 200, description = "The new codes.", body = RecoveryCodes)),
    )]
    pub async fn regenerate_recovery_codes() {}

    /// Rotates a refresh token: the presented one becomes used and a new pair is issued.
    ///
    /// The token comes from the body (`{refresh_token}`, body delivery) or from the refresh cookie
    /// with an `X-CSRF-Token` header equal to the CSRF cookie (and an allowed `Origin` when one is
    /// sent). Presenting an already-used token revokes the whole session and answers 401
    /// `refresh_token_reused`.
    #[utoipa::path(
        post, path = "/auth/refresh", tag = "auth",
        request_body(content = Option<RefreshRequest>, description = "Body delivery: the refresh token. Cookie delivery: no body."),
        security((), ("refresh_cookie" = [], "csrf_token" = [])),
        params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449). A DPoP-bound session rotates only with a proof made with its key: without one, or with another key's, 401 `invalid_grant` (audited `dpop_mismatch`; the token stays live).")),
        responses((
            status = 200, description = "Rotated: a new token response (same delivery as the login).", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "With cookie delivery: the new refresh and CSRF cookies."))
        )),
    )]
    pub async fn refresh() {}

    /// Ends this session, all the user's sessions, or all but this one.
    ///
    /// `scope`: this session (`local`, the default), every session of the user (`global`) or
    /// every session but this one (`others`); the session cookies are cleared (except for
    /// `others`). Authenticated by a Bearer access token, the refresh cookie (+ `X-CSRF-Token`), or a
    /// body-delivered `refresh_token`.
    #[utoipa::path(
        post, path = "/auth/logout", tag = "auth",
        request_body(content = Option<LogoutRequest>, description = "Optional: the scope, and the refresh token for body-delivery clients."),
        security(("bearer" = []), ("refresh_cookie" = [], "csrf_token" = []), ()),
        responses((
            status = 204, description = "Signed out.",
            headers(("Set-Cookie" = String, description = "Clears the refresh and CSRF cookies."))
        )),
    )]
    pub async fn logout() {}

    /// The signed-in user.
    #[utoipa::path(
        get, path = "/auth/me", tag = "account",
        security(("bearer" = [])),
        responses((status = 200, description = "The user.", body = UserInfo)),
    )]
    pub async fn me() {}

    /// The user's live sessions; `current` marks the caller's own.
    #[utoipa::path(
        get, path = "/auth/sessions", tag = "account",
        security(("bearer" = [])),
        responses((status = 200, description = "The sessions.", body = Vec<SessionInfo>)),
    )]
    pub async fn list_sessions() {}

    /// Revokes one of the user's sessions.
    #[utoipa::path(
        delete, path = "/auth/sessions/{id}", tag = "account",
        params(("id" = String, Path, description = "Session id, as listed by `GET /auth/sessions`.")),
        security(("bearer" = [])),
        responses((status = 204, description = "The session is revoked.")),
    )]
    pub async fn revoke_session() {}

    /// Changes the password and revokes every other session of the user.
    #[utoipa::path(
        post, path = "/auth/password", tag = "account",
        request_body = PasswordChangeRequest,
        security(("bearer" = [])),
        responses((status = 204, description = "The password is changed; the other sessions are revoked.")),
    )]
    pub async fn change_password() {}

    /// Asks for a password-reset link by mail.
    ///
    /// Answers 202 with the same body, in the same time, whether or not the address has an
    /// account. For an account, a link `{app_url}/auth/password/reset#token=kcpr_…` is mailed: the
    /// token (256 random bits, stored only as its SHA-256) works once, for `password_reset_ttl`
    /// (30 minutes), and a new request replaces the previous token. Rate-limited per address and
    /// per IP.
    #[utoipa::path(
        post, path = "/auth/password/forgot", tag = "auth",
        request_body = ForgotPasswordRequest,
        responses((status = 202, description = "Accepted (whether or not the address has an account).", body = Accepted)),
    )]
    pub async fn forgot_password() {}

    /// The form a mailed reset link opens.
    ///
    /// Never reads or spends a token (mail link scanners open links first): its script takes the
    /// token from the URL fragment and posts it to `POST /auth/password/reset`.
    #[utoipa::path(
        get, path = "/auth/password/reset", tag = "web",
        responses((status = 200, description = "HTML page.", body = String, content_type = "text/html; charset=utf-8")),
    )]
    pub async fn reset_page() {}

    /// Sets a new password with a mailed reset token.
    ///
    /// Spends the token (once: of concurrent requests one wins), applies the password policy
    /// (422 `weak_password`, checked before the token is spent), revokes every session of the
    /// user (reason `password_reset`, on the revocation feed) and mails a "your password was
    /// changed" notice. An unknown, malformed, used, superseded or expired token is 400
    /// `invalid_reset_token`.
    #[utoipa::path(
        post, path = "/auth/password/reset", tag = "auth",
        request_body = ResetPasswordRequest,
        responses((status = 204, description = "The password is changed; every session is revoked.")),
    )]
    pub async fn reset_password() {}

    /// Changes the account's address, once the new one is confirmed.
    ///
    /// Checks the password (401 `invalid_credentials`, with the limits and backoff of every
    /// password check), then answers 202 with the same body and in the same time whether or not
    /// another account has the new address. When it is free, a confirmation link
    /// `{app_url}/auth/email/confirm#token=kcec_…` (valid `email_change_ttl`, 1 hour) goes to the
    /// new address and a notice with a cancel link `{app_url}/auth/email/cancel#token=kcex_…`
    /// (valid `email_change_cancel_ttl`, 7 days) to the current one; a newer request replaces a
    /// pending one. The address stays as it is until the confirmation.
    #[utoipa::path(
        post, path = "/auth/email", tag = "account",
        request_body = ChangeEmailRequest,
        security(("bearer" = [])),
        responses((status = 202, description = "Accepted (whether or not the new address is free).", body = Accepted)),
    )]
    pub async fn change_email() {}

    /// Verifies the account's address with the token of a mailed link.
    ///
    /// Signup mails `{app_url}/auth/email/verify#token=kcev_…` when `email_verification` is
    /// `optional` (the default) or `required`. The token works once, for `email_verification_ttl`
    /// (24 hours), and only for the address it was sent to. Access tokens issued after carry
    /// `email_verified: true`. An unknown, malformed, used, superseded or expired token is 400
    /// `invalid_verification_token`. Rate-limited per IP.
    #[utoipa::path(
        post, path = "/auth/email/verify", tag = "auth",
        request_body = EmailTokenRequest,
        responses((status = 200, description = "The address is verified.", body = EmailLinkDone)),
    )]
    pub async fn verify_email() {}

    /// Mails a new verification link.
    ///
    /// Answers 202 with the same body, in the same time, whatever the address; an account that
    /// exists and is not verified gets a new link (earlier ones stop working). Rate-limited per
    /// address and per IP.
    #[utoipa::path(
        post, path = "/auth/email/verify/resend", tag = "auth",
        request_body = ResendVerificationRequest,
        responses((status = 202, description = "Accepted (whether or not the address has an account).", body = Accepted)),
    )]
    pub async fn resend_verification() {}

    /// Confirms an address change with the token mailed to the new address.
    ///
    /// The account's address becomes the new one, verified; links mailed earlier to the old
    /// address (verification, password reset) stop working. 400 `invalid_email_change_token` for
    /// an unknown, used, superseded, expired or cancelled change; 409 `email_taken` when another
    /// account took the address in the meantime.
    #[utoipa::path(
        post, path = "/auth/email/confirm", tag = "auth",
        request_body = EmailTokenRequest,
        responses((status = 200, description = "The address is changed.", body = EmailLinkDone)),
    )]
    pub async fn confirm_email_change() {}

    /// Cancels an address change with the token mailed to the old address.
    ///
    /// A pending change is cancelled. A change already confirmed is undone: the old address is
    /// back and every session of the account is revoked (reason `email_change_cancelled`, on the
    /// revocation feed), so whoever changed it loses the account. 400
    /// `invalid_email_change_token` otherwise.
    #[utoipa::path(
        post, path = "/auth/email/cancel", tag = "auth",
        request_body = EmailTokenRequest,
        responses((status = 200, description = "The change is cancelled (or undone).", body = EmailLinkDone)),
    )]
    pub async fn cancel_email_change() {}

    /// The reset form's script.
    #[utoipa::path(
        get, path = "/reset.js", tag = "web",
        responses((status = 200, description = "JavaScript module.", body = String, content_type = "application/javascript")),
    )]
    pub async fn reset_js() {}

    /// The page a mailed verification link opens.
    ///
    /// Never reads or spends a token (mail link scanners open links first): its script takes the
    /// token from the URL fragment and posts it to `POST /auth/email/verify` only when the
    /// person clicks "Confirm my address".
    #[utoipa::path(
        get, path = "/auth/email/verify", tag = "web",
        responses((status = 200, description = "HTML page.", body = String, content_type = "text/html; charset=utf-8")),
    )]
    pub async fn verify_page() {}

    /// The page the link mailed to a new address opens.
    ///
    /// Never reads or spends a token: its script posts the token from the URL fragment to
    /// `POST /auth/email/confirm` only when the person clicks "Confirm my new address".
    #[utoipa::path(
        get, path = "/auth/email/confirm", tag = "web",
        responses((status = 200, description = "HTML page.", body = String, content_type = "text/html; charset=utf-8")),
    )]
    pub async fn email_confirm_page() {}

    /// The page the link mailed to the old address opens.
    ///
    /// Never reads or spends a token: its script posts the token from the URL fragment to
    /// `POST /auth/email/cancel` only when the person clicks "Cancel the change".
    #[utoipa::path(
        get, path = "/auth/email/cancel", tag = "web",
        responses((status = 200, description = "HTML page.", body = String, content_type = "text/html; charset=utf-8")),
    )]
    pub async fn email_cancel_page() {}

    /// The script of the verification and email-change pages.
    #[utoipa::path(
        get, path = "/link.js", tag = "web",
        responses((status = 200, description = "JavaScript module.", body = String, content_type = "application/javascript")),
    )]
    pub async fn link_js() {}

    /// Deletes the user, revokes every session and clears the session cookies.
    #[utoipa::path(
        delete, path = "/auth/account", tag = "account",
        request_body = DeleteAccountRequest,
        security(("bearer" = [])),
        responses((
            status = 204, description = "The account is deleted.",
            headers(("Set-Cookie" = String, description = "Clears the refresh and CSRF cookies."))
        )),
    )]
    pub async fn delete_account() {}

    /// The revocation feed: sessions revoked after a feed position.
    ///
    /// Resource servers follow it to refuse access tokens of revoked sessions before they expire.
    /// Public (ids and times only); at most 1000 entries per page, oldest first.
    #[utoipa::path(
        get, path = "/auth/revocations", tag = "discovery",
        params(("after" = Option<i64>, Query, description = "Feed position to start after (0, the default, for the beginning).")),
        responses((status = 200, description = "A page of the feed.", body = RevocationFeed)),
    )]
    pub async fn revocations() {}

    /// The public keys: the active signing key and those still inside their overlap window.
    #[utoipa::path(
        get, path = "/.well-known/jwks.json", tag = "discovery",
        responses((
            status = 200, description = "The JWK set (`Cache-Control: public, max-age=300`).", body = JwkSet,
            headers(("Cache-Control" = String, description = "`public, max-age=300`."))
        )),
    )]
    pub async fn jwks() {}

    /// The authorization-server metadata under the OpenID Connect name (the same document as
    /// `/.well-known/oauth-authorization-server`; keycard issues no ID tokens).
    #[utoipa::path(
        get, path = "/.well-known/openid-configuration", tag = "discovery",
        responses((status = 200, description = "The metadata document.", body = Discovery)),
    )]
    pub async fn openid_configuration() {}

    /// Authorization-server metadata (RFC 8414): issuer, JWKS, the OAuth endpoints and exactly
    /// the grants, client authentication methods and algorithms they take; keycard's JSON
    /// endpoints as `keycard_…` extension fields.
    #[utoipa::path(
        get, path = "/.well-known/oauth-authorization-server", tag = "discovery",
        responses((status = 200, description = "The metadata document.", body = Discovery)),
    )]
    pub async fn authorization_server() {}

    /// The OAuth 2.0 token endpoint (RFC 6749 §3.2).
    ///
    /// `refresh_token`: the rotation of `/auth/refresh` (reuse detection, family revocation), for
    /// the public client `keycard` that owns every session of keycard's login.
    /// `client_credentials`: a registered client's own access token (`sub` = `client_id` = its
    /// id, `scope`, `sid` = its grant), no refresh token. `password`: keycard's login, only when
    /// the `oauth_password_grant` setting is on. Errors are RFC 6749 §5.2's: 400 `invalid_grant`
    /// (a refresh token invalid, reused or revoked, a wrong password), 401 `invalid_client` with
    /// `WWW-Authenticate: Basic`, 400 `unauthorized_client`, `unsupported_grant_type`,
    /// `invalid_scope`. `Cache-Control: no-store`.
    #[utoipa::path(
        post, path = "/oauth/token", tag = "oauth",
        request_body(content = TokenForm, content_type = "application/x-www-form-urlencoded"),
        security((), ("client_basic" = [])),
        params(("DPoP" = Option<String>, Header, description = "A DPoP proof (RFC 9449) for this request: the session (or client token) is bound to its key, the token response says `token_type: DPoP` and the access tokens carry `cnf.jkt`. Required with `dpop_required = \"all\"` or for the clients in `dpop_required_clients`. 400 `invalid_dpop_proof`, or `use_dpop_nonce` with the nonce to use in `DPoP-Nonce` when `dpop_nonce` is on.")),
        responses((status = 200, description = "Tokens (RFC 6749 §5.1).", body = OAuthTokenResponse)),
    )]
    pub async fn oauth_token() {}

    /// Token revocation (RFC 7009).
    ///
    /// A refresh token revokes its session (the whole family); an access token its session, or
    /// for a client's own token its grant; each onto the revocation feed. Only the client a
    /// token was issued to revokes it. Unknown, expired or another client's tokens change
    /// nothing and get the same 200.
    #[utoipa::path(
        post, path = "/oauth/revoke", tag = "oauth",
        request_body(content = TokenActionForm, content_type = "application/x-www-form-urlencoded"),
        security((), ("client_basic" = [])),
        responses((status = 200, description = "Revoked, or nothing to revoke (empty body).")),
    )]
    pub async fn oauth_revoke() {}

    /// Token introspection (RFC 7662), for registered clients only.
    ///
    /// `{"active": false}` and nothing else for an expired, revoked, unknown or malformed token;
    /// for a live one its claims, `token_type` (`Bearer` or `refresh_token`) and `sid`.
    #[utoipa::path(
        post, path = "/oauth/introspect", tag = "oauth",
        request_body(content = TokenActionForm, content_type = "application/x-www-form-urlencoded"),
        security(("client_basic" = [])),
        responses((status = 200, description = "The token's state.", body = Introspection)),
    )]
    pub async fn oauth_introspect() {}

    /// Liveness: the process is up.
    #[utoipa::path(
        get, path = "/healthz", tag = "operations",
        responses((status = 200, description = "`{\"status\": \"ok\"}`.", body = ProbeStatus)),
    )]
    pub async fn healthz() {}

    /// Readiness: the store answers (and with `signing_backend = "transit"`, Transit does: 503
    /// while access tokens cannot be signed).
    #[utoipa::path(
        get, path = "/readyz", tag = "operations",
        responses((status = 200, description = "`{\"status\": \"ready\"}`.", body = ProbeStatus)),
    )]
    pub async fn readyz() {}

    /// Prometheus metrics (text exposition format). Opt-in: served here only when `metrics_token`
    /// is set, to requests carrying it as a Bearer token; or on the separate `metrics_bind`
    /// address without authentication.
    #[utoipa::path(
        get, path = "/metrics", tag = "operations",
        security(("bearer" = [])),
        responses((status = 200, description = "The metrics.", body = String, content_type = "text/plain; version=0.0.4; charset=utf-8")),
    )]
    pub async fn metrics() {}

    /// The demo page.
    #[utoipa::path(
        get, path = "/", tag = "web",
        responses((status = 200, description = "HTML page.", body = String, content_type = "text/html; charset=utf-8")),
    )]
    pub async fn index() {}

    /// `keycard.js`, the dependency-free browser client (an ES module).
    #[utoipa::path(
        get, path = "/keycard.js", tag = "web",
        responses((status = 200, description = "JavaScript module.", body = String, content_type = "application/javascript")),
    )]
    pub async fn keycard_js() {}

    /// The demo page's script.
    #[utoipa::path(
        get, path = "/demo.js", tag = "web",
        responses((status = 200, description = "JavaScript module.", body = String, content_type = "application/javascript")),
    )]
    pub async fn demo_js() {}

    /// The demo page's stylesheet.
    #[utoipa::path(
        get, path = "/style.css", tag = "web",
        responses((status = 200, description = "Stylesheet.", body = String, content_type = "text/css; charset=utf-8")),
    )]
    pub async fn style_css() {}

    /// This document (OpenAPI 3.1).
    #[utoipa::path(
        get, path = "/openapi.json", tag = "web",
        responses((status = 200, description = "The OpenAPI document.", body = Object, content_type = "application/json")),
    )]
    pub async fn openapi_json() {}

    /// The interactive reference of this document (Swagger UI, served from this server).
    #[utoipa::path(
        get, path = "/docs", tag = "web",
        responses((status = 200, description = "HTML page.", body = String, content_type = "text/html; charset=utf-8")),
    )]
    pub async fn docs() {}

    /// The docs page's script: starts Swagger UI on `/openapi.json`.
    #[utoipa::path(
        get, path = "/docs/docs.js", tag = "web",
        responses((status = 200, description = "JavaScript.", body = String, content_type = "application/javascript")),
    )]
    pub async fn docs_js() {}

    /// Swagger UI (`swagger-ui-dist`, vendored), for the docs page.
    #[utoipa::path(
        get, path = "/docs/swagger-ui-bundle.js", tag = "web",
        responses((status = 200, description = "JavaScript.", body = String, content_type = "application/javascript")),
    )]
    pub async fn swagger_ui_js() {}

    /// Swagger UI's stylesheet, for the docs page.
    #[utoipa::path(
        get, path = "/docs/swagger-ui.css", tag = "web",
        responses((status = 200, description = "Stylesheet.", body = String, content_type = "text/css; charset=utf-8")),
    )]
    pub async fn swagger_ui_css() {}
}

/// The error codes each operation can answer, beyond `server_error` (500), which any can.
/// Every operation can also answer 400 `invalid_request` (a token in the query string).
pub const ERRORS: &[(&str, &str, &[ErrorCode])] = {
    use ErrorCode::*;
    &[
        (
            "post",
            "/auth/signup",
            &[InvalidRequest, PayloadTooLarge, EmailTaken, WeakPassword, RateLimited, TemporarilyUnavailable],
        ),
        (
            "post",
            "/auth/login",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidCredentials,
                Forbidden,
                EmailNotVerified,
                InvalidDpopProof,
                UseDpopNonce,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        (
            "post",
            "/auth/refresh",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidGrant,
                RefreshTokenReused,
                InvalidDpopProof,
                UseDpopNonce,
                CsrfFailed,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        (
            "post",
            "/auth/logout",
            &[InvalidRequest, PayloadTooLarge, InvalidToken, InvalidGrant, CsrfFailed, TemporarilyUnavailable],
        ),
        ("get", "/auth/me", &[InvalidToken, TemporarilyUnavailable]),
        ("get", "/auth/sessions", &[InvalidToken, TemporarilyUnavailable]),
        ("delete", "/auth/sessions/{id}", &[InvalidRequest, InvalidToken, NotFound, TemporarilyUnavailable]),
        (
            "post",
            "/auth/password",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidToken,
                InvalidCredentials,
                InsufficientUserAuthentication,
                WeakPassword,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        ("post", "/auth/password/forgot", &[InvalidRequest, PayloadTooLarge, RateLimited, TemporarilyUnavailable]),
        (
            "post",
            "/auth/password/reset",
            &[InvalidRequest, PayloadTooLarge, InvalidResetToken, WeakPassword, RateLimited, TemporarilyUnavailable],
        ),
        (
            "post",
            "/auth/email",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidToken,
                InvalidCredentials,
                InsufficientUserAuthentication,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        (
            "post",
            "/auth/email/verify",
            &[InvalidRequest, PayloadTooLarge, InvalidVerificationToken, RateLimited, TemporarilyUnavailable],
        ),
        ("post", "/auth/email/verify/resend", &[InvalidRequest, PayloadTooLarge, RateLimited, TemporarilyUnavailable]),
        (
            "post",
            "/auth/email/confirm",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidEmailChangeToken,
                EmailTaken,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        (
            "post",
            "/auth/email/cancel",
            &[InvalidRequest, PayloadTooLarge, InvalidEmailChangeToken, RateLimited, TemporarilyUnavailable],
        ),
        (
            "delete",
            "/auth/account",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidToken,
                InvalidCredentials,
                InsufficientUserAuthentication,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        (
            "post",
            "/oauth/token",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidClient,
                InvalidGrant,
                UnauthorizedClient,
                UnsupportedGrantType,
                InvalidScope,
                InvalidDpopProof,
                UseDpopNonce,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        (
            "post",
            "/oauth/revoke",
            &[InvalidRequest, PayloadTooLarge, InvalidClient, RateLimited, TemporarilyUnavailable],
        ),
        (
            "post",
            "/oauth/introspect",
            &[InvalidRequest, PayloadTooLarge, InvalidClient, RateLimited, TemporarilyUnavailable],
        ),
        (
            "post",
            "/auth/mfa/verify",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidMfa,
                InvalidDpopProof,
                UseDpopNonce,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        (
            "post",
            "/auth/step-up",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidToken,
                InvalidCredentials,
                InvalidMfa,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        ("get", "/auth/mfa", &[InvalidToken, TemporarilyUnavailable]),
        ("post", "/auth/mfa/totp", &[InvalidToken, InsufficientUserAuthentication, TemporarilyUnavailable]),
        (
            "post",
            "/auth/mfa/totp/confirm",
            &[InvalidRequest, PayloadTooLarge, InvalidToken, InvalidMfa, NotFound, TemporarilyUnavailable],
        ),
        (
            "delete",
            "/auth/mfa/factors/{id}",
            &[InvalidRequest, InvalidToken, InsufficientUserAuthentication, NotFound, TemporarilyUnavailable],
        ),
        (
            "post",
            "/auth/mfa/recovery-codes",
            &[InvalidToken, InsufficientUserAuthentication, NotFound, TemporarilyUnavailable],
        ),
        (
            "patch",
            "/auth/mfa/factors/{id}",
            &[InvalidRequest, PayloadTooLarge, InvalidToken, NotFound, TemporarilyUnavailable],
        ),
        ("post", "/auth/step-up/options", &[InvalidToken, NotFound, TemporarilyUnavailable]),
        (
            "post",
            "/auth/passkeys/register/options",
            &[InvalidToken, InsufficientUserAuthentication, TemporarilyUnavailable],
        ),
        (
            "post",
            "/auth/passkeys/register",
            &[InvalidRequest, PayloadTooLarge, InvalidToken, InvalidMfa, TemporarilyUnavailable],
        ),
        ("post", "/auth/passkeys/login/options", &[RateLimited, TemporarilyUnavailable]),
        (
            "post",
            "/auth/passkeys/login",
            &[
                InvalidRequest,
                PayloadTooLarge,
                InvalidCredentials,
                Forbidden,
                EmailNotVerified,
                InvalidDpopProof,
                UseDpopNonce,
                RateLimited,
                TemporarilyUnavailable,
            ],
        ),
        ("get", "/metrics", &[InvalidToken, NotFound]),
        ("get", "/auth/revocations", &[InvalidRequest, TemporarilyUnavailable]),
        ("get", "/readyz", &[TemporarilyUnavailable]),
    ]
};

/// An example description per code, for the examples of the error responses.
fn example_description(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::InvalidRequest => "the request is malformed (bad JSON, unknown field, token in the URL)",
        ErrorCode::InvalidCredentials => "email or password is incorrect",
        ErrorCode::InvalidToken => "the access token is missing, invalid, expired or revoked",
        ErrorCode::InvalidGrant => "the refresh token is invalid, expired or revoked",
        ErrorCode::RefreshTokenReused => "this refresh token was already used; the session has been revoked",
        ErrorCode::InvalidResetToken => {
            "the reset link is invalid, expired, already used or replaced by a newer one; ask for a new one"
        }
        ErrorCode::InvalidVerificationToken => {
            "the verification link is invalid, expired, already used or replaced by a newer one; ask for a new one"
        }
        ErrorCode::InvalidEmailChangeToken => {
            "the link is invalid, expired, already used, replaced by a newer change, or its change was cancelled"
        }
        ErrorCode::EmailNotVerified => "the account's address is not verified yet",
        ErrorCode::InsufficientUserAuthentication => {
            "this change needs a recent sign-in with your second factor: POST /auth/step-up with a code"
        }
        ErrorCode::InvalidMfa => "the code is wrong, expired or already used",
        ErrorCode::CsrfFailed => "the X-CSRF-Token header must match the CSRF cookie",
        ErrorCode::Forbidden => "not allowed",
        ErrorCode::NotFound => "no such resource",
        ErrorCode::MethodNotAllowed => "this endpoint does not accept this method",
        ErrorCode::EmailTaken => "an account with this email exists",
        ErrorCode::PayloadTooLarge => "the request body is too large",
        ErrorCode::WeakPassword => "the password does not meet the policy",
        ErrorCode::RateLimited => "too many requests; slow down",
        ErrorCode::ServerError => "internal error",
        ErrorCode::TemporarilyUnavailable => "the token store is unavailable; retry shortly",
        ErrorCode::InvalidClient => "client authentication failed",
        ErrorCode::UnauthorizedClient => "the public client keycard cannot use client_credentials",
        ErrorCode::UnsupportedGrantType => "the grant type \"authorization_code\" is not supported",
        ErrorCode::InvalidScope => "the scope \"admin\" is not registered for this client",
        ErrorCode::InvalidDpopProof => "DPoP proof htu does not match the request URI",
        ErrorCode::UseDpopNonce => "a DPoP nonce is required",
        _ => "error",
    }
}

/// The `bearer` (access token), `refresh_cookie` and `csrf_token` security schemes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = HttpBuilder::new()
            .scheme(HttpAuthScheme::Bearer)
            .bearer_format("JWT")
            .description(Some(
                "An access token (JWS, `typ: at+jwt`) from a login or refresh. Failures are 401 with \
                 `WWW-Authenticate: Bearer error=\"invalid_token\"`. A DPoP-bound token (one with \
                 `cnf.jkt`, from a login with a DPoP proof) is sent as `Authorization: DPoP <token>` \
                 with a proof of its key (with `ath`) in the `DPoP` header, never as Bearer: failures \
                 are 401 with `WWW-Authenticate: DPoP error=\"invalid_token\"` (or \
                 `invalid_dpop_proof`, `use_dpop_nonce`), `algs=\"EdDSA Ed25519 ES256\"`.",
            ))
            .build();
        components.add_security_scheme("bearer", SecurityScheme::Http(bearer));
        let basic = HttpBuilder::new()
            .scheme(HttpAuthScheme::Basic)
            .description(Some(
                "`client_secret_basic` (RFC 6749 §2.3.1): a registered client's id and secret, each \
                 form-urlencoded, as HTTP Basic credentials. The form may carry `client_secret_post` \
                 or `private_key_jwt` credentials instead.",
            ))
            .build();
        components.add_security_scheme("client_basic", SecurityScheme::Http(basic));
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                "__Secure-keycard_refresh",
                "The HTTP-only refresh cookie of cookie delivery (`keycard_refresh` when the server \
                 runs without Secure cookies). Always together with `csrf_token`.",
            ))),
        );
        components.add_security_scheme(
            "csrf_token",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-CSRF-Token",
                "Must equal the readable `__Host-keycard_csrf` cookie (double submit).",
            ))),
        );
    }
}

/// Optional request bodies (`Option<T>`, e.g. refresh and logout, whose cookie clients send no
/// body) as `T` with `required: false`, instead of `oneOf: [T, null]` (a JSON `null` body).
struct OptionalBodies;

impl Modify for OptionalBodies {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let is_null = |schema: &RefOr<Schema>| matches!(schema, RefOr::T(Schema::Object(o)) if o.schema_type == SchemaType::Type(Type::Null));
        for item in openapi.paths.paths.values_mut() {
            for operation in [&mut item.get, &mut item.post, &mut item.delete].into_iter().flatten() {
                let Some(RefOr::T(body)) = &mut operation.request_body else { continue };
                if body.required == Some(Required::True) {
                    continue;
                }
                body.required = Some(Required::False);
                for content in body.content.values_mut() {
                    let RefOr::T(content) = content else { continue };
                    if let Some(RefOr::T(Schema::OneOf(one_of))) = &content.schema {
                        let mut rest = one_of.items.iter().filter(|s| !is_null(s));
                        if let (Some(only), None) = (rest.next(), rest.next()) {
                            content.schema = Some(only.clone());
                        }
                    }
                }
            }
        }
    }
}

/// Adds the error responses: those of [`ERRORS`], plus 400 `invalid_request` and 500
/// `server_error` on every operation. One response per status, listing its codes, with the
/// `ErrorBody` schema and an example per code; 401s carry `WWW-Authenticate`, 429s and 503s
/// `Retry-After`.
struct ErrorResponses;

impl Modify for ErrorResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for (path, item) in openapi.paths.paths.iter_mut() {
            let operations = [
                ("get", &mut item.get),
                ("post", &mut item.post),
                ("patch", &mut item.patch),
                ("delete", &mut item.delete),
            ];
            for (method, operation) in operations {
                let Some(operation) = operation else { continue };
                let mut codes: Vec<ErrorCode> = ERRORS
                    .iter()
                    .filter(|(m, p, _)| *m == method && p == path)
                    .flat_map(|(_, _, codes)| codes.iter().copied())
                    .collect();
                codes.extend([ErrorCode::InvalidRequest, ErrorCode::ServerError]);
                let mut by_status: BTreeMap<u16, Vec<ErrorCode>> = BTreeMap::new();
                for code in codes {
                    // OAuth's `invalid_grant` is a 400 (RFC 6749 §5.2); keycard's JSON API's a 401.
                    let status = if path.starts_with("/oauth/") && code == ErrorCode::InvalidGrant {
                        400
                    } else {
                        code.status()
                    };
                    let list = by_status.entry(status).or_default();
                    if !list.contains(&code) {
                        list.push(code);
                    }
                }
                for (status, codes) in by_status {
                    operation.responses.responses.insert(status.to_string(), RefOr::T(error_response(status, &codes)));
                }
            }
        }
    }
}

fn error_response(status: u16, codes: &[ErrorCode]) -> utoipa::openapi::Response {
    let names: Vec<String> = codes.iter().map(|c| format!("`{c}`")).collect();
    let mut content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody")));
    for code in codes {
        let value = serde_json::json!({"error": code.as_str(), "error_description": example_description(*code)});
        content = content.examples_from_iter([(
            code.as_str().to_owned(),
            ExampleBuilder::new().summary(format!("{code} ({status})")).value(Some(value)).build(),
        )]);
    }
    let mut response = ResponseBuilder::new()
        .description(format!("Error: {}.", names.join(", ")))
        .content("application/json", content.build());
    let string = || ObjectBuilder::new().schema_type(Type::String).build();
    if status == 401 {
        response = response.header(
            "WWW-Authenticate",
            HeaderBuilder::new()
                .schema(Some(string()))
                .description(Some(
                    "`Bearer error=\"invalid_token\"` for `invalid_token`, `Basic realm=\"keycard\"` for \
                     `invalid_client`, `Bearer` otherwise.",
                ))
                .build(),
        );
    }
    if status == 429 || status == 503 {
        response = response.header(
            "Retry-After",
            HeaderBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Integer).minimum(Some(0)).build()))
                .description(Some("Seconds to wait before retrying."))
                .build(),
        );
    }
    response.build()
}
