//! Defence in depth: rate limits, login backoff, refresh binding, trusted proxies, the audit
//! trail, metrics.

use serde_json::{Value, json};

use crate::helpers::*;

async fn login_as(app: &TestApp, email: &str, password: &str) -> reqwest::Response {
    app.post_json("/auth/login", json!({"email": email, "password": password, "delivery": "body"})).await
}

#[tokio::test]
async fn a_login_brute_force_meets_backoff_and_the_owner_gets_in_after_it() {
    let app = spawn_app_with(|s| {
        s.login_backoff_after = 3;
        s.login_per_account_per_minute = 100;
        s.login_per_ip_per_minute = 100;
    })
    .await;
    app.signup("victim@example.com").await;
    for _ in 0..3 {
        assert_error(login_as(&app, "victim@example.com", "wrong guess!").await, 401, "invalid_credentials").await;
    }
    // Backing off now: even the right password waits, and the answer says how long.
    let resp = login_as(&app, "victim@example.com", PASSWORD).await;
    let headers = assert_error(resp, 429, "rate_limited").await;
    let retry: u64 = headers.get("retry-after").unwrap().to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    app.advance(retry as f64);
    assert_eq!(login_as(&app, "victim@example.com", PASSWORD).await.status(), 200);
    // Success resets the count.
    assert_error(login_as(&app, "victim@example.com", "wrong again!").await, 401, "invalid_credentials").await;
}

#[tokio::test]
async fn per_ip_login_limit_answers_429_with_retry_after() {
    let app = spawn_app_with(|s| s.login_per_ip_per_minute = 3).await;
    for _ in 0..3 {
        login_as(&app, "nobody@example.com", "whatever you say").await;
    }
    let headers =
        assert_error(login_as(&app, "nobody@example.com", "whatever you say").await, 429, "rate_limited").await;
    assert!(headers.get("retry-after").is_some());
}

