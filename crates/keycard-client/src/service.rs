//! [`ServiceClient`]: access tokens for a service, from the OAuth 2.0 client-credentials grant
//! (RFC 6749 §4.4), cached and renewed before they expire, one token request at a time.
//!
//! The cache is one `std` mutex around the current token and the renewal in flight (a `watch`
//! channel its waiters read the outcome from). A caller that finds the token fresh returns it
//! without waiting on anything else; one that finds it due (or missing) either joins the renewal
//! in flight or starts one, in a spawned task, so a caller that gives up (a timeout) cannot
//! abort a renewal others wait on. Every waiter gets that one renewal's outcome: N concurrent
//! callers cost one token request, and a failure reaches all of them once instead of being
//! retried N times in a row. Nothing is cached from a failure: the next call asks again.
//!
//! With [`ServiceClientBuilder::dpop`] the token requests carry a DPoP proof (RFC 9449), so the
//! tokens are bound to the service's key (`token_type: DPoP`, `cnf.jkt`), and
//! [`ServiceClient::send`] sends them as `Authorization: DPoP` with a proof for each request
//! ([`ServiceClient::dpop_proof`] makes one for another HTTP stack).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use keycard_core::ErrorBody;
use keycard_core::clock::{Clock, SystemClock};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue};
use reqwest::{Method, RequestBuilder, Response, StatusCode, Url};
use tokio::sync::watch;

use crate::client::{DEFAULT_TIMEOUT, check_status};
use crate::dpop::{Dpop, DpopKeySource};
use crate::error::ClientError;
use crate::oauth::{OAuthError, ServerMetadata, TokenEndpointResponse, client_secret_basic};
use crate::session::Secret;

/// Default renewal margin: a token is renewed once less than the larger of this and a tenth of
/// its lifetime is left (at most half its lifetime).
pub const DEFAULT_RENEWAL_MARGIN: Duration = Duration::from_secs(30);

/// Lifetime assumed for a token whose response carries no `expires_in` (keycard always sends
/// it; RFC 6749 only recommends it).
pub const DEFAULT_UNKNOWN_LIFETIME: Duration = Duration::from_secs(60);

/// After a renewal failed for a passing reason (transport, 5xx, 429) while the cached token is
/// still valid, the next attempt waits this long (ms) instead of following every call.
const RETRY_AFTER_TRANSIENT_FAILURE_MS: i64 = 1000;

/// Largest response body read from the token endpoint or the metadata document.
const BODY_LIMIT: usize = 64 * 1024;

/// An access token from the token endpoint. `Debug` never prints the token itself.
#[derive(Clone)]
pub struct AccessToken {
    value: Arc<str>,
    scope: Option<Arc<str>>,
    expires_at_ms: i64,
    /// Bound to the client's DPoP key (`token_type: DPoP`).
    dpop: bool,
}

impl AccessToken {
    /// The token, for `Authorization: Bearer <token>` (e.g. `request.bearer_auth(token.as_str())`).
    /// A DPoP-bound one ([`Self::token_type`] `DPoP`) is sent as `Authorization: DPoP <token>`
    /// with a proof: [`ServiceClient::send`] does both.
    pub fn as_str(&self) -> &str {
        &self.value
    }

    /// `Bearer`, or `DPoP` for a token bound to the client's DPoP key
    /// ([`ServiceClientBuilder::dpop`]): the scheme of its `Authorization` header.
    pub fn token_type(&self) -> &'static str {
        if self.dpop { "DPoP" } else { "Bearer" }
    }

    /// The scope granted: the response's `scope`, else the scope asked for (RFC 6749 §5.1).
    pub fn scope(&self) -> Option<&str> {
        self.scope.as_deref()
    }

    /// When the token expires, in Unix milliseconds by the client's clock (its lifetime counted
    /// from when the request was sent).
    pub fn expires_at_ms(&self) -> i64 {
        self.expires_at_ms
    }
}

impl PartialEq for AccessToken {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

impl Eq for AccessToken {}

impl std::fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccessToken")
            .field("value", &"<redacted>")
            .field("scope", &self.scope)
            .field("expires_at_ms", &self.expires_at_ms)
            .field("token_type", &self.token_type())
            .finish()
    }
}

