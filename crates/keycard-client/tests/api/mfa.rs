//! Second factors: a login's second step through a callback or by hand, recovery codes, and
//! step-up after `insufficient_user_authentication`. The authenticator app is totp-rs reading
//! the `otpauth://` URI keycard returned, at keycard's clock (which the tests move: a code's
//! 30-second step is accepted once, so the tests move to the next one; nothing sleeps).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use keycard_client::{Client, ClientError, ErrorCode, MfaAnswer, MfaMethod, StepUpAnswer};
use keycard_core::clock::Clock;
use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::Totp;

use crate::helpers::{Keycard, PASSWORD, start_keycard};

/// An account with an active authenticator app.
pub(crate) struct Enrolled {
    pub(crate) email: String,
    pub(crate) app: Totp,
    pub(crate) factor_id: String,
    recovery_codes: Vec<String>,
}

/// The code the app shows at keycard's time.
pub(crate) fn code(keycard: &Keycard, app: &Totp) -> String {
    app.generate(keycard.clock.now() as u64).to_string()
}

/// A wrong code: the right one with its last digit changed.
fn wrong(code: &str) -> String {
    let last = code.chars().last().unwrap().to_digit(10).unwrap();
    format!("{}{}", &code[..5], (last + 1) % 10)
}

/// Signs `email` up, enrols an authenticator app through the HTTP API with the session of a
/// fresh login, and moves to the next 30-second step (the confirming code's step is spent).
pub(crate) async fn enrol(keycard: &Keycard, email: &str) -> Enrolled {
    let client = keycard.logged_in(email).await;
    let enrolment: Value = client.post_json("/auth/mfa/totp", &json!({})).await.unwrap();
    let app = Totp::from_url(enrolment["otpauth_uri"].as_str().unwrap()).unwrap();
    let factor_id = enrolment["factor_id"].as_str().unwrap().to_owned();
    let confirm = json!({"factor_id": factor_id, "code": code(keycard, &app)});
    let confirmed: Value = client.post_json("/auth/mfa/totp/confirm", &confirm).await.unwrap();
    let recovery_codes: Vec<String> =
        confirmed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery_codes.len(), 10);
    keycard.advance(30_000);
    Enrolled { email: email.to_owned(), app, factor_id, recovery_codes }
}

#[tokio::test]
async fn login_with_mfa_answers_with_the_callbacks_code() {
    let keycard = start_keycard().await;
    let user = enrol(&keycard, "mfa@example.com").await;
    let client = keycard.client().build().unwrap();
    let calls = AtomicU32::new(0);
    let the_code = code(&keycard, &user.app);
    let login = client
        .login_with_mfa(&user.email, PASSWORD, |challenge| {
            calls.fetch_add(1, Ordering::SeqCst);
            let the_code = the_code.clone();
            async move {
                assert_eq!(challenge.methods(), [MfaMethod::Totp, MfaMethod::RecoveryCode]);
                assert!(challenge.allows(MfaMethod::Totp));
                assert_eq!(challenge.expires_in(), Duration::from_secs(300));
                assert_eq!(challenge.failed_answers(), 0);
                let printed = format!("{challenge:?}");
                assert!(printed.contains("<redacted>") && !printed.contains("kcmf_"), "{printed}");
                Ok(MfaAnswer::Code(the_code))
            }
        })
        .await
        .unwrap();
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(client.session_id().await.as_deref(), Some(login.session_id.as_str()));
    assert_eq!(client.me().await.unwrap().email, user.email);
    client.refresh().await.expect("the refresh token was stored");
    assert_eq!(keycard.audit_count("mfa_verified").await, 1);

    // An account without a second factor never calls the callback.
    let plain = keycard.logged_in("plain@example.com").await;
    plain
        .login_with_mfa("plain@example.com", PASSWORD, |_| async {
            Err(ClientError::Protocol("no second factor to ask for".into()))
        })
        .await
        .unwrap();
    assert!(plain.me().await.is_ok());
}

