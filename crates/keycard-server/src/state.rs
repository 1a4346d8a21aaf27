//! Shared state: one cheap-to-clone handle (a single `Arc`) given to the router once.

use std::net::SocketAddr;
use std::ops::Deref;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

use keycard_core::clock::Clock;
use keycard_core::validate::Validator;
use keycard_store::{AuditEvent, AuditKind, Store};

use crate::keys::{KeyManager, MasterKey};
use crate::password::Passwords;
use crate::ratelimit::RateLimits;
use crate::settings::{Settings, SettingsError};
use crate::signer::Keys;
use crate::transit_keys::TransitSigner;
use crate::verify_cache::VerifiedTokens;

/// Everything handlers share: one `Arc`, so an extractor's clone is one reference count.
/// Fields are reached through `Deref` (`state.store`, `state.config`, …).
#[derive(Clone)]
pub struct AppState(Arc<Inner>);

/// The shared state behind [`AppState`].
pub struct Inner {
    /// Users, sessions, keys, audit log.
    pub store: Arc<dyn Store>,
    /// Password hashing with bounded concurrency.
    pub passwords: Passwords,
    /// Settings resolved for request handling.
    pub config: RuntimeConfig,
    /// Rate limits and login backoff.
    pub limits: RateLimits,
    keys: RwLock<Arc<Keys>>,
    /// Where the ring comes from when `signing_key_files` is set (else: the store).
    key_files: Option<crate::key_files::FileKeys>,
    /// The Transit signer when `signing_backend = "transit"` (then the keys are its versions).
    transit: Option<TransitSigner>,
    master: MasterKey,
    /// When the key ring was last read from the store (Unix seconds).
    keys_loaded_at: AtomicI64,
    validator: Validator,
    /// Access tokens that passed validation under the current key ring.
    pub verified: VerifiedTokens,
    /// The time every decision reads (a manual clock in tests).
    pub clock: Arc<dyn Clock>,
    /// Wakes the mail sender (`mail.rs`): mail was queued, or a test moved the clock.
    pub mail_wake: tokio::sync::Notify,
    /// Wakes the webhook sender (`webhooks.rs`): an event queued deliveries, or a test moved the
    /// clock.
    pub webhook_wake: tokio::sync::Notify,
    /// DPoP server nonces, from a secret derived from the master key (every instance sharing
    /// the master key issues and accepts the same ones); used when `dpop_nonce` is on.
    pub dpop_nonces: keycard_core::dpop::NonceSource,
}

impl Deref for AppState {
    type Target = Inner;

    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// The settings handlers need, resolved once (issuer known, durations in seconds).
#[derive(Debug, Clone)]
pub struct RuntimeConfig {
    /// `iss` of issued tokens.
    pub issuer: String,
    /// `aud` of issued tokens.
    pub audience: String,
    /// Access-token lifetime, seconds.
    pub access_ttl: i64,
    /// Session idle lifetime, seconds.
    pub idle_ttl: i64,
    /// Session absolute lifetime, seconds.
    pub absolute_ttl: i64,
    /// Clock leeway, seconds.
    pub leeway: i64,
    /// Seconds a superseded signing key keeps verifying (access TTL + leeway + reload interval).
    pub key_overlap: i64,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// Refresh-token binding policy.
    pub refresh_binding: Binding,
    /// Whether the server speaks TLS (then HSTS is sent).
    pub tls: bool,
    /// Algorithm of a key generated when none is active.
    pub signing_alg: keycard_core::keys::KeyAlg,
    /// Reuse interval, seconds.
    pub reuse_interval: i64,
    /// Origins allowed for cookie-authenticated requests and CORS (issuer origin included).
    pub allowed_origins: Vec<String>,
    /// Whether cookies are `Secure` with the `__Secure-` / `__Host-` prefixes.
    pub cookie_secure: bool,
    /// Seconds a device token keeps a device known to an account.
    pub device_ttl: i64,
    /// The bearer secret of `/metrics` on the main listener (none: `/metrics` is not served there).
    pub metrics_token: Option<crate::settings::Secret>,
    /// Longest time a request may take.
    pub request_timeout: std::time::Duration,
    /// Whether `POST /oauth/token` takes `grant_type=password`.
    pub oauth_password_grant: bool,
    /// Mail delivery: the transport, `From:` and retry limit.
    pub mail: crate::mail::MailConfig,
    /// The base of mailed links (`app_url`, or the issuer), without a trailing `/`.
    pub app_url: String,
    /// How long a password-reset token works, seconds.
    pub password_reset_ttl: i64,
    /// Whether addresses are verified, and whether login waits for it.
    pub email_verification: crate::email::EmailVerification,
    /// How long a verification token works, seconds.
    pub email_verification_ttl: i64,
    /// How long an address-change confirmation token works, seconds.
    pub email_change_ttl: i64,
    /// How long an address-change cancel token works, seconds.
    pub email_change_cancel_ttl: i64,
    /// How recent a sign-in must be for sensitive changes (seconds).
    pub step_up_max_age: i64,
    /// The `otpauth://` issuer label.
    pub totp_issuer: String,
    /// The WebAuthn relying party (`webauthn_rp_id`, `webauthn_origins`); `None` when passkeys
    /// are off (no setting, and an `app_url` without a domain name).
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// Webhook delivery: timeout, retries.
    pub webhooks: crate::webhooks::WebhookConfig,
    /// The mail templates (built in, or overridden from `mail_templates`).
    pub templates: Arc<crate::templates::MailTemplates>,
    /// DPoP (RFC 9449): when proofs are required, and whether nonces are.
    pub dpop: crate::dpop::DpopConfig,
}

impl TryFrom<(&Settings, SocketAddr)> for RuntimeConfig {
    type Error = SettingsError;

