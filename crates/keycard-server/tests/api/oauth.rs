//! The OAuth 2.0 surface (issue 18): `POST /oauth/token` (refresh token, client credentials,
//! password), `POST /oauth/revoke` (RFC 7009), `POST /oauth/introspect` (RFC 7662), and the
//! metadata documents, attacked over HTTP against the real server.

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keycard_server::oauth;
use serde_json::{Value, json};

use crate::helpers::*;

/// A registered client: id and secret (or the key pair of a `private_key_jwt` client).
struct Client {
    id: String,
    secret: String,
}

async fn register(app: &TestApp, scopes: &str) -> Client {
    let registered =
        oauth::register_client(app.store().as_ref(), "svc", &[scopes.to_owned()], None, app.now()).await.unwrap();
    Client { id: registered.client.id, secret: registered.secret.unwrap() }
}

fn form_body(params: &[(&str, &str)]) -> String {
    let mut body = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        body.append_pair(k, v);
    }
    body.finish()
}

/// POSTs a form to `path`, with `client_secret_basic` credentials when `basic` is given.
async fn post_form(app: &TestApp, path: &str, params: &[(&str, &str)], basic: Option<&Client>) -> reqwest::Response {
    let mut request = app
        .client
        .post(app.url(path))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form_body(params));
    if let Some(c) = basic {
        request =
            request.header("authorization", format!("Basic {}", STANDARD.encode(format!("{}:{}", c.id, c.secret))));
    }
    request.send().await.unwrap()
}

async fn oauth_error(resp: reqwest::Response, status: u16, code: &str) -> reqwest::header::HeaderMap {
    let headers = assert_error(resp, status, code).await;
    assert_eq!(headers.get("cache-control").unwrap(), "no-store");
    if code == "invalid_client" {
        assert_eq!(headers.get("www-authenticate").unwrap(), "Basic realm=\"keycard\"");
    }
    headers
}

async fn events(app: &TestApp, kind: keycard_store::AuditKind) -> Vec<keycard_store::AuditRecord> {
    let filter = keycard_store::AuditFilter { kind: Some(kind), ..Default::default() };
    app.store().audit_events(&filter).await.unwrap()
}

async fn revocation_feed(app: &TestApp) -> Value {
    app.client.get(app.url("/auth/revocations")).send().await.unwrap().json().await.unwrap()
}

async fn refresh_grant(app: &TestApp, refresh: &str) -> reqwest::Response {
    post_form(
        app,
        "/oauth/token",
        &[("grant_type", "refresh_token"), ("refresh_token", refresh), ("client_id", "keycard")],
        None,
    )
    .await
}

