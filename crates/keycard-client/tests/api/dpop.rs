//! DPoP (RFC 9449, issue 19): a client whose session is bound to its key, against the real
//! keycard and keycard-verify's example resource server (DPoP on, over HTTP). A "spy" server the
//! client calls records what goes over the wire: the proofs' contents, and the access token a
//! thief would copy, which is then refused everywhere without the key.

use std::path::Path;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use keycard_client::{
    ClientError, DpopAlg, DpopKey, DpopKeyError, DpopKeySource, LogoutScope, MfaAnswer, ServiceClient,
};
use keycard_core::clock::Clock;
use keycard_core::dpop::access_token_hash;
use keycard_core::keys::KeyAlg;
use keycard_verify::{DpopOptions, Verifier};
use serde_json::{Value, json};

use crate::helpers::{Keycard, PASSWORD, start_keycard, start_keycard_with};

/// One request as the server it was sent to saw it.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    path_and_query: String,
    authorization: Option<String>,
    proofs: Vec<String>,
}

impl Seen {
    /// The access token of `Authorization: DPoP <token>`.
    fn dpop_token(&self) -> String {
        let value = self.authorization.as_deref().expect("an Authorization header");
        value.strip_prefix("DPoP ").unwrap_or_else(|| panic!("not the DPoP scheme: {}", &value[..10])).to_owned()
    }

    /// The one proof.
    fn proof(&self) -> &str {
        assert_eq!(self.proofs.len(), 1, "exactly one DPoP header");
        &self.proofs[0]
    }
}

