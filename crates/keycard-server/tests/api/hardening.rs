//! The outside review's attacks (issue 14), each replayed against the real server: a stranger
//! locking the owner out, password-check floods, slow connections, v4-mapped proxies, planted
//! cookies, look-alike emails, undecodable paths, token parameters in other casings, `/metrics`.

use std::time::Duration;

use futures::future::join_all;
use keycard_server::settings::{IpList, Secret};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::*;

fn behind_proxy(s: &mut keycard_server::Settings) {
    s.trusted_proxies = IpList::new(["127.0.0.1".parse().unwrap()]);
}

async fn login_from(app: &TestApp, ip: &str, body: Value) -> reqwest::Response {
    app.client.post(app.url("/auth/login")).header("x-forwarded-for", ip).json(&body).send().await.unwrap()
}

fn attempt(email: &str, password: &str, device: Option<&str>) -> Value {
    json!({"email": email, "password": password, "delivery": "body", "device_token": device})
}

/// Guesses from a stranger's address until the account's unknown-device budget answers 429
/// (the fixed one-minute window may have just rolled over: this spends it again, so the check
/// that follows does not depend on the wall clock).
async fn exhaust_unknown_devices(app: &TestApp, email: &str) {
    for _ in 0..40 {
        let resp = login_from(app, "198.51.100.250", attempt(email, "stranger's guess", None)).await;
        if resp.status() == 429 {
            return;
        }
        assert_eq!(resp.status(), 401);
    }
    panic!("40 failed logins and still no 429");
}

#[tokio::test]
async fn strangers_guessing_never_lock_the_owner_out_of_a_known_device() {
    let app = spawn_app_with(behind_proxy).await;
    let victim = "victim@example.com";
    app.signup(victim).await;
    let first: Value = login_from(&app, "192.0.2.1", attempt(victim, PASSWORD, None)).await.json().await.unwrap();
    let mut device = first["device_token"].as_str().expect("a device token with body delivery").to_owned();
    assert!(device.starts_with("kcdv_"));

    // The review's scenario: two attacker addresses guess in turn, a 10-guess burst from one of
    // them, while the owner logs in from a fresh address each time on a device that logged in
    // before. Every owner login succeeds.
    for round in 0..12 {
        for attacker in ["198.51.100.1", "198.51.100.2"] {
            let guesses = if round == 3 { 10 } else { 1 };
            for _ in 0..guesses {
                let status = login_from(&app, attacker, attempt(victim, "wrong guess!", None)).await.status();
                assert!(status == 401 || status == 429, "{status}");
            }
        }
        let resp = login_from(&app, &format!("203.0.113.{round}"), attempt(victim, PASSWORD, Some(&device))).await;
        assert_eq!(resp.status(), 200, "owner's login in round {round}");
        let body: Value = resp.json().await.unwrap();
        device = body["device_token"].as_str().unwrap().to_owned();
    }
    // Unknown devices share the account's failure budget: it is spent, even for the right password.
    exhaust_unknown_devices(&app, victim).await;
    let resp = login_from(&app, "203.0.113.200", attempt(victim, PASSWORD, None)).await;
    let headers = assert_error(resp, 429, "rate_limited").await;
    assert!(headers.get("retry-after").is_some());
    // A device token of another account does not make a device known to this one.
    app.signup("mallory@example.com").await;
    let mallory: Value =
        login_from(&app, "198.51.100.9", attempt("mallory@example.com", PASSWORD, None)).await.json().await.unwrap();
    let foreign = mallory["device_token"].as_str().unwrap();
    exhaust_unknown_devices(&app, victim).await;
    let resp = login_from(&app, "198.51.100.9", attempt(victim, PASSWORD, Some(foreign))).await;
    assert_error(resp, 429, "rate_limited").await;
    // Forged and malformed device tokens count as unknown devices, never as errors.
    for forged in ["kcdv_AAAA.BBBB", "not a token", &device.replace('.', "")] {
        exhaust_unknown_devices(&app, victim).await;
        let resp = login_from(&app, "198.51.100.9", attempt(victim, PASSWORD, Some(forged))).await;
        assert_error(resp, 429, "rate_limited").await;
    }
    let kinds = app.audit_kinds(&app.store().user_by_email(victim).await.unwrap().unwrap().id).await;
    assert!(kinds.iter().filter(|k| *k == "login").count() >= 13, "{kinds:?}");
}

