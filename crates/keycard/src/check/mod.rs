//! `keycard check URL`: a self-audit of a running deployment — keycard or any JWT API — that
//! probes the classic holes from the outside and prints what each finding means.
//!
//! Probes: forged tokens (`alg: none`, HS256 keyed with the published public key, tampered
//! payload/signature/kid, expired), weak HS256 secrets (offline), refresh rotation and reuse
//! detection, logout, CSRF on the cookie refresh, refresh-cookie flags, tokens in URLs, and
//! security headers. Endpoints come from flags, else the discovery document, else keycard's paths
//! (the protected endpoint is detected among common paths). It logs in (optionally signing up a
//! throwaway account first) and revokes what it creates; with only `--token` it runs the token
//! probes. Exit code 1 when any check fails; warnings do not fail the run.
//!
//! One file rather than a folder: the probes share a small HTTP toolkit and read top to bottom.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::{Value, json};

/// Probe a deployment for token-handling holes.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Base URL of the deployment, e.g. https://id.example.com.
    pub url: String,
    /// Email of a test account (logins, refresh, CSRF and cookie probes need one).
    #[arg(long, requires = "password")]
    pub email: Option<String>,
    /// Password of the test account.
    #[arg(long, env = "KEYCARD_CHECK_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Create the test account first (POST to the signup endpoint); an existing one is fine.
    #[arg(long, requires = "email")]
    pub signup: bool,
    /// An access token to probe with, instead of logging in (token probes only).
    #[arg(long, conflicts_with = "email")]
    pub token: Option<String>,
    /// A validly signed access token of this deployment that has expired, for the expiry probe.
    #[arg(long)]
    pub expired_token: Option<String>,
    /// Wait up to this many seconds for a fresh access token to expire, for the expiry probe.
    #[arg(long, default_value_t = 0)]
    pub max_wait: u64,
    /// Clock leeway (seconds) the deployment is assumed to allow after `exp`.
    #[arg(long, default_value_t = 30)]
    pub leeway: u64,
    /// Signup path (default: discovery, else /auth/signup).
    #[arg(long)]
    pub signup_path: Option<String>,
    /// Login path (default: discovery, else /auth/login).
    #[arg(long)]
    pub login_path: Option<String>,
    /// Refresh path (default: discovery, else /auth/refresh).
    #[arg(long)]
    pub refresh_path: Option<String>,
    /// Logout path (default: discovery, else /auth/logout).
    #[arg(long)]
    pub logout_path: Option<String>,
    /// A path that needs a Bearer token (default: discovery, else the first of /auth/me,
    /// /api/me, /me, /userinfo, /api/user that accepts the token).
    #[arg(long)]
    pub me_path: Option<String>,
    /// JWKS URL or path (default: discovery, else /.well-known/jwks.json).
    #[arg(long)]
    pub jwks: Option<String>,
    /// The cross-site origin the CSRF probe pretends to be.
    #[arg(long, default_value = "https://attacker.example")]
    pub foreign_origin: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    Pass,
    Warn,
    Fail,
    Skip,
}

struct Finding {
    id: &'static str,
    status: Status,
    detail: String,
    meaning: &'static str,
}

/// Runs every probe, prints the report, and fails when a check failed.
pub async fn run(args: CheckArgs) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_owned();
    let http = Http::new(&base)?;
    let endpoints = Endpoints::resolve(&http, &args).await?;
    println!("keycard check {base}");
    println!("  endpoints ({}): {}", endpoints.source, endpoints.describe());
    let mut audit = Audit { http, args, ep: endpoints, findings: Vec::new() };
    audit.run_all().await?;
    let count = |s| audit.findings.iter().filter(|f| f.status == s).count();
    println!();
    for f in &audit.findings {
        let tag = match f.status {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        };
        println!("{tag}  {:<18} {}", f.id, f.detail);
        if f.status != Status::Pass {
            println!("      {:<18} {}", "", f.meaning);
        }
    }
    let (failed, warned) = (count(Status::Fail), count(Status::Warn));
    println!("\n{} passed, {failed} failed, {warned} warnings, {} skipped", count(Status::Pass), count(Status::Skip));
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed against {base}");
    }
    Ok(())
}

// ------------------------------------------------------------------------------------ HTTP

struct Http {
    client: reqwest::Client,
    base: String,
}

#[derive(Debug)]
struct Resp {
    status: u16,
    headers: HeaderMap,
    json: Value,
    cookies: Vec<SetCookie>,
}

impl Resp {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    fn error_code(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }
    fn brief(&self) -> String {
        match self.error_code() {
            "" => self.status.to_string(),
            code => format!("{} {code}", self.status),
        }
    }
}

/// One `Set-Cookie`, with the attributes the cookie probe grades.
#[derive(Debug, Clone)]
struct SetCookie {
    name: String,
    value: String,
    attrs: Vec<(String, String)>,
}

