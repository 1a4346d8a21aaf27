//! Email verification and address change against the real server and a real SMTP server
//! (aiosmtpd writing a Maildir): each flow end to end by reading the mail and following its link;
//! used, expired, superseded and other flows' tokens refused; `required` verification holding
//! login back (and only for the right password); a taken address answered like a free one, with
//! no mail; a cancel link cancelling a pending change and undoing a confirmed one (every session
//! ends, on the feed); concurrent spends of one token with one winner.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mail::{SmtpServer, eventually};
use crate::password_reset::{decoded, link_of};

const VERIFY_SUBJECT: &str = "Subject: Confirm your email address";
const CONFIRM_SUBJECT: &str = "Subject: Confirm your new email address";
const NOTICE_SUBJECT: &str = "Subject: Your account's email address is about to change";

/// The links (with their tokens) of the messages to `email` with `subject`.
fn links(smtp: &SmtpServer, email: &str, subject: &str) -> Vec<(String, String)> {
    let to = format!("To: {email}");
    smtp.messages()
        .iter()
        .map(|m| decoded(m))
        .filter(|m| m.contains(&to) && m.contains(subject))
        .map(|m| link_of(&m))
        .collect()
}

/// Waits for one more message to `email` with `subject` than `before`, and returns its token.
async fn next_token(smtp: &SmtpServer, email: &str, subject: &str, before: &[(String, String)]) -> (String, String) {
    eventually(subject, async || links(smtp, email, subject).len() > before.len()).await;
    links(smtp, email, subject).into_iter().find(|l| !before.contains(l)).expect("the new message")
}

async fn me(app: &TestApp, access: &str) -> Value {
    let resp = app.get_authed("/auth/me", access).await;
    assert_eq!(resp.status(), StatusCode::OK);
    resp.json().await.unwrap()
}

async fn login_status(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json("/auth/login", json!({"email": email, "password": password, "delivery": "body"})).await
}

