//! DPoP (RFC 9449) for resource servers: [`DpopOptions`] turns on `Authorization: DPoP <token>`
//! with a proof in the `DPoP` header, checked by [`crate::Verifier::verify_request`] (and so by
//! [`crate::VerifierLayer`] and the extractors).
//!
//! A request with the `DPoP` scheme is accepted when the token passes the whole checklist (as a
//! Bearer token would, revocation feed included), carries `cnf.jkt`, and exactly one `DPoP`
//! header holds a proof that passes [`keycard_core::dpop::verify_proof`] for the request's
//! method and public URI and for that token (`ath`), made with the key the token is bound to,
//! and not seen before (a per-process replay cache). The proof is never cached.
//!
//! A DPoP-bound token (one with `cnf`) is always refused as a Bearer token, with or without
//! these options: a stolen bound token cannot be downgraded.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use keycard_core::dpop::{DpopPolicy, JtiCache, MemoryJtiCache, VerifiedProof, normalize_htu};
use sha2::{Digest, Sha256};

/// Default number of `(jkt, jti)` pairs the replay cache holds (each 32 bytes of hash plus
/// bookkeeping): proofs live 60 s, so this serves about 1,600 DPoP requests a second. When full
/// of live pairs, new proofs are refused (fail closed) until some expire.
pub const DEFAULT_REPLAY_CACHE_CAPACITY: usize = 100_000;

/// A replay record shared by several resource-server instances: each proof is accepted once by
/// all of them, as keycard's own server does with its store or Redis. Set it with
/// [`DpopOptions::shared_replay`]; [`RedisReplay`] is the one built in.
pub trait ReplayStore: Send + Sync + 'static {
    /// Records `key` for `ttl_secs` seconds unless it is there already: `Ok(true)` when it was
    /// new (the proof is accepted), `Ok(false)` when it was there (a replay). `Err` when the
    /// store cannot answer; the request is then refused with 503 (fail closed), the text logged.
    fn spend<'a>(
        &'a self,
        key: &'a str,
        ttl_secs: u64,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>>;
}

/// [`ReplayStore`] on Redis: one `SET key 1 NX EX ttl` per proof, through a reconnecting
/// connection manager. Keys are `keycard-verify:dpop:<jkt>:<SHA-256 of jti>`; resource servers
/// may share one Redis (a proof names its method, URL and token, so it is good for one of
/// them only anyway).
#[cfg(feature = "redis")]
#[derive(Clone)]
pub struct RedisReplay {
    conn: redis::aio::ConnectionManager,
}

#[cfg(feature = "redis")]
impl std::fmt::Debug for RedisReplay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisReplay")
    }
}

#[cfg(feature = "redis")]
impl RedisReplay {
    /// Connects to `url` (`redis://host:port/db`, `rediss://` for TLS); fails when the URL is
    /// invalid or the server does not answer.
    pub async fn connect(url: &str) -> Result<Self, crate::BuildError> {
        let failed = |e: redis::RedisError| crate::BuildError::Config(format!("the DPoP replay Redis: {e}"));
        let client = redis::Client::open(url).map_err(failed)?;
        Ok(Self { conn: redis::aio::ConnectionManager::new(client).await.map_err(failed)? })
    }
}

#[cfg(feature = "redis")]
impl ReplayStore for RedisReplay {
    fn spend<'a>(
        &'a self,
        key: &'a str,
        ttl_secs: u64,
    ) -> Pin<Box<dyn Future<Output = Result<bool, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut conn = self.conn.clone();
            let set: Option<String> = redis::cmd("SET")
                .arg(key)
                .arg(1)
                .arg("NX")
                .arg("EX")
                .arg(ttl_secs.max(1))
                .query_async(&mut conn)
                .await
                .map_err(|e| format!("Redis: {e}"))?;
            Ok(set.is_some())
        })
    }
}

/// How a [`crate::Verifier`] accepts DPoP-bound tokens; see [`crate::VerifierBuilder::dpop`].
#[derive(Clone)]
#[must_use]
pub struct DpopOptions {
    pub(crate) policy: DpopPolicy,
    pub(crate) public_origin: Option<String>,
    pub(crate) replay_capacity: usize,
    pub(crate) shared_replay: Option<Arc<dyn ReplayStore>>,
}

impl std::fmt::Debug for DpopOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DpopOptions")
            .field("policy", &self.policy)
            .field("public_origin", &self.public_origin)
            .field("replay_capacity", &self.replay_capacity)
            .field("shared_replay", &self.shared_replay.is_some())
            .finish()
    }
}

impl Default for DpopOptions {
    fn default() -> Self {
        Self {
            policy: DpopPolicy::default(),
            public_origin: None,
            replay_capacity: DEFAULT_REPLAY_CACHE_CAPACITY,
            shared_replay: None,
        }
    }
}

impl DpopOptions {
    /// EdDSA and ES256 proofs, 60 s old at most, 5 s of clock skew (keycard-core's
    /// [`DpopPolicy::default`]); no public origin; a replay cache of
    /// [`DEFAULT_REPLAY_CACHE_CAPACITY`] pairs.
    pub fn new() -> Self {
        Self::default()
    }