    /// The one derivation of the running configuration: the settings (checked here, so settings
    /// built in code are held to the same rules as loaded ones) and the address the server is
    /// bound to (the default issuer and the loopback origins come from it).
    fn try_from((settings, addr): (&Settings, SocketAddr)) -> Result<Self, SettingsError> {
        settings.check()?;
        let issuer = settings.issuer_for(addr);
        Ok(Self {
            app_url: settings.app_url.clone().unwrap_or_else(|| issuer.clone()).trim_end_matches('/').to_owned(),
            password_reset_ttl: settings.password_reset_ttl.as_secs_i64(),
            email_verification: settings.email_verification,
            email_verification_ttl: settings.email_verification_ttl.as_secs_i64(),
            email_change_ttl: settings.email_change_ttl.as_secs_i64(),
            email_change_cancel_ttl: settings.email_change_cancel_ttl.as_secs_i64(),
            step_up_max_age: settings.step_up_max_age.as_secs_i64(),
            totp_issuer: settings.totp_issuer.clone(),
            webauthn: crate::passkeys::relying_party(settings)?.map(Arc::new),
            templates: Arc::new(
                crate::templates::MailTemplates::load(settings.mail_templates.as_deref())
                    .map_err(SettingsError::new)?,
            ),
            allowed_origins: allowed_origins(settings, &issuer, addr),
            issuer,
            audience: settings.audience.clone(),
            access_ttl: settings.access_ttl.as_secs_i64(),
            idle_ttl: settings.session_idle_ttl.as_secs_i64(),
            absolute_ttl: settings.session_absolute_ttl.as_secs_i64(),
            leeway: settings.leeway.as_secs_i64(),
            reuse_interval: settings.reuse_interval.as_secs_i64(),
            key_overlap: settings.access_ttl.as_secs_i64()
                + settings.leeway.as_secs_i64()
                + 2 * settings.key_reload_interval.as_secs_i64(),
            signing_alg: settings.signing_alg,
            trusted_proxies: settings.trusted_proxies.0.clone(),
            refresh_binding: settings.refresh_binding,
            tls: settings.tls_cert.is_some(),
            cookie_secure: settings.cookie_secure,
            device_ttl: settings.device_ttl.as_secs_i64(),
            metrics_token: settings.metrics_token.clone(),
            request_timeout: settings.request_timeout.0,
            oauth_password_grant: settings.oauth_password_grant,
            mail: crate::mail::MailConfig {
                transport: match &settings.smtp_url {
                    Some(url) => crate::mail::MailTransport::Smtp {
                        url: url.clone(),
                        timeout: settings.smtp_timeout.0,
                        ca: match &settings.smtp_ca_file {
                            Some(path) => Some(read_ca_file(path)?),
                            None => None,
                        },
                    },
                    None => crate::mail::MailTransport::Dir(settings.mail_dir()),
                },
                from: settings
                    .mail_from
                    .parse()
                    .map_err(|e| SettingsError::new(format!("mail_from {:?}: {e}", settings.mail_from)))?,
                max_attempts: i64::from(settings.mail_max_attempts),
            },
            webhooks: crate::webhooks::WebhookConfig {
                timeout: settings.webhook_timeout.0,
                max_attempts: i64::from(settings.webhook_max_attempts),
                retry_base: settings.webhook_retry_base.as_secs_i64().max(1),
            },
            dpop: crate::dpop::DpopConfig::from_settings(settings),
        })
    }
}

/// The PEM certificates of `smtp_ca_file`, checked to hold at least one certificate.
fn read_ca_file(path: &std::path::Path) -> Result<Vec<u8>, SettingsError> {
    let bad = |why: String| SettingsError::new(format!("smtp_ca_file {}: {why}", path.display()));
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    if !String::from_utf8_lossy(&pem).contains("-----BEGIN CERTIFICATE-----") {
        return Err(bad("no PEM certificate in it".into()));
    }
    lettre::transport::smtp::client::Certificate::from_pem(&pem).map_err(|e| bad(e.to_string()))?;
    Ok(pem)
}

/// The configured origins, plus the issuer's own origin and, on loopback, its `localhost` twin.
fn allowed_origins(settings: &Settings, issuer: &str, addr: SocketAddr) -> Vec<String> {
    let mut origins = settings.allowed_origins.0.clone();
    let issuer_origin = match issuer.find("://") {
        Some(i) => issuer[..i + 3 + issuer[i + 3..].find('/').unwrap_or(issuer.len() - i - 3)].to_owned(),
        None => issuer.to_owned(),
    };
    origins.push(issuer_origin);
    if addr.ip().is_loopback() {
        origins.push(format!("http://localhost:{}", addr.port()));
        origins.push(format!("http://127.0.0.1:{}", addr.port()));
    }
    origins.sort();
    origins.dedup();
    origins
}

impl AppState {
    /// Assembles the state (once per server, from `startup.rs`: each part is built there).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        store: Arc<dyn Store>,
        passwords: Passwords,
        config: RuntimeConfig,
        keys: Keys,
        key_files: Option<crate::key_files::FileKeys>,
        transit: Option<TransitSigner>,
        master: MasterKey,
        limits: RateLimits,
        verify_cache_size: usize,
        clock: Arc<dyn Clock>,
    ) -> Self {
        let validator = Validator::new(&config.issuer, &config.audience, config.leeway.unsigned_abs());
        Self(Arc::new(Inner {
            store,
            passwords,
            config,
            limits,
            keys: RwLock::new(Arc::new(keys)),
            key_files,
            transit,
            keys_loaded_at: AtomicI64::new(clock.now()),
            validator,
            verified: VerifiedTokens::new(verify_cache_size),
            clock,
            mail_wake: tokio::sync::Notify::new(),
            webhook_wake: tokio::sync::Notify::new(),
            dpop_nonces: crate::dpop::nonce_source(&master),
            master,
        }))
    }

