//! The HTTP API v1 routes, a file named after each URL (`signup.rs` is `POST /auth/signup`), and
//! the small shared helpers of handlers.

mod account;
mod email;
mod email_cancel;
mod email_confirm;
mod email_verify;
mod email_verify_resend;
mod health;
mod login;
mod logout;
mod me;
mod mfa;
mod oauth_introspect;
mod oauth_revoke;
mod oauth_token;
mod passkeys;
mod password;
mod password_forgot;
mod password_reset;
mod refresh;
mod revocations;
mod sessions;
mod signup;
mod web;
mod well_known;

use axum::Router;
use axum::http::HeaderMap;
use axum::routing::{delete, get, post};
use axum_extra::extract::CookieJar;
use keycard_core::wire::Delivery;
use keycard_core::wire::UserInfo;
use time::OffsetDateTime;
use unicode_normalization::UnicodeNormalization as _;

use crate::cookies;
use crate::error::ApiError;
use crate::state::AppState;

/// Every route of the API, without middleware.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/auth/signup", post(signup::signup))
        .route("/auth/login", post(login::login))
        .route("/auth/refresh", post(refresh::refresh))
        .route("/auth/logout", post(logout::logout))
        .route("/auth/me", get(me::me))
        .route("/auth/sessions", get(sessions::list_sessions))
        .route("/auth/sessions/{id}", delete(sessions::revoke_session))
        .route("/auth/password", post(password::change_password))
        .route("/auth/password/forgot", post(password_forgot::forgot))
        .route(crate::reset::RESET_PATH, get(web::reset_page).post(password_reset::reset))
        .route("/reset.js", get(web::reset_js))
        .route("/auth/email", post(email::change_email))
        .route(crate::email::VERIFY_PATH, post(email_verify::verify))
        .route("/auth/email/verify/resend", post(email_verify_resend::resend))
        .route(crate::email::CONFIRM_PATH, post(email_confirm::confirm))
        .route(crate::email::CANCEL_PATH, post(email_cancel::cancel))
        .route(crate::email::VERIFY_PATH, get(web::verify_page))
        .route(crate::email::CONFIRM_PATH, get(web::email_confirm_page))
        .route(crate::email::CANCEL_PATH, get(web::email_cancel_page))
        .route("/link.js", get(web::link_js))
        .route("/auth/account", delete(account::delete_account))
        .route("/auth/mfa", get(mfa::list))
        .route("/auth/mfa/verify", post(mfa::verify))
        .route("/auth/mfa/totp", post(mfa::begin_totp))
        .route("/auth/mfa/totp/confirm", post(mfa::confirm_totp))
        .route("/auth/mfa/factors/{id}", delete(mfa::remove).patch(mfa::rename))
        .route("/auth/mfa/recovery-codes", post(mfa::regenerate_codes))
        .route("/auth/step-up", post(mfa::step_up))
        .route("/auth/step-up/options", post(passkeys::step_up_options))
        .route("/auth/passkeys/register/options", post(passkeys::register_options))
        .route("/auth/passkeys/register", post(passkeys::register))
        .route("/auth/passkeys/login/options", post(passkeys::login_options))
        .route("/auth/passkeys/login", post(passkeys::login))
        .route("/auth/revocations", get(revocations::feed))
        .route("/oauth/token", post(oauth_token::token))
        .route("/oauth/revoke", post(oauth_revoke::revoke))
        .route("/oauth/introspect", post(oauth_introspect::introspect))
        .route("/.well-known/jwks.json", get(well_known::jwks))
        .route("/.well-known/openid-configuration", get(well_known::openid_configuration))
        .route("/.well-known/oauth-authorization-server", get(well_known::authorization_server))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/", get(web::index))
        .route("/keycard.js", get(web::keycard_js))
        .route("/demo.js", get(web::demo_js))
        .route("/style.css", get(web::style_css))
        .route("/openapi.json", get(crate::openapi::openapi_json))
        .route("/docs", get(crate::openapi::docs))
        .route("/docs/docs.js", get(crate::openapi::docs_js))
        .route("/docs/swagger-ui-bundle.js", get(crate::openapi::swagger_ui_js))
        .route("/docs/swagger-ui.css", get(crate::openapi::swagger_ui_css))
}

/// An email address, trimmed, NFKC-normalised and lower-cased, checked for a plausible shape.
/// NFKC folds compatibility forms (fullwidth `ａlice@example.com` is `alice@example.com`), so
/// look-alike spellings of one address cannot become two accounts.
pub struct Email(pub String);

impl Email {
    /// Longest address SMTP allows.
    const MAX_LEN: usize = 254;

    /// Normalises and checks `raw`; 400 `invalid_request` when it is not an address.
    pub fn parse(raw: &str) -> Result<Self, ApiError> {
        let email = raw.trim().nfkc().collect::<String>().to_lowercase();
        let valid = email.len() <= Self::MAX_LEN
            && !email.chars().any(|c| c.is_whitespace() || c.is_control())
            && matches!(email.split_once('@'), Some((local, domain))
                if !local.is_empty() && local.len() <= 64 && !domain.contains('@')
                   && domain.contains('.') && !domain.starts_with('.') && !domain.ends_with('.'));
        if valid { Ok(Self(email)) } else { Err(ApiError::bad_request("email must be a valid email address")) }
    }
}

/// Unix seconds as a UTC timestamp.
pub fn timestamp(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// The public view of a user.
pub fn user_info(id: &str, email: &str, email_verified: bool, created_at: i64) -> UserInfo {
    UserInfo { id: id.to_owned(), email: email.to_owned(), email_verified, created_at: timestamp(created_at) }
}

/// Where a presented refresh token came from: the body (no CSRF needed: no ambient credential)
/// or the cookie (CSRF double-submit and Origin checked).
pub(crate) fn presented_refresh(
    body_token: Option<String>,
    headers: &HeaderMap,
    jar: &CookieJar,
    state: &AppState,
) -> Result<Option<(String, Delivery)>, ApiError> {
    if let Some(token) = body_token {
        return Ok(Some((token, Delivery::Body)));
    }
    match cookies::refresh_cookie(jar, &state.config) {
        Some(token) => {
            cookies::check_csrf(headers, jar, &state.config)?;
            Ok(Some((token.to_owned(), Delivery::Cookie)))
        }
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::Email;

    #[test]
    fn emails_are_normalised() {
        assert_eq!(Email::parse("  Alice@Example.COM ").map(|e| e.0).ok(), Some("alice@example.com".into()));
    }

    #[test]
    fn compatibility_forms_are_one_address() {
        let plain = Email::parse("alice@example.com").map(|e| e.0).ok();
        for look_alike in ["\u{ff41}lice@example.com", "ALICE@EXAMPLE.COM", "alice@ｅxample.com"] {
            assert_eq!(Email::parse(look_alike).map(|e| e.0).ok(), plain, "{look_alike}");
        }
    }

    #[test]
    fn non_addresses_are_refused() {
        for bad in
            ["", "alice", "@example.com", "alice@", "alice@localhost", "a@b@c.com", "al ice@example.com", "a@.com"]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
    }
}
