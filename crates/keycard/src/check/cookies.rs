//! Cookies: `Set-Cookie` parsing, the grade of the refresh cookie's flags, and the CSRF probe
//! of the cookie refresh (forged refreshes without the CSRF token or from a foreign origin must
//! be refused while the honest one works).

use anyhow::Context as _;

use super::meanings::{COOKIES, CSRF, SKIPPED};
use super::session::{Dress, HONEST, Refresh, Via};
use super::{Audit, Finding, Status};

/// One `Set-Cookie`, with the attributes the cookie probe grades.
#[derive(Debug, Clone)]
pub(super) struct SetCookie {
    pub(super) name: String,
    pub(super) value: String,
    /// Attribute names lowercased, values as sent (empty for flags such as `HttpOnly`).
    attrs: Vec<(String, String)>,
}

impl SetCookie {
    /// `name=value; Attr; Attr=value…`; `None` when the first part has no `=`. A quoted value
    /// loses its quotes.
    pub(super) fn parse(line: &str) -> Option<Self> {
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

    /// The value of the first attribute called `name` (lowercase).
    pub(super) fn attr(&self, name: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// The refresh cookie `name` among `cookies`, graded: HttpOnly, Secure and a SameSite other
/// than None are required; the path and a `__Secure-`/`__Host-` prefix are noted. `None` when
/// the cookie is not there.
fn cookie_flags(cookies: &[SetCookie], name: &str) -> Option<Finding> {
    let cookie = cookies.iter().find(|c| c.name == name)?;
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
    Some(if bad.is_empty() {
        Finding::new("cookie-flags", Status::Pass, format!("{detail}, HttpOnly, Secure"), COOKIES)
    } else {
        Finding::new("cookie-flags", Status::Fail, format!("{detail}; {}", bad.join("; ")), COOKIES)
    })
}

/// One cookie refresh of the CSRF probe: its name, the status, and the status as shown.
type Attempt<'a> = (&'a str, u16, String);

/// The CSRF verdict from the four attempts, in order: three forged (no CSRF token, a foreign
/// Origin, both), then the honest control. Any forged one accepted fails; the control refused
/// makes the run inconclusive.
fn csrf(results: &[Attempt<'_>; 4]) -> Finding {
    let shown = results.iter().map(|(n, _, b)| format!("{n}: {b}")).collect::<Vec<_>>().join("; ");
    let forged_ok: Vec<&str> = results[..3].iter().filter(|r| r.1 == 200).map(|r| r.0).collect();
    if !forged_ok.is_empty() {
        Finding::new(
            "csrf",
            Status::Fail,
            format!("cookie refresh ACCEPTED with {} ({shown})", forged_ok.join(", ")),
            CSRF,
        )
    } else if results[3].1 != 200 {
        Finding::new(
            "csrf",
            Status::Warn,
            format!("inconclusive: even the honest cookie refresh failed ({shown})"),
            CSRF,
        )
    } else {
        Finding::new("csrf", Status::Pass, format!("forged cookie refreshes refused ({shown})"), CSRF)
    }
}

impl Audit {
    /// The cookie login: refresh-cookie flags, then the CSRF defences of the cookie refresh.
    pub(super) async fn cookie_probes(&mut self) -> anyhow::Result<()> {
        let c = self.login(false).await.context("cookie login")?;
        let (mut current, name) = match &c.refresh {
            Some(r @ Refresh { via: Via::Cookie(name), .. }) => (r.clone(), name.clone()),
            _ => {
                self.add("cookie-flags", Status::Skip, "the refresh token is not sent in a cookie", SKIPPED);
                self.add("csrf", Status::Skip, "no refresh cookie: no ambient credential to ride on", SKIPPED);
                return Ok(());
            }
        };
        if let Some(finding) = cookie_flags(&c.resp.cookies, &name) {
            self.push(finding);
        }
        let mut csrf_cookie = c.csrf.clone();
        let origin = self.args.foreign_origin.clone();
        let probes = [
            ("no X-CSRF-Token", Dress { csrf_header: false, origin: None }),
            ("foreign Origin", Dress { csrf_header: true, origin: Some(&origin) }),
            ("no X-CSRF-Token + foreign Origin", Dress { csrf_header: false, origin: Some(&origin) }),
            ("control: X-CSRF-Token, no Origin", HONEST),
        ];
        let mut results = Vec::new();
        for (name, dress) in probes {
            let got = self.refresh(&current, csrf_cookie.as_ref(), dress).await?;
            results.push((name, got.resp.status, got.resp.brief()));
            if got.resp.status == 200 {
                // The token rotated: follow it, or the next probe fails for the wrong reason.
                current = got.refresh.unwrap_or(current);
                csrf_cookie = got.csrf.or(csrf_cookie);
            }
        }
        self.logout(&current, csrf_cookie.as_ref()).await?;
        let results: [Attempt<'_>; 4] = results.try_into().expect("four attempts");
        self.push(csrf(&results));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cookie(line: &str) -> SetCookie {
        SetCookie::parse(line).unwrap()
    }

    #[test]
    fn parse_reads_the_name_value_and_attributes() {
        let c = cookie("__Host-kc_refresh=kcrt_abc; Path=/auth; HttpOnly; Secure; SameSite=Strict; Max-Age = 604800");
        assert_eq!((c.name.as_str(), c.value.as_str()), ("__Host-kc_refresh", "kcrt_abc"));
        assert_eq!(c.attr("path"), Some("/auth"));
        assert_eq!(c.attr("httponly"), Some(""));
        assert_eq!(c.attr("secure"), Some(""));
        assert_eq!(c.attr("samesite"), Some("Strict"), "values keep their case");
        assert_eq!(c.attr("max-age"), Some("604800"), "spaces around = are trimmed");
        assert_eq!(c.attr("domain"), None);
        assert_eq!(c.attr("Path"), None, "attribute names are looked up lowercase");
    }

    #[test]
    fn parse_lowercases_attribute_names_strips_quotes_and_keeps_an_empty_value() {
        let c = cookie(" sid = \"quoted\" ;HTTPONLY;SECURE;SAMESITE=lax");
        assert_eq!((c.name.as_str(), c.value.as_str()), ("sid", "quoted"));
        assert_eq!((c.attr("httponly"), c.attr("secure"), c.attr("samesite")), (Some(""), Some(""), Some("lax")));
        let cleared = cookie("kc_refresh=; Path=/; Max-Age=0");
        assert_eq!(cleared.value, "");
        assert_eq!(cookie("a=b=c").value, "b=c", "the value runs to the first ;");
    }

    #[test]
    fn parse_refuses_a_line_without_name_and_value() {
        assert!(SetCookie::parse("").is_none());
        assert!(SetCookie::parse("HttpOnly; Secure").is_none());
    }

    fn flags(line: &str) -> Finding {
        let c = cookie(line);
        cookie_flags(&[cookie("other=1"), c.clone()], &c.name).unwrap()
    }

    #[test]
    fn a_refresh_cookie_with_every_flag_passes_and_notes_its_path_and_prefix() {
        let f = flags("__Host-kc_refresh=x; Path=/; HttpOnly; Secure; SameSite=Strict");
        assert_eq!(f.id, "cookie-flags");
        assert_eq!(f.status, Status::Pass);
        assert_eq!(
            f.detail,
            "__Host-kc_refresh: SameSite=Strict, Path=/ (sent with every request), cookie-name prefix, HttpOnly, Secure"
        );
        let f = flags("kc_refresh=x; Path=/auth/refresh; HttpOnly; Secure; SameSite=LAX");
        assert_eq!(f.status, Status::Pass);
        assert_eq!(f.detail, "kc_refresh: SameSite=Lax, Path=/auth/refresh, HttpOnly, Secure");
    }

    #[test]
    fn a_missing_flag_fails_and_says_which() {
        let f = flags("kc_refresh=x; HttpOnly; SameSite=Strict");
        assert_eq!(f.status, Status::Fail);
        assert_eq!(
            f.detail,
            "kc_refresh: SameSite=Strict, Path=/ (sent with every request); Secure missing (sent over plain HTTP)"
        );
        let f = flags("kc_refresh=x; Secure; SameSite=None");
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.detail.ends_with("; HttpOnly missing (scripts can read it); SameSite=None (sent on cross-site requests)"),
            "{}",
            f.detail
        );
        let f = flags("kc_refresh=x; Secure; HttpOnly; SameSite=sometimes");
        assert_eq!(f.status, Status::Fail);
        assert!(f.detail.ends_with("; SameSite missing"), "an unknown SameSite value counts as none: {}", f.detail);
        let f = flags("__Secure-kc_refresh=x");
        assert_eq!(
            f.detail,
            "__Secure-kc_refresh: Path=/ (sent with every request), cookie-name prefix; HttpOnly missing (scripts can \
             read it); Secure missing (sent over plain HTTP); SameSite missing"
        );
    }

    #[test]
    fn no_cookie_of_that_name_gives_no_finding() {
        assert!(cookie_flags(&[cookie("kc_csrf=1; Secure")], "kc_refresh").is_none());
        assert!(cookie_flags(&[], "kc_refresh").is_none());
    }

    fn attempts(statuses: [u16; 4]) -> [Attempt<'static>; 4] {
        let names = ["no X-CSRF-Token", "foreign Origin", "no X-CSRF-Token + foreign Origin", "control"];
        std::array::from_fn(|i| (names[i], statuses[i], statuses[i].to_string()))
    }

    #[test]
    fn csrf_passes_when_every_forged_refresh_is_refused_and_the_honest_one_works() {
        let f = csrf(&attempts([403, 403, 403, 200]));
        assert_eq!((f.id, f.status), ("csrf", Status::Pass));
        assert_eq!(
            f.detail,
            "forged cookie refreshes refused (no X-CSRF-Token: 403; foreign Origin: 403; \
             no X-CSRF-Token + foreign Origin: 403; control: 200)"
        );
    }

    #[test]
    fn csrf_fails_naming_every_forged_refresh_that_was_accepted() {
        let f = csrf(&attempts([200, 403, 200, 200]));
        assert_eq!(f.status, Status::Fail);
        assert!(
            f.detail.starts_with("cookie refresh ACCEPTED with no X-CSRF-Token, no X-CSRF-Token + foreign Origin ("),
            "{}",
            f.detail
        );
        assert_eq!(csrf(&attempts([403, 200, 403, 401])).status, Status::Fail, "a failure beats inconclusive");
    }

    #[test]
    fn csrf_is_inconclusive_when_even_the_honest_refresh_fails() {
        let f = csrf(&attempts([401, 401, 401, 401]));
        assert_eq!(f.status, Status::Warn);
        assert!(f.detail.starts_with("inconclusive: even the honest cookie refresh failed ("), "{}", f.detail);
    }
}
