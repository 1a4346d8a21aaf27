//! Opaque secret tokens: a kind's prefix (`kcrt_` refresh, `kcpr_` password reset) +
//! base64url(32 random bytes), stored only as SHA-256.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

const RANDOM_BYTES: usize = 32;

/// Declares an opaque secret token type: a prefix and 256 bits of OS randomness in base64url,
/// stored only as its SHA-256 ([`TokenHash`]), never shown by `Debug`. Each kind has its own
/// prefix, so one kind's token never parses as another's.
macro_rules! secret_token {
    ($(#[$doc:meta])* $name:ident, $prefix:ident = $text:literal, $len:ident) => {
        #[doc = concat!("Prefix of every `", stringify!($name), "`, so leaked tokens are recognisable (and redactable).")]
        pub const $prefix: &str = $text;
        #[doc = concat!("Length of a well-formed `", stringify!($name), "`: the prefix plus 43 base64url characters.")]
        pub const $len: usize = $prefix.len() + 43;

        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq)]
        pub struct $name(String);

        impl $name {
            /// A new token from 256 bits of OS randomness.
            pub fn generate() -> Self {
                let mut bytes = [0u8; RANDOM_BYTES];
                // getrandom only fails when the OS has no entropy source; nothing can be issued then.
                #[allow(clippy::expect_used)]
                getrandom::fill(&mut bytes).expect("the OS random number generator is unavailable");
                Self(format!("{}{}", $prefix, URL_SAFE_NO_PAD.encode(bytes)))
            }

            /// Parses a presented token; anything not shaped like one of this kind (another
            /// kind's prefix, a wrong length, bad base64url) is `None`.
            pub fn parse(raw: &str) -> Option<Self> {
                let body = raw.strip_prefix($prefix)?;
                if raw.len() != $len {
                    return None;
                }
                let decoded = URL_SAFE_NO_PAD.decode(body).ok()?;
                (decoded.len() == RANDOM_BYTES).then(|| Self(raw.to_owned()))
            }

            /// The token text, to hand to its owner (a response body, a cookie, a mailed link).
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// The SHA-256 hash the store keeps instead of the token.
            pub fn hash(&self) -> TokenHash {
                TokenHash(Sha256::digest(self.0.as_bytes()).into())
            }
        }

        impl std::fmt::Debug for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(concat!(stringify!($name), "(<redacted>)"))
            }
        }
    };
}

secret_token! {
    /// A refresh token in clear. It only exists on its way to the client.
    RefreshToken, REFRESH_TOKEN_PREFIX = "kcrt_", REFRESH_TOKEN_LEN
}

secret_token! {
    /// A password-reset token (mailed links): `kcpr_` and 256 random bits in base64url.
    ResetToken, RESET_TOKEN_PREFIX = "kcpr_", RESET_TOKEN_LEN
}

secret_token! {
    /// An email-verification token (mailed links): `kcev_` and 256 random bits in base64url.
    VerifyEmailToken, VERIFY_EMAIL_TOKEN_PREFIX = "kcev_", VERIFY_EMAIL_TOKEN_LEN
}

secret_token! {
    /// The token confirming an address change, mailed to the new address: `kcec_`, 256 bits.
    EmailChangeToken, EMAIL_CHANGE_TOKEN_PREFIX = "kcec_", EMAIL_CHANGE_TOKEN_LEN
}

secret_token! {
    /// The token cancelling an address change, mailed to the old address: `kcex_`, 256 bits.
    EmailCancelToken, EMAIL_CANCEL_TOKEN_PREFIX = "kcex_", EMAIL_CANCEL_TOKEN_LEN
}

secret_token! {
    /// The token of a login waiting for its second factor (`mfa_token`): `kcmf_`, 256 bits,
    /// single use, five minutes.
    MfaToken, MFA_TOKEN_PREFIX = "kcmf_", MFA_TOKEN_LEN
}

/// SHA-256 of a secret token: what the store indexes by.
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
