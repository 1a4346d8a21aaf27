//! Which paths the probes use: a flag wins, else the deployment's discovery document
//! (`/.well-known/openid-configuration`), else keycard's own paths. The protected endpoint is
//! left to detection (`tokens`) when neither a flag nor the document names one.

use serde_json::Value;

use super::CheckArgs;
use super::http::Http;

pub(super) struct Endpoints {
    /// Where the paths came from, for the report: "discovery document" or "defaults".
    pub(super) source: &'static str,
    pub(super) signup: String,
    pub(super) login: String,
    pub(super) refresh: String,
    pub(super) logout: String,
    /// The second step of a login (keycard's `/auth/mfa/verify`).
    pub(super) mfa_verify: String,
    pub(super) me: Option<String>,
    pub(super) jwks: Option<String>,
}

impl Endpoints {
    /// Fetches the discovery document (any failure or non-JSON answer: no document) and picks.
    pub(super) async fn resolve(http: &Http, args: &CheckArgs) -> anyhow::Result<Self> {
        let discovery = http.send(http.client.get(http.url("/.well-known/openid-configuration"))).await.ok();
        let doc = discovery.filter(|r| r.status == 200 && r.json.is_object()).map(|r| r.json);
        Ok(Self::pick(doc.as_ref(), args))
    }

    /// Flags, else the document's endpoints, else keycard's paths.
    fn pick(doc: Option<&Value>, args: &CheckArgs) -> Self {
        // Discovered URLs are used as paths on the URL given: the check never follows a
        // document to another host.
        // keycard names its own endpoints `keycard_…` (older versions and other servers: without).
        let from_doc = |key: &str| {
            let named = |k: &str| doc.and_then(|d| d[k].as_str()).map(path_of);
            named(&format!("keycard_{key}")).or_else(|| named(key))
        };
        let pick = |flag: &Option<String>, key: &str, default: &str| {
            flag.clone().or_else(|| from_doc(key)).unwrap_or_else(|| default.to_owned())
        };
        let source = if doc.is_some() { "discovery document" } else { "defaults" };
        Self {
            source,
            signup: pick(&args.signup_path, "signup_endpoint", "/auth/signup"),
            login: pick(&args.login_path, "login_endpoint", "/auth/login"),
            refresh: pick(&args.refresh_path, "refresh_endpoint", "/auth/refresh"),
            logout: pick(&args.logout_path, "logout_endpoint", "/auth/logout"),
            mfa_verify: from_doc("mfa_verify_endpoint").unwrap_or_else(|| "/auth/mfa/verify".to_owned()),
            me: args.me_path.clone().or_else(|| from_doc("me_endpoint")).or_else(|| from_doc("userinfo_endpoint")),
            jwks: Some(pick(&args.jwks, "jwks_uri", "/.well-known/jwks.json")),
        }
    }

    pub(super) fn describe(&self) -> String {
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

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::check::args_from;

    #[test]
    fn path_of_keeps_the_path_and_query_of_a_url_and_leaves_a_path_alone() {
        assert_eq!(path_of("https://id.example.com/auth/login"), "/auth/login");
        assert_eq!(path_of("https://evil.example.net:8443/jwks?v=2"), "/jwks?v=2");
        assert_eq!(path_of("https://id.example.com"), "/");
        assert_eq!(path_of("/auth/refresh"), "/auth/refresh");
    }

    #[test]
    fn without_flags_or_a_document_the_paths_are_keycards() {
        let ep = Endpoints::pick(None, &args_from(&["http://127.0.0.1:8080"]));
        assert_eq!(ep.source, "defaults");
        assert_eq!(
            (ep.signup.as_str(), ep.login.as_str(), ep.refresh.as_str(), ep.logout.as_str()),
            ("/auth/signup", "/auth/login", "/auth/refresh", "/auth/logout")
        );
        assert_eq!(ep.me, None, "the protected endpoint is detected");
        assert_eq!(ep.jwks.as_deref(), Some("/.well-known/jwks.json"));
        assert_eq!(
            ep.describe(),
            "login /auth/login, refresh /auth/refresh, logout /auth/logout, protected (detect), \
             jwks /.well-known/jwks.json"
        );
    }

    #[test]
    fn the_document_gives_paths_on_the_url_checked_and_flags_override_it() {
        let doc = json!({
            "login_endpoint": "https://other.example.net/v1/login",
            "refresh_endpoint": "https://id.example.com/v1/refresh",
            "userinfo_endpoint": "https://id.example.com/v1/me",
            "jwks_uri": "https://keys.example.net/v1/jwks",
            "logout_endpoint": 7
        });
        let args = args_from(&["https://id.example.com", "--refresh-path", "/flag/refresh"]);
        let ep = Endpoints::pick(Some(&doc), &args);
        assert_eq!(ep.source, "discovery document");
        assert_eq!(ep.login, "/v1/login", "never another host");
        assert_eq!(ep.refresh, "/flag/refresh", "the flag wins");
        assert_eq!(ep.logout, "/auth/logout", "a non-string entry is ignored");
        assert_eq!(ep.signup, "/auth/signup");
        assert_eq!(ep.me.as_deref(), Some("/v1/me"));
        assert_eq!(ep.jwks.as_deref(), Some("/v1/jwks"));
    }

    #[test]
    fn a_me_path_flag_beats_the_userinfo_endpoint() {
        let doc = json!({"userinfo_endpoint": "https://id.example.com/userinfo"});
        let ep = Endpoints::pick(Some(&doc), &args_from(&["https://id.example.com", "--me-path", "/api/me"]));
        assert_eq!(ep.me.as_deref(), Some("/api/me"));
        assert!(ep.describe().contains("protected /api/me"));
    }
}
