//! [`Client`]: the base URL, the HTTP client, and authenticated requests with one refresh and
//! one retry on a 401 `invalid_token`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use keycard_core::clock::{Clock, SystemClock};
use keycard_core::{ErrorBody, ErrorCode};
use reqwest::{Method, Request, RequestBuilder, Response, StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::dpop::{Dpop, DpopKeySource};
use crate::error::ClientError;
use crate::retry::RetryPolicy;
use crate::session::{Secret, SessionState, SharedSession};

/// Default refresh margin: refresh when the access token has less than this left (capped at
/// half the token's lifetime).
pub const DEFAULT_REFRESH_MARGIN: Duration = Duration::from_secs(30);

/// Default timeout of each request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Largest error body read to decode keycard's error.
const ERROR_BODY_LIMIT: usize = 64 * 1024;

/// A keycard session for a Rust app, CLI or service. Cheap to clone (one `Arc`); clones share
/// the session, so concurrent requests share a single refresh.
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("base_url", &self.inner.base.as_str())
            .field("dpop_jkt", &self.inner.dpop.as_ref().map(Dpop::jkt))
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(crate) http: reqwest::Client,
    pub(crate) base: Url,
    pub(crate) refresh_margin: Duration,
    /// How refreshes that fail for a passing reason are tried again.
    pub(crate) retry: RetryPolicy,
    /// The time every decision of the client reads (when to refresh, when to retry a failed
    /// proactive refresh).
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) session: SharedSession,
    pub(crate) stats: Counters,
    /// The DPoP key and the servers' nonces, when the client uses DPoP.
    pub(crate) dpop: Option<Dpop>,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub(crate) refreshes: AtomicU64,
    pub(crate) retries: AtomicU64,
    pub(crate) refresh_retries: AtomicU64,
}

/// What the client has done so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct ClientStats {
    /// Successful refreshes (proactive, after a 401, or forced).
    pub refreshes: u64,
    /// Requests retried after a 401 `invalid_token`.
    pub retries: u64,
    /// Refresh requests sent again after a passing failure (429, 5xx, network error).
    pub refresh_retries: u64,
    /// Requests sent again because the server asked for a DPoP nonce (`use_dpop_nonce`) and
    /// handed one out.
    pub dpop_nonce_retries: u64,
}

/// Configures a [`Client`]; see [`Client::builder`].
#[derive(Debug)]
#[must_use]
pub struct ClientBuilder {
    base_url: String,
    refresh_margin: Duration,
    timeout: Duration,
    http: Option<reqwest::Client>,
    clock: Arc<dyn Clock>,
    retry: RetryPolicy,
    dpop: Option<DpopKeySource>,
}

impl ClientBuilder {
    /// Refresh when the access token has less than `margin` left (at most half its lifetime).
    /// Default 30 s; zero refreshes only once the token has expired or is refused.
    pub fn refresh_margin(mut self, margin: Duration) -> Self {
        self.refresh_margin = margin;
        self
    }

    /// Timeout of each request. Default 30 s. Ignored with [`Self::http_client`].
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// The HTTP client to use (proxies, TLS roots, timeouts). It must not keep cookies for
    /// keycard: the client uses body delivery.
    pub fn http_client(mut self, client: reqwest::Client) -> Self {
        self.http = Some(client);
        self
    }