    /// The message `template` to `recipient` (empty: the store addresses it), rendered with
    /// `values` and `app_url`.
    pub fn mail(
        &self,
        template: crate::templates::Template,
        recipient: &str,
        values: minijinja::Value,
        now: i64,
    ) -> keycard_store::NewMail {
        self.config.templates.render(template, recipient, &self.config.app_url, values, now)
    }

    /// Puts a message in the mail outbox and wakes the sender. (A flow whose message belongs to
    /// an event writes both in one store transaction, then calls [`AppState::wake_mail_sender`].)
    pub async fn enqueue_mail(&self, mail: &keycard_store::NewMail) -> keycard_store::Result<()> {
        self.store.enqueue_mail(mail).await?;
        self.wake_mail_sender();
        Ok(())
    }

    /// Makes the mail sender look for due messages now.
    pub fn wake_mail_sender(&self) {
        self.mail_wake.notify_one();
    }

    /// Makes the webhook sender look for due deliveries now.
    pub fn wake_webhook_sender(&self) {
        self.webhook_wake.notify_one();
    }

    /// The master key (it seals signing keys and webhook secrets).
    pub fn master_key(&self) -> &MasterKey {
        &self.master
    }

    /// Now, in Unix seconds, by the server's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// The key of device tokens (`devices.rs`).
    pub fn device_key(&self) -> &aws_lc_rs::hmac::Key {
        self.master.device_key()
    }