impl SetCookie {
    fn parse(line: &str) -> Option<Self> {
        let mut parts = line.split(';').map(str::trim);
        let (name, value) = parts.next()?.split_once('=')?;
        let attrs = parts
            .map(|a| match a.split_once('=') {
                Some((k, v)) => (k.trim().to_ascii_lowercase(), v.trim().to_owned()),
                None => (a.to_ascii_lowercase(), String::new()),
            })
            .collect();
        Some(Self { name: name.trim().to_owned(), value: value.trim().trim_matches('"').to_owned(), attrs })
    }
    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

impl Http {
    fn new(base: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("keycard-check/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, base: base.to_owned() })
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Resp> {
        let resp = req.send().await.context("request failed")?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let cookies = headers.get_all(SET_COOKIE).iter().filter_map(|v| SetCookie::parse(v.to_str().ok()?)).collect();
        let text = resp.text().await.unwrap_or_default();
        Ok(Resp { status, headers, json: serde_json::from_str(&text).unwrap_or(Value::Null), cookies })
    }

    async fn get_bearer(&self, path: &str, token: &str) -> anyhow::Result<Resp> {
        self.send(self.client.get(self.url(path)).bearer_auth(token)).await
    }

    async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Resp> {
        self.send(self.client.post(self.url(path)).json(body)).await
    }
}

// ------------------------------------------------------------------------------- endpoints

struct Endpoints {
    source: &'static str,
    signup: String,
    login: String,
    refresh: String,
    logout: String,
    me: Option<String>,
    jwks: Option<String>,
}

impl Endpoints {
    async fn resolve(http: &Http, args: &CheckArgs) -> anyhow::Result<Self> {
        let discovery = http.send(http.client.get(http.url("/.well-known/openid-configuration"))).await.ok();
        let doc = discovery.filter(|r| r.status == 200 && r.json.is_object()).map(|r| r.json);
        // Discovered URLs are used as paths on the URL given: the check never follows a
        // document to another host.
        let from_doc = |key: &str| doc.as_ref().and_then(|d| d[key].as_str()).map(path_of);
        let pick = |flag: &Option<String>, key: &str, default: &str| {
            flag.clone().or_else(|| from_doc(key)).unwrap_or_else(|| default.to_owned())
        };
        let source = if doc.is_some() { "discovery document" } else { "defaults" };
        Ok(Self {
            source,
            signup: pick(&args.signup_path, "signup_endpoint", "/auth/signup"),
            login: pick(&args.login_path, "login_endpoint", "/auth/login"),
            refresh: pick(&args.refresh_path, "refresh_endpoint", "/auth/refresh"),
            logout: pick(&args.logout_path, "logout_endpoint", "/auth/logout"),
            me: args.me_path.clone().or_else(|| from_doc("userinfo_endpoint")),
            jwks: Some(pick(&args.jwks, "jwks_uri", "/.well-known/jwks.json")),
        })
    }

    fn describe(&self) -> String {
        format!(
            "login {}, refresh {}, logout {}, protected {}, jwks {}",
            self.login,
            self.refresh,
            self.logout,
            self.me.as_deref().unwrap_or("(detect)"),
            self.jwks.as_deref().unwrap_or("-")
        )
    }
}

/// The path (and query) of an absolute URL; a path stays as it is.
fn path_of(url: &str) -> String {
    match url.split_once("://") {
        Some((_, rest)) => rest.find('/').map_or_else(|| "/".to_owned(), |i| rest[i..].to_owned()),
        None => url.to_owned(),
    }
}

// ---------------------------------------------------------------------------- tokens and logins

/// Where a refresh token travels: a JSON body field, or a cookie.
#[derive(Debug, Clone)]
enum Via {
    Body(String),
    Cookie(String),
}

#[derive(Debug, Clone)]
struct Refresh {
    value: String,
    via: Via,
}

/// What a login or refresh answered.
#[derive(Debug)]
struct Issued {
    access: Option<String>,
    refresh: Option<Refresh>,
    /// The CSRF cookie (name, value) and the token to send in `X-CSRF-Token`.
    csrf: Option<(String, String)>,
    resp: Resp,
}

impl Issued {
    fn from(resp: Resp, previous: Option<&Refresh>) -> Self {
        let j = &resp.json;
        let access = ["access_token", "accessToken", "token"].iter().find_map(|k| j[k].as_str()).map(str::to_owned);
        let body_refresh = ["refresh_token", "refreshToken"]
            .iter()
            .find_map(|k| j[*k].as_str().map(|v| Refresh { value: v.into(), via: Via::Body((*k).into()) }));
        let cookie_refresh = resp
            .cookies
            .iter()
            .find(|c| c.name.to_ascii_lowercase().contains("refresh") && !c.value.is_empty())
            .map(|c| Refresh { value: c.value.clone(), via: Via::Cookie(c.name.clone()) });
        // Keep presenting the way the client presented, when the answer allows it.
        let refresh = match previous.map(|p| &p.via) {
            Some(Via::Cookie(_)) => cookie_refresh.or(body_refresh),
            _ => body_refresh.or(cookie_refresh),
        };
        let csrf_cookie = resp.cookies.iter().find(|c| {
            let n = c.name.to_ascii_lowercase();
            (n.contains("csrf") || n.contains("xsrf")) && !c.value.is_empty()
        });
        let csrf_body = ["csrf_token", "csrfToken"].iter().find_map(|k| j[k].as_str());
        let csrf = csrf_cookie.map(|c| (c.name.clone(), csrf_body.unwrap_or(&c.value).to_owned()));
        Self { access, refresh, csrf, resp }
    }
}

/// How a cookie refresh is dressed: which CSRF defences it carries.
#[derive(Clone, Copy)]
struct Dress<'a> {
    csrf_header: bool,
    origin: Option<&'a str>,
}

const HONEST: Dress<'static> = Dress { csrf_header: true, origin: None };

struct Audit {
    http: Http,
    args: CheckArgs,
    ep: Endpoints,
    findings: Vec<Finding>,
}

impl Audit {
    fn add(&mut self, id: &'static str, status: Status, detail: impl Into<String>, meaning: &'static str) {
        self.findings.push(Finding { id, status, detail: detail.into(), meaning });
    }