    /// The clock the client decides by: when the access token is due for a proactive refresh
    /// (its lifetime counted from when the login or refresh was sent, less the margin) and when
    /// to retry a proactive refresh that failed. Default [`SystemClock`] (wall time: a step of
    /// the system time moves the proactive refresh by as much; a token refused meanwhile is
    /// still refreshed and retried once on its 401). Tests pass a
    /// [`keycard_core::clock::ManualClock`] (the one their keycard reads) to move time without
    /// sleeping.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// How a refresh that fails for a passing reason (429, 5xx, a network error) is tried again:
    /// `Retry-After` honoured, jittered backoff, bounded attempts and waiting. Default
    /// [`RetryPolicy::default`]; [`RetryPolicy::none`] sends one request per refresh. Whatever
    /// the policy, only keycard refusing the refresh token (401) ends the session.
    pub fn refresh_retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Binds the session to a DPoP key (RFC 9449): every request the client sends (login, the
    /// second factor, step-up, refresh, logout, [`Client::send`] and the helpers) carries a
    /// proof made with it, keycard binds the session to the key (`cnf.jkt`; a refresh without
    /// the key is refused), and the access token goes out as `Authorization: DPoP`. A token or
    /// refresh token copied out of the process is useless without the key. The servers'
    /// `DPoP-Nonce`s are remembered per origin, and a request refused with `use_dpop_nonce` is
    /// sent once more with the new one.
    ///
    /// The key: [`DpopKeySource::generate`] (a new Ed25519 key in memory; P-256 with
    /// [`DpopKeySource::Generate`] and [`crate::DpopAlg::Es256`]), [`DpopKeySource::pem_file`]
    /// (a PKCS#8 PEM file, read by [`Self::build`], which fails with
    /// [`ClientError::DpopKey`] naming the file when it cannot be read or used), or
    /// [`DpopKeySource::key`]. A token answer that is not `token_type: DPoP` (a server without
    /// DPoP) fails with [`ClientError::Protocol`] rather than falling back to Bearer tokens.
    /// Default: no DPoP.
    pub fn dpop(mut self, key: DpopKeySource) -> Self {
        self.dpop = Some(key);
        self
    }

    /// Builds the client. Fails on a base URL that is not `http(s)://…`, and with
    /// [`Self::dpop`] on a key that cannot be made or read.
    pub fn build(self) -> Result<Client, ClientError> {
        let trimmed = self.base_url.trim_end_matches('/');
        let base =
            Url::parse(&format!("{trimmed}/")).map_err(|e| ClientError::InvalidUrl(format!("{trimmed}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.cannot_be_a_base() {
            return Err(ClientError::InvalidUrl(format!("{trimmed}: not an http(s) URL")));
        }
        let http = match self.http {
            Some(client) => client,
            None => reqwest::Client::builder()
                .timeout(self.timeout)
                .user_agent(concat!("keycard-client/", env!("CARGO_PKG_VERSION")))
                .build()?,
        };
        let dpop = match self.dpop {
            Some(source) => Some(Dpop::new(source.load()?)),
            None => None,
        };
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                base,
                refresh_margin: self.refresh_margin,
                retry: self.retry,
                clock: self.clock,
                session: Arc::new(tokio::sync::Mutex::new(SessionState::default())),
                stats: Counters::default(),
                dpop,
            }),
        })
    }
}

impl Client {
    /// A client for the keycard at `base_url` (e.g. `https://auth.example.com`), with defaults.
    pub fn new(base_url: impl Into<String>) -> Result<Self, ClientError> {
        Self::builder(base_url).build()
    }

    /// Starts configuring a client for the keycard at `base_url`.
    pub fn builder(base_url: impl Into<String>) -> ClientBuilder {
        ClientBuilder {
            base_url: base_url.into(),
            refresh_margin: DEFAULT_REFRESH_MARGIN,
            timeout: DEFAULT_TIMEOUT,
            http: None,
            clock: Arc::new(SystemClock),
            retry: RetryPolicy::default(),
            dpop: None,
        }
    }

    /// The keycard base URL (with a trailing slash).
    pub fn base_url(&self) -> &Url {
        &self.inner.base
    }

    /// A request builder for `path_or_url`: a path (`/api/orders`) is relative to the base URL;
    /// an absolute `http(s)://` URL is used as is (your own APIs). Send it with
    /// [`Client::send`], which adds the access token.
    pub fn request(&self, method: Method, path_or_url: &str) -> RequestBuilder {
        match self.inner.url(path_or_url) {
            Ok(url) => self.inner.http.request(method, url),
            // reqwest reports the bad URL when the request is sent.
            Err(_) => self.inner.http.request(method, path_or_url),
        }
    }

    /// `GET` request builder; see [`Client::request`].
    pub fn get(&self, path_or_url: &str) -> RequestBuilder {
        self.request(Method::GET, path_or_url)
    }

    /// `POST` request builder; see [`Client::request`].
    pub fn post(&self, path_or_url: &str) -> RequestBuilder {
        self.request(Method::POST, path_or_url)
    }

    /// `PUT` request builder; see [`Client::request`].
    pub fn put(&self, path_or_url: &str) -> RequestBuilder {
        self.request(Method::PUT, path_or_url)
    }

    /// `PATCH` request builder; see [`Client::request`].
    pub fn patch(&self, path_or_url: &str) -> RequestBuilder {
        self.request(Method::PATCH, path_or_url)
    }

    /// `DELETE` request builder; see [`Client::request`].
    pub fn delete(&self, path_or_url: &str) -> RequestBuilder {
        self.request(Method::DELETE, path_or_url)
    }

