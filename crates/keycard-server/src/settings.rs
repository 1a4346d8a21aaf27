//! Typed configuration, loaded in layers: defaults → TOML file → `KEYCARD_*` env → flags.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use keycard_core::keys::KeyAlg;
use keycard_store::Binding;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Default listen address: loopback only, so a first `keycard serve` exposes nothing.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// All of keycard's settings. Field names are the TOML keys and, upper-cased with the
/// `KEYCARD_` prefix, the environment variables.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on; port 0 picks a free port (tests).
    pub bind: SocketAddr,
    /// The store: a SQLite file path (or `sqlite://…` URL), or a `postgres://` URL.
    pub database: Database,
    /// `iss` of issued tokens and base of discovery URLs; `http://{bind}` when unset.
    pub issuer: Option<String>,
    /// `aud` of issued tokens.
    pub audience: String,
    /// Access-token lifetime.
    pub access_ttl: HumanDuration,
    /// Session idle lifetime, extended by each rotation.
    pub session_idle_ttl: HumanDuration,
    /// Session absolute lifetime.
    pub session_absolute_ttl: HumanDuration,
    /// Clock leeway for `exp`, `nbf` and `iat`.
    pub leeway: HumanDuration,
    /// How long a used refresh token may still be retried (0 = strictly single-use).
    pub reuse_interval: HumanDuration,
    /// Origins allowed to make cookie-authenticated requests (and CORS). The issuer's origin
    /// is always allowed.
    pub allowed_origins: StringList,
    /// Whether cookies carry `Secure` and the `__Secure-` prefix. Browsers accept them on
    /// http://localhost and http://127.0.0.1; turn off only for plain-HTTP non-loopback tests.
    pub cookie_secure: bool,
    /// Password hashes computed at once (≈ cores); more logins wait, then get 503.
    pub hash_concurrency: usize,
    /// How long a login waits for a hashing slot before 503.
    pub hash_queue_timeout: HumanDuration,
    /// Largest accepted request body, in bytes.
    pub max_body_bytes: usize,
    /// Argon2 memory cost in KiB (OWASP: 19456). Lower only for tests.
    pub argon2_memory_kib: u32,
    /// Access tokens remembered as verified (signature and claims), so repeated requests with
    /// the same token skip the signature check; 0 turns the cache off.
    pub verify_cache_size: usize,
    /// Master key sealing signing keys at rest (32 bytes, base64url or hex); usually given as
    /// `KEYCARD_MASTER_KEY`.
    pub master_key: Option<Secret>,
    /// File holding the master key. Default for SQLite: `<database>.master-key`, created on
    /// first start.
    pub master_key_file: Option<String>,
    /// Envelope encryption: the name of the OpenBao/Vault Transit key that wraps the master key.
    /// Only the wrapped master key is stored (in the database); Transit unwraps it at start-up.
    /// Needs `vault_addr` and a way to log in; excludes `master_key` and `master_key_file`.
    pub master_key_transit_key: Option<String>,
    /// OpenBao/Vault address, e.g. `https://bao.internal:8200`.
    pub vault_addr: Option<String>,
    /// File holding the OpenBao/Vault token (e.g. Vault Agent's token sink); read at start-up.
    pub vault_token_file: Option<String>,
    /// AppRole login instead of a token file: the role id.
    pub vault_approle_role_id: Option<String>,
    /// AppRole login: the file holding the secret id.
    pub vault_approle_secret_id_file: Option<String>,
    /// Mount path of the Transit secrets engine.
    pub vault_transit_mount: String,
    /// Algorithm of the first generated signing key (`EdDSA`, `ES256`, `RS256`, `HS256`).
    #[serde(with = "alg_name")]
    pub signing_alg: KeyAlg,
    /// How often the key ring is re-read from the store (rotation by other processes), or the
    /// key files re-read (`signing_key_files`).
    pub key_reload_interval: HumanDuration,
    /// PEM private keys (or `hs256:`-prefixed HS256 secret files) to sign and verify with instead
    /// of the keys sealed in the store: the last one signs, the others verify. Re-read every
    /// `key_reload_interval`.
    pub signing_key_files: StringList,
    /// Who signs access tokens: `local` (keycard, with the store's ring or `signing_key_files`)
    /// or `transit` (OpenBao/Vault Transit signs with `vault_signing_key`; the private key never
    /// enters keycard).
    pub signing_backend: SigningBackend,
    /// With `signing_backend = "transit"`: the Transit key that signs access tokens (type
    /// ed25519, ecdsa-p256 or rsa-2048/3072/4096: EdDSA, ES256, RS256). Uses `vault_addr` and
    /// its login settings.
    pub vault_signing_key: Option<String>,
    /// Master switch of every rate limit and login backoff (off for load tests, trusted networks).
    pub rate_limit_enabled: bool,
    /// Signups per client IP per minute (0: unlimited).
    pub signup_per_ip_per_minute: u32,
    /// Login attempts per client IP per minute.
    pub login_per_ip_per_minute: u32,
    /// Failed logins per account per minute from devices that have not logged into it before
    /// (a known device is never throttled by them; docs/DECISIONS.md).
    pub login_per_account_per_minute: u32,
    /// How long a device token (the device cookie, or `device_token` for other clients) marks
    /// the device as known to an account after a successful login.
    pub device_ttl: HumanDuration,
    /// Password confirmations (password change, account deletion) per user per minute.
    pub password_check_per_user_per_minute: u32,
    /// Password confirmations per client IP per minute.
    pub password_check_per_ip_per_minute: u32,
    /// Refreshes per client IP per minute.
    pub refresh_per_ip_per_minute: u32,
    /// `client_credentials` tokens plus introspections per registered OAuth client per minute.
    pub client_token_per_client_per_minute: u32,
    /// Whether `POST /oauth/token` takes `grant_type=password` (off: OAuth 2.1 drops it; keycard's
    /// own `POST /auth/login` is the way to sign in).
    pub oauth_password_grant: bool,
    /// Consecutive failed password checks (per account for unknown devices, per known device,
    /// per user and per IP for password confirmations) before exponential backoff starts.
    pub login_backoff_after: u32,
    /// Longest backoff.
    pub login_backoff_max: HumanDuration,
    /// Redis URL for rate-limit state shared by several instances (`redis://…`); in-process when unset.
    pub redis: Option<String>,
    /// Proxies whose `X-Forwarded-For` is believed (exact IPs, canonical: an IPv4 proxy also
    /// matches its `::ffff:` form). Empty: the header is ignored.
    pub trusted_proxies: IpList,
    /// Refresh-token binding: `none`, `user_agent` or `ip_prefix` (/24 IPv4, /48 IPv6). A refresh
    /// from another device revokes the session.
    #[serde(with = "binding_name")]
    pub refresh_binding: Binding,
    /// How long audit events are kept.
    pub audit_retention: HumanDuration,
    /// PostgreSQL: most connections per instance.
    pub pg_max_connections: u32,
    /// PostgreSQL: connections kept open when idle.
    pub pg_min_connections: u32,
    /// PostgreSQL: how long a request waits for a connection before it gets 503.
    pub pg_acquire_timeout: HumanDuration,
    /// PostgreSQL: statement (and idle-in-transaction) timeout; 0 for none.
    pub pg_statement_timeout: HumanDuration,
    /// PEM certificate chain; with `tls_key`, serve HTTPS (and send HSTS).
    pub tls_cert: Option<String>,
    /// PEM private key for `tls_cert`.
    pub tls_key: Option<String>,
    /// A connection must send a request's whole header block (and, on TLS, finish its handshake)
    /// within this time of its start or of its previous response; else it is closed.
    pub header_read_timeout: HumanDuration,
    /// A connection with no request in flight and no bytes in either direction for this long is
    /// closed.
    pub idle_timeout: HumanDuration,
    /// A request's body must arrive within this time of the request's start; else 400.
    pub request_timeout: HumanDuration,
    /// Most connections served at once; more wait in the listen backlog. 0: automatic, the
    /// process's file-descriptor limit less a reserve for the store, keys and logs.
    pub max_connections: usize,
    /// `/metrics` answers only with `Authorization: Bearer <metrics_token>` (unset: see
    /// `metrics_bind`; with neither, `/metrics` is off).
    pub metrics_token: Option<Secret>,
    /// A separate address serving only `/metrics` (for a private network or loopback).
    pub metrics_bind: Option<SocketAddr>,
    /// The SMTP server mail goes out through: `smtp://host:port` (plain), `smtps://…` (TLS) or
    /// `smtp+starttls://…`, with optional `user:password@`. Unset: messages are written as
    /// `.eml` files into `mail_dir`.
    pub smtp_url: Option<crate::mail::SmtpUrl>,
    /// Timeout of the SMTP connection and of each command.
    pub smtp_timeout: HumanDuration,
    /// A PEM file of CA certificates trusted for the SMTP server's certificate besides the
    /// system's (a private CA); `smtps://` and `smtp+starttls://` only.
    pub smtp_ca_file: Option<PathBuf>,
    /// The `From:` of every message (`Name <address>` or an address).
    pub mail_from: String,
    /// Where messages go as `.eml` files when there is no `smtp_url`; by default the `mail`
    /// folder next to the SQLite database (the working directory's `mail` on PostgreSQL).
    pub mail_dir: Option<PathBuf>,
    /// Failed delivery attempts after which a message fails for good.
    pub mail_max_attempts: u32,
    /// The application's base URL: mailed links start with it (never with the request's Host
    /// header). Unset: the issuer, whose `/auth/password/reset` is keycard's own form.
    pub app_url: Option<String>,
    /// How long a mailed password-reset link works.
    pub password_reset_ttl: HumanDuration,
    /// Password-reset requests per address per minute.
    pub password_forgot_per_address_per_minute: u32,
    /// Password-reset requests per client IP per minute.
    pub password_forgot_per_ip_per_minute: u32,
    /// `off` (no verification mail, no `email_verified` claim), `optional` (signup mails a link;
    /// tokens carry `email_verified`) or `required` (as optional, and login answers 403
    /// `email_not_verified` until the link is followed).
    pub email_verification: crate::email::EmailVerification,
    /// How long a mailed verification link works.
    pub email_verification_ttl: HumanDuration,
    /// How long the link confirming a new address works.
    pub email_change_ttl: HumanDuration,
    /// How long the cancel link mailed to the old address works (it also undoes a confirmed
    /// change within this time).
    pub email_change_cancel_ttl: HumanDuration,
    /// Verification links asked for again per address per minute.
    pub email_verify_resend_per_address_per_minute: u32,
    /// Verification links asked for again per client IP per minute.
    pub email_verify_resend_per_ip_per_minute: u32,
    /// How recent a sign-in (a login or `POST /auth/step-up`) must be for sensitive changes:
    /// factor changes, and, on accounts with a second factor, password and address changes and
    /// deletion.
    pub step_up_max_age: HumanDuration,
    /// The issuer label authenticator apps show next to the account (`otpauth://` URI).
    pub totp_issuer: String,
    /// The WebAuthn relying-party id passkeys are bound to: the host of every origin in
    /// `webauthn_origins`, or a parent domain of them. Unset: the host of `app_url`, else
    /// `localhost`. Changing it orphans every registered passkey.
    pub webauthn_rp_id: Option<String>,
    /// The name authenticators show beside a passkey.
    pub webauthn_rp_name: String,
    /// The origins (`https://host[:port]`) whose pages may register and use passkeys. Unset: the
    /// origin of `app_url`; without `app_url`, `http://localhost` on any port (development).
    pub webauthn_origins: StringList,
    /// Mailed links followed (verify, confirm, cancel) per client IP per minute.
    pub email_link_per_ip_per_minute: u32,
    /// A folder of mail templates replacing the built-in ones file by file (`keycard mail
    /// templates DIR` writes the built-in ones there to start from).
    pub mail_templates: Option<PathBuf>,
    /// The longest one webhook delivery attempt may take (connect, send, the answer); a receiver
    /// that takes longer counts as failed and is retried.
    pub webhook_timeout: HumanDuration,
    /// Failed attempts after which a webhook delivery is given up on.
    pub webhook_max_attempts: u32,
    /// The delay before a webhook's first retry; each further one doubles (with jitter), up to
    /// an hour.
    pub webhook_retry_base: HumanDuration,
    /// DPoP (RFC 9449): `off` (default: proofs are accepted and bind the session, Bearer too) or
    /// `all` (login, MFA, refresh and `/oauth/token` need a proof; every session is bound).
    pub dpop_required: crate::dpop::DpopRequired,
    /// OAuth clients that must use DPoP at `/oauth/token` (their ids; `keycard`, the public
    /// client, makes it required on keycard's own login and refresh too).
    pub dpop_required_clients: StringList,
    /// Whether DPoP proofs must carry a server nonce (`DPoP-Nonce`, `use_dpop_nonce`; RFC 9449
    /// §8). Nonces are derived from the master key, so every instance accepts every instance's.
    pub dpop_nonce: bool,
}

