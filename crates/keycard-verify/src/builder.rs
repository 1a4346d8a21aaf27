//! [`VerifierBuilder`]: where keys come from (discovery, a JWKS URL, or a static set), the
//! refetch and refresh periods, the revocation feed, and the HTTP client.

use std::sync::Arc;
use std::time::Duration;

use keycard_core::clock::{Clock, SystemClock};
use keycard_core::keys::PublicKeys;
use keycard_core::validate::Validator;

use crate::dpop::{DpopOptions, DpopState};
use crate::error::BuildError;
use crate::fetch::{discover, discover_metadata, is_safe_url};
use crate::introspect::{IntrospectionConfig, Introspector};
use crate::revocation::{Feed, RevocationConfig};
use crate::verifier::{RemoteKeys, Verifier};

/// Default least time between two JWKS refetches caused by unknown `kid`s.
pub const DEFAULT_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// Default period of the background JWKS refresh (keycard's JWKS `max-age`).
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(300);

/// Default clock leeway for `exp`, `nbf` and `iat` (SPEC.md).
pub const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);

/// Default timeout of each request to keycard.
pub const DEFAULT_HTTP_TIMEOUT: Duration = Duration::from_secs(2);

enum KeysFrom {
    Discovery,
    JwksUri(String),
    Static(PublicKeys),
}

enum Revocation {
    /// Follow the feed when keys are fetched; off for static keys.
    Default,
    Off,
    On(RevocationConfig),
}

/// Configures a [`Verifier`]; see [`Verifier::builder`].
#[must_use]
pub struct VerifierBuilder {
    issuer: String,
    audience: String,
    leeway: Duration,
    keys: KeysFrom,
    refetch_interval: Duration,
    refresh_interval: Option<Duration>,
    revocation: Revocation,
    http: Option<reqwest::Client>,
    http_timeout: Duration,
    allow_plain_http: bool,
    clock: Arc<dyn Clock>,
    introspection: Option<IntrospectionConfig>,
    dpop: Option<DpopOptions>,
}

impl VerifierBuilder {
    pub(crate) fn new(issuer: String, audience: String) -> Self {
        Self {
            issuer: issuer.trim_end_matches('/').to_owned(),
            audience,
            leeway: DEFAULT_LEEWAY,
            keys: KeysFrom::Discovery,
            refetch_interval: DEFAULT_REFETCH_INTERVAL,
            refresh_interval: Some(DEFAULT_REFRESH_INTERVAL),
            revocation: Revocation::Default,
            http: None,
            http_timeout: DEFAULT_HTTP_TIMEOUT,
            allow_plain_http: false,
            clock: Arc::new(SystemClock),
            introspection: None,
            dpop: None,
        }
    }

    /// Clock leeway for `exp`, `nbf` and `iat`. Default 30 s.
    pub fn leeway(mut self, leeway: Duration) -> Self {
        self.leeway = leeway;
        self
    }

    /// Fetch keys from this JWKS URL instead of discovering it from the issuer.
    pub fn jwks_uri(mut self, url: impl Into<String>) -> Self {
        self.keys = KeysFrom::JwksUri(url.into());
        self
    }

    /// Accept exactly these keys and fetch none (no revocation feed unless [`Self::revocation`]).
    pub fn static_keys(mut self, keys: PublicKeys) -> Self {
        self.keys = KeysFrom::Static(keys);
        self
    }

    /// Least time between two JWKS refetches caused by tokens with an unknown `kid`, so a flood
    /// of forged kids costs at most one fetch per interval. Default 30 s.
    pub fn jwks_refetch_interval(mut self, interval: Duration) -> Self {
        self.refetch_interval = interval;
        self
    }

    /// Period of the background JWKS refresh, which also drops retired keys; `None` disables it.
    /// Default 5 minutes.
    pub fn jwks_refresh_interval(mut self, interval: Option<Duration>) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Follow the revocation feed with this configuration (also with static keys).
    pub fn revocation(mut self, config: RevocationConfig) -> Self {
        self.revocation = Revocation::On(config);
        self
    }

