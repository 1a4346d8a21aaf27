//! Webhooks end to end, against a receiver on 127.0.0.1 that verifies every delivery with the
//! Python `standardwebhooks` package (a Standard Webhooks library keycard did not write;
//! `.ci/install-webhooks.sh` installs it): every security event, caused through the real API,
//! arrives and verifies; a receiver holding another secret refuses keycard's signature; a
//! receiver that is down gets its deliveries, with backoff, once it is up; a hanging receiver
//! does not slow the request that caused the event. Time is moved with the server's clock;
//! deliveries are awaited with a bounded deadline.

use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use keycard_store::{DeliveryState, WebhookDelivery, WebhookEvent};
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::*;
use crate::mail::eventually;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/api/webhook_receiver.py");
const RESET_PASSWORD: &str = "a reset passphrase for webhooks 9";

/// The Python of the venv that has `standardwebhooks`; `None` (the test is skipped) outside CI
/// when it is missing. In CI a missing library fails the test.
pub fn receiver_python() -> Option<PathBuf> {
    let venv = std::env::var_os("KEYCARD_WEBHOOKS_VENV").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".local/share/keycard/webhooks-venv"))
    })?;
    let python = venv.join("bin/python");
    let usable = std::process::Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if usable {
        return Some(python);
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "the webhook tests need the Python standardwebhooks package in {}: run .ci/install-webhooks.sh",
        venv.display()
    );
    eprintln!("skipped: no standardwebhooks in {} (run .ci/install-webhooks.sh)", venv.display());
    None
}

/// The receiver process: it logs one JSON line per request it got.
pub struct Receiver {
    child: tokio::process::Child,
    log: PathBuf,
}

impl Receiver {
    /// Starts a receiver on `port` that verifies with `secret` (or, `hang`, never answers).
    pub async fn start(python: &Path, dir: &Path, port: u16, secret: &str, hang: bool) -> Self {
        let log = dir.join(format!("receiver-{}.jsonl", uuid::Uuid::new_v4().simple()));
        let mut command = tokio::process::Command::new(python);
        command.arg(SCRIPT).args(["--port", &port.to_string(), "--secret", secret, "--log"]).arg(&log);
        if hang {
            command.arg("--hang");
        }
        let mut child = command.stdout(Stdio::piped()).kill_on_drop(true).spawn().expect("python starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).await.unwrap();
        assert_eq!(line.trim(), format!("listening {port}"), "the receiver is up");
        Self { child, log }
    }

    /// Every request it logged, in order.
    pub fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        text.lines().map(|line| serde_json::from_str(line).unwrap()).collect()
    }

    /// The deliveries whose signature the library verified.
    pub fn verified(&self) -> Vec<Value> {
        self.records().into_iter().filter(|r| r["verified"] == true).collect()
    }

    /// Stops it (its port is free again).
    pub async fn stop(mut self) {
        let _ = self.child.kill().await;
    }
}

/// A port nothing listens on (for now).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Adds an endpoint at `port` receiving `events` (empty: all); its id and `whsec_` secret.
async fn endpoint(app: &TestApp, port: u16, events: &[WebhookEvent]) -> (String, String) {
    let url = format!("http://127.0.0.1:{port}/hooks/keycard");
    let (id, secret) =
        keycard_server::webhooks::add_endpoint(app.store().as_ref(), app.state.master_key(), &url, events, app.now())
            .await
            .unwrap();
    (id, secret.expose().to_owned())
}

async fn deliveries(app: &TestApp) -> Vec<WebhookDelivery> {
    app.store().webhook_deliveries(None, 1000).await.unwrap()
}

/// The reset link's token mailed to `email` (no SMTP in tests: `.eml` files in `mail`).
async fn reset_token(app: &TestApp, email: &str) -> String {
    let folder = app.dir.path().join("mail");
    let find = || {
        std::fs::read_dir(&folder).ok()?.filter_map(|f| std::fs::read_to_string(f.ok()?.path()).ok()).find(|m| {
            let text = crate::password_reset::decoded(m);
            text.contains(&format!("To: {email}")) && text.contains("Reset your password")
        })
    };
    eventually("the reset mail", async || find().is_some()).await;
    crate::password_reset::link_of(&find().unwrap()).1
}

