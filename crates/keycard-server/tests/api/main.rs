//! Integration tests of the keycard HTTP API: each test starts the real server on port 0 with a
//! fresh database and talks HTTP to it.

mod account;
mod attacks;
mod bad_input;
mod bao;
mod defence;
mod discovery;
mod dpop;
mod email;
mod hardening;
mod helpers;
mod key_files;
mod keys;
mod lifecycle;
mod logout;
mod mail;
mod mfa;
mod oauth;
mod oauth_crate;
mod passkeys;
mod password_reset;
mod refresh;
mod restart;
mod reuse;
mod transit;
mod transit_signing;
mod verify_cache;
mod webhooks;
