//! Issuing: an access token for a session, and the token response in the chosen delivery.

use axum::Json;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::amr::Amr;
use keycard_core::claims::AccessClaims;
use keycard_core::wire::{Delivery, TokenResponse};
use keycard_store::SessionRecord;

use crate::error::ApiError;
use crate::sessions::Issued;
use crate::state::AppState;
use crate::{cookies, devices};

/// Signs an access token for `session`, valid from `now` (with Transit: 503 when it cannot).
pub async fn access_token(state: &AppState, session: &SessionRecord, now: i64) -> Result<String, ApiError> {
    state.sign(&user_claims(state, session, now)).await
}

/// The claims of a user's access token for `session`, valid from `now`.
pub fn user_claims(state: &AppState, session: &SessionRecord, now: i64) -> AccessClaims {
    let mut claims =
        claims_for(state, &session.user_id, &session.id, session.email_verified, session.amr, session.auth_time, now);
    claims.cnf = session.dpop_jkt.clone().map(|jkt| keycard_core::dpop::Confirmation { jkt });
    claims
}

/// The claims of `user_id`'s access token for session `session_id`, valid from `now`: how and
/// when the user signed in (`amr`, `auth_time`) as the session keeps them.
pub fn claims_for(
    state: &AppState,
    user_id: &str,
    session_id: &str,
    email_verified: bool,
    amr: Amr,
    auth_time: i64,
    now: i64,
) -> AccessClaims {
    let c = &state.config;
    let mut claims = AccessClaims::new(&c.issuer, &c.audience, user_id, session_id, now, c.access_ttl);
    claims.client_id = Some(crate::oauth::PUBLIC_CLIENT.to_owned());
    claims.amr = amr;
    claims.auth_time = Some(auth_time);
    if c.email_verification != crate::email::EmailVerification::Off {
        claims.email_verified = Some(email_verified);
    }
    claims
}

/// Whether two sessions give the same access-token claims (those [`user_claims`] reads): an
/// access token signed for one serves the other.
pub fn same_claims(a: &SessionRecord, b: &SessionRecord) -> bool {
    a.id == b.id
        && a.user_id == b.user_id
        && a.email_verified == b.email_verified
        && a.amr == b.amr
        && a.auth_time == b.auth_time
        && a.dpop_jkt == b.dpop_jkt
}

/// The 200 token response: the access token signed for the session in the body; the refresh
/// token in the body or in the HTTP-only cookie (with a fresh CSRF token), per `delivery`;
/// `device_token` (a login's, for body delivery) in the body.
pub fn token_response(
    state: &AppState,
    jar: CookieJar,
    issued: Issued,
    delivery: Delivery,
    device_token: Option<String>,
) -> Result<Response, ApiError> {
    let Issued { session, refresh, now, access_token: access } = issued;
    let refresh_expires_in = session.idle_expires_at.min(session.absolute_expires_at) - now;
    let mut body = TokenResponse {
        access_token: access,
        token_type: crate::dpop::token_type(session.dpop_jkt.is_some()).into(),
        expires_in: state.config.access_ttl,
        session_id: session.id.clone(),
        refresh_expires_in,
        refresh_token: None,
        csrf_token: None,
        device_token,
    };
    match delivery {
        Delivery::Body => {
            body.refresh_token = Some(refresh.expose().to_owned());
            Ok((jar, Json(body)).into_response())
        }
        Delivery::Cookie => {
            let csrf = cookies::new_csrf_token();
            let jar = cookies::set_session_cookies(jar, &state.config, refresh.expose(), &csrf, refresh_expires_in);
            body.csrf_token = Some(csrf);
            Ok((jar, Json(body)).into_response())
        }
    }
}

/// The answer to a login: the token response, plus a fresh device token for the client (the
/// device cookie with cookie delivery, `device_token` in the body with body delivery).
pub fn login_response(
    state: &AppState,
    jar: CookieJar,
    issued: Issued,
    user_id: &str,
    delivery: Delivery,
) -> Result<Response, ApiError> {
    let device_token = devices::issue(state.device_key(), user_id, issued.now);
    let (jar, body_device) = match delivery {
        Delivery::Cookie => {
            (cookies::set_device_cookie(jar, &state.config, device_token, state.config.device_ttl), None)
        }
        Delivery::Body => (jar, Some(device_token)),
    };
    token_response(state, jar, issued, delivery, body_device)
}
