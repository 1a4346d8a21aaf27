//! What each finding means: the text printed under every report line that did not pass, so
//! an operator learns why the hole matters without looking anything up.

/// Under a skipped check.
pub(super) const SKIPPED: &str = "Not tested; the other results stand on their own.";

pub(super) const SERVER_ERROR: &str = "A forged or stale credential crashed the server instead of getting a 401: a denial-of-service lever, and a sign the input reaches code that does not expect it.";
pub(super) const ALG_NONE: &str = "A verifier that honours alg \"none\" accepts tokens anyone can write: full account takeover. The algorithm must come from the key, never from the token.";
pub(super) const ALG_CONFUSION: &str = "HS256 keyed with the public key lets anyone who reads the JWKS mint valid tokens: the verifier must bind each key to its algorithm.";
pub(super) const WEAK_SECRET: &str = "An HS256 secret from a word list can be recovered offline from one token; then anyone can mint tokens. Use 32+ random bytes, or asymmetric keys.";
pub(super) const TAMPERED: &str = "Changing claims, the signature or the kid must invalidate a token; acceptance means signatures are not checked (or unknown kids fall back to a default key).";
pub(super) const EXPIRED: &str =
    "A token past exp (plus a small leeway) must be refused; otherwise a stolen token never dies.";
pub(super) const TOKEN_IN_URL: &str = "Tokens in URLs leak into server logs, proxies, browser history and Referer headers. A 400 tells the client developer at once; silently ignoring the parameter lets the leak go unnoticed.";
pub(super) const HEADERS: &str = "nosniff stops content-type confusion, framing protection stops clickjacking, Referrer-Policy stops URL leaks, HSTS stops TLS stripping, a Bearer challenge on 401 tells clients to refresh (RFC 6750).";
pub(super) const NO_STORE: &str = "Token responses must carry Cache-Control: no-store (RFC 6749 §5.1): otherwise a shared cache or the browser cache may keep and replay them.";
pub(super) const ROTATION: &str = "A refresh token that stays the same after use is a long-lived bearer secret: steal it once, use it for its whole lifetime.";
pub(super) const REUSE: &str = "With rotation but no reuse detection, a thief who uses a stolen refresh token keeps a live session, and the victim's later refresh fails quietly. Replaying a used token must revoke the whole token family.";
pub(super) const REVOKE_ACCESS: &str = "Revocation that leaves the session's access tokens valid gives a thief minutes more; keycard revokes the sid so its own routes and verifiers following the revocation feed refuse them.";
pub(super) const LOGOUT: &str =
    "Logout must end the session server-side; otherwise a copied refresh token outlives the user's logout.";
pub(super) const CSRF: &str = "A cookie-authenticated refresh is an ambient credential: without a CSRF token and an Origin check, another site (or a sibling subdomain, which SameSite does not stop) can make the browser refresh and, with a permissive CORS policy, read the tokens.";
pub(super) const COOKIES: &str = "The refresh cookie must be HttpOnly (no script access, so XSS cannot steal it), Secure (never over plain HTTP) and SameSite (not sent on cross-site requests), ideally scoped to the auth path.";
pub(super) const MFA: &str = "On an account with a second factor, a right password must give no token and no session cookie, only a short-lived, single-use challenge: otherwise the password alone is the account. A wrong code must be refused, and the challenge must not work as a refresh token.";
