//! Log capture: run the real binary at debug level through a whole lifecycle (including reuse,
//! bad tokens and tokens in URLs) and find no token, cookie value or password in its logs.

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
    assert!(!logs.contains("eyJ"), "a JWT reached the logs");
}
