//! [`KeyAlg`]: the four JOSE algorithms keycard signs and verifies with, one per key.

use jsonwebtoken::Algorithm;

/// Algorithms keycard signs and verifies with. Each key has exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyAlg {
    /// Ed25519 signatures (the default): resource servers verify with public keys only.
    EdDsa,
    /// ECDSA on P-256 with SHA-256.
    Es256,
    /// RSASSA-PKCS1-v1_5 with SHA-256; keycard generates 2048-bit keys.
    Rs256,
    /// HMAC-SHA-256 with a shared secret: for a single service that holds the secret. Never
    /// published in JWKS.
    Hs256,
}

impl KeyAlg {
    /// Every supported algorithm.
    pub const ALL: [KeyAlg; 4] = [Self::EdDsa, Self::Es256, Self::Rs256, Self::Hs256];

    /// The JOSE name (`alg` header value).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::EdDsa => "EdDSA",
            Self::Es256 => "ES256",
            Self::Rs256 => "RS256",
            Self::Hs256 => "HS256",
        }
    }

    /// Parses a JOSE name; unknown names (including `none`) are `None`.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "EdDSA" => Some(Self::EdDsa),
            "ES256" => Some(Self::Es256),
            "RS256" => Some(Self::Rs256),
            "HS256" => Some(Self::Hs256),
            _ => None,
        }
    }

    /// Whether keys of this algorithm are shared secrets (HS256) rather than key pairs.
    pub fn is_symmetric(self) -> bool {
        self == Self::Hs256
    }

    /// The matching jsonwebtoken algorithm.
    pub fn algorithm(self) -> Algorithm {
        match self {
            Self::EdDsa => Algorithm::EdDSA,
            Self::Es256 => Algorithm::ES256,
            Self::Rs256 => Algorithm::RS256,
            Self::Hs256 => Algorithm::HS256,
        }
    }

    /// The JWK key type (`kty`) of keys of this algorithm.
    pub fn kty(self) -> &'static str {
        match self {
            Self::EdDsa => "OKP",
            Self::Es256 => "EC",
            Self::Rs256 => "RSA",
            Self::Hs256 => "oct",
        }
    }
}

impl std::fmt::Display for KeyAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
