//! Password reset against the real server and a real SMTP server (aiosmtpd writing a Maildir):
//! the whole flow by reading the mail and following its link; used, expired, superseded and
//! foreign tokens refused; every session revoked and on the feed; a GET of the link spends
//! nothing; the forgot answer the same for unknown and known addresses, in body and in time;
//! ten concurrent resets with one token, one winner.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::mail::{SmtpServer, eventually};

const NEW_PASSWORD: &str = "a brand new passphrase 42";

/// The mail in the Maildir as text, quoted-printable soft breaks and `=3D` undone.
pub fn decoded(message: &str) -> String {
    message.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=")
}

/// The (first) link of a message, and its token.
pub fn link_of(message: &str) -> (String, String) {
    let text = decoded(message);
    let start = text.find("http").expect("a link in the message");
    let link: String = text[start..].chars().take_while(|c| !c.is_whitespace() && *c != '"' && *c != '<').collect();
    let token = link.split_once("#token=").expect("the token in the fragment").1.to_owned();
    (link, token)
}

/// The tokens of the reset mails to `email` so far.
fn reset_tokens(smtp: &SmtpServer, email: &str) -> Vec<String> {
    let to = format!("To: {email}");
    smtp.messages()
        .iter()
        .filter(|m| m.contains(&to) && decoded(m).contains("Subject: Reset your password"))
        .map(|m| link_of(m).1)
        .collect()
}

/// Asks for a reset of `email` and returns the link and token of the mail it sends.
pub(crate) async fn request_link(app: &TestApp, smtp: &SmtpServer, email: &str) -> (String, String) {
    let seen = reset_tokens(smtp, email);
    let resp = app.post_json("/auth/password/forgot", json!({"email": email})).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    eventually("the reset mail", async || reset_tokens(smtp, email).len() > seen.len()).await;
    let to = format!("To: {email}");
    smtp.messages()
        .iter()
        .filter(|m| m.contains(&to) && decoded(m).contains("Subject: Reset your password"))
        .map(|m| link_of(m))
        .find(|(_, token)| !seen.contains(token))
        .expect("the new reset mail")
}

async fn reset(app: &TestApp, token: &str, password: &str) -> reqwest::Response {
    app.post_json("/auth/password/reset", json!({"token": token, "new_password": password})).await
}

async fn login_with(app: &TestApp, email: &str, password: &str) -> StatusCode {
    app.post_json("/auth/login", json!({"email": email, "password": password, "delivery": "body"})).await.status()
}

#[tokio::test]
async fn the_whole_flow_by_mail_and_link_resets_the_password_and_ends_every_session() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let (email, tokens) = app.user().await;
    let user_id = app.get_authed("/auth/me", &tokens.access_token).await.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let (link, token) = request_link(&app, &smtp, &email).await;
    assert!(link.starts_with(&format!("{}/auth/password/reset#token=kcpr_", app.base)), "{link}");
    let message = smtp.messages().iter().map(|m| decoded(m)).find(|m| m.contains(&token)).expect("the reset mail");
    assert!(!message.contains("?token="), "the token travels in the fragment only");
    assert!(message.contains("Subject: Reset your password"), "{message}");
    assert!(message.contains("text/plain") && message.contains("text/html"), "{message}");

    // Following the link: the page (a link scanner's GET too) spends nothing.
    let page = app.client.get(&link).send().await.unwrap();
    assert_eq!(page.status(), StatusCode::OK);
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    let html = page.text().await.unwrap();
    assert!(html.contains("/reset.js") && !html.contains("<script>"), "{html}");
    assert_eq!(app.client.get(app.url("/reset.js")).send().await.unwrap().status(), StatusCode::OK);

    // A weak password is refused and leaves the token usable.
    assert_error(reset(&app, &token, "short").await, 422, "weak_password").await;
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);

    assert_eq!(login_with(&app, &email, PASSWORD).await, StatusCode::UNAUTHORIZED);
    assert_eq!(login_with(&app, &email, NEW_PASSWORD).await, StatusCode::OK);
    // Every session ended: the refresh token and the access token of the old one are refused,
    // and the session is on the revocation feed.
    assert_error(app.refresh(tokens.refresh_token.as_deref().unwrap()).await, 401, "invalid_grant").await;
    assert_error(app.get_authed("/auth/me", &tokens.access_token).await, 401, "invalid_token").await;
    let feed: Value = app.client.get(app.url("/auth/revocations")).send().await.unwrap().json().await.unwrap();
    let entries = feed["revocations"].as_array().expect("feed entries").clone();
    let claims: Value = claims(&tokens.access_token);
    assert!(entries.iter().any(|e| e["sid"] == claims["sid"]), "{feed}");
    // The notice went out, and both events are audited.
    eventually("the notice", async || {
        smtp.messages()
            .iter()
            .any(|m| m.contains(&format!("To: {email}")) && m.contains("Subject: Your password was changed"))
    })
    .await;
    let kinds = app.audit_kinds(&user_id).await;
    assert!(kinds.contains(&"password_reset_requested".to_owned()) && kinds.contains(&"password_reset".to_owned()));

    // Used once: refused the second time.
    assert_error(reset(&app, &token, "yet another passphrase 43").await, 400, "invalid_reset_token").await;
}

