//! `POST /auth/signup` and `POST /auth/login`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::refresh::RefreshToken;
use keycard_core::wire::{Delivery, LoginRequest, SignupRequest, UserInfo};
use keycard_store::{AuditEvent, NewSession, NewUser, SessionRecord};

use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::issue;
use crate::password::{MAX_PASSWORD_BYTES, Passwords};
use crate::ratelimit::Rule;
use crate::routes::{Email, user_info};
use crate::state::AppState;
use crate::{cookies, devices};

/// Creates an account.
pub async fn signup(
    State(state): State<AppState>,
    client: ClientInfo,
    ApiJson(req): ApiJson<SignupRequest>,
) -> Result<Response, ApiError> {
    state.limits.check(Rule::SignupIp, &client.rate_key()).await?;
    let email = Email::parse(&req.email)?;
    Passwords::check_policy(&req.password)?;
    let password_hash = state.passwords.hash(req.password).await?;
    let now = keycard_core::now_unix();
    let user = NewUser { id: uuid::Uuid::new_v4().to_string(), email: email.0, password_hash, created_at: now };
    state.store.create_user(&user).await?;
    state
        .audit(AuditEvent {
            at: now,
            kind: "signup".into(),
            user_id: Some(user.id.clone()),
            ip: client.ip,
            user_agent: client.user_agent,
            ..Default::default()
        })
        .await;
    let info: UserInfo = user_info(&user.id, &user.email, user.created_at);
    Ok((StatusCode::CREATED, Json(info)).into_response())
}

/// Checks the password and starts a session (a new refresh-token family).
///
/// Throttling follows OWASP's device-cookie defence (`devices.rs`): attempts are limited per
/// IP; failures are counted per known device when the client presents a valid device token for
/// this account, and otherwise in one budget shared by every unknown device of the account. A
/// success clears its own count and hands the client a fresh device token.
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    // A malformed email cannot belong to an account: same answer as a wrong password.
    let email = Email::parse(&req.email).map(|e| e.0).unwrap_or_default();
    state.limits.check(Rule::LoginIp, &client.rate_key()).await?;
    let user = if email.is_empty() { None } else { state.store.user_by_email(&email).await? };
    let now = keycard_core::now_unix();
    let presented = req.device_token.as_deref().or_else(|| cookies::device_cookie(&jar, &state.config));
    let device = match (&user, presented) {
        (Some(user), Some(token)) => devices::verify(state.device_key(), token, &user.id, now, state.config.device_ttl),
        _ => None,
    };
    let failure_key = match &device {
        Some(device) => format!("login:device:{device}"),
        None => {
            state.limits.check_failures(Rule::LoginAccount, &email).await?;
            format!("login:account:{email}")
        }
    };
    state.limits.check_backoff(&failure_key).await?;
    let matched = if req.password.len() > MAX_PASSWORD_BYTES {
        false
    } else {
        state.passwords.verify(req.password, user.as_ref().map(|u| u.password_hash.clone())).await?
    };
    let user = match user {
        Some(user) if matched => user,
        other => {
            state.limits.record_failure(&failure_key).await?;
            if device.is_none() {
                state.limits.record_failures(Rule::LoginAccount, &email).await?;
            }
            metrics::counter!("keycard_logins_total", "outcome" => "failure").increment(1);
            state
                .audit(AuditEvent {
                    at: now,
                    kind: "login_failed".into(),
                    user_id: other.map(|u| u.id),
                    ip: client.ip,
                    user_agent: client.user_agent,
                    detail: Some(if device.is_some() { "known device" } else { "unknown device" }.into()),
                    ..Default::default()
                })
                .await;
            return Err(ApiError::invalid_credentials());
        }
    };
    state.limits.reset_failures(&failure_key).await?;
    metrics::counter!("keycard_logins_total", "outcome" => "success").increment(1);
    let (session, refresh) = start_session(&state, &user.id, &client, now).await?;
    state
        .audit(AuditEvent {
            at: now,
            kind: "login".into(),
            user_id: Some(user.id.clone()),
            session_id: Some(session.id.clone()),
            ip: client.ip,
            user_agent: client.user_agent,
            detail: device.is_none().then(|| "new device".into()),
        })
        .await;
    let delivery = req.delivery.unwrap_or_default();
    let device_token = devices::issue(state.device_key(), &user.id, now);
    let device_ttl = state.config.device_ttl;
    let (jar, body_device) = match delivery {
        Delivery::Cookie => (cookies::set_device_cookie(jar, &state.config, device_token, device_ttl), None),
        Delivery::Body => (jar, Some(device_token)),
    };
    issue::token_response(&state, jar, &session, &refresh, delivery, body_device, now)
}

async fn start_session(
    state: &AppState,
    user_id: &str,
    client: &ClientInfo,
    now: i64,
) -> Result<(SessionRecord, RefreshToken), ApiError> {
    let c = &state.config;
    let absolute_expires_at = now + c.absolute_ttl;
    let new = NewSession {
        id: uuid::Uuid::new_v4().to_string(),
        user_id: user_id.to_owned(),
        created_at: now,
        idle_expires_at: (now + c.idle_ttl).min(absolute_expires_at),
        absolute_expires_at,
        user_agent: client.user_agent.clone(),
        ip: client.ip.clone(),
    };
    let refresh = RefreshToken::generate();
    state.store.create_session(&new, &refresh.hash()).await?;
    let session = SessionRecord {
        id: new.id,
        user_id: new.user_id,
        created_at: now,
        last_used_at: now,
        idle_expires_at: new.idle_expires_at,
        absolute_expires_at,
        user_agent: new.user_agent,
        ip: new.ip,
    };
    Ok((session, refresh))
}