/// What a [`ServiceClient`] has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ServiceClientStats {
    /// Token requests sent (successful or not).
    pub token_requests: u64,
    /// Token requests (or discoveries) that failed.
    pub token_failures: u64,
    /// Requests sent again because the server asked for a DPoP nonce (`use_dpop_nonce`) and
    /// handed one out.
    pub dpop_nonce_retries: u64,
}

/// Where the token endpoint comes from.
#[derive(Debug, Clone)]
enum Endpoint {
    /// Configured.
    Token(Url),
    /// Discovered from `{issuer}/.well-known/oauth-authorization-server` (no trailing slash).
    Issuer(String),
}

/// Access tokens for a service (a confidential OAuth 2.0 client): the client-credentials grant
/// with `client_secret_basic`, a cached token renewed before it expires, and a single renewal
/// shared by concurrent callers. Cheap to clone (one `Arc`); clones share the cache.
///
/// ```no_run
/// use keycard_client::{ClientError, ServiceClient};
///
/// # async fn run() -> Result<(), ClientError> {
/// let service = ServiceClient::builder("orders-service", std::env::var("CLIENT_SECRET").unwrap())
///     .issuer("https://auth.example.com") // token_endpoint from the RFC 8414 metadata
///     .scope("inventory:read")
///     .build()?;
/// let token = service.token().await?; // cached until shortly before it expires
/// let stock = reqwest::Client::new()
///     .get("https://inventory.example.com/stock")
///     .bearer_auth(token.as_str())
///     .send()
///     .await?;
/// # let _ = stock;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct ServiceClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    endpoint: Endpoint,
    /// The token endpoint once discovered (with [`Endpoint::Issuer`]).
    discovered: OnceLock<Url>,
    client_id: String,
    /// The prepared `Authorization: Basic …` value; holds the secret.
    authorization: Secret,
    scope: Option<String>,
    margin: Duration,
    clock: Arc<dyn Clock>,
    state: Mutex<State>,
    token_requests: AtomicU64,
    token_failures: AtomicU64,
    /// The DPoP key and the servers' nonces, with [`ServiceClientBuilder::dpop`].
    dpop: Option<Dpop>,
}

/// What every waiter of one renewal gets.
type Outcome = Result<AccessToken, Arc<ClientError>>;

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    /// The renewal in flight: its outcome appears here once.
    flight: Option<watch::Receiver<Option<Outcome>>>,
}

struct Cached {
    token: AccessToken,
    /// When to renew (Unix ms by the client's clock): expiry less the margin.
    renew_at: i64,
}

impl std::fmt::Debug for ServiceClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClient")
            .field("client_id", &self.inner.client_id)
            .field("endpoint", &self.inner.endpoint)
            .field("scope", &self.inner.scope)
            .field("dpop_jkt", &self.inner.dpop.as_ref().map(Dpop::jkt))
            .finish_non_exhaustive()
    }
}

/// Configures a [`ServiceClient`]; see [`ServiceClient::builder`]. `Debug` never prints the
/// secret.
#[must_use]
pub struct ServiceClientBuilder {
    client_id: String,
    client_secret: Secret,
    endpoint: Option<String>,
    issuer: Option<String>,
    scope: Option<String>,
    margin: Duration,
    timeout: Duration,
    http: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    dpop: Option<DpopKeySource>,
}

impl std::fmt::Debug for ServiceClientBuilder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServiceClientBuilder")
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("token_endpoint", &self.endpoint)
            .field("issuer", &self.issuer)
            .field("scope", &self.scope)
            .field("renewal_margin", &self.margin)
            .field("dpop", &self.dpop)
            .finish_non_exhaustive()
    }
}

impl ServiceClientBuilder {
    /// The token endpoint URL (keycard: `{issuer}/oauth/token`). Replaces [`Self::issuer`].
    pub fn token_endpoint(mut self, url: impl Into<String>) -> Self {
        self.endpoint = Some(url.into());
        self.issuer = None;
        self
    }

