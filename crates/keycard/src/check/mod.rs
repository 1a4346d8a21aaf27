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
//! This file holds the command line, the runner ([`Audit::run_all`], which orders the probes)
//! and the report. The rest is split by concern; in each file the async probes send the
//! requests, and the parsing, forging and grading of answers into a [`Finding`] are plain
//! functions with unit tests (what is left in the probes is sequencing: which request next,
//! skip when a precondition is missing):
//!
//! - `http`: the HTTP client and a parsed answer ([`http::Resp`]);
//! - `endpoints`: which paths to probe (flags, discovery document, keycard's defaults);
//! - `jwt`: decoding and encoding tokens, and the forged variants the token probes present;
//! - `der`: the encodings of a published public key a naive verifier might use as an HMAC secret;
//! - `tokens`: the token probes (forged, tampered, expired, tokens in URLs, headers, caching);
//! - `session`: logins, refreshes and logouts, and the rotation, reuse and logout probes;
//! - `cookies`: `Set-Cookie` parsing, the refresh-cookie flags and the CSRF probe;
//! - `meanings`: what each finding means, printed under every line that did not pass.

use std::fmt::Write as _;

use anyhow::Context as _;
use serde_json::json;

use endpoints::Endpoints;
use http::Http;
use meanings::SKIPPED;
use session::Login;

mod cookies;
mod der;
mod endpoints;
mod http;
mod jwt;
mod meanings;
mod session;
mod tokens;

/// Probe a deployment for token-handling holes.
#[derive(clap::Args, Debug)]
pub struct CheckArgs {
    /// Base URL of the deployment, e.g. `https://id.example.com`.
    pub url: String,
    /// Email of a test account (logins, refresh, CSRF and cookie probes need one).
    #[arg(long, requires = "password")]
    pub email: Option<String>,
    /// Password of the test account.
    #[arg(long, env = "KEYCARD_CHECK_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Create the test account first (POST to the signup endpoint; an existing one is fine).
    /// Without `--email`: a throwaway account with a random address and password.
    #[arg(long, conflicts_with = "token")]
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

impl Status {
    fn tag(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
            Status::Skip => "SKIP",
        }
    }
}

/// One line of the report: a check, its verdict, what was seen, and what the verdict means.
#[derive(Debug)]
struct Finding {
    id: &'static str,
    status: Status,
    detail: String,
    meaning: &'static str,
}

impl Finding {
    fn new(id: &'static str, status: Status, detail: impl Into<String>, meaning: &'static str) -> Self {
        Self { id, status, detail: detail.into(), meaning }
    }
}

/// Runs every probe, prints the report, and fails when a check failed.
pub async fn run(mut args: CheckArgs) -> anyhow::Result<()> {
    let base = args.url.trim_end_matches('/').to_owned();
    if args.signup && args.email.is_none() {
        // A throwaway account: nobody's address, a password nobody knows.
        let id = uuid::Uuid::new_v4().simple().to_string();
        args.email = Some(format!("keycard-check-{}@example.com", &id[..12]));
        args.password = Some(format!("check {} {}", &id[12..], uuid::Uuid::new_v4().simple()));
    }
    let http = Http::new(&base)?;
    let endpoints = Endpoints::resolve(&http, &args).await?;
    println!("keycard check {base}");
    println!("  endpoints ({}): {}", endpoints.source, endpoints.describe());
    let mut audit = Audit { http, args, ep: endpoints, findings: Vec::new() };
    audit.run_all().await?;
    print!("{}", report(&audit.findings));
    let failed = count(&audit.findings, Status::Fail);
    if failed > 0 {
        anyhow::bail!("{failed} check(s) failed against {base}");
    }
    if tested(&audit.findings) == 0 {
        // Everything skipped is not a pass.
        anyhow::bail!(
            "nothing was tested against {base}: give a test account (--email and --password), an access token \
             (--token), or --signup to create a throwaway account where signup is open"
        );
    }
    Ok(())
}

/// Findings that tested something (passed, failed or warned), as opposed to skipped ones.
fn tested(findings: &[Finding]) -> usize {
    findings.iter().filter(|f| f.status != Status::Skip).count()
}

fn count(findings: &[Finding], status: Status) -> usize {
    findings.iter().filter(|f| f.status == status).count()
}

