//! Rate limits on signup, login, refresh and password checks (per client IP, per account), and
//! exponential backoff after repeated failures.
//!
//! Two backends behind one type: in-process (governor's GCRA limiters) for a single instance,
//! and Redis (fixed windows with `INCR` + `EXPIRE`) when several instances share the work, so a
//! client cannot multiply its budget by the number of instances.
//!
//! Attempts and failures are counted apart. [`RateLimits::check`] spends an attempt (per IP:
//! a stranger only spends their own budget). Per-account budgets count *failures* only
//! ([`RateLimits::check_failures`] looks, [`RateLimits::record_failures`] spends), so successful
//! logins never use them up, and login keys them by device (see `devices.rs`): failures from
//! unknown devices never throttle a device that has logged in before.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter as Governor};
use keycard_core::clock::Clock;
use redis::AsyncCommands;
use redis::aio::ConnectionManager;

use crate::error::ApiError;

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Rule {
    /// Signups per client IP.
    SignupIp,
    /// Login attempts per client IP.
    LoginIp,
    /// Failed logins per account (email) from devices the account has not logged in from.
    LoginAccount,
    /// Refreshes per client IP.
    RefreshIp,
    /// Password confirmations (password change, account deletion) per user.
    PasswordCheckUser,
    /// Password confirmations per client IP.
    PasswordCheckIp,
    /// `client_credentials` tokens and introspections per registered OAuth client.
    ClientToken,
    /// Password-reset requests per address.
    ForgotAddress,
    /// Password-reset requests per client IP.
    ForgotIp,
    /// Verification links asked for again, per address.
    VerifyResendAddress,
    /// Verification links asked for again, per client IP.
    VerifyResendIp,
    /// Mailed links followed (verify, confirm and cancel an address change), per client IP.
    EmailLinkIp,
}

impl Rule {
    fn name(self) -> &'static str {
        match self {
            Self::SignupIp => "signup_ip",
            Self::LoginIp => "login_ip",
            Self::LoginAccount => "login_account",
            Self::RefreshIp => "refresh_ip",
            Self::PasswordCheckUser => "password_check_user",
            Self::PasswordCheckIp => "password_check_ip",
            Self::ClientToken => "client_token",
            Self::ForgotAddress => "forgot_address",
            Self::ForgotIp => "forgot_ip",
            Self::VerifyResendAddress => "verify_resend_address",
            Self::VerifyResendIp => "verify_resend_ip",
            Self::EmailLinkIp => "email_link_ip",
        }
    }
}

/// Limits per minute for each rule, and the backoff policy.
#[derive(Debug, Clone)]
pub struct LimitConfig {
    /// Per-minute budget of each rule.
    pub per_minute: HashMap<Rule, u32>,
    /// Failed logins (per account and IP) allowed before backoff starts.
    pub backoff_after: u32,
    /// Longest backoff, seconds.
    pub backoff_max: u64,
}

enum Backend {
    Memory {
        limiters: HashMap<Rule, DefaultKeyedRateLimiter<String>>,
        /// Consecutive failures per backoff key: (count, last failure in Unix milliseconds).
        failures: Mutex<HashMap<String, (u32, i64)>>,
        /// Failures per (rule, key) in the current minute: (window, count).
        windows: Mutex<HashMap<(Rule, String), (i64, u32)>>,
    },
    Redis(ConnectionManager),
}

/// The limiter shared by all handlers.
pub struct RateLimits {
    config: LimitConfig,
    backend: Option<Backend>,
    /// Time of failure windows and backoff (the per-IP GCRA limiters keep their own).
    clock: Arc<dyn Clock>,
}

impl RateLimits {
    /// No limits at all (the `rate_limit_enabled = false` setting).
    pub fn disabled(config: LimitConfig, clock: Arc<dyn Clock>) -> Self {
        Self { config, backend: None, clock }
    }

    /// In-process limits.
    pub fn memory(config: LimitConfig, clock: Arc<dyn Clock>) -> Self {
        let limiters = config
            .per_minute
            .iter()
            .filter_map(|(rule, n)| NonZeroU32::new(*n).map(|n| (*rule, Governor::keyed(Quota::per_minute(n)))))
            .collect();
        let backend =
            Backend::Memory { limiters, failures: Mutex::new(HashMap::new()), windows: Mutex::new(HashMap::new()) };
        Self { config, backend: Some(backend), clock }
    }

    /// Limits shared through Redis at `url`.
    pub async fn redis(config: LimitConfig, url: &str, clock: Arc<dyn Clock>) -> anyhow::Result<Self> {
        let client = redis::Client::open(url).map_err(|e| anyhow::anyhow!("redis URL: {e}"))?;
        let manager = ConnectionManager::new(client).await.map_err(|e| anyhow::anyhow!("connecting to redis: {e}"))?;
        Ok(Self { config, backend: Some(Backend::Redis(manager)), clock })
    }

