//! The browser side, built into the binary: the demo page at `/`, its script and stylesheet,
//! `keycard.js` (the dependency-free browser client), and the pages mailed links open (password
//! reset, email verification, email change), all from `web/` via `include_str!`.

use std::sync::LazyLock;

use axum::response::Response;

use crate::assets::{ASSET_CSP, asset};

/// What the demo page may load: its own scripts, styles and API calls, nothing inline, no
/// framing. `require-trusted-types-for` makes any `innerHTML`-style sink throw, so even a bug in
/// the demo cannot turn a server string into markup.
const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                        img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
                        require-trusted-types-for 'script'";

/// The pages mailed links open: their scripts and stylesheet only (and the empty `data:` icon
/// that spares a `/favicon.ico` request), no framing, no referrer (the page's URL holds the
/// token in its fragment, which no request carries, but it is kept from others too).
const LINK_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                        img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'; \
                        require-trusted-types-for 'script'";

const RESET_HTML: &str = include_str!("../../../../web/reset.html");
const RESET_JS: &str = include_str!("../../../../web/reset.js");
const LINK_HTML: &str = include_str!("../../../../web/link.html");
const LINK_JS: &str = include_str!("../../../../web/link.js");
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

/// A page a mailed link opens: never reads or spends the token (link scanners open links, and may
/// run their scripts, before people do). The page's script takes the token from the fragment and
/// posts it only when the person clicks.
fn link_page(html: &'static str) -> Response {
    let mut response = asset(html, "text/html; charset=utf-8", LINK_CSP);
    response
        .headers_mut()
        .insert(axum::http::header::REFERRER_POLICY, axum::http::HeaderValue::from_static("no-referrer"));
    response
}

/// `GET /auth/password/reset`: the form a mailed reset link opens; it posts the token with the
/// new password.
pub async fn reset_page() -> Response {
    link_page(RESET_HTML)
}

/// `GET /reset.js`: the reset form's script.
pub async fn reset_js() -> Response {
    asset(RESET_JS, "application/javascript", ASSET_CSP)
}

/// `link.html` filled in for one flow: `data-flow` (which call `link.js` makes), the heading,
/// the explanation and the button. Fixed text only, never anything from the request.
fn link_html(flow: &str, heading: &str, text: &str, button: &str) -> String {
    LINK_HTML
        .replace("{{flow}}", flow)
        .replace("{{heading}}", heading)
        .replace("{{text}}", text)
        .replace("{{button}}", button)
}

static VERIFY_HTML: LazyLock<String> = LazyLock::new(|| {
    link_html(
        "verify",
        "Verify your email address",
        "Confirm that this address is yours: nothing happens until you click.",
        "Confirm my address",
    )
});

static EMAIL_CONFIRM_HTML: LazyLock<String> = LazyLock::new(|| {
    link_html(
        "confirm",
        "Confirm your new email address",
        "Your account's address changes to this one when you click.",
        "Confirm my new address",
    )
});

static EMAIL_CANCEL_HTML: LazyLock<String> = LazyLock::new(|| {
    link_html(
        "cancel",
        "Cancel the email change",
        "Someone asked to change your account's address. If it was not you, cancel it: the address stays yours \
         (a change already confirmed is undone, and every session ends). Then change your password.",
        "Cancel the change",
    )
});

/// `GET /auth/email/verify`: the page a mailed verification link opens ("Confirm my address").
pub async fn verify_page() -> Response {
    link_page(&VERIFY_HTML)
}

/// `GET /auth/email/confirm`: the page the link mailed to a new address opens ("Confirm my new
/// address").
pub async fn email_confirm_page() -> Response {
    link_page(&EMAIL_CONFIRM_HTML)
}

/// `GET /auth/email/cancel`: the page the link mailed to the old address opens ("Cancel the
/// change").
pub async fn email_cancel_page() -> Response {
    link_page(&EMAIL_CANCEL_HTML)
}

/// `GET /link.js`: the script of the verification and email-change pages.
pub async fn link_js() -> Response {
    asset(LINK_JS, "application/javascript", ASSET_CSP)
}
