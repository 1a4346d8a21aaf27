//! DPoP (RFC 9449, issue 19) on keycard's own server: sessions and client tokens bound to a
//! client key, refreshes that need that key, and keycard's protected routes that need a proof
//! with every request. Proofs are made by keycard-core's `DpopKey`, which signs with the
//! `jsonwebtoken` crate, and tampered with by changing what is signed, never by hand-made
//! signatures.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use keycard_core::dpop::DpopKey;
use keycard_core::keys::KeyAlg;
use keycard_store::{AuditFilter, AuditKind};
use serde_json::{Value, json};

use crate::helpers::*;

fn key() -> DpopKey {
    DpopKey::generate(KeyAlg::Es256).unwrap()
}

fn ed_key() -> DpopKey {
    DpopKey::generate(KeyAlg::EdDsa).unwrap()
}

/// A proof by `key` for `method path` on `app` now, with `ath` of `token` and `nonce`.
fn proof(app: &TestApp, key: &DpopKey, method: &str, path: &str, token: Option<&str>, nonce: Option<&str>) -> String {
    key.proof(method, &app.url(path), token, nonce, app.now()).unwrap()
}

/// Logs a new user in with a DPoP proof of `key` (body delivery).
async fn dpop_login(app: &TestApp, key: &DpopKey) -> (String, Value) {
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.signup(&email).await;
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("dpop", proof(app, key, "POST", "/auth/login", None, None))
        .json(&json!({"email": email, "password": PASSWORD, "delivery": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    (email, resp.json().await.unwrap())
}

async fn me_dpop(app: &TestApp, token: &str, dpop: Option<&str>) -> reqwest::Response {
    let mut request = app.client.get(app.url("/auth/me")).header("authorization", format!("DPoP {token}"));
    if let Some(proof) = dpop {
        request = request.header("dpop", proof);
    }
    request.send().await.unwrap()
}

async fn refresh_with(app: &TestApp, refresh: &str, dpop: Option<String>) -> reqwest::Response {
    let mut request = app.client.post(app.url("/auth/refresh")).json(&json!({"refresh_token": refresh}));
    if let Some(proof) = dpop {
        request = request.header("dpop", proof);
    }
    request.send().await.unwrap()
}

/// A refusal on a protected route: 401, the code, and a `WWW-Authenticate: DPoP` challenge.
async fn refused(resp: reqwest::Response, code: &str, why: &str) {
    let headers = resp.headers().clone();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!((status, body["error"].as_str().unwrap_or("")), (401, code), "{why}: {body}");
    let challenge = headers.get("www-authenticate").expect(why).to_str().unwrap();
    assert_eq!(challenge, format!("DPoP error=\"{code}\", algs=\"EdDSA Ed25519 ES256\""), "{why}");
}

#[tokio::test]
async fn a_dpop_login_issues_a_bound_token_that_works_only_with_its_keys_proofs() {
    let app = spawn_app().await;
    let key = key();
    let (email, tokens) = dpop_login(&app, &key).await;
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["cnf"], json!({"jkt": key.jkt()}));

    // With a fresh proof for this request and token: accepted, every time.
    for _ in 0..2 {
        let resp = me_dpop(&app, access, Some(&proof(&app, &key, "GET", "/auth/me", Some(access), None))).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(resp.json::<Value>().await.unwrap()["email"], email.as_str());
    }

    // Copied elsewhere, the token is useless:
    refused(app.get_authed("/auth/me", access).await, "invalid_token", "as a Bearer token").await;
    refused(me_dpop(&app, access, None).await, "invalid_dpop_proof", "without a proof").await;
    let thief = ed_key();
    let theirs = proof(&app, &thief, "GET", "/auth/me", Some(access), None);
    refused(me_dpop(&app, access, Some(&theirs)).await, "invalid_dpop_proof", "another key's proof").await;
    let once = proof(&app, &key, "GET", "/auth/me", Some(access), None);
    assert_eq!(me_dpop(&app, access, Some(&once)).await.status(), 200);
    refused(me_dpop(&app, access, Some(&once)).await, "invalid_dpop_proof", "a replayed proof").await;
    let cases = [
        ("wrong htm", proof(&app, &key, "POST", "/auth/me", Some(access), None)),
        ("wrong htu path", proof(&app, &key, "GET", "/auth/sessions", Some(access), None)),
        ("wrong htu host", key.proof("GET", "https://evil.example/auth/me", Some(access), None, app.now()).unwrap()),
        ("wrong ath", proof(&app, &key, "GET", "/auth/me", Some("another token"), None)),
        ("no ath", proof(&app, &key, "GET", "/auth/me", None, None)),
        ("too old", key.proof("GET", &app.url("/auth/me"), Some(access), None, app.now() - 120).unwrap()),
    ];
    for (why, bad) in cases {
        refused(me_dpop(&app, access, Some(&bad)).await, "invalid_dpop_proof", why).await;
    }
    // Two DPoP headers are refused too.
    let resp = app
        .client
        .get(app.url("/auth/me"))
        .header("authorization", format!("DPoP {access}"))
        .header("dpop", proof(&app, &key, "GET", "/auth/me", Some(access), None))
        .header("dpop", proof(&app, &key, "GET", "/auth/me", Some(access), None))
        .send()
        .await
        .unwrap();
    refused(resp, "invalid_dpop_proof", "two proofs").await;

    // Other protected routes check the same way.
    let resp = app
        .client
        .get(app.url("/auth/sessions"))
        .header("authorization", format!("DPoP {access}"))
        .header("dpop", proof(&app, &key, "GET", "/auth/sessions", Some(access), None))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    refused(app.get_authed("/auth/sessions", access).await, "invalid_token", "sessions as Bearer").await;
}

#[tokio::test]
async fn discovery_names_the_dpop_algorithms() {
    let app = spawn_app().await;
    let doc: Value =
        app.client.get(app.url("/.well-known/oauth-authorization-server")).send().await.unwrap().json().await.unwrap();
    assert_eq!(doc["dpop_signing_alg_values_supported"], json!(["EdDSA", "Ed25519", "ES256"]));
}

#[tokio::test]
async fn a_bearer_token_stays_bearer_and_is_refused_with_the_dpop_scheme() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    assert_eq!(tokens.token_type, "Bearer");
    assert!(claims(&tokens.access_token).get("cnf").is_none());
    assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 200);
    let key = key();
    let access = tokens.access_token.as_str();
    let resp = me_dpop(&app, access, Some(&proof(&app, &key, "GET", "/auth/me", Some(access), None))).await;
    refused(resp, "invalid_token", "an unbound token with the DPoP scheme").await;
}