    async fn login(&self, body_delivery: bool) -> anyhow::Result<Issued> {
        let (Some(email), Some(password)) = (&self.args.email, &self.args.password) else {
            anyhow::bail!("no credentials");
        };
        let mut body = json!({"email": email, "password": password});
        if body_delivery {
            body["delivery"] = json!("body");
        }
        let mut resp = self.http.post_json(&self.ep.login, &body).await?;
        if resp.status == 400 && body_delivery {
            // A server that refuses unknown fields and has no body delivery.
            resp = self.http.post_json(&self.ep.login, &json!({"email": email, "password": password})).await?;
        }
        anyhow::ensure!(resp.status == 200, "login answered {}", resp.brief());
        Ok(Issued::from(resp, None))
    }

    /// Presents `r` to the refresh endpoint: in the body, or as a cookie dressed as `dress` says.
    async fn refresh(&self, r: &Refresh, csrf: Option<&(String, String)>, dress: Dress<'_>) -> anyhow::Result<Issued> {
        let mut req = self.http.client.post(self.http.url(&self.ep.refresh));
        match &r.via {
            Via::Body(field) => req = req.json(&json!({ field: r.value })),
            Via::Cookie(name) => {
                let mut cookie = format!("{name}={}", r.value);
                if let Some((csrf_name, csrf_value)) = csrf {
                    let _ = write!(cookie, "; {csrf_name}={csrf_value}");
                    if dress.csrf_header {
                        req = req.header("X-CSRF-Token", csrf_value);
                    }
                }
                req = req.header("Cookie", cookie);
                if let Some(origin) = dress.origin {
                    req = req.header("Origin", origin);
                }
            }
        }
        Ok(Issued::from(self.http.send(req).await?, Some(r)))
    }

    async fn run_all(&mut self) -> anyhow::Result<()> {
        if self.args.signup {
            let body = json!({"email": self.args.email, "password": self.args.password});
            let resp = self.http.post_json(&self.ep.signup, &body).await?;
            if !matches!(resp.status, 200 | 201 | 409) {
                println!("  note: signup answered {}; trying to log in anyway", resp.brief());
            }
        }
        // Session A: the token probes, then rotation and reuse.
        let a = match &self.args.token {
            Some(_) => None,
            None if self.args.email.is_some() => Some(self.login(true).await.context("logging in")?),
            None => None,
        };
        let token = self.args.token.clone().or_else(|| a.as_ref().and_then(|a| a.access.clone()));
        match &token {
            Some(token) => self.token_probes(token, a.as_ref().map(|a| &a.resp)).await?,
            None => self.add("tokens", Status::Skip, "no access token: give --email/--password or --token", SKIPPED),
        }
        let Some(a) = a else {
            for id in ["refresh-reuse", "logout", "csrf", "cookie-flags"] {
                self.add(id, Status::Skip, "needs a login: give --email and --password", SKIPPED);
            }
            return Ok(());
        };
        self.cache_probe(&a.resp);
        // Session A's access token dies here (reuse revokes its family): the token probes ran first.
        self.reuse_probe(a).await?;
        self.logout_probe().await?;
        self.cookie_probes().await
    }
}

const SKIPPED: &str = "Not tested; the other results stand on their own.";

// ---------------------------------------------------------------------------- token probes

/// A decoded JWT: header and payload JSON, and the signature text.
struct Jwt {
    header: Value,
    payload: Value,
    signature: String,
}

impl Jwt {
    fn decode(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
        let json = |part: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(part).ok()?).ok();
        Some(Self { header: json(h)?, payload: json(p)?, signature: s.to_owned() })
    }

    /// `header.payload` with the given JSON, and `signature` appended.
    fn encode(header: &Value, payload: &Value, signature: &str) -> String {
        let b64 = |v: &Value| URL_SAFE_NO_PAD.encode(v.to_string());
        format!("{}.{}.{signature}", b64(header), b64(payload))
    }

    /// Signed with HMAC-SHA-256 under `secret`, whatever the header says.
    fn hs256(header: &Value, payload: &Value, secret: &[u8]) -> String {
        let unsigned = Self::encode(header, payload, "");
        let message = unsigned.trim_end_matches('.');
        let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret);
        let tag = aws_lc_rs::hmac::sign(&key, message.as_bytes());
        format!("{message}.{}", URL_SAFE_NO_PAD.encode(tag.as_ref()))
    }
}

/// Secrets seen in tutorials and leaked configs; an HS256 token signed with one is forgeable.
const WEAK_SECRETS: &[&str] = &[
    "secret",
    "Secret",
    "secretkey",
    "secret_key",
    "secret-key",
    "jwt_secret",
    "jwtsecret",
    "jwt-secret",
    "JWT_SECRET",
    "your-256-bit-secret",
    "your_jwt_secret",
    "your-secret-key",
    "mysecret",
    "mysecretkey",
    "supersecret",
    "changeme",
    "change-me",
    "password",
    "123456",
    "test",
    "dev",
    "development",
    "key",
    "private",
    "shhhhh",
    "keyboard cat",
    "access_token_secret",
    "refresh_token_secret",
    "ACCESS_TOKEN_SECRET",
    "s3cr3t",
];