    /// Sends `request` with `Authorization: Bearer <access token>` (with [`ClientBuilder::dpop`]:
    /// `Authorization: DPoP <access token>` and a `DPoP` proof for this request and token),
    /// refreshing first if the token is due. On a 401 `invalid_token` it refreshes once (shared
    /// with concurrent requests) and retries once, if the request can be cloned (a streaming
    /// body cannot: then the 401 is returned and the next request carries the refreshed token).
    /// Error statuses become [`ClientError::Api`] with keycard's decoded error body; a 401
    /// `insufficient_user_authentication` (a route wanting a recent sign-in) becomes
    /// [`ClientError::StepUpRequired`]: [`Client::step_up`], then send again.
    pub async fn send(&self, request: RequestBuilder) -> Result<Response, ClientError> {
        let (http, request) = request.build_split();
        let request = request?;
        let retry = request.try_clone();
        let (token, generation) = self.inner.access_token().await?;
        let response = self.inner.execute(&http, request, Some(&token)).await?;
        if response.status() != StatusCode::UNAUTHORIZED {
            return check_status(response).await;
        }
        let rejected = error_of(response).await;
        if !is_invalid_token(&rejected) {
            return Err(rejected);
        }
        let token = self.inner.refresh_after_rejection(generation).await?;
        // A streaming body cannot be sent twice: the next request gets the fresh token.
        let Some(retry) = retry else { return Err(rejected) };
        self.inner.stats.retries.fetch_add(1, Ordering::Relaxed);
        check_status(self.inner.execute(&http, retry, Some(&token)).await?).await
    }

    /// `GET path_or_url` with the access token, decoding a JSON answer.
    pub async fn get_json<T: DeserializeOwned>(&self, path_or_url: &str) -> Result<T, ClientError> {
        decode(self.send(self.get(path_or_url)).await?).await
    }

    /// `POST path_or_url` with a JSON body and the access token, decoding a JSON answer.
    pub async fn post_json<B: Serialize + ?Sized, T: DeserializeOwned>(
        &self,
        path_or_url: &str,
        body: &B,
    ) -> Result<T, ClientError> {
        decode(self.send(self.post(path_or_url).json(body)).await?).await
    }

    /// Refreshes the session now (one refresh at a time, like the automatic ones).
    pub async fn refresh(&self) -> Result<(), ClientError> {
        self.inner.refresh_now().await
    }

    /// Whether the client holds a session.
    pub async fn is_logged_in(&self) -> bool {
        self.inner.session.lock().await.tokens.is_some()
    }

    /// The current session id (the `sid` of access tokens).
    pub async fn session_id(&self) -> Option<String> {
        self.inner.session.lock().await.tokens.as_ref().map(|t| t.session_id.clone())
    }

    /// The RFC 7638 thumbprint of the client's DPoP key (what its tokens carry as `cnf.jkt`),
    /// with [`ClientBuilder::dpop`].
    pub fn dpop_jkt(&self) -> Option<String> {
        self.inner.dpop.as_ref().map(Dpop::jkt)
    }

    /// Counters of refreshes and retries.
    pub fn stats(&self) -> ClientStats {
        ClientStats {
            refreshes: self.inner.stats.refreshes.load(Ordering::Relaxed),
            retries: self.inner.stats.retries.load(Ordering::Relaxed),
            refresh_retries: self.inner.stats.refresh_retries.load(Ordering::Relaxed),
            dpop_nonce_retries: self.inner.dpop.as_ref().map_or(0, Dpop::nonce_retries),
        }
    }
}

impl Inner {
    /// Resolves a path against the base URL, or takes an absolute http(s) URL as is.
    pub(crate) fn url(&self, path_or_url: &str) -> Result<Url, ClientError> {
        let parsed = if path_or_url.starts_with("http://") || path_or_url.starts_with("https://") {
            Url::parse(path_or_url)
        } else {
            self.base.join(path_or_url.trim_start_matches('/'))
        };
        parsed.map_err(|e| ClientError::InvalidUrl(format!("{path_or_url}: {e}")))
    }

    /// Sends `request` through `http` with `access_token` and, with DPoP, a proof (and the nonce
    /// retry); the answer whatever its status. See [`crate::dpop`].
    pub(crate) async fn execute(
        &self,
        http: &reqwest::Client,
        request: Request,
        access_token: Option<&Secret>,
    ) -> Result<Response, ClientError> {
        let token = access_token.map(Secret::expose);
        crate::dpop::execute(http, request, self.dpop.as_ref(), token, self.clock.as_ref()).await
    }