async fn change(app: &TestApp, access: &str, new_email: &str, password: &str) -> reqwest::Response {
    app.client
        .post(app.url("/auth/email"))
        .bearer_auth(access)
        .json(&json!({"new_email": new_email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn spend(app: &TestApp, path: &str, token: &str) -> reqwest::Response {
    app.post_json(path, json!({ "token": token })).await
}

fn new_address() -> String {
    format!("{}@example.com", uuid::Uuid::new_v4().simple())
}

#[tokio::test]
async fn signup_mails_a_link_whose_token_verifies_the_address_once() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let email = new_address();
    let created = app.signup(&email).await;
    assert_eq!(created["email_verified"], false);
    let (link, token) = next_token(&smtp, &email, VERIFY_SUBJECT, &[]).await;
    assert!(link.starts_with(&format!("{}/auth/email/verify#token=kcev_", app.base)), "{link}");

    // `optional`: login works before verification; the tokens say it is not verified.
    let tokens = app.login(&email).await;
    assert_eq!(claims(&tokens.access_token)["email_verified"], false);
    assert_eq!(me(&app, &tokens.access_token).await["email_verified"], false);

    // A GET of the link (a mail scanner's) spends nothing.
    let page = app.client.get(&link).send().await.unwrap();
    assert_ne!(page.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let resp = spend(&app, "/auth/email/verify", &token).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.json::<Value>().await.unwrap()["status"], "verified");
    assert_error(spend(&app, "/auth/email/verify", &token).await, 400, "invalid_verification_token").await;

    // The next access token (a refresh, not a new login) and /auth/me say verified.
    let refreshed: Value = app.refresh(tokens.refresh_token.as_deref().unwrap()).await.json().await.unwrap();
    let access = refreshed["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["email_verified"], true);
    assert_eq!(me(&app, access).await["email_verified"], true);
    let user_id = created["id"].as_str().unwrap();
    let kinds = app.audit_kinds(user_id).await;
    assert!(kinds.contains(&"email_verification_sent".into()) && kinds.contains(&"email_verified".into()), "{kinds:?}");

    // Already verified: asking again sends nothing new.
    let resent = app.post_json("/auth/email/verify/resend", json!({ "email": email })).await;
    assert_eq!(resent.status(), StatusCode::ACCEPTED);
    let marker = new_address();
    app.signup(&marker).await;
    next_token(&smtp, &marker, VERIFY_SUBJECT, &[]).await;
    assert_eq!(links(&smtp, &email, VERIFY_SUBJECT).len(), 1, "no second link for a verified address");
}

#[tokio::test]
async fn with_required_only_the_right_password_learns_that_the_address_is_unverified() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(smtp.url());
        s.email_verification = keycard_server::email::EmailVerification::Required;
        s.oauth_password_grant = true;
    })
    .await;
    let email = new_address();
    app.signup(&email).await;
    assert_error(login_status(&app, &email, PASSWORD).await, 403, "email_not_verified").await;
    // The OAuth password grant is the same login, refused as OAuth says (invalid_grant).
    let form =
        format!("grant_type=password&client_id=keycard&username={email}&password={}", PASSWORD.replace(' ', "+"));
    let granted = app
        .client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap();
    assert_eq!(granted.status(), StatusCode::BAD_REQUEST);
    let body: Value = granted.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("not verified"), "{body}");
    assert_error(login_status(&app, &email, "not the password at all").await, 401, "invalid_credentials").await;
    assert_error(login_status(&app, &new_address(), PASSWORD).await, 401, "invalid_credentials").await;
    let (_, token) = next_token(&smtp, &email, VERIFY_SUBJECT, &[]).await;
    assert_eq!(spend(&app, "/auth/email/verify", &token).await.status(), StatusCode::OK);
    let resp = login_status(&app, &email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(claims(body["access_token"].as_str().unwrap())["email_verified"], true);
}

#[tokio::test]
async fn verification_is_off_without_mail_or_claim() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(smtp.url());
        s.email_verification = keycard_server::email::EmailVerification::Off;
    })
    .await;
    let (email, tokens) = app.user().await;
    assert!(claims(&tokens.access_token).get("email_verified").is_none());
    let resent = app.post_json("/auth/email/verify/resend", json!({ "email": email })).await;
    assert_eq!(resent.status(), StatusCode::ACCEPTED);
    // A reset mail proves the sender runs; no verification mail went out before it.
    app.post_json("/auth/password/forgot", json!({ "email": email })).await;
    eventually("the reset mail", async || !smtp.messages().is_empty()).await;
    assert!(links(&smtp, &email, VERIFY_SUBJECT).is_empty());
}

#[tokio::test]
async fn resend_supersedes_expires_and_answers_every_address_alike() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let email = new_address();
    app.signup(&email).await;
    let first = next_token(&smtp, &email, VERIFY_SUBJECT, &[]).await;

    let known = app.post_json("/auth/email/verify/resend", json!({ "email": email })).await;
    let unknown = app.post_json("/auth/email/verify/resend", json!({ "email": new_address() })).await;
    assert_eq!((known.status(), unknown.status()), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(known.text().await.unwrap(), unknown.text().await.unwrap(), "one body for both");
    let second = next_token(&smtp, &email, VERIFY_SUBJECT, std::slice::from_ref(&first)).await;
    assert_error(spend(&app, "/auth/email/verify", &first.1).await, 400, "invalid_verification_token").await;

    // Expired: a day and a minute later.
    app.advance(24.0 * 3600.0 + 60.0);
    assert_error(spend(&app, "/auth/email/verify", &second.1).await, 400, "invalid_verification_token").await;

    // The per-address budget (3 a minute) then says 429; other addresses are not held up.
    let mut statuses = Vec::new();
    for _ in 0..3 {
        statuses.push(app.post_json("/auth/email/verify/resend", json!({ "email": email })).await.status());
    }
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::TOO_MANY_REQUESTS).count(), 1, "{statuses:?}");
    let other = app.post_json("/auth/email/verify/resend", json!({ "email": new_address() })).await;
    assert_eq!(other.status(), StatusCode::ACCEPTED);
    let bad = app.post_json("/auth/email/verify/resend", json!({ "email": "not an address" })).await;
    assert_error(bad, 400, "invalid_request").await;
}