    /// Spends one unit of `rule` for `key`; 429 with `Retry-After` when the budget is gone.
    pub async fn check(&self, rule: Rule, key: &str) -> Result<(), ApiError> {
        let Some(backend) = &self.backend else { return Ok(()) };
        let Some(&limit) = self.config.per_minute.get(&rule).filter(|n| **n > 0) else { return Ok(()) };
        let retry_after = match backend {
            Backend::Memory { limiters, .. } => {
                let Some(limiter) = limiters.get(&rule) else { return Ok(()) };
                match limiter.check_key(&key.to_owned()) {
                    Ok(()) => None,
                    Err(not_until) => {
                        let wait = not_until
                            .wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                        // Rounded up: a client that waits exactly `Retry-After` must find the
                        // budget back (1.9 s rounded down to 1 would be refused once more).
                        Some(u64::try_from(wait.as_millis().div_ceil(1000)).unwrap_or(u64::MAX).max(1))
                    }
                }
            }
            Backend::Redis(conn) => {
                let now = self.clock.now();
                let window = now / 60;
                let redis_key = format!("keycard:rl:{}:{key}:{window}", rule.name());
                let mut conn = conn.clone();
                let count: u64 = redis::pipe()
                    .atomic()
                    .incr(&redis_key, 1)
                    .expire(&redis_key, 120)
                    .ignore()
                    .query_async::<(u64,)>(&mut conn)
                    .await
                    .map(|(c,)| c)
                    .map_err(redis_unavailable)?;
                (count > u64::from(limit)).then(|| u64::try_from((window + 1) * 60 - now).unwrap_or(1).max(1))
            }
        };
        match retry_after {
            None => Ok(()),
            Some(secs) => {
                metrics::counter!("keycard_rate_limited_total", "rule" => rule.name()).increment(1);
                Err(ApiError::RateLimited(secs))
            }
        }
    }

    /// Records `key` for `ttl_secs` seconds unless it is there already (`SET NX EX`), when the
    /// limits are shared through Redis: `Some(Ok(true))` the first time, `Some(Ok(false))` while
    /// it is held; `None` without Redis (the caller uses the store). DPoP replay detection.
    pub async fn spend_once(&self, key: &str, ttl_secs: u64) -> Option<Result<bool, ApiError>> {
        let Some(Backend::Redis(conn)) = &self.backend else { return None };
        let mut conn = conn.clone();
        let set: Result<Option<String>, _> =
            redis::cmd("SET").arg(key).arg(1).arg("NX").arg("EX").arg(ttl_secs.max(1)).query_async(&mut conn).await;
        Some(set.map(|reply| reply.is_some()).map_err(redis_unavailable))
    }

    /// The per-minute budget of `rule`, when it is limited at all.
    fn limit(&self, rule: Rule) -> Option<u32> {
        self.backend.as_ref()?;
        self.config.per_minute.get(&rule).copied().filter(|n| *n > 0)
    }

