//! Following keycard's revocation feed (`GET /auth/revocations?after=<seq>`) and answering "is
//! this session revoked?" with a bounded staleness (the guarantee is stated in the crate docs).
//!
//! A sync round reads pages until one comes back empty; only a complete round counts, and it
//! counts from the moment its first request was sent: every revocation keycard committed before
//! then has a smaller sequence number than what the round read, so the round saw it.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::RwLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keycard_core::clock::Clock;

use keycard_core::TokenError;
use keycard_core::wire::RevocationFeed;

use crate::error::{FetchError, VerifyError};
use crate::fetch::{FEED_PAGE_LIMIT, get_json};

/// Most pages one sync round reads; a longer backlog is finished by the next rounds (the feed
/// counts as stale until it is).
const MAX_PAGES_PER_ROUND: usize = 100;

/// What the verifier does while its revocation data is older than the staleness bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WhenStale {
    /// Fail closed (the default): refuse every token with 503 `temporarily_unavailable` and
    /// `Retry-After: 1` until a sync round succeeds. A revoked session can never get through.
    #[default]
    Reject,
    /// Fail open: keep accepting tokens (still rejecting sessions already known to be revoked)
    /// and log a warning. Gives up the staleness guarantee while keycard is unreachable.
    Accept,
}

/// How the verifier follows the revocation feed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RevocationConfig {
    /// Time between sync rounds. Default 1 s.
    pub poll_interval: Duration,
    /// Age beyond which revocation data counts as stale. Default 5 s; must exceed the poll
    /// interval.
    pub staleness_bound: Duration,
    /// Behaviour while stale. Default [`WhenStale::Reject`].
    pub when_stale: WhenStale,
    /// Feed URL; default: the discovery document's `keycard_revocation_feed_endpoint`, else
    /// `{issuer}/auth/revocations`.
    pub feed_url: Option<String>,
}

impl Default for RevocationConfig {
    fn default() -> Self {
        Self {
            poll_interval: Duration::from_secs(1),
            staleness_bound: Duration::from_secs(5),
            when_stale: WhenStale::Reject,
            feed_url: None,
        }
    }
}

impl RevocationConfig {
    /// Sets the poll interval.
    pub fn poll_interval(mut self, interval: Duration) -> Self {
        self.poll_interval = interval;
        self
    }

    /// Sets the staleness bound.
    pub fn staleness_bound(mut self, bound: Duration) -> Self {
        self.staleness_bound = bound;
        self
    }

    /// Sets the behaviour while stale.
    pub fn when_stale(mut self, policy: WhenStale) -> Self {
        self.when_stale = policy;
        self
    }

    /// Sets the feed URL.
    pub fn feed_url(mut self, url: impl Into<String>) -> Self {
        self.feed_url = Some(url.into());
        self
    }
}

/// The feed follower's state.
pub(crate) struct Feed {
    pub(crate) url: String,
    pub(crate) config: RevocationConfig,
    /// Seconds entries are kept past their `expires_at`: the verifier's own leeway, so a token
    /// the verifier still accepts as unexpired is still checked against its entry.
    keep_extra: i64,
    /// The time staleness and entry expiry are judged by.
    clock: Arc<dyn Clock>,
    state: RwLock<FeedState>,
}

#[derive(Default)]
struct FeedState {
    /// Revoked sid → Unix time after which no token of it can pass the verifier.
    revoked: HashMap<String, i64>,
    /// Feed position to ask from.
    next: i64,
    /// When the last complete round began (Unix ms by the verifier's clock).
    synced_at: Option<i64>,
}

impl Feed {
    pub(crate) fn new(url: String, config: RevocationConfig, leeway_secs: i64, clock: Arc<dyn Clock>) -> Self {
        Self { url, config, keep_extra: leeway_secs.max(0), clock, state: RwLock::default() }
    }

    /// How long ago `synced_at` was, by the clock.
    fn age(&self, synced_at: Option<i64>) -> Option<Duration> {
        synced_at.map(|at| Duration::from_millis(u64::try_from(self.clock.now_ms() - at).unwrap_or(0)))
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, FeedState> {
        // A panic while holding the lock leaves whole values behind (inserts and removes only).
        self.state.read().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, FeedState> {
        self.state.write().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One sync round: pages from the last position until an empty one, then prune.
    pub(crate) async fn sync(&self, http: &reqwest::Client, requests: &AtomicU64) -> Result<(), FetchError> {
        let started = self.clock.now_ms();
        let mut after = self.read().next;
        let mut pages = 0;
        let complete = loop {
            let url = format!("{}?after={after}", self.url);
            requests.fetch_add(1, Ordering::Relaxed);
            let page: RevocationFeed = get_json(http, &url, FEED_PAGE_LIMIT).await?;
            pages += 1;
            let done = page.revocations.is_empty() || page.next <= after;
            let now = self.clock.now();
            {
                let mut state = self.write();
                for entry in page.revocations {
                    let forget_at = entry.expires_at.saturating_add(self.keep_extra);
                    if forget_at >= now {
                        state.revoked.insert(entry.sid, forget_at);
                    }
                }
                state.next = state.next.max(page.next);
            }
            after = page.next.max(after);
            if done {
                break true;
            }
            if pages >= MAX_PAGES_PER_ROUND {
                break false;
            }
        };
        let now = self.clock.now();
        let mut state = self.write();
        state.revoked.retain(|_, forget_at| *forget_at >= now);
        if complete {
            state.synced_at = Some(state.synced_at.map_or(started, |t| t.max(started)));
        }
        Ok(())
    }

    /// Refuses a revoked `sid`, and every token while the data is stale and the policy rejects.
    pub(crate) fn check(&self, sid: &str) -> Result<(), VerifyError> {
        let state = self.read();
        if state.revoked.contains_key(sid) {
            return Err(VerifyError::Token(TokenError::Revoked));
        }
        let age = self.age(state.synced_at);
        if age.is_none_or(|age| age > self.config.staleness_bound) {
            match self.config.when_stale {
                WhenStale::Reject => {
                    return Err(VerifyError::RevocationFeedStale { age, bound: self.config.staleness_bound });
                }
                // The poller logs each failed round; one line per request would flood the log.
                WhenStale::Accept => {
                    tracing::debug!(age_ms = age.map(|a| a.as_millis()), "revocation data is stale; accepting anyway")
                }
            }
        }
        Ok(())
    }

    /// Revoked sessions held, feed position, and time since the last complete round began.
    pub(crate) fn status(&self) -> (usize, i64, Option<Duration>) {
        let state = self.read();
        (state.revoked.len(), state.next, self.age(state.synced_at))
    }
}