impl Settings {
    /// The defaults, listening on a free loopback port (`127.0.0.1:0`; ask the application for
    /// its address) with the store at `database`: for tests, examples and embedding.
    pub fn loopback(database: impl Into<String>) -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            database: Database::parse(&database.into()),
            ..Self::default()
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
        Self {
            #[allow(clippy::unwrap_used)] // a constant that parses
            bind: DEFAULT_BIND.parse().unwrap(),
            database: Database::Sqlite(PathBuf::from("keycard.db")),
            issuer: None,
            audience: "keycard".into(),
            access_ttl: HumanDuration::secs(15 * 60),
            session_idle_ttl: HumanDuration::secs(7 * 86_400),
            session_absolute_ttl: HumanDuration::secs(30 * 86_400),
            leeway: HumanDuration::secs(30),
            reuse_interval: HumanDuration::secs(0),
            allowed_origins: StringList::default(),
            cookie_secure: true,
            hash_concurrency: cores,
            hash_queue_timeout: HumanDuration::secs(5),
            max_body_bytes: 64 * 1024,
            argon2_memory_kib: 19_456,
            verify_cache_size: 10_000,
            master_key: None,
            master_key_file: None,
            master_key_transit_key: None,
            vault_addr: None,
            vault_token_file: None,
            vault_approle_role_id: None,
            vault_approle_secret_id_file: None,
            vault_transit_mount: "transit".into(),
            signing_alg: KeyAlg::EdDsa,
            key_reload_interval: HumanDuration::secs(5),
            signing_key_files: StringList::default(),
            signing_backend: SigningBackend::Local,
            vault_signing_key: None,
            rate_limit_enabled: true,
            signup_per_ip_per_minute: 10,
            login_per_ip_per_minute: 30,
            login_per_account_per_minute: 10,
            device_ttl: HumanDuration::secs(90 * 86_400),
            password_check_per_user_per_minute: 10,
            password_check_per_ip_per_minute: 30,
            refresh_per_ip_per_minute: 600,
            client_token_per_client_per_minute: 6000,
            oauth_password_grant: false,
            login_backoff_after: 5,
            login_backoff_max: HumanDuration::secs(300),
            redis: None,
            trusted_proxies: IpList::default(),
            refresh_binding: Binding::None,
            audit_retention: HumanDuration::secs(90 * 86_400),
            pg_max_connections: 10,
            pg_min_connections: 1,
            pg_acquire_timeout: HumanDuration::secs(5),
            pg_statement_timeout: HumanDuration::secs(10),
            tls_cert: None,
            tls_key: None,
            header_read_timeout: HumanDuration::secs(10),
            idle_timeout: HumanDuration::secs(60),
            request_timeout: HumanDuration::secs(30),
            max_connections: 0,
            metrics_token: None,
            metrics_bind: None,
            smtp_url: None,
            smtp_timeout: HumanDuration::secs(10),
            smtp_ca_file: None,
            mail_from: "keycard <keycard@localhost>".into(),
            mail_dir: None,
            mail_max_attempts: 10,
            webhook_timeout: HumanDuration::secs(10),
            webhook_max_attempts: 15,
            webhook_retry_base: HumanDuration::secs(30),
            app_url: None,
            password_reset_ttl: HumanDuration::secs(30 * 60),
            password_forgot_per_address_per_minute: 3,
            password_forgot_per_ip_per_minute: 10,
            email_verification: crate::email::EmailVerification::Optional,
            email_verification_ttl: HumanDuration::secs(24 * 3600),
            email_change_ttl: HumanDuration::secs(3600),
            email_change_cancel_ttl: HumanDuration::secs(7 * 86_400),
            email_verify_resend_per_address_per_minute: 3,
            email_verify_resend_per_ip_per_minute: 10,
            step_up_max_age: HumanDuration::secs(10 * 60),
            totp_issuer: "keycard".into(),
            webauthn_rp_id: None,
            webauthn_rp_name: "keycard".into(),
            webauthn_origins: StringList::default(),
            email_link_per_ip_per_minute: 30,
            mail_templates: None,
            dpop_required: crate::dpop::DpopRequired::Off,
            dpop_required_clients: StringList::default(),
            dpop_nonce: false,
        }
    }
}

