//! `GET /openapi.json` is a valid OpenAPI 3.1 document of exactly the routes the server serves,
//! with request bodies, error responses (`ErrorBody`, the codes of SPEC.md) and the bearer scheme;
//! `GET /docs` serves the interactive reference (vendored Swagger UI) with no external asset.

use std::collections::{BTreeMap, BTreeSet};

use keycard_server::{Application, Settings};
use serde_json::{Value, json};

/// Every route of `routes::router()` plus those `startup::app` adds (`/metrics`). Adding a route
/// to the router means adding it here, and this test then fails until the document describes it.
const ROUTES: &[(&str, &str)] = &[
    ("POST", "/auth/signup"),
    ("POST", "/auth/login"),
    ("POST", "/auth/refresh"),
    ("POST", "/auth/logout"),
    ("GET", "/auth/me"),
    ("GET", "/auth/sessions"),
    ("DELETE", "/auth/sessions/{id}"),
    ("POST", "/auth/password"),
    ("POST", "/auth/password/forgot"),
    ("GET", "/auth/password/reset"),
    ("POST", "/auth/password/reset"),
    ("POST", "/auth/email"),
    ("POST", "/auth/email/verify"),
    ("POST", "/auth/email/verify/resend"),
    ("POST", "/auth/email/confirm"),
    ("POST", "/auth/email/cancel"),
    ("GET", "/reset.js"),
    ("GET", "/auth/email/verify"),
    ("GET", "/auth/email/confirm"),
    ("GET", "/auth/email/cancel"),
    ("GET", "/link.js"),
    ("DELETE", "/auth/account"),
    ("POST", "/auth/mfa/verify"),
    ("POST", "/auth/step-up"),
    ("GET", "/auth/mfa"),
    ("POST", "/auth/mfa/totp"),
    ("POST", "/auth/mfa/totp/confirm"),
    ("DELETE", "/auth/mfa/factors/{id}"),
    ("POST", "/auth/mfa/recovery-codes"),
    ("PATCH", "/auth/mfa/factors/{id}"),
    ("POST", "/auth/step-up/options"),
    ("POST", "/auth/passkeys/register/options"),
    ("POST", "/auth/passkeys/register"),
    ("POST", "/auth/passkeys/login/options"),
    ("POST", "/auth/passkeys/login"),
    ("GET", "/auth/revocations"),
    ("GET", "/.well-known/jwks.json"),
    ("GET", "/.well-known/openid-configuration"),
    ("GET", "/.well-known/oauth-authorization-server"),
    ("POST", "/oauth/token"),
    ("POST", "/oauth/revoke"),
    ("POST", "/oauth/introspect"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/"),
    ("GET", "/keycard.js"),
    ("GET", "/demo.js"),
    ("GET", "/style.css"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/docs.js"),
    ("GET", "/docs/swagger-ui-bundle.js"),
    ("GET", "/docs/swagger-ui.css"),
];

/// The error codes of SPEC.md's HTTP API v1, with their statuses.
const SPEC_CODES: &[(&str, u16)] = &[
    ("invalid_request", 400),
    ("invalid_credentials", 401),
    ("invalid_token", 401),
    ("invalid_grant", 401),
    ("refresh_token_reused", 401),
    ("invalid_reset_token", 400),
    ("csrf_failed", 403),
    ("forbidden", 403),
    ("not_found", 404),
    ("email_taken", 409),
    ("weak_password", 422),
    ("rate_limited", 429),
    ("payload_too_large", 413),
    ("invalid_client", 401),
    ("unauthorized_client", 400),
    ("unsupported_grant_type", 400),
    ("invalid_scope", 400),
    ("invalid_dpop_proof", 400),
    ("use_dpop_nonce", 400),
];

const METHODS: [&str; 8] = ["get", "put", "post", "delete", "patch", "head", "options", "trace"];

struct Server {
    base: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

async fn start() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        bind: "127.0.0.1:0".parse().unwrap(),
        database: dir.path().join("k.db").display().to_string().into(),
        // /metrics is served (behind its token) so that every documented operation is.
        metrics_token: Some(keycard_server::settings::Secret::new("openapi-test-metrics-token")),
        ..Default::default()
    };
    let app = Application::build(settings).await.expect("the server starts");
    let base = format!("http://{}", app.local_addr());
    tokio::spawn(app.run_until(std::future::pending()));
    Server { base, http: reqwest::Client::new(), _dir: dir }
}

impl Server {
    async fn document(&self) -> (String, Value) {
        let response = self.http.get(format!("{}/openapi.json", self.base)).send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap().to_owned();
        assert!(content_type.starts_with("application/json"), "{content_type}");
        let text = response.text().await.unwrap();
        let doc: Value = serde_json::from_str(&text).expect("/openapi.json is JSON");
        (text, doc)
    }
}

/// The documented operations: (METHOD, path) → operation object.
fn operations(doc: &Value) -> BTreeMap<(String, String), &Value> {
    let mut ops = BTreeMap::new();
    for (path, item) in doc["paths"].as_object().expect("paths is an object") {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                ops.insert((method.to_uppercase(), path.clone()), op);
            }
        }
    }
    ops
}

