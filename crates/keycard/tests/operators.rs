//! `keycard users …` and `keycard sessions …` against a running server: the real `keycard` binary
//! operates on the SQLite file the server (in process, port 0) is serving from, as an operator
//! would during an incident, and the server's answers change at once.

use std::path::PathBuf;
use std::process::Output;

use keycard_server::{Application, Settings};
use keycard_store::AuditFilter;
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

struct Server {
    base: String,
    state: keycard_server::AppState,
    database: PathBuf,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// A logged-in session: its tokens and id.
struct Login {
    access: String,
    refresh: String,
    sid: String,
}

async fn spawn() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let database = dir.path().join("keycard.db");
    let settings = Settings { rate_limit_enabled: false, ..Settings::loopback(database.display().to_string()) };
    let app = Application::build(settings).await.expect("the server starts");
    let base = format!("http://{}", app.local_addr());
    let state = app.state().clone();
    tokio::spawn(app.run_until(std::future::pending()));
    Server { base, state, database, http: reqwest::Client::new(), _dir: dir }
}

impl Server {
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.http.post(format!("{}{path}", self.base)).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn signup(&self, email: &str) -> String {
        let (status, body) = self.post("/auth/signup", json!({"email": email, "password": PASSWORD})).await;
        assert_eq!(status, 201, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Logs in with body delivery; `None` when the server refuses.
    async fn try_login(&self, email: &str) -> Option<Login> {
        let (status, body) =
            self.post("/auth/login", json!({"email": email, "password": PASSWORD, "delivery": "body"})).await;
        (status == 200).then(|| Login {
            access: body["access_token"].as_str().unwrap().to_owned(),
            refresh: body["refresh_token"].as_str().unwrap().to_owned(),
            sid: body["session_id"].as_str().unwrap().to_owned(),
        })
    }

    async fn login(&self, email: &str) -> Login {
        self.try_login(email).await.expect("the login succeeds")
    }

    /// The status of GET /auth/me with this access token.
    async fn me(&self, access: &str) -> u16 {
        let resp = self.http.get(format!("{}/auth/me", self.base)).bearer_auth(access).send().await.unwrap();
        resp.status().as_u16()
    }

    /// The status and error code of a refresh with this refresh token.
    async fn refresh(&self, refresh: &str) -> (u16, String) {
        let (status, body) = self.post("/auth/refresh", json!({"refresh_token": refresh})).await;
        (status, body["error"].as_str().unwrap_or_default().to_owned())
    }

    /// Every session id on the revocation feed.
    async fn revoked(&self) -> Vec<String> {
        let feed: Value =
            self.http.get(format!("{}/auth/revocations", self.base)).send().await.unwrap().json().await.unwrap();
        feed["revocations"].as_array().unwrap().iter().map(|r| r["sid"].as_str().unwrap().to_owned()).collect()
    }

    /// The audit events of this kind, newest first, as (user, session, detail).
    async fn audit(&self, kind: &str) -> Vec<(Option<String>, Option<String>, Option<String>)> {
        let filter = AuditFilter { kind: Some(kind.parse().unwrap()), limit: 100, ..AuditFilter::default() };
        let events = self.state.store.audit_events(&filter).await.unwrap();
        events.into_iter().map(|r| (r.event.user_id, r.event.session_id, r.event.detail)).collect()
    }

    /// Runs `keycard <args> --database <the server's file>`.
    async fn keycard(&self, args: &[&str]) -> Output {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_keycard"))
            .args(args)
            .arg("--database")
            .arg(&self.database)
            .env("KEYCARD_LOG", "warn")
            // An error must stay one clean line even when backtraces are asked for.
            .env("RUST_BACKTRACE", "1")
            .env_remove("KEYCARD_CONFIG")
            .output()
            .await
            .expect("keycard runs");
        println!("$ keycard {}\n{}{}", args.join(" "), text(&out.stdout), text(&out.stderr));
        out
    }

    /// Runs a command that must succeed; its stdout.
    async fn ok(&self, args: &[&str]) -> String {
        let out = self.keycard(args).await;
        assert!(out.status.success(), "keycard {args:?} failed: {}", text(&out.stderr));
        text(&out.stdout)
    }

    /// Runs a `--json` command that must succeed; its output.
    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("--json");
        serde_json::from_str(&self.ok(&args).await).expect("JSON output")
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[tokio::test(flavor = "multi_thread")]
async fn disabling_a_user_refuses_their_tokens_at_once_and_enabling_lets_them_back() {
    let server = spawn().await;
    let ada = server.signup("ada@example.com").await;
    let bob = server.signup("bob@example.com").await;
    let session = server.login("ada@example.com").await;
    let bobs = server.login("bob@example.com").await;
    assert_eq!(server.me(&session.access).await, 200);

    let out = server.ok(&["users", "disable", "ada@example.com"]).await;

    assert!(out.contains("disabled: ada@example.com") && out.contains("revoked 1 live session"), "{out}");
    assert_eq!(server.me(&session.access).await, 401, "the access token is refused at once");
    assert_eq!(server.refresh(&session.refresh).await, (401, "invalid_grant".into()), "the refresh token too");
    assert!(server.revoked().await.contains(&session.sid), "the sid is on the revocation feed");
    let audited = server.audit("user_disabled").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].0.as_deref(), Some(ada.as_str()));
    assert!(audited[0].2.as_deref().is_some_and(|d| d.contains("by operator")), "{audited:?}");
    assert_eq!(server.me(&bobs.access).await, 200, "bob is untouched");
    let shown = server.json(&["users", "show", &ada]).await;
    assert!(shown["disabled_at"].is_i64(), "{shown}");
    assert_eq!(shown["sessions"], json!([]), "{shown}");
    let listed = server.json(&["users", "list"]).await;
    let rows: Vec<(&str, bool)> =
        listed.as_array().unwrap().iter().map(|u| (u["id"].as_str().unwrap(), u["disabled_at"].is_i64())).collect();
    assert_eq!(rows, vec![(ada.as_str(), true), (bob.as_str(), false)]);

    // A disabled user's login is refused (403, only after the right password) and starts nothing.
    let (status, body) =
        server.post("/auth/login", json!({"email": "ada@example.com", "password": PASSWORD, "delivery": "body"})).await;
    assert_eq!((status, body["error"].as_str()), (403, Some("forbidden")), "{body}");
    let (status, body) = server
        .post("/auth/login", json!({"email": "ada@example.com", "password": "not the password", "delivery": "body"}))
        .await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_credentials")), "a wrong password learns nothing");
    let while_disabled = server.try_login("ada@example.com").await;
    assert!(while_disabled.is_none());

    let out = server.ok(&["users", "enable", &ada]).await;

    assert!(out.contains("enabled: ada@example.com"), "{out}");
    assert_eq!(server.audit("user_enabled").await.len(), 1);
    assert_eq!(server.me(&session.access).await, 401, "revoked sessions stay revoked");
    let again = server.login("ada@example.com").await;
    assert_eq!(server.me(&again.access).await, 200, "enabled: login works again");
    let (status, _) = server.refresh(&again.refresh).await;
    assert_eq!(status, 200, "and refresh");
    let out = server.ok(&["users", "enable", "ada@example.com"]).await;
    assert!(out.contains("is not disabled; nothing changed"), "{out}");
    assert_eq!(server.audit("user_enabled").await.len(), 1, "no-op enable is not audited");
}

#[tokio::test(flavor = "multi_thread")]
async fn users_logout_revokes_every_session_and_leaves_the_account_enabled() {
    let server = spawn().await;
    let ada = server.signup("ada@example.com").await;
    let phone = server.login("ada@example.com").await;
    let laptop = server.login("ada@example.com").await;
    let shown = server.ok(&["users", "show", "ADA@example.com"]).await;
    assert!(shown.contains("sessions: 2 live") && shown.contains(&phone.sid) && shown.contains(&laptop.sid), "{shown}");

    let out = server.json(&["users", "logout", &ada]).await;

    let mut revoked: Vec<&str> =
        out["revoked_sessions"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    revoked.sort();
    let mut expected = vec![phone.sid.as_str(), laptop.sid.as_str()];
    expected.sort();
    assert_eq!(revoked, expected, "{out}");
    for login in [&phone, &laptop] {
        assert_eq!(server.me(&login.access).await, 401);
        assert_eq!(server.refresh(&login.refresh).await.0, 401);
    }
    let feed = server.revoked().await;
    assert!(feed.contains(&phone.sid) && feed.contains(&laptop.sid), "{feed:?}");
    let audited = server.audit("sessions_revoked_by_operator").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].0.as_deref(), Some(ada.as_str()));
    let again = server.login("ada@example.com").await;
    assert_eq!(server.me(&again.access).await, 200, "the account stays enabled");
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_list_shows_live_sessions_and_sessions_revoke_ends_one() {
    let server = spawn().await;
    let ada = server.signup("ada@example.com").await;
    server.signup("bob@example.com").await;
    let first = server.login("ada@example.com").await;
    let bobs = server.login("bob@example.com").await;
    let second = server.login("ada@example.com").await;

    let all = server.json(&["sessions", "list"]).await;
    let ids: Vec<&str> = all.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert_eq!(ids.len(), 3, "{all}");
    for login in [&first, &bobs, &second] {
        assert!(ids.contains(&login.sid.as_str()), "{} listed: {all}", login.sid);
    }
    let adas = server.json(&["sessions", "list", "--user", "ada@example.com"]).await;
    let mut adas: Vec<&str> = adas.as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    adas.sort();
    let mut expected = vec![first.sid.as_str(), second.sid.as_str()];
    expected.sort();
    assert_eq!(adas, expected);
    let table = server.ok(&["sessions", "list", "--limit", "1"]).await;
    assert_eq!(table.lines().count(), 2, "a header and one session: {table}");

    let out = server.ok(&["sessions", "revoke", &first.sid]).await;

    assert!(out.contains(&format!("revoked: session {}", first.sid)), "{out}");
    assert_eq!(server.me(&first.access).await, 401, "its access token is refused");
    assert_eq!(server.refresh(&first.refresh).await.0, 401, "its refresh token too");
    assert_eq!(server.me(&second.access).await, 200, "ada's other session lives");
    assert_eq!(server.me(&bobs.access).await, 200, "bob's too");
    assert!(server.revoked().await.contains(&first.sid));
    let audited = server.audit("session_revoked").await;
    assert_eq!(audited, vec![(Some(ada), Some(first.sid.clone()), Some("by operator".into()))]);
    let left = server.json(&["sessions", "list"]).await;
    assert_eq!(left.as_array().unwrap().len(), 2, "{left}");

    let out = server.keycard(&["sessions", "revoke", &first.sid]).await;
    assert!(!out.status.success(), "an already revoked session is an error");
    assert_eq!(text(&out.stderr).trim(), format!("error: no live session {:?}", first.sid));
}

#[tokio::test(flavor = "multi_thread")]
async fn users_list_filters_by_email() {
    let server = spawn().await;
    for email in ["ada@example.com", "bob@example.org", "cy@example.org"] {
        server.signup(email).await;
    }
    server.login("bob@example.org").await;

    let table = server.ok(&["users", "list", "--email", "Example.ORG"]).await;

    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 3, "a header and two users: {table}");
    assert!(
        lines[1].contains("bob@example.org") && lines[1].contains(" 1 ") && lines[1].ends_with("enabled"),
        "{table}"
    );
    assert!(lines[2].contains("cy@example.org"), "{table}");
    let page = server.json(&["users", "list", "--limit", "1", "--after", "ada@example.com"]).await;
    assert_eq!(page[0]["email"], "bob@example.org", "{page}");
    assert_eq!(page.as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unknown_user_or_session_fails_with_one_clean_line() {
    let server = spawn().await;
    server.signup("ada@example.com").await;

    for args in [
        vec!["users", "show", "nobody@example.com"],
        vec!["users", "disable", "nobody@example.com"],
        vec!["users", "enable", "00000000-0000-0000-0000-000000000000"],
        vec!["users", "logout", "nobody@example.com"],
        vec!["sessions", "list", "--user", "nobody@example.com"],
        vec!["sessions", "revoke", "no-such-session"],
    ] {
        let out = server.keycard(&args).await;
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: one line, no backtrace: {stderr}");
        assert!(stderr.starts_with("error: no "), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
    assert!(server.audit("user_disabled").await.is_empty(), "nothing was done");
}

/// A `client_credentials` request with Basic credentials: (status, body).
async fn client_token(server: &Server, id: &str, secret: &str) -> (u16, Value) {
    let resp = server
        .http
        .post(format!("{}/oauth/token", server.base))
        .basic_auth(id, Some(secret))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("grant_type=client_credentials")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn clients_are_added_listed_rotated_and_removed_with_the_secret_shown_once() {
    let server = spawn().await;
    let added = server.json(&["clients", "add", "billing", "--scope", "invoices:read invoices:write"]).await;
    let (id, secret) = (added["client_id"].as_str().unwrap(), added["client_secret"].as_str().unwrap());
    assert!(id.starts_with("kcc_") && secret.starts_with("kcs_"), "{added}");
    assert_eq!(added["scope"], "invoices:read invoices:write");
    let (status, token) = client_token(&server, id, secret).await;
    assert_eq!(status, 200, "{token}");

    // The secret is never shown again: not by list (text or JSON), not in the audit log.
    let listed = server.json(&["clients", "list"]).await;
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["client_id"], id);
    let table = server.ok(&["clients", "list"]).await;
    assert!(table.contains(id) && !table.contains(secret));
    assert!(!listed.to_string().contains(secret));
    let created = server.audit("client_created").await;
    assert_eq!(created.len(), 1);
    assert!(!format!("{created:?}").contains(secret));

    let rotated = server.json(&["clients", "rotate-secret", id]).await;
    let new_secret = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(client_token(&server, id, secret).await.0, 401, "the old secret stops at once");
    assert_eq!(client_token(&server, id, new_secret).await.0, 200);

    server.ok(&["clients", "remove", id]).await;
    assert_eq!(client_token(&server, id, new_secret).await.0, 401);
    let sid = {
        let claims = token["access_token"].as_str().unwrap().split('.').nth(1).unwrap().to_owned();
        let bytes = base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, claims).unwrap();
        serde_json::from_slice::<Value>(&bytes).unwrap()["sid"].as_str().unwrap().to_owned()
    };
    assert!(server.revoked().await.contains(&sid), "removal puts the client's grant on the feed");
    assert_eq!(server.audit("client_removed").await.len(), 1);

    // Unknown ids and bad JWK sets fail with one clean line.
    for args in [vec!["clients", "rotate-secret", "kcc_nope"], vec!["clients", "remove", "kcc_nope"]] {
        let out = server.keycard(&args).await;
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_eq!(text(&out.stderr).lines().count(), 1);
    }
    let jwks = server.database.with_file_name("private.json");
    std::fs::write(&jwks, r#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}]}"#).unwrap();
    let out = server.keycard(&["clients", "add", "leaky", "--jwks", jwks.to_str().unwrap()]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("private"), "a private key is refused");
}

#[tokio::test(flavor = "multi_thread")]
async fn mail_list_shows_the_outbox_with_states_and_the_last_reply() {
    let server = spawn().await;
    let now = keycard_core::now_unix();
    let mail = |id: &str, recipient: &str| keycard_store::NewMail {
        id: id.into(),
        recipient: recipient.into(),
        subject: format!("Subject of {id}"),
        text_body: "secret link".into(),
        html_body: None,
        created_at: now,
    };
    // No smtp_url: the first becomes an .eml file (sent); the second cannot be addressed (failed).
    server.state.enqueue_mail(&mail("m1", "ada@example.com")).await.unwrap();
    server.state.enqueue_mail(&mail("m2", "not an address")).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let all = server.json(&["mail", "list"]).await;
        if all.as_array().unwrap().iter().all(|m| m["state"] != "queued") {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "still queued: {all}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    let failed = server.json(&["mail", "list", "--state", "failed"]).await;
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    assert_eq!((failed[0]["id"].as_str(), failed[0]["attempts"].as_i64()), (Some("m2"), Some(1)));
    assert!(failed[0]["last_error"].as_str().is_some_and(|e| e.contains("recipient")), "{failed}");
    let sent = server.json(&["mail", "list", "--state", "sent"]).await;
    assert_eq!(
        (sent[0]["recipient"].as_str(), sent[0]["subject"].as_str()),
        (Some("ada@example.com"), Some("Subject of m1"))
    );
    assert!(sent[0]["sent_at"].is_string(), "{sent}");

    let table = server.ok(&["mail", "list"]).await;
    assert_eq!(table.lines().count(), 3, "a header and two messages: {table}");
    assert!(table.contains("ada@example.com") && table.contains("sent"), "{table}");
    assert!(
        !table.contains("secret link") && !serde_json::to_string(&sent).unwrap().contains("secret link"),
        "no body"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn users_reset_factors_lets_a_user_who_lost_the_device_and_the_codes_back_in_with_the_password() {
    let server = spawn().await;
    let ada = server.signup("ada@example.com").await;
    let login = server.login("ada@example.com").await;
    let enrol = server.http.post(format!("{}/auth/mfa/totp", server.base)).bearer_auth(&login.access);
    let enrolment: Value = enrol.send().await.unwrap().json().await.unwrap();
    let app = totp_rs::Totp::from_url(enrolment["otpauth_uri"].as_str().unwrap()).unwrap();
    let confirm =
        json!({"factor_id": enrolment["factor_id"], "code": app.generate(keycard_core::now_unix() as u64).to_string()});
    let confirmed = server.http.post(format!("{}/auth/mfa/totp/confirm", server.base)).bearer_auth(&login.access);
    assert_eq!(confirmed.json(&confirm).send().await.unwrap().status(), 200);
    let (status, body) =
        server.post("/auth/login", json!({"email": "ada@example.com", "password": PASSWORD, "delivery": "body"})).await;
    assert_eq!((status, &body["mfa_required"]), (200, &json!(true)), "the password alone no longer signs in: {body}");

    let out = server.json(&["users", "reset-factors", "ada@example.com"]).await;
    assert_eq!(out["removed_factors"], json!([enrolment["factor_id"]]), "{out}");

    let again = server.login("ada@example.com").await;
    assert_eq!(server.me(&again.access).await, 200);
    assert_eq!(server.me(&login.access).await, 200, "sessions are untouched");
    let audited = server.audit("mfa_removed").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    assert_eq!(audited[0].0.as_deref(), Some(ada.as_str()));
    assert!(audited[0].2.as_deref().is_some_and(|d| d.starts_with("by operator")), "{audited:?}");
    let listed: Value = server
        .http
        .get(format!("{}/auth/mfa", server.base))
        .bearer_auth(&again.access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed, json!({"factors": [], "recovery_codes_left": 0}));
}