#[tokio::test]
async fn successful_logins_do_not_spend_the_per_account_budget() {
    let app = spawn_app_with(|s| {
        behind_proxy(s);
        s.login_per_account_per_minute = 3;
    })
    .await;
    app.signup("busy@example.com").await;
    // Five successes from five new devices: attempts that succeed are not failures.
    for i in 0..5 {
        let resp = login_from(&app, &format!("192.0.2.{i}"), attempt("busy@example.com", PASSWORD, None)).await;
        assert_eq!(resp.status(), 200, "login {i}");
    }
    // Failures spend it; then an unknown device waits, right password or not.
    exhaust_unknown_devices(&app, "busy@example.com").await;
    let resp = login_from(&app, "198.51.100.1", attempt("busy@example.com", PASSWORD, None)).await;
    assert_error(resp, 429, "rate_limited").await;
}

#[tokio::test]
async fn a_known_device_counts_its_own_failures() {
    let app = spawn_app_with(|s| s.login_backoff_after = 3).await;
    app.signup("owner@example.com").await;
    let first: Value =
        app.post_json("/auth/login", attempt("owner@example.com", PASSWORD, None)).await.json().await.unwrap();
    let device = first["device_token"].as_str().unwrap();
    for _ in 0..3 {
        let resp = app.post_json("/auth/login", attempt("owner@example.com", "fat fingers!", Some(device))).await;
        assert_error(resp, 401, "invalid_credentials").await;
    }
    // This device now backs off...
    let resp = app.post_json("/auth/login", attempt("owner@example.com", PASSWORD, Some(device))).await;
    assert_error(resp, 429, "rate_limited").await;
    // ...and its failures did not touch the budget of other devices.
    let resp = app.post_json("/auth/login", attempt("owner@example.com", PASSWORD, None)).await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn browsers_get_a_host_only_device_cookie_that_marks_them_known() {
    let app = spawn_app_with(|s| s.login_backoff_after = 2).await;
    app.signup("browser@example.com").await;
    let resp = app.post_json("/auth/login", json!({"email": "browser@example.com", "password": PASSWORD})).await;
    assert_eq!(resp.status(), 200);
    let cookies: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let device = cookies.iter().find(|c| c.starts_with("__Host-keycard_device=")).expect("device cookie");
    for attribute in ["HttpOnly", "Secure", "Path=/", "SameSite=Strict"] {
        assert!(device.contains(attribute), "{attribute} missing: {device}");
    }
    assert!(!device.to_ascii_lowercase().contains("domain="), "{device}");
    let body: Value = resp.json().await.unwrap();
    assert!(body.get("device_token").is_none(), "cookie delivery keeps the device token out of reach of script");
    let pair = device.split(';').next().unwrap().to_owned();
    // Strangers spend the unknown-device budget...
    exhaust_unknown_devices(&app, "browser@example.com").await;
    assert_error(
        app.post_json("/auth/login", attempt("browser@example.com", PASSWORD, None)).await,
        429,
        "rate_limited",
    )
    .await;
    // ...the browser with its cookie is not throttled.
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("cookie", &pair)
        .json(&json!({"email": "browser@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn password_checks_are_throttled_backed_off_audited_and_counted() {
    let app = spawn_app_with(|s| {
        s.metrics_token = Some(Secret::new("metrics-secret-0123456789"));
        s.login_backoff_after = 3;
    })
    .await;
    let (email, tokens) = app.user().await;
    let access = tokens.access_token;
    let change = |password: &str| {
        app.client
            .post(app.url("/auth/password"))
            .bearer_auth(&access)
            .json(&json!({"current_password": password, "new_password": "another long passphrase"}))
            .send()
    };
    for _ in 0..3 {
        assert_error(change("wrong password 1").await.unwrap(), 401, "invalid_credentials").await;
    }
    // Backing off now: the right password waits too, and deleting the account is the same check.
    assert_error(change(PASSWORD).await.unwrap(), 429, "rate_limited").await;
    let delete = app
        .client
        .delete(app.url("/auth/account"))
        .bearer_auth(&access)
        .json(&json!({"password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_error(delete, 429, "rate_limited").await;
    let user = app.store().user_by_email(&email).await.unwrap().unwrap();
    let kinds = app.audit_kinds(&user.id).await;
    assert_eq!(kinds.iter().filter(|k| *k == "password_check_failed").count(), 3, "{kinds:?}");
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("metrics-secret-0123456789")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("keycard_password_checks_total{outcome=\"failure\"}"), "{metrics}");
}

#[tokio::test]
async fn a_parallel_password_check_flood_hashes_at_most_the_per_user_budget() {
    let app = spawn_app_with(|s| {
        s.password_check_per_user_per_minute = 5;
        s.login_backoff_after = 1000;
    })
    .await;
    let (_, tokens) = app.user().await;
    let guesses = (0..64).map(|i| {
        app.client
            .post(app.url("/auth/password"))
            .bearer_auth(&tokens.access_token)
            .json(&json!({"current_password": format!("guess number {i}"), "new_password": "whatever long enough"}))
            .send()
    });
    let statuses: Vec<u16> = join_all(guesses).await.into_iter().map(|r| r.unwrap().status().as_u16()).collect();
    assert_eq!(statuses.iter().filter(|s| **s == 401).count(), 5, "{statuses:?}");
    assert_eq!(statuses.iter().filter(|s| **s == 429).count(), 59, "{statuses:?}");
}

/// Reads until the server closes the connection; true when it did within `within`.
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            // A 408 or 400 before closing is fine.
            Ok(Ok(_)) => continue,
        }
    }
}

#[tokio::test]
async fn slow_and_silent_connections_are_closed_and_the_server_keeps_answering() {
    let app = spawn_app_with(|s| {
        s.header_read_timeout = secs(1);
        s.idle_timeout = secs(2);
        s.request_timeout = secs(2);
        s.max_connections = 16;
    })
    .await;
    let partials: [&[u8]; 4] =
        [b"", b"GET /heal", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ", b"POST /auth/login HTTP/1.1\r\n"];
    let mut sockets = Vec::new();
    for i in 0..16 {
        let mut s = TcpStream::connect(app.addr).await.unwrap();
        s.write_all(partials[i % partials.len()]).await.unwrap();
        sockets.push(s);
    }
    // A body that trickles: the headers arrive, the body never finishes.
    let mut trickle = TcpStream::connect(app.addr).await.unwrap();
    trickle
        .write_all(
            b"POST /auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        )
        .await
        .unwrap();
    for (i, s) in sockets.iter_mut().enumerate() {
        assert!(closed_by_server(s, Duration::from_secs(5)).await, "slow socket {i} still open");
    }
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(5), trickle.read_to_string(&mut answer)).await.unwrap().ok();
    assert!(answer.starts_with("HTTP/1.1 400"), "trickled body: {answer:?}");
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn a_v4_mapped_proxy_is_trusted() {
    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(&dir).await;
    settings.bind = "[::ffff:127.0.0.1]:0".parse().unwrap();
    settings.trusted_proxies = IpList::new(["127.0.0.1".parse().unwrap()]);
    let app = start(settings, dir).await;
    let url = format!("http://127.0.0.1:{}", app.addr.port());
    app.signup("mapped@example.com").await;
    let login: Value = app
        .client
        .post(format!("{url}/auth/login"))
        .header("x-forwarded-for", "203.0.113.9")
        .json(&attempt("mapped@example.com", PASSWORD, None))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().expect("logged in");
    let sessions: Vec<Value> =
        app.client.get(format!("{url}/auth/sessions")).bearer_auth(access).send().await.unwrap().json().await.unwrap();
    assert_eq!(sessions[0]["ip"], "203.0.113.9");
}

#[tokio::test]
async fn ipv6_clients_of_one_64_share_a_per_ip_budget() {
    let app = spawn_app_with(|s| {
        behind_proxy(s);
        s.login_per_ip_per_minute = 3;
    })
    .await;
    for i in 1..=3 {
        let resp =
            login_from(&app, &format!("2001:db8:7:7::{i:x}"), attempt("x@example.com", "pass word one", None)).await;
        assert_eq!(resp.status(), 401);
    }
    let resp = login_from(&app, "2001:db8:7:7:ffff::1", attempt("y@example.com", "pass word one", None)).await;
    assert_error(resp, 429, "rate_limited").await;
    let resp = login_from(&app, "2001:db8:7:8::1", attempt("y@example.com", "pass word one", None)).await;
    assert_eq!(resp.status(), 401, "another /64 has its own budget");
}

#[tokio::test]
async fn the_csrf_cookie_is_host_only_and_planted_duplicates_are_refused() {
    let app = spawn_app().await;
    app.signup("cookies@example.com").await;
    let resp = app.post_json("/auth/login", json!({"email": "cookies@example.com", "password": PASSWORD})).await;
    let cookies: Vec<String> =
        resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let csrf_cookie = cookies.iter().find(|c| c.starts_with("__Host-keycard_csrf=")).expect("csrf cookie");
    assert!(csrf_cookie.contains("Path=/") && csrf_cookie.contains("Secure"), "{csrf_cookie}");
    assert!(!csrf_cookie.to_ascii_lowercase().contains("domain="), "{csrf_cookie}");
    let body: Value = resp.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap();
    let refresh = cookies.iter().find(|c| c.starts_with("__Secure-keycard_refresh=")).unwrap();
    let refresh = refresh.split(';').next().unwrap();
    let planted = format!("{refresh}; __Host-keycard_csrf=planted; __Host-keycard_csrf={csrf}");
    let resp = app
        .client
        .post(app.url("/auth/refresh"))
        .header("cookie", planted)
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    let status = resp.status();
    let body: Value = resp.json().await.unwrap();
    assert_eq!((status.as_u16(), body["error"].as_str()), (400, Some("invalid_request")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("__Host-keycard_csrf"), "{body}");
    // The same request without the planted copy refreshes: nothing was spent.
    let resp = app
        .client
        .post(app.url("/auth/refresh"))
        .header("cookie", format!("{refresh}; __Host-keycard_csrf={csrf}"))
        .header("x-csrf-token", csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn look_alike_emails_are_one_account() {
    let app = spawn_app().await;
    app.signup("alice@example.com").await;
    let resp = app.post_json("/auth/signup", json!({"email": "\u{ff41}lice@example.com", "password": PASSWORD})).await;
    assert_error(resp, 409, "email_taken").await;
    let resp = app.post_json("/auth/login", attempt("\u{ff21}LICE@example.com", PASSWORD, None)).await;
    assert_eq!(resp.status(), 200, "the fullwidth spelling logs into the same account");
}

#[tokio::test]
async fn odd_requests_get_the_json_error_shape() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    let resp = app.client.delete(app.url("/auth/sessions/%ff")).bearer_auth(&tokens.access_token).send().await.unwrap();
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_error(resp, 400, "invalid_request").await;
    for query in ["Access_Token=x", "REFRESH_TOKEN=x", "Id_Token=x"] {
        let resp = app.client.get(app.url(&format!("/auth/me?{query}"))).send().await.unwrap();
        assert_error(resp, 400, "invalid_request").await;
    }
}

#[tokio::test]
async fn metrics_are_off_unless_a_token_or_a_private_address_is_configured() {
    let app = spawn_app().await;
    assert_error(app.client.get(app.url("/metrics")).send().await.unwrap(), 404, "not_found").await;

    let app = spawn_app_with(|s| s.metrics_token = Some(Secret::new("scrape-me-0123456789"))).await;
    assert_error(app.client.get(app.url("/metrics")).send().await.unwrap(), 401, "invalid_token").await;
    let wrong = app.client.get(app.url("/metrics")).bearer_auth("scrape-me-0123456788").send().await.unwrap();
    assert_error(wrong, 401, "invalid_token").await;
    let right = app.client.get(app.url("/metrics")).bearer_auth("scrape-me-0123456789").send().await.unwrap();
    assert_eq!(right.status(), 200);

    let dir = std::sync::Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(&dir).await;
    settings.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    let built = keycard_server::Application::build(settings).await.unwrap();
    let metrics_addr = built.metrics_addr().expect("a metrics listener");
    let main_addr = built.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(built.run_until(async move {
        let _ = stopped.await;
    }));
    let client = reqwest::Client::new();
    let resp = client.get(format!("http://{metrics_addr}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain"));
    let resp = client.get(format!("http://{metrics_addr}/auth/me")).send().await.unwrap();
    assert_eq!(resp.status(), 404, "the metrics address serves nothing else");
    let resp = client.get(format!("http://{main_addr}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 404, "and the main address no metrics");
    let _ = stop.send(());
    task.await.unwrap().unwrap();
}
