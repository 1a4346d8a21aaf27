//! `POST /auth/refresh` (rotation with reuse detection) and `POST /auth/logout`.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum_extra::extract::CookieJar;
use keycard_core::ErrorCode;
use keycard_core::refresh::RefreshToken;
use keycard_core::wire::{Delivery, LogoutRequest, LogoutScope, RefreshRequest};
use keycard_store::{AuditEvent, RotateOutcome, Rotation};

use crate::cookies;
use crate::error::ApiError;
use crate::extract::{Authenticated, ClientInfo, OptionalJson};
use crate::issue;
use crate::ratelimit::Rule;
use crate::state::{AppState, log_audit};

/// Where a presented refresh token came from: the body (no CSRF needed: no ambient credential)
/// or the cookie (CSRF double-submit and Origin checked).
fn presented_refresh(
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

/// Rotates a refresh token: the presented one becomes used, a new pair is issued.
pub async fn refresh(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    client: ClientInfo,
    OptionalJson(req): OptionalJson<RefreshRequest>,
) -> Result<Response, ApiError> {
    state.limits.check(Rule::RefreshIp, &client.rate_key()).await?;
    let Some((raw, delivery)) = presented_refresh(req.refresh_token, &headers, &jar, &state)? else {
        return Err(ApiError::new(ErrorCode::InvalidGrant, "no refresh token was presented"));
    };
    let presented = RefreshToken::parse(&raw).ok_or_else(ApiError::invalid_grant)?;
    let replacement = RefreshToken::generate();
    let now = keycard_core::now_unix();
    let c = &state.config;
    let rotation = Rotation {
        presented: presented.hash(),
        replacement: replacement.hash(),
        now,
        idle_ttl: c.idle_ttl,
        reuse_interval: c.reuse_interval,
        ip: client.ip,
        user_agent: client.user_agent,
    };
    match state.store.rotate_refresh(&rotation).await? {
        RotateOutcome::Rotated(session) => {
            let bound = c.refresh_binding.matches(
                session.user_agent.as_deref(),
                session.ip.as_deref(),
                rotation.user_agent.as_deref(),
                rotation.ip.as_deref(),
            );
            if !bound {
                // Another device presents this session's token: it was stolen, or moved. Either
                // way the session ends.
                state.store.revoke_session(&session.user_id, &session.id, "binding_mismatch", now).await?;
                let mut event = rotation.audit_event("session_revoked", &session.user_id, &session.id);
                event.detail = Some(format!("refresh binding ({:?}) mismatch", c.refresh_binding).to_lowercase());
                state.audit(event).await;
                metrics::counter!("keycard_revocations_total", "reason" => "binding_mismatch").increment(1);
                let err = ApiError::new(
                    ErrorCode::InvalidGrant,
                    "this session is bound to another device and has been revoked",
                );
                return Ok((cookies::clear_session_cookies(jar, c), err).into_response());
            }
            metrics::counter!("keycard_refreshes_total", "outcome" => "rotated").increment(1);
            // The store wrote the audit row in the rotation's transaction.
            log_audit("refresh", Some(&session.user_id), Some(&session.id), rotation.ip.as_deref(), None);
            issue::token_response(&state, jar, &session, &replacement, delivery, None, now)
        }
        RotateOutcome::Reused { session_id, user_id } => {
            tracing::warn!(session_id = %session_id, "refresh token reuse detected; session revoked");
            metrics::counter!("keycard_refreshes_total", "outcome" => "reused").increment(1);
            metrics::counter!("keycard_revocations_total", "reason" => "refresh_token_reused").increment(1);
            log_audit("refresh_token_reused", Some(&user_id), Some(&session_id), rotation.ip.as_deref(), None);
            let err = ApiError::new(
                ErrorCode::RefreshTokenReused,
                "this refresh token was already used; the session has been revoked",
            );
            Ok((cookies::clear_session_cookies(jar, c), err).into_response())
        }
        RotateOutcome::Invalid => {
            metrics::counter!("keycard_refreshes_total", "outcome" => "invalid").increment(1);
            Err(ApiError::invalid_grant())
        }
    }
}

/// Ends this session, all the user's sessions, or all but this one.
pub async fn logout(
    State(state): State<AppState>,
    headers: HeaderMap,
    jar: CookieJar,
    client: ClientInfo,
    OptionalJson(req): OptionalJson<LogoutRequest>,
) -> Result<Response, ApiError> {
    let now = keycard_core::now_unix();
    let (user_id, session_id) = if headers.contains_key(axum::http::header::AUTHORIZATION) {
        let token = crate::extract::bearer_token_from(&headers)?;
        let auth = Authenticated::from_token(&state, token).await?;
        (auth.user.id, auth.claims.sid)
    } else {
        let Some((raw, _)) = presented_refresh(req.refresh_token, &headers, &jar, &state)? else {
            return Err(ApiError::new(ErrorCode::InvalidGrant, "a refresh token or a Bearer access token is required"));
        };
        let token = RefreshToken::parse(&raw).ok_or_else(ApiError::invalid_grant)?;
        let session = state.store.session_by_refresh(&token.hash(), now).await?;
        let Some(session) = session else {
            // Nothing left to end; still clear whatever cookies the browser holds.
            let err = ApiError::invalid_grant();
            return Ok((cookies::clear_session_cookies(jar, &state.config), err).into_response());
        };
        (session.user_id, session.id)
    };
    let scope = req.scope.unwrap_or_default();
    let revoked = match scope {
        LogoutScope::Local => {
            let done = state.store.revoke_session(&user_id, &session_id, "logout", now).await?;
            if done { vec![session_id.clone()] } else { vec![] }
        }
        LogoutScope::Global => state.store.revoke_user_sessions(&user_id, None, "logout_global", now).await?,
        LogoutScope::Others => {
            state.store.revoke_user_sessions(&user_id, Some(&session_id), "logout_others", now).await?
        }
    };
    state
        .audit(AuditEvent {
            at: now,
            kind: "logout".into(),
            user_id: Some(user_id),
            session_id: Some(session_id),
            ip: client.ip,
            user_agent: client.user_agent,
            detail: Some(format!("scope={scope:?} revoked={}", revoked.len()).to_lowercase()),
        })
        .await;
    metrics::counter!("keycard_revocations_total", "reason" => "logout").increment(revoked.len() as u64);
    let jar = if scope == LogoutScope::Others { jar } else { cookies::clear_session_cookies(jar, &state.config) };
    Ok((jar, StatusCode::NO_CONTENT).into_response())
}