    /// The authorization server's issuer URL: the token endpoint is read from its RFC 8414
    /// metadata (`{issuer}/.well-known/oauth-authorization-server`, whose `issuer` must be this
    /// one) before the first token request, and kept. Replaces [`Self::token_endpoint`].
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self.endpoint = None;
        self
    }

    /// The scope to ask for (space-separated). Default none: keycard then grants every scope the
    /// client is registered with.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Renew a token once less than the larger of `margin` and a tenth of its lifetime is left,
    /// and at most half its lifetime (so a short-lived token is not renewed on every call).
    /// Default 30 s: a 15-minute token is renewed 90 s before it expires, a 2-minute one 30 s
    /// before, a 20-second one 10 s before.
    pub fn renewal_margin(mut self, margin: Duration) -> Self {
        self.margin = margin;
        self
    }

    /// Timeout of each request. Default 30 s. Ignored with [`Self::http_client`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The HTTP client to use (proxies, TLS roots, timeouts).
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The clock the cache decides by (a token's expiry is its `expires_in` counted from when
    /// the request was sent, by this clock). Default [`SystemClock`]. Tests pass a
    /// [`keycard_core::clock::ManualClock`] (the one their keycard reads) to move time without
    /// sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Binds the tokens to a DPoP key (RFC 9449): each token request carries a proof made with
    /// it, so keycard issues `token_type: DPoP` tokens carrying `cnf.jkt` (an answer of another
    /// type is [`ClientError::Protocol`]), which resource servers accept only with a proof of
    /// the same key: [`ServiceClient::send`] adds one to each request, or
    /// [`ServiceClient::dpop_proof`] makes one. The `DPoP-Nonce`s servers hand out are
    /// remembered per origin, and a request refused with `use_dpop_nonce` is sent once more
    /// with the new one. The key: see [`crate::ClientBuilder::dpop`]. Default: no DPoP.
    pub fn dpop(mut self, key: DpopKeySource) -> Self {
        self.dpop = Some(key);
        self
    }

    /// Builds the client; nothing is sent until the first [`ServiceClient::token`]. Fails
    /// without a token endpoint or issuer, or when it is not an `http(s)://` URL, and with
    /// [`Self::dpop`] on a key that cannot be made or read ([`ClientError::DpopKey`]).
    pub fn build(self) -> Result<ServiceClient, ClientError> {
        let endpoint = match (self.endpoint, self.issuer) {
            (Some(url), _) => Endpoint::Token(http_url(&url)?),
            (None, Some(issuer)) => {
                let issuer = issuer.trim_end_matches('/').to_owned();
                http_url(&issuer)?;
                Endpoint::Issuer(issuer)
            }
            (None, None) => {
                return Err(ClientError::InvalidUrl("a token endpoint or an issuer is required".into()));
            }
        };
        let http = match self.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .user_agent(concat!("keycard-client/", env!("CARGO_PKG_VERSION")))
                .build()?,
        };
        let authorization = Secret::new(client_secret_basic(&self.client_id, self.client_secret.expose()));
        let dpop = match self.dpop {
            Some(source) => Some(Dpop::new(source.load()?)),
            None => None,
        };
        Ok(ServiceClient {
            inner: Arc::new(Inner {
                http,
                endpoint,
                discovered: OnceLock::new(),
                client_id: self.client_id,
                authorization,
                scope: self.scope,
                margin: self.margin,
                clock: self.clock,
                state: Mutex::new(State::default()),
                token_requests: AtomicU64::new(0),
                token_failures: AtomicU64::new(0),
                dpop,
            }),
        })
    }
}

/// `url` parsed, if it is an absolute `http(s)://` URL. The message never holds more than the
/// URL.
fn http_url(url: &str) -> Result<Url, ClientError> {
    let parsed = Url::parse(url).map_err(|e| ClientError::InvalidUrl(format!("{url}: {e}")))?;
    if !matches!(parsed.scheme(), "http" | "https") || parsed.cannot_be_a_base() {
        return Err(ClientError::InvalidUrl(format!("{url}: not an http(s) URL")));
    }
    Ok(parsed)
}

impl ServiceClient {
    /// Starts configuring a client for the registered confidential client `client_id` with its
    /// `client_secret` (sent as `client_secret_basic`); set [`ServiceClientBuilder::issuer`] or
    /// [`ServiceClientBuilder::token_endpoint`].
    pub fn builder(client_id: impl Into<String>, client_secret: impl Into<String>) -> ServiceClientBuilder {
        ServiceClientBuilder {
            client_id: client_id.into(),
            client_secret: Secret::new(client_secret.into()),
            endpoint: None,
            issuer: None,
            scope: None,
            margin: DEFAULT_RENEWAL_MARGIN,
            timeout: DEFAULT_TIMEOUT,
            http: None,
            clock: Arc::new(SystemClock),
            dpop: None,
        }
    }