/// The retired `db_readers` setting: old configuration files still load, with a warning.
const RETIRED_DB_READERS: &str = "db_readers";

/// `KEYCARD_*` variables that belong to the command or the scripts, not to the settings.
const NOT_SETTINGS: [&str; 6] = ["config", "log", "log_format", "bin", "profile", "backend"];

/// How many leading characters `a` and `b` share.
fn common_prefix(a: &str, b: &str) -> usize {
    a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count()
}

/// Levenshtein distance (for "did you mean" hints; names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Errors loading settings.
#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct SettingsError(String);

impl SettingsError {
    /// An error with this explanation (for checks made while resolving the settings).
    pub(crate) fn new(why: impl Into<String>) -> Self {
        Self(why.into())
    }
}

impl Settings {
    /// Loads defaults, then `file` (TOML) if given, then `KEYCARD_*` variables, then `overrides`
    /// (command-line flags already turned into a settings fragment).
    pub fn load(file: Option<&PathBuf>, overrides: impl Serialize) -> Result<Self, SettingsError> {
        let mut figment = Figment::from(Serialized::defaults(Settings::default()));
        if let Some(path) = file {
            if !path.exists() {
                return Err(SettingsError(format!("config file {} not found", path.display())));
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only variables naming a setting are read: KEYCARD_CONFIG, KEYCARD_MASTER_KEY or a test's
        // KEYCARD_TEST_* belong to others, and must not trip `deny_unknown_fields`.
        let known = Self::field_names();
        let env =
            Env::prefixed("KEYCARD_").filter(move |key| known.iter().any(|k| key.as_str().eq_ignore_ascii_case(k)));
        let mut merged = figment.merge(env).merge(Serialized::defaults(overrides));
        if merged.contains(RETIRED_DB_READERS) {
            tracing::warn!(
                "the db_readers setting has no effect any more (SQLite reads run on a connection per thread) \
                 and is ignored; remove it from the configuration"
            );
            let mut dict: figment::value::Dict = merged.extract().map_err(|e| SettingsError(e.to_string()))?;
            dict.remove(RETIRED_DB_READERS);
            merged = Figment::from(Serialized::defaults(dict));
        }
        let settings: Settings = merged.extract().map_err(|e| SettingsError(e.to_string()))?;
        settings.check()?;
        Ok(settings)
    }

    /// `KEYCARD_*` variables of the environment that name no setting, each with the nearest
    /// setting's variable when one is close (a typo such as `KEYCARD_RATE_LIMITS`). Variables of
    /// the command and the tests (`KEYCARD_CONFIG`, `KEYCARD_LOG…`, `KEYCARD_TEST_…`) are not
    /// settings and are not reported.
    pub fn unknown_env_vars() -> Vec<(String, Option<String>)> {
        Self::unknown_vars(std::env::vars().map(|(key, _)| key))
    }

    /// [`Settings::unknown_env_vars`] over the variable names `keys`.
    fn unknown_vars(keys: impl Iterator<Item = String>) -> Vec<(String, Option<String>)> {
        let known = Self::field_names();
        keys.filter_map(|key| {
            let name = key.strip_prefix("KEYCARD_")?.to_ascii_lowercase();
            let not_a_setting = NOT_SETTINGS.iter().any(|n| name == *n || name.starts_with("test_"));
            if not_a_setting || known.contains(&name) || name == RETIRED_DB_READERS {
                return None;
            }
            let nearest = known
                .iter()
                .map(|k| (edit_distance(&name, k), k))
                .filter(|(d, k)| *d <= 3.max(k.len() / 4) || common_prefix(&name, k) >= 6)
                .min()
                .map(|(_, k)| format!("KEYCARD_{}", k.to_ascii_uppercase()));
            Some((key, nearest))
        })
        .collect()
    }

    fn field_names() -> Vec<String> {
        match serde_json::to_value(Settings::default()) {
            Ok(serde_json::Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// Checks what the types alone cannot (positive durations, consistent pairs, origin shapes).
    /// [`Settings::load`] and [`crate::Application::build`] both call it, so settings built in
    /// code are checked like settings read from a file.
    pub fn check(&self) -> Result<(), SettingsError> {
        if self.access_ttl.0.is_zero() {
            return Err(SettingsError("access_ttl must be positive".into()));
        }
        if self.session_idle_ttl.0 > self.session_absolute_ttl.0 || self.session_idle_ttl.0.is_zero() {
            return Err(SettingsError("session_idle_ttl must be positive and at most session_absolute_ttl".into()));
        }
        for (name, d) in [
            ("header_read_timeout", self.header_read_timeout),
            ("idle_timeout", self.idle_timeout),
            ("request_timeout", self.request_timeout),
            ("device_ttl", self.device_ttl),
            ("smtp_timeout", self.smtp_timeout),
            ("webhook_timeout", self.webhook_timeout),
            ("webhook_retry_base", self.webhook_retry_base),
        ] {
            if d.0.is_zero() {
                return Err(SettingsError(format!("{name} must be positive")));
            }
        }
        if self.metrics_token.as_ref().is_some_and(|t| t.expose().len() < 16) {
            return Err(SettingsError("metrics_token must be at least 16 characters".into()));
        }
        if let Err(e) = self.mail_from.parse::<lettre::message::Mailbox>() {
            return Err(SettingsError(format!("mail_from {:?} is not a mail address: {e}", self.mail_from)));
        }
        if let Some(url) = &self.app_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(SettingsError(format!("app_url {url:?} must start with https:// or http://")));
        }
        for (name, ttl) in [
            ("password_reset_ttl", self.password_reset_ttl),
            ("email_verification_ttl", self.email_verification_ttl),
            ("email_change_ttl", self.email_change_ttl),
            ("email_change_cancel_ttl", self.email_change_cancel_ttl),
        ] {
            if ttl.as_secs_i64() < 60 {
                return Err(SettingsError(format!("{name} must be at least 1m")));
            }
        }
        if self.step_up_max_age.as_secs_i64() < 60 {
            return Err(SettingsError("step_up_max_age must be at least 1m".into()));
        }
        if self.totp_issuer.is_empty() || self.totp_issuer.contains(':') || self.totp_issuer.len() > 64 {
            return Err(SettingsError("totp_issuer must be 1 to 64 characters without ':'".into()));
        }
        if self.mail_max_attempts == 0 {
            return Err(SettingsError("mail_max_attempts must be at least 1".into()));
        }
        if self.webhook_max_attempts == 0 {
            return Err(SettingsError("webhook_max_attempts must be at least 1".into()));
        }
        if self.hash_concurrency == 0 {
            return Err(SettingsError("hash_concurrency must be at least 1".into()));
        }
        if self.master_key_transit_key.is_some() {
            if self.master_key.is_some() || self.master_key_file.is_some() {
                return Err(SettingsError(
                    "master_key_transit_key (the master key wrapped by Transit) excludes master_key and master_key_file"
                        .into(),
                ));
            }
            crate::vault::VaultConfig::from_settings(self)
                .map_err(|e| SettingsError(e.to_string()))?
                .ok_or_else(|| SettingsError("master_key_transit_key needs vault_addr".into()))?;
        }
        if let Some(addr) = &self.vault_addr
            && !(addr.starts_with("https://") || addr.starts_with("http://"))
        {
            return Err(SettingsError(format!("vault_addr {addr:?} must start with https:// or http://")));
        }
        for entry in &self.signing_key_files.0 {
            crate::key_files::KeyFileSpec::parse(entry).map_err(SettingsError)?;
        }
        match (self.signing_backend, &self.vault_signing_key) {
            (SigningBackend::Transit, None) => {
                return Err(SettingsError(
                    "signing_backend = \"transit\" needs vault_signing_key (the Transit key that signs)".into(),
                ));
            }
            (SigningBackend::Transit, Some(_)) => {
                if !self.signing_key_files.0.is_empty() {
                    return Err(SettingsError(
                        "signing_backend = \"transit\" excludes signing_key_files (Transit holds the signing key)"
                            .into(),
                    ));
                }
                crate::vault::VaultConfig::from_settings(self)
                    .map_err(|e| SettingsError(e.to_string()))?
                    .ok_or_else(|| SettingsError("signing_backend = \"transit\" needs vault_addr".into()))?;
            }
            (SigningBackend::Local, Some(_)) => {
                return Err(SettingsError("vault_signing_key is used only with signing_backend = \"transit\"".into()));
            }
            (SigningBackend::Local, None) => {}
        }
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(SettingsError("tls_cert and tls_key go together".into()));
        }
        for origin in self.allowed_origins.0.iter() {
            if !(origin.starts_with("http://") || origin.starts_with("https://")) || origin.ends_with('/') {
                return Err(SettingsError(format!("allowed origin {origin:?} must look like https://host[:port]")));
            }
        }
        Ok(())
    }

    /// Where `.eml` files go without SMTP: `mail_dir`, else `mail` next to the SQLite database
    /// (in the working directory on PostgreSQL).
    pub fn mail_dir(&self) -> PathBuf {
        if let Some(dir) = &self.mail_dir {
            return dir.clone();
        }
        match &self.database {
            Database::Sqlite(path) => match path.parent() {
                Some(parent) if !parent.as_os_str().is_empty() => parent.join("mail"),
                _ => PathBuf::from("mail"),
            },
            Database::Postgres(_) => PathBuf::from("mail"),
        }
    }

    /// Whether the database is PostgreSQL.
    pub fn is_postgres(&self) -> bool {
        matches!(self.database, Database::Postgres(_))
    }

    /// PostgreSQL pool options from the `pg_*` settings.
    pub fn pg_options(&self) -> keycard_store::PgStoreOptions {
        let statement = self.pg_statement_timeout.0;
        keycard_store::PgStoreOptions {
            max_connections: self.pg_max_connections.max(1),
            min_connections: self.pg_min_connections.min(self.pg_max_connections.max(1)),
            acquire_timeout: self.pg_acquire_timeout.0,
            statement_timeout: (!statement.is_zero()).then_some(statement),
            ..keycard_store::PgStoreOptions::default()
        }
    }

    /// The rate-limit budgets and backoff policy.
    pub fn limit_config(&self) -> crate::ratelimit::LimitConfig {
        use crate::ratelimit::Rule;
        crate::ratelimit::LimitConfig {
            per_minute: [
                (Rule::SignupIp, self.signup_per_ip_per_minute),
                (Rule::LoginIp, self.login_per_ip_per_minute),
                (Rule::LoginAccount, self.login_per_account_per_minute),
                (Rule::RefreshIp, self.refresh_per_ip_per_minute),
                (Rule::ClientToken, self.client_token_per_client_per_minute),
                (Rule::PasswordCheckUser, self.password_check_per_user_per_minute),
                (Rule::PasswordCheckIp, self.password_check_per_ip_per_minute),
                (Rule::ForgotAddress, self.password_forgot_per_address_per_minute),
                (Rule::ForgotIp, self.password_forgot_per_ip_per_minute),
                (Rule::VerifyResendAddress, self.email_verify_resend_per_address_per_minute),
                (Rule::VerifyResendIp, self.email_verify_resend_per_ip_per_minute),
                (Rule::EmailLinkIp, self.email_link_per_ip_per_minute),
            ]
            .into_iter()
            .collect(),
            backoff_after: self.login_backoff_after,
            backoff_max: self.login_backoff_max.0.as_secs(),
        }
    }

    /// The issuer, defaulting to `http://{bind}` with the actual bound address.
    pub fn issuer_for(&self, bound: SocketAddr) -> String {
        self.issuer.clone().unwrap_or_else(|| format!("http://{bound}"))
    }
}

/// Where the store lives, told apart once when the setting is read: `postgres://` and
/// `postgresql://` URLs are PostgreSQL; `sqlite://path`, `sqlite:path` (a `?query` dropped) and
/// plain paths are SQLite files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    /// A SQLite file, created on first start.
    Sqlite(PathBuf),
    /// A PostgreSQL connection URL.
    Postgres(String),
}

impl Database {
    /// The store `text` names.
    pub fn parse(text: &str) -> Self {
        let text = text.trim();
        if text.starts_with("postgres:") || text.starts_with("postgresql:") {
            return Self::Postgres(text.to_owned());
        }
        let path = match text.strip_prefix("sqlite://").or_else(|| text.strip_prefix("sqlite:")) {
            Some(rest) => rest.split_once('?').map_or(rest, |(path, _)| path),
            None => text,
        };
        Self::Sqlite(PathBuf::from(path))
    }
}

impl std::fmt::Display for Database {
    /// The path or URL, as it would be written in the configuration.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => f.write_str(url),
        }
    }
}