#[tokio::test]
async fn per_account_login_limit_holds_across_ips() {
    let app = spawn_app_with(|s| {
        s.login_per_account_per_minute = 2;
        s.trusted_proxies = keycard_server::settings::IpList::new(["127.0.0.1".parse().unwrap()]);
    })
    .await;
    for i in 0..2 {
        let resp = app
            .client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", format!("198.51.100.{i}"))
            .json(&json!({"email": "target@example.com", "password": "guess guess guess"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401);
    }
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("x-forwarded-for", "198.51.100.77")
        .json(&json!({"email": "target@example.com", "password": "guess guess guess"}))
        .send()
        .await
        .unwrap();
    assert_error(resp, 429, "rate_limited").await;
}

#[tokio::test]
async fn signup_and_refresh_are_limited_per_ip() {
    let app = spawn_app_with(|s| {
        s.signup_per_ip_per_minute = 1;
        s.refresh_per_ip_per_minute = 2;
    })
    .await;
    let (_, tokens) = app.user().await;
    let resp = app.post_json("/auth/signup", json!({"email": "second@example.com", "password": PASSWORD})).await;
    assert_error(resp, 429, "rate_limited").await;
    let next: Value = app.refresh(tokens.refresh_token.as_deref().unwrap()).await.json().await.unwrap();
    let next: Value = app.refresh(next["refresh_token"].as_str().unwrap()).await.json().await.unwrap();
    assert_error(app.refresh(next["refresh_token"].as_str().unwrap()).await, 429, "rate_limited").await;
}

#[tokio::test]
async fn one_setting_switches_every_limit_off() {
    let app = spawn_app_with(|s| {
        s.rate_limit_enabled = false;
        s.login_per_ip_per_minute = 1;
        s.login_backoff_after = 1;
    })
    .await;
    for _ in 0..6 {
        assert_error(login_as(&app, "nobody@example.com", "whatever you say").await, 401, "invalid_credentials").await;
    }
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
    for (trusted, expected_ip) in [(vec![], "127.0.0.1"), (vec!["127.0.0.1".to_owned()], "203.0.113.9")] {
        let app = spawn_app_with(|s| {
            s.trusted_proxies = keycard_server::settings::IpList::new(trusted.iter().map(|t| t.parse().unwrap()))
        })
        .await;
        let email = "proxied@example.com";
        app.signup(email).await;
        let tokens: Value = app
            .client
            .post(app.url("/auth/login"))
            .header("x-forwarded-for", "10.9.9.9, 203.0.113.9")
            .json(&json!({"email": email, "password": PASSWORD, "delivery": "body"}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let sessions: Vec<Value> =
            app.get_authed("/auth/sessions", tokens["access_token"].as_str().unwrap()).await.json().await.unwrap();
        assert_eq!(sessions[0]["ip"], expected_ip, "trusted proxies {trusted:?}");
    }
}

#[tokio::test]
async fn a_refresh_from_another_user_agent_revokes_a_bound_session() {
    let app = spawn_app_with(|s| s.refresh_binding = keycard_store::Binding::UserAgent).await;
    app.signup("bound@example.com").await;
    let login = |ua: &'static str| {
        app.client
            .post(app.url("/auth/login"))
            .header("user-agent", ua)
            .json(&json!({"email": "bound@example.com", "password": PASSWORD, "delivery": "body"}))
            .send()
    };
    let tokens: Value = login("LaptopBrowser/1.0").await.unwrap().json().await.unwrap();
    let refresh = |token: String, ua: &'static str| {
        app.client.post(app.url("/auth/refresh")).header("user-agent", ua).json(&json!({"refresh_token": token})).send()
    };
    let same = refresh(tokens["refresh_token"].as_str().unwrap().to_owned(), "LaptopBrowser/1.0").await.unwrap();
    assert_eq!(same.status(), 200);
    let next: Value = same.json().await.unwrap();
    let stolen = refresh(next["refresh_token"].as_str().unwrap().to_owned(), "curl/8.0").await.unwrap();
    assert_error(stolen, 401, "invalid_grant").await;
    assert_error(app.get_authed("/auth/me", next["access_token"].as_str().unwrap()).await, 401, "invalid_token").await;
    let user_id = app.get_authed_user_id_from_token(tokens["access_token"].as_str().unwrap());
    let kinds = app.audit_kinds(&user_id).await;
    assert_eq!(kinds.last().map(String::as_str), Some("session_revoked"), "{kinds:?}");
}

#[tokio::test]
async fn the_audit_trail_of_a_reuse_attack_tells_the_story() {
    let app = spawn_app().await;
    let (email, tokens) = app.user().await;
    login_as(&app, &email, "a wrong password").await;
    let old = tokens.refresh_token.clone().unwrap();
    app.refresh(&old).await; // the legitimate client rotates
    app.refresh(&old).await; // the thief replays the stolen token
    let user_id = app.get_authed_user_id_from_token(&tokens.access_token);
    let events = app
        .store()
        .audit_events(&keycard_store::AuditFilter { user_id: Some(user_id), limit: 100, ..Default::default() })
        .await
        .unwrap();
    let story: Vec<&str> = events.iter().rev().map(|e| e.event.kind.as_str()).collect();
    // The verification mail is queued in the signup's own transaction, before its event.
    let expected = ["email_verification_sent", "signup", "login", "login_failed", "refresh", "refresh_token_reused"];
    assert_eq!(story, expected);
    let reuse = &events[0].event;
    assert_eq!(reuse.session_id.as_deref(), Some(tokens.session_id.as_str()));
    assert_eq!(reuse.ip.as_deref(), Some("127.0.0.1"));
    for e in &events {
        let text = format!("{:?}", e.event);
        assert!(!text.contains("kcrt_") && !text.contains("eyJ") && !text.contains(PASSWORD), "{text}");
    }
}

#[tokio::test]
async fn common_passwords_are_refused_as_weak() {
    let app = spawn_app().await;
    let resp = app.post_json("/auth/signup", json!({"email": "lazy@example.com", "password": "Password123"})).await;
    assert_error(resp, 422, "weak_password").await;
}

#[tokio::test]
async fn metrics_count_logins_refreshes_reuse_and_latency() {
    let app =
        spawn_app_with(|s| s.metrics_token = Some(keycard_server::settings::Secret::new("metrics-token-0123456789")))
            .await;
    let (_, tokens) = app.user().await;
    let old = tokens.refresh_token.unwrap();
    app.refresh(&old).await;
    app.refresh(&old).await;
    let resp = app.client.get(app.url("/metrics")).bearer_auth("metrics-token-0123456789").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    for needle in [
        "keycard_logins_total{outcome=\"success\"}",
        "keycard_refreshes_total{outcome=\"rotated\"}",
        "keycard_refreshes_total{outcome=\"reused\"}",
        "keycard_revocations_total{reason=\"refresh_token_reused\"}",
        "keycard_http_request_duration_seconds_bucket{route=\"/auth/refresh\"",
    ] {
        assert!(text.contains(needle), "{needle} missing from /metrics");
    }
}

#[tokio::test]
async fn a_rate_limit_shared_through_redis_holds_across_two_instances() {
    let Ok(redis) = std::env::var("KEYCARD_TEST_REDIS_URL") else {
        assert!(std::env::var_os("CI").is_none(), "CI must set KEYCARD_TEST_REDIS_URL");
        eprintln!("notice: KEYCARD_TEST_REDIS_URL is unset; shared rate-limit test skipped");
        return;
    };
    let configure = |s: &mut keycard_server::Settings| {
        s.redis = Some(redis.clone());
        s.login_per_account_per_minute = 3;
        s.login_per_ip_per_minute = 1000;
        s.login_backoff_after = 100;
    };
    let a = spawn_app_with(configure).await;
    let b = spawn_app_with(configure).await;
    // A fresh account name: Redis windows outlive a test run.
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    for app in [&a, &b, &a] {
        assert_error(login_as(app, &email, "guess guess guess").await, 401, "invalid_credentials").await;
    }
    assert_error(login_as(&b, &email, "guess guess guess").await, 429, "rate_limited").await;
    assert_error(login_as(&a, &email, "guess guess guess").await, 429, "rate_limited").await;
}
