//! The token probes: with a real access token and a protected endpoint that accepts it, present
//! forged variants (`alg: none`, HS256 keyed with the public key, tampered), look for a weak
//! HS256 secret offline, present an expired token and tokens in URLs, and grade the security
//! headers and the caching of token responses.

use std::time::Duration;

use serde_json::Value;

use super::http::Resp;
use super::jwt::{self, Jwt, Variant};
use super::meanings::{
    ALG_CONFUSION, ALG_NONE, EXPIRED, HEADERS, NO_STORE, SERVER_ERROR, SKIPPED, TAMPERED, TOKEN_IN_URL, WEAK_SECRET,
};
use super::{Audit, Finding, Status};

/// The paths tried, in order, when neither a flag nor the discovery document names the
/// protected endpoint.
const PROTECTED_CANDIDATES: [&str; 5] = ["/auth/me", "/api/me", "/me", "/userinfo", "/api/user"];

/// Forged tokens presented to the protected endpoint, by name and the status each got: any
/// 2xx fails (the meaning given), else any 5xx fails as a server error, else a pass.
fn forged(id: &'static str, results: &[(String, u16)], ok: &str, meaning: &'static str) -> Finding {
    let accepted: Vec<&str> = results.iter().filter(|r| (200..=299).contains(&r.1)).map(|r| r.0.as_str()).collect();
    let crashed: Vec<String> =
        results.iter().filter(|r| (500..=599).contains(&r.1)).map(|(name, s)| format!("{name} ({s})")).collect();
    if !accepted.is_empty() {
        Finding::new(id, Status::Fail, format!("ACCEPTED: {}", accepted.join(", ")), meaning)
    } else if !crashed.is_empty() {
        Finding::new(id, Status::Fail, format!("server error on {}", crashed.join(", ")), SERVER_ERROR)
    } else {
        Finding::new(id, Status::Pass, format!("{ok} ({} variants refused)", results.len()), meaning)
    }
}

/// The weak-secret verdict: the word-list secret found, if any.
fn weak_secret(found: Option<&str>) -> Finding {
    match found {
        Some(s) => Finding::new("weak-secret", Status::Fail, format!("the HS256 secret is {s:?}"), WEAK_SECRET),
        None => Finding::new(
            "weak-secret",
            Status::Pass,
            format!("none of {} common secrets signs the token (checked offline)", jwt::WEAK_SECRETS.len()),
            WEAK_SECRET,
        ),
    }
}

/// The answer to a validly signed but expired token (`what` names it).
fn expired(resp: &Resp, what: &str) -> Finding {
    match resp.status {
        200..=299 => Finding::new("expired", Status::Fail, format!("{what} was ACCEPTED"), EXPIRED),
        500..=599 => {
            Finding::new("expired", Status::Fail, format!("{what}: server error {}", resp.status), SERVER_ERROR)
        }
        _ => Finding::new("expired", Status::Pass, format!("{what} is refused ({})", resp.brief()), EXPIRED),
    }
}

/// The answers to an access token in the protected endpoint's query string and a refresh token
/// in the refresh endpoint's: accepted fails, 400 for both passes, anything else warns.
fn token_in_url(in_query: &Resp, refresh: &Resp) -> Finding {
    let seen = format!("protected endpoint {}, refresh {}", in_query.brief(), refresh.brief());
    if (200..300).contains(&in_query.status) {
        let detail = format!("an access token in the query string is ACCEPTED ({seen})");
        Finding::new("token-in-url", Status::Fail, detail, TOKEN_IN_URL)
    } else if in_query.status == 400 && refresh.status == 400 {
        Finding::new(
            "token-in-url",
            Status::Pass,
            format!("tokens in URLs are refused with 400 ({seen})"),
            TOKEN_IN_URL,
        )
    } else {
        let detail = format!("not accepted, but not refused as a mistake either ({seen})");
        Finding::new("token-in-url", Status::Warn, detail, TOKEN_IN_URL)
    }
}

