//! Opaque refresh tokens: `kcrt_` + base64url(32 random bytes), stored only as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// Prefix of every refresh token, so leaked tokens are recognisable (and redactable).
pub const REFRESH_TOKEN_PREFIX: &str = "kcrt_";
const RANDOM_BYTES: usize = 32;
/// Length of a well-formed token: the prefix plus 43 base64url characters.
pub const REFRESH_TOKEN_LEN: usize = REFRESH_TOKEN_PREFIX.len() + 43;

/// A refresh token in clear. It only exists on its way to the client; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct RefreshToken(String);

impl RefreshToken {
    /// A new token from 256 bits of OS randomness.
    pub fn generate() -> Self {
        let mut bytes = [0u8; RANDOM_BYTES];
        // getrandom only fails when the OS has no entropy source; nothing can be issued then.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
        Self(format!("{REFRESH_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Parses a presented token; anything not shaped like one of ours is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(REFRESH_TOKEN_PREFIX)?;
        if raw.len() != REFRESH_TOKEN_LEN {
            return None;
        }
        let decoded = URL_SAFE_NO_PAD.decode(body).ok()?;
        (decoded.len() == RANDOM_BYTES).then(|| Self(raw.to_owned()))
    }

    /// The token text, to hand to the client.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 hash the store keeps instead of the token.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl std::fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshToken(<redacted>)")
    }
}

/// The prefix of password-reset tokens (mailed links).
pub const RESET_TOKEN_PREFIX: &str = "kcpr_";
/// The length of a password-reset token: the prefix and 32 random bytes in base64url.
pub const RESET_TOKEN_LEN: usize = RESET_TOKEN_PREFIX.len() + 43;

/// A password-reset token: `kcpr_` and 256 random bits in base64url. Only its SHA-256 is stored;
/// `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct ResetToken(String);

impl ResetToken {
    /// A fresh random token.
    pub fn generate() -> Self {
        let mut bytes = [0u8; RANDOM_BYTES];
        // getrandom only fails when the OS has no entropy source; nothing can be issued then.
        #[allow(clippy::expect_used)]
        getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
        Self(format!("{RESET_TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Parses a presented token; anything not shaped like a reset token (a refresh token, a
    /// wrong length) is `None`.
    pub fn parse(raw: &str) -> Option<Self> {
        let body = raw.strip_prefix(RESET_TOKEN_PREFIX)?;
        if raw.len() != RESET_TOKEN_LEN {
            return None;
        }
        let decoded = URL_SAFE_NO_PAD.decode(body).ok()?;
        (decoded.len() == RANDOM_BYTES).then(|| Self(raw.to_owned()))
    }

    /// The token text (for the mailed link only).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The SHA-256 hash the store keeps instead of the token.
    pub fn hash(&self) -> TokenHash {
        TokenHash(Sha256::digest(self.0.as_bytes()).into())
    }
}

impl std::fmt::Debug for ResetToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResetToken(<redacted>)")
    }
}

/// SHA-256 of a refresh token: what the store indexes by.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Debug)]
pub struct TokenHash(pub [u8; 32]);

impl TokenHash {
    /// The hash bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reset_tokens_parse_back_and_refresh_tokens_are_not_reset_tokens() {
        let token = ResetToken::generate();
        assert_eq!(ResetToken::parse(token.expose()), Some(token.clone()));
        assert_eq!(token.expose().len(), RESET_TOKEN_LEN);
        assert!(ResetToken::parse(RefreshToken::generate().expose()).is_none());
        assert!(ResetToken::parse(&token.expose()[..RESET_TOKEN_LEN - 1]).is_none());
        assert!(!format!("{token:?}").contains(token.expose()));
    }

    #[test]
    fn generated_tokens_parse_back_and_differ() {
        let a = RefreshToken::generate();
        let b = RefreshToken::generate();
        assert_ne!(a, b);
        assert!(a.expose().starts_with("kcrt_"));
        assert_eq!(a.expose().len(), REFRESH_TOKEN_LEN);
        assert_eq!(RefreshToken::parse(a.expose()), Some(a.clone()));
        assert_ne!(a.hash(), b.hash());
    }

    #[test]
    fn malformed_tokens_are_rejected() {
        let good = RefreshToken::generate();
        let cases = [
            ("empty", String::new()),
            ("no prefix", good.expose()[5..].to_owned()),
            ("wrong prefix", format!("kcat_{}", &good.expose()[5..])),
            ("truncated", good.expose()[..40].to_owned()),
            ("too long", format!("{}A", good.expose())),
            ("not base64url", format!("kcrt_{}", "!".repeat(43))),
            ("a jwt", "eyJhbGciOiJFZERTQSJ9.e30.sig".to_owned()),
        ];
        for (why, raw) in cases {
            assert!(RefreshToken::parse(&raw).is_none(), "{why}");
        }
    }

    #[test]
    fn debug_never_prints_the_token() {
        let t = RefreshToken::generate();
        assert!(!format!("{t:?}").contains(&t.expose()[5..]));
    }
}