/// Every `$ref` in `value`, with where it was found.
fn refs<'a>(value: &'a Value, at: &str, out: &mut Vec<(String, &'a str)>) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                if key == "$ref" {
                    if let Some(target) = child.as_str() {
                        out.push((at.to_owned(), target));
                    }
                } else {
                    refs(child, &format!("{at}/{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate() {
                refs(child, &format!("{at}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// The schema a `$ref`-or-schema stands for.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    match schema.get("$ref").and_then(Value::as_str) {
        Some(target) => doc.pointer(target.trim_start_matches('#')).expect("resolvable $ref"),
        None => schema,
    }
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1() {
    let server = start().await;
    let (text, doc) = server.document().await;
    if let Some(path) = std::env::var_os("KEYCARD_OPENAPI_DUMP") {
        std::fs::write(path, &text).unwrap();
    }

    // A typed OpenAPI 3.1 parse (oas3), and the version it accepts.
    let spec = oas3::from_json(&text).expect("oas3 parses the document");
    let version = spec.validate_version().expect("a supported OpenAPI version");
    assert_eq!((version.major, version.minor), (3, 1));
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    assert!(doc["info"]["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(doc["info"]["version"].as_str().is_some_and(|v| !v.is_empty()));

    // Every $ref points inside components and resolves.
    let mut all = Vec::new();
    refs(&doc, "#", &mut all);
    assert!(!all.is_empty());
    for (at, target) in &all {
        assert!(target.starts_with("#/components/"), "{at}: external or odd $ref {target}");
        assert!(doc.pointer(target.trim_start_matches('#')).is_some(), "{at}: dangling $ref {target}");
    }
    // oas3 resolves them too.
    for (path, method, op) in spec.operations() {
        for (status, response) in op.responses.iter().flatten() {
            let response = response.resolve(&spec).unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
            for media in response.content.values() {
                if let Some(schema) = &media.schema {
                    schema.resolve(&spec).unwrap_or_else(|e| panic!("{method} {path} {status}: {e}"));
                }
            }
        }
    }

    // Operation ids are unique; path templates declare their path parameters; security
    // requirements name declared schemes; statuses are 3-digit codes.
    let schemes = doc["components"]["securitySchemes"].as_object().expect("security schemes");
    let mut ids = BTreeSet::new();
    for ((method, path), op) in operations(&doc) {
        let id = op["operationId"].as_str().unwrap_or_else(|| panic!("{method} {path}: no operationId"));
        assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        let templated: BTreeSet<&str> =
            path.split('/').filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}'))).collect();
        assert_eq!(declared, templated, "{method} {path}: path parameters");
        for requirement in op["security"].as_array().into_iter().flatten() {
            for name in requirement.as_object().unwrap().keys() {
                assert!(schemes.contains_key(name), "{method} {path}: unknown security scheme {name}");
            }
        }
        let responses = op["responses"].as_object().unwrap_or_else(|| panic!("{method} {path}: no responses"));
        assert!(!responses.is_empty());
        for status in responses.keys() {
            assert!(status.len() == 3 && status.parse::<u16>().is_ok(), "{method} {path}: status {status}");
        }
        assert!(responses.keys().any(|s| s.starts_with('2')), "{method} {path}: no success response");
    }
}

#[tokio::test]
async fn every_route_is_documented_and_every_documented_operation_is_served() {
    let server = start().await;
    let (_, doc) = server.document().await;
    let documented: BTreeSet<(String, String)> = operations(&doc).into_keys().collect();
    let routes: BTreeSet<(String, String)> = ROUTES.iter().map(|(m, p)| (m.to_string(), p.to_string())).collect();
    let undocumented: Vec<_> = routes.difference(&documented).collect();
    let unrouted: Vec<_> = documented.difference(&routes).collect();
    assert!(undocumented.is_empty(), "routes missing from /openapi.json: {undocumented:?}");
    assert!(unrouted.is_empty(), "documented but not in the route list: {unrouted:?}");

    // The probe tells a served route from an unserved one.
    let missing = server.http.get(format!("{}/no/such/route", server.base)).send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(missing.json::<Value>().await.unwrap()["error"], "not_found");
    let wrong_method = server.http.put(format!("{}/auth/login", server.base)).send().await.unwrap();
    assert_eq!(wrong_method.status(), 405);

    // Every documented operation is served (no 404 `not_found`, no 405), and answers, without
    // credentials, a status the document lists for it; an error carries one of that status's codes.
    for ((method, path), op) in operations(&doc) {
        let url = format!("{}{}", server.base, path.replace("{id}", "00000000-0000-0000-0000-000000000000"));
        let mut request = server.http.request(method.parse().unwrap(), &url);
        if op.get("requestBody").is_some() {
            request = request.header("content-type", "application/json").body("{}");
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body = response.bytes().await.unwrap();
        let error = serde_json::from_slice::<Value>(&body).ok().and_then(|v| v.get("error").cloned());
        assert!(
            status != 405 && !(status == 404 && error.as_ref().is_some_and(|e| e == "not_found")),
            "{method} {path} is documented but not served ({status})"
        );
        let documented = &op["responses"][status.to_string()];
        assert!(documented.is_object(), "{method} {path} answered {status}, which the document does not list");
        if status >= 400 {
            let code = error.unwrap_or_else(|| panic!("{method} {path}: {status} without an ErrorBody"));
            let examples = documented["content"]["application/json"]["examples"].as_object().unwrap();
            assert!(examples.contains_key(code.as_str().unwrap()), "{method} {path}: {status} {code} not documented");
        }
    }
}

#[tokio::test]
async fn bodies_errors_and_security_are_described() {
    let server = start().await;
    let (_, doc) = server.document().await;
    let ops = operations(&doc);
    let op = |method: &str, path: &str| *ops.get(&(method.to_owned(), path.to_owned())).unwrap();

    // The error schema and every code of SPEC.md.
    let error_body = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error_body["type"], "object");
    let required: BTreeSet<&str> =
        error_body["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(required, BTreeSet::from(["error", "error_description"]));
    let codes = resolve(&doc, &error_body["properties"]["error"]);
    let codes: BTreeSet<&str> = codes["enum"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    for (code, _) in SPEC_CODES {
        assert!(codes.contains(code), "ErrorCode lacks {code}");
    }

    // Every error response is an ErrorBody, with examples whose codes belong to that status.
    let mut seen = BTreeSet::new();
    for ((method, path), op) in &ops {
        for (status, response) in op["responses"].as_object().unwrap() {
            let status: u16 = status.parse().unwrap();
            if status < 400 {
                continue;
            }
            let media = &response["content"]["application/json"];
            assert_eq!(media["schema"]["$ref"], "#/components/schemas/ErrorBody", "{method} {path} {status}");
            let examples = media["examples"].as_object().unwrap();
            assert!(!examples.is_empty(), "{method} {path} {status}: no codes");
            for (name, example) in examples {
                assert_eq!(example["value"]["error"], name.as_str());
                if let Some((_, expected)) = SPEC_CODES.iter().find(|(c, _)| c == name) {
                    // The OAuth endpoints answer RFC 6749's 400 for `invalid_grant`.
                    let oauth_grant = path.starts_with("/oauth/") && name == "invalid_grant";
                    let expected = if oauth_grant { 400 } else { *expected };
                    assert_eq!(expected, status, "{method} {path}: {name} under {status}");
                }
                seen.insert(name.clone());
            }
            if status == 401 {
                assert!(response["headers"]["WWW-Authenticate"].is_object(), "{method} {path}");
            }
            if status == 429 {
                assert!(response["headers"]["Retry-After"].is_object(), "{method} {path}");
            }
        }
        // A token in the query string is refused on every route.
        assert!(op["responses"]["400"].is_object(), "{method} {path}: no 400");
    }
    for (code, _) in SPEC_CODES.iter().filter(|(c, _)| *c != "forbidden") {
        assert!(seen.contains(*code), "no operation documents {code}");
    }
    for (method, path, code) in [
        ("POST", "/auth/signup", "email_taken"),
        ("POST", "/auth/signup", "weak_password"),
        ("POST", "/auth/login", "invalid_credentials"),
        ("POST", "/auth/login", "rate_limited"),
        ("POST", "/auth/refresh", "refresh_token_reused"),
        ("POST", "/auth/refresh", "invalid_grant"),
        ("POST", "/auth/refresh", "csrf_failed"),
        ("DELETE", "/auth/sessions/{id}", "not_found"),
        ("POST", "/auth/password", "weak_password"),
        ("GET", "/auth/me", "invalid_token"),
    ] {
        let status = SPEC_CODES.iter().find(|(c, _)| *c == code).unwrap().1;
        let examples = &op(method, path)["responses"][status.to_string()]["content"]["application/json"]["examples"];
        assert!(examples.get(code).is_some(), "{method} {path}: {code} not documented");
    }

    // Request bodies reference the wire types; refresh and logout bodies are optional.
    for (method, path, schema, required) in [
        ("POST", "/auth/signup", "SignupRequest", true),
        ("POST", "/auth/login", "LoginRequest", true),
        ("POST", "/auth/refresh", "RefreshRequest", false),
        ("POST", "/auth/logout", "LogoutRequest", false),
        ("POST", "/auth/password", "PasswordChangeRequest", true),
        ("DELETE", "/auth/account", "DeleteAccountRequest", true),
    ] {
        let body = &op(method, path)["requestBody"];
        assert_eq!(body["required"].as_bool().unwrap_or(false), required, "{method} {path}: required");
        let media = &body["content"]["application/json"]["schema"];
        assert_eq!(media["$ref"], format!("#/components/schemas/{schema}"), "{method} {path}: body schema {media}");
    }
    let login = resolve(&doc, &doc["components"]["schemas"]["LoginRequest"]);
    let login_json = serde_json::to_string(login).unwrap();
    assert!(login_json.contains("cookie") || doc["components"]["schemas"]["Delivery"].is_object());
    assert_eq!(login["additionalProperties"], false, "request bodies deny unknown fields");

    // Success bodies.
    for (method, path, status, schema) in [
        ("POST", "/auth/signup", "201", "UserInfo"),
        ("POST", "/auth/login", "200", "TokenResponse"),
        ("POST", "/auth/login", "200", "MfaChallenge"),
        ("POST", "/auth/mfa/verify", "200", "TokenResponse"),
        ("POST", "/auth/step-up", "200", "StepUpResponse"),
        ("POST", "/auth/passkeys/register/options", "200", "PasskeyOptions"),
        ("POST", "/auth/passkeys/register", "200", "PasskeyAdded"),
        ("POST", "/auth/passkeys/login/options", "200", "PasskeyOptions"),
        ("POST", "/auth/passkeys/login", "200", "TokenResponse"),
        ("POST", "/auth/step-up/options", "200", "PasskeyOptions"),
        ("POST", "/auth/refresh", "200", "TokenResponse"),
        ("GET", "/auth/me", "200", "UserInfo"),
        ("GET", "/auth/sessions", "200", "SessionInfo"),
        ("GET", "/auth/revocations", "200", "RevocationFeed"),
        ("GET", "/.well-known/jwks.json", "200", "JwkSet"),
    ] {
        let media = serde_json::to_string(&op(method, path)["responses"][status]["content"]).unwrap();
        assert!(media.contains(&format!("#/components/schemas/{schema}")), "{method} {path} {status}: {media}");
    }
    for (method, path) in [("POST", "/auth/logout"), ("DELETE", "/auth/sessions/{id}"), ("DELETE", "/auth/account")] {
        assert!(op(method, path)["responses"]["204"].is_object(), "{method} {path}");
    }
    assert!(
        op("GET", "/metrics")["responses"]["200"]["content"]["text/plain; version=0.0.4; charset=utf-8"].is_object()
    );

    // The bearer scheme, required where SPEC.md says "Bearer"; public routes need nothing.
    let bearer = &doc["components"]["securitySchemes"]["bearer"];
    assert_eq!(bearer["type"], "http");
    assert_eq!(bearer["scheme"], "bearer");
    assert_eq!(bearer["bearerFormat"], "JWT");
    for (method, path) in [
        ("GET", "/auth/me"),
        ("GET", "/auth/sessions"),
        ("DELETE", "/auth/sessions/{id}"),
        ("POST", "/auth/password"),
        ("DELETE", "/auth/account"),
    ] {
        assert_eq!(op(method, path)["security"], json!([{"bearer": []}]), "{method} {path}");
        assert!(op(method, path)["responses"]["401"].is_object(), "{method} {path}");
    }
    let logout = op("POST", "/auth/logout")["security"].as_array().unwrap();
    assert!(logout.contains(&json!({"bearer": []})));
    assert!(logout.contains(&json!({"refresh_cookie": [], "csrf_token": []})));
    let refresh = op("POST", "/auth/refresh")["security"].as_array().unwrap();
    assert!(refresh.contains(&json!({"refresh_cookie": [], "csrf_token": []})));
    assert!(refresh.contains(&json!({})), "body delivery needs no cookie");
    for (method, path) in [("POST", "/auth/signup"), ("POST", "/auth/login"), ("GET", "/.well-known/jwks.json")] {
        assert!(op(method, path).get("security").is_none() && doc.get("security").is_none(), "{method} {path}");
    }
}

#[tokio::test]
async fn the_docs_page_renders_the_document_without_external_assets() {
    let server = start().await;
    let page = server.http.get(format!("{}/docs", server.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let headers = page.headers().clone();
    assert!(headers["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("default-src 'none'"), "{csp}");
    assert!(csp.contains("style-src 'self'") && !csp.contains("unsafe-"), "{csp}");
    let html = page.text().await.unwrap();
    for asset in ["/docs/swagger-ui-bundle.js", "/docs/docs.js"] {
        assert!(html.contains(&format!(r#"<script src="{asset}""#)), "{asset}");
    }
    assert!(html.contains(r#"<link rel="stylesheet" href="/docs/swagger-ui.css">"#));
    assert!(!html.contains("http://") && !html.contains("https://") && !html.contains("//cdn"), "external asset");
    assert!(!html.contains("<script>"), "no inline script");

    // The start script points Swagger UI at this server's document, and at nothing outside.
    let script = server.http.get(format!("{}/docs/docs.js", server.base)).send().await.unwrap();
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"].to_str().unwrap().contains("javascript"));
    let js = script.text().await.unwrap();
    assert!(js.contains(r#"url: "/openapi.json""#) && js.contains("validatorUrl: null"));
    assert!(!js.contains("http://") && !js.contains("https://") && !js.contains("import "));

    // The vendored files, served as they are in the npm package (the browser test checks that the
    // page they build loads nothing from elsewhere).
    for (asset, content_type, starts) in [
        ("/docs/swagger-ui-bundle.js", "application/javascript", "/*! For license information please see"),
        ("/docs/swagger-ui.css", "text/css", ".swagger-ui"),
    ] {
        let response = server.http.get(format!("{}{asset}", server.base)).send().await.unwrap();
        assert_eq!(response.status(), 200, "{asset}");
        assert!(response.headers()["content-type"].to_str().unwrap().starts_with(content_type), "{asset}");
        assert_eq!(response.headers()["cache-control"], "no-cache", "{asset}");
        let body = response.text().await.unwrap();
        assert!(body.starts_with(starts) && body.len() > 100_000, "{asset}");
    }
}