    /// Do not follow the revocation feed: revoked sessions' tokens pass until they expire.
    pub fn without_revocation(mut self) -> Self {
        self.revocation = Revocation::Off;
        self
    }

    /// The HTTP client to fetch with (its timeouts apply; [`Self::http_timeout`] is then unused).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// Timeout of each request to keycard. Default 2 s.
    pub fn http_timeout(mut self, timeout: Duration) -> Self {
        self.http_timeout = timeout;
        self
    }

    /// The clock tokens' `exp`, `nbf` and `iat` and the revocation feed's staleness are judged
    /// by. Default [`SystemClock`]. Tests pass a [`keycard_core::clock::ManualClock`] (the one
    /// their keycard reads) to move time without sleeping; the feed's polling and the JWKS
    /// refetch limit keep running on real time.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Opt in to token introspection (RFC 7662) for opaque deployments: a token that is not a
    /// JWT at all (not three dot-separated parts with a JSON header) is POSTed to the
    /// introspection endpoint, authenticated as the confidential client of `config`
    /// (`client_secret_basic`). `active: false` is refused (401); an active token passes only if
    /// it is an access token (`token_type` Bearer: keycard's refresh tokens are refused) of this
    /// issuer and audience, within its `exp`; its claims (`sub`, `sid`, `scope`, `exp`, …) are
    /// returned like a JWT's and its `sid` is checked against the revocation feed. Verdicts are
    /// cached briefly ([`IntrospectionConfig::cache_ttl`], never past `exp`); an endpoint that
    /// cannot be reached answers 503. A JWT that fails local validation is never sent.
    ///
    /// Without this option nothing is ever introspected: a token that is not a JWT is refused
    /// as malformed, with no network call. The endpoint, when not given, is the
    /// `introspection_endpoint` of `{issuer}/.well-known/oauth-authorization-server`.
    pub fn introspection(mut self, config: IntrospectionConfig) -> Self {
        self.introspection = Some(config);
        self
    }

    /// Accept DPoP-bound access tokens (RFC 9449): `Authorization: DPoP <token>` with a proof
    /// in the `DPoP` header, checked by [`Verifier::verify_request`] (and the layer and
    /// extractors) against the request's method and public URI, the token's `cnf.jkt`, and a
    /// replay cache of this process. Refusals are 401 with `WWW-Authenticate: DPoP
    /// error="invalid_dpop_proof"` (proof problems) or `error="invalid_token"` (token problems).
    /// Behind a proxy, set [`DpopOptions::public_origin`].
    ///
    /// With or without this option, a DPoP-bound token presented as Bearer is refused.
    pub fn dpop(mut self, options: DpopOptions) -> Self {
        self.dpop = Some(options);
        self
    }

    /// Allow `http://` URLs to non-loopback hosts (a trusted private network). Off by default:
    /// keys fetched over plain HTTP could be replaced in transit.
    pub fn allow_plain_http(mut self, allow: bool) -> Self {
        self.allow_plain_http = allow;
        self
    }

    pub(crate) fn validator(&self) -> Validator {
        Validator::new(&self.issuer, &self.audience, self.leeway.as_secs())
    }

    pub(crate) fn http_client_or_default(&self) -> reqwest::Client {
        self.http.clone().unwrap_or_else(|| self.build_http().unwrap_or_default())
    }

    fn build_http(&self) -> Result<reqwest::Client, reqwest::Error> {
        reqwest::Client::builder()
            .timeout(self.http_timeout)
            .connect_timeout(self.http_timeout)
            .user_agent(concat!("keycard-verify/", env!("CARGO_PKG_VERSION")))
            .build()
    }

    fn check_url(&self, url: &str) -> Result<(), BuildError> {
        if self.allow_plain_http || is_safe_url(url) { Ok(()) } else { Err(BuildError::InsecureUrl(url.to_owned())) }
    }