#[tokio::test]
async fn a_token_of_one_flow_is_refused_by_every_other() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let email = new_address();
    app.signup(&email).await;
    let (_, verify) = next_token(&smtp, &email, VERIFY_SUBJECT, &[]).await;
    let tokens = app.login(&email).await;
    app.post_json("/auth/password/forgot", json!({ "email": email })).await;
    let (_, reset) = next_token(&smtp, &email, "Subject: Reset your password", &[]).await;
    let new_email = new_address();
    assert_eq!(change(&app, &tokens.access_token, &new_email, PASSWORD).await.status(), StatusCode::ACCEPTED);
    let (_, confirm) = next_token(&smtp, &new_email, CONFIRM_SUBJECT, &[]).await;
    let (_, cancel) = next_token(&smtp, &email, NOTICE_SUBJECT, &[]).await;

    let refresh = tokens.refresh_token.clone().unwrap();
    for foreign in [&reset, &confirm, &cancel, &refresh] {
        assert_error(spend(&app, "/auth/email/verify", foreign).await, 400, "invalid_verification_token").await;
    }
    for foreign in [&verify, &reset, &cancel, &refresh] {
        assert_error(spend(&app, "/auth/email/confirm", foreign).await, 400, "invalid_email_change_token").await;
    }
    for foreign in [&verify, &reset, &confirm, &refresh] {
        assert_error(spend(&app, "/auth/email/cancel", foreign).await, 400, "invalid_email_change_token").await;
    }
    let body = json!({"token": verify, "new_password": "a brand new passphrase 42"});
    assert_error(app.post_json("/auth/password/reset", body).await, 400, "invalid_reset_token").await;
    // Malformed bodies get the API's error shape.
    assert_error(app.post_json("/auth/email/verify", json!({})).await, 400, "invalid_request").await;
    assert_error(app.post_json("/auth/email/confirm", json!({"token": 7})).await, 400, "invalid_request").await;
    // None of that spent anything.
    assert_eq!(spend(&app, "/auth/email/verify", &verify).await.status(), StatusCode::OK);
    assert_eq!(spend(&app, "/auth/email/confirm", &confirm).await.status(), StatusCode::OK);
}

#[tokio::test]
async fn an_address_changes_only_when_the_new_one_is_confirmed() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let (old, tokens) = app.user().await;
    let new_email = new_address();

    assert_error(change(&app, &tokens.access_token, &new_email, "wrong password!!").await, 401, "invalid_credentials")
        .await;
    assert_error(change(&app, "not-a-token", &new_email, PASSWORD).await, 401, "invalid_token").await;
    assert_error(change(&app, &tokens.access_token, "nope", PASSWORD).await, 400, "invalid_request").await;
    assert_error(change(&app, &tokens.access_token, &old, PASSWORD).await, 400, "invalid_request").await;

    let resp = change(&app, &tokens.access_token, &new_email, PASSWORD).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let (link, confirm) = next_token(&smtp, &new_email, CONFIRM_SUBJECT, &[]).await;
    assert!(link.starts_with(&format!("{}/auth/email/confirm#token=kcec_", app.base)), "{link}");
    let (cancel_link, _) = next_token(&smtp, &old, NOTICE_SUBJECT, &[]).await;
    assert!(cancel_link.starts_with(&format!("{}/auth/email/cancel#token=kcex_", app.base)), "{cancel_link}");
    let notice = smtp.messages().iter().map(|m| decoded(m)).find(|m| m.contains(NOTICE_SUBJECT)).unwrap();
    assert!(notice.contains(&new_email), "the notice names the new address");

    // Not yet: the old address still signs in, the new one does not.
    assert_eq!(login_status(&app, &old, PASSWORD).await.status(), StatusCode::OK);
    assert_error(login_status(&app, &new_email, PASSWORD).await, 401, "invalid_credentials").await;

    let done = spend(&app, "/auth/email/confirm", &confirm).await;
    assert_eq!(done.status(), StatusCode::OK);
    assert_eq!(done.json::<Value>().await.unwrap()["status"], "changed");
    assert_error(spend(&app, "/auth/email/confirm", &confirm).await, 400, "invalid_email_change_token").await;
    let info = me(&app, &tokens.access_token).await;
    assert_eq!((info["email"].as_str().unwrap(), info["email_verified"].as_bool()), (new_email.as_str(), Some(true)));
    assert_eq!(login_status(&app, &new_email, PASSWORD).await.status(), StatusCode::OK);
    assert_error(login_status(&app, &old, PASSWORD).await, 401, "invalid_credentials").await;
    let kinds = app.audit_kinds(info["id"].as_str().unwrap()).await;
    assert!(kinds.contains(&"email_change_requested".into()) && kinds.contains(&"email_changed".into()), "{kinds:?}");
}