/// A server that answers `{"ok": true}` to anything, with `DPoP-Nonce: spy-N` (N: the requests
/// so far), and records what it received.
struct Spy {
    base: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

async fn start_spy() -> Spy {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    let app = axum::Router::new().fallback(move |request: axum::extract::Request| {
        let record = record.clone();
        async move {
            let header = |name: &str| -> Vec<String> {
                request.headers().get_all(name).iter().map(|v| v.to_str().unwrap().to_owned()).collect()
            };
            let mut seen = record.lock().unwrap();
            seen.push(Seen {
                method: request.method().to_string(),
                path_and_query: request.uri().path_and_query().unwrap().to_string(),
                authorization: header("authorization").pop(),
                proofs: header("dpop"),
            });
            ([("dpop-nonce", format!("spy-{}", seen.len()))], axum::Json(json!({"ok": true})))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    Spy { base, seen }
}

impl Spy {
    fn last(&self) -> Seen {
        self.seen.lock().unwrap().last().cloned().expect("a request reached the spy")
    }
}

/// keycard-verify's example resource server, DPoP on, its public origin its own address.
async fn start_api(keycard: &Keycard) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let verifier = Verifier::builder(&keycard.base, "keycard")
        .dpop(DpopOptions::new().public_origin(&base))
        .build()
        .await
        .unwrap();
    let app = crate::resource_server::app(verifier);
    tokio::spawn(async move { axum::serve(listener, app).await });
    base
}

/// The JSON of part `index` (0 header, 1 payload) of a JWT.
fn jwt_part(jwt: &str, index: usize) -> Value {
    let part = jwt.split('.').nth(index).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

/// A request to keycard's `/auth/me` with this `Authorization` and these proofs, from outside
/// any keycard client (a thief's curl).
async fn me_with(keycard: &Keycard, authorization: &str, proofs: &[&str]) -> (u16, String, Value) {
    let mut request =
        reqwest::Client::new().get(format!("{}/auth/me", keycard.base)).header("authorization", authorization);
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let challenge = response.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_owned());
    (status, challenge.unwrap_or_default(), response.json().await.unwrap_or(Value::Null))
}

fn dpop_client(keycard: &Keycard, key: DpopKeySource) -> keycard_client::ClientBuilder {
    keycard.client().dpop(key)
}

#[tokio::test]
async fn a_dpop_login_binds_the_session_and_every_call_carries_a_fresh_proof() {
    let keycard = start_keycard().await;
    let spy = start_spy().await;
    let client = keycard.logged_in_with("dpop@example.com", dpop_client(&keycard, DpopKeySource::generate())).await;
    let jkt = client.dpop_jkt().expect("a DPoP client has a key");
    assert_eq!(client.me().await.unwrap().email, "dpop@example.com");

    // What the client sends to an API: the token in the DPoP scheme, bound to the key, with a
    // proof for this very request (htu without the query) and token.
    let _: Value = client.get_json(&format!("{}/orders?page=2", spy.base)).await.unwrap();
    let seen = spy.last();
    assert_eq!((seen.method.as_str(), seen.path_and_query.as_str()), ("GET", "/orders?page=2"));
    let token = seen.dpop_token();
    assert_eq!(jwt_part(&token, 1)["cnf"], json!({"jkt": jkt}), "the access token is bound to the key");
    let (header, claims) = (jwt_part(seen.proof(), 0), jwt_part(seen.proof(), 1));
    assert_eq!((header["typ"].as_str(), header["alg"].as_str()), (Some("dpop+jwt"), Some("EdDSA")), "{header}");
    assert_eq!(header["jwk"]["crv"], "Ed25519");
    assert!(header["jwk"].get("d").is_none(), "the public key only: {header}");
    assert_eq!(claims["htm"], "GET");
    assert_eq!(claims["htu"], format!("{}/orders", spy.base));
    assert_eq!(claims["ath"], access_token_hash(&token));
    assert_eq!(claims["iat"], keycard.clock.now(), "iat by the client's clock");
    assert!(claims.get("nonce").is_none(), "the spy had handed out no nonce yet");
    let first_jti = claims["jti"].as_str().unwrap().to_owned();

    let _: Value = client.post_json(&format!("{}/orders", spy.base), &json!({"item": 1})).await.unwrap();
    let claims = jwt_part(spy.last().proof(), 1);
    assert_eq!(
        (claims["htm"].as_str(), claims["htu"].as_str()),
        (Some("POST"), Some(&*format!("{}/orders", spy.base)))
    );
    assert_ne!(claims["jti"].as_str().unwrap(), first_jti, "a fresh proof for each request");
    assert_eq!(claims["nonce"], "spy-1", "the nonce of the origin's last answer (a success) is used");

    // The login itself was bound: keycard's own routes take the token with proofs only.
    let sessions: Value = client.get_json("/auth/sessions").await.unwrap();
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    let shown = format!("{client:?}");
    assert!(shown.contains(&jkt) && !shown.contains("eyJ"), "Debug shows the thumbprint, no token: {shown}");

    client.logout(LogoutScope::Local).await.unwrap();
    assert_eq!(keycard.audit_count("logout").await, 1, "the logout (with its proof) reached keycard");
    assert!(matches!(client.me().await, Err(ClientError::NotLoggedIn)));
}

#[tokio::test]
async fn a_stolen_access_token_is_refused_without_the_key() {
    let keycard = start_keycard().await;
    let api = start_api(&keycard).await;
    let spy = start_spy().await;
    let client = keycard.logged_in_with("victim@example.com", dpop_client(&keycard, DpopKeySource::generate())).await;
    // A compromised service the client calls keeps what it was sent.
    let _: Value = client.get_json(&format!("{}/anything", spy.base)).await.unwrap();
    let stolen = spy.last();
    let token = stolen.dpop_token();

    // At keycard: as a Bearer token, without a proof, with the proof made for the spy, with a
    // proof of the thief's own key.
    let (status, challenge, body) = me_with(&keycard, &format!("Bearer {token}"), &[]).await;
    assert_eq!((status, body["error"].as_str()), (401, Some("invalid_token")), "as Bearer: {body}");
    assert!(challenge.contains("invalid_token"), "{challenge}");
    let dpop = format!("DPoP {token}");
    let thief = DpopKey::generate(KeyAlg::EdDsa).unwrap();
    let theirs =
        thief.proof("GET", &format!("{}/auth/me", keycard.base), Some(&token), None, keycard.clock.now()).unwrap();
    for (why, proofs) in
        [("no proof", vec![]), ("the spied proof", vec![stolen.proof()]), ("the thief's key", vec![&*theirs])]
    {
        let (status, challenge, body) = me_with(&keycard, &dpop, &proofs).await;
        assert_eq!((status, body["error"].as_str()), (401, Some("invalid_dpop_proof")), "{why}: {body}");
        assert!(challenge.starts_with("DPoP "), "{why}: {challenge}");
    }

    // At a keycard-verify resource server: the same.
    let http = reqwest::Client::new();
    let url = format!("{api}/api/hello");
    let bearer = http.get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(bearer.status(), 401, "a bound token is never accepted as Bearer");
    let theirs = thief.proof("GET", &url, Some(&token), None, keycard_core::now_unix()).unwrap();
    for (why, proofs) in [("no proof", vec![]), ("the thief's key", vec![&*theirs])] {
        let mut request = http.get(&url).header("authorization", &dpop);
        for proof in proofs {
            request = request.header("dpop", proof);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 401, "{why}");
        let challenge = response.headers()["www-authenticate"].to_str().unwrap();
        assert!(challenge.starts_with("DPoP error=\"invalid_dpop_proof\""), "{why}: {challenge}");
    }

    // The rightful client, with its key, goes on.
    let hello: Value = client.get_json(&url).await.unwrap();
    assert!(hello["hello"].is_string(), "{hello}");
}

#[tokio::test]
async fn a_keycard_verify_resource_server_accepts_the_dpop_client_and_its_refreshed_tokens() {
    let keycard = start_keycard().await;
    let api = start_api(&keycard).await;
    let client =
        keycard.logged_in_with("api@example.com", dpop_client(&keycard, DpopKeySource::Generate(DpopAlg::Es256))).await;
    let jkt = client.dpop_jkt().unwrap();
    let claims: Value = client.get_json(&format!("{api}/api/claims")).await.unwrap();
    assert_eq!(claims["cnf"]["jkt"], jkt, "{claims}");
    let first_jti = claims["jti"].clone();

    // The refresh rotates; the new access token is bound to the same key, and accepted with it.
    let session = client.session_id().await;
    client.refresh().await.unwrap();
    assert_eq!(client.stats().refreshes, 1);
    assert_eq!(client.session_id().await, session);
    let claims: Value = client.get_json(&format!("{api}/api/claims")).await.unwrap();
    assert_ne!(claims["jti"], first_jti, "a new access token");
    assert_eq!(claims["cnf"]["jkt"], jkt, "still bound to the key: {claims}");
    assert_eq!(client.me().await.unwrap().email, "api@example.com");
    assert_eq!(keycard.audit_count("refresh").await, 1);
    assert_eq!(keycard.audit_count("dpop_mismatch").await, 0, "the refresh carried the right key's proof");
    assert_eq!(client.stats().dpop_nonce_retries, 0);
}

#[tokio::test]
async fn the_second_factor_and_step_up_keep_the_session_bound() {
    let keycard = start_keycard().await;
    let spy = start_spy().await;
    let user = crate::mfa::enrol(&keycard, "dpop-mfa@example.com").await;
    let client = dpop_client(&keycard, DpopKeySource::generate()).build().unwrap();
    let answer = MfaAnswer::Code(crate::mfa::code(&keycard, &user.app));
    client
        .login_with_mfa(&user.email, PASSWORD, |_| {
            let answer = answer.clone();
            async move { Ok(answer) }
        })
        .await
        .unwrap();
    let _: Value = client.get_json(&spy.base).await.unwrap();
    let first = spy.last().dpop_token();
    assert_eq!(jwt_part(&first, 1)["cnf"]["jkt"], client.dpop_jkt().unwrap(), "the second step bound the session");

    keycard.advance(11 * 60_000);
    let path = format!("/auth/mfa/factors/{}", user.factor_id);
    assert!(client.send(client.delete(&path)).await.unwrap_err().is_step_up_required());
    client.step_up(MfaAnswer::Code(crate::mfa::code(&keycard, &user.app))).await.unwrap();
    let _: Value = client.get_json(&spy.base).await.unwrap();
    let stepped = spy.last().dpop_token();
    assert_ne!(stepped, first, "the step-up's token replaced the first");
    assert_eq!(jwt_part(&stepped, 1)["cnf"]["jkt"], client.dpop_jkt().unwrap(), "still bound");
    let response = client.send(client.delete(&path)).await.unwrap();
    assert_eq!(response.status(), 204);
}

#[tokio::test]
async fn nonces_asked_for_are_used_and_a_refused_request_is_sent_once_more() {
    let keycard = start_keycard_with(|s| s.dpop_nonce = true).await;
    // Signed up by another client: the DPoP client's first request is its login, whose proof
    // has no nonce to carry yet.
    keycard.client().build().unwrap().signup("nonce@example.com", PASSWORD).await.unwrap();
    let client = dpop_client(&keycard, DpopKeySource::generate()).build().unwrap();
    client.login("nonce@example.com", PASSWORD).await.unwrap();
    // The login was refused once (400 use_dpop_nonce) and sent again with the nonce.
    assert_eq!(client.stats().dpop_nonce_retries, 1);
    assert_eq!(keycard.audit_count("login").await, 1);
    // The nonce is known now: no more refusals.
    assert_eq!(client.me().await.unwrap().email, "nonce@example.com");
    assert_eq!(client.stats().dpop_nonce_retries, 1);

    // Ten minutes on, that nonce is too old: /auth/me answers 401 with a DPoP challenge asking
    // for the new one, which the client sends.
    keycard.advance(600_000);
    assert_eq!(client.me().await.unwrap().email, "nonce@example.com");
    assert_eq!(client.stats().dpop_nonce_retries, 2);

    // Ten more: the access token is due, and so is a new nonce; the refresh is asked for it.
    keycard.advance(600_000);
    assert_eq!(client.me().await.unwrap().email, "nonce@example.com");
    assert_eq!(client.stats().refreshes, 1);
    assert_eq!(client.stats().dpop_nonce_retries, 3);
    assert_eq!(keycard.audit_count("refresh").await, 1);

    // A service's client-credentials request is asked for a nonce too.
    let registered = keycard.register_client("svc-nonce", "read").await;
    let service = ServiceClient::builder(&registered.id, &registered.secret)
        .issuer(&keycard.base)
        .clock(keycard.clock.clone())
        .dpop(DpopKeySource::generate())
        .build()
        .unwrap();
    let token = service.token().await.unwrap();
    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(service.stats().dpop_nonce_retries, 1);
    assert_eq!(service.stats().token_requests, 1, "one token request, sent twice on the wire");
}

#[tokio::test]
async fn a_service_gets_bound_client_credentials_tokens_and_sends_them_with_proofs() {
    let keycard = start_keycard().await;
    let api = start_api(&keycard).await;
    let registered = keycard.register_client("svc-dpop", "read").await;
    let service = ServiceClient::builder(&registered.id, &registered.secret)
        .issuer(&keycard.base)
        .clock(keycard.clock.clone())
        .dpop(DpopKeySource::generate())
        .build()
        .unwrap();
    let jkt = service.dpop_jkt().unwrap();
    let token = service.token().await.unwrap();
    assert_eq!(token.token_type(), "DPoP");
    assert_eq!(jwt_part(token.as_str(), 1)["cnf"]["jkt"], jkt);
    assert!(format!("{service:?}").contains(&jkt));

    let http = reqwest::Client::new();
    let url = format!("{api}/api/claims");
    let claims: Value = service.send(http.get(&url)).await.unwrap().json().await.unwrap();
    assert_eq!((claims["sub"].as_str(), &claims["cnf"]["jkt"]), (Some(registered.id.as_str()), &json!(jkt)));

    // With another HTTP stack: a proof from dpop_proof, good once.
    let proof = service.dpop_proof(&reqwest::Method::GET, &url, &token).unwrap().unwrap();
    let send = |proof: &str| {
        http.get(&url).header("authorization", format!("DPoP {}", token.as_str())).header("dpop", proof).send()
    };
    assert_eq!(send(&proof).await.unwrap().status(), 200);
    let replayed = send(&proof).await.unwrap();
    assert_eq!(replayed.status(), 401, "a proof is good once");
    assert!(replayed.headers()["www-authenticate"].to_str().unwrap().starts_with("DPoP error=\"invalid_dpop_proof\""));
    // Without the key, as Bearer: refused.
    assert_eq!(http.get(&url).bearer_auth(token.as_str()).send().await.unwrap().status(), 401);
    // A service without DPoP gets Bearer tokens, as before.
    let plain = ServiceClient::builder(&registered.id, &registered.secret).issuer(&keycard.base).build().unwrap();
    assert_eq!(plain.token().await.unwrap().token_type(), "Bearer");
    assert_eq!(plain.dpop_proof(&reqwest::Method::GET, &url, &token).unwrap(), None);
}

/// Writes `text` to `dir/name`.
fn write(dir: &Path, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_key_file_round_trips_and_the_session_is_bound_to_that_key() {
    let keycard = start_keycard().await;
    let spy = start_spy().await;
    let dir = tempfile::tempdir().unwrap();
    for (alg, name) in [(KeyAlg::EdDsa, "ed25519.pem"), (KeyAlg::Es256, "p256.pem")] {
        let key = DpopKey::generate(alg).unwrap();
        let path = write(dir.path(), name, &key.to_pkcs8_pem());
        let email = format!("file-{name}@example.com");
        let client = keycard.logged_in_with(&email, dpop_client(&keycard, DpopKeySource::pem_file(&path))).await;
        assert_eq!(client.dpop_jkt(), Some(key.jkt()), "{name}: the key read is the key written");
        let _: Value = client.get_json(&spy.base).await.unwrap();
        let token = spy.last().dpop_token();
        assert_eq!(jwt_part(&token, 1)["cnf"]["jkt"], key.jkt());
        // The session is bound to that very key: a proof made with the original (outside the
        // client) is accepted with the client's token.
        let proof =
            key.proof("GET", &format!("{}/auth/me", keycard.base), Some(&token), None, keycard.clock.now()).unwrap();
        let (status, _, body) = me_with(&keycard, &format!("DPoP {token}"), &[&proof]).await;
        assert_eq!((status, body["email"].as_str()), (200, Some(email.as_str())), "{name}: {body}");
        let shown = format!("{client:?}");
        let pem = key.to_pkcs8_pem();
        assert!(pem.lines().filter(|l| !l.starts_with("-----")).all(|l| !shown.contains(l)), "{shown}");
    }
}

#[test]
fn a_missing_unreadable_or_bad_key_file_is_a_typed_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let key = DpopKey::generate(KeyAlg::Es256).unwrap();
    let pem = key.to_pkcs8_pem();
    let body_lines: Vec<&str> = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let missing = dir.path().join("missing.pem");
    let cases = [
        ("missing", missing.clone(), true),
        ("a directory", dir.path().to_path_buf(), true),
        ("not PEM", write(dir.path(), "text.pem", "hello, I am not a key\n"), false),
        ("a public key", write(dir.path(), "public.pem", &pem.replace("PRIVATE KEY", "PUBLIC KEY")), false),
        (
            "a damaged key",
            write(dir.path(), "damaged.pem", &pem.replace(body_lines[0], &"A".repeat(body_lines[0].len()))),
            false,
        ),
        (
            "a private key block of garbage",
            write(dir.path(), "blob.pem", "-----BEGIN PRIVATE KEY-----\nQUFBQUFBQUFB\n-----END PRIVATE KEY-----\n"),
            false,
        ),
    ];
    for (why, path, unreadable) in cases {
        for error in [
            keycard_client::Client::builder("http://127.0.0.1:9")
                .dpop(DpopKeySource::pem_file(&path))
                .build()
                .unwrap_err(),
            ServiceClient::builder("svc", "secret")
                .token_endpoint("http://127.0.0.1:9/oauth/token")
                .dpop(DpopKeySource::pem_file(&path))
                .build()
                .unwrap_err(),
        ] {
            let text = error.to_string();
            assert!(text.contains(&path.display().to_string()), "{why}: names the file: {text}");
            for line in &body_lines {
                assert!(!text.contains(line) && !format!("{error:?}").contains(line), "{why}: key bytes in {text}");
            }
            assert!(!text.contains("QUFBQUFB"), "{why}: {text}");
            match error {
                ClientError::DpopKey(DpopKeyError::Unreadable { path: named, .. }) if unreadable => {
                    assert_eq!(named, path, "{why}")
                }
                ClientError::DpopKey(DpopKeyError::Invalid { path: named, .. }) if !unreadable => {
                    assert_eq!(named, path, "{why}")
                }
                other => panic!("{why}: {other:?}"),
            }
        }
    }
}
