//! Device tokens: OWASP's "Slow Down Online Guessing Attacks with Device Cookies".
//!
//! A client that logs in successfully gets a device token: the user id, a random device id and
//! the time, signed with HMAC-SHA256 under a key derived from the master key (so every instance
//! accepts it). Browsers keep it in the HTTP-only `__Host-keycard_device` cookie; other clients
//! receive `device_token` in the token response and send it back in the login body.
//!
//! At login, a valid device token *for the account being logged into* makes the attempt a
//! known-device attempt: its failures are counted for that device alone, and failures from
//! anywhere else never throttle it. Attempts without one share the account's budget for
//! unknown devices. A stranger who guesses passwords therefore locks out only strangers.

use aws_lc_rs::hmac;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Prefix of every device token (also what log redaction looks for).
pub const PREFIX: &str = "kcdv_";

/// Longest device token accepted (a user id, a device id and a time, plus the tag).
const MAX_LEN: usize = 512;

/// A new device token for `user_id`, issued at `now`.
pub fn issue(key: &hmac::Key, user_id: &str, now: i64) -> String {
    let mut id = [0u8; 16];
    #[allow(clippy::expect_used)] // no OS randomness means no tokens at all
    getrandom::fill(&mut id).expect("the OS random number generator is unavailable");
    let payload = format!("{user_id}|{}|{now}", URL_SAFE_NO_PAD.encode(id));
    let tag = hmac::sign(key, payload.as_bytes());
    format!("{PREFIX}{}.{}", URL_SAFE_NO_PAD.encode(payload), URL_SAFE_NO_PAD.encode(tag.as_ref()))
}

/// The device id of `token` when it is authentic, was issued to `user_id`, and is younger than
/// `ttl` seconds; `None` otherwise (malformed, forged, another account's, expired).
pub fn verify(key: &hmac::Key, token: &str, user_id: &str, now: i64, ttl: i64) -> Option<String> {
    if token.len() > MAX_LEN {
        return None;
    }
    let (payload_b64, tag_b64) = token.strip_prefix(PREFIX)?.split_once('.')?;
    let payload = URL_SAFE_NO_PAD.decode(payload_b64).ok()?;
    let tag = URL_SAFE_NO_PAD.decode(tag_b64).ok()?;
    // Constant time: aws-lc-rs compares the tag.
    hmac::verify(key, &payload, &tag).ok()?;
    let payload = String::from_utf8(payload).ok()?;
    let mut parts = payload.split('|');
    let (owner, device, issued_at) = (parts.next()?, parts.next()?, parts.next()?.parse::<i64>().ok()?);
    (parts.next().is_none() && owner == user_id && issued_at <= now + 60 && now - issued_at < ttl)
        .then(|| device.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, &[byte; 32])
    }

    #[test]
    fn a_device_token_verifies_for_its_user_only() {
        let token = issue(&key(1), "user-a", 1_000);
        assert!(token.starts_with(PREFIX));
        let device = verify(&key(1), &token, "user-a", 1_010, 100).expect("valid");
        assert_eq!(verify(&key(1), &token, "user-a", 1_020, 100), Some(device));
        assert_eq!(verify(&key(1), &token, "user-b", 1_010, 100), None, "another account");
        assert_eq!(verify(&key(2), &token, "user-a", 1_010, 100), None, "another master key");
        assert_eq!(verify(&key(1), &token, "user-a", 1_100, 100), None, "expired");
        assert_ne!(issue(&key(1), "user-a", 1_000), token, "each device gets its own id");
    }

    #[test]
    fn tampered_or_malformed_tokens_are_refused() {
        let token = issue(&key(1), "user-a", 1_000);
        let (payload, tag) = token.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let forged_payload = URL_SAFE_NO_PAD.encode("user-a|AAAA|1000");
        for bad in [
            String::new(),
            "kcdv_".into(),
            format!("{PREFIX}{payload}"),
            format!("{PREFIX}{forged_payload}.{tag}"),
            format!("{PREFIX}{payload}.{}", URL_SAFE_NO_PAD.encode([0u8; 32])),
            format!("{PREFIX}{payload}.{tag}x"),
            "x".repeat(600),
        ] {
            assert_eq!(verify(&key(1), &bad, "user-a", 1_010, 100), None, "{bad}");
        }
    }
}