    /// Key management with this server's overlap window.
    pub fn key_manager(&self) -> KeyManager<'_> {
        KeyManager::new(self.store.as_ref(), &self.master, self.config.key_overlap)
    }

    /// Re-reads the key ring from the store (rotation by `keycard keys` or another instance),
    /// from `signing_key_files`, or Transit's key versions. On an error the ring in force stays.
    pub async fn reload_keys(&self) -> anyhow::Result<()> {
        let now = self.now();
        let ring = match (&self.transit, &self.key_files) {
            (Some(transit), _) => Keys::Transit(transit.ring(now, self.config.key_overlap).await?),
            (None, Some(files)) => Keys::Local(files.reload(now)?),
            (None, None) => Keys::Local(self.key_manager().ring(now, self.config.signing_alg).await?),
        };
        self.keys_loaded_at.store(now, Ordering::Relaxed);
        let changed = {
            let mut slot = match self.keys.write() {
                Ok(slot) => slot,
                Err(poisoned) => poisoned.into_inner(),
            };
            let changed = slot.kids() != ring.kids();
            *slot = Arc::new(ring);
            changed
        };
        // After the new ring is in place: a validation that read the old generation cannot
        // have its entry used any more.
        if changed {
            self.verified.invalidate();
        }
        Ok(())
    }

    /// Reloads keys after an unknown `kid`, at most once a second (a flood of forged kids must
    /// not become a flood of store reads). True when a reload happened.
    pub async fn reload_keys_for_unknown_kid(&self) -> bool {
        let now = self.now();
        let last = self.keys_loaded_at.load(Ordering::Relaxed);
        if now <= last || self.keys_loaded_at.compare_exchange(last, now, Ordering::AcqRel, Ordering::Relaxed).is_err()
        {
            return false;
        }
        match self.reload_keys().await {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, "could not reload signing keys");
                false
            }
        }
    }

    /// The Transit signer, when Transit signs.
    pub fn transit(&self) -> Option<&TransitSigner> {
        self.transit.as_ref()
    }

    /// The keys in force (cheap: an `Arc` clone under a read lock).
    pub fn keys(&self) -> Arc<Keys> {
        match self.keys.read() {
            Ok(ring) => ring.clone(),
            // A writer panicked mid-swap; the ring inside is still a whole value.
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// The access-token validator.
    pub fn validator(&self) -> &Validator {
        &self.validator
    }

    /// Records an audit event in the store and as a structured log line. A failed audit write is
    /// logged but does not fail the request that caused it.
    pub async fn audit(&self, event: AuditEvent) {
        match self.store.append_audit(&event).await {
            Ok(()) => self.recorded(&event),
            Err(e) => {
                log_event(&event);
                tracing::error!(error = %e, kind = %event.kind, "could not write audit event");
            }
        }
    }

    /// After a store method wrote `event` in the transaction of its change: the log line, and
    /// the webhook sender woken when the same transaction queued deliveries.
    pub fn recorded(&self, event: &AuditEvent) {
        log_event(event);
        if keycard_store::WebhookEvent::of(event).is_some() {
            self.wake_webhook_sender();
        }
    }
}

/// The log line of `event`.
fn log_event(event: &AuditEvent) {
    log_audit(
        event.kind,
        event.user_id.as_deref(),
        event.session_id.as_deref(),
        event.ip.as_deref(),
        event.detail.as_deref(),
    );
}

/// The log line of an audit event; alone for the events the store records itself (a rotation's),
/// from borrowed parts so that the refresh path builds no event just to log it.
pub fn log_audit(
    kind: AuditKind,
    user_id: Option<&str>,
    session_id: Option<&str>,
    ip: Option<&str>,
    detail: Option<&str>,
) {
    tracing::info!(
        target: "keycard::audit",
        kind = %kind,
        user_id = user_id.unwrap_or("-"),
        session_id = session_id.unwrap_or("-"),
        ip = ip.unwrap_or("-"),
        detail = detail.unwrap_or(""),
        "audit"
    );
}

/// The refresh-token binding policy: decided inside the store's rotation (one transaction).
pub use keycard_store::Binding;