async fn client_token(app: &TestApp, c: &Client, scope: Option<&str>) -> Value {
    let mut params = vec![("grant_type", "client_credentials")];
    params.extend(scope.map(|s| ("scope", s)));
    let resp = post_form(app, "/oauth/token", &params, Some(c)).await;
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

async fn introspect(app: &TestApp, c: &Client, token: &str) -> Value {
    let resp = post_form(app, "/oauth/introspect", &[("token", token)], Some(c)).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    resp.json().await.unwrap()
}

#[tokio::test]
async fn both_metadata_documents_say_the_same_true_things() {
    let app = spawn_app().await;
    let get = |path: &'static str| {
        let app = &app;
        async move { app.client.get(app.url(path)).send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let rfc8414 = get("/.well-known/oauth-authorization-server").await;
    assert_eq!(rfc8414, get("/.well-known/openid-configuration").await);
    assert_eq!(rfc8414["issuer"], app.base.as_str());
    assert_eq!(rfc8414["token_endpoint"], app.url("/oauth/token"));
    assert_eq!(rfc8414["revocation_endpoint"], app.url("/oauth/revoke"));
    assert_eq!(rfc8414["introspection_endpoint"], app.url("/oauth/introspect"));
    assert_eq!(rfc8414["grant_types_supported"], json!(["refresh_token", "client_credentials"]));
    assert_eq!(rfc8414["response_types_supported"], json!([]));
    assert!(rfc8414.get("id_token_signing_alg_values_supported").is_none(), "no ID tokens");
    assert!(rfc8414.get("authorization_endpoint").is_none());

    // Every URL in the document is served (a GET for documents, the method of the API for the
    // endpoints: anything but 404/405 shows the route is there).
    for (key, value) in rfc8414.as_object().unwrap() {
        let Some(url) = value.as_str().filter(|v| v.starts_with("http")) else { continue };
        assert!(url.starts_with(&app.base), "{key}: {url}");
        let path = &url[app.base.len()..];
        let get_paths = ["/.well-known/jwks.json", "/docs", "/auth/me", "/auth/sessions", "/auth/revocations"];
        let status = if get_paths.contains(&path) || key == "issuer" {
            app.client.get(url).send().await.unwrap().status()
        } else {
            app.client.post(url).send().await.unwrap().status()
        };
        assert!(![404, 405].contains(&status.as_u16()), "{key} {url}: {status}");
    }
    // The advertised auth methods and algorithms are the ones the endpoints take.
    assert_eq!(
        rfc8414["token_endpoint_auth_methods_supported"],
        json!(["none", "client_secret_basic", "client_secret_post", "private_key_jwt"])
    );
    assert_eq!(
        rfc8414["introspection_endpoint_auth_methods_supported"],
        json!(["client_secret_basic", "client_secret_post", "private_key_jwt"])
    );

    let with_password = spawn_app_with(|s| s.oauth_password_grant = true).await;
    let doc: Value = with_password
        .client
        .get(with_password.url("/.well-known/oauth-authorization-server"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["grant_types_supported"], json!(["refresh_token", "client_credentials", "password"]));
}

#[tokio::test]
async fn the_refresh_grant_rotates_like_auth_refresh_and_a_replay_kills_the_family() {
    let app = spawn_app().await;
    let (_, tokens) = app.user().await;
    let first = tokens.refresh_token.unwrap();

    let resp = refresh_grant(&app, &first).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers().get("cache-control").unwrap(), "no-store");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 900);
    assert_eq!(body["session_id"], tokens.session_id.as_str());
    let second = body["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first);
    let access = body["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["client_id"], "keycard");
    assert_eq!(app.get_authed("/auth/me", access).await.status(), 200);

    // Without client_id (a public client that leaves it out) and through the JSON endpoint:
    // one rotation, one family.
    let resp =
        post_form(&app, "/oauth/token", &[("grant_type", "refresh_token"), ("refresh_token", &second)], None).await;
    assert_eq!(resp.status(), 200);
    let third = resp.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();
    let resp = app.refresh(&third).await;
    assert_eq!(resp.status(), 200);
    let fourth = resp.json::<Value>().await.unwrap()["refresh_token"].as_str().unwrap().to_owned();

    // A replay of a used token: 400 invalid_grant (OAuth's code), and the family is dead.
    oauth_error(refresh_grant(&app, &first).await, 400, "invalid_grant").await;
    oauth_error(refresh_grant(&app, &fourth).await, 400, "invalid_grant").await;
    assert_eq!(app.get_authed("/auth/me", access).await.status(), 401);
    let feed = revocation_feed(&app).await;
    assert!(feed["revocations"].as_array().unwrap().iter().any(|r| r["sid"] == tokens.session_id.as_str()));
}

#[tokio::test]
async fn concurrent_refresh_grants_of_one_token_have_one_winner() {
    let app = spawn_app_with(|s| s.rate_limit_enabled = false).await;
    let (_, tokens) = app.user().await;
    let token = tokens.refresh_token.unwrap();
    let answers = futures::future::join_all((0..20).map(|_| refresh_grant(&app, &token))).await;
    let ok = answers.iter().filter(|r| r.status() == 200).count();
    assert_eq!(ok, 1, "exactly one rotation wins");
    assert!(answers.iter().all(|r| [200, 400].contains(&r.status().as_u16())));
}

#[tokio::test]
async fn token_endpoint_errors_are_rfc_6749s() {
    let app = spawn_app().await;
    let svc = register(&app, "read").await;
    let (_, tokens) = app.user().await;
    let refresh = tokens.refresh_token.unwrap();

    // JSON is not the OAuth wire format.
    let resp = app.post_json("/oauth/token", json!({"grant_type": "refresh_token", "refresh_token": refresh})).await;
    oauth_error(resp, 400, "invalid_request").await;
    oauth_error(post_form(&app, "/oauth/token", &[("refresh_token", &refresh)], None).await, 400, "invalid_request")
        .await;
    let repeated = [("grant_type", "refresh_token"), ("refresh_token", &refresh), ("refresh_token", &refresh)];
    oauth_error(post_form(&app, "/oauth/token", &repeated, None).await, 400, "invalid_request").await;
    let unknown = [("grant_type", "authorization_code"), ("code", "x")];
    oauth_error(post_form(&app, "/oauth/token", &unknown, None).await, 400, "unsupported_grant_type").await;
    // Off by default: OAuth 2.1 drops the password grant.
    let password =
        [("grant_type", "password"), ("username", "a@example.com"), ("password", "x"), ("client_id", "keycard")];
    oauth_error(post_form(&app, "/oauth/token", &password, None).await, 400, "unsupported_grant_type").await;
    oauth_error(refresh_grant(&app, "kcrt_not-a-real-token").await, 400, "invalid_grant").await;
    let scoped = [("grant_type", "refresh_token"), ("refresh_token", &refresh), ("scope", "admin")];
    oauth_error(post_form(&app, "/oauth/token", &scoped, None).await, 400, "invalid_scope").await;
    // The public client cannot get tokens for itself.
    let cc = [("grant_type", "client_credentials"), ("client_id", "keycard")];
    oauth_error(post_form(&app, "/oauth/token", &cc, None).await, 400, "unauthorized_client").await;
    // A registered client presenting a user's refresh token: refused, and the token not spent.
    let theirs = [("grant_type", "refresh_token"), ("refresh_token", &refresh)];
    oauth_error(post_form(&app, "/oauth/token", &theirs, Some(&svc)).await, 400, "invalid_grant").await;
    // Two authentication methods at once.
    let both = [("grant_type", "client_credentials"), ("client_id", &svc.id), ("client_secret", &svc.secret)];
    oauth_error(post_form(&app, "/oauth/token", &both, Some(&svc)).await, 400, "invalid_request").await;
    // A registered client that does not authenticate.
    let bare = [("grant_type", "client_credentials"), ("client_id", &svc.id)];
    oauth_error(post_form(&app, "/oauth/token", &bare, None).await, 401, "invalid_client").await;
    // After all that, the refresh token still rotates: nothing above spent it.
    assert_eq!(refresh_grant(&app, &refresh).await.status(), 200);
}

#[tokio::test]
async fn a_wrong_secret_and_an_unknown_client_get_the_same_answer() {
    let app = spawn_app().await;
    let svc = register(&app, "read").await;
    let wrong = Client { id: svc.id.clone(), secret: "kcs_wrong".into() };
    let unknown = Client { id: "kcc_000000000000000000000000".into(), secret: svc.secret.clone() };
    let mut bodies = Vec::new();
    for c in [&wrong, &unknown] {
        let resp = post_form(&app, "/oauth/token", &[("grant_type", "client_credentials")], Some(c)).await;
        assert_eq!(resp.status(), 401);
        assert_eq!(resp.headers().get("www-authenticate").unwrap(), "Basic realm=\"keycard\"");
        bodies.push(resp.text().await.unwrap());
        let post = [("grant_type", "client_credentials"), ("client_id", &c.id), ("client_secret", &c.secret)];
        oauth_error(post_form(&app, "/oauth/token", &post, None).await, 401, "invalid_client").await;
    }
    assert_eq!(bodies[0], bodies[1]);
    assert!(!bodies[0].contains(&svc.secret) && !bodies[0].contains(&svc.id));
    let failures = events(&app, keycard_store::AuditKind::ClientAuthFailed).await;
    assert_eq!(failures.len(), 4, "each failure is audited");
}

#[tokio::test]
async fn client_credentials_tokens_carry_the_client_and_its_scopes() {
    let app = spawn_app().await;
    let svc = register(&app, "read write").await;

    let body = client_token(&app, &svc, None).await;
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], "read write");
    assert!(body.get("refresh_token").is_none(), "no refresh token for client credentials");
    let token = body["access_token"].as_str().unwrap();
    let c = claims(token);
    assert_eq!(
        (c["sub"].as_str(), c["client_id"].as_str(), c["scope"].as_str()),
        (Some(svc.id.as_str()), Some(svc.id.as_str()), Some("read write"))
    );
    assert!(c["sid"].as_str().unwrap().starts_with("kcg_"));
    // The same through client_secret_post, and narrowed to one scope.
    let post = [
        ("grant_type", "client_credentials"),
        ("client_id", &svc.id),
        ("client_secret", &svc.secret),
        ("scope", "write"),
    ];
    let resp = post_form(&app, "/oauth/token", &post, None).await;
    assert_eq!(resp.status(), 200);
    let narrowed: Value = resp.json().await.unwrap();
    assert_eq!(
        (narrowed["scope"].as_str(), claims(narrowed["access_token"].as_str().unwrap())["scope"].as_str()),
        (Some("write"), Some("write"))
    );
    let beyond = [("grant_type", "client_credentials"), ("scope", "read admin")];
    oauth_error(post_form(&app, "/oauth/token", &beyond, Some(&svc)).await, 400, "invalid_scope").await;

    // A service token is not a user's: keycard's user endpoints refuse it.
    assert_eq!(app.get_authed("/auth/me", token).await.status(), 401);
    let events = events(&app, keycard_store::AuditKind::ClientToken).await;
    assert_eq!(events.len(), 2);
}

#[tokio::test]
async fn introspection_is_for_registered_clients_and_tells_only_live_tokens_apart() {
    let app = spawn_app().await;
    let svc = register(&app, "read").await;
    let (_, tokens) = app.user().await;
    let access = tokens.access_token.clone();

    // The public client, or nobody, may not introspect.
    let public = post_form(&app, "/oauth/introspect", &[("token", &access), ("client_id", "keycard")], None).await;
    oauth_error(public, 401, "invalid_client").await;
    oauth_error(post_form(&app, "/oauth/introspect", &[("token", &access)], None).await, 401, "invalid_client").await;
    oauth_error(post_form(&app, "/oauth/introspect", &[], Some(&svc)).await, 400, "invalid_request").await;

    let live = introspect(&app, &svc, &access).await;
    assert_eq!(live["active"], true);
    assert_eq!(live["sid"], tokens.session_id.as_str());
    assert_eq!((live["client_id"].as_str(), live["token_type"].as_str()), (Some("keycard"), Some("Bearer")));
    for field in ["sub", "exp", "iat", "nbf", "iss", "aud", "jti"] {
        assert!(live.get(field).is_some(), "{field} in {live}");
    }
    let refresh = introspect(&app, &svc, tokens.refresh_token.as_deref().unwrap()).await;
    assert_eq!((refresh["active"].as_bool(), refresh["token_type"].as_str()), (Some(true), Some("refresh_token")));
    let own = client_token(&app, &svc, None).await;
    let own_view = introspect(&app, &svc, own["access_token"].as_str().unwrap()).await;
    assert_eq!((own_view["active"].as_bool(), own_view["scope"].as_str()), (Some(true), Some("read")));

    // Malformed, unknown, forged: only `active: false`.
    let mut forged = access.clone();
    forged.pop();
    forged.push(if access.ends_with('A') { 'B' } else { 'A' });
    for junk in ["garbage", "kcrt_unknown", "a.b.c", forged.as_str()] {
        assert_eq!(introspect(&app, &svc, junk).await, json!({"active": false}), "{junk}");
    }
    // Revoked: logout ends the session.
    let resp = app.client.post(app.url("/auth/logout")).bearer_auth(&access).json(&json!({})).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(introspect(&app, &svc, &access).await, json!({"active": false}));
    assert_eq!(introspect(&app, &svc, tokens.refresh_token.as_deref().unwrap()).await, json!({"active": false}));
    // Expired: the clock moves past the lifetime and the leeway.
    app.advance(900.0 + 31.0);
    assert_eq!(introspect(&app, &svc, own["access_token"].as_str().unwrap()).await, json!({"active": false}));
    let events = events(&app, keycard_store::AuditKind::TokenIntrospected).await;
    assert!(events.len() >= 9);
}

#[tokio::test]
async fn revocation_ends_the_session_or_grant_of_the_token_and_says_200_for_anything_else() {
    let app = spawn_app().await;
    let svc = register(&app, "read").await;
    let other = register(&app, "read").await;

    // A refresh token: its session (family) ends, on the feed.
    let (_, tokens) = app.user().await;
    let refresh = tokens.refresh_token.clone().unwrap();
    let resp = post_form(
        &app,
        "/oauth/revoke",
        &[("token", &refresh), ("token_type_hint", "refresh_token"), ("client_id", "keycard")],
        None,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert!(resp.text().await.unwrap().is_empty());
    oauth_error(refresh_grant(&app, &refresh).await, 400, "invalid_grant").await;
    assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 401);

    // An access token: its session ends.
    let (_, tokens) = app.user().await;
    let resp = post_form(&app, "/oauth/revoke", &[("token", &tokens.access_token)], None).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 401);
    let feed = revocation_feed(&app).await;
    let revoked: Vec<&str> = feed["revocations"].as_array().unwrap().iter().filter_map(|r| r["sid"].as_str()).collect();
    assert!(revoked.contains(&tokens.session_id.as_str()));

    // Another client cannot revoke a user's tokens, nor a client another's.
    let (_, tokens) = app.user().await;
    assert_eq!(post_form(&app, "/oauth/revoke", &[("token", &tokens.access_token)], Some(&svc)).await.status(), 200);
    assert_eq!(app.get_authed("/auth/me", &tokens.access_token).await.status(), 200, "not svc's token");
    let own = client_token(&app, &svc, None).await;
    let own_token = own["access_token"].as_str().unwrap();
    assert_eq!(post_form(&app, "/oauth/revoke", &[("token", own_token)], Some(&other)).await.status(), 200);
    assert_eq!(introspect(&app, &other, own_token).await["active"], true, "not other's token");
    assert_eq!(post_form(&app, "/oauth/revoke", &[("token", own_token)], None).await.status(), 200);
    assert_eq!(introspect(&app, &other, own_token).await["active"], true, "not the public client's token");
    // Its owner can: the grant is on the feed and a new token gets a new grant.
    assert_eq!(post_form(&app, "/oauth/revoke", &[("token", own_token)], Some(&svc)).await.status(), 200);
    assert_eq!(introspect(&app, &other, own_token).await, json!({"active": false}));
    let sid = claims(own_token)["sid"].as_str().unwrap().to_owned();
    let feed = revocation_feed(&app).await;
    assert!(feed["revocations"].as_array().unwrap().iter().any(|r| r["sid"] == sid.as_str()));
    let fresh = client_token(&app, &svc, None).await;
    assert_ne!(claims(fresh["access_token"].as_str().unwrap())["sid"], sid.as_str());
    assert_eq!(introspect(&app, &other, fresh["access_token"].as_str().unwrap()).await["active"], true);

    // Unknown and malformed tokens: 200, as RFC 7009 §2.2 says; a missing token is a bad request;
    // a wrong secret is still 401.
    for junk in ["garbage", "kcrt_unknown", "a.b.c"] {
        assert_eq!(post_form(&app, "/oauth/revoke", &[("token", junk)], None).await.status(), 200);
    }
    oauth_error(
        post_form(&app, "/oauth/revoke", &[("token_type_hint", "access_token")], None).await,
        400,
        "invalid_request",
    )
    .await;
    let wrong = Client { id: svc.id.clone(), secret: "nope".into() };
    oauth_error(post_form(&app, "/oauth/revoke", &[("token", own_token)], Some(&wrong)).await, 401, "invalid_client")
        .await;
    let events = events(&app, keycard_store::AuditKind::TokenRevoked).await;
    assert_eq!(events.len(), 3, "three revocations happened");
}

