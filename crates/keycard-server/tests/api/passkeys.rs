//! Passkeys (issue 17) against the real server, with a software authenticator keycard did not
//! write (webauthn-authenticator-rs's `SoftPasskey`, ECDSA P-256, a counter per use): registration,
//! the passkey as second factor and as the only factor, single-use challenges, wrong origin and
//! relying party, a rewound counter (a cloned authenticator), step-up, rename and removal, and the
//! way back in for an account whose only factor is a passkey (email, then a recovery code).
//!
//! `SoftPasskey` makes no resident keys, so for the passwordless sign-in the test lists its
//! credential in the options and adds the `userHandle` a discoverable credential returns (the
//! user handle is outside what the authenticator signs, so the server checks the same bytes it
//! would from a browser). The browser test does the real discoverable flow in Chromium.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_server::settings::StringList;
use reqwest::StatusCode;
use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::prelude::Url;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;

use crate::helpers::*;
use crate::mfa::{post_authed, verify};

const ORIGIN: &str = "https://app.example";

async fn spawn() -> TestApp {
    spawn_app_with(|s| s.webauthn_origins = StringList(vec![ORIGIN.into()])).await
}

fn origin() -> Url {
    Url::parse(ORIGIN).unwrap()
}

/// The authenticator (it claims user verification, as a platform authenticator with a PIN does).
fn authenticator() -> SoftPasskey {
    SoftPasskey::new(true)
}

/// The authenticator's answer to creation options, from `origin`.
fn create(key: &mut SoftPasskey, options: &Value, origin: Url) -> Value {
    let options = serde_json::from_value(options.clone()).unwrap();
    serde_json::to_value(key.do_registration(origin, options).expect("the authenticator registers")).unwrap()
}

/// The authenticator's assertion for request options.
fn assert_with(key: &mut SoftPasskey, options: &Value) -> Value {
    let options = serde_json::from_value(options.clone()).unwrap();
    serde_json::to_value(key.do_authentication(origin(), options).expect("the authenticator signs")).unwrap()
}

struct Registered {
    email: String,
    user_id: String,
    access: String,
    key: SoftPasskey,
    factor_id: String,
    credential_id: String,
    recovery_codes: Vec<String>,
}

