//! The [`Verifier`]: the validation checklist over cached keys, the rate-limited JWKS refetch on
//! an unknown `kid`, and the revocation check.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, Instant};

use keycard_core::clock::Clock;

use http::HeaderMap;
use keycard_core::TokenError;
use keycard_core::claims::AccessClaims;
use keycard_core::dpop::{ProofExpectations, verify_proof};
use keycard_core::keys::PublicKeys;
use keycard_core::validate::Validator;

use crate::builder::VerifierBuilder;
use crate::dpop::DpopState;
use crate::error::{DpopFailure, FetchError, VerifyError};
use crate::extract::VerifiedToken;
use crate::fetch::fetch_keys;
use crate::introspect::{Introspector, looks_like_jws};
use crate::revocation::Feed;
use crate::step_up::{Stamp, StepUp};

/// Verifies keycard access tokens. Cheap to clone (one `Arc`); background tasks (revocation
/// feed, periodic JWKS refresh) stop when the last clone is dropped.
#[derive(Clone)]
pub struct Verifier {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.inner.validator.issuer())
            .field("audience", &self.inner.validator.audience())
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) validator: Validator,
    /// The time tokens' `exp`/`nbf`/`iat` and the feed's staleness are judged by.
    clock: Arc<dyn Clock>,
    pub(crate) http: reqwest::Client,
    keys: RwLock<KeySnapshot>,
    pub(crate) remote: Option<RemoteKeys>,
    pub(crate) feed: Option<Feed>,
    /// The opt-in introspection fallback for opaque tokens.
    pub(crate) introspector: Option<Arc<Introspector>>,
    /// DPoP support ([`VerifierBuilder::dpop`]), with its replay cache.
    pub(crate) dpop: Option<DpopState>,
    pub(crate) stats: Counters,
}

#[derive(Clone)]
struct KeySnapshot {
    keys: Arc<PublicKeys>,
    generation: u64,
}

/// Keys fetched from a JWKS URL.
pub(crate) struct RemoteKeys {
    pub(crate) jwks_uri: String,
    /// Least time between two refetches caused by unknown kids.
    pub(crate) refetch_interval: Duration,
    /// Background refresh period, if any.
    pub(crate) refresh_interval: Option<Duration>,
    /// When the last unknown-kid refetch started. The async mutex also makes concurrent
    /// unknown-kid requests share one fetch instead of each starting one.
    last_refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl RemoteKeys {
    pub(crate) fn new(jwks_uri: String, refetch_interval: Duration, refresh_interval: Option<Duration>) -> Self {
        Self { jwks_uri, refetch_interval, refresh_interval, last_refetch: tokio::sync::Mutex::new(None) }
    }
}

#[derive(Default)]
pub(crate) struct Counters {
    jwks_fetches: AtomicU64,
    jwks_fetch_failures: AtomicU64,
    refetches_suppressed: AtomicU64,
    pub(crate) feed_rounds: AtomicU64,
    pub(crate) feed_requests: AtomicU64,
    pub(crate) feed_failures: AtomicU64,
}

/// What the verifier has done so far, for metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct VerifierStats {
    /// JWKS requests made (at start, periodic, and on unknown kids), successful or not.
    pub jwks_fetches: u64,
    /// JWKS requests that failed; the cached keys stayed in use.
    pub jwks_fetch_failures: u64,
    /// Unknown-kid refetches skipped because one happened within the refetch interval.
    pub refetches_suppressed: u64,
    /// Keys currently cached.
    pub cached_keys: usize,
    /// Revocation-feed sync rounds attempted.
    pub feed_rounds: u64,
    /// Revocation-feed page requests made.
    pub feed_requests: u64,
    /// Sync rounds that failed.
    pub feed_failures: u64,
    /// Revoked sessions currently remembered.
    pub revoked_sessions: usize,
    /// Revocation-feed position.
    pub feed_position: i64,
    /// Time since the last complete sync round began (`None`: never, or no feed).
    pub feed_age: Option<Duration>,
    /// Introspection requests made (opaque tokens, with introspection on).
    pub introspections: u64,
    /// Introspection requests that failed (answered 503).
    pub introspection_failures: u64,
    /// Opaque tokens answered from the introspection cache.
    pub introspection_cache_hits: u64,
    /// Introspection verdicts cached now.
    pub introspection_cached: usize,
}

