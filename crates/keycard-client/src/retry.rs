//! [`RetryPolicy`]: how a refresh that failed for a passing reason is tried again — `Retry-After`
//! honoured on 429 and 503, jittered exponential backoff after network errors and other 5xx,
//! bounded in attempts and in total waiting — and which failures are passing at all.
//!
//! Only keycard refusing the refresh token (401: `invalid_grant`, `refresh_token_reused`) ends a
//! session; a rate limit, an overloaded or unreachable server never does.

use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{HeaderMap, RETRY_AFTER};

use crate::error::ClientError;

/// How a refresh that failed for a passing reason (429, 5xx, a network error or timeout) is tried
/// again. The session is kept whatever happens: when the attempts or the waiting budget run out,
/// the last error is returned and the session stays for the next call.
///
/// - 429 and 503 with `Retry-After: N` (delta-seconds): wait N seconds plus up to a quarter more
///   (uniform jitter, never earlier than told). A `Retry-After` longer than
///   [`RetryPolicy::max_retry_after`] is not waited for: the error is returned at once, and no
///   refresh is sent for that maximum.
/// - Other 5xx, 408, 429/503 without a usable `Retry-After`, network errors: exponential backoff
///   from [`RetryPolicy::base_delay`], doubling, capped at [`RetryPolicy::max_delay`], with equal
///   jitter (half the delay fixed, half random).
///
/// The waits are real time (tokio's timer), whatever clock the client decides expiry by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub struct RetryPolicy {
    attempts: u32,
    base_delay: Duration,
    max_delay: Duration,
    max_retry_after: Duration,
    max_total_wait: Duration,
}

/// Default number of requests one refresh may send (the first and three retries).
pub const DEFAULT_REFRESH_ATTEMPTS: u32 = 4;

impl Default for RetryPolicy {
    /// 4 attempts, backoff from 500 ms capped at 10 s, `Retry-After` honoured up to 60 s, at most
    /// 60 s of waiting in all.
    fn default() -> Self {
        Self {
            attempts: DEFAULT_REFRESH_ATTEMPTS,
            base_delay: Duration::from_millis(500),
            max_delay: Duration::from_secs(10),
            max_retry_after: Duration::from_secs(60),
            max_total_wait: Duration::from_secs(60),
        }
    }
}

impl RetryPolicy {
    /// No retries: one request per refresh (a passing failure still keeps the session).
    pub fn none() -> Self {
        Self::default().attempts(1)
    }

    /// Requests one refresh may send in all, the first included (at least 1). Default 4.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts.max(1);
        self
    }

    /// First backoff delay, doubled after each failure. Default 500 ms.
    pub fn base_delay(mut self, delay: Duration) -> Self {
        self.base_delay = delay;
        self
    }

    /// Largest backoff delay (before jitter). Default 10 s.
    pub fn max_delay(mut self, delay: Duration) -> Self {
        self.max_delay = delay;
        self
    }

    /// Longest `Retry-After` the client waits for. Default 60 s.
    pub fn max_retry_after(mut self, wait: Duration) -> Self {
        self.max_retry_after = wait;
        self
    }

    /// Most time one refresh spends waiting between its attempts. Default 60 s.
    pub fn max_total_wait(mut self, wait: Duration) -> Self {
        self.max_total_wait = wait;
        self
    }

    /// The longest `Retry-After` the client waits for.
    pub fn longest_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// The requests one refresh may send.
    pub fn max_attempts(&self) -> u32 {
        self.attempts
    }

    /// How long to wait after failed attempt number `failures` (1 for the first failure) whose
    /// answer said `retry_after`; `None` when it said to wait longer than the policy allows.
    pub(crate) fn delay(&self, failures: u32, retry_after: Option<Duration>) -> Option<Duration> {
        if let Some(told) = retry_after {
            if told > self.max_retry_after {
                return None;
            }
            return Some(told + told.mul_f64(random_fraction() / 4.0));
        }
        let exponent = failures.saturating_sub(1).min(20);
        let delay = self.base_delay.saturating_mul(1 << exponent).min(self.max_delay);
        Some(delay / 2 + (delay / 2).mul_f64(random_fraction()))
    }

    /// Whether waiting `next` more after `waited` stays within the total budget.
    pub(crate) fn within_budget(&self, waited: Duration, next: Duration) -> bool {
        waited.saturating_add(next) <= self.max_total_wait
    }
}