#[tokio::test]
async fn a_bound_refresh_token_needs_its_key_and_a_copy_is_refused_and_audited() {
    let app = spawn_app().await;
    let key = key();
    let (_, tokens) = dpop_login(&app, &key).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let user_id = claims(tokens["access_token"].as_str().unwrap())["sub"].as_str().unwrap().to_owned();

    // Without a proof, or with another key's: refused, nothing changes.
    let thief = ed_key();
    let attempts =
        [("no proof", None), ("another key", Some(proof(&app, &thief, "POST", "/auth/refresh", None, None)))];
    for (why, dpop) in attempts {
        let resp = refresh_with(&app, &refresh, dpop).await;
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
        assert!(body["error_description"].as_str().unwrap().contains("DPoP"), "{why}: {body}");
    }
    let filter = AuditFilter { kind: Some(AuditKind::DpopMismatch), ..Default::default() };
    let audited = app.store().audit_events(&filter).await.unwrap();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(audited.iter().all(|e| e.event.user_id.as_deref() == Some(user_id.as_str())));

    // A bad proof is refused before the token is looked at.
    let stale = key.proof("POST", &app.url("/auth/refresh"), None, None, app.now() - 300).unwrap();
    let resp = refresh_with(&app, &refresh, Some(stale)).await;
    assert_error(resp, 400, "invalid_dpop_proof").await;

    // The rightful client, with its key: rotates, and the new tokens are bound to it still.
    let resp = refresh_with(&app, &refresh, Some(proof(&app, &key, "POST", "/auth/refresh", None, None))).await;
    assert_eq!(resp.status(), 200);
    let rotated: Value = resp.json().await.unwrap();
    assert_eq!(rotated["token_type"], "DPoP");
    assert_eq!(claims(rotated["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt());
}

#[tokio::test]
async fn a_bound_session_is_ended_by_its_refresh_token_only_with_its_keys_proof() {
    let app = spawn_app().await;
    let key = key();
    let (_, tokens) = dpop_login(&app, &key).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let logout = |dpop: Option<String>| {
        let mut request = app.client.post(app.url("/auth/logout")).json(&json!({"refresh_token": refresh}));
        if let Some(proof) = dpop {
            request = request.header("dpop", proof);
        }
        request.send()
    };

    // A copy of the refresh token (or the cookie) can't end the owner's session.
    let thief = ed_key();
    for (why, dpop) in
        [("no proof", None), ("another key", Some(proof(&app, &thief, "POST", "/auth/logout", None, None)))]
    {
        let resp = logout(dpop).await.unwrap();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"], "invalid_grant", "{why}: {body}");
        assert!(body["error_description"].as_str().unwrap().contains("DPoP"), "{why}: {body}");
    }
    let filter = AuditFilter { kind: Some(AuditKind::DpopMismatch), ..Default::default() };
    let audited = app.store().audit_events(&filter).await.unwrap();
    assert_eq!(audited.len(), 2, "{audited:?}");
    assert!(audited.iter().all(|e| e.event.detail.as_deref().is_some_and(|d| d.starts_with("logout"))));
    let resp = me_dpop(&app, &access, Some(&proof(&app, &key, "GET", "/auth/me", Some(&access), None))).await;
    assert_eq!(resp.status(), 200, "the session lives on");

    // The owner, with its key, ends it.
    let resp = logout(Some(proof(&app, &key, "POST", "/auth/logout", None, None))).await.unwrap();
    assert_eq!(resp.status(), 204);
    let resp = me_dpop(&app, &access, Some(&proof(&app, &key, "GET", "/auth/me", Some(&access), None))).await;
    refused(resp, "invalid_token", "the session is over").await;
}

#[tokio::test]
async fn nonces_when_turned_on_are_asked_for_and_then_accepted() {
    let app = spawn_app_with(|s| s.dpop_nonce = true).await;
    let key = key();
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.signup(&email).await;
    let login = |dpop: String| {
        app.client
            .post(app.url("/auth/login"))
            .header("dpop", dpop)
            .json(&json!({"email": email, "password": PASSWORD, "delivery": "body"}))
            .send()
    };
    let first = login(proof(&app, &key, "POST", "/auth/login", None, None)).await.unwrap();
    let headers = assert_error(first, 400, "use_dpop_nonce").await;
    let nonce = headers.get("dpop-nonce").expect("a nonce to use").to_str().unwrap().to_owned();
    let wrong = login(proof(&app, &key, "POST", "/auth/login", None, Some("not-the-nonce"))).await.unwrap();
    assert_error(wrong, 400, "use_dpop_nonce").await;
    let second = login(proof(&app, &key, "POST", "/auth/login", None, Some(&nonce))).await.unwrap();
    assert_eq!(second.status(), 200);
    let tokens: Value = second.json().await.unwrap();
    let access = tokens["access_token"].as_str().unwrap();

    // Protected routes want it too: 401 with the challenge and the nonce.
    let resp = me_dpop(&app, access, Some(&proof(&app, &key, "GET", "/auth/me", Some(access), None))).await;
    assert!(resp.headers().get("dpop-nonce").is_some());
    refused(resp, "use_dpop_nonce", "no nonce on a resource request").await;
    let resp = me_dpop(&app, access, Some(&proof(&app, &key, "GET", "/auth/me", Some(access), Some(&nonce)))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(nonce_of(&resp), Some(nonce.clone()), "a success hands out the current nonce too");

    // The nonce moves on with the clock (five-minute buckets, the one before still taken). A
    // client that reads each answer's nonce never meets `use_dpop_nonce`.
    app.advance(300.0);
    let resp = me_dpop(&app, access, Some(&proof(&app, &key, "GET", "/auth/me", Some(access), Some(&nonce)))).await;
    assert_eq!(resp.status(), 200, "the previous bucket's nonce is still accepted");
    let next = nonce_of(&resp).expect("the success carries the new nonce");
    assert_ne!(next, nonce);
    app.advance(300.0);
    let resp = me_dpop(&app, access, Some(&proof(&app, &key, "GET", "/auth/me", Some(access), Some(&nonce)))).await;
    let newest = nonce_of(&resp).expect("a refusal names the nonce to use");
    assert!(newest != next && newest != nonce, "the current bucket's nonce");
    refused(resp, "use_dpop_nonce", "a nonce two buckets old").await;
    let resp = me_dpop(&app, access, Some(&proof(&app, &key, "GET", "/auth/me", Some(access), Some(&next)))).await;
    assert_eq!(resp.status(), 200, "the nonce handed out by the last success");

    // Requests without a proof are not handed nonces.
    let resp = app.client.get(app.url("/.well-known/jwks.json")).send().await.unwrap();
    assert_eq!((resp.status().as_u16(), nonce_of(&resp)), (200, None));
}

fn nonce_of(resp: &reqwest::Response) -> Option<String> {
    resp.headers().get("dpop-nonce").map(|v| v.to_str().unwrap().to_owned())
}

#[tokio::test]
async fn without_nonces_no_nonce_is_handed_out() {
    let app = spawn_app().await;
    let key = key();
    let (_, tokens) = dpop_login(&app, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    let resp = me_dpop(&app, access, Some(&proof(&app, &key, "GET", "/auth/me", Some(access), None))).await;
    assert_eq!((resp.status().as_u16(), nonce_of(&resp)), (200, None));
}

#[tokio::test]
async fn a_page_on_an_allowed_origin_may_send_proofs_and_read_the_nonce() {
    let app = spawn_app_with(|s| s.allowed_origins.0 = vec!["https://app.example".into()]).await;
    let preflight = app
        .client
        .request(reqwest::Method::OPTIONS, app.url("/auth/me"))
        .header("origin", "https://app.example")
        .header("access-control-request-method", "PATCH")
        .header("access-control-request-headers", "authorization, dpop")
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    let header = |name: &str| preflight.headers().get(name).map(|v| v.to_str().unwrap().to_ascii_lowercase());
    assert!(header("access-control-allow-headers").is_some_and(|h| h.contains("dpop")), "{:?}", preflight.headers());
    assert!(header("access-control-allow-methods").is_some_and(|h| h.contains("patch")), "renaming a factor");

    let key = key();
    let (_, tokens) = dpop_login(&app, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    let resp = app
        .client
        .get(app.url("/auth/me"))
        .header("origin", "https://app.example")
        .header("authorization", format!("DPoP {access}"))
        .send()
        .await
        .unwrap();
    let exposed = resp.headers().get("access-control-expose-headers").unwrap().to_str().unwrap().to_ascii_lowercase();
    for name in ["dpop-nonce", "www-authenticate", "retry-after", "date"] {
        assert!(exposed.contains(name), "{name} is readable by the page: {exposed}");
    }
    refused(resp, "invalid_dpop_proof", "no proof").await;
}

#[tokio::test]
async fn dpop_can_be_required_for_every_session() {
    let app = spawn_app_with(|s| s.dpop_required = keycard_server::dpop::DpopRequired::All).await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.signup(&email).await;
    let resp = app.post_json("/auth/login", json!({"email": email, "password": PASSWORD, "delivery": "body"})).await;
    assert_error(resp, 400, "invalid_dpop_proof").await;
    let key = key();
    let resp = app
        .client
        .post(app.url("/auth/login"))
        .header("dpop", proof(&app, &key, "POST", "/auth/login", None, None))
        .json(&json!({"email": email, "password": PASSWORD, "delivery": "body"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

fn form(params: &[(&str, &str)]) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        body.append_pair(k, v);
    }
    body.finish()
}

#[tokio::test]
async fn the_oauth_token_endpoint_binds_client_and_refresh_tokens() {
    let app = spawn_app().await;
    let registered =
        keycard_server::oauth::register_client(app.store().as_ref(), "svc", &["read".to_owned()], None, app.now())
            .await
            .unwrap();
    let (id, secret) = (registered.client.id, registered.secret.unwrap());
    let basic = format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")));
    let key = key();
    let post = |params: &[(&str, &str)], auth: Option<&str>, dpop: Option<String>| {
        let mut request = app
            .client
            .post(app.url("/oauth/token"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(params));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        if let Some(dpop) = dpop {
            request = request.header("dpop", dpop);
        }
        request.send()
    };

    // client_credentials with a proof: a bound client token.
    let cc = [("grant_type", "client_credentials")];
    let resp = post(&cc, Some(&basic), Some(proof(&app, &key, "POST", "/oauth/token", None, None))).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt());
    // A proof for another endpoint is refused.
    let resp = post(&cc, Some(&basic), Some(proof(&app, &key, "POST", "/oauth/revoke", None, None))).await.unwrap();
    assert_error(resp, 400, "invalid_dpop_proof").await;

    // The refresh grant of a DPoP session: with the key, bound again; without it, refused.
    let (_, tokens) = dpop_login(&app, &key).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let grant = [("grant_type", "refresh_token"), ("refresh_token", refresh.as_str()), ("client_id", "keycard")];
    let resp = post(&grant, None, None).await.unwrap();
    assert_error(resp, 400, "invalid_grant").await;
    let resp = post(&grant, None, Some(proof(&app, &key, "POST", "/oauth/token", None, None))).await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(claims(body["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt());
}

#[tokio::test]
async fn a_client_named_in_dpop_required_clients_must_send_a_proof() {
    // Registered clients get their ids at registration; `keycard`, the public client whose
    // sessions keycard's own login starts, is a name known in advance.
    let app = spawn_app_with(|s| s.dpop_required_clients = "keycard".parse().unwrap()).await;
    let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
    app.signup(&email).await;
    let resp = app.post_json("/auth/login", json!({"email": email, "password": PASSWORD, "delivery": "body"})).await;
    assert_error(resp, 400, "invalid_dpop_proof").await;
    let grant = [("grant_type", "refresh_token"), ("refresh_token", "kcr_whatever"), ("client_id", "keycard")];
    let resp = app
        .client
        .post(app.url("/oauth/token"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&grant))
        .send()
        .await
        .unwrap();
    assert_error(resp, 400, "invalid_dpop_proof").await;
}

#[tokio::test]
async fn the_second_factor_step_binds_the_session_and_step_up_keeps_the_binding() {
    let app = spawn_app().await;
    let user = crate::mfa::enrol(&app).await;
    let mfa_token = crate::mfa::password_step(&app, &user.email).await;
    let key = key();
    let resp = app
        .client
        .post(app.url("/auth/mfa/verify"))
        .header("dpop", proof(&app, &key, "POST", "/auth/mfa/verify", None, None))
        .json(&json!({"mfa_token": mfa_token, "code": crate::mfa::code(&app, &user.app)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let tokens: Value = resp.json().await.unwrap();
    assert_eq!(tokens["token_type"], "DPoP");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["cnf"]["jkt"], key.jkt());

    // Step-up on that session (with its proof) answers a token bound to the same key.
    app.advance(30.0);
    let resp = app
        .client
        .post(app.url("/auth/step-up"))
        .header("authorization", format!("DPoP {access}"))
        .header("dpop", proof(&app, &key, "POST", "/auth/step-up", Some(access), None))
        .json(&json!({"code": crate::mfa::code(&app, &user.app)}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let stepped: Value = resp.json().await.unwrap();
    assert_eq!(stepped["token_type"], "DPoP");
    assert_eq!(claims(stepped["access_token"].as_str().unwrap())["cnf"]["jkt"], key.jkt());
}

#[tokio::test]
async fn a_proof_is_accepted_once_across_instances_sharing_the_store() {
    // Two servers on one database: a proof spent on one is a replay on the other.
    let first = spawn_app().await;
    let mut settings = first.settings.clone();
    settings.bind = "127.0.0.1:0".parse().unwrap();
    // One deployment: one issuer (the URL clients address it by), whichever instance answers.
    settings.issuer = Some(first.base.clone());
    let second = start_with_clock(settings, first.dir.clone(), first.clock.clone()).await;
    let key = key();
    let (_, tokens) = dpop_login(&first, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    // htu names the issuer, whichever instance answers.
    let once = proof(&first, &key, "GET", "/auth/me", Some(access), None);
    let on = |app: &TestApp| {
        app.client
            .get(app.url("/auth/me"))
            .header("authorization", format!("DPoP {access}"))
            .header("dpop", &once)
            .send()
    };
    assert_eq!(on(&first).await.unwrap().status(), 200);
    refused(on(&second).await.unwrap(), "invalid_dpop_proof", "replayed to another instance").await;
}

#[tokio::test]
async fn with_redis_the_replay_check_is_kept_in_redis() {
    let Ok(redis) = std::env::var("KEYCARD_TEST_REDIS_URL") else {
        assert!(std::env::var_os("CI").is_none(), "CI must set KEYCARD_TEST_REDIS_URL");
        eprintln!("notice: KEYCARD_TEST_REDIS_URL is unset; DPoP replay through Redis skipped");
        return;
    };
    let app = spawn_app_with(|s| s.redis = Some(redis.clone())).await;
    let key = key();
    let (_, tokens) = dpop_login(&app, &key).await;
    let access = tokens["access_token"].as_str().unwrap();
    let once = proof(&app, &key, "GET", "/auth/me", Some(access), None);
    assert_eq!(me_dpop(&app, access, Some(&once)).await.status(), 200);
    refused(me_dpop(&app, access, Some(&once)).await, "invalid_dpop_proof", "a replay, caught by Redis").await;
    // Redis remembered the pair, not the store: the store has never seen it.
    let jti = claims(&once)["jti"].as_str().unwrap().to_owned();
    assert!(app.store().spend_dpop_proof(&key.jkt(), &jti, app.now() + 60, app.now()).await.unwrap());
}
