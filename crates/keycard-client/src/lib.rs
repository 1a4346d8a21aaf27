//! keycard-client: a keycard session for Rust apps, CLIs and services.
//!
//! [`Client::login`] uses body delivery and keeps both tokens in memory only (nothing is written
//! to disk; `Debug` never prints them). Every request made through [`Client::send`] (or the
//! `get_json`/`post_json` helpers) carries the access token, which the client refreshes
//! *before* it expires (when less than the refresh margin — default 30 s, at most half the
//! token's lifetime — is left) and once more if a server answers 401 `invalid_token`, retrying
//! the request once. Concurrent requests share a single refresh, so the single-use refresh token
//! is presented exactly once per rotation and keycard's reuse detection never fires. Errors are
//! typed: [`ClientError::Api`] carries the status and keycard's decoded error body.
//!
//! ```no_run
//! use keycard_client::{Client, ClientError};
//! use keycard_core::wire::LogoutScope;
//!
//! # async fn run() -> Result<(), ClientError> {
//! let client = Client::new("https://auth.example.com")?;
//! client.login("alice@example.com", "correct horse battery staple").await?;
//! let me = client.me().await?;
//! println!("logged in as {}", me.email);
//!
//! // Your own API, protected by keycard-verify: the token is attached and kept fresh.
//! let orders: serde_json::Value = client.get_json("https://api.example.com/orders").await?;
//! println!("{orders}");
//!
//! client.logout(LogoutScope::Local).await?;
//! assert!(matches!(client.me().await, Err(ClientError::NotLoggedIn)));
//! # Ok(())
//! # }
//! ```
//!
//! # Second factors and step-up
//!
//! On an account with a second factor, a right password is not a session yet: [`Client::login`]
//! returns [`ClientError::MfaRequired`] with the [`MfaChallenge`] (the methods the account can
//! answer with), which [`Client::complete_mfa`] completes with an [`MfaAnswer`] (an
//! authenticator-app code or a recovery code). [`Client::login_with_mfa`] does both, asking a
//! callback for the answer, and asking again after a wrong code (keycard takes five answers per
//! challenge). The session then starts as with `login`. A route that wants a recent sign-in
//! answers [`ClientError::StepUpRequired`] (401 `insufficient_user_authentication`, with the
//! `max_age` it wants); [`Client::step_up`] proves the user again (a code, a recovery code, or
//! the password of an account without a factor) and replaces the access token, keeping the
//! refresh token. Codes, passwords and the challenge's token never appear in `Debug` output or
//! errors.
//!
//! ```no_run
//! use keycard_client::{Client, ClientError, MfaAnswer};
//!
//! # fn ask(prompt: &str) -> String { String::new() }
//! # async fn run(client: Client) -> Result<(), ClientError> {
//! client
//!     .login_with_mfa("alice@example.com", "correct horse battery staple", |challenge| async move {
//!         let prompt = if challenge.failed_answers() == 0 { "code: " } else { "wrong code, again: " };
//!         Ok(MfaAnswer::Code(ask(prompt)))
//!     })
//!     .await?;
//! let remove = || client.delete("/auth/mfa/factors/f1");
//! match client.send(remove()).await {
//!     Err(e) if e.is_step_up_required() => {
//!         client.step_up(MfaAnswer::Code(ask("code: "))).await?;
//!         client.send(remove()).await?;
//!     }
//!     other => {
//!         other?;
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # Services: OAuth 2.0 client credentials
//!
//! A service calling other services has no user: it authenticates as a registered confidential
//! client (`keycard clients add NAME --scope "…"`). [`ServiceClient`] asks keycard's token
//! endpoint for an access token with the client-credentials grant (`client_secret_basic`),
//! caches it, and renews it before it expires (once less than the larger of 30 s and a tenth of
//! its lifetime is left, at most half its lifetime). Concurrent callers share one renewal: N
//! callers during a renewal cost one token request and all get its outcome; a failure is
//! returned to them and never cached. Refusals are [`ClientError::OAuth`] with the RFC 6749 §5.2
//! code ([`ClientError::is_invalid_client`] for a wrong secret). The secret never appears in
//! `Debug` output or errors.
//!
//! ```no_run
//! use keycard_client::{ClientError, ServiceClient};
//!
//! # async fn run() -> Result<(), ClientError> {
//! let service = ServiceClient::builder("kc_orders", "the client secret")
//!     .issuer("https://auth.example.com")
//!     .scope("inventory:read")
//!     .build()?;
//! let token = service.token().await?;
//! println!("scope {:?}", token.scope());
//! # Ok(())
//! # }
//! ```
//!
//! # DPoP: tokens a thief cannot use
//!
//! A bearer token works for whoever holds it. With [`ClientBuilder::dpop`] the session is bound
//! to a key that never leaves the process (RFC 9449): every request the client sends — login,
//! [`Client::complete_mfa`], [`Client::step_up`], refresh, logout, [`Client::send`] and the
//! `get_json`/`post_json` helpers, to keycard or to your own APIs — carries a `DPoP` header, a
//! fresh proof signed with the key for that request's method and URL (without the query), with
//! the hash of the access token on resource requests, and the server's latest nonce. keycard
//! binds the session to the key (`cnf.jkt` in the access tokens, `token_type: DPoP`), the access
//! token goes out as `Authorization: DPoP <token>`, and a refresh without the key is refused.
//! The latest `DPoP-Nonce` of every answer is remembered per origin; a request refused with
//! `use_dpop_nonce` (400 from keycard's token endpoints, 401 with a `WWW-Authenticate: DPoP`
//! challenge from a resource server) is sent once more with the new nonce. Resource servers
//! check the proofs with `keycard-verify`'s `VerifierBuilder::dpop`.
//!
//! The key is a new one in memory ([`DpopKeySource::generate`]: Ed25519;
//! [`DpopAlg::Es256`] for P-256), or read from a PKCS#8 PEM file when the client is built
//! ([`DpopKeySource::pem_file`]; [`DpopKey::to_pkcs8_pem`] writes one), or one you hold
//! ([`DpopKeySource::key`]). A file that is missing, unreadable or not an Ed25519 or P-256 key
//! fails the build with [`ClientError::DpopKey`] naming the file. `Debug` output shows the key's
//! thumbprint ([`Client::dpop_jkt`]), never the key; errors never hold it. [`ServiceClient`]
//! takes the same option for client-credentials tokens ([`ServiceClient::send`] adds the
//! proofs).
//!
//! ```no_run
//! use keycard_client::{Client, ClientError, DpopKeySource};
//!
//! # async fn run() -> Result<(), ClientError> {
//! let client = Client::builder("https://auth.example.com").dpop(DpopKeySource::generate()).build()?;
//! client.login("alice@example.com", "correct horse battery staple").await?;
//! let orders: serde_json::Value = client.get_json("https://api.example.com/orders").await?;
//! # let _ = orders;
//!
//! // A key that outlives the process: a PEM file (mode 0600) made once with
//! // `std::fs::write(path, keycard_client::DpopKey::generate(alg)?.to_pkcs8_pem())`.
//! let cli = Client::builder("https://auth.example.com")
//!     .dpop(DpopKeySource::pem_file("/etc/myapp/dpop-key.pem"))
//!     .build()?; // ClientError::DpopKey if the file is missing or not a key
//! # let _ = cli;
//! # Ok(())
//! # }
//! ```
//!
//! # Rate limits, overloads and outages are not logouts
//!
//! Only keycard refusing the refresh token (401 `invalid_grant` or `refresh_token_reused`) ends
//! a session. A refresh answered 429 or 503 waits the `Retry-After` it was given (plus jitter);
//! network errors and other 5xx back off exponentially with jitter; both up to the bounds of the
//! [`RetryPolicy`] (default: 4 attempts, 60 s of waiting), while concurrent callers wait on the
//! same refresh. When the retries run out the last error is returned, the session stays, and
//! the client sends no refresh before the wait the server asked for
//! ([`ClientError::RefreshDeferred`]).
//!
//! A lost refresh response (the server rotated, the answer never arrived) leaves the client with
//! a spent refresh token; its next refresh then ends the session as reuse. keycard's
//! `reuse_interval` setting lets such a client retry within a few seconds.
//!
//! Layout:
//! - [`client`]: [`Client`], [`ClientBuilder`], authenticated requests with refresh and retry.
//! - [`auth`]: signup, login, logout, `me`.
//! - [`mfa`]: the login's second step ([`MfaChallenge`], [`MfaAnswer`]) and step-up.
//! - `session`: the in-memory tokens and the single-flight refresh.
//! - [`retry`]: [`RetryPolicy`], how refreshes that fail for a passing reason are tried again.
//! - [`service`]: [`ServiceClient`], client-credentials tokens for services.
//! - [`dpop`]: the DPoP key ([`DpopKeySource`]) and the proofs and nonces of each request.
//! - [`oauth`]: the RFC 6749 §5.2 [`OAuthError`] and `client_secret_basic`.
//! - [`error`]: the typed [`ClientError`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod dpop;
pub mod error;
pub mod mfa;
pub mod oauth;
pub mod retry;
pub mod service;
mod session;

pub use auth::Login;
pub use client::{Client, ClientBuilder, ClientStats};
pub use dpop::{DpopAlg, DpopKey, DpopKeyError, DpopKeySource};
pub use error::ClientError;
pub use keycard_core::wire::{LogoutScope, UserInfo};
pub use keycard_core::{ErrorBody, ErrorCode};
pub use mfa::{MfaAnswer, MfaChallenge, MfaMethod, StepUpAnswer};
pub use oauth::{OAuthError, OAuthErrorCode};
pub use retry::RetryPolicy;
pub use service::{AccessToken, ServiceClient, ServiceClientBuilder, ServiceClientStats};