    /// The client id.
    pub fn client_id(&self) -> &str {
        &self.inner.client_id
    }

    /// An access token: the cached one while it is not due for renewal, else a new one. Callers
    /// arriving while a renewal is in flight wait for it; however many there are, it is one
    /// request, and its outcome (token or error) is what each of them gets.
    ///
    /// If a renewal fails for a passing reason (transport error, 5xx, 429) while the cached
    /// token has not expired yet, that token is returned and the renewal is tried again a
    /// second later; otherwise the error is returned (the cached token stays until it expires,
    /// and the next call asks again: a failure is never cached). A refusal by the server is
    /// [`ClientError::OAuth`] (e.g. [`ClientError::is_invalid_client`] for a wrong secret).
    pub async fn token(&self) -> Result<AccessToken, ClientError> {
        let mut flight = {
            let mut state = self.inner.lock();
            if let Some(cached) = &state.cached
                && self.inner.clock.now_ms() < cached.renew_at
            {
                return Ok(cached.token.clone());
            }
            match &state.flight {
                // A renewal task that died (a panic) leaves a closed channel: start another.
                Some(flight) if flight.has_changed().is_ok() => flight.clone(),
                _ => {
                    let (sender, receiver) = watch::channel(None);
                    state.flight = Some(receiver.clone());
                    let inner = self.inner.clone();
                    tokio::spawn(async move { inner.renew(sender).await });
                    receiver
                }
            }
        };
        let outcome = match flight.wait_for(Option::is_some).await {
            Ok(outcome) => outcome.clone(),
            Err(_) => None,
        };
        match outcome {
            Some(Ok(token)) => Ok(token),
            Some(Err(error)) => Err(ClientError::share(&error)),
            None => Err(ClientError::RefreshInterrupted),
        }
    }

    /// Forgets `token` if it is the cached one, so the next [`Self::token`] asks for a new one:
    /// for when a resource server refused it (401 `invalid_token`). Concurrent callers
    /// invalidating the same token cause one new request, not one each.
    pub fn invalidate(&self, token: &AccessToken) {
        let mut state = self.inner.lock();
        if state.cached.as_ref().is_some_and(|cached| cached.token == *token) {
            state.cached = None;
        }
    }

