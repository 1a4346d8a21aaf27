//! The access-token claim set: `iss, aud, sub, exp, iat, nbf, jti, sid` (+ `client_id`, `scope`, `role`).

use serde::{Deserialize, Serialize};

/// Claims keycard puts in every access token it signs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessClaims {
    /// Issuer URL.
    pub iss: String,
    /// Audience the token is for.
    pub aud: String,
    /// Subject: the user id.
    pub sub: String,
    /// Expiry, seconds since the epoch.
    pub exp: i64,
    /// Issued at, seconds since the epoch.
    pub iat: i64,
    /// Not before, seconds since the epoch.
    pub nbf: i64,
    /// Unique token id.
    pub jti: String,
    /// Session (refresh-token family) id; revoking the session revokes the token.
    pub sid: String,
    /// The OAuth client the token was issued to (RFC 9068): `keycard` for sessions from keycard's
    /// own login, a registered client's id for its `client_credentials` tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Space-separated scopes, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Role, when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// Whether the user's address is verified (OpenID Connect's claim); absent for client
    /// tokens and when `email_verification = off`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_verified: Option<bool>,
    /// Confirmation (RFC 7800; RFC 9449 §6.1): `"cnf": {"jkt": "<thumbprint>"}` when the token
    /// is DPoP-bound to the client key with that RFC 7638 thumbprint. Such a token is accepted
    /// only with the `DPoP` scheme and a proof made with that key, never as a Bearer token.
    /// Absent for Bearer tokens. A token whose `cnf` is not a `jkt` binding (say `x5t#S256`)
    /// fails validation as malformed: keycard cannot check that binding.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<crate::dpop::Confirmation>,
    /// How the user signed in (RFC 8176): `pwd`, `otp`, `hwk`/`swk`, `mfa`. Left out when
    /// empty (client tokens).
    #[serde(default, skip_serializing_if = "crate::amr::Amr::is_empty")]
    pub amr: crate::amr::Amr,
    /// When the user last proved who they are (OpenID Connect's `auth_time`): the login, or the
    /// latest step-up of the session. Absent for client tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
}

impl AccessClaims {
    /// Claims for a new token issued `now`, living `ttl_secs`, with a fresh random `jti`.
    pub fn new(iss: &str, aud: &str, sub: &str, sid: &str, now: i64, ttl_secs: i64) -> Self {
        Self {
            iss: iss.to_owned(),
            aud: aud.to_owned(),
            sub: sub.to_owned(),
            exp: now + ttl_secs,
            iat: now,
            nbf: now,
            jti: uuid::Uuid::new_v4().simple().to_string(),
            sid: sid.to_owned(),
            client_id: None,
            scope: None,
            role: None,
            email_verified: None,
            cnf: None,
            amr: crate::amr::Amr::EMPTY,
            auth_time: None,
        }
    }
}