impl Verifier {
    /// Starts configuring a verifier for tokens of `issuer` (a URL such as
    /// `https://auth.example.com`) meant for `audience`.
    pub fn builder(issuer: impl Into<String>, audience: impl Into<String>) -> VerifierBuilder {
        VerifierBuilder::new(issuer.into(), audience.into())
    }

    /// A verifier that discovers keycard's JWKS and revocation feed from `issuer` with the
    /// defaults (refetch at most every 30 s, feed polled every 1 s, 5 s staleness bound, fail
    /// closed). Needs a Tokio runtime.
    pub async fn from_issuer(
        issuer: impl Into<String>,
        audience: impl Into<String>,
    ) -> Result<Self, crate::error::BuildError> {
        Self::builder(issuer, audience).build().await
    }

    /// A verifier with fixed keys and no revocation feed: nothing is fetched, no runtime needed.
    pub fn from_static_keys(issuer: impl Into<String>, audience: impl Into<String>, keys: PublicKeys) -> Self {
        let builder = Self::builder(issuer, audience);
        let clock = Arc::new(keycard_core::clock::SystemClock);
        Self::assemble(builder.validator(), builder.http_client_or_default(), keys, None, None, clock, None, None)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn assemble(
        validator: Validator,
        http: reqwest::Client,
        keys: PublicKeys,
        remote: Option<RemoteKeys>,
        feed: Option<Feed>,
        clock: Arc<dyn Clock>,
        introspector: Option<Arc<Introspector>>,
        dpop: Option<DpopState>,
    ) -> Self {
        let keys = RwLock::new(KeySnapshot { keys: Arc::new(keys), generation: 0 });
        let stats = Counters::default();
        Self { inner: Arc::new(Inner { validator, http, keys, remote, feed, clock, introspector, dpop, stats }) }
    }

    /// The accepted issuer.
    pub fn issuer(&self) -> &str {
        self.inner.validator.issuer()
    }

    /// The accepted audience.
    pub fn audience(&self) -> &str {
        self.inner.validator.audience()
    }

    /// Verifies the Bearer token of a request's headers. A request with `Authorization: DPoP`
    /// is refused here ([`VerifyError::MalformedHeader`]): use [`Verifier::verify_request`],
    /// which needs the method and URI.
    pub async fn verify_headers(&self, headers: &HeaderMap) -> Result<AccessClaims, VerifyError> {
        let token = bearer_token(headers)?;
        self.verify(token).await
    }

    /// Whether this verifier accepts DPoP-bound tokens ([`VerifierBuilder::dpop`]).
    pub fn supports_dpop(&self) -> bool {
        self.inner.dpop.is_some()
    }

    /// Verifies a request's access token, by its `Authorization` scheme:
    ///
    /// - `Bearer <token>`: [`Verifier::verify`] (a DPoP-bound token is refused);
    /// - `DPoP <token>`, when the verifier supports DPoP ([`VerifierBuilder::dpop`]): the token
    ///   passes the same checklist (the revocation feed included) and must carry `cnf.jkt`;
    ///   exactly one `DPoP` header must hold a proof (RFC 9449 §4.3) for `method` and the
    ///   request's public URI ([`crate::DpopOptions::public_origin`], else `uri` if absolute)
    ///   with `ath` the hash of the token, made with the key of `cnf.jkt`, and not seen before
    ///   by this verifier (the `(jkt, jti)` pair is remembered until the proof's age limit).
    ///   The token's verification may be cached like a Bearer token's; the proof never is.
    ///   Without DPoP support the scheme is refused as [`VerifyError::MalformedHeader`].
    ///
    /// The returned claims' `cnf` is set exactly when the request was DPoP-bound.
    pub async fn verify_request(
        &self,
        method: &http::Method,
        uri: &http::Uri,
        headers: &HeaderMap,
    ) -> Result<AccessClaims, VerifyError> {
        let Some(dpop) = &self.inner.dpop else { return self.verify_headers(headers).await };
        let token = match dpop_token(headers)? {
            None => return self.verify_headers(headers).await,
            Some(token) => token,
        };
        let refuse = |reason| VerifyError::Dpop { reason, algs: dpop.algs.clone() };
        let mut proofs = headers.get_all("dpop").iter();
        let proof = match (proofs.next(), proofs.next()) {
            (None, _) => return Err(refuse(DpopFailure::MissingProof)),
            (Some(_), Some(_)) => return Err(refuse(DpopFailure::MultipleProofs)),
            (Some(proof), None) => {
                proof.to_str().map_err(|_| refuse(DpopFailure::Proof(keycard_core::dpop::DpopError::Malformed)))?
            }
        };
        let htu = dpop.request_uri(uri).ok_or(VerifyError::DpopRequestUriUnknown)?;
        let claims = match self.verify_any(token).await {
            Ok(claims) => claims,
            Err(VerifyError::Token(error)) => return Err(refuse(DpopFailure::Token(error))),
            Err(other) => return Err(other),
        };
        let Some(cnf) = &claims.cnf else { return Err(refuse(DpopFailure::NotBound)) };
        let now = self.inner.clock.now();
        let expect = ProofExpectations::new(&dpop.policy, method.as_str(), &htu).with_access_token(token);
        let proof = verify_proof(proof, &expect, now).map_err(|e| refuse(DpopFailure::Proof(e)))?;
        cnf.check(&proof).map_err(|e| refuse(DpopFailure::Proof(e)))?;
        // Last, so a proof refused for any other reason is not spent.
        match dpop.spend(&proof, now).await {
            Ok(true) => {}
            Ok(false) => return Err(refuse(DpopFailure::Proof(keycard_core::dpop::DpopError::Replayed))),
            Err(reason) => return Err(VerifyError::ReplayStoreUnavailable { reason }),
        }
        Ok(claims)
    }

    /// Runs the whole checklist on a Bearer `token`: signature with the key its `kid` names
    /// (refetching the JWKS once if the kid is unknown and no refetch happened within the
    /// refetch interval), `typ`, `iss`, `aud`, `exp`, `nbf`, `iat`, `sub`/`sid`/`jti`, size, and
    /// the revocation feed. With [`VerifierBuilder::introspection`], a token that is not a JWT
    /// at all is introspected instead (cached briefly), then checked against the revocation
    /// feed. A DPoP-bound token (with `cnf`) is refused ([`VerifyError::DpopBoundAsBearer`]),
    /// with or without DPoP support: it is only accepted through [`Verifier::verify_request`].
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        refuse_bound(self.verify_any(token).await?)
    }

