//! Log capture: run the real binary at debug level through a whole lifecycle (including reuse,
//! bad tokens and tokens in URLs, the OAuth token endpoint, and a password reset whose link goes
//! to an `.eml` file) and find no token, link, cookie value or password in its logs.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

const PASSWORD: &str = "a memorable passphrase";

#[tokio::test]
async fn a_full_lifecycle_leaves_no_secret_in_the_logs() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_keycard"))
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database"])
        .arg(dir.path().join("k.db"))
        .env("KEYCARD_LOG", "debug")
        .stderr(Stdio::piped())
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    for _ in 0..100 {
        if http.get(format!("{base}/healthz")).send().await.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let post = |path: &str, body: Value| http.post(format!("{base}{path}")).json(&body).send();
    async fn login<F, Fut>(post: &F) -> (u16, Value)
    where
        F: Fn(&str, Value) -> Fut,
        Fut: std::future::Future<Output = reqwest::Result<reqwest::Response>>,
    {
        let resp = post("/auth/login", json!({"email": "logs@example.com", "password": PASSWORD, "delivery": "body"}))
            .await
            .unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap())
    }
    post("/auth/signup", json!({"email": "logs@example.com", "password": PASSWORD})).await.unwrap();
    post("/auth/login", json!({"email": "logs@example.com", "password": "the wrong one!"})).await.unwrap();
    let cookie_login = post("/auth/login", json!({"email": "logs@example.com", "password": PASSWORD})).await.unwrap();
    let cookies: Vec<String> =
        cookie_login.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_owned()).collect();
    let body: Value =
        post("/auth/login", json!({"email": "logs@example.com", "password": PASSWORD, "delivery": "body"}))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
    let access = body["access_token"].as_str().unwrap().to_owned();
    let refresh = body["refresh_token"].as_str().unwrap().to_owned();
    let mut secrets = vec![access.clone(), refresh.clone(), PASSWORD.to_owned()];
    for c in &cookies {
        let value = c.split(';').next().unwrap().split_once('=').unwrap().1.to_owned();
        secrets.push(value);
    }
    http.get(format!("{base}/auth/me")).bearer_auth(&access).send().await.unwrap();
    http.get(format!("{base}/auth/me?access_token={access}")).send().await.unwrap();
    http.get(format!("{base}/auth/me")).bearer_auth(format!("{access}tampered")).send().await.unwrap();
    let next: Value = post("/auth/refresh", json!({"refresh_token": refresh})).await.unwrap().json().await.unwrap();
    secrets.push(next["access_token"].as_str().unwrap().to_owned());
    secrets.push(next["refresh_token"].as_str().unwrap().to_owned());
    post("/auth/refresh", json!({"refresh_token": refresh})).await.unwrap(); // reuse
    http.post(format!("{base}/auth/logout")).bearer_auth(&access).send().await.unwrap();

    // The OAuth token endpoint: a refresh grant, then a wrong client secret.
    let form = |path: &str, body: String| {
        http.post(format!("{base}{path}")).header("content-type", "application/x-www-form-urlencoded").body(body).send()
    };
    let (_, fresh) = login(&post).await;
    let granted: Value = form(
        "/oauth/token",
        format!(
            "grant_type=refresh_token&client_id=keycard&refresh_token={}",
            fresh["refresh_token"].as_str().unwrap()
        ),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    secrets.extend(["access_token", "refresh_token"].map(|k| granted[k].as_str().unwrap().to_owned()));
    secrets.extend(["access_token", "refresh_token"].map(|k| fresh[k].as_str().unwrap().to_owned()));
    form("/oauth/token", "grant_type=client_credentials&client_id=kcc_x&client_secret=kcs_not-this-one-either".into())
        .await
        .unwrap();
    secrets.push("kcs_not-this-one-either".into());

    // A password reset: no SMTP server is configured, so the link goes to an .eml file next to
    // the database; the token is read from there, and spent.
    post("/auth/password/forgot", json!({"email": "logs@example.com"})).await.unwrap();
    let mail_dir = dir.path().join("mail");
    let token = mailed_token(&mail_dir, "kcpr_").await;
    const NEW_PASSWORD: &str = "another memorable passphrase";
    let reset = post("/auth/password/reset", json!({"token": token, "new_password": NEW_PASSWORD})).await.unwrap();
    assert_eq!(reset.status(), 204);
    secrets.extend([token.clone(), NEW_PASSWORD.to_owned()]);

    // Email verification (the signup's link) and an address change, confirmed: the tokens are
    // read from the .eml files and spent.
    let verify = mailed_token(&mail_dir, "kcev_").await;
    assert_eq!(post("/auth/email/verify", json!({"token": verify})).await.unwrap().status(), 200);
    let body = json!({"email": "logs@example.com", "password": NEW_PASSWORD, "delivery": "body"});
    let signed_in: Value = post("/auth/login", body).await.unwrap().json().await.unwrap();
    let access = signed_in["access_token"].as_str().unwrap().to_owned();
    let changed = http
        .post(format!("{base}/auth/email"))
        .bearer_auth(&access)
        .json(&json!({"new_email": "logs2@example.com", "password": NEW_PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 202);
    let (confirm, cancel) = (mailed_token(&mail_dir, "kcec_").await, mailed_token(&mail_dir, "kcex_").await);
    assert_eq!(post("/auth/email/confirm", json!({"token": confirm})).await.unwrap().status(), 200);
    secrets.extend([verify, confirm, cancel, access.clone()]);

    // Second factors: an authenticator app enrolled and confirmed, a login's second step with a
    // wrong code then a recovery code, a step-up with another recovery code.
    let authed = |path: &str, body: Value| http.post(format!("{base}{path}")).bearer_auth(&access).json(&body).send();
    let enrolment: Value = authed("/auth/mfa/totp", json!({})).await.unwrap().json().await.unwrap();
    let app = totp_rs::Totp::from_url(enrolment["otpauth_uri"].as_str().unwrap()).unwrap();
    let code = app.generate(keycard_core::now_unix() as u64).to_string();
    let confirm = json!({"factor_id": enrolment["factor_id"], "code": code});
    let confirmed: Value = authed("/auth/mfa/totp/confirm", confirm).await.unwrap().json().await.unwrap();
    let codes: Vec<String> =
        confirmed["recovery_codes"].as_array().unwrap().iter().map(|c| c.as_str().unwrap().to_owned()).collect();
    let body = json!({"email": "logs2@example.com", "password": NEW_PASSWORD, "delivery": "body"});
    let challenge: Value = post("/auth/login", body).await.unwrap().json().await.unwrap();
    let mfa_token = challenge["mfa_token"].as_str().unwrap().to_owned();
    post("/auth/mfa/verify", json!({"mfa_token": mfa_token, "code": "000000"})).await.unwrap();
    let done = post("/auth/mfa/verify", json!({"mfa_token": mfa_token, "recovery_code": codes[0]})).await.unwrap();
    assert_eq!(done.status(), 200);
    let stepped = authed("/auth/step-up", json!({"recovery_code": codes[1]})).await.unwrap();
    assert_eq!(stepped.status(), 200);
    // (The 6-digit code is left out: six digits turn up in any log's timestamps.)
    secrets.extend([enrolment["secret"].as_str().unwrap().to_owned(), mfa_token]);
    secrets.extend(codes);

    // A graceful stop (SIGTERM) flushes every log line written so far; reading stderr to its end
    // then waits for exactly that, with no guess at how long the writes take.
    let pid = child.id().expect("the server runs").to_string();
    let stopped = std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(stopped.success(), "kill -TERM {pid}");
    let mut logs = String::new();
    let mut stderr = child.stderr.take().unwrap();
    let read = stderr.read_to_string(&mut logs);
    tokio::time::timeout(Duration::from_secs(30), read).await.expect("the server stops").unwrap();
    child.wait().await.unwrap();

    assert!(logs.contains("refresh token reuse detected"), "the logs are captured at all:\n{logs}");
    for secret in &secrets {
        let probe = &secret[..secret.len().min(24)];
        assert!(!logs.contains(probe), "a secret ({}…) reached the logs", &probe[..8]);
    }
    assert!(!logs.contains("kcrt_"), "a refresh token reached the logs");
    for prefix in ["kcpr_", "kcev_", "kcec_", "kcex_", "kcmf_", "#token=", "otpauth:"] {
        assert!(!logs.contains(prefix), "a mailed token or link ({prefix}) reached the logs");
    }
    assert!(!logs.contains("eyJ"), "a JWT reached the logs");
}

/// The token with `prefix` in an `.eml` file of `mail_dir`, waiting (polling) for the file.
async fn mailed_token(mail_dir: &std::path::Path, prefix: &str) -> String {
    for _ in 0..100 {
        let files = std::fs::read_dir(mail_dir).map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>());
        for file in files.unwrap_or_default().into_iter().filter(|p| p.extension().is_some_and(|e| e == "eml")) {
            let text = std::fs::read_to_string(file).unwrap_or_default();
            let text = text.replace("=\r\n", "").replace("=\n", "").replace("=3D", "=");
            if let Some(after) = text.split(&format!("#token={prefix}")).nth(1) {
                let rest: String =
                    after.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '-').collect();
                return format!("{prefix}{rest}");
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no mailed {prefix} token in {}", mail_dir.display());
}