impl From<&str> for Database {
    fn from(text: &str) -> Self {
        Self::parse(text)
    }
}

impl From<String> for Database {
    fn from(text: String) -> Self {
        Self::parse(&text)
    }
}

impl Serialize for Database {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Database {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if text.trim().is_empty() {
            return Err(serde::de::Error::custom("database is empty: give a SQLite file path or a postgres:// URL"));
        }
        Ok(Self::parse(&text))
    }
}

/// A secret setting: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that uses it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// A duration written like `15m`, `7d`, `30s` (or a plain number of seconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HumanDuration(pub Duration);

impl HumanDuration {
    /// `n` seconds.
    pub const fn secs(n: u64) -> Self {
        Self(Duration::from_secs(n))
    }

    /// Whole seconds, as the store counts time.
    pub fn as_secs_i64(self) -> i64 {
        i64::try_from(self.0.as_secs()).unwrap_or(i64::MAX / 4)
    }

    /// Parses `15m`, `7d`, `1h 30m`, or a bare number of seconds.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if let Ok(secs) = text.parse::<u64>() {
            return Ok(Self::secs(secs));
        }
        humantime::parse_duration(text).map(Self).map_err(|e| format!("invalid duration {text:?}: {e}"))
    }
}

impl std::str::FromStr for HumanDuration {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl Serialize for HumanDuration {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(self.0).to_string())
    }
}

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Secs(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Secs(n) => Ok(Self::secs(n)),
            Raw::Text(t) => Self::parse(&t).map_err(serde::de::Error::custom),
        }
    }
}