    /// `POST` of a JSON `body` to keycard's `path`, without an access token (with DPoP, with a
    /// proof): login, the second factor, refresh, logout. The answer whatever its status.
    pub(crate) async fn post_json<B: Serialize + ?Sized>(&self, path: &str, body: &B) -> Result<Response, ClientError> {
        let request = self.http.post(self.url(path)?).json(body).build()?;
        self.execute(&self.http, request, None).await
    }

    /// Refuses a token answer that is not bound to the client's DPoP key when it uses DPoP:
    /// a server without DPoP would otherwise hand out Bearer tokens a thief can use.
    pub(crate) fn check_token_type(&self, token_type: &str) -> Result<(), ClientError> {
        if self.dpop.is_some() && !token_type.eq_ignore_ascii_case("DPoP") {
            return Err(ClientError::Protocol(format!(
                "token_type {token_type:?} for a DPoP client, expected DPoP (does the server support DPoP?)"
            )));
        }
        Ok(())
    }
}

/// Whether a refused request was refused for its access token (RFC 6750 `invalid_token`, from
/// keycard's body or any resource server's `WWW-Authenticate`).
pub(crate) fn is_invalid_token(error: &ClientError) -> bool {
    matches!(error, ClientError::Api { status: StatusCode::UNAUTHORIZED, error: Some(body) } if body.error == ErrorCode::InvalidToken)
}

/// Passes success responses through; turns others into [`ClientError::Api`].
pub(crate) async fn check_status(response: Response) -> Result<Response, ClientError> {
    if response.status().is_success() { Ok(response) } else { Err(error_of(response).await) }
}

/// The typed error of an error response: status plus keycard's body when it is one. A 401
/// whose only sign is `WWW-Authenticate: Bearer error="invalid_token"` gets that code.
pub(crate) async fn error_of(mut response: Response) -> ClientError {
    let status = response.status();
    let challenges: Vec<String> = response
        .headers()
        .get_all(reqwest::header::WWW_AUTHENTICATE)
        .iter()
        .filter_map(|v| v.to_str().ok().map(str::to_owned))
        .collect();
    let challenge_says = |code: &str| challenges.iter().any(|v| v.contains(&format!("error=\"{code}\"")));
    let challenge_says_invalid_token = challenge_says("invalid_token");
    let step_up = challenge_says("insufficient_user_authentication");
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        if body.len() + chunk.len() > ERROR_BODY_LIMIT {
            break;
        }
        body.extend_from_slice(&chunk);
    }
    let error = serde_json::from_slice::<ErrorBody>(&body).ok().or_else(|| {
        challenge_says_invalid_token.then(|| ErrorBody::new(ErrorCode::InvalidToken, "the access token was refused"))
    });
    // RFC 9470: keycard's body, or any resource server's challenge.
    let step_up_body = match &error {
        _ if status != StatusCode::UNAUTHORIZED => None,
        Some(body) if body.error == ErrorCode::InsufficientUserAuthentication => Some(body.clone()),
        _ if step_up => {
            Some(ErrorBody::new(ErrorCode::InsufficientUserAuthentication, "a more recent sign-in is needed"))
        }
        _ => None,
    };
    if let Some(error) = step_up_body {
        let max_age = challenges.iter().find_map(|v| max_age(v));
        return ClientError::StepUpRequired { max_age, error };
    }
    ClientError::Api { status, error }
}

/// The `max_age` parameter of a `WWW-Authenticate` challenge (RFC 9470 §3), in seconds.
fn max_age(challenge: &str) -> Option<Duration> {
    challenge.split(',').find_map(|param| {
        let (name, value) = param.split_once('=')?;
        let name = name.trim().rsplit(' ').next()?;
        if !name.eq_ignore_ascii_case("max_age") {
            return None;
        }
        value.trim().trim_matches('"').parse().ok().map(Duration::from_secs)
    })
}

/// Decodes a JSON success body.
pub(crate) async fn decode<T: DeserializeOwned>(response: Response) -> Result<T, ClientError> {
    let bytes = response.bytes().await?;
    serde_json::from_slice(&bytes).map_err(ClientError::Decode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_age_is_read_from_the_challenge() {
        let header = "Bearer error=\"insufficient_user_authentication\", max_age=600";
        assert_eq!(max_age(header), Some(Duration::from_secs(600)));
        assert_eq!(max_age("Bearer max_age=\"30\", error=\"x\""), Some(Duration::from_secs(30)));
        assert_eq!(max_age("Bearer error=\"insufficient_user_authentication\""), None);
    }
}
