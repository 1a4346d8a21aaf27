//! Token introspection (RFC 7662), the opt-in fallback for tokens that are not JWTs (opaque
//! tokens): [`IntrospectionConfig`], and the introspector with its bounded verdict cache.
//!
//! Only a token that is not shaped like a JWS (three dot-separated parts whose first part is
//! base64url of a JSON object) is introspected; a JWT that fails local validation (bad
//! signature, unknown key, expired…) is refused locally, never sent. Verdicts are cached by the
//! SHA-256 of the token: an active token until the earlier of the cache TTL and its `exp`, an
//! inactive or refused one for the TTL. Failures to introspect (keycard down, 5xx, a bad answer)
//! are not cached and answer 503. Concurrent checks of one token share one request, and at most
//! [`IntrospectionConfig::max_concurrent`] requests run at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keycard_core::MAX_TOKEN_BYTES;
use keycard_core::TokenError;
use keycard_core::claims::AccessClaims;
use keycard_core::clock::Clock;
use keycard_core::validate::check_times;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, watch};

use crate::error::VerifyError;

/// Default time an introspection verdict is cached (never past the token's `exp`).
pub const DEFAULT_INTROSPECTION_CACHE_TTL: Duration = Duration::from_secs(5);

/// Default number of verdicts cached.
pub const DEFAULT_INTROSPECTION_CACHE_CAPACITY: usize = 10_000;

/// Default cap on introspection requests in flight at once.
pub const DEFAULT_INTROSPECTION_MAX_CONCURRENT: usize = 32;

/// Largest introspection answer accepted.
const ANSWER_LIMIT: usize = 64 * 1024;

/// A secret string that `Debug` never prints.
#[derive(Clone)]
struct Secret(Arc<str>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// How the verifier introspects opaque tokens; see [`crate::VerifierBuilder::introspection`].
/// `Debug` never prints the secret.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct IntrospectionConfig {
    /// The introspection endpoint; `None`: the `introspection_endpoint` of the issuer's RFC 8414
    /// metadata (`{issuer}/.well-known/oauth-authorization-server`).
    pub endpoint: Option<String>,
    /// The confidential client the verifier authenticates as (`client_secret_basic`).
    pub client_id: String,
    client_secret: Secret,
    /// How long a verdict is cached; an active token's never past its `exp`. Default 5 s. This
    /// is how long a revoked opaque token can still pass (unless the revocation feed refuses its
    /// session first); zero disables the cache.
    pub cache_ttl: Duration,
    /// Most verdicts cached. Default 10,000; zero disables the cache.
    pub cache_capacity: usize,
    /// Most introspection requests in flight at once; more wait. Default 32.
    pub max_concurrent: usize,
}

impl IntrospectionConfig {
    /// Introspection as the registered confidential client `client_id` with `client_secret`,
    /// at the endpoint the issuer's metadata names.
    pub fn new(client_id: impl Into<String>, client_secret: impl Into<String>) -> Self {
        Self {
            endpoint: None,
            client_id: client_id.into(),
            client_secret: Secret(client_secret.into().into()),
            cache_ttl: DEFAULT_INTROSPECTION_CACHE_TTL,
            cache_capacity: DEFAULT_INTROSPECTION_CACHE_CAPACITY,
            max_concurrent: DEFAULT_INTROSPECTION_MAX_CONCURRENT,
        }
    }

    /// Use this introspection endpoint instead of discovering it.
    pub fn endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self
    }

    /// Sets how long verdicts are cached.
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    /// Sets how many verdicts are cached.
    pub fn cache_capacity(mut self, capacity: usize) -> Self {
        self.cache_capacity = capacity;
        self
    }

    /// Sets the cap on concurrent introspection requests.
    pub fn max_concurrent(mut self, max: usize) -> Self {
        self.max_concurrent = max;
        self
    }
}

/// Whether `token` is shaped like a JWS: exactly three dot-separated parts, the first of which
/// is base64url of a JSON object. Anything else is opaque.
pub(crate) fn looks_like_jws(token: &str) -> bool {
    let mut parts = token.split('.');
    let (Some(header), Some(_), Some(_), None) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(header)
        .ok()
        .and_then(|json| serde_json::from_slice::<serde_json::Map<String, serde_json::Value>>(&json).ok())
        .is_some()
}

type Verdict = Result<AccessClaims, VerifyError>;
type Key = [u8; 32];

/// The introspector: endpoint, credentials, the verdict cache and the requests in flight.
pub(crate) struct Introspector {
    pub(crate) endpoint: String,
    /// The prepared `Authorization: Basic …` value.
    authorization: Secret,
    issuer: String,
    audience: String,
    leeway: i64,
    ttl_ms: i64,
    capacity: usize,
    http: reqwest::Client,
    clock: Arc<dyn Clock>,
    permits: Arc<Semaphore>,
    state: Mutex<CacheState>,
    pub(crate) stats: IntrospectionCounters,
}

