//! The session: tokens held in memory, and the single-flight refresh.
//!
//! One async mutex guards the tokens. A caller that finds the access token due for refresh (or
//! rejected with 401 `invalid_token`) refreshes while holding it; everyone else waits and then
//! uses the new token. A generation counter, bumped on every change, tells a caller whose token
//! was rejected whether someone already refreshed since it read the token, so N concurrent
//! rejections cause one refresh, and the refresh token is presented once: rotation never trips
//! keycard's reuse detection. The refresh itself runs in a spawned task that owns the lock, so a
//! caller dropping its future (a timeout) cannot abort a rotation the server already made.
//!
//! A refresh that fails for a passing reason (429, 5xx, a network error) is tried again by the
//! [`crate::RetryPolicy`] while the lock is held, so concurrent callers share that one wait. Only
//! a 401 (`invalid_grant`, `refresh_token_reused`) ends the session. When the retries give up,
//! the session stays and no refresh is sent before the wait the server asked for
//! ([`ClientError::RefreshDeferred`] meanwhile, or the current token while it is still valid).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use keycard_core::wire::{RefreshRequest, TokenResponse};
use tokio::sync::{Mutex, OwnedMutexGuard};
use tokio::time::Instant;

use crate::client::Inner;
use crate::error::ClientError;
use crate::retry;

/// A secret string that `Debug` never prints.
#[derive(Clone)]
pub(crate) struct Secret(Arc<str>);

impl Secret {
    pub(crate) fn new(value: String) -> Self {
        Self(value.into())
    }

    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The tokens of a logged-in session.
#[derive(Debug)]
pub(crate) struct Tokens {
    pub(crate) access: Secret,
    pub(crate) refresh: Secret,
    pub(crate) session_id: String,
    /// When to refresh proactively (Unix ms by the client's clock): expiry minus the margin.
    pub(crate) refresh_at: i64,
    /// When the access token expires, as far as the client can tell (Unix ms by its clock).
    pub(crate) expires_at: i64,
}

impl Tokens {
    /// Tokens from a token response to a request sent at `sent_at` (Unix ms by the client's
    /// clock: the conservative start of the token's lifetime). The margin is at most half the
    /// lifetime, so short-lived tokens are not refreshed on every request.
    pub(crate) fn from_response(response: TokenResponse, sent_at: i64, margin: Duration) -> Option<Self> {
        let lifetime = Duration::from_secs(u64::try_from(response.expires_in).unwrap_or(0));
        let (refresh_at, expires_at) = due_times(sent_at, lifetime, margin);
        Some(Self {
            access: Secret::new(response.access_token),
            refresh: Secret::new(response.refresh_token?),
            session_id: response.session_id,
            refresh_at,
            expires_at,
        })
    }
}

/// When a token of `lifetime` got by a request sent at `sent_at` is due for refresh and when it
/// expires (Unix ms). The margin is at most half the lifetime.
fn due_times(sent_at: i64, lifetime: Duration, margin: Duration) -> (i64, i64) {
    let margin = margin.min(lifetime / 2);
    let expires_at = sent_at.saturating_add(millis(lifetime));
    (expires_at.saturating_sub(millis(margin)), expires_at)
}

/// `duration` in whole milliseconds, saturating.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The mutable session state.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    pub(crate) tokens: Option<Tokens>,
    /// Bumped whenever `tokens` changes (login, refresh, logout, session ended).
    pub(crate) generation: u64,
    /// The device token of the last successful login, sent with the next ones (kept across
    /// logouts): keycard never throttles a known device for failures from other devices.
    pub(crate) device_token: Option<Secret>,
    /// After a refresh gave up on a passing failure: no refresh request before this instant
    /// (the server's `Retry-After`, or the next backoff delay).
    pub(crate) refresh_not_before: Option<Instant>,
}