impl Audit {
    /// Finds the protected endpoint and checks the real token opens it: without that baseline,
    /// a 401 for a forged token would prove nothing.
    async fn baseline(&mut self, token: &str) -> anyhow::Result<Option<String>> {
        let candidates = match &self.ep.me {
            Some(me) => vec![me.clone()],
            None => ["/auth/me", "/api/me", "/me", "/userinfo", "/api/user"].map(String::from).to_vec(),
        };
        for path in candidates {
            let resp = self.http.get_bearer(&path, token).await?;
            if resp.status == 200 {
                if self.ep.me.is_none() {
                    println!("  protected endpoint: {path} (detected)");
                }
                self.ep.me = Some(path.clone());
                return Ok(Some(path));
            }
        }
        self.add(
            "tokens",
            Status::Skip,
            "no protected endpoint accepted the real access token; give --me-path",
            "Forged-token probes need an endpoint that answers 200 to the real token.",
        );
        Ok(None)
    }

    /// Presents each forged token; passes when every one is refused with a 4xx.
    async fn forged(
        &mut self,
        me: &str,
        id: &'static str,
        cases: Vec<(String, String)>,
        ok: &str,
        meaning: &'static str,
    ) -> anyhow::Result<()> {
        let mut accepted = Vec::new();
        let mut crashed = Vec::new();
        for (name, token) in &cases {
            let resp = self.http.get_bearer(me, token).await?;
            match resp.status {
                200..=299 => accepted.push(name.clone()),
                500..=599 => crashed.push(format!("{name} ({})", resp.status)),
                _ => {}
            }
        }
        if !accepted.is_empty() {
            self.add(id, Status::Fail, format!("ACCEPTED: {}", accepted.join(", ")), meaning);
        } else if !crashed.is_empty() {
            self.add(id, Status::Fail, format!("server error on {}", crashed.join(", ")), SERVER_ERROR);
        } else {
            self.add(id, Status::Pass, format!("{ok} ({} variants refused)", cases.len()), meaning);
        }
        Ok(())
    }

    async fn token_probes(&mut self, token: &str, token_response: Option<&Resp>) -> anyhow::Result<()> {
        let Some(jwt) = Jwt::decode(token) else {
            self.add(
                "tokens",
                Status::Skip,
                "the access token is not a JWT (opaque tokens: nothing to forge)",
                SKIPPED,
            );
            return Ok(());
        };
        let Some(me) = self.baseline(token).await? else { return Ok(()) };
        let (h, p) = (&jwt.header, &jwt.payload);
        let with = |v: &Value, k: &str, x: Value| {
            let mut v = v.clone();
            v[k] = x;
            v
        };

        let mut none = Vec::new();
        for alg in ["none", "None", "NONE", "nOnE"] {
            none.push((format!("alg {alg}"), Jwt::encode(&with(h, "alg", json!(alg)), p, "")));
            none.push((
                format!("alg {alg} + old signature"),
                Jwt::encode(&with(h, "alg", json!(alg)), p, &jwt.signature),
            ));
        }
        self.forged(&me, "alg-none", none, "unsigned tokens are refused", ALG_NONE).await?;

        let alg = h["alg"].as_str().unwrap_or("");
        if alg.starts_with("HS") {
            self.add(
                "alg-confusion",
                Status::Skip,
                format!("tokens are {alg} (symmetric): no public key to confuse"),
                SKIPPED,
            );
            let found = WEAK_SECRETS.iter().find(|s| Jwt::hs256(h, p, s.as_bytes()) == token);
            match found {
                Some(s) => self.add("weak-secret", Status::Fail, format!("the HS256 secret is {s:?}"), WEAK_SECRET),
                None => self.add(
                    "weak-secret",
                    Status::Pass,
                    format!("none of {} common secrets signs the token (checked offline)", WEAK_SECRETS.len()),
                    WEAK_SECRET,
                ),
            }
        } else {
            let cases = self.confusion_cases(h, p).await?;
            if cases.is_empty() {
                self.add("alg-confusion", Status::Skip, "no public key found in the JWKS for this token", SKIPPED);
            } else {
                self.forged(&me, "alg-confusion", cases, "HS256 keyed with the public key is refused", ALG_CONFUSION)
                    .await?;
            }
            self.add("weak-secret", Status::Skip, format!("tokens are {alg} (asymmetric): no shared secret"), SKIPPED);
        }

        let sig = &jwt.signature;
        let flipped: String = sig
            .char_indices()
            .map(|(i, c)| if i == sig.len() / 2 { if c == 'A' { 'B' } else { 'A' } } else { c })
            .collect();
        let sub = p["sub"].as_str().unwrap_or("user");
        let exp = p["exp"].as_i64().unwrap_or(0);
        let tampered = vec![
            ("sub changed".to_owned(), Jwt::encode(h, &with(p, "sub", json!(format!("{sub}0"))), sig)),
            ("exp extended".to_owned(), Jwt::encode(h, &with(p, "exp", json!(exp + 86_400)), sig)),
            ("role added".to_owned(), Jwt::encode(h, &with(p, "role", json!("admin")), sig)),
            ("signature altered".to_owned(), Jwt::encode(h, p, &flipped)),
            ("signature removed".to_owned(), Jwt::encode(h, p, "")),
            ("unknown kid".to_owned(), Jwt::encode(&with(h, "kid", json!("keycard-check-unknown-kid")), p, sig)),
        ];
        self.forged(&me, "tampered", tampered, "altered tokens are refused", TAMPERED).await?;
        self.url_probe(&me, token).await?;
        self.header_probes(&me, token, token_response).await?;
        // Last: it may wait for the token to expire.
        self.expiry_probe(&me, token).await
    }