    /// Sends `request` with an access token ([`Self::token`]): `Authorization: Bearer <token>`,
    /// or with [`ServiceClientBuilder::dpop`] `Authorization: DPoP <token>` and a proof for
    /// this request and token (sent once more with a new nonce when the server asks for one).
    /// On a 401 `invalid_token` the token is forgotten ([`Self::invalidate`]) and the request
    /// sent once more with a new one, if it can be cloned (a streaming body cannot). Error
    /// statuses become [`ClientError::Api`] with the decoded `{"error", "error_description"}`
    /// body.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let (http, request) = request.build_split();
        let request = request?;
        let retry = request.try_clone();
        let token = self.token().await?;
        let response = self.execute(&http, request, &token).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return check_status(response).await;
        }
        let rejected = crate::client::error_of(response).await;
        if !crate::client::is_invalid_token(&rejected) {
            return Err(rejected);
        }
        self.invalidate(&token);
        let Some(retry) = retry else { return Err(rejected) };
        let token = self.token().await?;
        check_status(self.execute(&http, retry, &token).await?).await
    }

    async fn execute(
        &self,
        http: &reqwest::Client,
        request: reqwest::Request,
        token: &AccessToken,
    ) -> Result<Response, ClientError> {
        let dpop = self.inner.dpop.as_ref();
        crate::dpop::execute(http, request, dpop, Some(token.as_str()), self.inner.clock.as_ref()).await
    }

    /// A DPoP proof for sending `token` in a `method url` request (RFC 9449 §7: `ath` of the
    /// token, the origin's latest nonce), for the `DPoP` header next to
    /// `Authorization: DPoP <token>`; `None` without [`ServiceClientBuilder::dpop`]. Each
    /// request needs a new one: servers refuse a proof seen before.
    pub fn dpop_proof(&self, method: &Method, url: &str, token: &AccessToken) -> Result<Option<String>, ClientError> {
        let Some(dpop) = &self.inner.dpop else { return Ok(None) };
        dpop.proof(method, &http_url(url)?, Some(token.as_str()), self.inner.clock.now()).map(Some)
    }

    /// The RFC 7638 thumbprint of the DPoP key (what the tokens carry as `cnf.jkt`), with
    /// [`ServiceClientBuilder::dpop`].
    pub fn dpop_jkt(&self) -> Option<String> {
        self.inner.dpop.as_ref().map(Dpop::jkt)
    }

    /// Counters of token requests.
    pub fn stats(&self) -> ServiceClientStats {
        ServiceClientStats {
            token_requests: self.inner.token_requests.load(Ordering::Relaxed),
            token_failures: self.inner.token_failures.load(Ordering::Relaxed),
            dpop_nonce_retries: self.inner.dpop.as_ref().map_or(0, Dpop::nonce_retries),
        }
    }
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is replaced whole under the lock; a panic cannot leave half of it.
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// One renewal: requests a token, updates the cache, and publishes the outcome to the
    /// waiters (after the cache, so a caller that no longer finds the flight finds the token).
    async fn renew(self: Arc<Self>, outcome: watch::Sender<Option<Outcome>>) {
        let result = self.request_token().await;
        let shared = {
            let mut state = self.lock();
            state.flight = None;
            match result {
                Ok(cached) => {
                    let token = cached.token.clone();
                    state.cached = Some(cached);
                    tracing::debug!(client_id = %self.client_id, "service access token renewed");
                    Ok(token)
                }
                Err(error) => {
                    self.token_failures.fetch_add(1, Ordering::Relaxed);
                    let now = self.clock.now_ms();
                    match state.cached.as_mut() {
                        Some(cached) if is_transient(&error) && now < cached.token.expires_at_ms => {
                            tracing::warn!(%error, client_id = %self.client_id,
                                "token renewal failed; using the current token until it expires");
                            cached.renew_at =
                                now.saturating_add(RETRY_AFTER_TRANSIENT_FAILURE_MS).min(cached.token.expires_at_ms);
                            Ok(cached.token.clone())
                        }
                        _ => {
                            tracing::warn!(%error, client_id = %self.client_id, "token request failed");
                            Err(Arc::new(error))
                        }
                    }
                }
            }
        };
        outcome.send_replace(Some(shared));
    }

    /// The token endpoint: configured, or discovered once.
    async fn token_endpoint(&self) -> Result<Url, ClientError> {
        let issuer = match &self.endpoint {
            Endpoint::Token(url) => return Ok(url.clone()),
            Endpoint::Issuer(issuer) => issuer,
        };
        if let Some(url) = self.discovered.get() {
            return Ok(url.clone());
        }
        let url = format!("{issuer}/.well-known/oauth-authorization-server");
        let response = self.http.get(&url).header(ACCEPT, "application/json").send().await?;
        let (status, body) = read_limited(response).await?;
        if !status.is_success() {
            return Err(error_of(status, &body));
        }
        let metadata: ServerMetadata = serde_json::from_slice(&body).map_err(ClientError::Decode)?;
        if metadata.issuer.trim_end_matches('/') != issuer {
            return Err(ClientError::Protocol(format!(
                "{url} names issuer {:?}, expected {issuer:?}",
                metadata.issuer
            )));
        }
        let endpoint =
            metadata.token_endpoint.ok_or_else(|| ClientError::Protocol(format!("{url} names no token_endpoint")))?;
        let endpoint = http_url(&endpoint)?;
        Ok(self.discovered.get_or_init(|| endpoint).clone())
    }

    /// `POST grant_type=client_credentials[&scope=…]` with `client_secret_basic`.
    async fn request_token(&self) -> Result<Cached, ClientError> {
        let endpoint = self.token_endpoint().await?;
        let form = {
            let mut form = form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", "client_credentials");
            if let Some(scope) = &self.scope {
                form.append_pair("scope", scope);
            }
            form.finish()
        };
        // Base64 is always a valid header value; `sensitive` keeps it out of reqwest's Debug.
        let mut authorization = HeaderValue::from_str(self.authorization.expose())
            .map_err(|_| ClientError::Protocol("unencodable client credentials".into()))?;
        authorization.set_sensitive(true);
        self.token_requests.fetch_add(1, Ordering::Relaxed);
        let sent_at = self.clock.now_ms();
        let request = self
            .http
            .post(endpoint)
            .header(AUTHORIZATION, authorization)
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(ACCEPT, "application/json")
            .body(form)
            .build()?;
        let response = crate::dpop::execute(&self.http, request, self.dpop.as_ref(), None, self.clock.as_ref()).await?;
        let (status, body) = read_limited(response).await?;
        if !status.is_success() {
            return Err(error_of(status, &body));
        }
        let answer: TokenEndpointResponse = serde_json::from_slice(&body).map_err(ClientError::Decode)?;
        let expected = if self.dpop.is_some() { "DPoP" } else { "Bearer" };
        if !answer.token_type.eq_ignore_ascii_case(expected) {
            return Err(ClientError::Protocol(format!("token_type {:?}, expected {expected}", answer.token_type)));
        }
        let lifetime = answer
            .expires_in
            .map_or(DEFAULT_UNKNOWN_LIFETIME, |secs| Duration::from_secs(u64::try_from(secs).unwrap_or(0)));
        let margin = self.margin.max(lifetime / 10).min(lifetime / 2);
        let expires_at_ms = sent_at.saturating_add(millis(lifetime));
        let scope = answer.scope.or_else(|| self.scope.clone()).map(Arc::from);
        Ok(Cached {
            token: AccessToken { value: answer.access_token.into(), scope, expires_at_ms, dpop: self.dpop.is_some() },
            renew_at: expires_at_ms.saturating_sub(millis(margin)),
        })
    }
}