impl SessionState {
    pub(crate) fn set(&mut self, tokens: Option<Tokens>) {
        self.tokens = tokens;
        self.generation += 1;
        self.refresh_not_before = None;
    }

    /// Replaces the access token of the session held (a step-up's), keeping its refresh token.
    /// Counts as a change: a request refused with the old token retries with this one.
    pub(crate) fn replace_access(&mut self, access: Secret, sent_at: i64, lifetime: Duration, margin: Duration) {
        let Some(tokens) = self.tokens.as_mut() else { return };
        let (refresh_at, expires_at) = due_times(sent_at, lifetime, margin);
        tokens.access = access;
        tokens.refresh_at = refresh_at;
        tokens.expires_at = expires_at;
        self.generation += 1;
    }

    fn current(&self) -> Result<(Secret, u64), ClientError> {
        let tokens = self.tokens.as_ref().ok_or(ClientError::NotLoggedIn)?;
        Ok((tokens.access.clone(), self.generation))
    }
}

pub(crate) type SharedSession = Arc<Mutex<SessionState>>;

impl Inner {
    /// The access token to send now, refreshed first if it is due. If a proactive refresh fails
    /// for a transient reason while the token has not expired yet, the token is still used.
    pub(crate) async fn access_token(self: &Arc<Self>) -> Result<(Secret, u64), ClientError> {
        let state = self.session.clone().lock_owned().await;
        match &state.tokens {
            None => Err(ClientError::NotLoggedIn),
            Some(tokens) if self.clock.now_ms() < tokens.refresh_at => state.current(),
            Some(_) => self.refresh_in_task(state, true).await,
        }
    }

    /// After a 401 `invalid_token` for the token of `generation`: refresh unless someone
    /// already did, and return the token to retry with.
    pub(crate) async fn refresh_after_rejection(self: &Arc<Self>, generation: u64) -> Result<Secret, ClientError> {
        let state = self.session.clone().lock_owned().await;
        if state.generation != generation {
            return state.current().map(|(token, _)| token);
        }
        self.refresh_in_task(state, false).await.map(|(token, _)| token)
    }

    /// Forces a refresh now (still one at a time).
    pub(crate) async fn refresh_now(self: &Arc<Self>) -> Result<(), ClientError> {
        let state = self.session.clone().lock_owned().await;
        self.refresh_in_task(state, false).await.map(|_| ())
    }

    async fn refresh_in_task(
        self: &Arc<Self>,
        state: OwnedMutexGuard<SessionState>,
        keep_valid_on_failure: bool,
    ) -> Result<(Secret, u64), ClientError> {
        let inner = self.clone();
        tokio::spawn(async move { inner.refresh_locked(state, keep_valid_on_failure).await })
            .await
            .map_err(|_| ClientError::RefreshInterrupted)?
    }