    /// [`Verifier::verify`] whatever the token's binding.
    async fn verify_any(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let now = self.inner.clock.now();
        let snapshot = self.inner.snapshot();
        let claims = match self.inner.validator.validate(&snapshot.keys, token, now) {
            Err(TokenError::UnknownKey) if self.inner.remote.is_some() => {
                if !self.inner.refetch_for_unknown_kid(snapshot.generation).await {
                    return Err(TokenError::UnknownKey.into());
                }
                self.inner.validator.validate(&self.inner.snapshot().keys, token, now)?
            }
            Err(TokenError::Malformed) => match &self.inner.introspector {
                Some(introspector) if !looks_like_jws(token) => introspector.check(token).await?,
                _ => return Err(TokenError::Malformed.into()),
            },
            other => other?,
        };
        self.check_revocation(&claims)?;
        Ok(claims)
    }

    /// Like [`Verifier::verify`], but never fetches: an unknown `kid` is simply refused, and an
    /// opaque token passes only on a cached introspection verdict. A DPoP-bound token is
    /// refused too.
    pub fn verify_cached(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        refuse_bound(self.verify_cached_any(token)?)
    }

    fn verify_cached_any(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        let now = self.inner.clock.now();
        let claims = match self.inner.validator.validate(&self.inner.snapshot().keys, token, now) {
            Err(TokenError::Malformed) if !looks_like_jws(token) => {
                match self.inner.introspector.as_ref().and_then(|i| i.cached_verdict(token)) {
                    Some(verdict) => verdict?,
                    None => return Err(TokenError::Malformed.into()),
                }
            }
            other => other?,
        };
        self.check_revocation(&claims)?;
        Ok(claims)
    }

