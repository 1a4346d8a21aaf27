//! Axum extractors: [`Claims`] and [`VerifiedToken`] give handlers the verified claims, from the
//! [`crate::VerifierLayer`] in front of them or, without it, by verifying with a [`Verifier`]
//! found in the request extensions (`Router::layer(Extension(verifier))`).

use axum_core::extract::{FromRequestParts, OptionalFromRequestParts};
use http::request::Parts;
use keycard_core::claims::AccessClaims;

use crate::error::VerifyError;
use crate::verifier::Verifier;

/// A request's verified access token: its claims passed the whole checklist.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedToken {
    /// The verified claims.
    pub claims: AccessClaims,
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
    verifier.verify_request(&parts.method, &parts.uri, &parts.headers).await.map(|claims| VerifiedToken { claims })
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