    /// Fetches what is needed (discovery, the JWKS, a first revocation-feed sync), then starts
    /// the background tasks. Fails rather than starting with no keys or no revocation data.
    /// Needs a Tokio runtime.
    pub async fn build(self) -> Result<Verifier, BuildError> {
        if self.issuer.is_empty() || self.audience.is_empty() {
            return Err(BuildError::Config("issuer and audience must not be empty".into()));
        }
        if self.refetch_interval.is_zero() || self.refresh_interval.is_some_and(|p| p.is_zero()) {
            return Err(BuildError::Config("JWKS refetch and refresh intervals must be positive".into()));
        }
        let dpop = match self.dpop.clone() {
            Some(options) => Some(DpopState::new(options).map_err(BuildError::Config)?),
            None => None,
        };
        let http = match &self.http {
            Some(client) => client.clone(),
            None => self.build_http().map_err(BuildError::Client)?,
        };
        let feed_config = match &self.revocation {
            Revocation::On(config) => Some(config.clone()),
            Revocation::Default if !matches!(self.keys, KeysFrom::Static(_)) => Some(RevocationConfig::default()),
            Revocation::Default | Revocation::Off => None,
        };
        if let Some(config) = &feed_config
            && (config.poll_interval.is_zero() || config.staleness_bound <= config.poll_interval)
        {
            return Err(BuildError::Config("the staleness bound must exceed a positive poll interval".into()));
        }
        let discovery = match self.keys {
            KeysFrom::Discovery => {
                self.check_url(&self.issuer)?;
                Some(discover(&http, &self.issuer).await?)
            }
            _ => None,
        };
        let feed = match feed_config {
            Some(config) => {
                let url = config
                    .feed_url
                    .clone()
                    // Empty when the issuer's document does not name a feed.
                    .or_else(|| {
                        discovery
                            .as_ref()
                            .map(|d| d.keycard_revocation_feed_endpoint.clone())
                            .filter(|url| !url.is_empty())
                    })
                    .unwrap_or_else(|| format!("{}/auth/revocations", self.issuer));
                self.check_url(&url)?;
                Some(Feed::new(url, config, self.leeway.as_secs().try_into().unwrap_or(i64::MAX), self.clock.clone()))
            }
            None => None,
        };
        let introspector = match &self.introspection {
            Some(config) => {
                if config.client_id.is_empty() {
                    return Err(BuildError::Config("the introspection client id must not be empty".into()));
                }
                let endpoint = match &config.endpoint {
                    Some(url) => url.clone(),
                    None => {
                        self.check_url(&self.issuer)?;
                        discover_metadata(&http, &self.issuer).await?.introspection_endpoint.ok_or_else(|| {
                            BuildError::Config(format!(
                                "{}/.well-known/oauth-authorization-server names no introspection_endpoint",
                                self.issuer
                            ))
                        })?
                    }
                };
                // The client secret travels with every introspection request.
                self.check_url(&endpoint)?;
                let settings = crate::introspect::Settings {
                    issuer: self.issuer.clone(),
                    audience: self.audience.clone(),
                    leeway: self.leeway.as_secs().try_into().unwrap_or(i64::MAX),
                    http: http.clone(),
                    clock: self.clock.clone(),
                };
                Some(Arc::new(Introspector::new(endpoint, config, settings)))
            }
            None => None,
        };
        let validator = self.validator();
        let (keys, remote) = match self.keys {
            KeysFrom::Static(keys) => (keys, None),
            KeysFrom::JwksUri(uri) => (PublicKeys::default(), Some(uri)),
            KeysFrom::Discovery => (PublicKeys::default(), discovery.map(|d| d.jwks_uri)),
        };
        if let Some(uri) = &remote
            && !(self.allow_plain_http || is_safe_url(uri))
        {
            return Err(BuildError::InsecureUrl(uri.clone()));
        }
        let remote = remote.map(|uri| RemoteKeys::new(uri, self.refetch_interval, self.refresh_interval));
        let verifier = Verifier::assemble(validator, http, keys, remote, feed, self.clock.clone(), introspector, dpop);
        verifier.inner.refresh_keys().await?;
        verifier.inner.sync_feed().await?;
        verifier.spawn_background_tasks();
        Ok(verifier)
    }
}