    /// The URL clients address this service by (`https://api.example`, or with a path prefix
    /// the proxy strips: `https://example.com/api`): a proof's `htu` must be this followed by
    /// the request's path. Set it whenever the service runs behind a proxy or load balancer:
    /// the `Host` header is not to be trusted. Without it, the request URI must be absolute
    /// (HTTP/2 and most HTTP/1.1 servers give only the path), otherwise every DPoP request is
    /// refused with 500 ([`crate::VerifyError::DpopRequestUriUnknown`]).
    ///
    /// The path is the one the layer sees: with axum, a layer inside a `nest("/prefix", …)`
    /// sees the path without the prefix, so put the prefix in the origin, or the layer outside.
    pub fn public_origin(mut self, origin: impl Into<String>) -> Self {
        self.public_origin = Some(origin.into().trim_end_matches('/').to_owned());
        self
    }

    /// The algorithms, proof age, clock skew and size accepted.
    pub fn policy(mut self, policy: DpopPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// How many `(jkt, jti)` pairs the replay cache holds at most.
    pub fn replay_cache_capacity(mut self, capacity: usize) -> Self {
        self.replay_capacity = capacity;
        self
    }

    /// Records accepted proofs in `store` as well, shared by every instance of the resource
    /// server: a proof accepted by one is refused as replayed by all (for example
    /// `RedisReplay::connect("redis://…")`). The process's own cache is still asked first, so a
    /// replay to the same instance costs no round trip. When the store cannot answer, DPoP
    /// requests are refused with 503 ([`crate::VerifyError::ReplayStoreUnavailable`]).
    pub fn shared_replay(mut self, store: impl ReplayStore) -> Self {
        self.shared_replay = Some(Arc::new(store));
        self
    }
}

/// A verifier's DPoP settings and its replay cache.
pub(crate) struct DpopState {
    pub(crate) policy: DpopPolicy,
    pub(crate) public_origin: Option<String>,
    /// `algs` of the `WWW-Authenticate: DPoP` challenge.
    pub(crate) algs: String,
    pub(crate) replay: MemoryJtiCache,
    pub(crate) shared_replay: Option<Arc<dyn ReplayStore>>,
}

impl DpopState {
    /// Checks the options; `Err` says what is wrong.
    pub(crate) fn new(options: DpopOptions) -> Result<Self, String> {
        if let Some(origin) = &options.public_origin
            && normalize_htu(origin).is_none()
        {
            return Err(format!("the DPoP public origin {origin:?} is not an absolute http(s) URL"));
        }
        let algs = options.policy.alg_names();
        if algs.is_empty() {
            return Err("the DPoP policy accepts no asymmetric algorithm".into());
        }
        if options.replay_capacity == 0 {
            return Err("the DPoP replay cache capacity must be positive".into());
        }
        Ok(Self {
            algs: algs.join(" "),
            policy: options.policy,
            public_origin: options.public_origin,
            replay: MemoryJtiCache::new(options.replay_capacity),
            shared_replay: options.shared_replay,
        })
    }

    /// Spends the proof's `(jkt, jti)`: `Ok(false)` when this process or (with a shared store)
    /// any instance accepted it before.
    pub(crate) async fn spend(&self, proof: &VerifiedProof, now: i64) -> Result<bool, String> {
        if !self.replay.check_and_insert(&proof.jkt, &proof.jti, proof.replay_until, now) {
            return Ok(false);
        }
        let Some(store) = &self.shared_replay else { return Ok(true) };
        let jti = Sha256::digest(proof.jti.as_bytes());
        let hex: String = jti.iter().map(|b| format!("{b:02x}")).collect();
        let key = format!("keycard-verify:dpop:{}:{hex}", proof.jkt);
        let ttl = u64::try_from(proof.replay_until - now + 1).unwrap_or(1);
        store.spend(&key, ttl).await
    }

    /// The URI the client addressed (what `htu` must be): the public origin and the request's
    /// path, or the request URI itself when it is absolute. `None` when neither is known.
    pub(crate) fn request_uri(&self, uri: &http::Uri) -> Option<String> {
        match (&self.public_origin, uri.scheme(), uri.authority()) {
            (Some(origin), _, _) => Some(format!("{origin}{}", uri.path())),
            (None, Some(scheme), Some(authority)) => Some(format!("{scheme}://{authority}{}", uri.path())),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_uri_comes_from_the_public_origin_or_an_absolute_uri_only() {
        let with_origin = DpopState::new(DpopOptions::new().public_origin("https://api.example/")).unwrap();
        let relative: http::Uri = "/a/b?x=1".parse().unwrap();
        let absolute: http::Uri = "http://internal:8080/a/b?x=1".parse().unwrap();
        assert_eq!(with_origin.request_uri(&relative).as_deref(), Some("https://api.example/a/b"));
        assert_eq!(with_origin.request_uri(&absolute).as_deref(), Some("https://api.example/a/b"), "Host ignored");
        let without = DpopState::new(DpopOptions::new()).unwrap();
        assert_eq!(without.request_uri(&relative), None);
        assert_eq!(without.request_uri(&absolute).as_deref(), Some("http://internal:8080/a/b"));
        assert_eq!(without.algs, "EdDSA Ed25519 ES256");
        assert!(DpopState::new(DpopOptions::new().public_origin("api.example")).is_err());
        assert!(DpopState::new(DpopOptions::new().replay_cache_capacity(0)).is_err());
        let hs_only = DpopPolicy { algs: vec![keycard_core::keys::KeyAlg::Hs256], ..DpopPolicy::default() };
        assert!(DpopState::new(DpopOptions::new().policy(hs_only)).is_err());
    }
}