#[tokio::test]
async fn a_wrong_code_asks_the_callback_again() {
    let keycard = start_keycard().await;
    let user = enrol(&keycard, "retry@example.com").await;
    let client = keycard.client().build().unwrap();
    let the_code = code(&keycard, &user.app);
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let answers = seen.clone();
    client
        .login_with_mfa(&user.email, PASSWORD, move |challenge| {
            let mut answers = answers.lock().unwrap();
            answers.push(challenge.failed_answers());
            let answer = if answers.len() == 1 { wrong(&the_code) } else { the_code.clone() };
            async move { Ok(MfaAnswer::Code(answer)) }
        })
        .await
        .unwrap();
    assert_eq!(*seen.lock().unwrap(), [0, 1], "two calls, the second told of the refusal");
    assert!(client.me().await.is_ok());
    assert_eq!(keycard.audit_count("mfa_failed").await, 1);
}

#[tokio::test]
async fn plain_login_is_mfa_required_and_complete_mfa_finishes_it() {
    let keycard = start_keycard().await;
    let user = enrol(&keycard, "manual@example.com").await;
    let client = keycard.client().build().unwrap();

    let error = client.login(&user.email, PASSWORD).await.unwrap_err();
    let ClientError::MfaRequired(challenge) = &error else { panic!("{error:?}") };
    assert!(challenge.allows(MfaMethod::RecoveryCode));
    assert_eq!(error.mfa_challenge().map(|c| c.methods().len()), Some(2));
    for printed in [format!("{error:?}"), error.to_string()] {
        assert!(!printed.contains("kcmf_"), "the mfa_token stays secret: {printed}");
    }
    assert!(error.to_string().contains("totp"), "{error}");
    assert!(!client.is_logged_in().await, "no session before the second step");
    assert!(matches!(client.me().await, Err(ClientError::NotLoggedIn)));

    // A wrong code is refused; the same challenge takes another answer.
    let the_code = code(&keycard, &user.app);
    let refused = client.complete_mfa(challenge, MfaAnswer::Code(wrong(&the_code))).await.unwrap_err();
    assert!(refused.is_invalid_mfa(), "{refused:?}");
    assert_eq!((refused.status(), refused.code()), (Some(StatusCode::BAD_REQUEST), Some(ErrorCode::InvalidMfa)));
    let answer = MfaAnswer::Code(the_code.clone());
    assert!(!format!("{answer:?}").contains(&the_code), "codes stay secret");
    let login = client.complete_mfa(challenge, answer).await.unwrap();
    assert_eq!(client.session_id().await, Some(login.session_id));
    assert_eq!(client.me().await.unwrap().email, user.email);
    // The completed challenge is spent.
    keycard.advance(30_000);
    let spent = client.complete_mfa(challenge, MfaAnswer::Code(code(&keycard, &user.app))).await.unwrap_err();
    assert!(spent.is_invalid_mfa(), "{spent:?}");
    assert!(client.me().await.is_ok(), "a refused answer leaves the session alone");
}

#[tokio::test]
async fn a_recovery_code_completes_the_login_once_and_the_callback_can_give_up() {
    let keycard = start_keycard().await;
    let user = enrol(&keycard, "recovery@example.com").await;
    let client = keycard.client().build().unwrap();
    let recovery = user.recovery_codes[0].clone();
    let answer = MfaAnswer::RecoveryCode(recovery.clone());
    let answer_with = |answer: &MfaAnswer| {
        let answer = answer.clone();
        async move { Ok(answer) }
    };
    client.login_with_mfa(&user.email, PASSWORD, |_| answer_with(&answer)).await.unwrap();
    assert!(client.me().await.is_ok());
    assert_eq!(keycard.audit_count("recovery_code_used").await, 1);

    // Spent: every answer is refused, and the client stops after the five answers keycard takes
    // for one challenge (the session it held is kept).
    let calls = AtomicU32::new(0);
    let error = client
        .login_with_mfa(&user.email, PASSWORD, |_| {
            calls.fetch_add(1, Ordering::SeqCst);
            answer_with(&answer)
        })
        .await
        .unwrap_err();
    assert!(error.is_invalid_mfa(), "{error:?}");
    assert_eq!(calls.load(Ordering::SeqCst), keycard_client::mfa::MAX_MFA_ANSWERS);
    assert!(client.me().await.is_ok(), "the earlier session stays");

    // The callback gives up.
    let other = keycard.client().build().unwrap();
    let error = other.login_with_mfa(&user.email, PASSWORD, |_| async { Err(ClientError::MfaCancelled) }).await;
    assert!(matches!(error, Err(ClientError::MfaCancelled)), "{error:?}");
    assert!(!other.is_logged_in().await);
}

