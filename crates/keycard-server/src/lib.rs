//! keycard-server: the keycard HTTP API as a library. The `keycard` binary only reads the
//! configuration and calls [`Application::build`].
//!
//! Layout:
//! - [`settings`]: typed configuration in layers (defaults, TOML, `KEYCARD_*`, flags).
//! - [`startup`]: [`Application`] (bind, store, keys) and [`app`] (routes + layers).
//! - `routes`: a file per resource; handlers are thin. `assets`: the embedded files they serve.
//! - [`state`], [`error`], [`extract`]: shared state, the one error→HTTP mapping, extractors.
//! - [`password`]: Argon2id with bounded concurrency; [`cookies`]: browser delivery and CSRF.
//! - [`dpop`]: DPoP (RFC 9449) at the HTTP edge: proofs on token requests and protected
//!   routes, replay across instances, nonces, the `dpop_*` settings.
//! - [`signer`]: who signs access tokens (local ring or Transit); [`transit_keys`]: remote
//!   signing with OpenBao/Vault Transit; [`vault`]: the Transit client.
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod assets;
pub mod cookies;
pub mod devices;
pub mod dpop;
pub mod email;
pub mod error;
pub mod extract;
pub mod issue;
pub mod key_files;
pub mod keys;
pub mod mail;
pub mod mfa;
pub mod middleware;
pub mod oauth;
pub mod openapi;
pub mod passkeys;
pub mod password;
pub mod ratelimit;
pub mod redact;
pub mod reset;
pub(crate) mod routes;
pub mod serve;
pub mod sessions;
pub mod settings;
pub mod signer;
pub mod startup;
pub mod state;
pub mod telemetry;
pub mod templates;
pub mod transit_keys;
pub mod vault;
pub mod verify_cache;
pub mod webhooks;

pub use settings::Settings;
pub use startup::{Application, app};
pub use state::AppState;
