//! The browser side, built into the binary: the demo page at `/`, its script and stylesheet, and
//! `keycard.js` (the dependency-free browser client), all from `web/` via `include_str!`.

use axum::response::Response;

use crate::assets::{ASSET_CSP, asset};

/// What the demo page may load: its own scripts, styles and API calls, nothing inline, no
/// framing. `require-trusted-types-for` makes any `innerHTML`-style sink throw, so even a bug in
/// the demo cannot turn a server string into markup.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                        img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
                        require-trusted-types-for 'script'";

/// The reset form: its script and stylesheet only, no framing, no referrer (the page's URL
/// holds the token in its fragment, which no request carries, but it is kept from others too).
const RESET_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                         base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
                         require-trusted-types-for 'script'";

const RESET_HTML: &str = include_str!("../../../../web/reset.html");
const RESET_JS: &str = include_str!("../../../../web/reset.js");
const INDEX_HTML: &str = include_str!("../../../../web/index.html");
const KEYCARD_JS: &str = include_str!("../../../../web/keycard.js");
const DEMO_JS: &str = include_str!("../../../../web/demo.js");
const STYLE_CSS: &str = include_str!("../../../../web/style.css");

/// `GET /`: the demo page.
pub async fn index() -> Response {
    asset(INDEX_HTML, "text/html; charset=utf-8", PAGE_CSP)
}

/// `GET /keycard.js`: the browser client, an ES module.
pub async fn keycard_js() -> Response {
    asset(KEYCARD_JS, "application/javascript", ASSET_CSP)
}

/// `GET /demo.js`: the demo page's logic (a separate file: the page allows no inline script).
pub async fn demo_js() -> Response {
    asset(DEMO_JS, "application/javascript", ASSET_CSP)
}

/// `GET /style.css`: the demo page's stylesheet.
pub async fn style_css() -> Response {
    asset(STYLE_CSS, "text/css; charset=utf-8", ASSET_CSP)
}

/// `GET /auth/password/reset`: the form a mailed reset link opens. It never reads or spends the
/// token (link scanners open links before people do): the page's script takes the token from
/// the fragment and posts it with the new password.
pub async fn reset_page() -> Response {
    let mut response = asset(RESET_HTML, "text/html; charset=utf-8", RESET_CSP);
    response
        .headers_mut()
        .insert(axum::http::header::REFERRER_POLICY, axum::http::HeaderValue::from_static("no-referrer"));
    response
}

/// `GET /reset.js`: the reset form's script.
pub async fn reset_js() -> Response {
    asset(RESET_JS, "application/javascript", ASSET_CSP)
}
