//! OAuth 2.0 wire pieces of the token endpoint: the RFC 6749 §5.2 error, `client_secret_basic`
//! (§2.3.1), and the RFC 8414 metadata the endpoint is discovered from.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

/// An RFC 6749 §5.2 error code.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OAuthErrorCode {
    /// A parameter is missing, repeated or malformed.
    InvalidRequest,
    /// Client authentication failed: unknown client, wrong secret, bad assertion.
    InvalidClient,
    /// The grant (refresh token, password) is invalid, expired or revoked.
    InvalidGrant,
    /// The client may not use this grant type.
    UnauthorizedClient,
    /// The server does not support this grant type.
    UnsupportedGrantType,
    /// The scope asked for is unknown or beyond what the client was registered with.
    InvalidScope,
    /// Any other code, as sent.
    Other(String),
}

impl OAuthErrorCode {
    /// The code as it appears on the wire.
    pub fn as_str(&self) -> &str {
        match self {
            Self::InvalidRequest => "invalid_request",
            Self::InvalidClient => "invalid_client",
            Self::InvalidGrant => "invalid_grant",
            Self::UnauthorizedClient => "unauthorized_client",
            Self::UnsupportedGrantType => "unsupported_grant_type",
            Self::InvalidScope => "invalid_scope",
            Self::Other(code) => code,
        }
    }
}

impl From<&str> for OAuthErrorCode {
    fn from(code: &str) -> Self {
        match code {
            "invalid_request" => Self::InvalidRequest,
            "invalid_client" => Self::InvalidClient,
            "invalid_grant" => Self::InvalidGrant,
            "unauthorized_client" => Self::UnauthorizedClient,
            "unsupported_grant_type" => Self::UnsupportedGrantType,
            "invalid_scope" => Self::InvalidScope,
            other => Self::Other(other.to_owned()),
        }
    }
}

impl std::fmt::Display for OAuthErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for OAuthErrorCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = String::deserialize(deserializer)?;
        Ok(Self::from(code.as_str()))
    }
}

/// The body of a refused token request (RFC 6749 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct OAuthError {
    /// The error code.
    pub error: OAuthErrorCode,
    /// Human-readable explanation, when sent.
    #[serde(default)]
    pub error_description: Option<String>,
    /// A page about the error, when sent.
    #[serde(default)]
    pub error_uri: Option<String>,
}

impl std::fmt::Display for OAuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error_description {
            Some(description) => write!(f, "{}: {description}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

/// The `Authorization` value of `client_secret_basic` (RFC 6749 §2.3.1): the client id and the
/// secret are each form-urlencoded (`application/x-www-form-urlencoded`, so a space is `+` and
/// `:` is `%3A`) before `id:secret` is base64-encoded. Plain HTTP Basic would let a `:` in the id
/// split it wrongly.
pub(crate) fn client_secret_basic(client_id: &str, client_secret: &str) -> String {
    let id: String = form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
    let secret: String = form_urlencoded::byte_serialize(client_secret.as_bytes()).collect();
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

/// The part of RFC 8414 authorization-server metadata the client reads.
#[derive(Debug, Deserialize)]
pub(crate) struct ServerMetadata {
    pub(crate) issuer: String,
    #[serde(default)]
    pub(crate) token_endpoint: Option<String>,
}

/// The successful token response (RFC 6749 §5.1).
#[derive(Deserialize)]
pub(crate) struct TokenEndpointResponse {
    pub(crate) access_token: String,
    pub(crate) token_type: String,
    #[serde(default)]
    pub(crate) expires_in: Option<i64>,
    #[serde(default)]
    pub(crate) scope: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_secret_basic_form_urlencodes_before_base64() {
        let header = client_secret_basic("svc one:a", "p@ss+/ word%");
        let encoded = header.strip_prefix("Basic ").unwrap();
        let decoded = String::from_utf8(STANDARD.decode(encoded).unwrap()).unwrap();
        assert_eq!(decoded, "svc+one%3Aa:p%40ss%2B%2F+word%25");
        // Exactly one unencoded colon: the separator.
        assert_eq!(decoded.matches(':').count(), 1);
        // Letters, digits and `-._*` stay as they are (base64url secrets need no escaping); `~`
        // is escaped by the form-urlencoded algorithm, which a conforming server decodes.
        let plain = client_secret_basic("kc_abc-DEF_1.2", "s3cret_-.*");
        assert_eq!(plain, format!("Basic {}", STANDARD.encode("kc_abc-DEF_1.2:s3cret_-.*")));
        let tilde = STANDARD.decode(client_secret_basic("a~", "b").trim_start_matches("Basic ")).unwrap();
        assert_eq!(tilde, b"a%7E:b");
    }

    #[test]
    fn error_codes_round_trip_and_unknown_ones_are_kept() {
        let body: OAuthError =
            serde_json::from_str(r#"{"error":"invalid_client","error_description":"wrong secret"}"#).unwrap();
        assert_eq!(body.error, OAuthErrorCode::InvalidClient);
        assert_eq!(body.to_string(), "invalid_client: wrong secret");
        let other: OAuthError = serde_json::from_str(r#"{"error":"slow_down"}"#).unwrap();
        assert_eq!(other.error, OAuthErrorCode::Other("slow_down".into()));
        assert_eq!(other.to_string(), "slow_down");
        for code in
            ["invalid_request", "invalid_grant", "unauthorized_client", "unsupported_grant_type", "invalid_scope"]
        {
            assert_eq!(OAuthErrorCode::from(code).as_str(), code);
        }
    }
}
