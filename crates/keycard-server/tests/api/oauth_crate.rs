//! keycard's OAuth endpoints driven by the Rust `oauth2` crate (a library keycard did not write):
//! the refresh grant with a replay refused and its family dead, client credentials, revocation.
//! Over HTTPS: the crate refuses to revoke over plain HTTP (RFC 7009 §2 requires TLS).

use oauth2::basic::{BasicClient, BasicErrorResponseType};
use oauth2::{
    ClientId, ClientSecret, HttpRequest, HttpResponse, RefreshToken, RequestTokenError, RevocationUrl, Scope,
    StandardRevocableToken, TokenResponse as _, TokenUrl,
};

use serde_json::{Value, json};

use crate::helpers::*;

/// A keycard serving HTTPS (a self-signed `localhost` certificate), and a client trusting it.
struct Tls {
    app: TestApp,
    http: reqwest::Client,
    base: String,
    _certs: tempfile::TempDir,
}

impl Tls {
    async fn start() -> Self {
        let certs = tempfile::tempdir().unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
        let (cert_path, key_path) = (certs.path().join("cert.pem"), certs.path().join("key.pem"));
        std::fs::write(&cert_path, cert.cert.pem()).unwrap();
        std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
        let app = spawn_app_with(|s| {
            s.tls_cert = Some(cert_path.display().to_string());
            s.tls_key = Some(key_path.display().to_string());
        })
        .await;
        let port = app.addr.port();
        let http = reqwest::Client::builder()
            .add_root_certificate(reqwest::Certificate::from_pem(cert.cert.pem().as_bytes()).unwrap())
            .resolve("localhost", app.addr)
            .build()
            .unwrap();
        Self { app, http, base: format!("https://localhost:{port}"), _certs: certs }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// A new user's login: (access token, refresh token).
    async fn user(&self) -> (String, String) {
        let email = format!("{}@example.com", uuid::Uuid::new_v4().simple());
        let body = json!({"email": email, "password": PASSWORD});
        assert_eq!(self.http.post(self.url("/auth/signup")).json(&body).send().await.unwrap().status(), 201);
        let body = json!({"email": email, "password": PASSWORD, "delivery": "body"});
        let tokens: Value =
            self.http.post(self.url("/auth/login")).json(&body).send().await.unwrap().json().await.unwrap();
        (tokens["access_token"].as_str().unwrap().to_owned(), tokens["refresh_token"].as_str().unwrap().to_owned())
    }

    async fn me(&self, access: &str) -> u16 {
        self.http.get(self.url("/auth/me")).bearer_auth(access).send().await.unwrap().status().as_u16()
    }
}

/// The crate's async HTTP client over the workspace's reqwest.
async fn send(http: reqwest::Client, request: HttpRequest) -> Result<HttpResponse, reqwest::Error> {
    let (parts, body) = request.into_parts();
    let response = http.request(parts.method, parts.uri.to_string()).headers(parts.headers).body(body).send().await?;
    let mut builder = oauth2::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        builder = builder.header(name, value);
    }
    Ok(builder.body(response.bytes().await?.to_vec()).expect("a response from its parts"))
}

#[tokio::test]
async fn the_oauth2_crate_refreshes_and_a_replay_is_refused_with_the_family_dead() {
    let tls = Tls::start().await;
    let http = |request: HttpRequest| send(tls.http.clone(), request);
    let (_, refresh) = tls.user().await;
    let public = BasicClient::new(ClientId::new("keycard".into()))
        .set_token_uri(TokenUrl::new(tls.url("/oauth/token")).unwrap())
        .set_revocation_url(RevocationUrl::new(tls.url("/oauth/revoke")).unwrap());

    let first = RefreshToken::new(refresh);
    let rotated = public.exchange_refresh_token(&first).request_async(&http).await.expect("the refresh grant");
    let second = rotated.refresh_token().expect("a new refresh token").clone();
    assert_ne!(second.secret(), first.secret());
    assert_eq!(tls.me(rotated.access_token().secret()).await, 200);

    match public.exchange_refresh_token(&first).request_async(&http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant),
        other => panic!("a replay must be invalid_grant: {other:?}"),
    }
    // The family is dead: the newest refresh token and access token too.
    match public.exchange_refresh_token(&second).request_async(&http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), BasicErrorResponseType::InvalidGrant),
        other => panic!("the family must be revoked: {other:?}"),
    }
    assert_eq!(tls.me(rotated.access_token().secret()).await, 401);

    // Revocation of a live refresh token ends its session.
    let (access, refresh) = tls.user().await;
    let live = RefreshToken::new(refresh);
    public
        .revoke_token(StandardRevocableToken::RefreshToken(live.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    assert!(public.exchange_refresh_token(&live).request_async(&http).await.is_err());
    assert_eq!(tls.me(&access).await, 401);
}

#[tokio::test]
async fn the_oauth2_crate_gets_client_credentials_tokens_and_revokes_them() {
    let tls = Tls::start().await;
    let app = &tls.app;
    let http = |request: HttpRequest| send(tls.http.clone(), request);
    let registered = keycard_server::oauth::register_client(
        app.store().as_ref(),
        "reports",
        &["reports:read reports:write".to_owned()],
        None,
        app.now(),
    )
    .await
    .unwrap();
    let service = BasicClient::new(ClientId::new(registered.client.id.clone()))
        .set_client_secret(ClientSecret::new(registered.secret.unwrap()))
        .set_token_uri(TokenUrl::new(tls.url("/oauth/token")).unwrap())
        .set_revocation_url(RevocationUrl::new(tls.url("/oauth/revoke")).unwrap());

    let token = service
        .exchange_client_credentials()
        .add_scope(Scope::new("reports:read".into()))
        .request_async(&http)
        .await
        .expect("client credentials");
    assert!(token.refresh_token().is_none());
    let scopes: Vec<&str> = token.scopes().unwrap().iter().map(|s| s.as_str()).collect();
    assert_eq!(scopes, ["reports:read"]);

    match service.exchange_client_credentials().add_scope(Scope::new("admin".into())).request_async(&http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), BasicErrorResponseType::InvalidScope),
        other => panic!("an unregistered scope must be invalid_scope: {other:?}"),
    }
    let wrong = service.clone().set_client_secret(ClientSecret::new("kcs_wrong".into()));
    match wrong.exchange_client_credentials().request_async(&http).await {
        Err(RequestTokenError::ServerResponse(e)) => assert_eq!(*e.error(), BasicErrorResponseType::InvalidClient),
        other => panic!("a wrong secret must be invalid_client: {other:?}"),
    }

    // Revoked by its owner: introspection (by another client) finds it inactive.
    let access = token.access_token().clone();
    service
        .revoke_token(StandardRevocableToken::AccessToken(access.clone()))
        .unwrap()
        .request_async(&http)
        .await
        .unwrap();
    let watcher =
        keycard_server::oauth::register_client(app.store().as_ref(), "watcher", &[], None, app.now()).await.unwrap();
    let resp = tls
        .http
        .post(tls.url("/oauth/introspect"))
        .basic_auth(&watcher.client.id, watcher.secret.as_deref())
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("token={}", access.secret()))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"active": false}));
}