/// The report after the probes: a blank line, one line per finding (with its meaning under
/// every one that did not pass), then the counts.
fn report(findings: &[Finding]) -> String {
    let mut out = String::from("\n");
    for f in findings {
        let _ = writeln!(out, "{}  {:<18} {}", f.status.tag(), f.id, f.detail);
        if f.status != Status::Pass {
            let _ = writeln!(out, "      {:<18} {}", "", f.meaning);
        }
    }
    let _ = writeln!(
        out,
        "\n{} passed, {} failed, {} warnings, {} skipped",
        count(findings, Status::Pass),
        count(findings, Status::Fail),
        count(findings, Status::Warn),
        count(findings, Status::Skip)
    );
    out
}

/// The probes' shared state: the client, the options, the endpoints (the protected one is
/// filled in when detected) and the findings so far.
struct Audit {
    http: Http,
    args: CheckArgs,
    ep: Endpoints,
    findings: Vec<Finding>,
}

impl Audit {
    fn add(&mut self, id: &'static str, status: Status, detail: impl Into<String>, meaning: &'static str) {
        self.push(Finding::new(id, status, detail, meaning));
    }

    fn push(&mut self, finding: Finding) {
        self.findings.push(finding);
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
            None if self.args.email.is_some() => match self.login_answer(true).await.context("logging in")? {
                Login::Session(issued) => Some(issued),
                Login::SecondFactor(challenge) => {
                    self.mfa_probe(&challenge).await?;
                    let why = "the account asks for a second factor: use one without for the session probes";
                    for id in ["tokens", "refresh-reuse", "logout", "csrf", "cookie-flags"] {
                        self.add(id, Status::Skip, why, SKIPPED);
                    }
                    return Ok(());
                }
            },
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
        self.push(tokens::token_cache(&a.resp));
        // Session A's access token dies here (reuse revokes its family): the token probes ran first.
        self.reuse_probe(a).await?;
        self.logout_probe().await?;
        self.cookie_probes().await
    }
}

/// `CheckArgs` as the command line would give them, for the unit tests.
#[cfg(test)]
fn args_from(argv: &[&str]) -> CheckArgs {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: CheckArgs,
    }
    Cli::parse_from(std::iter::once("keycard-check").chain(argv.iter().copied())).args
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_report_shows_the_meaning_under_every_finding_that_did_not_pass_and_counts_each_status() {
        let findings = [
            Finding::new("alg-none", Status::Pass, "unsigned tokens are refused", "pass meaning"),
            Finding::new("cookie-flags", Status::Fail, "kc: Secure missing", "cookie meaning"),
            Finding::new("logout", Status::Warn, "the access token outlives logout", "logout meaning"),
            Finding::new("csrf", Status::Skip, "no refresh cookie", "skip meaning"),
        ];
        let expected = [
            "",
            "PASS  alg-none           unsigned tokens are refused",
            "FAIL  cookie-flags       kc: Secure missing",
            "                         cookie meaning",
            "WARN  logout             the access token outlives logout",
            "                         logout meaning",
            "SKIP  csrf               no refresh cookie",
            "                         skip meaning",
            "",
            "1 passed, 1 failed, 1 warnings, 1 skipped",
            "",
        ]
        .join("\n");
        assert_eq!(report(&findings), expected);
    }

    #[test]
    fn an_empty_report_still_counts() {
        assert_eq!(report(&[]), "\n\n0 passed, 0 failed, 0 warnings, 0 skipped\n");
    }

    #[test]
    fn count_counts_one_status_only() {
        let findings = [
            Finding::new("a", Status::Fail, "", ""),
            Finding::new("b", Status::Pass, "", ""),
            Finding::new("c", Status::Fail, "", ""),
        ];
        assert_eq!(count(&findings, Status::Fail), 2);
        assert_eq!(count(&findings, Status::Pass), 1);
        assert_eq!(count(&findings, Status::Warn), 0);
    }

    #[test]
    fn the_command_line_defaults_match_the_documented_ones() {
        let args = args_from(&["https://id.example.com"]);
        assert_eq!(args.url, "https://id.example.com");
        assert_eq!((args.max_wait, args.leeway), (0, 30));
        assert_eq!(args.foreign_origin, "https://attacker.example");
        assert!(args.email.is_none() && args.token.is_none() && !args.signup);
    }
}