    /// HS256 tokens keyed with every encoding of the published public key a naive verifier
    /// might use as the secret: the JWK, the raw key, SPKI DER and PEM (and PKCS#1 for RSA).
    async fn confusion_cases(&self, h: &Value, p: &Value) -> anyhow::Result<Vec<(String, String)>> {
        let Some(jwks) = &self.ep.jwks else { return Ok(Vec::new()) };
        let resp = self.http.send(self.http.client.get(self.http.url(jwks))).await?;
        let keys = resp.json["keys"].as_array().cloned().unwrap_or_default();
        let kid = h["kid"].as_str();
        let Some(jwk) = keys.iter().find(|k| k["kid"].as_str() == kid && kid.is_some()).or(keys.first()) else {
            return Ok(Vec::new());
        };
        let mut secrets: Vec<(&str, Vec<u8>)> = vec![("JWK JSON", jwk.to_string().into_bytes())];
        for (name, der, pkcs1) in public_key_ders(jwk) {
            secrets.push((name, der.clone()));
            secrets.push(("SPKI PEM", pem("PUBLIC KEY", &der).into_bytes()));
            secrets.push(("SPKI PEM without newline", pem("PUBLIC KEY", &der).trim_end().as_bytes().to_vec()));
            if let Some(pkcs1) = pkcs1 {
                secrets.push(("PKCS#1 PEM", pem("RSA PUBLIC KEY", &pkcs1).into_bytes()));
            }
        }
        let mut header = h.clone();
        header["alg"] = json!("HS256");
        Ok(secrets
            .into_iter()
            .map(|(name, secret)| (format!("HS256 with {name}"), Jwt::hs256(&header, p, &secret)))
            .collect())
    }

    /// A validly signed expired token must be refused. One comes from `--expired-token`, or the
    /// probe waits for `token` to expire (plus `--leeway`) when that is within `--max-wait`.
    async fn expiry_probe(&mut self, me: &str, token: &str) -> anyhow::Result<()> {
        if let Some(expired) = self.args.expired_token.clone() {
            let resp = self.http.get_bearer(me, &expired).await?;
            self.grade_expired(&resp, "the --expired-token");
            return Ok(());
        }
        let Some(exp) = Jwt::decode(token).and_then(|j| j.payload["exp"].as_i64()) else {
            self.add("expired", Status::Fail, "the access token has no exp claim: it never expires", EXPIRED);
            return Ok(());
        };
        let wait = exp + self.args.leeway as i64 + 1 - keycard_core::now_unix();
        if wait > self.args.max_wait as i64 {
            let detail = format!("the token expires in {wait} s; give --expired-token or --max-wait {wait}");
            self.add("expired", Status::Skip, detail, SKIPPED);
            return Ok(());
        }
        if wait > 0 {
            println!("  waiting {wait} s for the access token to expire…");
            tokio::time::sleep(Duration::from_secs(wait as u64)).await;
        }
        let resp = self.http.get_bearer(me, token).await?;
        self.grade_expired(&resp, "the token after its exp + leeway");
        Ok(())
    }

    fn grade_expired(&mut self, resp: &Resp, what: &str) {
        match resp.status {
            200..=299 => self.add("expired", Status::Fail, format!("{what} was ACCEPTED"), EXPIRED),
            500..=599 => {
                self.add("expired", Status::Fail, format!("{what}: server error {}", resp.status), SERVER_ERROR)
            }
            _ => self.add("expired", Status::Pass, format!("{what} is refused ({})", resp.brief()), EXPIRED),
        }
    }

    async fn url_probe(&mut self, me: &str, token: &str) -> anyhow::Result<()> {
        let sep = if me.contains('?') { '&' } else { '?' };
        let in_query =
            self.http.send(self.http.client.get(self.http.url(&format!("{me}{sep}access_token={token}")))).await?;
        let refresh_url = format!("{}?refresh_token=kcrt_{}", self.ep.refresh, "A".repeat(43));
        let refresh = self.http.send(self.http.client.post(self.http.url(&refresh_url))).await?;
        let seen = format!("protected endpoint {}, refresh {}", in_query.brief(), refresh.brief());
        if (200..300).contains(&in_query.status) {
            self.add(
                "token-in-url",
                Status::Fail,
                format!("an access token in the query string is ACCEPTED ({seen})"),
                TOKEN_IN_URL,
            );
        } else if in_query.status == 400 && refresh.status == 400 {
            self.add(
                "token-in-url",
                Status::Pass,
                format!("tokens in URLs are refused with 400 ({seen})"),
                TOKEN_IN_URL,
            );
        } else {
            self.add(
                "token-in-url",
                Status::Warn,
                format!("not accepted, but not refused as a mistake either ({seen})"),
                TOKEN_IN_URL,
            );
        }
        Ok(())
    }

