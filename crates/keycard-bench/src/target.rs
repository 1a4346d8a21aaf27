//! The two servers' dialects: keycard's API v1 and the Express peer's routes, request bodies and
//! where each returns its tokens. Everything else in the driver is server-agnostic.

use serde::Deserialize;
use serde_json::json;

use crate::http::{Reply, Req, Requests};

/// Which server a target speaks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    /// keycard: `/auth/me`, body-delivered refresh tokens.
    Keycard,
    /// express-seed: `/api/me`, refresh token in `Set-Cookie` (sent back in the body field
    /// `refreshToken`).
    Peer,
}

impl Kind {
    /// Short name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::Keycard => "keycard",
            Self::Peer => "peer",
        }
    }
}

/// A session's current pair of tokens.
#[derive(Clone, Debug)]
pub struct Tokens {
    /// The access token (Bearer).
    pub access: String,
    /// The refresh token still unused: the next link of the chain.
    pub refresh: String,
}

/// One account's credentials.
#[derive(Clone, Debug)]
pub struct Credentials {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

#[derive(Deserialize)]
struct KeycardTokens {
    access_token: String,
    refresh_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PeerTokens {
    access_token: String,
}

impl Kind {
    /// `POST /auth/signup` (same shape on both).
    pub fn signup(self, r: &Requests, c: &Credentials) -> anyhow::Result<Req> {
        r.post_json("/auth/signup", &json!({ "email": c.email, "password": c.password }))
    }

    /// `POST /auth/login`, asking keycard for the refresh token in the body.
    pub fn login(self, r: &Requests, c: &Credentials) -> anyhow::Result<Req> {
        match self {
            Self::Keycard => {
                r.post_json("/auth/login", &json!({ "email": c.email, "password": c.password, "delivery": "body" }))
            }
            Self::Peer => r.post_json("/auth/login", &json!({ "email": c.email, "password": c.password })),
        }
    }

    /// `POST /auth/refresh` presenting `refresh` in the body.
    pub fn refresh(self, r: &Requests, refresh: &str) -> anyhow::Result<Req> {
        match self {
            Self::Keycard => r.post_json("/auth/refresh", &json!({ "refresh_token": refresh })),
            Self::Peer => r.post_json("/auth/refresh", &json!({ "refreshToken": refresh })),
        }
    }

    /// The protected route: both verify the token, then look the user up.
    pub fn me(self, r: &Requests, access: &str) -> anyhow::Result<Req> {
        match self {
            Self::Keycard => r.get_bearer("/auth/me", access),
            Self::Peer => r.get_bearer("/api/me", access),
        }
    }

    /// The new pair in a login or refresh answer, `None` when it is not there.
    pub fn tokens(self, reply: &Reply) -> Option<Tokens> {
        match self {
            Self::Keycard => {
                let t: KeycardTokens = serde_json::from_slice(&reply.body).ok()?;
                Some(Tokens { access: t.access_token, refresh: t.refresh_token? })
            }
            Self::Peer => {
                let t: PeerTokens = serde_json::from_slice(&reply.body).ok()?;
                let refresh = reply
                    .headers
                    .get_all(hyper::header::SET_COOKIE)
                    .iter()
                    .filter_map(|v| v.to_str().ok())
                    .find_map(|v| v.strip_prefix("refreshToken="))
                    .map(|v| v.split(';').next().unwrap_or(v).to_owned())?;
                Some(Tokens { access: t.access_token, refresh })
            }
        }
    }
}
