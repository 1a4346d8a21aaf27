//! Step-up authentication (RFC 9470) for resource servers: a [`StepUp`] says what a route needs
//! of the user's sign-in — a second factor (the token's `amr` holds `mfa`), a sign-in within the
//! last `max_age` (its `auth_time`), or both — and [`crate::VerifiedToken::require`],
//! [`crate::Verifier::require`] or [`crate::VerifierLayer::require`] check it. A token that falls
//! short is refused with 401 `insufficient_user_authentication` and a challenge naming `max_age`
//! ([`crate::VerifyError::InsufficientUserAuthentication`]), so the client can send the user
//! through keycard's step-up and retry with the new token.
//!
//! Time is the verifier's clock ([`crate::VerifierBuilder::clock`]), read when the verifier
//! accepted the token.

use std::fmt;
use std::time::Duration;

use keycard_core::amr::AuthMethod;
use keycard_core::claims::AccessClaims;

use crate::error::VerifyError;

/// What a route requires of how and when the user signed in (RFC 9470): a second factor, a
/// sign-in within a time, or both.
///
/// ```
/// use std::time::Duration;
/// use keycard_verify::StepUp;
///
/// // Two factors, the last proof of identity at most 10 minutes old.
/// const SENSITIVE: StepUp = StepUp::second_factor().within(Duration::from_secs(600));
/// // Only recent: signed in (or stepped up) within 5 minutes, by any method.
/// let recent = StepUp::max_age(Duration::from_secs(300));
/// assert_eq!(recent.max_age_secs(), Some(300));
/// assert!(SENSITIVE.needs_second_factor() && !recent.needs_second_factor());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[must_use]
pub struct StepUp {
    second_factor: bool,
    /// Whole seconds.
    max_age: Option<u64>,
}

impl StepUp {
    /// A sign-in with a second factor: the token's `amr` holds `mfa` (keycard adds it whenever
    /// two factors were used, at login or at a step-up of the session).
    pub const fn second_factor() -> Self {
        Self { second_factor: true, max_age: None }
    }

    /// A sign-in within the last `max_age`: the token's `auth_time` is at most `max_age` before
    /// the verifier's clock. `max_age` counts in whole seconds (the fraction is dropped).
    pub const fn max_age(max_age: Duration) -> Self {
        Self { second_factor: false, max_age: Some(max_age.as_secs()) }
    }

    /// This requirement, and a sign-in within the last `max_age` (replacing any earlier one):
    /// `StepUp::second_factor().within(Duration::from_secs(600))`.
    pub const fn within(self, max_age: Duration) -> Self {
        Self { max_age: Some(max_age.as_secs()), ..self }
    }

    /// Whether a second factor (`amr` holding `mfa`) is required.
    pub const fn needs_second_factor(&self) -> bool {
        self.second_factor
    }

    /// The longest time since the sign-in allowed, in seconds: the challenge's `max_age`.
    pub const fn max_age_secs(&self) -> Option<u64> {
        self.max_age
    }

    /// Whether `claims` meet the requirement at `now` (Unix seconds). `auth_time` must be present
    /// for a time requirement; `leeway` only forgives an `auth_time` slightly in the future
    /// (clock skew with keycard), never an old one.
    pub(crate) fn is_met(&self, claims: &AccessClaims, now: i64, leeway: i64) -> bool {
        if self.second_factor && !claims.amr.contains(AuthMethod::Mfa) {
            return false;
        }
        let Some(max_age) = self.max_age else { return true };
        let max_age = i64::try_from(max_age).unwrap_or(i64::MAX);
        claims.auth_time.is_some_and(|at| at <= now.saturating_add(leeway) && now.saturating_sub(at) <= max_age)
    }