#[tokio::test]
async fn step_up_after_insufficient_user_authentication_then_the_call_succeeds() {
    let keycard = start_keycard().await;
    let user = enrol(&keycard, "stepup@example.com").await;
    let client = keycard.client().build().unwrap();
    let answer = MfaAnswer::Code(code(&keycard, &user.app));
    client
        .login_with_mfa(&user.email, PASSWORD, |_| {
            let answer = answer.clone();
            async move { Ok(answer) }
        })
        .await
        .unwrap();
    let session = client.session_id().await;

    // Eleven minutes later (step_up_max_age is ten), removing the factor needs a step-up.
    keycard.advance(11 * 60_000);
    let path = format!("/auth/mfa/factors/{}", user.factor_id);
    let error = client.send(client.delete(&path)).await.unwrap_err();
    assert!(error.is_step_up_required(), "{error:?}");
    assert_eq!(error.step_up_max_age(), Some(Duration::from_secs(600)));
    assert_eq!(
        (error.status(), error.code()),
        (Some(StatusCode::UNAUTHORIZED), Some(ErrorCode::InsufficientUserAuthentication))
    );
    assert!(!error.is_session_ended(), "a step-up is no logout");
    assert!(client.me().await.is_ok());

    // A wrong code is refused; the right one replaces the access token.
    let the_code = code(&keycard, &user.app);
    let refused = client.step_up(MfaAnswer::Code(wrong(&the_code))).await.unwrap_err();
    assert!(refused.is_invalid_mfa(), "{refused:?}");
    let refreshes = client.stats().refreshes;
    client.step_up(MfaAnswer::Code(the_code)).await.unwrap();
    assert_eq!(client.session_id().await, session, "the same session");
    assert_eq!(client.stats().refreshes, refreshes, "a step-up is no refresh");
    // The client holds the new access token: another sensitive call works with it.
    let codes: Value = client.post_json("/auth/mfa/recovery-codes", &json!({})).await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
    // The refresh token was kept, and the session's refreshed tokens are recent too.
    client.refresh().await.unwrap();
    assert_eq!(client.session_id().await, session);
    let response = client.send(client.delete(&path)).await.unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let listed: Value = client.get_json("/auth/mfa").await.unwrap();
    assert_eq!(listed["factors"], json!([]));
}

#[tokio::test]
async fn an_account_without_a_factor_steps_up_with_its_password() {
    let keycard = start_keycard().await;
    let client = keycard.logged_in("password@example.com").await;
    keycard.advance(11 * 60_000);
    // Starting an enrolment needs a recent sign-in.
    let error = client.post_json::<_, Value>("/auth/mfa/totp", &json!({})).await.unwrap_err();
    assert!(error.is_step_up_required(), "{error:?}");
    assert!(error.to_string().contains("insufficient_user_authentication"), "{error}");

    let wrong = client.step_up(StepUpAnswer::Password("not the password".into())).await.unwrap_err();
    assert_eq!(wrong.code(), Some(ErrorCode::InvalidCredentials), "{wrong:?}");
    assert!(client.is_logged_in().await, "a wrong password ends nothing");
    assert!(!format!("{:?}", StepUpAnswer::Password(PASSWORD.into())).contains(PASSWORD));
    client.step_up(StepUpAnswer::Password(PASSWORD.into())).await.unwrap();
    let enrolment: Value = client.post_json("/auth/mfa/totp", &json!({})).await.unwrap();
    assert!(enrolment["otpauth_uri"].as_str().unwrap().starts_with("otpauth://totp/"));

    // Without a session there is nothing to step up.
    let stranger = Client::new(&keycard.base).unwrap();
    let error = stranger.step_up(StepUpAnswer::Password(PASSWORD.into())).await;
    assert!(matches!(error, Err(ClientError::NotLoggedIn)), "{error:?}");
}