    async fn refresh_locked(
        &self,
        mut state: OwnedMutexGuard<SessionState>,
        keep_valid_on_failure: bool,
    ) -> Result<(Secret, u64), ClientError> {
        let Some(tokens) = &state.tokens else { return Err(ClientError::NotLoggedIn) };
        let still_valid = |state: &SessionState, now: i64| {
            keep_valid_on_failure && state.tokens.as_ref().is_some_and(|t| now < t.expires_at)
        };
        // An earlier refresh gave up on a passing failure and said when to come back: until then
        // nobody asks keycard again (they would only be refused, or worsen an overload).
        if let Some(not_before) = state.refresh_not_before {
            let now = Instant::now();
            if now < not_before {
                if still_valid(&state, self.clock.now_ms()) {
                    return state.current();
                }
                return Err(ClientError::RefreshDeferred { retry_in: not_before - now });
            }
        }
        let refresh_token = tokens.refresh.expose().to_owned();
        let policy = self.retry;
        let mut waited = Duration::ZERO;
        let mut failures = 0;
        // The lock is held across the waits, so every caller that needs the token shares this
        // one wait and its outcome, and the refresh token is still presented once per rotation.
        let (error, next_try) = loop {
            let sent_at = self.clock.now_ms();
            let (outcome, retry_after) = self.send_refresh(&refresh_token).await;
            let error = match outcome {
                Ok(response) => {
                    state.refresh_not_before = None;
                    if let Err(error) = self.check_token_type(&response.token_type) {
                        // The rotation happened, but not bound to the key: the session cannot
                        // go on as the DPoP session it was.
                        tracing::warn!(%error, "refresh answered with a token not bound to the DPoP key");
                        state.set(None);
                        return Err(error);
                    }
                    let Some(tokens) = Tokens::from_response(response, sent_at, self.refresh_margin) else {
                        // Body delivery always returns the new refresh token; without it the
                        // session cannot continue.
                        state.set(None);
                        return Err(ClientError::NotLoggedIn);
                    };
                    state.set(Some(tokens));
                    self.stats.refreshes.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(retries = failures, "access token refreshed");
                    return state.current();
                }
                Err(error) if error.status() == Some(reqwest::StatusCode::UNAUTHORIZED) => {
                    // invalid_grant or refresh_token_reused: the session is over, and only then.
                    tracing::info!(%error, "refresh refused; the session has ended");
                    state.set(None);
                    return Err(error);
                }
                // Not worth repeating (a 4xx, an undecodable answer): no retry, no wait imposed.
                Err(error) if !retry::is_transient(&error) => break (error, None),
                Err(error) => error,
            };
            failures += 1;
            let Some(delay) = policy.delay(failures, retry_after) else {
                // Told to wait longer than the policy allows: give up now, and hold back for the
                // longest wait the policy honours (a broken proxy saying "a day" must not stop
                // refreshes for a day).
                break (error, Some(policy.longest_retry_after()));
            };
            // A proactive refresh with a token that still works waits for nobody: its callers
            // go on with that token and the next try comes after the delay.
            if failures >= policy.max_attempts()
                || !policy.within_budget(waited, delay)
                || still_valid(&state, self.clock.now_ms())
            {
                break (error, Some(delay));
            }
            tracing::warn!(%error, ?delay, attempt = failures, "refresh failed for a passing reason; retrying");
            tokio::time::sleep(delay).await;
            waited += delay;
            self.stats.refresh_retries.fetch_add(1, Ordering::Relaxed);
        };
        // The session stays: a rate limit, an overload or a network failure is no logout.
        if let Some(wait) = next_try {
            state.refresh_not_before = Some(Instant::now() + wait);
        }
        // A second between proactive tries at least, as before retries existed.
        let next_try = next_try.unwrap_or(Duration::from_secs(1));
        if still_valid(&state, self.clock.now_ms()) {
            tracing::warn!(%error, "proactive refresh failed; using the current token until it expires");
            // Try again once the wait is over, not on every request in between.
            let retry_at = self.clock.now_ms().saturating_add(millis(next_try));
            if let Some(tokens) = state.tokens.as_mut() {
                tokens.refresh_at = retry_at.min(tokens.expires_at);
            }
            return state.current();
        }
        tracing::warn!(%error, ?next_try, "refresh failed; the session is kept");
        Err(error)
    }

    /// One `POST /auth/refresh`: its outcome, and the `Retry-After` of a 429 or 503 answer.
    async fn send_refresh(&self, refresh_token: &str) -> (Result<TokenResponse, ClientError>, Option<Duration>) {
        let body = RefreshRequest { refresh_token: Some(refresh_token.to_owned()) };
        let mut retry_after = None;
        let outcome = async {
            let response = self.post_json("/auth/refresh", &body).await?;
            retry_after = retry::retry_after(response.status(), response.headers());
            let response = crate::client::check_status(response).await?;
            crate::client::decode::<TokenResponse>(response).await
        }
        .await;
        (outcome, retry_after)
    }
}
