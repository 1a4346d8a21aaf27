//! [`VerifierLayer`]: a tower layer that refuses requests without a valid access token (or, with
//! [`VerifierLayer::require`], without the step-up a route group needs) and hands the verified
//! claims to handlers (as a [`VerifiedToken`] request extension).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::response::{IntoResponse, Response};
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::VerifiedToken;
use crate::step_up::StepUp;
use crate::verifier::Verifier;

/// Wraps a service so that only requests with a valid `Authorization: Bearer` access token
/// (or, with [`crate::VerifierBuilder::dpop`], a DPoP-bound token and its proof) reach it; others get the 401 (or 503) of [`crate::VerifyError`]. With axum, prefer
/// `Router::route_layer`, so unknown paths stay 404.
///
/// A request an outer `VerifierLayer` already accepted is not verified again: its
/// [`VerifiedToken`] is reused (as the extractors do), so layers can be stacked — one for the
/// whole API, a stricter one with [`VerifierLayer::require`] for a route group — and a DPoP proof
/// is checked once (a second check would refuse it as replayed).
#[derive(Debug, Clone)]
pub struct VerifierLayer {
    verifier: Verifier,
    step_up: Option<StepUp>,
}

impl VerifierLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier, step_up: None }
    }

    /// Also requires this step-up (RFC 9470) of every request: a valid token whose sign-in falls
    /// short gets 401 `insufficient_user_authentication`
    /// ([`crate::VerifyError::InsufficientUserAuthentication`]). One line protects a route group:
    /// `.route_layer(VerifierLayer::new(verifier).require(StepUp::second_factor()))`.
    pub fn require(mut self, required: StepUp) -> Self {
        self.step_up = Some(required);
        self
    }
}

impl<S> Layer<S> for VerifierLayer {
    type Service = RequireToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireToken { inner, verifier: self.verifier.clone(), step_up: self.step_up }
    }
}

/// The service [`VerifierLayer`] produces.
#[derive(Debug, Clone)]
pub struct RequireToken<S> {
    inner: S,
    verifier: Verifier,
    step_up: Option<StepUp>,
}

impl<S, B> Service<Request<B>> for RequireToken<S>
where
    S: Service<Request<B>, Response = Response> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        // The clone that was polled ready is the one to call (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let verifier = self.verifier.clone();
        let step_up = self.step_up;
        Box::pin(async move {
            // Not again when an outer layer verified it (extensions are the server's, never the
            // client's): a DPoP proof would be refused as replayed.
            if request.extensions().get::<VerifiedToken>().is_none() {
                match verifier.verify_request(request.method(), request.uri(), request.headers()).await {
                    Ok(claims) => {
                        request.extensions_mut().insert(verifier.verified_token(claims));
                    }
                    Err(rejection) => return Ok(rejection.into_response()),
                }
            }
            if let (Some(required), Some(token)) = (step_up, request.extensions().get::<VerifiedToken>())
                && let Err(rejection) = token.require(&required)
            {
                return Ok(rejection.into_response());
            }
            inner.call(request).await
        })
    }
}
