//! The refresh-token format: `RefreshToken::parse` on any text.
//!
//! Accepted tokens must be exactly `kcrt_` + 43 base64url characters of 32 bytes, come back
//! unchanged from `expose`, and hash like the same text parsed twice.
#![no_main]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_core::refresh::{REFRESH_TOKEN_LEN, REFRESH_TOKEN_PREFIX, RefreshToken};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for candidate in [text.as_ref(), text.trim(), &format!("{REFRESH_TOKEN_PREFIX}{text}")] {
        let Some(token) = RefreshToken::parse(candidate) else { continue };
        assert_eq!(token.expose(), candidate, "parse changed the token");
        assert_eq!(candidate.len(), REFRESH_TOKEN_LEN);
        let body = candidate.strip_prefix(REFRESH_TOKEN_PREFIX).expect("accepted without the prefix");
        assert_eq!(URL_SAFE_NO_PAD.decode(body).map(|b| b.len()), Ok(32), "accepted a body that is not 32 bytes");
        assert!(body.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
        let again = RefreshToken::parse(token.expose()).expect("a parsed token parses again");
        assert_eq!(again.hash(), token.hash());
        assert!(!format!("{token:?}").contains(body), "Debug printed the token");
    }
});
