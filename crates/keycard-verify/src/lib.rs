//! keycard-verify: verify keycard access tokens in a resource server, without calling keycard
//! per request.
//!
//! A [`Verifier`] discovers keycard's JWKS from the issuer URL
//! (`{issuer}/.well-known/openid-configuration` → `jwks_uri`) or takes a static key set, and
//! runs the whole validation checklist of SPEC.md through `keycard_core`'s `Validator`: the
//! algorithm comes from the key found by `kid` (never from the header), `typ` is `at+jwt`,
//! `iss`/`aud` match, `exp`/`nbf`/`iat` hold within the leeway, `sub`/`sid`/`jti` are present,
//! the token is at most 8 KiB, and its session is not revoked. [`VerifierLayer`] (tower) and the
//! [`Claims`]/[`VerifiedToken`] extractors (axum) answer failures with 401,
//! `WWW-Authenticate: Bearer error="invalid_token"` and `{"error":"invalid_token",…}`.
//!
//! # Keys
//! The JWKS is cached. A token whose `kid` is not cached triggers one refetch, but at most one
//! per [`VerifierBuilder::jwks_refetch_interval`] (default 30 s): a flood of forged kids costs
//! one fetch, not one per request. The JWKS is also refreshed in the background (default every
//! 5 minutes), which is how retired keys leave the cache. When keycard is unreachable the cached
//! keys stay in use; failed fetches are logged and counted in [`Verifier::stats`].
//!
//! # Revocation guarantee
//! keycard publishes revoked sessions (logout, refresh-token reuse, password change, account
//! deletion) at `GET {issuer}/auth/revocations?after=<seq>`. The verifier polls it (default every
//! 1 s) and refuses tokens whose `sid` is listed. With a staleness bound `B` (default 5 s):
//!
//! - **Guarantee.** If keycard committed the revocation of a session at time `T`, every
//!   verification that starts at `T + B` or later refuses that session's tokens (401
//!   `invalid_token`), or refuses every token (503, below). Nothing is assumed about clocks: a
//!   verification accepts a token only if the last *complete* sync round *began* less than `B`
//!   earlier (measured on the verifier's monotonic clock), and a round that began after `T`
//!   reads the revocation.
//! - **Fail closed.** While no sync round has completed within `B` (keycard down, network
//!   partition, errors, or not yet synced), [`WhenStale::Reject`] (the default) refuses *every*
//!   token with 503 `temporarily_unavailable` and `Retry-After: 1` — not 401, because the
//!   token may well be valid and clients should retry rather than throw it away. Service
//!   resumes with the first successful round. [`WhenStale::Accept`] instead keeps accepting
//!   tokens (still refusing sessions already known revoked) and gives up the guarantee while
//!   stale.
//! - **Forgetting.** An entry is dropped once its `expires_at` (revocation time + keycard's
//!   access-token lifetime + keycard's leeway) plus this verifier's leeway has passed on the
//!   verifier's clock: by then every token of the session is refused as expired anyway.
//! - **Assumptions.** keycard's feed numbers revocations in commit order and is read from the
//!   store keycard writes to (SQLite; one PostgreSQL primary). The verifier's clock is within
//!   its leeway of keycard's (as `exp` checks already require).
//!
//! Building a verifier fetches the keys and completes a first sync round, or fails.
//!
//! # Opaque tokens (opt-in)
//! [`VerifierBuilder::introspection`] adds RFC 7662 introspection for tokens that are not JWTs at
//! all (opaque deployments): such a token is POSTed to keycard's introspection endpoint as a
//! confidential client, cached briefly (never past its `exp`), and accepted only if it is an
//! active access token of this issuer and audience. A JWT is always verified locally and never
//! sent; without the option nothing is ever introspected.
//!
//! ```no_run
//! use axum::{Router, routing::get};
//! use keycard_verify::{Claims, Verifier, VerifierLayer};
//!
//! async fn hello(Claims(claims): Claims) -> String {
//!     format!("hello {}", claims.sub)
//! }
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let verifier = Verifier::from_issuer("https://auth.example.com", "keycard").await?;
//! let app: Router = Router::new().route("/hello", get(hello)).route_layer(VerifierLayer::new(verifier));
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! axum::serve(listener, app).await?;
//! # Ok(())
//! # }
//! ```
//!
//! # DPoP (opt-in)
//! [`VerifierBuilder::dpop`] with [`DpopOptions`] accepts DPoP-bound tokens (RFC 9449):
//! `Authorization: DPoP <token>` plus exactly one `DPoP` header holding a proof for the
//! request's method and public URI, with `ath` the hash of the token, made with the key of the
//! token's `cnf.jkt`, and never seen before by this process (the replay cache keeps each
//! `(jkt, jti)` for the proof's 60 s lifetime). The token itself passes the same checklist as a
//! Bearer token, revocation feed included; the proof is never cached. Refusals answer 401 with
//! `WWW-Authenticate: DPoP error="invalid_dpop_proof"` (proof missing, repeated, invalid, from
//! another key, replayed) or `error="invalid_token"` (the token), and `algs="EdDSA Ed25519 ES256"`.
//!
//! - **No downgrade.** A token carrying `cnf` is refused as a Bearer token by *every*
//!   verifier, including one built without DPoP support.
//! - **Public origin.** Behind a proxy the `Host` header is not to be trusted: give the URL
//!   clients use with [`DpopOptions::public_origin`] (`https://api.example`). Without it, only
//!   an absolute request URI is used; otherwise DPoP requests are refused with 500.
//! - **Replays across instances.** Each process keeps its own replay cache. Several instances
//!   share one record with [`DpopOptions::shared_replay`] (`RedisReplay`, default feature
//!   `redis`, or your own [`ReplayStore`]): a proof accepted by one is refused by all, as
//!   keycard's own server does. Without it, a proof replayed to *another* instance within its
//!   60 s is accepted there. If the shared record cannot answer, DPoP requests get 503.
//! - Handlers see the binding in the claims: `claims.cnf` is `Some` exactly for DPoP requests
//!   ([`VerifiedToken::is_dpop_bound`]).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use keycard_verify::{DpopOptions, Verifier};
//! let verifier = Verifier::builder("https://auth.example.com", "keycard")
//!     .dpop(DpopOptions::new().public_origin("https://api.example.com"))
//!     .build()
//!     .await?;
//!
//! // Several instances behind a load balancer: one replay record for all of them.
//! # #[cfg(feature = "redis")] {
//! let shared = keycard_verify::RedisReplay::connect("redis://127.0.0.1:6379").await?;
//! let verifier = Verifier::builder("https://auth.example.com", "keycard")
//!     .dpop(DpopOptions::new().public_origin("https://api.example.com").shared_replay(shared))
//!     .build()
//!     .await?;
//! # }
//! # Ok(())
//! # }
//! ```
//!
//! # Step-up (RFC 9470)
//! Access tokens say how and when the user signed in: `amr` (RFC 8176: `pwd`, `otp`,
//! `hwk`/`swk`, and `mfa` whenever two factors were used) and `auth_time`
//! ([`VerifiedToken::amr`], [`VerifiedToken::auth_time`], [`VerifiedToken::has_second_factor`]).
//! A [`StepUp`] states what a route needs — [`StepUp::second_factor`], [`StepUp::max_age`], or
//! both with [`StepUp::within`] — and is checked in one line: in a handler with
//! [`VerifiedToken::require`], for a route group with [`VerifierLayer::require`], or on claims
//! from [`Verifier::verify_request`] with [`Verifier::require`]. A valid token that falls short
//! is refused with 401 `{"error":"insufficient_user_authentication",…}` and
//! `WWW-Authenticate: Bearer error="insufficient_user_authentication", error_description="…",
//! max_age=600` ([`VerifyError::InsufficientUserAuthentication`]; `max_age` only with a time
//! requirement, the `DPoP` scheme and `algs` for a DPoP-bound token): the client has the user
//! step up at keycard and retries with the new token.
//!
//! - **Time** is the verifier's clock ([`VerifierBuilder::clock`]) when it accepted the token.
//!   A token without `auth_time`, or with one more than the leeway in the future, fails a time
//!   requirement; the leeway never lengthens `max_age`.
//! - **Client tokens** carry neither claim, so they meet no requirement.
//! - **Stacked layers** verify once: a `VerifierLayer` inside another reuses the outer one's
//!   [`VerifiedToken`] and only adds its requirement.
//!
//! ```no_run
//! use std::time::Duration;
//! use axum::{Router, routing::{get, post}};
//! use keycard_verify::{StepUp, VerifiedToken, Verifier, VerifierLayer, VerifyError};
//!
//! const SENSITIVE: StepUp = StepUp::second_factor().within(Duration::from_secs(600));
//!
//! async fn transfer(token: VerifiedToken) -> Result<String, VerifyError> {
//!     token.require(&SENSITIVE)?; // 401 insufficient_user_authentication, max_age=600
//!     Ok(format!("transferred for {}", token.claims.sub))
//! }
//!
//! # fn app(verifier: Verifier) -> Router {
//! // Or for a whole route group, with the layer:
//! let admin: Router = Router::new()
//!     .route("/admin/keys", post(|| async { "rotated" }))
//!     .route_layer(VerifierLayer::new(verifier.clone()).require(SENSITIVE));
//! Router::new()
//!     .route("/transfer", post(transfer))
//!     .route("/hello", get(|| async { "hello" }))
//!     .merge(admin)
//!     .route_layer(VerifierLayer::new(verifier))
//! # }
//! ```
//!
//! Layout:
//! - [`verifier`]: [`Verifier`] (verify, key cache, refetch limit, stats).
//! - [`builder`]: [`VerifierBuilder`] and the defaults.
//! - [`revocation`]: the feed follower, [`RevocationConfig`], [`WhenStale`].
//! - [`layer`], [`extract`]: the tower layer and the axum extractors.
//! - [`dpop`]: [`DpopOptions`], DPoP-bound tokens and their proofs.
//! - [`step_up`]: [`StepUp`], RFC 9470 step-up requirements on `amr` and `auth_time`.
//! - [`introspect`]: [`IntrospectionConfig`], the opt-in RFC 7662 fallback for opaque tokens.
//! - [`error`]: [`VerifyError`] (knows its HTTP answer), [`FetchError`], [`BuildError`].
//! - `fetch`: discovery, JWKS and feed requests with size caps.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod builder;
pub mod dpop;
pub mod error;
pub mod extract;
mod fetch;
pub mod introspect;
pub mod layer;
pub mod revocation;
pub mod step_up;
pub mod verifier;

pub use builder::VerifierBuilder;
#[cfg(feature = "redis")]
pub use dpop::RedisReplay;
pub use dpop::{DpopOptions, ReplayStore};
pub use error::{BuildError, DpopFailure, FetchError, VerifyError};
pub use extract::{Claims, VerifiedToken};
pub use introspect::IntrospectionConfig;
pub use keycard_core::amr::{Amr, AuthMethod};
pub use keycard_core::claims::AccessClaims;
pub use keycard_core::keys::{KeyAlg, PublicKeys, VerifyingKey};
pub use layer::{RequireToken, VerifierLayer};
pub use revocation::{RevocationConfig, WhenStale};
pub use step_up::StepUp;
pub use verifier::{Verifier, VerifierStats, bearer_token};