#[tokio::test]
async fn a_taken_address_gets_the_same_answer_and_no_mail() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let (taken, _) = app.user().await;
    let (_, tokens) = app.user().await;
    let free = new_address();

    let to_taken = change(&app, &tokens.access_token, &taken, PASSWORD).await;
    let to_free = change(&app, &tokens.access_token, &free, PASSWORD).await;
    assert_eq!((to_taken.status(), to_free.status()), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(to_taken.text().await.unwrap(), to_free.text().await.unwrap());
    // The free address's mail arrives (both requests were handled in order): none for the taken one.
    next_token(&smtp, &free, CONFIRM_SUBJECT, &[]).await;
    assert!(links(&smtp, &taken, CONFIRM_SUBJECT).is_empty());
}

#[tokio::test]
async fn a_newer_change_supersedes_and_the_cancel_link_stops_a_pending_one() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let (old, tokens) = app.user().await;
    let (first, second) = (new_address(), new_address());
    change(&app, &tokens.access_token, &first, PASSWORD).await;
    let (_, first_confirm) = next_token(&smtp, &first, CONFIRM_SUBJECT, &[]).await;
    let first_cancel = next_token(&smtp, &old, NOTICE_SUBJECT, &[]).await;
    change(&app, &tokens.access_token, &second, PASSWORD).await;
    let (_, second_confirm) = next_token(&smtp, &second, CONFIRM_SUBJECT, &[]).await;
    let (_, second_cancel) = next_token(&smtp, &old, NOTICE_SUBJECT, std::slice::from_ref(&first_cancel)).await;

    assert_error(spend(&app, "/auth/email/confirm", &first_confirm).await, 400, "invalid_email_change_token").await;
    assert_error(spend(&app, "/auth/email/cancel", &first_cancel.1).await, 400, "invalid_email_change_token").await;
    let cancelled = spend(&app, "/auth/email/cancel", &second_cancel).await;
    assert_eq!(cancelled.status(), StatusCode::OK);
    assert_eq!(cancelled.json::<Value>().await.unwrap()["status"], "cancelled");
    assert_error(spend(&app, "/auth/email/confirm", &second_confirm).await, 400, "invalid_email_change_token").await;
    assert_eq!(me(&app, &tokens.access_token).await["email"], old.as_str(), "nothing changed, no session ended");

    // Expired: a confirmation link works for an hour.
    let third = new_address();
    change(&app, &tokens.access_token, &third, PASSWORD).await;
    let (_, third_confirm) = next_token(&smtp, &third, CONFIRM_SUBJECT, &[]).await;
    app.advance(3601.0);
    assert_error(spend(&app, "/auth/email/confirm", &third_confirm).await, 400, "invalid_email_change_token").await;
}