    /// 429 when `key` has used up the failure budget of `rule` in the current minute; spends
    /// nothing (failures are spent by [`Self::record_failures`]).
    pub async fn check_failures(&self, rule: Rule, key: &str) -> Result<(), ApiError> {
        let (Some(backend), Some(limit)) = (&self.backend, self.limit(rule)) else { return Ok(()) };
        let now = self.clock.now();
        let window = now / 60;
        let count = match backend {
            Backend::Memory { windows, .. } => match lock(windows).get(&(rule, key.to_owned())) {
                Some((w, count)) if *w == window => *count,
                _ => 0,
            },
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let count: Option<u32> =
                    conn.get(format!("keycard:rf:{}:{key}:{window}", rule.name())).await.map_err(redis_unavailable)?;
                count.unwrap_or(0)
            }
        };
        if count >= limit {
            metrics::counter!("keycard_rate_limited_total", "rule" => rule.name()).increment(1);
            return Err(ApiError::RateLimited(u64::try_from((window + 1) * 60 - now).unwrap_or(1).max(1)));
        }
        Ok(())
    }

    /// Spends one failure of `rule`'s per-minute budget for `key`.
    pub async fn record_failures(&self, rule: Rule, key: &str) -> Result<(), ApiError> {
        let (Some(backend), Some(_)) = (&self.backend, self.limit(rule)) else { return Ok(()) };
        let window = self.clock.now() / 60;
        match backend {
            Backend::Memory { windows, .. } => {
                let mut map = lock(windows);
                if map.len() > 100_000 {
                    // Bounded memory under a spray of random emails: only this minute counts.
                    map.retain(|_, (w, _)| *w == window);
                }
                let entry = map.entry((rule, key.to_owned())).or_insert((window, 0));
                if entry.0 != window {
                    *entry = (window, 0);
                }
                entry.1 = entry.1.saturating_add(1);
            }
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let redis_key = format!("keycard:rf:{}:{key}:{window}", rule.name());
                redis::pipe()
                    .atomic()
                    .incr(&redis_key, 1)
                    .ignore()
                    .expire(&redis_key, 120)
                    .ignore()
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(redis_unavailable)?;
            }
        }
        Ok(())
    }

    /// 429 while `key` is backing off after repeated failures. Times are kept in milliseconds,
    /// so a backoff of one second is one second, not "until the clock's next second".
    pub async fn check_backoff(&self, key: &str) -> Result<(), ApiError> {
        let Some(backend) = &self.backend else { return Ok(()) };
        let (count, last_ms) = match backend {
            Backend::Memory { failures, .. } => lock(failures).get(key).copied().unwrap_or((0, 0)),
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let (count, last): (Option<u32>, Option<i64>) = redis::pipe()
                    .get(format!("keycard:lf:{key}"))
                    .get(format!("keycard:lfat:{key}"))
                    .query_async(&mut conn)
                    .await
                    .map_err(redis_unavailable)?;
                (count.unwrap_or(0), last.unwrap_or(0))
            }
        };
        let delay_ms = self.backoff_delay(count).saturating_mul(1000);
        let wait_ms = last_ms.saturating_add(delay_ms) - self.clock.now_ms();
        if delay_ms > 0 && wait_ms > 0 {
            metrics::counter!("keycard_rate_limited_total", "rule" => "backoff").increment(1);
            let secs = u64::try_from(wait_ms).unwrap_or(1).div_ceil(1000);
            return Err(ApiError::RateLimited(secs.max(1)));
        }
        Ok(())
    }

    /// Seconds to wait after `failures` consecutive failures: 0 until `backoff_after`, then
    /// 1, 2, 4, … capped at `backoff_max`.
    pub fn backoff_delay(&self, failures: u32) -> i64 {
        if failures < self.config.backoff_after {
            return 0;
        }
        let exp = (failures - self.config.backoff_after).min(20);
        i64::try_from((1u64 << exp).min(self.config.backoff_max)).unwrap_or(i64::MAX)
    }

    /// Counts a failure for the backoff of `key`.
    pub async fn record_failure(&self, key: &str) -> Result<(), ApiError> {
        let now = self.clock.now_ms();
        let forget_after = self.config.backoff_max.max(60) * 2;
        match &self.backend {
            None => {}
            Some(Backend::Memory { failures, .. }) => {
                let mut map = lock(failures);
                if map.len() > 100_000 {
                    // Bounded memory under a spray of random emails: forget stale entries.
                    let horizon = now - i64::try_from(forget_after * 1000).unwrap_or(i64::MAX);
                    map.retain(|_, (_, at)| *at > horizon);
                }
                let entry = map.entry(key.to_owned()).or_insert((0, now));
                *entry = (entry.0.saturating_add(1), now);
            }
            Some(Backend::Redis(conn)) => {
                let mut conn = conn.clone();
                let (count_key, at_key) = (format!("keycard:lf:{key}"), format!("keycard:lfat:{key}"));
                redis::pipe()
                    .atomic()
                    .incr(&count_key, 1)
                    .expire(&count_key, i64::try_from(forget_after).unwrap_or(3600))
                    .set_ex(&at_key, now, forget_after)
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(redis_unavailable)?;
            }
        }
        Ok(())
    }

    /// Clears the failure count of `key` after a success.
    pub async fn reset_failures(&self, key: &str) -> Result<(), ApiError> {
        match &self.backend {
            None => {}
            Some(Backend::Memory { failures, .. }) => {
                lock(failures).remove(key);
            }
            Some(Backend::Redis(conn)) => {
                let mut conn = conn.clone();
                let _: () = conn
                    .del(&[format!("keycard:lf:{key}"), format!("keycard:lfat:{key}")])
                    .await
                    .map_err(redis_unavailable)?;
            }
        }
        Ok(())
    }

    /// Drops idle in-memory limiter state (called periodically).
    pub fn prune(&self) {
        if let Some(Backend::Memory { limiters, windows, .. }) = &self.backend {
            for limiter in limiters.values() {
                limiter.retain_recent();
            }
            let window = self.clock.now() / 60;
            lock(windows).retain(|_, (w, _)| *w == window);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn redis_unavailable(e: redis::RedisError) -> ApiError {
    tracing::error!(error = %e, "rate-limit store (redis) failed");
    ApiError::new(keycard_core::ErrorCode::TemporarilyUnavailable, "the rate-limit store is unavailable; retry shortly")
}

/// How often in-memory limiter state is pruned.
pub const PRUNE_EVERY: Duration = Duration::from_secs(60);
