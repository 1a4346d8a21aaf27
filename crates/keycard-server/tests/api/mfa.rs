//! Second factors (issue 17) against the real server: TOTP enrolment, login with a code, replay,
//! recovery codes, the `mfa_token`'s limits, step-up, and factor changes that need a recent
//! sign-in. The authenticator app is totp-rs reading the `otpauth://` URI the server returned,
//! at the server's clock (which the tests move; nothing sleeps).

use reqwest::StatusCode;
use serde_json::{Value, json};
use totp_rs::Totp;

use crate::helpers::*;

/// An account with an active authenticator app: its address, the app, and the recovery codes.
pub(crate) struct Enrolled {
    pub(crate) email: String,
    pub(crate) app: Totp,
    pub(crate) recovery_codes: Vec<String>,
    /// The access token of the session that enrolled.
    pub(crate) access: String,
}

pub(crate) async fn post_authed(app: &TestApp, path: &str, access: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url(path)).bearer_auth(access).json(&body).send().await.unwrap()
}

/// The code the app shows at the server's time.
pub(crate) fn code(app: &TestApp, totp: &Totp) -> String {
    totp.generate(app.now() as u64).to_string()
}

/// A wrong code: the right one with its last digit changed.
fn wrong(code: &str) -> String {
    let last = code.chars().last().unwrap().to_digit(10).unwrap();
    format!("{}{}", &code[..5], (last + 1) % 10)
}

pub(crate) async fn enrol(app: &TestApp) -> Enrolled {
    let (email, tokens) = app.user().await;
    let resp = post_authed(app, "/auth/mfa/totp", &tokens.access_token, json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let enrolment: Value = resp.json().await.unwrap();
    let uri = enrolment["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/keycard:"), "{uri}");
    assert!(enrolment["qr_code"].as_str().unwrap().starts_with("data:image/svg+xml;base64,"));
    let totp = Totp::from_url(uri).unwrap();
    assert_eq!(totp.secret().to_base32(), enrolment["secret"].as_str().unwrap());
    let factor_id = enrolment["factor_id"].as_str().unwrap();

    // Not active until a right code is confirmed.
    let status = app
        .post_json("/auth/login", json!({"email": email, "password": PASSWORD, "delivery": "body"}))
        .await
        .json::<Value>()
        .await
        .unwrap();
    assert!(status["access_token"].is_string(), "a pending factor asks nothing: {status}");
    let bad = json!({"factor_id": factor_id, "code": wrong(&code(app, &totp))});
    assert_error(post_authed(app, "/auth/mfa/totp/confirm", &tokens.access_token, bad).await, 400, "invalid_mfa").await;
    let good = json!({"factor_id": factor_id, "code": code(app, &totp)});
    let resp = post_authed(app, "/auth/mfa/totp/confirm", &tokens.access_token, good).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let confirmed: Value = resp.json().await.unwrap();
    let recovery_codes: Vec<String> =
        confirmed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    assert_eq!(recovery_codes.len(), 10);
    // The confirming code's step is spent: move to the next one.
    app.advance(30.0);
    Enrolled { email, app: totp, recovery_codes, access: tokens.access_token }
}