/// Whether a failed refresh may succeed if tried again: 429, 408 and 5xx answers, and failures
/// before any answer (connection refused or reset, timeout, a body cut off).
pub(crate) fn is_transient(error: &ClientError) -> bool {
    match error {
        ClientError::Api { status, .. } => {
            *status == StatusCode::TOO_MANY_REQUESTS
                || *status == StatusCode::REQUEST_TIMEOUT
                || status.is_server_error()
        }
        ClientError::Http(e) => e.status().is_none_or(|s| s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS),
        _ => false,
    }
}

/// The `Retry-After` of a 429 or 503 answer, in delta-seconds (an HTTP-date is ignored: the
/// client then backs off exponentially instead).
pub(crate) fn retry_after(status: StatusCode, headers: &HeaderMap) -> Option<Duration> {
    if status != StatusCode::TOO_MANY_REQUESTS && status != StatusCode::SERVICE_UNAVAILABLE {
        return None;
    }
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    value.parse::<u64>().ok().map(Duration::from_secs)
}

/// A number in [0, 1) for jitter: not cryptographic, just different in every call and process
/// (std's randomly keyed SipHash over the time), so clients told the same wait spread out.
fn random_fraction() -> f64 {
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos();
    hasher.write_u128(nanos);
    // 53 random bits: every value exactly representable in an f64.
    (hasher.finish() >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_is_honoured_never_earlier_and_at_most_a_quarter_later() {
        let policy = RetryPolicy::default();
        for _ in 0..100 {
            let wait = policy.delay(1, Some(Duration::from_secs(2))).unwrap();
            assert!(wait >= Duration::from_secs(2) && wait <= Duration::from_millis(2500), "{wait:?}");
        }
        assert_eq!(policy.delay(1, Some(Duration::from_secs(61))), None, "longer than the cap: not waited for");
    }

    #[test]
    fn backoff_doubles_with_equal_jitter_up_to_the_cap() {
        let policy =
            RetryPolicy::default().base_delay(Duration::from_millis(100)).max_delay(Duration::from_millis(400));
        for (failures, full) in [(1, 100), (2, 200), (3, 400), (4, 400), (30, 400)] {
            let wait = policy.delay(failures, None).unwrap();
            let full = Duration::from_millis(full);
            assert!(wait >= full / 2 && wait <= full, "failure {failures}: {wait:?}");
        }
    }

    #[test]
    fn jitter_varies() {
        let policy = RetryPolicy::default();
        let waits: std::collections::HashSet<_> = (0..20).map(|_| policy.delay(3, None).unwrap()).collect();
        assert!(waits.len() > 10, "{waits:?}");
    }

    #[test]
    fn retry_after_is_read_on_429_and_503_only() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "2".parse().unwrap());
        assert_eq!(retry_after(StatusCode::TOO_MANY_REQUESTS, &headers), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(StatusCode::SERVICE_UNAVAILABLE, &headers), Some(Duration::from_secs(2)));
        assert_eq!(retry_after(StatusCode::BAD_GATEWAY, &headers), None);
        headers.insert(RETRY_AFTER, "Wed, 21 Oct 2015 07:28:00 GMT".parse().unwrap());
        assert_eq!(retry_after(StatusCode::TOO_MANY_REQUESTS, &headers), None, "HTTP-date: backoff instead");
    }

    #[test]
    fn only_passing_failures_are_retried() {
        let api = |status: u16| ClientError::Api { status: StatusCode::from_u16(status).unwrap(), error: None };
        for status in [429, 408, 500, 502, 503, 504] {
            assert!(is_transient(&api(status)), "{status}");
        }
        for status in [400, 401, 403, 404, 422] {
            assert!(!is_transient(&api(status)), "{status}");
        }
        assert!(!is_transient(&ClientError::NotLoggedIn));
    }
}