#[tokio::test]
async fn the_cancel_link_undoes_a_confirmed_change_and_ends_every_session() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    // The owner signs in twice; a thief with one session and the password moves the address.
    let (old, owners) = app.user().await;
    let thiefs = app.login(&old).await;
    let thief_address = new_address();
    change(&app, &thiefs.access_token, &thief_address, PASSWORD).await;
    let (_, confirm) = next_token(&smtp, &thief_address, CONFIRM_SUBJECT, &[]).await;
    let (_, cancel) = next_token(&smtp, &old, NOTICE_SUBJECT, &[]).await;
    assert_eq!(spend(&app, "/auth/email/confirm", &confirm).await.status(), StatusCode::OK);
    // The thief asks for a reset link at the new address before the owner acts.
    app.post_json("/auth/password/forgot", json!({ "email": thief_address })).await;
    let (_, thiefs_reset) = next_token(&smtp, &thief_address, "Subject: Reset your password", &[]).await;

    let undone = spend(&app, "/auth/email/cancel", &cancel).await;
    assert_eq!(undone.status(), StatusCode::OK);
    assert_error(spend(&app, "/auth/email/cancel", &cancel).await, 400, "invalid_email_change_token").await;
    // Every session ended, on the feed; the old address signs in again, the thief's does not,
    // and the reset link mailed to the thief's address stopped working.
    for tokens in [&owners, &thiefs] {
        assert_error(app.get_authed("/auth/me", &tokens.access_token).await, 401, "invalid_token").await;
        assert_error(app.refresh(tokens.refresh_token.as_deref().unwrap()).await, 401, "invalid_grant").await;
    }
    let feed: Value = app.client.get(app.url("/auth/revocations")).send().await.unwrap().json().await.unwrap();
    for tokens in [&owners, &thiefs] {
        let sid = &claims(&tokens.access_token)["sid"];
        assert!(feed["revocations"].as_array().unwrap().iter().any(|e| e["sid"] == *sid), "{feed}");
    }
    let stored = app.store().revocations_since(0, 100).await.unwrap();
    let reason = keycard_store::RevocationReason::EmailChangeCancelled;
    assert_eq!(stored.iter().filter(|r| r.reason == reason).count(), 2, "{stored:?}");
    let back = login_status(&app, &old, PASSWORD).await;
    assert_eq!(back.status(), StatusCode::OK);
    let access: Value = back.json().await.unwrap();
    assert_eq!(me(&app, access["access_token"].as_str().unwrap()).await["email"], old.as_str());
    assert_error(login_status(&app, &thief_address, PASSWORD).await, 401, "invalid_credentials").await;
    let body = json!({"token": thiefs_reset, "new_password": "the thief's new passphrase"});
    assert_error(app.post_json("/auth/password/reset", body).await, 400, "invalid_reset_token").await;
}

#[tokio::test]
async fn ten_concurrent_spends_of_one_token_have_exactly_one_winner() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(smtp.url());
        s.rate_limit_enabled = false;
    })
    .await;
    let email = new_address();
    app.signup(&email).await;
    let (_, verify) = next_token(&smtp, &email, VERIFY_SUBJECT, &[]).await;
    let tokens = app.login(&email).await;
    let new_email = new_address();
    change(&app, &tokens.access_token, &new_email, PASSWORD).await;
    let (_, confirm) = next_token(&smtp, &new_email, CONFIRM_SUBJECT, &[]).await;
    for (path, token) in [("/auth/email/verify", &verify), ("/auth/email/confirm", &confirm)] {
        let attempts = (0..10).map(|_| spend(&app, path, token));
        let statuses: Vec<StatusCode> =
            futures::future::join_all(attempts).await.into_iter().map(|r| r.status()).collect();
        assert_eq!(statuses.iter().filter(|s| **s == StatusCode::OK).count(), 1, "{path}: {statuses:?}");
        assert!(statuses.iter().all(|s| *s == StatusCode::OK || *s == StatusCode::BAD_REQUEST), "{statuses:?}");
    }
}
