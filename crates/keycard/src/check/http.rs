//! The small HTTP toolkit the probes share: a client that never follows redirects (a probe
//! grades what the deployment answered, not where it pointed) and [`Resp`], an answer read once
//! into its status, headers, JSON body and parsed `Set-Cookie` lines.

use std::time::Duration;

use anyhow::Context as _;
use reqwest::header::{HeaderMap, SET_COOKIE};
use serde_json::Value;

use super::cookies::SetCookie;

pub(super) struct Http {
    pub(super) client: reqwest::Client,
    pub(super) base: String,
}

#[derive(Debug)]
pub(super) struct Resp {
    pub(super) status: u16,
    headers: HeaderMap,
    pub(super) json: Value,
    pub(super) cookies: Vec<SetCookie>,
}

impl Resp {
    /// An answer from its parts: the `Set-Cookie` lines parsed (unparseable ones dropped), the
    /// body as JSON (`null` when it is not JSON).
    pub(super) fn from_parts(status: u16, headers: HeaderMap, body: &str) -> Self {
        let cookies = headers.get_all(SET_COOKIE).iter().filter_map(|v| SetCookie::parse(v.to_str().ok()?)).collect();
        Self { status, headers, json: serde_json::from_str(body).unwrap_or(Value::Null), cookies }
    }

    pub(super) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(super) fn error_code(&self) -> &str {
        self.json["error"].as_str().unwrap_or("")
    }

    /// The status, and the JSON `error` code when there is one: `401 invalid_token`.
    pub(super) fn brief(&self) -> String {
        match self.error_code() {
            "" => self.status.to_string(),
            code => format!("{} {code}", self.status),
        }
    }
}

impl Http {
    pub(super) fn new(base: &str) -> anyhow::Result<Self> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(15))
            .user_agent(concat!("keycard-check/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self { client, base: base.to_owned() })
    }

    /// An absolute URL as it is; a path on the base URL.
    pub(super) fn url(&self, path: &str) -> String {
        if path.starts_with("http://") || path.starts_with("https://") {
            path.to_owned()
        } else {
            format!("{}{path}", self.base)
        }
    }

    pub(super) async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<Resp> {
        let resp = req.send().await.context("request failed")?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap_or_default();
        Ok(Resp::from_parts(status, headers, &text))
    }

    pub(super) async fn get_bearer(&self, path: &str, token: &str) -> anyhow::Result<Resp> {
        self.send(self.client.get(self.url(path)).bearer_auth(token)).await
    }

    pub(super) async fn post_json(&self, path: &str, body: &Value) -> anyhow::Result<Resp> {
        self.send(self.client.post(self.url(path)).json(body)).await
    }
}

/// An answer built as a deployment would send it, for the unit tests of the graders.
#[cfg(test)]
pub(super) fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Resp {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes()).unwrap();
        map.append(name, value.parse().unwrap());
    }
    Resp::from_parts(status, map, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_keeps_its_status_headers_json_body_and_every_set_cookie() {
        let r = resp(
            200,
            &[
                ("cache-control", "no-store"),
                ("set-cookie", "__Host-kc_refresh=kcrt_abc; Path=/; HttpOnly; Secure; SameSite=Strict"),
                ("set-cookie", "__Host-kc_csrf=xyz; Path=/; Secure; SameSite=Strict"),
                ("set-cookie", "no equals sign"),
            ],
            r#"{"access_token":"a.b.c","token_type":"Bearer"}"#,
        );
        assert_eq!(r.status, 200);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        assert_eq!(r.header("Cache-Control"), Some("no-store"), "header names are case-insensitive");
        assert_eq!(r.header("x-frame-options"), None);
        assert_eq!(r.json["access_token"], "a.b.c");
        let names: Vec<&str> = r.cookies.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["__Host-kc_refresh", "__Host-kc_csrf"], "the unparseable line is dropped");
    }

    #[test]
    fn a_body_that_is_not_json_reads_as_null() {
        for body in ["", "<html>Unauthorized</html>", "{\"truncated\":"] {
            let r = resp(401, &[], body);
            assert!(r.json.is_null(), "{body:?}");
            assert_eq!(r.error_code(), "");
        }
    }

    #[test]
    fn brief_is_the_status_and_the_error_code_when_there_is_one() {
        assert_eq!(resp(401, &[], r#"{"error":"invalid_token"}"#).brief(), "401 invalid_token");
        assert_eq!(resp(401, &[], "unauthorized").brief(), "401");
        assert_eq!(resp(400, &[], r#"{"error":42}"#).brief(), "400", "a non-string error is no code");
        assert_eq!(resp(200, &[], r#"{"ok":true}"#).brief(), "200");
    }

    #[test]
    fn url_puts_paths_on_the_base_and_keeps_absolute_urls() {
        let http = Http::new("https://id.example.com").unwrap();
        assert_eq!(http.url("/auth/login"), "https://id.example.com/auth/login");
        assert_eq!(http.url("/me?x=1"), "https://id.example.com/me?x=1");
        assert_eq!(http.url("https://keys.example.net/jwks.json"), "https://keys.example.net/jwks.json");
        assert_eq!(http.url("http://127.0.0.1:9/jwks"), "http://127.0.0.1:9/jwks");
    }
}