    /// Checks a step-up requirement (RFC 9470) on `claims` this verifier accepted, by its clock
    /// now and its leeway: a second factor (`amr` holds `mfa`), a sign-in within `max_age`
    /// (`auth_time`; none, or one more than the leeway in the future, fails). For handlers that
    /// call [`Verifier::verify_request`] themselves; with the axum integration use
    /// [`VerifiedToken::require`] or [`crate::VerifierLayer::require`].
    pub fn require(&self, claims: &AccessClaims, required: &StepUp) -> Result<(), VerifyError> {
        required.check(claims, &self.stamp(claims))
    }

    /// What a later step-up check of `claims` needs: the clock now, the leeway, and the DPoP
    /// challenge's `algs` when the token is bound.
    fn stamp(&self, claims: &AccessClaims) -> Stamp {
        Stamp {
            now: self.inner.clock.now(),
            leeway: self.inner.validator.leeway_secs(),
            dpop_algs: claims.cnf.as_ref().and(self.inner.dpop.as_ref()).map(|dpop| dpop.algs.clone()),
        }
    }

    /// `claims` this verifier accepted, stamped for step-up checks.
    pub(crate) fn verified_token(&self, claims: AccessClaims) -> VerifiedToken {
        VerifiedToken { stamp: self.stamp(&claims), claims }
    }

    fn check_revocation(&self, claims: &AccessClaims) -> Result<(), VerifyError> {
        match &self.inner.feed {
            Some(feed) => feed.check(&claims.sid),
            None => Ok(()),
        }
    }

    /// Replaces the accepted keys (static key sets: rotate by adding the new key, then remove
    /// the old one once its tokens have expired). A verifier that fetches its JWKS overwrites
    /// them at its next fetch.
    pub fn set_keys(&self, keys: PublicKeys) {
        self.inner.replace_keys(keys);
    }

    /// The keys in use now.
    pub fn keys(&self) -> Arc<PublicKeys> {
        self.inner.snapshot().keys
    }

    /// Fetches the JWKS now (not rate-limited); on failure the cached keys stay in use.
    pub async fn refresh_keys(&self) -> Result<(), FetchError> {
        self.inner.refresh_keys().await
    }

    /// Runs one revocation-feed sync round now (normally the background task does).
    pub async fn sync_revocations(&self) -> Result<(), FetchError> {
        self.inner.sync_feed().await
    }

    /// Counters and cache state.
    pub fn stats(&self) -> VerifierStats {
        let s = &self.inner.stats;
        let (revoked_sessions, feed_position, feed_age) =
            self.inner.feed.as_ref().map_or((0, 0, None), |feed| feed.status());
        VerifierStats {
            jwks_fetches: s.jwks_fetches.load(Ordering::Relaxed),
            jwks_fetch_failures: s.jwks_fetch_failures.load(Ordering::Relaxed),
            refetches_suppressed: s.refetches_suppressed.load(Ordering::Relaxed),
            cached_keys: self.inner.snapshot().keys.len(),
            feed_rounds: s.feed_rounds.load(Ordering::Relaxed),
            feed_requests: s.feed_requests.load(Ordering::Relaxed),
            feed_failures: s.feed_failures.load(Ordering::Relaxed),
            revoked_sessions,
            feed_position,
            feed_age,
            introspections: self.introspection_stat(|i| i.stats.requests.load(Ordering::Relaxed)),
            introspection_failures: self.introspection_stat(|i| i.stats.failures.load(Ordering::Relaxed)),
            introspection_cache_hits: self.introspection_stat(|i| i.stats.cache_hits.load(Ordering::Relaxed)),
            introspection_cached: self.inner.introspector.as_ref().map_or(0, |i| i.cached()),
        }
    }

    fn introspection_stat(&self, read: impl Fn(&Introspector) -> u64) -> u64 {
        self.inner.introspector.as_deref().map_or(0, read)
    }

    /// Starts the background tasks: revocation polling and periodic JWKS refresh.
    pub(crate) fn spawn_background_tasks(&self) {
        if let Some(feed) = &self.inner.feed {
            spawn_every(Arc::downgrade(&self.inner), feed.config.poll_interval, |inner| async move {
                // Failures are counted and logged inside; the next round retries.
                let _ = inner.sync_feed().await;
            });
        }
        if let Some(period) = self.inner.remote.as_ref().and_then(|r| r.refresh_interval) {
            spawn_every(Arc::downgrade(&self.inner), period, |inner| async move {
                let _ = inner.refresh_keys().await;
            });
        }
    }
}