#[tokio::test]
async fn every_security_event_arrives_once_and_verifies_with_the_standard_webhooks_library() {
    let Some(python) = receiver_python() else { return };
    let app = spawn_app().await;
    let port = free_port();
    let (_, secret) = endpoint(&app, port, &[]).await;
    let receiver = Receiver::start(&python, app.dir.path(), port, &secret, false).await;

    // new_device_login: a login without a device token (app.user signs up and logs in).
    let (email, a) = app.user().await;
    // refresh_token_reused: the spent token comes back at once from the same client.
    let spent = a.refresh_token.clone().unwrap();
    assert_eq!(app.refresh(&spent).await.status(), StatusCode::OK);
    assert_error(app.refresh(&spent).await, 401, "refresh_token_reused").await;
    // session_revoked: one session revokes another.
    let (b, c) = (app.login(&email).await, app.login(&email).await);
    let revoke = app.client.delete(app.url(&format!("/auth/sessions/{}", c.session_id))).bearer_auth(&b.access_token);
    assert_eq!(revoke.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    // password_changed.
    let change = app.client.post(app.url("/auth/password")).bearer_auth(&b.access_token);
    let body = json!({"current_password": PASSWORD, "new_password": "a changed passphrase 12"});
    assert_eq!(change.json(&body).send().await.unwrap().status(), StatusCode::NO_CONTENT);
    // password_reset, through the mailed link.
    let forgot = app.post_json("/auth/password/forgot", json!({"email": email})).await;
    assert_eq!(forgot.status(), StatusCode::ACCEPTED);
    let token = reset_token(&app, &email).await;
    let reset = app.post_json("/auth/password/reset", json!({"token": token, "new_password": RESET_PASSWORD})).await;
    assert_eq!(reset.status(), StatusCode::NO_CONTENT);
    // account_deleted.
    let login = app.post_json("/auth/login", json!({"email": email, "password": RESET_PASSWORD, "delivery": "body"}));
    let d: Value = login.await.json().await.unwrap();
    let delete = app.client.delete(app.url("/auth/account")).bearer_auth(d["access_token"].as_str().unwrap());
    assert_eq!(delete.json(&json!({"password": RESET_PASSWORD})).send().await.unwrap().status(), 204);

    // The factor changes, on a second account: mfa_enrolled (its enrolment logs in twice without
    // a device token), recovery_codes_regenerated after a step-up with a code,
    // recovery_code_used in a login (a third login without a device token), mfa_removed.
    let user = crate::mfa::enrol(&app).await;
    let code = crate::mfa::code(&app, &user.app);
    let stepped: Value =
        crate::mfa::post_authed(&app, "/auth/step-up", &user.access, json!({"code": code})).await.json().await.unwrap();
    let stepped = stepped["access_token"].as_str().unwrap();
    let codes: Value =
        crate::mfa::post_authed(&app, "/auth/mfa/recovery-codes", stepped, json!({})).await.json().await.unwrap();
    let mfa_token = crate::mfa::password_step(&app, &user.email).await;
    let answer = json!({"recovery_code": codes["recovery_codes"][0]});
    let signed_in: Value = crate::mfa::verify(&app, &mfa_token, answer).await.json().await.unwrap();
    let factors: Value = app.get_authed("/auth/mfa", stepped).await.json().await.unwrap();
    let remove =
        app.client.delete(app.url(&format!("/auth/mfa/factors/{}", factors["factors"][0]["id"].as_str().unwrap())));
    let removed = remove.bearer_auth(signed_in["access_token"].as_str().unwrap()).send().await.unwrap();
    assert_eq!(removed.status(), StatusCode::NO_CONTENT);

    // Every kind the API can cause today (passkeys wait for their flows).
    let all_kinds: BTreeSet<&str> = [
        WebhookEvent::NewDeviceLogin,
        WebhookEvent::RefreshTokenReused,
        WebhookEvent::SessionRevoked,
        WebhookEvent::PasswordChanged,
        WebhookEvent::PasswordReset,
        WebhookEvent::AccountDeleted,
        WebhookEvent::MfaEnrolled,
        WebhookEvent::RecoveryCodesRegenerated,
        WebhookEvent::RecoveryCodeUsed,
        WebhookEvent::MfaRemoved,
    ]
    .iter()
    .map(|e| e.as_str())
    .collect();
    eventually("every kind of event at the receiver", async || {
        let got: BTreeSet<String> =
            receiver.verified().iter().map(|r| r["type"].as_str().unwrap().to_owned()).collect();
        all_kinds.iter().all(|k| got.contains(*k))
    })
    .await;
    eventually("every delivery recorded delivered", async || {
        deliveries(&app).await.iter().all(|d| d.state == DeliveryState::Delivered)
    })
    .await;

    let records = receiver.records();
    assert!(records.iter().all(|r| r["verified"] == true), "every signature verified: {records:#?}");
    let received: Vec<String> = records.iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    let unique: HashSet<&String> = received.iter().collect();
    assert_eq!(unique.len(), received.len(), "no id twice: {received:?}");
    let queued: HashSet<String> = deliveries(&app).await.into_iter().map(|d| d.id).collect();
    assert_eq!(unique, queued.iter().collect(), "exactly the events queued arrived");
    let logins = records.iter().filter(|r| r["type"] == "new_device_login").count();
    assert_eq!((logins, received.len()), (7, 16), "7 logins without a device token, 9 other events");
    let reuse = records.iter().find(|r| r["type"] == "refresh_token_reused").unwrap();
    assert_eq!(reuse["data"]["verdict"], "race", "the verdict travels with the event: {reuse}");
    assert_eq!(reuse["data"]["session_id"].as_str(), Some(a.session_id.as_str()));
    receiver.stop().await;
}

#[tokio::test]
async fn a_receiver_holding_another_secret_refuses_keycards_signature_and_the_right_one_accepts_the_retry() {
    let Some(python) = receiver_python() else { return };
    let app = spawn_app_with(|s| s.webhook_retry_base = secs(1)).await;
    let port = free_port();
    let (id, secret) = endpoint(&app, port, &[]).await;
    let (_, other_secret) = endpoint(&app, free_port(), &[WebhookEvent::AccountDeleted]).await;
    assert_ne!(secret, other_secret);
    let wrong = Receiver::start(&python, app.dir.path(), port, &other_secret, false).await;

    assert!(keycard_server::webhooks::send_test(app.store().as_ref(), &id, app.now()).await.unwrap());
    app.state.wake_webhook_sender();
    eventually("the refusal", async || !wrong.records().is_empty()).await;
    let refused = &wrong.records()[0];
    assert_eq!(refused["verified"], false, "{refused}");
    assert_eq!(refused["error"], "No matching signature found");
    eventually("the failed attempt recorded", async || {
        deliveries(&app).await.first().is_some_and(|d| d.last_error.as_deref() == Some("HTTP 401"))
    })
    .await;
    wrong.stop().await;

    let right = Receiver::start(&python, app.dir.path(), port, &secret, false).await;
    app.advance(1.0);
    app.state.wake_webhook_sender();
    eventually("the retry verified", async || !right.verified().is_empty()).await;
    let accepted = &right.verified()[0];
    assert_eq!((accepted["type"].as_str(), &accepted["id"]), (Some("webhook.test"), &refused["id"]), "same id");
    right.stop().await;
}

#[tokio::test]
async fn a_receiver_down_for_a_minute_gets_its_deliveries_with_backoff_once_it_is_up() {
    let Some(python) = receiver_python() else { return };
    let app = spawn_app_with(|s| {
        s.webhook_retry_base = secs(1);
        // A claim's lease is 60 s + 2 × 5 s: longer than any delay below, so a delivery due
        // sooner than that has had its failed attempt recorded.
        s.webhook_timeout = secs(5);
        s.webhook_max_attempts = 20;
    })
    .await;
    let port = free_port();
    let (_, secret) = endpoint(&app, port, &[WebhookEvent::NewDeviceLogin, WebhookEvent::SessionRevoked]).await;
    let (email, a) = app.user().await;
    let b = app.login(&email).await;
    let revoke = app.client.delete(app.url(&format!("/auth/sessions/{}", b.session_id))).bearer_auth(&a.access_token);
    assert_eq!(revoke.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    assert_eq!(deliveries(&app).await.len(), 3);

    // Down: each attempt fails to connect, and the next one waits twice as long (jitter takes
    // at most the upper half of each delay away).
    let start = app.now();
    let mut attempts = 0;
    while app.now() - start < 60 {
        attempts += 1;
        let recorded = async || {
            let all = deliveries(&app).await;
            all.iter().all(|d| d.attempts == attempts && d.next_attempt_at - app.now() < 70)
        };
        app.state.wake_webhook_sender();
        eventually(&format!("failed attempt {attempts}"), recorded).await;
        let all = deliveries(&app).await;
        for d in &all {
            assert!(d.last_error.as_deref().unwrap().starts_with("could not connect"), "{d:?}");
            let full = 1i64 << (attempts - 1);
            let delay = d.next_attempt_at - app.now();
            assert!((full + 1) / 2 <= delay && delay <= full, "attempt {attempts}: delay {delay}, full {full}");
        }
        let due = all.iter().map(|d| d.next_attempt_at).max().unwrap();
        app.advance((due - app.now()) as f64);
    }
    assert!(attempts >= 6, "{attempts} attempts in a minute");
    let status = &app.store().webhook_endpoints().await.unwrap()[0].status;
    assert_eq!((status.pending, status.failing, status.delivered), (3, 3, 0));

    let receiver = Receiver::start(&python, app.dir.path(), port, &secret, false).await;
    app.state.wake_webhook_sender();
    eventually("the deliveries after the outage", async || receiver.verified().len() == 3).await;
    eventually("recorded delivered", async || {
        deliveries(&app).await.iter().all(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    let ids: HashSet<String> = receiver.verified().iter().map(|r| r["id"].as_str().unwrap().to_owned()).collect();
    let queued: HashSet<String> = deliveries(&app).await.into_iter().map(|d| d.id).collect();
    assert_eq!(ids, queued, "each event once, under the id it was queued with");
    receiver.stop().await;
}

#[tokio::test]
async fn a_request_that_causes_an_event_answers_while_the_receiver_hangs() {
    let Some(python) = receiver_python() else { return };
    // Half the attempt's timeout is the bound on the request: room for a loaded test machine,
    // far below what waiting for the hanging receiver would take.
    let app = spawn_app_with(|s| s.webhook_timeout = secs(4)).await;
    let port = free_port();
    let (_, secret) = endpoint(&app, port, &[]).await;
    let receiver = Receiver::start(&python, app.dir.path(), port, &secret, true).await;
    let (email, a) = app.user().await;
    eventually("the sender hanging on the receiver", async || !receiver.records().is_empty()).await;

    let b = app.login(&email).await;
    let started = Instant::now();
    let revoke = app.client.delete(app.url(&format!("/auth/sessions/{}", b.session_id))).bearer_auth(&a.access_token);
    assert_eq!(revoke.send().await.unwrap().status(), StatusCode::NO_CONTENT);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(2), "the request waited for no delivery: {took:?}");

    // The timeout bounds the hanging attempt: it is recorded as failed, to be retried.
    eventually("the hanging attempt timed out", async || {
        deliveries(&app).await.iter().any(|d| d.last_error.as_deref().is_some_and(|e| e.starts_with("timed out")))
    })
    .await;
    assert!(deliveries(&app).await.iter().all(|d| d.state == DeliveryState::Pending));
    receiver.stop().await;
}
