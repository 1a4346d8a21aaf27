//! `POST /auth/signup` and `POST /auth/login`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::wire::{LoginRequest, SignupRequest, UserInfo};
use keycard_store::{AuditEvent, NewUser};

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{ApiJson, ClientInfo};
use crate::issue;
use crate::password::Passwords;
use crate::ratelimit::Rule;
use crate::routes::{Email, user_info};
use crate::state::AppState;

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
    let now = state.now();
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

/// Checks the password and starts a session (a new refresh-token family); the rules are in
/// [`crate::sessions::Sessions::login`].
pub async fn login(
    State(state): State<AppState>,
    jar: CookieJar,
    client: ClientInfo,
    ApiJson(req): ApiJson<LoginRequest>,
) -> Result<Response, ApiError> {
    let device = req.device_token.as_deref().or_else(|| cookies::device_cookie(&jar, &state.config));
    let (issued, user) = state.sessions().login(&req.email, req.password, device, &client).await?;
    issue::login_response(&state, jar, &issued, &user.id, req.delivery.unwrap_or_default())
}