    /// `Ok` when `claims` meet the requirement as of `stamp`; else the 401 refusal.
    pub(crate) fn check(&self, claims: &AccessClaims, stamp: &Stamp) -> Result<(), VerifyError> {
        if self.is_met(claims, stamp.now, stamp.leeway) {
            Ok(())
        } else {
            Err(VerifyError::InsufficientUserAuthentication { required: *self, dpop_algs: stamp.dpop_algs.clone() })
        }
    }
}

/// "a sign-in with a second factor within the last 600 s", as the error description says it.
impl fmt::Display for StepUp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a sign-in")?;
        if self.second_factor {
            f.write_str(" with a second factor")?;
        }
        if let Some(max_age) = self.max_age {
            write!(f, " within the last {max_age} s")?;
        }
        Ok(())
    }
}

/// What the verifier knew when it accepted a token, for step-up checks made later in the
/// request: its clock, its leeway, and the `algs` of its DPoP challenge when the token is bound.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Stamp {
    /// The verifier's clock, Unix seconds.
    pub(crate) now: i64,
    /// The verifier's leeway, seconds.
    pub(crate) leeway: i64,
    /// `Some` when the token is DPoP-bound: the challenge then uses the `DPoP` scheme.
    pub(crate) dpop_algs: Option<String>,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;
    use http::{Request, StatusCode};
    use keycard_core::amr::{Amr, AuthMethod};
    use keycard_core::clock::ManualClock;
    use keycard_core::dpop::{Confirmation, DpopKey};
    use keycard_core::keys::{KeyAlg, PublicKeys, SigningKey, VerifyingKey};
    use serde_json::Value;
    use tower::ServiceExt;

    use super::*;
    use crate::{DpopOptions, VerifiedToken, Verifier, VerifierLayer};

    const ISSUER: &str = "https://auth.example";
    const AUDIENCE: &str = "keycard";
    const NOW: i64 = 1_800_000_000;
    const LEEWAY: i64 = 30;
    const TEN_MINUTES: Duration = Duration::from_secs(600);
    const SENSITIVE: StepUp = StepUp::second_factor().within(TEN_MINUTES);
    const ORIGIN: &str = "https://api.example";

    fn claims(amr: &[AuthMethod], auth_time: Option<i64>) -> AccessClaims {
        let mut claims = AccessClaims::new(ISSUER, AUDIENCE, "user-1", "session-1", NOW, 900);
        claims.amr = Amr::of(amr);
        claims.auth_time = auth_time;
        claims
    }

    fn mfa(auth_time: Option<i64>) -> AccessClaims {
        claims(&[AuthMethod::Pwd, AuthMethod::Otp, AuthMethod::Mfa], auth_time)
    }

    #[test]
    fn the_builder_combines_a_second_factor_and_a_max_age() {
        assert_eq!((SENSITIVE.needs_second_factor(), SENSITIVE.max_age_secs()), (true, Some(600)));
        assert_eq!(StepUp::max_age(TEN_MINUTES), StepUp { second_factor: false, max_age: Some(600) });
        assert_eq!(StepUp::second_factor().max_age_secs(), None);
        assert_eq!(StepUp::max_age(Duration::from_millis(1_999)).max_age_secs(), Some(1), "whole seconds");
        assert_eq!(SENSITIVE.within(Duration::from_secs(60)).max_age_secs(), Some(60), "replaced");
        assert_eq!(SENSITIVE.to_string(), "a sign-in with a second factor within the last 600 s");
        assert_eq!(StepUp::second_factor().to_string(), "a sign-in with a second factor");
        assert_eq!(StepUp::max_age(TEN_MINUTES).to_string(), "a sign-in within the last 600 s");
    }

    #[test]
    fn a_second_factor_means_mfa_in_amr() {
        let required = StepUp::second_factor();
        assert!(required.is_met(&mfa(None), NOW, LEEWAY), "no auth_time needed without max_age");
        assert!(required.is_met(&claims(&[AuthMethod::Hwk, AuthMethod::Mfa], Some(NOW)), NOW, LEEWAY));
        for amr in [&[][..], &[AuthMethod::Pwd], &[AuthMethod::Otp], &[AuthMethod::Pwd, AuthMethod::Otp]] {
            assert!(!required.is_met(&claims(amr, Some(NOW)), NOW, LEEWAY), "{amr:?}");
        }
    }

    #[test]
    fn max_age_counts_from_auth_time_on_the_given_clock() {
        let required = StepUp::max_age(TEN_MINUTES);
        let pwd = |auth_time| claims(&[AuthMethod::Pwd], auth_time);
        assert!(required.is_met(&pwd(Some(NOW)), NOW, LEEWAY));
        assert!(required.is_met(&pwd(Some(NOW - 600)), NOW, LEEWAY), "exactly max_age old");
        assert!(!required.is_met(&pwd(Some(NOW - 601)), NOW, LEEWAY), "one second too old");
        assert!(!required.is_met(&pwd(Some(NOW - 610)), NOW, LEEWAY), "the leeway does not stretch max_age");
        assert!(!required.is_met(&pwd(None), NOW, LEEWAY), "no auth_time: not known to be recent");
        assert!(!required.is_met(&pwd(Some(i64::MIN)), NOW, LEEWAY));
        // The same token, judged later.
        assert!(!required.is_met(&pwd(Some(NOW)), NOW + 601, LEEWAY));
    }

    #[test]
    fn an_auth_time_in_the_future_passes_only_within_the_leeway() {
        let required = StepUp::max_age(TEN_MINUTES);
        assert!(required.is_met(&mfa(Some(NOW + LEEWAY)), NOW, LEEWAY), "clock skew");
        assert!(!required.is_met(&mfa(Some(NOW + LEEWAY + 1)), NOW, LEEWAY));
        assert!(!required.is_met(&mfa(Some(i64::MAX)), NOW, LEEWAY));
        assert!(!required.is_met(&mfa(Some(NOW + 1)), NOW, 0));
        // A second-factor-only requirement does not look at the time at all.
        assert!(StepUp::second_factor().is_met(&mfa(Some(i64::MAX)), NOW, LEEWAY));
    }

    #[test]
    fn both_parts_must_hold() {
        assert!(SENSITIVE.is_met(&mfa(Some(NOW - 60)), NOW, LEEWAY));
        assert!(!SENSITIVE.is_met(&mfa(Some(NOW - 3_600)), NOW, LEEWAY), "mfa, but an hour ago");
        assert!(!SENSITIVE.is_met(&claims(&[AuthMethod::Pwd], Some(NOW)), NOW, LEEWAY), "recent, one factor");
        assert!(!SENSITIVE.is_met(&mfa(None), NOW, LEEWAY), "mfa, no auth_time");
    }

    // --- Through a verifier and axum: the clock, the token stamp, the HTTP answer. ---

    struct Fixture {
        key: SigningKey,
        clock: Arc<ManualClock>,
        verifier: Verifier,
    }

    async fn fixture(dpop: bool) -> Fixture {
        let key = SigningKey::generate_ed25519().unwrap();
        let clock = Arc::new(ManualClock::at(NOW));
        let keys = PublicKeys::new([VerifyingKey::from_signing_key(&key)]);
        let mut builder = Verifier::builder(ISSUER, AUDIENCE).static_keys(keys).clock(clock.clone());
        if dpop {
            builder = builder.dpop(DpopOptions::new().public_origin(ORIGIN));
        }
        Fixture { verifier: builder.build().await.unwrap(), key, clock }
    }

    impl Fixture {
        fn sign(&self, claims: &AccessClaims) -> String {
            self.key.sign(claims).unwrap()
        }

        /// `/hello` needs a token; `/sensitive` a token and `SENSITIVE` (the layer option);
        /// `/handler` a token and `SENSITIVE` checked by the handler's one line.
        fn app(&self) -> Router {
            async fn sensitive(token: VerifiedToken) -> Result<String, VerifyError> {
                token.require(&SENSITIVE)?;
                Ok(format!("hello {}", token.claims.sub))
            }
            let strict = Router::new()
                .route("/sensitive", get(|| async { "sensitive" }))
                .route_layer(VerifierLayer::new(self.verifier.clone()).require(SENSITIVE));
            Router::new()
                .route("/hello", get(|| async { "hello" }))
                .route("/handler", get(sensitive))
                .merge(strict)
                .route_layer(VerifierLayer::new(self.verifier.clone()))
        }

        async fn get(
            &self,
            path: &str,
            authorization: &str,
            dpop: Option<&str>,
        ) -> (StatusCode, Option<String>, Value) {
            let mut request = Request::get(path).header("authorization", authorization);
            if let Some(proof) = dpop {
                request = request.header("dpop", proof);
            }
            let response = self.app().oneshot(request.body(Body::empty()).unwrap()).await.unwrap();
            let status = response.status();
            let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
            let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            (status, challenge, body)
        }
    }

    fn assert_challenge(answer: &(StatusCode, Option<String>, Value), challenge: &str, description: &str) {
        let (status, header, body) = answer;
        assert_eq!(*status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "insufficient_user_authentication", "{body}");
        assert_eq!(body["error_description"], description, "{body}");
        assert_eq!(header.as_deref(), Some(challenge));
    }

    #[tokio::test]
    async fn the_verified_token_exposes_amr_and_auth_time_and_is_judged_by_the_verifier_clock() {
        let f = fixture(false).await;
        let token = f.sign(&mfa(Some(NOW - 60)));
        let verified = f.verifier.verified_token(f.verifier.verify(&token).await.unwrap());
        assert_eq!(verified.amr(), Amr::of(&[AuthMethod::Pwd, AuthMethod::Otp, AuthMethod::Mfa]));
        assert_eq!(verified.auth_time(), Some(NOW - 60));
        assert!(verified.has_second_factor());
        assert_eq!(verified.require(&SENSITIVE), Ok(()));
        assert_eq!(f.verifier.require(&verified.claims, &SENSITIVE), Ok(()));

        // Nine more minutes on the verifier's clock: no longer within ten minutes. The token
        // stamped earlier keeps the time it was verified at.
        f.clock.advance(Duration::from_secs(9 * 60 + 1));
        let error = f.verifier.require(&verified.claims, &SENSITIVE).unwrap_err();
        assert_eq!(error, VerifyError::InsufficientUserAuthentication { required: SENSITIVE, dpop_algs: None });
        assert_eq!(verified.require(&SENSITIVE), Ok(()));
        let again = f.verifier.verified_token(f.verifier.verify(&token).await.unwrap());
        assert_eq!(again.require(&SENSITIVE), Err(error.clone()));
        assert_eq!(again.require(&StepUp::second_factor()), Ok(()));
        assert_eq!(
            (error.status(), error.wire_error()),
            (StatusCode::UNAUTHORIZED, "insufficient_user_authentication")
        );

        // A client token: no amr, no auth_time.
        let client = f.verifier.verified_token(f.verifier.verify(&f.sign(&claims(&[], None))).await.unwrap());
        assert_eq!((client.amr(), client.auth_time(), client.has_second_factor()), (Amr::EMPTY, None, false));
        assert!(client.require(&StepUp::second_factor()).is_err());
        assert!(client.require(&StepUp::max_age(TEN_MINUTES)).is_err());
    }

    #[tokio::test]
    async fn a_layer_with_a_step_up_requirement_answers_the_rfc_9470_challenge() {
        let f = fixture(false).await;
        let bearer = |claims: &AccessClaims| format!("Bearer {}", f.sign(claims));
        let challenge = "Bearer error=\"insufficient_user_authentication\", \
            error_description=\"this request needs a sign-in with a second factor within the last 600 s\", \
            max_age=600";
        let description = "this request needs a sign-in with a second factor within the last 600 s";

        let strong = bearer(&mfa(Some(NOW - 60)));
        for path in ["/hello", "/sensitive", "/handler"] {
            let (status, header, _) = f.get(path, &strong, None).await;
            assert_eq!((status, header), (StatusCode::OK, None), "{path}");
        }
        for (why, claims) in [
            ("one factor", claims(&[AuthMethod::Pwd], Some(NOW))),
            ("signed in an hour ago", mfa(Some(NOW - 3_600))),
            ("no auth_time", mfa(None)),
            ("auth_time in the future", mfa(Some(NOW + 120))),
        ] {
            let authorization = bearer(&claims);
            assert_eq!(f.get("/hello", &authorization, None).await.0, StatusCode::OK, "{why}: a valid token");
            for path in ["/sensitive", "/handler"] {
                assert_challenge(&f.get(path, &authorization, None).await, challenge, description);
            }
        }

        // The clock moves: the strong token is no longer fresh.
        f.clock.advance(Duration::from_secs(600));
        assert_challenge(&f.get("/sensitive", &strong, None).await, challenge, description);
        assert_eq!(f.get("/hello", &strong, None).await.0, StatusCode::OK);

        // A bad token is still invalid_token, before any step-up check.
        let (status, header, body) = f.get("/sensitive", "Bearer nope", None).await;
        assert_eq!((status, header.as_deref()), (StatusCode::UNAUTHORIZED, Some("Bearer error=\"invalid_token\"")));
        assert_eq!(body["error"], "invalid_token");
    }

    #[tokio::test]
    async fn max_age_is_in_the_challenge_only_when_time_was_required() {
        let error = VerifyError::InsufficientUserAuthentication { required: StepUp::second_factor(), dpop_algs: None };
        let response = axum_core::response::IntoResponse::into_response(error);
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(response.headers()["cache-control"], "no-store");
        assert_eq!(
            response.headers()["www-authenticate"],
            "Bearer error=\"insufficient_user_authentication\", \
             error_description=\"this request needs a sign-in with a second factor\""
        );
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16).await.unwrap();
        let body: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "error": "insufficient_user_authentication",
                "error_description": "this request needs a sign-in with a second factor",
            })
        );
    }

    #[tokio::test]
    async fn a_dpop_bound_token_gets_the_dpop_challenge() {
        let f = fixture(true).await;
        let key = DpopKey::generate(KeyAlg::EdDsa).unwrap();
        let bound = |claims: AccessClaims| {
            let mut claims = claims;
            claims.cnf = Some(Confirmation { jkt: key.jkt() });
            f.sign(&claims)
        };
        let proof =
            |path: &str, token: &str| key.proof("GET", &format!("{ORIGIN}{path}"), Some(token), None, NOW).unwrap();

        let weak = bound(claims(&[AuthMethod::Pwd], Some(NOW)));
        let answer = f.get("/sensitive", &format!("DPoP {weak}"), Some(&proof("/sensitive", &weak))).await;
        assert_challenge(
            &answer,
            "DPoP error=\"insufficient_user_authentication\", \
             error_description=\"this request needs a sign-in with a second factor within the last 600 s\", \
             max_age=600, algs=\"EdDSA Ed25519 ES256\"",
            "this request needs a sign-in with a second factor within the last 600 s",
        );
        // Through the handler's one line too (the proof is verified once, by the outer layer).
        let answer = f.get("/handler", &format!("DPoP {weak}"), Some(&proof("/handler", &weak))).await;
        assert_eq!(
            answer.1.as_deref().map(|c| c.starts_with("DPoP error=\"insufficient_user_authentication\"")),
            Some(true)
        );

        // A strong bound token passes both layers: its proof is not checked (and spent) twice.
        let strong = bound(mfa(Some(NOW)));
        let answer = f.get("/sensitive", &format!("DPoP {strong}"), Some(&proof("/sensitive", &strong))).await;
        assert_eq!(answer.0, StatusCode::OK, "{answer:?}");
    }
}