#[tokio::test]
async fn expired_superseded_foreign_and_malformed_tokens_are_refused() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let (email, tokens) = app.user().await;

    // Expired: 31 minutes later.
    let (_, expired) = request_link(&app, &smtp, &email).await;
    app.advance(31.0 * 60.0);
    assert_error(reset(&app, &expired, NEW_PASSWORD).await, 400, "invalid_reset_token").await;

    // Superseded: a newer request kills the older token.
    let (_, older) = request_link(&app, &smtp, &email).await;
    let (_, newer) = request_link(&app, &smtp, &email).await;
    assert_error(reset(&app, &older, NEW_PASSWORD).await, 400, "invalid_reset_token").await;

    // Tokens of another flow, or not shaped like ours.
    let made_up = format!("kcpr_{}", "A".repeat(40));
    for foreign in [tokens.refresh_token.as_deref().unwrap(), made_up.as_str(), "", "kcpr_", &newer[..newer.len() - 1]]
    {
        assert_error(reset(&app, foreign, NEW_PASSWORD).await, 400, "invalid_reset_token").await;
    }
    let well_formed_unknown = format!("kcpr_{}", "A".repeat(43));
    assert_error(reset(&app, &well_formed_unknown, NEW_PASSWORD).await, 400, "invalid_reset_token").await;

    // None of that touched the newest token.
    assert_eq!(reset(&app, &newer, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
}

#[tokio::test]
async fn ten_concurrent_resets_with_one_token_have_exactly_one_winner() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(smtp.url());
        s.hash_queue_timeout = secs(60);
    })
    .await;
    let (email, _) = app.user().await;
    let (_, token) = request_link(&app, &smtp, &email).await;
    let attempts = (0..10).map(|i| {
        let (app, token) = (&app, &token);
        async move { reset(app, token, &format!("{NEW_PASSWORD} {i}")).await.status() }
    });
    let statuses = futures::future::join_all(attempts).await;
    assert_eq!(statuses.iter().filter(|s| **s == StatusCode::NO_CONTENT).count(), 1, "{statuses:?}");
    assert!(statuses.iter().all(|s| *s == StatusCode::NO_CONTENT || *s == StatusCode::BAD_REQUEST), "{statuses:?}");
}

// Several threads, as in the server: the store work a known address's request hands to a task
// then runs beside the answer rather than on the one thread the answer is waiting on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forgot_answers_unknown_and_known_addresses_alike_in_status_body_and_time() {
    // SMTP refuses at once and retries wait for the (manual) clock: after each known request the
    // server's background work is one store write and one refused connection, so it hardly
    // disturbs the requests measured after it.
    let smtp = SmtpServer::stopped();
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(smtp.url());
        s.rate_limit_enabled = false;
    })
    .await;
    let (known, _) = app.user().await;
    let unknown = "nobody-here@example.com".to_owned();

    let answer = |email: &String| {
        let (app, email) = (&app, email.clone());
        async move {
            let started = Instant::now();
            let resp = app.post_json("/auth/password/forgot", json!({"email": email})).await;
            let elapsed = started.elapsed();
            (resp.status(), resp.text().await.unwrap(), elapsed)
        }
    };
    // Warm up both paths (connections, statement caches).
    for _ in 0..5 {
        answer(&known).await;
        answer(&unknown).await;
    }
    let mut bodies = std::collections::BTreeSet::new();
    let median = |times: &mut Vec<Duration>| {
        times.sort();
        times[times.len() / 2]
    };
    // Up to three series of 50 + 50: the other tests of this binary run beside this one, and a
    // burst of theirs can skew one series. A real difference (a store write or a password hash
    // in the answer) is a multiple of the answer's time and fails every series.
    let mut series = Vec::new();
    for _ in 0..3 {
        let (mut known_times, mut unknown_times) = (Vec::new(), Vec::new());
        // Interleaved, in turns of which goes first, so drift in the machine's load and the
        // background work of a request fall on both alike.
        for i in 0..50 {
            let order = if i % 2 == 0 { [&known, &unknown] } else { [&unknown, &known] };
            for email in order {
                // Not waiting for time to pass: letting the previous request's background work
                // (a store write, a refused SMTP connection) finish before the next measurement.
                tokio::time::sleep(Duration::from_millis(3)).await;
                let (status, body, took) = answer(email).await;
                assert_eq!(status, StatusCode::ACCEPTED);
                bodies.insert(body);
                if email == &known { known_times.push(took) } else { unknown_times.push(took) }
            }
        }
        let (known_median, unknown_median) = (median(&mut known_times), median(&mut unknown_times));
        let (slow, fast) = (known_median.max(unknown_median), known_median.min(unknown_median));
        eprintln!("forgot medians: known {known_median:?}, unknown {unknown_median:?}");
        series.push((known_median, unknown_median));
        // The answer does the same work on both paths (typically 1-3 % apart); the bound allows
        // for a loaded CI machine.
        if slow.as_secs_f64() <= fast.as_secs_f64() * 1.25 + 0.000_03 {
            break;
        }
    }
    assert_eq!(bodies.len(), 1, "one body for both: {bodies:?}");
    let (known_median, unknown_median) = *series.last().unwrap();
    let (slow, fast) = (known_median.max(unknown_median), known_median.min(unknown_median));
    assert!(
        slow.as_secs_f64() <= fast.as_secs_f64() * 1.25 + 0.000_03,
        "every series apart (known, unknown medians): {series:?}"
    );
    // Only the known address got a message (queued: the SMTP server is down).
    let to = |address: &str| {
        let app = &app;
        let address = address.to_owned();
        async move {
            let all = app.store().list_mail(&keycard_store::MailFilter { state: None, limit: 1000 }).await.unwrap();
            all.iter().filter(|m| m.recipient == address).count()
        }
    };
    // (and the verification link of its signup)
    let sent = 5 + 50 * series.len() + 1;
    eventually("the known address's messages", async || to(&known).await == sent).await;
    assert_eq!(to(&unknown).await, 0);
}