#[derive(Default)]
pub(crate) struct IntrospectionCounters {
    pub(crate) requests: AtomicU64,
    pub(crate) failures: AtomicU64,
    pub(crate) cache_hits: AtomicU64,
}

#[derive(Default)]
struct CacheState {
    entries: HashMap<Key, Entry>,
    /// Introspections in flight, by token hash: their verdicts appear here once.
    flights: HashMap<Key, watch::Receiver<Option<Verdict>>>,
}

struct Entry {
    verdict: Verdict,
    /// Unix ms (verifier's clock) after which the entry is dropped.
    until_ms: i64,
}

/// The parts of an RFC 7662 answer the verifier reads.
#[derive(Deserialize)]
struct Answer {
    active: bool,
    #[serde(default)]
    token_type: Option<String>,
    #[serde(default)]
    iss: Option<String>,
    #[serde(default)]
    aud: Option<Audience>,
    #[serde(default)]
    sub: Option<String>,
    #[serde(default)]
    sid: Option<String>,
    #[serde(default)]
    exp: Option<i64>,
    #[serde(default)]
    iat: Option<i64>,
    #[serde(default)]
    nbf: Option<i64>,
    #[serde(default)]
    jti: Option<String>,
    #[serde(default)]
    client_id: Option<String>,
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    role: Option<String>,
    /// RFC 8176 methods, when the server says (extra members are allowed by RFC 7662 §2.2). Read
    /// leniently: a malformed `amr` counts as none (it can only fail step-up checks), rather
    /// than making the whole answer unreadable.
    #[serde(default)]
    amr: Option<serde_json::Value>,
    #[serde(default)]
    auth_time: Option<i64>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    fn contains(&self, audience: &str) -> bool {
        match self {
            Self::One(one) => one == audience,
            Self::Many(list) => list.iter().any(|a| a == audience),
        }
    }
}

/// The `Authorization` value of `client_secret_basic` (RFC 6749 §2.3.1): id and secret each
/// form-urlencoded, then `id:secret` base64-encoded.
pub(crate) fn client_secret_basic(client_id: &str, client_secret: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = form_urlencoded::byte_serialize(client_secret.as_bytes()).collect();
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// The part of RFC 8414 metadata discovery reads.
#[derive(Deserialize)]
pub(crate) struct ServerMetadata {
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) introspection_endpoint: Option<String>,
}