#[tokio::test]
async fn a_rotated_secret_replaces_the_old_one_and_removal_revokes_the_clients_tokens() {
    let app = spawn_app().await;
    let svc = register(&app, "read").await;
    let watcher = register(&app, "read").await;
    let token = client_token(&app, &svc, None).await["access_token"].as_str().unwrap().to_owned();

    let secret = oauth::rotate_client_secret(app.store().as_ref(), &svc.id, app.now()).await.unwrap();
    let old = [("grant_type", "client_credentials")];
    oauth_error(post_form(&app, "/oauth/token", &old, Some(&svc)).await, 401, "invalid_client").await;
    let rotated = Client { id: svc.id.clone(), secret };
    client_token(&app, &rotated, None).await;
    assert_eq!(introspect(&app, &watcher, &token).await["active"], true, "issued tokens outlive a rotation");

    oauth::remove_client(app.store().as_ref(), &svc.id, app.now()).await.unwrap();
    assert_eq!(introspect(&app, &watcher, &token).await, json!({"active": false}));
    oauth_error(post_form(&app, "/oauth/token", &old, Some(&rotated)).await, 401, "invalid_client").await;
    let sid = claims(&token)["sid"].as_str().unwrap().to_owned();
    let feed = revocation_feed(&app).await;
    assert!(feed["revocations"].as_array().unwrap().iter().any(|r| r["sid"] == sid.as_str()));
}