#[tokio::test]
async fn forgot_is_rate_limited_per_address_and_checks_its_input() {
    let app = spawn_app_with(|s| {
        s.password_forgot_per_address_per_minute = 2;
        s.password_forgot_per_ip_per_minute = 100;
    })
    .await;
    for _ in 0..2 {
        let resp = app.post_json("/auth/password/forgot", json!({"email": "someone@example.com"})).await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
    }
    let resp = app.post_json("/auth/password/forgot", json!({"email": "someone@example.com"})).await;
    assert_error(resp, 429, "rate_limited").await;
    let other = app.post_json("/auth/password/forgot", json!({"email": "other@example.com"})).await;
    assert_eq!(other.status(), StatusCode::ACCEPTED, "another address has its own budget");
    assert_error(
        app.post_json("/auth/password/forgot", json!({"email": "not an address"})).await,
        400,
        "invalid_request",
    )
    .await;
}

#[tokio::test]
async fn with_smtp_down_a_reset_still_answers_202_and_its_link_goes_out_once_smtp_is_back() {
    let mut smtp = SmtpServer::stopped();
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(smtp.url());
        s.email_verification = keycard_server::email::EmailVerification::Off;
    })
    .await;
    let (email, _) = app.user().await;
    let resp = app.post_json("/auth/password/forgot", json!({ "email": email })).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let outbox = || async { app.store().list_mail(&keycard_store::MailFilter::default()).await.unwrap() };
    eventually("the failed attempt recorded", async || outbox().await.first().is_some_and(|m| m.last_error.is_some()))
        .await;

    if !smtp.start() {
        return;
    }
    app.advance(30.0);
    app.state.wake_mail_sender();
    eventually("the reset mail", async || reset_tokens(&smtp, &email).len() == 1).await;
    let token = reset_tokens(&smtp, &email).remove(0);
    assert_eq!(reset(&app, &token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    // Later wakes deliver the notice, never the link again.
    app.advance(3600.0);
    app.state.wake_mail_sender();
    eventually("the notice", async || smtp.messages().iter().any(|m| m.contains("Your password was changed"))).await;
    assert_eq!(reset_tokens(&smtp, &email).len(), 1, "the link went out once");
}

#[tokio::test]
async fn a_reset_link_queued_when_the_server_stops_goes_out_after_the_restart_once() {
    let mut smtp = SmtpServer::stopped();
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(&dir).await;
    settings.smtp_url = Some(smtp.url());
    settings.email_verification = keycard_server::email::EmailVerification::Off;
    let clock = std::sync::Arc::new(keycard_core::clock::ManualClock::starting_now());
    let first = start_with_clock(settings.clone(), dir.clone(), clock.clone()).await;
    let (email, _) = first.user().await;
    assert_eq!(
        first.post_json("/auth/password/forgot", json!({ "email": email })).await.status(),
        StatusCode::ACCEPTED
    );
    let queued = async |app: &TestApp| app.store().list_mail(&keycard_store::MailFilter::default()).await.unwrap();
    eventually("the reset mail queued and tried", async || {
        queued(&first).await.first().is_some_and(|m| m.last_error.is_some())
    })
    .await;
    first.stop().await;

    if !smtp.start() {
        return;
    }
    let second = start_with_clock(settings, dir, clock).await;
    second.advance(30.0);
    second.state.wake_mail_sender();
    eventually("the reset mail after the restart", async || reset_tokens(&smtp, &email).len() == 1).await;
    let token = reset_tokens(&smtp, &email).remove(0);
    assert_eq!(reset(&second, &token, NEW_PASSWORD).await.status(), StatusCode::NO_CONTENT);
    second.advance(3600.0);
    second.state.wake_mail_sender();
    eventually("the notice", async || smtp.messages().iter().any(|m| m.contains("Your password was changed"))).await;
    assert_eq!(reset_tokens(&smtp, &email).len(), 1, "the link went out once");
}
