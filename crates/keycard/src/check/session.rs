//! Sessions: logging in, refreshing and logging out the way the deployment expects (refresh
//! token in the body or in a cookie, with its CSRF token), reading what each answer issued,
//! and the session probes: refresh rotation, reuse detection, and logout.

use std::fmt::Write as _;

use anyhow::Context as _;
use serde_json::json;

use super::http::Resp;
use super::meanings::{LOGOUT, MFA, REUSE, REVOKE_ACCESS, ROTATION, SERVER_ERROR, SKIPPED};
use super::{Audit, Finding, Status};

/// Where a refresh token travels: a JSON body field, or a cookie.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Via {
    Body(String),
    Cookie(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Refresh {
    pub(super) value: String,
    pub(super) via: Via,
}

/// A login's answer to the right password.
pub(super) enum Login {
    /// Signed in.
    Session(Issued),
    /// The account asks for a second factor: the challenge.
    SecondFactor(Resp),
}

/// What a login or refresh answered.
#[derive(Debug)]
pub(super) struct Issued {
    pub(super) access: Option<String>,
    pub(super) refresh: Option<Refresh>,
    /// The CSRF cookie (name, value) and the token to send in `X-CSRF-Token`.
    pub(super) csrf: Option<(String, String)>,
    pub(super) resp: Resp,
}

impl Issued {
    /// The tokens in an answer, under the field names common APIs use. The refresh token is
    /// looked for the way `previous` travelled first (body, unless it was a cookie); the CSRF
    /// token is the CSRF cookie's value unless the body names one.
    pub(super) fn from(resp: Resp, previous: Option<&Refresh>) -> Self {
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
pub(super) struct Dress<'a> {
    pub(super) csrf_header: bool,
    pub(super) origin: Option<&'a str>,
}

/// A refresh as the deployment's own front end sends it: CSRF header, no foreign Origin.
pub(super) const HONEST: Dress<'static> = Dress { csrf_header: true, origin: None };

/// A refresh that returned the same token did not rotate.
fn rotation(used: &Refresh, next: &Refresh) -> Finding {
    if next.value == used.value {
        Finding::new("refresh-rotation", Status::Fail, "a refresh returned the same refresh token", ROTATION)
    } else {
        Finding::new("refresh-rotation", Status::Pass, "every refresh issues a new refresh token", ROTATION)
    }
}

/// Reuse detection from the answers to the replayed token and to its successor, and the status
/// the successor's sibling access token got afterwards (a warning if still accepted).
fn reuse(replay: &Resp, successor: &Resp, access_after: Option<u16>) -> Vec<Finding> {
    let seen = format!("replay of the used token: {}; its successor: {}", replay.brief(), successor.brief());
    let verdict = if replay.status == 200 {
        Finding::new("refresh-reuse", Status::Fail, format!("a used refresh token was ACCEPTED again ({seen})"), REUSE)
    } else if successor.status == 200 {
        let detail = format!("no reuse detection: the family lives on after a replay ({seen})");
        Finding::new("refresh-reuse", Status::Fail, detail, REUSE)
    } else if replay.status >= 500 || successor.status >= 500 {
        Finding::new("refresh-reuse", Status::Fail, format!("server error ({seen})"), SERVER_ERROR)
    } else {
        let detail = format!("replay refused and the whole family revoked ({seen})");
        Finding::new("refresh-reuse", Status::Pass, detail, REUSE)
    };
    let passed = verdict.status == Status::Pass;
    let mut findings = vec![verdict];
    if passed && access_after == Some(200) {
        let detail = "after reuse, the family's access token is still accepted until it expires";
        findings.push(Finding::new("reuse-revokes-access", Status::Warn, detail, REVOKE_ACCESS));
    }
    findings
}

/// Logout from the answers to the logout, to the refresh token after it, and to the access
/// token after it.
fn logout(out: &Resp, refresh_after: &Resp, access_after: &Resp) -> Finding {
    let seen = format!(
        "logout {}, then refresh {}, access token {}",
        out.brief(),
        refresh_after.brief(),
        access_after.brief()
    );
    if refresh_after.status == 200 {
        Finding::new("logout", Status::Fail, format!("the refresh token still works after logout ({seen})"), LOGOUT)
    } else if access_after.status == 200 {
        let detail = format!("the access token outlives logout until it expires ({seen})");
        Finding::new("logout", Status::Warn, detail, REVOKE_ACCESS)
    } else {
        Finding::new("logout", Status::Pass, format!("logout ends refresh and access tokens ({seen})"), LOGOUT)
    }
}

impl Audit {
    /// Logs the test account in, asking for body delivery of the refresh token when
    /// `body_delivery` (and retrying without the field if the server refuses it).
    pub(super) async fn login(&self, body_delivery: bool) -> anyhow::Result<Issued> {
        match self.login_answer(body_delivery).await? {
            Login::Session(issued) => Ok(issued),
            Login::SecondFactor(_) => anyhow::bail!("the account asks for a second factor"),
        }
    }

    /// The login's answer: a session, or (`{"mfa_required": true}`) the second step.
    pub(super) async fn login_answer(&self, body_delivery: bool) -> anyhow::Result<Login> {
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
        if resp.json["mfa_required"] == true {
            return Ok(Login::SecondFactor(resp));
        }
        Ok(Login::Session(Issued::from(resp, None)))
    }

    /// The probe of a login that asks for a second factor (`{mfa_required, mfa_token}`): the
    /// answer to the right password holds no token and sets no session cookie, a wrong code is
    /// refused at the verify endpoint, and the challenge is not a refresh token.
    pub(super) async fn mfa_probe(&mut self, challenge: &Resp) -> anyhow::Result<()> {
        let leaked = challenge.json.get("access_token").is_some()
            || challenge.json.get("refresh_token").is_some()
            || !challenge.cookies.iter().all(|c| c.value.is_empty());
        let token = challenge.json["mfa_token"].as_str().unwrap_or("").to_owned();
        if leaked {
            let detail = "the answer to the right password already holds a token or a session cookie";
            self.add("mfa", Status::Fail, detail, MFA);
            return Ok(());
        }
        // A code no authenticator shows right now is very unlikely to be right; "000000" would
        // be right once in a million logins, so try two.
        let mut wrong = Vec::new();
        for code in ["000000", "999999"] {
            let resp = self.http.post_json(&self.ep.mfa_verify, &json!({"mfa_token": token, "code": code})).await?;
            wrong.push(resp);
        }
        let as_refresh = self.http.post_json(&self.ep.refresh, &json!({"refresh_token": token})).await?;
        let accepted = wrong.iter().filter(|r| r.status == 200).count();
        let (status, detail) = if accepted == 2 {
            (Status::Fail, "the verify endpoint accepted two different wrong codes".to_owned())
        } else if as_refresh.status == 200 {
            (Status::Fail, "the mfa_token works as a refresh token".to_owned())
        } else if wrong.iter().any(|r| r.status >= 500) || as_refresh.status >= 500 {
            (Status::Fail, format!("a wrong code or a misused challenge crashed the server ({})", as_refresh.brief()))
        } else {
            let seen = wrong.first().map(Resp::brief).unwrap_or_default();
            (Status::Pass, format!("a second factor is demanded after the right password; wrong codes get {seen}"))
        };
        self.add("mfa", status, detail, MFA);
        Ok(())
    }

    /// Presents `r` to the refresh endpoint: in the body, or as a cookie dressed as `dress` says.
    pub(super) async fn refresh(
        &self,
        r: &Refresh,
        csrf: Option<&(String, String)>,
        dress: Dress<'_>,
    ) -> anyhow::Result<Issued> {
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

    pub(super) async fn logout(&self, r: &Refresh, csrf: Option<&(String, String)>) -> anyhow::Result<Resp> {
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

    /// Rotation and reuse detection: rotate R0 → R1, present R0 again (expect 401), then R1
    /// (expect 401: the family is revoked). A second session B must not be affected.
    pub(super) async fn reuse_probe(&mut self, a: Issued) -> anyhow::Result<()> {
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
        self.push(rotation(&r0, &r1));
        let replay = self.refresh(&r0, first.csrf.as_ref().or(a.csrf.as_ref()), HONEST).await?;
        let family = self.refresh(&r1, first.csrf.as_ref().or(a.csrf.as_ref()), HONEST).await?;
        let access_after = match &first.access {
            Some(at) => Some(self.http.get_bearer(self.ep.me.as_deref().unwrap_or("/auth/me"), at).await?.status),
            None => None,
        };
        for finding in reuse(&replay.resp, &family.resp, access_after) {
            self.push(finding);
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

    /// Logout must end the session: its refresh token stops working, and (on keycard) so does
    /// its access token.
    pub(super) async fn logout_probe(&mut self) -> anyhow::Result<()> {
        let d = self.login(true).await.context("login for the logout probe")?;
        let (Some(r), Some(at)) = (d.refresh.clone(), d.access.clone()) else {
            self.add("logout", Status::Skip, "the login answer lacks a token", SKIPPED);
            return Ok(());
        };
        let out = self.logout(&r, d.csrf.as_ref()).await?;
        let after = self.refresh(&r, d.csrf.as_ref(), HONEST).await?;
        let me = self.http.get_bearer(self.ep.me.as_deref().unwrap_or("/auth/me"), &at).await?;
        self.push(logout(&out, &after.resp, &me));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::check::http::resp;

    fn body(v: Via) -> Refresh {
        Refresh { value: "r".to_owned(), via: v }
    }

    #[test]
    fn a_body_login_gives_the_access_and_refresh_tokens_from_the_json() {
        let answer = resp(200, &[], r#"{"access_token":"a.b.c","refresh_token":"kcrt_1","token_type":"Bearer"}"#);
        let issued = Issued::from(answer, None);
        assert_eq!(issued.access.as_deref(), Some("a.b.c"));
        assert_eq!(issued.refresh, Some(Refresh { value: "kcrt_1".into(), via: Via::Body("refresh_token".into()) }));
        assert_eq!(issued.csrf, None);
    }

    #[test]
    fn camel_case_and_token_field_names_are_read_too() {
        let issued = Issued::from(resp(200, &[], r#"{"accessToken":"at","refreshToken":"rt"}"#), None);
        assert_eq!(issued.access.as_deref(), Some("at"));
        assert_eq!(issued.refresh, Some(Refresh { value: "rt".into(), via: Via::Body("refreshToken".into()) }));
        let issued = Issued::from(resp(200, &[], r#"{"token":"t","refresh_token":7}"#), None);
        assert_eq!(issued.access.as_deref(), Some("t"));
        assert_eq!(issued.refresh, None, "a non-string field is no token");
    }

    #[test]
    fn a_cookie_login_gives_the_refresh_cookie_and_the_csrf_pair() {
        let answer = resp(
            200,
            &[
                ("set-cookie", "__Host-kc_refresh=kcrt_c; Path=/; HttpOnly; Secure; SameSite=Strict"),
                ("set-cookie", "__Host-kc_csrf=csrf_c; Path=/; Secure; SameSite=Strict"),
            ],
            r#"{"access_token":"a.b.c"}"#,
        );
        let issued = Issued::from(answer, None);
        assert_eq!(
            issued.refresh,
            Some(Refresh { value: "kcrt_c".into(), via: Via::Cookie("__Host-kc_refresh".into()) })
        );
        assert_eq!(issued.csrf, Some(("__Host-kc_csrf".into(), "csrf_c".into())));
    }

    #[test]
    fn the_csrf_token_in_the_body_wins_over_the_cookie_value_and_xsrf_names_count() {
        let answer = resp(200, &[("set-cookie", "XSRF-TOKEN=cookie-side; Path=/")], r#"{"csrfToken":"body-side"}"#);
        assert_eq!(Issued::from(answer, None).csrf, Some(("XSRF-TOKEN".into(), "body-side".into())));
        let no_cookie = resp(200, &[], r#"{"csrf_token":"body-side"}"#);
        assert_eq!(Issued::from(no_cookie, None).csrf, None, "a body token without a cookie is not a CSRF pair");
    }

    #[test]
    fn cleared_cookies_are_no_tokens() {
        let answer = resp(
            200,
            &[("set-cookie", "kc_refresh=; Max-Age=0"), ("set-cookie", "kc_csrf=; Max-Age=0")],
            r#"{"ok":true}"#,
        );
        let issued = Issued::from(answer, None);
        assert_eq!((issued.access, issued.refresh, issued.csrf), (None, None, None));
    }

    #[test]
    fn the_refresh_token_is_taken_the_way_the_previous_one_travelled() {
        let both =
            || resp(200, &[("set-cookie", "kc_refresh=from-cookie; HttpOnly")], r#"{"refresh_token":"from-body"}"#);
        let by_cookie = Refresh { value: "old".into(), via: Via::Cookie("kc_refresh".into()) };
        assert_eq!(Issued::from(both(), Some(&by_cookie)).refresh.unwrap().value, "from-cookie");
        assert_eq!(
            Issued::from(both(), Some(&body(Via::Body("refresh_token".into())))).refresh.unwrap().value,
            "from-body"
        );
        assert_eq!(Issued::from(both(), None).refresh.unwrap().value, "from-body");
        let cookie_only = resp(200, &[("set-cookie", "kc_refresh=from-cookie")], "{}");
        let r = Issued::from(cookie_only, Some(&body(Via::Body("refresh_token".into())))).refresh.unwrap();
        assert_eq!(r.via, Via::Cookie("kc_refresh".into()), "else the other way");
    }

    #[test]
    fn rotation_fails_when_the_refresh_token_comes_back_unchanged() {
        let r0 = body(Via::Body("refresh_token".into()));
        let mut r1 = r0.clone();
        assert_eq!(rotation(&r0, &r1).status, Status::Fail);
        r1.value = "r'".into();
        let f = rotation(&r0, &r1);
        assert_eq!((f.id, f.status), ("refresh-rotation", Status::Pass));
    }

    #[test]
    fn reuse_passes_when_the_replay_and_its_successor_are_refused() {
        let refused = resp(401, &[], r#"{"error":"invalid_grant"}"#);
        let findings = reuse(&refused, &refused, Some(401));
        assert_eq!(findings.len(), 1);
        assert_eq!((findings[0].id, findings[0].status), ("refresh-reuse", Status::Pass));
        assert_eq!(
            findings[0].detail,
            "replay refused and the whole family revoked (replay of the used token: 401 invalid_grant; its \
             successor: 401 invalid_grant)"
        );
        assert_eq!(reuse(&refused, &refused, None).len(), 1, "no access token: nothing more to say");
    }

    #[test]
    fn reuse_warns_when_the_familys_access_token_still_works() {
        let refused = resp(401, &[], "");
        let findings = reuse(&refused, &refused, Some(200));
        let got: Vec<(&str, Status)> = findings.iter().map(|f| (f.id, f.status)).collect();
        assert_eq!(got, [("refresh-reuse", Status::Pass), ("reuse-revokes-access", Status::Warn)]);
    }

    #[test]
    fn reuse_fails_on_an_accepted_replay_a_living_successor_or_a_server_error() {
        let ok = resp(200, &[], "{}");
        let refused = resp(401, &[], "");
        let crashed = resp(500, &[], "");
        let one = |replay: &Resp, successor: &Resp| {
            let findings = reuse(replay, successor, Some(200));
            assert_eq!(findings.len(), 1, "no access warning on a failure");
            assert_eq!(findings[0].status, Status::Fail);
            findings.into_iter().next().unwrap()
        };
        assert!(one(&ok, &refused).detail.starts_with("a used refresh token was ACCEPTED again"));
        assert!(one(&ok, &ok).detail.starts_with("a used refresh token was ACCEPTED again"));
        assert!(one(&refused, &ok).detail.starts_with("no reuse detection: the family lives on after a replay"));
        let f = one(&crashed, &refused);
        assert!(f.detail.starts_with("server error (replay of the used token: 500;"), "{}", f.detail);
        assert_eq!(f.meaning, SERVER_ERROR);
        assert_eq!(one(&refused, &crashed).meaning, SERVER_ERROR);
    }

    #[test]
    fn logout_passes_only_when_both_tokens_stop_working() {
        let (ok, refused) = (resp(200, &[], "{}"), resp(401, &[], r#"{"error":"invalid_token"}"#));
        let f = logout(&ok, &refused, &refused);
        assert_eq!((f.id, f.status), ("logout", Status::Pass));
        assert_eq!(
            f.detail,
            "logout ends refresh and access tokens (logout 200, then refresh 401 invalid_token, access token 401 \
             invalid_token)"
        );
        let f = logout(&ok, &refused, &ok);
        assert_eq!((f.status, f.meaning), (Status::Warn, REVOKE_ACCESS));
        assert!(f.detail.starts_with("the access token outlives logout until it expires"));
        let f = logout(&ok, &ok, &refused);
        assert_eq!(f.status, Status::Fail);
        assert!(f.detail.starts_with("the refresh token still works after logout"));
        assert_eq!(logout(&refused, &ok, &ok).status, Status::Fail, "a surviving refresh token beats the warning");
    }
}
