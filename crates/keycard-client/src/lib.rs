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
//! A lost refresh response (the server rotated, the answer never arrived) leaves the client with
//! a spent refresh token; its next refresh then ends the session as reuse. keycard's
//! `reuse_interval` setting lets such a client retry within a few seconds.
//!
//! Layout:
//! - [`client`]: [`Client`], [`ClientBuilder`], authenticated requests with refresh and retry.
//! - [`auth`]: signup, login, logout, `me`.
//! - `session`: the in-memory tokens and the single-flight refresh.
//! - [`error`]: the typed [`ClientError`].
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod auth;
pub mod client;
pub mod error;
mod session;

pub use auth::Login;
pub use client::{Client, ClientBuilder, ClientStats};
pub use error::ClientError;
pub use keycard_core::wire::{LogoutScope, UserInfo};
pub use keycard_core::{ErrorBody, ErrorCode};
