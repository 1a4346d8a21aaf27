//! [`VerifierLayer`]: a tower layer that refuses requests without a valid access token and hands
//! the verified claims to handlers (as a [`VerifiedToken`] request extension).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use axum_core::response::{IntoResponse, Response};
use http::Request;
use tower_layer::Layer;
use tower_service::Service;

use crate::extract::VerifiedToken;
use crate::verifier::Verifier;

/// Wraps a service so that only requests with a valid `Authorization: Bearer` access token
/// (or, with [`crate::VerifierBuilder::dpop`], a DPoP-bound token and its proof) reach it; others get the 401 (or 503) of [`crate::VerifyError`]. With axum, prefer
/// `Router::route_layer`, so unknown paths stay 404.
#[derive(Debug, Clone)]
pub struct VerifierLayer {
    verifier: Verifier,
}

impl VerifierLayer {
    /// A layer verifying with `verifier`.
    pub fn new(verifier: Verifier) -> Self {
        Self { verifier }
    }
}

impl<S> Layer<S> for VerifierLayer {
    type Service = RequireToken<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RequireToken { inner, verifier: self.verifier.clone() }
    }
}

/// The service [`VerifierLayer`] produces.
#[derive(Debug, Clone)]
pub struct RequireToken<S> {
    inner: S,
    verifier: Verifier,
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
        Box::pin(async move {
            match verifier.verify_request(request.method(), request.uri(), request.headers()).await {
                Ok(claims) => {
                    request.extensions_mut().insert(VerifiedToken { claims });
                    inner.call(request).await
                }
                Err(rejection) => Ok(rejection.into_response()),
            }
        })
    }
}