    async fn header_probes(&mut self, me: &str, token: &str, token_response: Option<&Resp>) -> anyhow::Result<()> {
        let ok = self.http.get_bearer(me, token).await?;
        let denied = self.http.get_bearer(me, "not-a-token").await?;
        let mut missing = Vec::new();
        let mut weak = Vec::new();
        for resp in [&ok, &denied] {
            if resp.header("x-content-type-options") != Some("nosniff") {
                missing.push("X-Content-Type-Options: nosniff");
            }
            let csp = resp.header("content-security-policy").unwrap_or("");
            if resp.header("x-frame-options").is_none() && !csp.contains("frame-ancestors") {
                weak.push("X-Frame-Options / CSP frame-ancestors");
            }
            if resp.header("referrer-policy").is_none() {
                weak.push("Referrer-Policy");
            }
            if self.http.base.starts_with("https://") && resp.header("strict-transport-security").is_none() {
                missing.push("Strict-Transport-Security");
            }
            if let Some(p) = resp.header("x-powered-by") {
                weak.push(if p.is_empty() { "X-Powered-By" } else { "X-Powered-By (names the framework)" });
            }
        }
        if !denied.header("www-authenticate").is_some_and(|w| w.to_ascii_lowercase().starts_with("bearer"))
            && denied.status == 401
        {
            weak.push("WWW-Authenticate: Bearer on 401");
        }
        if denied.status >= 500 {
            missing.push("a 4xx for a garbage token (got a server error)");
        }
        if ok.header("cache-control").is_none_or(|c| !c.contains("no-store")) && token_response.is_none() {
            weak.push("Cache-Control: no-store on authenticated responses");
        }
        missing.sort_unstable();
        missing.dedup();
        weak.sort_unstable();
        weak.dedup();
        match (missing.is_empty(), weak.is_empty()) {
            (true, true) => self.add(
                "security-headers",
                Status::Pass,
                "nosniff, framing, referrer policy and 401 challenge present",
                HEADERS,
            ),
            (true, false) => {
                self.add("security-headers", Status::Warn, format!("missing: {}", weak.join(", ")), HEADERS)
            }
            (false, _) => {
                let all: Vec<&str> = missing.iter().chain(weak.iter()).copied().collect();
                self.add("security-headers", Status::Fail, format!("missing: {}", all.join(", ")), HEADERS);
            }
        }
        Ok(())
    }

    /// Token responses must not be cached (RFC 6749 §5.1).
    fn cache_probe(&mut self, token_response: &Resp) {
        let cc = token_response.header("cache-control").unwrap_or("");
        if cc.contains("no-store") {
            self.add("token-cache", Status::Pass, format!("token responses carry Cache-Control: {cc}"), NO_STORE);
        } else {
            let shown = if cc.is_empty() { "no Cache-Control".to_owned() } else { format!("Cache-Control: {cc}") };
            self.add("token-cache", Status::Fail, format!("the login response has {shown}"), NO_STORE);
        }
    }
}

// --------------------------------------------------------------------- session probes

impl Audit {
    /// Rotation and reuse detection: rotate R0 → R1, present R0 again (expect 401), then R1
    /// (expect 401: the family is revoked). A second session B must not be affected.
    async fn reuse_probe(&mut self, a: Issued) -> anyhow::Result<()> {
        let Some(r0) = a.refresh.clone() else {
            self.add(
                "refresh-reuse",
                Status::Skip,
                "the login answer holds no refresh token (body or cookie)",
                SKIPPED,
            );
            return Ok(());
        };
        let b = self.login(true).await.context("second login")?;
        let first = self.refresh(&r0, a.csrf.as_ref(), HONEST).await?;
        let Some(r1) = first.refresh.clone().filter(|_| first.resp.status == 200) else {
            self.add(
                "refresh-reuse",
                Status::Skip,
                format!("refreshing with the login's token answered {}", first.resp.brief()),
                SKIPPED,
            );
            return Ok(());
        };
        if r1.value == r0.value {
            self.add("refresh-rotation", Status::Fail, "a refresh returned the same refresh token", ROTATION);
        } else {
            self.add("refresh-rotation", Status::Pass, "every refresh issues a new refresh token", ROTATION);
        }
        let replay = self.refresh(&r0, first.csrf.as_ref().or(a.csrf.as_ref()), HONEST).await?;
        let family = self.refresh(&r1, first.csrf.as_ref().or(a.csrf.as_ref()), HONEST).await?;
        let access_after = match &first.access {
            Some(at) => Some(self.http.get_bearer(self.ep.me.as_deref().unwrap_or("/auth/me"), at).await?.status),
            None => None,
        };
        let seen = format!("replay of the used token: {}; its successor: {}", replay.resp.brief(), family.resp.brief());
        if replay.resp.status == 200 {
            self.add("refresh-reuse", Status::Fail, format!("a used refresh token was ACCEPTED again ({seen})"), REUSE);
        } else if family.resp.status == 200 {
            self.add(
                "refresh-reuse",
                Status::Fail,
                format!("no reuse detection: the family lives on after a replay ({seen})"),
                REUSE,
            );
        } else if replay.resp.status >= 500 || family.resp.status >= 500 {
            self.add("refresh-reuse", Status::Fail, format!("server error ({seen})"), SERVER_ERROR);
        } else {
            self.add(
                "refresh-reuse",
                Status::Pass,
                format!("replay refused and the whole family revoked ({seen})"),
                REUSE,
            );
            if access_after == Some(200) {
                let detail = "after reuse, the family's access token is still accepted until it expires";
                self.add("reuse-revokes-access", Status::Warn, detail, REVOKE_ACCESS);
            }
        }
        if let Some(rb) = &b.refresh {
            let other = self.refresh(rb, b.csrf.as_ref(), HONEST).await?;
            if other.resp.status != 200 {
                println!("  note: another session of the user answered {} after the reuse", other.resp.brief());
            }
            if let Some(r) = &other.refresh {
                self.logout(r, other.csrf.as_ref()).await?;
            }
        }
        Ok(())
    }