/// The security headers of the protected endpoint's answers to the real token (`ok`) and to a
/// garbage one (`denied`). nosniff (and HSTS over HTTPS) missing, or a server error for the
/// garbage token, fails; framing protection, Referrer-Policy, the Bearer challenge on 401, an
/// `X-Powered-By`, and (when there is no token response to grade instead) `no-store` on the
/// authenticated answer only warn.
fn security_headers(ok: &Resp, denied: &Resp, https: bool, token_response: Option<&Resp>) -> Finding {
    let mut missing = Vec::new();
    let mut weak = Vec::new();
    for resp in [ok, denied] {
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
        if https && resp.header("strict-transport-security").is_none() {
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
        (true, true) => Finding::new(
            "security-headers",
            Status::Pass,
            "nosniff, framing, referrer policy and 401 challenge present",
            HEADERS,
        ),
        (true, false) => {
            Finding::new("security-headers", Status::Warn, format!("missing: {}", weak.join(", ")), HEADERS)
        }
        (false, _) => {
            let all: Vec<&str> = missing.iter().chain(weak.iter()).copied().collect();
            Finding::new("security-headers", Status::Fail, format!("missing: {}", all.join(", ")), HEADERS)
        }
    }
}

/// Token responses must not be cached (RFC 6749 §5.1).
pub(super) fn token_cache(token_response: &Resp) -> Finding {
    let cc = token_response.header("cache-control").unwrap_or("");
    if cc.contains("no-store") {
        Finding::new("token-cache", Status::Pass, format!("token responses carry Cache-Control: {cc}"), NO_STORE)
    } else {
        let shown = if cc.is_empty() { "no Cache-Control".to_owned() } else { format!("Cache-Control: {cc}") };
        Finding::new("token-cache", Status::Fail, format!("the login response has {shown}"), NO_STORE)
    }
}

impl Audit {
    /// Finds the protected endpoint and checks the real token opens it: without that baseline,
    /// a 401 for a forged token would prove nothing.
    async fn baseline(&mut self, token: &str) -> anyhow::Result<Option<String>> {
        let candidates = match &self.ep.me {
            Some(me) => vec![me.clone()],
            None => PROTECTED_CANDIDATES.map(String::from).to_vec(),
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

    /// Presents each forged token to `me` and grades the answers.
    async fn present_forged(
        &mut self,
        me: &str,
        id: &'static str,
        cases: Vec<Variant>,
        ok: &str,
        meaning: &'static str,
    ) -> anyhow::Result<()> {
        let mut results = Vec::new();
        for (name, token) in cases {
            let resp = self.http.get_bearer(me, &token).await?;
            results.push((name, resp.status));
        }
        self.push(forged(id, &results, ok, meaning));
        Ok(())
    }

    pub(super) async fn token_probes(&mut self, token: &str, token_response: Option<&Resp>) -> anyhow::Result<()> {
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

        let none = jwt::alg_none_variants(&jwt);
        self.present_forged(&me, "alg-none", none, "unsigned tokens are refused", ALG_NONE).await?;

        let alg = jwt.header["alg"].as_str().unwrap_or("");
        if alg.starts_with("HS") {
            self.add(
                "alg-confusion",
                Status::Skip,
                format!("tokens are {alg} (symmetric): no public key to confuse"),
                SKIPPED,
            );
            self.push(weak_secret(jwt::weak_secret(&jwt, token)));
        } else {
            let cases = self.confusion_cases(&jwt.header, &jwt.payload).await?;
            if cases.is_empty() {
                self.add("alg-confusion", Status::Skip, "no public key found in the JWKS for this token", SKIPPED);
            } else {
                let ok = "HS256 keyed with the public key is refused";
                self.present_forged(&me, "alg-confusion", cases, ok, ALG_CONFUSION).await?;
            }
            self.add("weak-secret", Status::Skip, format!("tokens are {alg} (asymmetric): no shared secret"), SKIPPED);
        }

        let tampered = jwt::tampered_variants(&jwt);
        self.present_forged(&me, "tampered", tampered, "altered tokens are refused", TAMPERED).await?;
        self.url_probe(&me, token).await?;
        self.header_probes(&me, token, token_response).await?;
        // Last: it may wait for the token to expire.
        self.expiry_probe(&me, token).await
    }

    /// The HS256 forgeries for the JWKS key the token names (else the first key); none
    /// without a JWKS key.
    async fn confusion_cases(&self, h: &Value, p: &Value) -> anyhow::Result<Vec<Variant>> {
        let Some(jwks) = &self.ep.jwks else { return Ok(Vec::new()) };
        let resp = self.http.send(self.http.client.get(self.http.url(jwks))).await?;
        let keys = resp.json["keys"].as_array().cloned().unwrap_or_default();
        let Some(jwk) = jwt::pick_jwk(&keys, h["kid"].as_str()) else {
            return Ok(Vec::new());
        };
        Ok(jwt::confusion_variants(h, p, jwk))
    }

    /// A validly signed expired token must be refused. One comes from `--expired-token`, or the
    /// probe waits for `token` to expire (plus `--leeway`) when that is within `--max-wait`.
    async fn expiry_probe(&mut self, me: &str, token: &str) -> anyhow::Result<()> {
        if let Some(expired_token) = self.args.expired_token.clone() {
            let resp = self.http.get_bearer(me, &expired_token).await?;
            self.push(expired(&resp, "the --expired-token"));
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
        self.push(expired(&resp, "the token after its exp + leeway"));
        Ok(())
    }

    async fn url_probe(&mut self, me: &str, token: &str) -> anyhow::Result<()> {
        let sep = if me.contains('?') { '&' } else { '?' };
        let in_query =
            self.http.send(self.http.client.get(self.http.url(&format!("{me}{sep}access_token={token}")))).await?;
        let refresh_url = format!("{}?refresh_token=kcrt_{}", self.ep.refresh, "A".repeat(43));
        let refresh = self.http.send(self.http.client.post(self.http.url(&refresh_url))).await?;
        self.push(token_in_url(&in_query, &refresh));
        Ok(())
    }

    async fn header_probes(&mut self, me: &str, token: &str, token_response: Option<&Resp>) -> anyhow::Result<()> {
        let ok = self.http.get_bearer(me, token).await?;
        let denied = self.http.get_bearer(me, "not-a-token").await?;
        let https = self.http.base.starts_with("https://");
        self.push(security_headers(&ok, &denied, https, token_response));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::http::resp;

    fn named(results: &[(&str, u16)]) -> Vec<(String, u16)> {
        results.iter().map(|(n, s)| ((*n).to_owned(), *s)).collect()
    }

    #[test]
    fn forged_passes_when_every_variant_gets_a_4xx() {
        let f =
            forged("alg-none", &named(&[("alg none", 401), ("alg None", 400), ("alg NONE", 403)]), "refused", ALG_NONE);
        assert_eq!((f.id, f.status, f.meaning), ("alg-none", Status::Pass, ALG_NONE));
        assert_eq!(f.detail, "refused (3 variants refused)");
    }

    #[test]
    fn forged_fails_naming_the_accepted_variants_before_any_server_error() {
        let results = named(&[("sub changed", 200), ("role added", 500), ("unknown kid", 204), ("exp extended", 401)]);
        let f = forged("tampered", &results, "refused", TAMPERED);
        assert_eq!((f.status, f.meaning), (Status::Fail, TAMPERED));
        assert_eq!(f.detail, "ACCEPTED: sub changed, unknown kid");
    }

    #[test]
    fn forged_fails_as_a_server_error_when_nothing_was_accepted_but_something_crashed() {
        let results =
            named(&[("HS256 with JWK JSON", 401), ("HS256 with SPKI DER", 502), ("HS256 with SPKI PEM", 500)]);
        let f = forged("alg-confusion", &results, "refused", ALG_CONFUSION);
        assert_eq!((f.status, f.meaning), (Status::Fail, SERVER_ERROR));
        assert_eq!(f.detail, "server error on HS256 with SPKI DER (502), HS256 with SPKI PEM (500)");
        let redirect = forged("alg-none", &named(&[("alg none", 302)]), "refused", ALG_NONE);
        assert_eq!(redirect.status, Status::Pass, "only 2xx counts as accepted");
    }

    #[test]
    fn weak_secret_fails_with_the_secret_found_and_passes_otherwise() {
        let f = weak_secret(Some("secret"));
        assert_eq!((f.id, f.status), ("weak-secret", Status::Fail));
        assert_eq!(f.detail, "the HS256 secret is \"secret\"");
        let f = weak_secret(None);
        assert_eq!(f.status, Status::Pass);
        assert_eq!(f.detail, "none of 30 common secrets signs the token (checked offline)");
    }

    #[test]
    fn an_expired_token_must_be_refused_without_a_server_error() {
        let f = expired(&resp(401, &[], r#"{"error":"invalid_token"}"#), "the --expired-token");
        assert_eq!((f.id, f.status), ("expired", Status::Pass));
        assert_eq!(f.detail, "the --expired-token is refused (401 invalid_token)");
        let f = expired(&resp(200, &[], "{}"), "the token after its exp + leeway");
        assert_eq!((f.status, f.detail.as_str()), (Status::Fail, "the token after its exp + leeway was ACCEPTED"));
        let f = expired(&resp(503, &[], ""), "the --expired-token");
        assert_eq!((f.status, f.meaning), (Status::Fail, SERVER_ERROR));
        assert_eq!(f.detail, "the --expired-token: server error 503");
    }

    #[test]
    fn tokens_in_urls_pass_only_when_both_are_refused_with_400() {
        let bad_request = resp(400, &[], r#"{"error":"invalid_request"}"#);
        let f = token_in_url(&bad_request, &bad_request);
        assert_eq!((f.id, f.status), ("token-in-url", Status::Pass));
        assert_eq!(
            f.detail,
            "tokens in URLs are refused with 400 (protected endpoint 400 invalid_request, refresh 400 invalid_request)"
        );
        let unauthorized = resp(401, &[], "");
        assert_eq!(token_in_url(&unauthorized, &bad_request).status, Status::Warn);
        assert_eq!(token_in_url(&bad_request, &unauthorized).status, Status::Warn);
        let f = token_in_url(&resp(200, &[], "{}"), &bad_request);
        assert_eq!(f.status, Status::Fail);
        assert!(f.detail.starts_with("an access token in the query string is ACCEPTED"));
    }

    const GOOD: &[(&str, &str)] = &[
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "no-referrer"),
        ("strict-transport-security", "max-age=63072000"),
        ("cache-control", "no-store"),
    ];

    fn with_header<'a>(headers: &[(&'a str, &'a str)], extra: (&'a str, &'a str)) -> Vec<(&'a str, &'a str)> {
        headers.iter().copied().chain([extra]).collect()
    }

    fn without<'a>(headers: &[(&'a str, &'a str)], name: &str) -> Vec<(&'a str, &'a str)> {
        headers.iter().copied().filter(|(n, _)| *n != name).collect()
    }

    #[test]
    fn security_headers_pass_with_every_header_and_a_bearer_challenge() {
        let ok = resp(200, GOOD, "{}");
        let denied = resp(401, &with_header(GOOD, ("www-authenticate", "Bearer error=\"invalid_token\"")), "");
        let f = security_headers(&ok, &denied, true, None);
        assert_eq!((f.id, f.status), ("security-headers", Status::Pass));
        assert_eq!(f.detail, "nosniff, framing, referrer policy and 401 challenge present");
        let csp = without(GOOD, "x-frame-options");
        let csp = with_header(&csp, ("content-security-policy", "frame-ancestors 'none'"));
        let (ok, denied) = (resp(200, &csp, "{}"), resp(403, &csp, ""));
        assert_eq!(security_headers(&ok, &denied, true, None).status, Status::Pass, "CSP frame-ancestors frames too");
    }

    #[test]
    fn security_headers_fail_without_nosniff_or_hsts_over_https() {
        let no_nosniff = without(GOOD, "x-content-type-options");
        let f = security_headers(&resp(200, &no_nosniff, ""), &resp(403, GOOD, ""), false, None);
        assert_eq!((f.status, f.detail.as_str()), (Status::Fail, "missing: X-Content-Type-Options: nosniff"));
        let no_hsts = without(GOOD, "strict-transport-security");
        let (ok, denied) = (resp(200, &no_hsts, ""), resp(403, &no_hsts, ""));
        assert_eq!(security_headers(&ok, &denied, false, None).status, Status::Pass, "HSTS is for HTTPS only");
        let f = security_headers(&ok, &denied, true, None);
        assert_eq!((f.status, f.detail.as_str()), (Status::Fail, "missing: Strict-Transport-Security"));
    }

    #[test]
    fn security_headers_warn_on_the_weaker_omissions_sorted_once_each() {
        let bare = [("x-content-type-options", "nosniff"), ("x-powered-by", "Express")];
        let (ok, denied) = (resp(200, &bare, ""), resp(401, &bare, ""));
        let f = security_headers(&ok, &denied, false, None);
        assert_eq!(f.status, Status::Warn);
        assert_eq!(
            f.detail,
            "missing: Cache-Control: no-store on authenticated responses, Referrer-Policy, WWW-Authenticate: Bearer \
             on 401, X-Frame-Options / CSP frame-ancestors, X-Powered-By (names the framework)"
        );
        let token_response = resp(200, &[], "{}");
        let f = security_headers(&ok, &denied, false, Some(&token_response));
        assert!(!f.detail.contains("Cache-Control"), "the token response is graded instead: {}", f.detail);
        let basic = with_header(GOOD, ("www-authenticate", "Basic realm=\"x\""));
        let f = security_headers(&resp(200, GOOD, ""), &resp(401, &basic, ""), true, None);
        assert_eq!((f.status, f.detail.as_str()), (Status::Warn, "missing: WWW-Authenticate: Bearer on 401"));
    }

    #[test]
    fn security_headers_fail_when_a_garbage_token_crashes_the_server() {
        let f = security_headers(&resp(200, GOOD, ""), &resp(500, GOOD, ""), true, None);
        assert_eq!(f.status, Status::Fail);
        assert_eq!(f.detail, "missing: a 4xx for a garbage token (got a server error)");
    }

    #[test]
    fn token_cache_needs_no_store_on_the_token_response() {
        let f = token_cache(&resp(200, &[("cache-control", "no-store")], "{}"));
        assert_eq!(
            (f.id, f.status, f.detail.as_str()),
            ("token-cache", Status::Pass, "token responses carry Cache-Control: no-store")
        );
        let f = token_cache(&resp(200, &[("cache-control", "private, max-age=0")], "{}"));
        assert_eq!(
            (f.status, f.detail.as_str()),
            (Status::Fail, "the login response has Cache-Control: private, max-age=0")
        );
        let f = token_cache(&resp(200, &[], "{}"));
        assert_eq!((f.status, f.detail.as_str()), (Status::Fail, "the login response has no Cache-Control"));
    }
}