/// A new user, freshly signed in, registers a passkey.
async fn register(app: &TestApp) -> Registered {
    let (email, tokens) = app.user().await;
    let access = tokens.access_token;
    let user_id = claims(&access)["sub"].as_str().unwrap().to_owned();
    let resp = post_authed(app, "/auth/passkeys/register/options", &access, json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let options: Value = resp.json().await.unwrap();
    let public_key = &options["options"]["publicKey"];
    assert_eq!(public_key["rp"]["id"], "app.example");
    assert_eq!(public_key["user"]["id"], URL_SAFE_NO_PAD.encode(uuid::Uuid::parse_str(&user_id).unwrap().as_bytes()));
    assert_eq!(public_key["authenticatorSelection"]["residentKey"], "preferred", "{public_key}");
    assert_eq!(public_key["authenticatorSelection"]["userVerification"], "required");
    let mut key = authenticator();
    let credential = create(&mut key, &options["options"], origin());
    let credential_id = credential["id"].as_str().unwrap().to_owned();
    let token = options["passkey_token"].as_str().unwrap();
    assert!(token.starts_with("kcmf_"));
    let body = json!({"passkey_token": token, "name": "Laptop", "credential": credential});
    let resp = post_authed(app, "/auth/passkeys/register", &access, body.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let added: Value = resp.json().await.unwrap();
    assert_eq!(added["name"], "Laptop");
    let recovery_codes: Vec<String> = added["recovery_codes"]
        .as_array()
        .expect("the first factor brings recovery codes")
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery_codes.len(), 10);
    // The registration's challenge is spent.
    assert_error(post_authed(app, "/auth/passkeys/register", &access, body).await, 400, "invalid_mfa").await;
    Registered {
        email,
        user_id,
        access,
        key,
        factor_id: added["factor_id"].as_str().unwrap().to_owned(),
        credential_id,
        recovery_codes,
    }
}

/// A password login's challenge: its `mfa_token` and passkey options.
async fn password_step(app: &TestApp, email: &str) -> (String, Value) {
    let resp = app.post_json("/auth/login", json!({"email": email, "password": PASSWORD, "delivery": "body"})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["mfa_required"], true, "{body}");
    assert_eq!(body["methods"], json!(["webauthn", "recovery_code"]));
    assert!(body.get("access_token").is_none());
    (body["mfa_token"].as_str().unwrap().to_owned(), body["webauthn"].clone())
}

/// Passwordless options, with the soft authenticator's credential listed (see the module doc).
async fn passwordless_options(app: &TestApp, credential_id: &str) -> (String, Value) {
    let resp = app.post_json("/auth/passkeys/login/options", json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let options: Value = resp.json().await.unwrap();
    let mut request = options["options"].clone();
    assert_eq!(request["publicKey"]["allowCredentials"], json!([]), "discoverable: no credential listed");
    assert_eq!(request["publicKey"]["userVerification"], "required");
    request["publicKey"]["allowCredentials"] = json!([{"type": "public-key", "id": credential_id}]);
    (options["passkey_token"].as_str().unwrap().to_owned(), request)
}

/// An assertion as a discoverable credential gives it: with the user handle.
fn discoverable(key: &mut SoftPasskey, request: &Value, user_id: &str) -> Value {
    let mut assertion = assert_with(key, request);
    assertion["response"]["userHandle"] =
        json!(URL_SAFE_NO_PAD.encode(uuid::Uuid::parse_str(user_id).unwrap().as_bytes()));
    assertion
}

#[tokio::test]
async fn a_passkey_is_registered_then_answers_the_second_step_and_signs_in_alone() {
    let app = spawn().await;
    let mut user = register(&app).await;
    let list: Value = app.get_authed("/auth/mfa", &user.access).await.json().await.unwrap();
    assert_eq!(list["factors"][0]["kind"], "passkey");
    assert_eq!(list["factors"][0]["name"], "Laptop");
    assert_eq!(list["factors"][0]["backed_up"], false);
    assert_eq!(list["recovery_codes_left"], 10);

    // Second factor: the password, then the passkey.
    let (mfa_token, options) = password_step(&app, &user.email).await;
    assert_eq!(
        options["publicKey"]["allowCredentials"][0]["id"], user.credential_id,
        "the account's passkeys are offered"
    );
    let assertion = assert_with(&mut user.key, &options);
    let resp = verify(&app, &mfa_token, json!({"webauthn": assertion})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(access["amr"], json!(["pwd", "hwk", "mfa"]), "a device-bound key: hwk");
    // The same assertion for another login: its challenge is not that login's.
    let (other, _) = password_step(&app, &user.email).await;
    assert_error(verify(&app, &other, json!({"webauthn": assertion})).await, 400, "invalid_mfa").await;

    // Passwordless: a discoverable sign-in.
    let (token, request) = passwordless_options(&app, &user.credential_id).await;
    let assertion = discoverable(&mut user.key, &request, &user.user_id);
    let body = json!({"passkey_token": token, "credential": assertion, "delivery": "body"});
    let resp = app.post_json("/auth/passkeys/login", body.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    let access = claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(
        (access["sub"].as_str().unwrap(), access["amr"].clone()),
        (user.user_id.as_str(), json!(["hwk", "mfa"]))
    );
    assert!(tokens["refresh_token"].is_string() && tokens["device_token"].is_string(), "{tokens}");
    // Replayed: the challenge is spent.
    assert_error(app.post_json("/auth/passkeys/login", body).await, 401, "invalid_credentials").await;

    // A passkey sign-in is recent and strong enough for factor changes.
    let me = tokens["access_token"].as_str().unwrap();
    let rename = app
        .client
        .patch(app.url(&format!("/auth/mfa/factors/{}", user.factor_id)))
        .bearer_auth(me)
        .json(&json!({"name": "Work laptop"}))
        .send()
        .await
        .unwrap();
    assert_eq!(rename.status(), StatusCode::NO_CONTENT);
    let list: Value = app.get_authed("/auth/mfa", me).await.json().await.unwrap();
    assert_eq!(list["factors"][0]["name"], "Work laptop");
    assert!(list["factors"][0]["last_used_at"].is_string());

    let kinds = app.audit_kinds(&user.user_id).await;
    assert!(kinds.contains(&"passkey_added".to_owned()) && kinds.contains(&"mfa_verified".to_owned()), "{kinds:?}");
}

#[tokio::test]
async fn a_passwordless_answer_for_an_unknown_user_or_a_forged_handle_is_refused_alike() {
    let app = spawn().await;
    let mut user = register(&app).await;
    let (other, _) = app.user().await;
    let other_id = claims(&app.login(&other).await.access_token)["sub"].as_str().unwrap().to_owned();
    // Another account's user handle on this passkey's assertion, and a handle of no account.
    for handle in [other_id, uuid::Uuid::new_v4().to_string()] {
        let (token, request) = passwordless_options(&app, &user.credential_id).await;
        let assertion = discoverable(&mut user.key, &request, &handle);
        let resp =
            app.post_json("/auth/passkeys/login", json!({"passkey_token": token, "credential": assertion})).await;
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_credentials");
        assert_eq!(body["error_description"], "the passkey was not accepted", "the same answer either way");
    }
    // Garbage is a clear 400, not a 500.
    let (token, _) = passwordless_options(&app, &user.credential_id).await;
    let resp = app.post_json("/auth/passkeys/login", json!({"passkey_token": token, "credential": {"id": 5}})).await;
    assert_error(resp, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_wrong_origin_or_relying_party_is_refused_saying_which() {
    let app = spawn().await;
    let (_, tokens) = app.user().await;
    let options = async |app: &TestApp| {
        let resp = post_authed(app, "/auth/passkeys/register/options", &tokens.access_token, json!({})).await;
        resp.json::<Value>().await.unwrap()
    };
    let register = async |token: &Value, credential: Value| {
        let body = json!({"passkey_token": token, "credential": credential});
        post_authed(&app, "/auth/passkeys/register", &tokens.access_token, body).await
    };

    // A subdomain the authenticator accepts for the rp id, but not one of webauthn_origins.
    let wrong_origin = options(&app).await;
    let credential =
        create(&mut authenticator(), &wrong_origin["options"], Url::parse("https://evil.app.example").unwrap());
    let resp = register(&wrong_origin["passkey_token"], credential).await;
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_mfa");
    assert!(body["error_description"].as_str().unwrap().contains("origin"), "{body}");

    let mut wrong_rp = options(&app).await;
    // A parent domain the authenticator accepts for this origin, but not the server's rp id.
    wrong_rp["options"]["publicKey"]["rp"]["id"] = json!("example");
    let credential = create(&mut authenticator(), &wrong_rp["options"], origin());
    let body: Value = register(&wrong_rp["passkey_token"], credential).await.json().await.unwrap();
    assert_eq!(body["error"], "invalid_mfa");
    assert!(body["error_description"].as_str().unwrap().contains("relying party"), "{body}");

    let list: Value = app.get_authed("/auth/mfa", &tokens.access_token).await.json().await.unwrap();
    assert_eq!(list["factors"], json!([]), "nothing was added");
}

#[tokio::test]
async fn a_rewound_counter_is_refused_and_audited_as_a_possible_clone() {
    let app = spawn().await;
    let mut user = register(&app).await;
    let (mfa_token, options) = password_step(&app, &user.email).await;
    let assertion = assert_with(&mut user.key, &options);
    assert_eq!(verify(&app, &mfa_token, json!({"webauthn": assertion})).await.status(), StatusCode::OK);

    // The original authenticator has since signed 100 times elsewhere: the server saw counter 100.
    // This one (a clone of an older state) answers with 2.
    let factor = app.store().factors(&user.user_id).await.unwrap().remove(0);
    assert_eq!(factor.last_step, Some(1), "the counter is kept");
    let mut credential: Value = serde_json::from_slice(&factor.secret).unwrap();
    credential["cred"]["counter"] = json!(100);
    let stored = serde_json::to_vec(&credential).unwrap();
    assert!(app.store().use_passkey(&factor.id, 100, &stored, app.now()).await.unwrap());
    let (mfa_token, options) = password_step(&app, &user.email).await;
    let assertion = assert_with(&mut user.key, &options);
    assert_error(verify(&app, &mfa_token, json!({"webauthn": assertion})).await, 400, "invalid_mfa").await;

    // Another instance saw counter 200 first (the row moved on; this instance's copy did not).
    assert!(app.store().use_passkey(&factor.id, 200, &factor.secret, app.now()).await.unwrap());
    let (mfa_token, options) = password_step(&app, &user.email).await;
    let assertion = assert_with(&mut user.key, &options);
    assert_error(verify(&app, &mfa_token, json!({"webauthn": assertion})).await, 400, "invalid_mfa").await;

    let kinds = app.audit_kinds(&user.user_id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "passkey_counter_regressed").count(), 2, "{kinds:?}");
}

#[tokio::test]
async fn factor_changes_need_a_recent_sign_in_which_a_passkey_step_up_gives() {
    let app = spawn().await;
    let mut user = register(&app).await;
    app.advance(11.0 * 60.0);
    let path = format!("/auth/mfa/factors/{}", user.factor_id);
    let resp = app.client.delete(app.url(&path)).bearer_auth(&user.access).send().await.unwrap();
    assert_error(resp, 401, "insufficient_user_authentication").await;
    let resp = post_authed(&app, "/auth/passkeys/register/options", &user.access, json!({})).await;
    assert_error(resp, 401, "insufficient_user_authentication").await;

    let resp = post_authed(&app, "/auth/step-up/options", &user.access, json!({})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let options: Value = resp.json().await.unwrap();
    let assertion = assert_with(&mut user.key, &options["options"]);
    let token = options["passkey_token"].clone();
    // The answer without its token, and the token of another purpose, are refused.
    let resp = post_authed(&app, "/auth/step-up", &user.access, json!({"webauthn": assertion})).await;
    assert_error(resp, 400, "invalid_request").await;
    let (login_token, _) = passwordless_options(&app, &user.credential_id).await;
    let body = json!({"passkey_token": login_token, "webauthn": assertion});
    assert_error(post_authed(&app, "/auth/step-up", &user.access, body).await, 400, "invalid_mfa").await;

    let body = json!({"passkey_token": token, "webauthn": assertion});
    let resp = post_authed(&app, "/auth/step-up", &user.access, body.clone()).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let stepped: Value = resp.json().await.unwrap();
    let access = stepped["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["amr"], json!(["pwd", "hwk", "mfa"]));
    assert_eq!(claims(access)["auth_time"], app.now());
    // Spent.
    assert_error(post_authed(&app, "/auth/step-up", &user.access, body).await, 400, "invalid_mfa").await;

    let resp = app.client.delete(app.url(&path)).bearer_auth(access).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let kinds = app.audit_kinds(&user.user_id).await;
    assert!(kinds.contains(&"passkey_removed".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"mfa_removed".to_owned()), "{kinds:?}");
    // The last factor took the recovery codes with it; the password alone signs in again.
    let resp =
        app.post_json("/auth/login", json!({"email": user.email, "password": PASSWORD, "delivery": "body"})).await;
    assert!(resp.json::<Value>().await.unwrap()["access_token"].is_string());
}

#[tokio::test]
async fn a_passkey_only_account_that_lost_its_passkey_gets_back_in_by_email_and_a_recovery_code() {
    let Some(smtp) = crate::mail::SmtpServer::started() else { return };
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(smtp.url());
        s.webauthn_origins = StringList(vec![ORIGIN.into()]);
    })
    .await;
    let user = register(&app).await;
    drop(user.key); // The phone is gone; so is the password (forgotten).

    let (_, token) = crate::password_reset::request_link(&app, &smtp, &user.email).await;
    let new_password = "a brand new passphrase 42";
    let resp = app.post_json("/auth/password/reset", json!({"token": token, "new_password": new_password})).await;
    assert!(resp.status().is_success(), "{}", resp.status());
    // The reset keeps the passkey: the new password leads to the second step, where a recovery
    // code answers.
    let resp =
        app.post_json("/auth/login", json!({"email": user.email, "password": new_password, "delivery": "body"})).await;
    let step: Value = resp.json().await.unwrap();
    assert_eq!(step["methods"], json!(["webauthn", "recovery_code"]), "{step}");
    let resp =
        verify(&app, step["mfa_token"].as_str().unwrap(), json!({"recovery_code": user.recovery_codes[0]})).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["amr"], json!(["pwd", "otp", "mfa"]));

    // Back in with a strong, recent sign-in: a new passkey can be added and the lost one removed.
    let resp = post_authed(&app, "/auth/passkeys/register/options", access, json!({})).await;
    let options: Value = resp.json().await.unwrap();
    let excluded = &options["options"]["publicKey"]["excludeCredentials"];
    assert_eq!(excluded[0]["id"], user.credential_id, "the lost passkey is not registered twice");
    let mut new_key = authenticator();
    let credential = create(&mut new_key, &options["options"], origin());
    let body = json!({"passkey_token": options["passkey_token"], "name": "New phone", "credential": credential});
    let added: Value = post_authed(&app, "/auth/passkeys/register", access, body).await.json().await.unwrap();
    assert!(added.get("recovery_codes").is_none(), "the account keeps its codes: {added}");
    let resp = app
        .client
        .delete(app.url(&format!("/auth/mfa/factors/{}", user.factor_id)))
        .bearer_auth(access)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let list: Value = app.get_authed("/auth/mfa", access).await.json().await.unwrap();
    assert_eq!(list["factors"].as_array().unwrap().len(), 1);
    assert_eq!(list["recovery_codes_left"], 9);
}

#[tokio::test]
async fn a_passwordless_sign_in_with_a_dpop_proof_binds_the_session_to_its_key() {
    use keycard_core::dpop::DpopKey;
    use keycard_core::keys::KeyAlg;
    let app = spawn().await;
    let mut user = register(&app).await;
    let key = DpopKey::generate(KeyAlg::Es256).unwrap();
    let (token, request) = passwordless_options(&app, &user.credential_id).await;
    let assertion = discoverable(&mut user.key, &request, &user.user_id);
    let proof = key.proof("POST", &app.url("/auth/passkeys/login"), None, None, app.now()).unwrap();
    let resp = app
        .client
        .post(app.url("/auth/passkeys/login"))
        .header("dpop", proof)
        .json(&json!({"passkey_token": token, "credential": assertion, "delivery": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().unwrap();
    assert!(claims(access)["cnf"]["jkt"].is_string(), "bound: {}", claims(access));
    // Copied out and replayed as a bearer token: refused.
    assert_eq!(app.get_authed("/auth/me", access).await.status(), StatusCode::UNAUTHORIZED);
}