    async fn logout(&self, r: &Refresh, csrf: Option<&(String, String)>) -> anyhow::Result<Resp> {
        let mut req = self.http.client.post(self.http.url(&self.ep.logout));
        match &r.via {
            Via::Body(field) => req = req.json(&json!({ field: r.value })),
            Via::Cookie(name) => {
                let mut cookie = format!("{name}={}", r.value);
                if let Some((n, v)) = csrf {
                    let _ = write!(cookie, "; {n}={v}");
                    req = req.header("X-CSRF-Token", v);
                }
                req = req.header("Cookie", cookie);
            }
        }
        self.http.send(req).await
    }

    /// Logout must end the session: its refresh token stops working, and (on keycard) so does
    /// its access token.
    async fn logout_probe(&mut self) -> anyhow::Result<()> {
        let d = self.login(true).await.context("login for the logout probe")?;
        let (Some(r), Some(at)) = (d.refresh.clone(), d.access.clone()) else {
            self.add("logout", Status::Skip, "the login answer lacks a token", SKIPPED);
            return Ok(());
        };
        let out = self.logout(&r, d.csrf.as_ref()).await?;
        let after = self.refresh(&r, d.csrf.as_ref(), HONEST).await?;
        let me = self.http.get_bearer(self.ep.me.as_deref().unwrap_or("/auth/me"), &at).await?;
        let seen = format!("logout {}, then refresh {}, access token {}", out.brief(), after.resp.brief(), me.brief());
        if after.resp.status == 200 {
            self.add("logout", Status::Fail, format!("the refresh token still works after logout ({seen})"), LOGOUT);
        } else if me.status == 200 {
            self.add(
                "logout",
                Status::Warn,
                format!("the access token outlives logout until it expires ({seen})"),
                REVOKE_ACCESS,
            );
        } else {
            self.add("logout", Status::Pass, format!("logout ends refresh and access tokens ({seen})"), LOGOUT);
        }
        Ok(())
    }

    /// The cookie login: refresh-cookie flags, then the CSRF defences of the cookie refresh.
    async fn cookie_probes(&mut self) -> anyhow::Result<()> {
        let c = self.login(false).await.context("cookie login")?;
        let (mut current, name) = match &c.refresh {
            Some(r @ Refresh { via: Via::Cookie(name), .. }) => (r.clone(), name.clone()),
            _ => {
                self.add("cookie-flags", Status::Skip, "the refresh token is not sent in a cookie", SKIPPED);
                self.add("csrf", Status::Skip, "no refresh cookie: no ambient credential to ride on", SKIPPED);
                return Ok(());
            }
        };
        self.cookie_flags(&c.resp, &name);
        let mut csrf = c.csrf.clone();
        let mut results = Vec::new();
        let origin = self.args.foreign_origin.clone();
        let probes = [
            ("no X-CSRF-Token", Dress { csrf_header: false, origin: None }),
            ("foreign Origin", Dress { csrf_header: true, origin: Some(&origin) }),
            ("no X-CSRF-Token + foreign Origin", Dress { csrf_header: false, origin: Some(&origin) }),
            ("control: X-CSRF-Token, no Origin", HONEST),
        ];
        for (name, dress) in probes {
            let got = self.refresh(&current, csrf.as_ref(), dress).await?;
            results.push((name, got.resp.status, got.resp.brief()));
            if got.resp.status == 200 {
                // The token rotated: follow it, or the next probe fails for the wrong reason.
                current = got.refresh.unwrap_or(current);
                csrf = got.csrf.or(csrf);
            }
        }
        self.logout(&current, csrf.as_ref()).await?;
        let shown = results.iter().map(|(n, _, b)| format!("{n}: {b}")).collect::<Vec<_>>().join("; ");
        let forged_ok: Vec<&str> = results[..3].iter().filter(|r| r.1 == 200).map(|r| r.0).collect();
        if !forged_ok.is_empty() {
            self.add(
                "csrf",
                Status::Fail,
                format!("cookie refresh ACCEPTED with {} ({shown})", forged_ok.join(", ")),
                CSRF,
            );
        } else if results[3].1 != 200 {
            self.add(
                "csrf",
                Status::Warn,
                format!("inconclusive: even the honest cookie refresh failed ({shown})"),
                CSRF,
            );
        } else {
            self.add("csrf", Status::Pass, format!("forged cookie refreshes refused ({shown})"), CSRF);
        }
        Ok(())
    }

    fn cookie_flags(&mut self, login: &Resp, name: &str) {
        let Some(cookie) = login.cookies.iter().find(|c| c.name == name) else { return };
        let mut bad = Vec::new();
        let mut notes = Vec::new();
        if cookie.attr("httponly").is_none() {
            bad.push("HttpOnly missing (scripts can read it)");
        }
        if cookie.attr("secure").is_none() {
            bad.push("Secure missing (sent over plain HTTP)");
        }
        match cookie.attr("samesite").map(str::to_ascii_lowercase).as_deref() {
            Some("strict") => notes.push("SameSite=Strict".to_owned()),
            Some("lax") => notes.push("SameSite=Lax".to_owned()),
            Some("none") => bad.push("SameSite=None (sent on cross-site requests)"),
            _ => bad.push("SameSite missing"),
        }
        match cookie.attr("path") {
            Some("/") | None => notes.push("Path=/ (sent with every request)".to_owned()),
            Some(p) => notes.push(format!("Path={p}")),
        }
        if name.starts_with("__Secure-") || name.starts_with("__Host-") {
            notes.push("cookie-name prefix".to_owned());
        }
        let detail = format!("{name}: {}", notes.join(", "));
        if bad.is_empty() {
            self.add("cookie-flags", Status::Pass, format!("{detail}, HttpOnly, Secure"), COOKIES);
        } else {
            self.add("cookie-flags", Status::Fail, format!("{detail}; {}", bad.join("; ")), COOKIES);
        }
    }
}