/// Runs `job` every `period` until the verifier is dropped.
fn spawn_every<F, Fut>(weak: Weak<Inner>, period: Duration, job: F)
where
    F: Fn(Arc<Inner>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            let Some(inner) = weak.upgrade() else { break };
            job(inner).await;
        }
    });
}

impl Inner {
    fn snapshot(&self) -> KeySnapshot {
        // Poisoning cannot leave a half-written snapshot: it is replaced whole.
        self.keys.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    fn replace_keys(&self, keys: PublicKeys) {
        let mut current = self.keys.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        *current = KeySnapshot { keys: Arc::new(keys), generation: current.generation + 1 };
    }

    pub(crate) async fn refresh_keys(&self) -> Result<(), FetchError> {
        let Some(remote) = &self.remote else { return Ok(()) };
        self.stats.jwks_fetches.fetch_add(1, Ordering::Relaxed);
        match fetch_keys(&self.http, &remote.jwks_uri).await {
            Ok(keys) => {
                self.replace_keys(keys);
                Ok(())
            }
            Err(error) => {
                self.stats.jwks_fetch_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "could not refresh the JWKS; keeping the cached keys");
                Err(error)
            }
        }
    }

    /// Refetches the JWKS for an unknown kid unless a refetch ran within the refetch interval.
    /// Returns whether the keys changed since `seen_generation` (worth validating again).
    async fn refetch_for_unknown_kid(&self, seen_generation: u64) -> bool {
        let Some(remote) = &self.remote else { return false };
        let mut last = remote.last_refetch.lock().await;
        if self.snapshot().generation != seen_generation {
            return true; // someone refreshed while we waited
        }
        if last.is_some_and(|at| at.elapsed() < remote.refetch_interval) {
            self.stats.refetches_suppressed.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        *last = Some(Instant::now());
        self.refresh_keys().await.is_ok()
    }

    pub(crate) async fn sync_feed(&self) -> Result<(), FetchError> {
        let Some(feed) = &self.feed else { return Ok(()) };
        self.stats.feed_rounds.fetch_add(1, Ordering::Relaxed);
        match feed.sync(&self.http, &self.stats.feed_requests).await {
            Ok(()) => Ok(()),
            Err(error) => {
                self.stats.feed_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, "revocation feed sync failed");
                Err(error)
            }
        }
    }
}

/// Claims of a token presented as Bearer: refused when DPoP-bound.
fn refuse_bound(claims: AccessClaims) -> Result<AccessClaims, VerifyError> {
    if claims.cnf.is_some() { Err(VerifyError::DpopBoundAsBearer) } else { Ok(claims) }
}

/// The token of the one `Authorization: DPoP <token>` header; `None` when the scheme is another
/// (or the header is missing or repeated: the Bearer path reports that).
fn dpop_token(headers: &HeaderMap) -> Result<Option<&str>, VerifyError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else { return Ok(None) };
    let Some((scheme, token)) = value.to_str().ok().and_then(|v| v.split_once(' ')) else { return Ok(None) };
    if !scheme.eq_ignore_ascii_case("dpop") {
        return Ok(None);
    }
    let token = token.trim();
    if token.is_empty() || token.contains(' ') {
        return Err(VerifyError::MalformedHeader);
    }
    Ok(Some(token))
}

/// The token of the one `Authorization: Bearer <token>` header.
pub fn bearer_token(headers: &HeaderMap) -> Result<&str, VerifyError> {
    let mut values = headers.get_all(http::header::AUTHORIZATION).iter();
    let (Some(value), None) = (values.next(), values.next()) else {
        return Err(if headers.contains_key(http::header::AUTHORIZATION) {
            VerifyError::MalformedHeader
        } else {
            VerifyError::MissingToken
        });
    };
    value
        .to_str()
        .ok()
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map(|(_, token)| token.trim())
        .filter(|token| !token.is_empty() && !token.contains(' '))
        .ok_or(VerifyError::MalformedHeader)
}