/// A login's first step: the `mfa_token`.
pub(crate) async fn password_step(app: &TestApp, email: &str) -> String {
    let resp = app.post_json("/auth/login", json!({"email": email, "password": PASSWORD, "delivery": "body"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert!(body.get("access_token").is_none() && body.get("refresh_token").is_none(), "no tokens yet: {body}");
    assert_eq!(body["methods"], json!(["totp", "recovery_code"]));
    assert_eq!(body["expires_in"], 300);
    body["mfa_token"].as_str().unwrap().to_owned()
}

pub(crate) async fn verify(app: &TestApp, mfa_token: &str, answer: Value) -> reqwest::Response {
    let mut body = answer;
    body["mfa_token"] = json!(mfa_token);
    app.post_json("/auth/mfa/verify", body).await
}

#[tokio::test]
async fn a_login_with_a_code_carries_amr_and_auth_time_and_a_replayed_code_is_refused() {
    let app = spawn_app().await;
    let user = enrol(&app).await;
    let user_id = claims(&user.access)["sub"].as_str().unwrap().to_owned();
    assert_eq!(claims(&user.access)["amr"], json!(["pwd"]), "a password login");

    let mfa_token = password_step(&app, &user.email).await;
    assert_error(verify(&app, &mfa_token, json!({"code": wrong(&code(&app, &user.app))})).await, 400, "invalid_mfa")
        .await;
    let now = app.now();
    let the_code = code(&app, &user.app);
    let resp = verify(&app, &mfa_token, json!({"code": the_code})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["pwd", "otp", "mfa"]));
    assert_eq!(access["auth_time"], now);
    assert!(tokens["refresh_token"].is_string() && tokens["device_token"].is_string(), "{tokens}");
    // The session keeps them: a refresh's token carries them too.
    let refreshed: Value = app.refresh(tokens["refresh_token"].as_str().unwrap()).await.json().await.unwrap();
    let after = claims(refreshed["access_token"].as_str().unwrap());
    assert_eq!((after["amr"].clone(), after["auth_time"].clone()), (json!(["pwd", "otp", "mfa"]), json!(now)));

    // The same code again, on a new login in the same 30 s: refused (RFC 6238 §5.2).
    let again = password_step(&app, &user.email).await;
    assert_error(verify(&app, &again, json!({"code": the_code})).await, 400, "invalid_mfa").await;
    // The completed mfa_token is spent.
    let next = code(&app, &user.app);
    assert_error(verify(&app, &mfa_token, json!({"code": next})).await, 400, "invalid_mfa").await;
    // The next step's code works (the failed attempts count toward the backoff, which one
    // success clears).
    app.advance(30.0);
    let resp = verify(&app, &again, json!({"code": code(&app, &user.app)})).await;
    assert_eq!(resp.status(), StatusCode::OK);

    let kinds = app.audit_kinds(&user_id).await;
    for kind in ["mfa_enrolled", "mfa_failed", "mfa_verified"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn a_recovery_code_gets_in_once_and_the_list_counts_what_is_left() {
    let app = spawn_app().await;
    let user = enrol(&app).await;
    let listed: Value = app.get_authed("/auth/mfa", &user.access).await.json().await.unwrap();
    assert_eq!(listed["factors"].as_array().unwrap().len(), 1);
    assert_eq!(listed["factors"][0]["kind"], "totp");
    assert_eq!(listed["recovery_codes_left"], 10);

    // Typed from paper: upper case, spaces instead of dashes.
    let typed = user.recovery_codes[0].replace('-', " ").to_uppercase();
    let resp = verify(&app, &password_step(&app, &user.email).await, json!({"recovery_code": typed})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(claims(tokens["access_token"].as_str().unwrap())["amr"], json!(["pwd", "otp", "mfa"]));

    let spent = json!({"recovery_code": user.recovery_codes[0]});
    assert_error(verify(&app, &password_step(&app, &user.email).await, spent).await, 400, "invalid_mfa").await;
    let listed: Value = app.get_authed("/auth/mfa", &user.access).await.json().await.unwrap();
    assert_eq!(listed["recovery_codes_left"], 9);
    let user_id = claims(&user.access)["sub"].as_str().unwrap().to_owned();
    assert!(app.audit_kinds(&user_id).await.iter().any(|k| k == "recovery_code_used"));
}

#[tokio::test]
async fn an_mfa_token_expires_takes_five_answers_and_only_one_of_racing_answers_wins() {
    let app = spawn_app().await;
    let user = enrol(&app).await;

    let expiring = password_step(&app, &user.email).await;
    app.advance(301.0);
    assert_error(verify(&app, &expiring, json!({"code": code(&app, &user.app)})).await, 400, "invalid_mfa").await;

    let guessed = password_step(&app, &user.email).await;
    for _ in 0..5 {
        let guess = json!({"code": wrong(&code(&app, &user.app))});
        assert_error(verify(&app, &guessed, guess).await, 400, "invalid_mfa").await;
    }
    // Five wrong answers used the token up (and started the login backoff): the right code no
    // longer helps it.
    let answer = verify(&app, &guessed, json!({"code": code(&app, &user.app)})).await;
    assert!(matches!(answer.status().as_u16(), 400 | 429), "{}", answer.status());

    // Ten answers at once with the right recovery code on one token: one session.
    app.advance(3600.0);
    let racing = password_step(&app, &user.email).await;
    let answers = (0..10).map(|_| verify(&app, &racing, json!({"recovery_code": user.recovery_codes[1]})));
    let statuses: Vec<u16> = futures::future::join_all(answers).await.iter().map(|r| r.status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
}

#[tokio::test]
async fn wrong_flow_tokens_and_malformed_answers_are_refused_clearly() {
    let app = spawn_app().await;
    let user = enrol(&app).await;
    let mfa_token = password_step(&app, &user.email).await;
    let (_, other) = app.user().await;
    let refresh = other.refresh_token.unwrap();
    let the_code = code(&app, &user.app);
    for foreign in [refresh.as_str(), "kcmf_", "", "kcpr_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        assert_error(verify(&app, foreign, json!({"code": the_code})).await, 400, "invalid_mfa").await;
    }
    assert_error(verify(&app, &mfa_token, json!({})).await, 400, "invalid_request").await;
    let both = json!({"code": the_code, "recovery_code": user.recovery_codes[0]});
    assert_error(verify(&app, &mfa_token, both).await, 400, "invalid_request").await;
    assert_error(verify(&app, &mfa_token, json!({"code": "not digits"})).await, 400, "invalid_mfa").await;
    assert_error(verify(&app, &mfa_token, json!({"code": 123456})).await, 400, "invalid_request").await;
    // The mfa_token is not a refresh token either.
    assert_error(app.refresh(&mfa_token).await, 401, "invalid_grant").await;
    // Still usable after the malformed answers that never reached a check.
    let resp = verify(&app, &mfa_token, json!({"code": the_code})).await;
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn factor_changes_need_a_recent_second_factor_and_step_up_gives_one() {
    let app = spawn_app().await;
    let user = enrol(&app).await;
    let resp = verify(&app, &password_step(&app, &user.email).await, json!({"code": code(&app, &user.app)})).await;
    let tokens: Value = resp.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();

    // Eleven minutes later (step_up_max_age is 10 minutes), with a fresh access token.
    app.advance(11.0 * 60.0);
    let refreshed: Value = app.refresh(refresh).await.json().await.unwrap();
    let stale = refreshed["access_token"].as_str().unwrap().to_owned();
    let factor_id = app.get_authed("/auth/mfa", &stale).await.json::<Value>().await.unwrap()["factors"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let remove = || app.client.delete(app.url(&format!("/auth/mfa/factors/{factor_id}")));
    let headers =
        assert_error(remove().bearer_auth(&stale).send().await.unwrap(), 401, "insufficient_user_authentication").await;
    assert_eq!(
        headers.get("www-authenticate").unwrap(),
        "Bearer error=\"insufficient_user_authentication\", max_age=600"
    );
    let regenerate = post_authed(&app, "/auth/mfa/recovery-codes", &stale, json!({})).await;
    assert_error(regenerate, 401, "insufficient_user_authentication").await;
    // The right password is not enough on an account with a second factor.
    let change = json!({"current_password": PASSWORD, "new_password": "another long passphrase"});
    assert_error(
        post_authed(&app, "/auth/password", &stale, change.clone()).await,
        401,
        "insufficient_user_authentication",
    )
    .await;

    // Step-up with a code: a new access token with auth_time now.
    assert_error(
        post_authed(&app, "/auth/step-up", &stale, json!({"password": PASSWORD})).await,
        400,
        "invalid_request",
    )
    .await;
    let resp = post_authed(&app, "/auth/step-up", &stale, json!({"code": code(&app, &user.app)})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let stepped: Value = resp.json().await.unwrap();
    let fresh = stepped["access_token"].as_str().unwrap().to_owned();
    assert_eq!(claims(&fresh)["auth_time"], app.now());
    assert_eq!(claims(&fresh)["sid"], claims(&stale)["sid"], "the same session");

    let resp = post_authed(&app, "/auth/mfa/recovery-codes", &fresh, json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let codes: Value = resp.json().await.unwrap();
    assert_eq!(codes["recovery_codes"].as_array().unwrap().len(), 10);
    let old = json!({"recovery_code": user.recovery_codes[2]});
    assert_error(verify(&app, &password_step(&app, &user.email).await, old).await, 400, "invalid_mfa").await;

    assert_eq!(remove().bearer_auth(&fresh).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let listed: Value = app.get_authed("/auth/mfa", &fresh).await.json().await.unwrap();
    assert_eq!(listed, json!({"factors": [], "recovery_codes_left": 0}));
    // Without a factor, the password logs in again.
    assert!(app.login(&user.email).await.access_token.len() > 20);
    let user_id = claims(&fresh)["sub"].as_str().unwrap().to_owned();
    let kinds = app.audit_kinds(&user_id).await;
    for kind in ["recovery_codes_regenerated", "mfa_removed"] {
        assert!(kinds.iter().any(|k| k == kind), "{kind} in {kinds:?}");
    }
}

#[tokio::test]
async fn enrolling_the_first_factor_needs_a_recent_sign_in_and_the_password_steps_up() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    app.advance(11.0 * 60.0);
    let refreshed: Value = app.refresh(tokens.refresh_token.as_deref().unwrap()).await.json().await.unwrap();
    let stale = refreshed["access_token"].as_str().unwrap();
    assert_error(post_authed(&app, "/auth/mfa/totp", stale, json!({})).await, 401, "insufficient_user_authentication")
        .await;
    assert_error(
        post_authed(&app, "/auth/step-up", stale, json!({"password": "wrong password!"})).await,
        401,
        "invalid_credentials",
    )
    .await;
    assert_error(post_authed(&app, "/auth/step-up", stale, json!({"code": "123456"})).await, 400, "invalid_request")
        .await;
    let stepped: Value =
        post_authed(&app, "/auth/step-up", stale, json!({"password": PASSWORD})).await.json().await.unwrap();
    let fresh = stepped["access_token"].as_str().unwrap();
    assert_eq!(claims(fresh)["amr"], json!(["pwd"]));
    assert_eq!(post_authed(&app, "/auth/mfa/totp", fresh, json!({})).await.status(), StatusCode::OK);
    // A password change on an account without a factor needs only the password, as before.
    let change = json!({"current_password": PASSWORD, "new_password": "another long passphrase"});
    assert_eq!(post_authed(&app, "/auth/password", stale, change).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn a_password_reset_by_mail_keeps_the_factor_and_a_recovery_code_still_gets_in() {
    let Some(smtp) = crate::mail::SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let user = enrol(&app).await;
    let (_, token) = crate::password_reset::request_link(&app, &smtp, &user.email).await;
    let new_password = "a brand new passphrase";
    let resp = app.post_json("/auth/password/reset", json!({"token": token, "new_password": new_password})).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);

    // The phone is gone: the new password and a recovery code get back in.
    let login = json!({"email": user.email, "password": new_password, "delivery": "body"});
    let body: Value = app.post_json("/auth/login", login).await.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "the reset did not remove the factor: {body}");
    let resp =
        verify(&app, body["mfa_token"].as_str().unwrap(), json!({"recovery_code": user.recovery_codes[3]})).await;
    assert_eq!(resp.status(), StatusCode::OK);
}