// -------------------------------------------------------------------- public key encodings

/// SubjectPublicKeyInfo DER of a JWK (and the PKCS#1 key for RSA), as a naive verifier would
/// hold it in a PEM file.
/// A public-key encoding: its name, SPKI (or raw) bytes, and the PKCS#1 form for RSA.
type KeyEncoding = (&'static str, Vec<u8>, Option<Vec<u8>>);

fn public_key_ders(jwk: &Value) -> Vec<KeyEncoding> {
    let field = |k: &str| jwk[k].as_str().and_then(|v| URL_SAFE_NO_PAD.decode(v).ok());
    match jwk["kty"].as_str() {
        Some("OKP") => field("x").map(|x| {
            let der = [&[0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00][..], &x].concat();
            vec![("raw public key", x, None), ("SPKI DER", der, None)]
        }),
        Some("EC") => field("x").zip(field("y")).map(|(x, y)| {
            const PREFIX: [u8; 27] = [
                0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86,
                0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00, 0x04,
            ];
            let der = [&PREFIX[..], &x, &y].concat();
            vec![("SPKI DER", der, None)]
        }),
        Some("RSA") => field("n").zip(field("e")).map(|(n, e)| {
            let pkcs1 = der(0x30, &[der_uint(&n), der_uint(&e)].concat());
            let algorithm = hex_bytes("300d06092a864886f70d0101010500");
            let bits = der(0x03, &[&[0u8][..], &pkcs1].concat());
            let spki = der(0x30, &[algorithm, bits].concat());
            vec![("SPKI DER", spki, Some(pkcs1))]
        }),
        _ => None,
    }
    .unwrap_or_default()
}

fn der(tag: u8, content: &[u8]) -> Vec<u8> {
    let len = content.len();
    let mut out = vec![tag];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len.to_be_bytes().into_iter().skip_while(|b| *b == 0).collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(content);
    out
}

fn der_uint(be: &[u8]) -> Vec<u8> {
    let trimmed: Vec<u8> = be.iter().copied().skip_while(|b| *b == 0).collect();
    let padded = if trimmed.first().is_some_and(|b| b & 0x80 != 0) { [&[0u8][..], &trimmed].concat() } else { trimmed };
    der(0x02, &padded)
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len()).step_by(2).filter_map(|i| u8::from_str_radix(&hex[i..i + 2], 16).ok()).collect()
}

fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body.as_bytes().chunks(64).filter_map(|c| std::str::from_utf8(c).ok()).collect();
    format!("-----BEGIN {label}-----\n{}\n-----END {label}-----\n", lines.join("\n"))
}

// ------------------------------------------------------------------------------ meanings

const SERVER_ERROR: &str = "A forged or stale credential crashed the server instead of getting a 401: a denial-of-service lever, and a sign the input reaches code that does not expect it.";
const ALG_NONE: &str = "A verifier that honours alg \"none\" accepts tokens anyone can write: full account takeover. The algorithm must come from the key, never from the token.";
const ALG_CONFUSION: &str = "HS256 keyed with the public key lets anyone who reads the JWKS mint valid tokens: the verifier must bind each key to its algorithm.";
const WEAK_SECRET: &str = "An HS256 secret from a word list can be recovered offline from one token; then anyone can mint tokens. Use 32+ random bytes, or asymmetric keys.";
const TAMPERED: &str = "Changing claims, the signature or the kid must invalidate a token; acceptance means signatures are not checked (or unknown kids fall back to a default key).";
const EXPIRED: &str = "A token past exp (plus a small leeway) must be refused; otherwise a stolen token never dies.";
const TOKEN_IN_URL: &str = "Tokens in URLs leak into server logs, proxies, browser history and Referer headers. A 400 tells the client developer at once; silently ignoring the parameter lets the leak go unnoticed.";
const HEADERS: &str = "nosniff stops content-type confusion, framing protection stops clickjacking, Referrer-Policy stops URL leaks, HSTS stops TLS stripping, a Bearer challenge on 401 tells clients to refresh (RFC 6750).";
const NO_STORE: &str = "Token responses must carry Cache-Control: no-store (RFC 6749 §5.1): otherwise a shared cache or the browser cache may keep and replay them.";
const ROTATION: &str = "A refresh token that stays the same after use is a long-lived bearer secret: steal it once, use it for its whole lifetime.";
const REUSE: &str = "With rotation but no reuse detection, a thief who uses a stolen refresh token keeps a live session, and the victim's later refresh fails quietly. Replaying a used token must revoke the whole token family.";
const REVOKE_ACCESS: &str = "Revocation that leaves the session's access tokens valid gives a thief minutes more; keycard revokes the sid so its own routes and verifiers following the revocation feed refuse them.";
const LOGOUT: &str =
    "Logout must end the session server-side; otherwise a copied refresh token outlives the user's logout.";
const CSRF: &str = "A cookie-authenticated refresh is an ambient credential: without a CSRF token and an Origin check, another site (or a sibling subdomain, which SameSite does not stop) can make the browser refresh and, with a permissive CORS policy, read the tokens.";
const COOKIES: &str = "The refresh cookie must be HttpOnly (no script access, so XSS cannot steal it), Secure (never over plain HTTP) and SameSite (not sent on cross-site requests), ideally scoped to the auth path.";