/// IP addresses given as a TOML array or a comma-separated string, parsed and canonicalised when
/// read (a value that is not an address is a configuration error naming it).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct IpList(pub Vec<IpAddr>);

impl IpList {
    /// These addresses, canonical.
    pub fn new(ips: impl IntoIterator<Item = IpAddr>) -> Self {
        Self(ips.into_iter().map(|ip| ip.to_canonical()).collect())
    }
}

impl<'de> Deserialize<'de> for IpList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let items = StringList::deserialize(d)?;
        let ips = items
            .0
            .iter()
            .map(|s| s.parse::<IpAddr>().map_err(|_| serde::de::Error::custom(format!("{s:?} is not an IP address"))))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self::new(ips))
    }
}

/// Who signs access tokens (`signing_backend`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SigningBackend {
    /// keycard signs, with the store's sealed ring or `signing_key_files`.
    #[default]
    Local,
    /// OpenBao/Vault Transit signs with `vault_signing_key`; keycard holds only public keys.
    Transit,
}

impl std::str::FromStr for SigningBackend {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "local" => Ok(Self::Local),
            "transit" => Ok(Self::Transit),
            other => Err(format!("{other:?} is not one of local, transit")),
        }
    }
}

/// `signing_alg` as its JOSE name.
mod alg_name {
    use keycard_core::keys::KeyAlg;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(alg: &KeyAlg, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(alg.as_str())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<KeyAlg, D::Error> {
        let name = String::deserialize(d)?;
        KeyAlg::parse(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("signing_alg {name:?}: use EdDSA, ES256, RS256 or HS256")))
    }
}

