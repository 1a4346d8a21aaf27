//! keycard-core: the token formats, key ring, claim validation and refresh-token rules that
//! every other keycard crate shares. No HTTP and no database live here.
//!
//! Layout:
//! - [`claims`]: the access-token claim set.
//! - [`clock`]: the time everything reads (a manual clock in tests).
//! - [`dpop`]: DPoP (RFC 9449) proof checks, replay cache, server nonces, client proofs, `cnf`.
//! - [`keys`]: signing keys bound to their algorithm, and the key ring that signs and verifies.
//! - [`validate`]: the validation checklist of SPEC.md, with a typed [`TokenError`].
//! - [`refresh`]: opaque refresh tokens (`kcrt_…`) and their SHA-256 hashes.
//! - [`wire`]: request and response bodies of the HTTP API, shared by server and clients.
//! - [`events`]: audit-event kinds and revocation reasons, as stored and shown.
//! - [`error`]: the wire error (`{"error", "error_description"}`) and its codes.
//!
//! ```
//! use keycard_core::{claims::AccessClaims, keys::{KeyRing, SigningKey}, validate::Validator};
//!
//! let key = SigningKey::generate_ed25519().unwrap();
//! let ring = KeyRing::new(vec![key.clone()], key.kid().to_owned()).unwrap();
//! let now = keycard_core::now_unix();
//! let claims = AccessClaims::new("https://id.example", "api", "user-1", "sess-1", now, 900);
//! let token = ring.sign(&claims).unwrap();
//! let validator = Validator::new("https://id.example", "api", 30);
//! let checked = validator.validate(&ring, &token, now).unwrap();
//! assert_eq!(checked.sub, "user-1");
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod amr;
pub mod claims;
pub mod clock;
pub mod dpop;
pub mod error;
pub mod events;
pub mod keys;
pub mod refresh;
pub mod validate;
pub mod wire;

pub use error::{ErrorBody, ErrorCode};
pub use validate::TokenError;

/// Largest access token keycard accepts, in bytes (SPEC.md: "token at most 8 KiB").
pub const MAX_TOKEN_BYTES: usize = 8 * 1024;

/// The `typ` header value every access token carries (RFC 9068).
pub const ACCESS_TOKEN_TYP: &str = "at+jwt";

/// Seconds since the Unix epoch, from the system clock.
pub fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// Makes aws-lc-rs the crypto provider of `jsonwebtoken` for this process.
///
/// jsonwebtoken picks a provider from its features on first use; installing it explicitly means a
/// second backend pulled in by another crate can never leave us with the panicking fallback.
/// Idempotent; every signing and verifying path in this crate calls it.
pub fn install_crypto_provider() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        // Err means some provider is already installed, which is just as good.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
    });
}
