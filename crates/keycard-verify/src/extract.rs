//! Axum extractors: [`Claims`] and [`VerifiedToken`] give handlers the verified claims, from the
//! [`crate::VerifierLayer`] in front of them or, without it, by verifying with a [`Verifier`]
//! found in the request extensions (`Router::layer(Extension(verifier))`).

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use keycard_core::amr::{Amr, AuthMethod};
use keycard_core::claims::AccessClaims;

use crate::error::VerifyError;
use crate::step_up::{Stamp, StepUp};
use crate::verifier::Verifier;

/// A request's verified access token: its claims passed the whole checklist. Made by the
/// verifier (through [`crate::VerifierLayer`] or the extractor), which also records its clock
/// reading for step-up checks ([`VerifiedToken::require`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The verified claims.
    pub claims: AccessClaims,
    /// The verifier's clock, leeway and DPoP `algs` when it accepted the token.
    pub(crate) stamp: Stamp,
}

impl VerifiedToken {
    /// Whether the request was DPoP-bound: the token carries `cnf` and came with a valid proof
    /// of its key (a bound token is never accepted as Bearer).
    pub fn is_dpop_bound(&self) -> bool {
        self.claims.cnf.is_some()
    }

    /// Whether the token's space-separated `scope` claim holds `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.claims.scope.as_deref().is_some_and(|s| s.split(' ').any(|s| s == scope))
    }

    /// How the user signed in (RFC 8176 `amr`): `pwd`, `otp`, `hwk`/`swk`, and `mfa` when two
    /// factors were used. Empty for client tokens.
    pub fn amr(&self) -> Amr {
        self.claims.amr
    }

    /// When the user last proved who they are (`auth_time`, Unix seconds): the login or the
    /// session's latest step-up. `None` for client tokens.
    pub fn auth_time(&self) -> Option<i64> {
        self.claims.auth_time
    }

    /// Whether the user signed in with a second factor: `amr` holds `mfa`.
    pub fn has_second_factor(&self) -> bool {
        self.claims.amr.contains(AuthMethod::Mfa)
    }

    /// Checks a step-up requirement (RFC 9470), as one line of a handler:
    /// `token.require(&StepUp::second_factor().within(Duration::from_secs(600)))?`. Time is the
    /// verifier's clock when it accepted the token; an `auth_time` more than the verifier's
    /// leeway in the future, or none, fails a time requirement. The error answers 401
    /// `insufficient_user_authentication` with the `max_age` challenge
    /// ([`VerifyError::InsufficientUserAuthentication`]).
    pub fn require(&self, required: &StepUp) -> Result<(), VerifyError> {
        required.check(&self.claims, &self.stamp)
    }
}

/// The verified claims of the request's access token, as an extractor:
/// `async fn handler(Claims(claims): Claims)`. `Option<Claims>` is `None` when the request
/// carries no token at all (a token that fails verification is still refused).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claims(pub AccessClaims);

impl std::ops::Deref for Claims {
    type Target = AccessClaims;

    fn deref(&self) -> &AccessClaims {
        &self.0
    }
}

async fn verified(parts: &Parts) -> Result<VerifiedToken, VerifyError> {
    if let Some(token) = parts.extensions.get::<VerifiedToken>() {
        return Ok(token.clone());
    }
    let verifier = parts.extensions.get::<Verifier>().ok_or(VerifyError::NotConfigured)?;
    let claims = verifier.verify_request(&parts.method, &parts.uri, &parts.headers).await?;
    Ok(verifier.verified_token(claims))
}

fn carries_token(parts: &Parts) -> bool {
    parts.extensions.get::<VerifiedToken>().is_some() || parts.headers.contains_key(http::header::AUTHORIZATION)
}

impl<S: Send + Sync> FromRequestParts<S> for VerifiedToken {
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        verified(parts).await
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Claims {
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        verified(parts).await.map(|token| Self(token.claims))
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for VerifiedToken {
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !carries_token(parts) {
            return Ok(None);
        }
        verified(parts).await.map(Some)
    }
}

impl<S: Send + Sync> OptionalFromRequestParts<S> for Claims {
    type Rejection = VerifyError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Option<Self>, Self::Rejection> {
        if !carries_token(parts) {
            return Ok(None);
        }
        verified(parts).await.map(|token| Some(Self(token.claims)))
    }
}
