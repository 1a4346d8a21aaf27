//! `keycard check` against the real keycard server (in process, port 0): every check passes on
//! the default configuration, and a weakened configuration is caught with a non-zero exit.

use keycard_core::claims::AccessClaims;
use keycard_server::{Application, Settings};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

struct Server {
    base: String,
    state: keycard_server::AppState,
    _dir: tempfile::TempDir,
}

async fn spawn(configure: impl FnOnce(&mut Settings)) -> Server {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("keycard.db").display().to_string().into(),
        ..Settings::default()
    };
    configure(&mut settings);
    let app = Application::build(settings).await.expect("the server starts");
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    Server { base, state, _dir: dir }
}

/// Signs a user up and returns an access token of theirs that expired an hour ago, validly
/// signed by the server's key, for the expiry probe.
async fn user_with_expired_token(server: &Server, email: &str) -> String {
    let client = reqwest::Client::new();
    let signup = client
        .post(format!("{}/auth/signup", server.base))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(signup.status(), 201);
    let user: Value = signup.json().await.unwrap();
    let login: Value = client
        .post(format!("{}/auth/login", server.base))
        .json(&json!({"email": email, "password": PASSWORD, "delivery": "body"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let c = &server.state.config;
    let then = keycard_core::now_unix() - 3_600 - c.access_ttl;
    let sid = login["session_id"].as_str().unwrap();
    let claims = AccessClaims::new(&c.issuer, &c.audience, user["id"].as_str().unwrap(), sid, then, c.access_ttl);
    server.state.keys().local().unwrap().sign(&claims).unwrap()
}

async fn check(server: &Server, email: &str, expired: &str) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keycard"))
        .args(["check", &server.base, "--email", email, "--password", PASSWORD, "--expired-token", expired])
        .env("KEYCARD_LOG", "warn")
        .output()
        .await
        .expect("keycard check runs");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    println!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    (out.status.success(), stdout)
}

fn lines_with<'a>(report: &'a str, tag: &str) -> Vec<&'a str> {
    report.lines().filter(|l| l.starts_with(tag)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_check_passes_against_a_default_keycard() {
    let server = spawn(|_| {}).await;
    let email = "check@example.com";
    let expired = user_with_expired_token(&server, email).await;

    let (ok, report) = check(&server, email, &expired).await;

    assert!(ok, "keycard check failed:\n{report}");
    assert!(lines_with(&report, "FAIL").is_empty(), "{report}");
    assert!(lines_with(&report, "WARN").is_empty(), "{report}");
    for id in [
        "alg-none",
        "alg-confusion",
        "tampered",
        "expired",
        "token-in-url",
        "security-headers",
        "token-cache",
        "refresh-rotation",
        "refresh-reuse",
        "logout",
        "cookie-flags",
        "csrf",
    ] {
        assert!(
            report.lines().any(|l| l.starts_with("PASS") && l[6..].starts_with(id)),
            "{id} did not pass:\n{report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_cookie_without_secure_fails_the_check_with_a_non_zero_exit() {
    let server = spawn(|s| s.cookie_secure = false).await;
    let email = "weak@example.com";
    let expired = user_with_expired_token(&server, email).await;

    let (ok, report) = check(&server, email, &expired).await;

    assert!(!ok, "the check should fail:\n{report}");
    let failed = lines_with(&report, "FAIL");
    assert_eq!(failed.len(), 1, "{report}");
    assert!(failed[0].contains("cookie-flags") && failed[0].contains("Secure missing"), "{report}");
}

async fn keycard(args: &[&str]) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keycard"))
        .args(args)
        .env("KEYCARD_LOG", "warn")
        .output()
        .await
        .expect("keycard runs");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

#[tokio::test(flavor = "multi_thread")]
async fn token_inspect_shows_human_times_and_verifies_against_the_jwks_or_a_key_file() {
    let server = spawn(|_| {}).await;
    let c = &server.state.config;
    let now = keycard_core::now_unix();
    let token = server
        .state
        .keys()
        .local()
        .unwrap()
        .sign(&AccessClaims::new(&c.issuer, &c.audience, "u1", "s1", now, 900))
        .unwrap();
    let jwks = format!("{}/.well-known/jwks.json", server.base);

    let (ok, out) = keycard(&["token", "inspect", &token, "--jwks", &jwks, "--issuer", &c.issuer]).await;
    assert!(ok, "{out}");
    assert!(out.contains("in 15 min") || out.contains("in 14 min"), "exp in human form:\n{out}");
    assert!(out.contains("Verified: valid"), "{out}");

    let dir = tempfile::tempdir().unwrap();
    let key_file = dir.path().join("jwks.json");
    std::fs::write(&key_file, reqwest::get(&jwks).await.unwrap().text().await.unwrap()).unwrap();
    let (ok, out) = keycard(&["token", "inspect", &token, "--key", key_file.to_str().unwrap()]).await;
    assert!(ok, "{out}");

    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = {
        use base64::Engine;
        let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut claims: Value = serde_json::from_slice(&engine.decode(parts[1]).unwrap()).unwrap();
        claims["sub"] = json!("admin");
        engine.encode(claims.to_string())
    };
    parts[1] = &forged_payload;
    let (ok, out) = keycard(&["token", "inspect", &parts.join("."), "--jwks", &jwks]).await;
    assert!(!ok && out.contains("NOT valid") && out.contains("signature"), "{out}");

    let expired = server
        .state
        .keys()
        .local()
        .unwrap()
        .sign(&AccessClaims::new(&c.issuer, &c.audience, "u1", "s1", now - 7200, 900))
        .unwrap();
    let (ok, out) = keycard(&["token", "inspect", &expired, "--jwks", &jwks]).await;
    assert!(!ok && out.contains("expired"), "{out}");
    assert!(out.contains("h ago"), "{out}");
}

/// Found by the `http_router` fuzz target: SPEC.md refuses every request with a token in its
/// query string, but a CORS preflight is answered by the CORS layer, which wraps the
/// token-in-URL check (crates/keycard-server/src/startup.rs, `app()`), so it gets 200. Low
/// severity (a preflight authenticates nothing), but the 400 that teaches the client developer
/// never comes. Fix: apply `reject_tokens_in_query` after (outside) `middleware::cors`.
#[tokio::test(flavor = "multi_thread")]
async fn a_cors_preflight_with_a_token_in_the_url_is_refused() {
    let server = spawn(|_| {}).await;
    let client = reqwest::Client::new();
    for origin in [server.base.as_str(), "https://attacker.example"] {
        let resp = client
            .request(reqwest::Method::OPTIONS, format!("{}/auth/refresh?refresh_token=kcrt_x", server.base))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", "POST")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 400, "preflight from {origin}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_that_tested_nothing_fails_and_signup_makes_a_throwaway_account_to_test_with() {
    let server = spawn(|_| {}).await;
    let (ok, text) = keycard(&["check", &server.base]).await;
    assert!(!ok, "everything skipped is not a pass:\n{text}");
    assert!(text.contains("0 passed, 0 failed") && text.contains("nothing was tested"), "{text}");
    assert!(text.contains("--signup"), "the way out is named:\n{text}");

    let (ok, text) = keycard(&["check", &server.base, "--signup"]).await;
    assert!(ok, "a throwaway account gets the probes run:\n{text}");
    let passed: usize = text
        .lines()
        .find_map(|l| l.strip_suffix(" skipped").and_then(|l| l.split(" passed").next()?.trim().parse().ok()))
        .expect("the counts line");
    assert!(passed >= 10, "{text}");
    assert!(!text.contains("FAIL "), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_account_with_a_second_factor_passes_the_mfa_probe_and_skips_the_session_probes() {
    let server = spawn(|_| {}).await;
    let email = "mfa-check@example.com";
    let client = reqwest::Client::new();
    let post = |path: &str| client.post(format!("{}{path}", server.base));
    assert_eq!(
        post("/auth/signup").json(&json!({"email": email, "password": PASSWORD})).send().await.unwrap().status(),
        201
    );
    let login: Value = post("/auth/login")
        .json(&json!({"email": email, "password": PASSWORD, "delivery": "body"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap();
    let enrolment: Value = post("/auth/mfa/totp").bearer_auth(access).send().await.unwrap().json().await.unwrap();
    let app = totp_rs::Totp::from_url(enrolment["otpauth_uri"].as_str().unwrap()).unwrap();
    let code = app.generate(keycard_core::now_unix() as u64).to_string();
    let confirm = json!({"factor_id": enrolment["factor_id"], "code": code});
    let confirmed = post("/auth/mfa/totp/confirm").bearer_auth(access).json(&confirm).send().await.unwrap();
    assert_eq!(confirmed.status(), 200);

    let (ok, text) = keycard(&["check", &server.base, "--email", email, "--password", PASSWORD]).await;
    assert!(ok, "{text}");
    let mfa = lines_with(&text, "PASS").into_iter().find(|l| l.contains("mfa")).unwrap_or_default().to_owned();
    assert!(mfa.contains("a second factor is demanded after the right password"), "{text}");
    assert!(text.contains("asks for a second factor"), "the skips say why:\n{text}");
    assert!(!text.contains("FAIL "), "{text}");
}