/// What the verifier's settings give the introspector.
pub(crate) struct Settings {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) leeway: i64,
    pub(crate) http: reqwest::Client,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Introspector {
    pub(crate) fn new(endpoint: String, config: &IntrospectionConfig, settings: Settings) -> Self {
        let ttl_ms = i64::try_from(config.cache_ttl.as_millis()).unwrap_or(i64::MAX);
        Self {
            endpoint,
            authorization: Secret(client_secret_basic(&config.client_id, &config.client_secret.0).into()),
            issuer: settings.issuer,
            audience: settings.audience,
            leeway: settings.leeway,
            ttl_ms,
            capacity: if ttl_ms > 0 { config.cache_capacity } else { 0 },
            http: settings.http,
            clock: settings.clock,
            permits: Arc::new(Semaphore::new(config.max_concurrent.max(1))),
            state: Mutex::new(CacheState::default()),
            stats: IntrospectionCounters::default(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, CacheState> {
        // Entries are inserted and removed whole; a panic cannot leave half of one.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Verdicts cached now.
    pub(crate) fn cached(&self) -> usize {
        self.lock().entries.len()
    }

    /// The cached verdict for `token`, if any is still fresh.
    pub(crate) fn cached_verdict(&self, token: &str) -> Option<Verdict> {
        self.lookup(&self.lock(), &key_of(token))
    }

    fn lookup(&self, state: &CacheState, key: &Key) -> Option<Verdict> {
        let entry = state.entries.get(key)?;
        (self.clock.now_ms() < entry.until_ms).then(|| {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            entry.verdict.clone()
        })
    }

    /// Introspects an opaque `token` (cached, shared with concurrent checks of the same token).
    pub(crate) async fn check(self: &Arc<Self>, token: &str) -> Verdict {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(TokenError::TooLarge.into());
        }
        let key = key_of(token);
        let mut permit = None;
        let mut flight = loop {
            {
                let mut state = self.lock();
                if let Some(verdict) = self.lookup(&state, &key) {
                    return verdict;
                }
                match state.flights.get(&key) {
                    Some(flight) if flight.has_changed().is_ok() => break flight.clone(),
                    _ => {
                        if let Some(permit) = permit.take() {
                            let (sender, receiver) = watch::channel(None);
                            state.flights.insert(key, receiver.clone());
                            let (this, token) = (self.clone(), token.to_owned());
                            tokio::spawn(async move { this.run(key, token, sender, permit).await });
                            break receiver;
                        }
                    }
                }
            }
            // Wait for a request slot in this caller's future (a caller that gives up frees its
            // place), then look again: someone may have started the same introspection.
            permit = Some(
                self.permits.clone().acquire_owned().await.map_err(|_| unavailable("the introspector is closed"))?,
            );
        };
        drop(permit);
        match flight.wait_for(Option::is_some).await {
            Ok(verdict) => verdict.clone().unwrap_or_else(|| Err(unavailable("introspection interrupted"))),
            Err(_) => Err(unavailable("introspection interrupted")),
        }
    }

    /// One introspection request; caches and publishes the verdict.
    async fn run(
        self: Arc<Self>,
        key: Key,
        token: String,
        verdict_out: watch::Sender<Option<Verdict>>,
        permit: tokio::sync::OwnedSemaphorePermit,
    ) {
        let answer = self.request(&token).await;
        drop(permit);
        let now_ms = self.clock.now_ms();
        let (verdict, until_ms) = match answer {
            Ok(answer) => self.judge(answer, now_ms),
            Err(reason) => {
                self.stats.failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%reason, endpoint = %self.endpoint, "token introspection failed");
                (Err(unavailable(&reason)), None)
            }
        };
        {
            let mut state = self.lock();
            state.flights.remove(&key);
            if let Some(until_ms) = until_ms.filter(|until| *until > now_ms) {
                self.insert(&mut state, key, Entry { verdict: verdict.clone(), until_ms }, now_ms);
            }
        }
        verdict_out.send_replace(Some(verdict));
    }

    /// Inserts an entry, first dropping expired ones if the cache is full, then an arbitrary
    /// one if it is still full.
    fn insert(&self, state: &mut CacheState, key: Key, entry: Entry, now_ms: i64) {
        if self.capacity == 0 {
            return;
        }
        if state.entries.len() >= self.capacity && !state.entries.contains_key(&key) {
            state.entries.retain(|_, e| e.until_ms > now_ms);
            if state.entries.len() >= self.capacity
                && let Some(victim) = state.entries.keys().next().copied()
            {
                state.entries.remove(&victim);
            }
        }
        state.entries.insert(key, entry);
    }

    /// `POST token=…&token_type_hint=access_token` with `client_secret_basic`. The error is a
    /// reason to log; it never holds the token or the secret.
    async fn request(&self, token: &str) -> Result<Answer, String> {
        let form = form_urlencoded::Serializer::new(String::new())
            .append_pair("token", token)
            .append_pair("token_type_hint", "access_token")
            .finish();
        let mut authorization = http::HeaderValue::from_str(&self.authorization.0)
            .map_err(|_| "unencodable client credentials".to_owned())?;
        authorization.set_sensitive(true);
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let mut response = self
            .http
            .post(&self.endpoint)
            .header(http::header::AUTHORIZATION, authorization)
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(http::header::ACCEPT, "application/json")
            .body(form)
            .send()
            .await
            .map_err(|e| format!("POST {}: {}", self.endpoint, e.without_url()))?;
        if !response.status().is_success() {
            return Err(format!("POST {}: HTTP {}", self.endpoint, response.status().as_u16()));
        }
        let mut body = Vec::new();
        while let Some(chunk) =
            response.chunk().await.map_err(|e| format!("POST {}: {}", self.endpoint, e.without_url()))?
        {
            if body.len() + chunk.len() > ANSWER_LIMIT {
                return Err(format!("POST {}: the answer is larger than {ANSWER_LIMIT} bytes", self.endpoint));
            }
            body.extend_from_slice(&chunk);
        }
        serde_json::from_slice(&body).map_err(|e| format!("POST {}: unexpected answer: {e}", self.endpoint))
    }

    /// The verdict on an answer and until when it may be cached (Unix ms).
    fn judge(&self, answer: Answer, now_ms: i64) -> (Verdict, Option<i64>) {
        let refused_until = now_ms.saturating_add(self.ttl_ms);
        match self.claims_of(answer, now_ms.div_euclid(1000)) {
            Ok(claims) => {
                // Never past `exp`: after it the token is refused locally without asking.
                let until = refused_until.min(claims.exp.saturating_mul(1000));
                (Ok(claims), Some(until))
            }
            Err(error) => (Err(error), Some(refused_until)),
        }
    }

    /// The claims of an active access token of this issuer for this audience.
    fn claims_of(&self, answer: Answer, now: i64) -> Result<AccessClaims, VerifyError> {
        if !answer.active {
            return Err(VerifyError::Inactive);
        }
        // Only access tokens are accepted: keycard also reports its refresh tokens active
        // (`token_type: refresh_token`); a token without a type is refused too.
        if !answer.token_type.as_deref().is_some_and(|t| t.eq_ignore_ascii_case("bearer")) {
            return Err(TokenError::WrongType.into());
        }
        let iss = answer.iss.ok_or(TokenError::MissingClaim("iss"))?;
        if iss.trim_end_matches('/') != self.issuer {
            return Err(TokenError::WrongIssuer.into());
        }
        if !answer.aud.ok_or(TokenError::MissingClaim("aud"))?.contains(&self.audience) {
            return Err(TokenError::WrongAudience.into());
        }
        let exp = answer.exp.ok_or(TokenError::MissingClaim("exp"))?;
        let iat = answer.iat.unwrap_or(now.min(exp));
        let nbf = answer.nbf.unwrap_or(iat);
        check_times(exp, nbf, iat, now, self.leeway)?;
        Ok(AccessClaims {
            iss,
            aud: self.audience.clone(),
            sub: answer.sub.filter(|s| !s.is_empty()).ok_or(TokenError::MissingClaim("sub"))?,
            exp,
            iat,
            nbf,
            jti: answer.jti.unwrap_or_default(),
            sid: answer.sid.filter(|s| !s.is_empty()).ok_or(TokenError::MissingClaim("sid"))?,
            client_id: answer.client_id,
            scope: answer.scope,
            role: answer.role,
            email_verified: None,
            // Only `token_type` Bearer passes above: a DPoP-bound opaque token is refused.
            cnf: None,
            amr: answer.amr.and_then(|amr| serde_json::from_value(amr).ok()).unwrap_or_default(),
            auth_time: answer.auth_time,
        })
    }
}

fn key_of(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

fn unavailable(reason: &str) -> VerifyError {
    VerifyError::IntrospectionUnavailable { reason: reason.to_owned() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_jws_shaped_tokens_count_as_jwts() {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"EdDSA","typ":"at+jwt"}"#);
        assert!(looks_like_jws(&format!("{header}.e30.c2ln")));
        assert!(looks_like_jws(&format!("{header}..")));
        for opaque in ["kcrt_abcDEF123", "", "a.b", "not.a.jwt", "..", &format!("{header}.e30.c2ln.x"), "e30"] {
            assert!(!looks_like_jws(opaque), "{opaque}");
        }
    }

    #[test]
    fn client_secret_basic_form_urlencodes_before_base64() {
        let header = client_secret_basic("a b:c", "p@ss+/");
        let decoded = STANDARD.decode(header.strip_prefix("Basic ").unwrap()).unwrap();
        assert_eq!(String::from_utf8(decoded).unwrap(), "a+b%3Ac:p%40ss%2B%2F");
    }

    #[test]
    fn amr_and_auth_time_come_from_the_answer_and_a_malformed_amr_counts_as_none() {
        use keycard_core::amr::{Amr, AuthMethod};
        let settings = Settings {
            issuer: "https://auth.example".into(),
            audience: "api".into(),
            leeway: 30,
            http: reqwest::Client::new(),
            clock: Arc::new(keycard_core::clock::ManualClock::at(1_000)),
        };
        let introspector = Introspector::new(
            "https://auth.example/introspect".into(),
            &IntrospectionConfig::new("api", "s"),
            settings,
        );
        let answer = |extra: serde_json::Value| {
            let mut answer = serde_json::json!({
                "active": true, "token_type": "Bearer", "iss": "https://auth.example", "aud": "api",
                "sub": "user-1", "sid": "session-1", "exp": 2_000,
            });
            answer.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
            serde_json::from_value::<Answer>(answer).unwrap()
        };
        let claims = introspector
            .claims_of(answer(serde_json::json!({"amr": ["pwd", "otp", "mfa"], "auth_time": 900})), 1_000)
            .unwrap();
        assert_eq!(claims.amr, Amr::of(&[AuthMethod::Pwd, AuthMethod::Otp, AuthMethod::Mfa]));
        assert_eq!(claims.auth_time, Some(900));
        let claims = introspector.claims_of(answer(serde_json::json!({"amr": "mfa"})), 1_000).unwrap();
        assert_eq!((claims.amr, claims.auth_time), (Amr::EMPTY, None));
    }

    #[test]
    fn the_config_never_prints_the_secret() {
        let config = IntrospectionConfig::new("api", "hunter2-secret");
        assert!(!format!("{config:?}").contains("hunter2"), "{config:?}");
    }
}