/// `refresh_binding` as its setting name.
mod binding_name {
    use keycard_store::Binding;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(binding: &Binding, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(binding.name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Binding, D::Error> {
        let name = String::deserialize(d)?;
        Binding::from_name(&name).ok_or_else(|| {
            serde::de::Error::custom(format!("refresh_binding {name:?}: use none, user_agent or ip_prefix"))
        })
    }
}

/// A list given as a TOML array or a comma-separated string (`KEYCARD_ALLOWED_ORIGINS=a,b`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct StringList(pub Vec<String>);

impl std::str::FromStr for StringList {
    type Err = std::convert::Infallible;

    /// Comma-separated items, trimmed, empty ones dropped (as from an environment variable).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Ok(Self(text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_owned).collect()))
    }
}

impl<'de> Deserialize<'de> for StringList {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            List(Vec<String>),
            Text(String),
        }
        let items = match Raw::deserialize(d)? {
            Raw::List(v) => v,
            Raw::Text(t) => t.split(',').map(str::to_owned).collect(),
        };
        Ok(Self(items.into_iter().map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).collect()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_kind_is_decided_once_when_read() {
        use std::path::Path;
        let cases = [
            ("keycard.db", Database::Sqlite("keycard.db".into())),
            ("sqlite:///var/lib/k.db?mode=rwc", Database::Sqlite("/var/lib/k.db".into())),
            ("sqlite:k.db", Database::Sqlite("k.db".into())),
            ("postgres://u@db/keycard", Database::Postgres("postgres://u@db/keycard".into())),
            ("postgresql://u@db/keycard", Database::Postgres("postgresql://u@db/keycard".into())),
        ];
        for (text, expected) in cases {
            assert_eq!(Database::parse(text), expected, "{text}");
            let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
                .merge(Serialized::default("database", text))
                .extract()
                .unwrap();
            assert_eq!(settings.database, expected, "{text} through the settings");
        }
        assert_eq!(Database::Sqlite(Path::new("a b.db").into()).to_string(), "a b.db");
        let empty =
            Figment::from(Serialized::defaults(Settings::default())).merge(Serialized::default("database", " "));
        let error = empty.extract::<Settings>().unwrap_err().to_string();
        assert!(error.contains("database is empty"), "{error}");
    }

    #[test]
    fn transit_signing_needs_a_key_and_an_address_and_excludes_key_files() {
        let with = |toml: &str| {
            let settings: Settings =
                Figment::from(Serialized::defaults(Settings::default())).merge(Toml::string(toml)).extract().unwrap();
            settings.check().map_err(|e| e.to_string())
        };
        let vault = "vault_addr = \"http://127.0.0.1:8200\"\nvault_token_file = \"/run/t\"\n";
        assert_eq!(Settings::default().signing_backend, SigningBackend::Local);
        assert!(with(&format!("signing_backend = \"transit\"\nvault_signing_key = \"k\"\n{vault}")).is_ok());
        let no_key = with(&format!("signing_backend = \"transit\"\n{vault}")).unwrap_err();
        assert!(no_key.contains("vault_signing_key"), "{no_key}");
        let no_addr = with("signing_backend = \"transit\"\nvault_signing_key = \"k\"").unwrap_err();
        assert!(no_addr.contains("vault_addr"), "{no_addr}");
        let files = with(&format!(
            "signing_backend = \"transit\"\nvault_signing_key = \"k\"\nsigning_key_files = [\"a.pem\"]\n{vault}"
        ))
        .unwrap_err();
        assert!(files.contains("excludes signing_key_files"), "{files}");
        let local = with("vault_signing_key = \"k\"").unwrap_err();
        assert!(local.contains("only with signing_backend"), "{local}");
        assert_eq!("transit".parse::<SigningBackend>(), Ok(SigningBackend::Transit));
        assert!("remote".parse::<SigningBackend>().is_err());
    }

    #[test]
    fn durations_read_like_people_write_them() {
        for (text, secs) in [("15m", 900), ("7d", 604_800), ("30s", 30), ("0", 0), ("90", 90), ("1h 30m", 5400)] {
            assert_eq!(HumanDuration::parse(text).unwrap().0.as_secs(), secs, "{text}");
        }
        for bad in ["", "soon", "-5m", "15 parsecs"] {
            assert!(HumanDuration::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn enumerated_settings_are_typed_and_unknown_values_refused() {
        let parse = |toml: &str| -> Result<Settings, String> {
            Figment::from(Serialized::defaults(Settings::default()))
                .merge(Toml::string(toml))
                .extract()
                .map_err(|e| e.to_string())
        };
        assert_eq!(parse("refresh_binding = \"user_agent\"").unwrap().refresh_binding, Binding::UserAgent);
        assert_eq!(parse("signing_alg = \"ES256\"").unwrap().signing_alg, KeyAlg::Es256);
        // Unknown values are errors, never a silent "no binding".
        assert!(parse("refresh_binding = \"user-agent\"").unwrap_err().contains("user_agent"));
        assert!(parse("signing_alg = \"none\"").is_err());
        let proxies = parse("trusted_proxies = \"::ffff:10.0.0.1, 10.0.0.2\"").unwrap().trusted_proxies;
        assert_eq!(proxies, IpList::new(["10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap()]));
        assert!(parse("trusted_proxies = [\"proxy.local\"]").unwrap_err().contains("proxy.local"));
    }

    #[test]
    fn mail_settings_are_typed_checked_and_resolved() {
        let parse = |toml: &str| -> Result<Settings, String> {
            let settings: Settings = Figment::from(Serialized::defaults(Settings::default()))
                .merge(Toml::string(toml))
                .extract()
                .map_err(|e| e.to_string())?;
            settings.check().map_err(|e| e.to_string())?;
            Ok(settings)
        };
        let smtp = parse("smtp_url = \"smtp+starttls://me:pw@mail.example.com\"").unwrap().smtp_url.unwrap();
        assert_eq!((smtp.security, smtp.port), (crate::mail::SmtpSecurity::StartTls, 587));
        assert!(parse("smtp_url = \"mail.example.com:25\"").unwrap_err().contains("smtp_url"));
        assert!(parse("mail_from = \"not an address\"").unwrap_err().contains("mail_from"));
        assert!(parse("mail_max_attempts = 0").unwrap_err().contains("mail_max_attempts"));
        assert!(parse("webhook_max_attempts = 0").unwrap_err().contains("webhook_max_attempts"));
        assert!(parse("webhook_timeout = \"0s\"").unwrap_err().contains("webhook_timeout"));
        assert!(parse("smtp_timeout = \"0s\"").unwrap_err().contains("smtp_timeout"));
        assert_eq!(parse("mail_from = \"Acme <auth@acme.test>\"").unwrap().mail_from, "Acme <auth@acme.test>");

        let beside = Settings::loopback("/var/lib/keycard/keycard.db");
        assert_eq!(beside.mail_dir(), PathBuf::from("/var/lib/keycard/mail"));
        assert_eq!(Settings::loopback("keycard.db").mail_dir(), PathBuf::from("mail"));
        let chosen = Settings { mail_dir: Some("/srv/mail".into()), ..Settings::loopback("keycard.db") };
        assert_eq!(chosen.mail_dir(), PathBuf::from("/srv/mail"));
    }

    #[test]
    fn an_old_configuration_with_db_readers_still_loads() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("keycard.toml");
        std::fs::write(&file, "db_readers = 4\naudience = \"api\"\n").unwrap();
        let settings = Settings::load(Some(&file), serde_json::json!({})).unwrap();
        assert_eq!(settings.audience, "api");
    }

    #[test]
    fn typos_in_variable_names_get_the_nearest_setting() {
        assert_eq!(edit_distance("rate_limits", "rate_limit_enabled"), 8);
        assert_eq!(edit_distance("acess_ttl", "access_ttl"), 1);
        let vars = ["KEYCARD_ACESS_TTL", "KEYCARD_RATE_LIMITS", "KEYCARD_AUDIENCE", "KEYCARD_CONFIG", "KEYCARD_TEST_X"];
        let unknown = Settings::unknown_vars(vars.iter().map(|v| v.to_string()));
        assert_eq!(
            unknown,
            vec![
                ("KEYCARD_ACESS_TTL".into(), Some("KEYCARD_ACCESS_TTL".into())),
                ("KEYCARD_RATE_LIMITS".into(), Some("KEYCARD_RATE_LIMIT_ENABLED".into())),
            ]
        );
    }

    #[test]
    fn origins_come_from_a_list_or_a_comma_string() {
        let from_text: StringList = serde_json::from_str("\"https://a.example, https://b.example\"").unwrap();
        let from_list: StringList = serde_json::from_str("[\"https://a.example\", \"https://b.example\"]").unwrap();
        assert_eq!(from_text, from_list);
    }
}