/// Whether a failed renewal may succeed if simply tried again (the server or the network had a
/// moment), as opposed to a refusal of this client's request.
fn is_transient(error: &ClientError) -> bool {
    match error {
        ClientError::Http(_) | ClientError::Decode(_) => true,
        other => other.status().is_some_and(|s| s.is_server_error() || s == StatusCode::TOO_MANY_REQUESTS),
    }
}

/// The status and at most [`BODY_LIMIT`] bytes of the body.
async fn read_limited(mut response: Response) -> Result<(StatusCode, Vec<u8>), ClientError> {
    let status = response.status();
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > BODY_LIMIT {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    Ok((status, body))
}

/// The typed error of an error answer: RFC 6749 §5.2 when the body is one, else keycard's
/// error body or the bare status.
fn error_of(status: StatusCode, body: &[u8]) -> ClientError {
    if let Ok(error) = serde_json::from_slice::<OAuthError>(body) {
        return ClientError::OAuth { status, error };
    }
    ClientError::Api { status, error: serde_json::from_slice::<ErrorBody>(body).ok() }
}

/// `duration` in whole milliseconds, saturating.
fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_never_holds_the_secret() {
        let builder = ServiceClient::builder("svc", "s3cr3t-value").token_endpoint("http://127.0.0.1:9/oauth/token");
        assert!(!format!("{builder:?}").contains("s3cr3t"), "{builder:?}");
        let client = builder.build().unwrap();
        let shown = format!("{client:?}");
        assert!(!shown.contains("s3cr3t") && shown.contains("svc"), "{shown}");
        let basic = client_secret_basic("svc", "s3cr3t-value");
        assert!(!shown.contains(basic.trim_start_matches("Basic ")), "{shown}");
    }

    #[test]
    fn building_needs_an_http_endpoint_or_issuer() {
        let missing = ServiceClient::builder("svc", "x").build().unwrap_err();
        assert!(matches!(missing, ClientError::InvalidUrl(_)), "{missing:?}");
        let ftp = ServiceClient::builder("svc", "x").issuer("ftp://auth.example").build().unwrap_err();
        assert!(matches!(ftp, ClientError::InvalidUrl(_)), "{ftp:?}");
        assert!(ServiceClient::builder("svc", "x").issuer("https://auth.example/").build().is_ok());
    }

    #[test]
    fn access_tokens_do_not_print_their_value() {
        let token = AccessToken { value: "eyJsecret".into(), scope: Some("a b".into()), expires_at_ms: 5, dpop: true };
        let shown = format!("{token:?}");
        assert!(!shown.contains("eyJ") && shown.contains("a b"), "{shown}");
    }
}