/// A `private_key_jwt` client with an Ed25519 key.
struct KeyClient {
    id: String,
    key: jsonwebtoken::EncodingKey,
}

async fn register_key_client(app: &TestApp) -> KeyClient {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    let x = URL_SAFE_NO_PAD.encode(pair.public_key().as_ref());
    let jwks = json!({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "k1", "alg": "EdDSA"}]}).to_string();
    let registered =
        oauth::register_client(app.store().as_ref(), "signer", &["read".to_owned()], Some(&jwks), app.now())
            .await
            .unwrap();
    assert!(registered.secret.is_none());
    KeyClient { id: registered.client.id, key: jsonwebtoken::EncodingKey::from_ed_der(pkcs8.as_ref()) }
}

fn assertion(c: &KeyClient, aud: &str, exp: i64, jti: &str) -> String {
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let claims = json!({"iss": c.id, "sub": c.id, "aud": aud, "exp": exp, "jti": jti});
    jsonwebtoken::encode(&header, &claims, &c.key).unwrap()
}

#[tokio::test]
async fn private_key_jwt_assertions_are_checked_and_single_use() {
    let app = spawn_app().await;
    let c = register_key_client(&app).await;
    let token_url = app.url("/oauth/token");
    let send = |jwt: String| {
        let app = &app;
        async move {
            let params = [
                ("grant_type", "client_credentials"),
                ("client_assertion_type", oauth::JWT_BEARER),
                ("client_assertion", jwt.as_str()),
            ];
            post_form(app, "/oauth/token", &params, None).await
        }
    };

    let now = app.now();
    let good = assertion(&c, &token_url, now + 60, "j1");
    let resp = send(good.clone()).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(claims(body["access_token"].as_str().unwrap())["sub"], c.id.as_str());
    // The issuer is an accepted audience too.
    assert_eq!(send(assertion(&c, &app.base, now + 60, "j2")).await.status(), 200);

    oauth_error(send(good).await, 401, "invalid_client").await; // replayed
    oauth_error(send(assertion(&c, "https://elsewhere.example/token", now + 60, "j3")).await, 401, "invalid_client")
        .await;
    oauth_error(send(assertion(&c, &token_url, now + 7200, "j4")).await, 401, "invalid_client").await; // too long-lived
    let stranger = register_key_client(&app).await;
    let forged = KeyClient { id: c.id.clone(), key: stranger.key };
    oauth_error(send(assertion(&forged, &token_url, now + 60, "j5")).await, 401, "invalid_client").await;
    // Expired by the server's clock.
    let soon = assertion(&c, &token_url, now + 10, "j6");
    app.advance(10.0 + 31.0);
    oauth_error(send(soon).await, 401, "invalid_client").await;
    // The wrong assertion type.
    let params = [
        ("grant_type", "client_credentials"),
        ("client_assertion_type", "urn:example:other"),
        ("client_assertion", "x.y.z"),
    ];
    oauth_error(post_form(&app, "/oauth/token", &params, None).await, 400, "invalid_request").await;

    // Five failures from this address: even a good assertion now waits (backoff), until the
    // clock moves on.
    let later = app.now();
    let headers = assert_error(send(assertion(&c, &token_url, later + 60, "j7")).await, 429, "rate_limited").await;
    assert!(headers.get("retry-after").is_some());
    app.advance(301.0);
    assert_eq!(send(assertion(&c, &token_url, app.now() + 60, "j8")).await.status(), 200);
}

#[tokio::test]
async fn the_password_grant_signs_in_when_enabled() {
    let app = spawn_app_with(|s| s.oauth_password_grant = true).await;
    let email = "pw-grant@example.com";
    app.signup(email).await;
    let params = [("grant_type", "password"), ("username", email), ("password", PASSWORD), ("client_id", "keycard")];
    let resp = post_form(&app, "/oauth/token", &params, None).await;
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert!(body["refresh_token"].as_str().unwrap().starts_with("kcrt_"));
    assert_eq!(app.get_authed("/auth/me", body["access_token"].as_str().unwrap()).await.status(), 200);
    let wrong =
        [("grant_type", "password"), ("username", email), ("password", "not it at all"), ("client_id", "keycard")];
    oauth_error(post_form(&app, "/oauth/token", &wrong, None).await, 400, "invalid_grant").await;
    let svc = register(&app, "read").await;
    oauth_error(post_form(&app, "/oauth/token", &params[..3], Some(&svc)).await, 400, "unauthorized_client").await;
}
