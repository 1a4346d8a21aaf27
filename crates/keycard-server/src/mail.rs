//! Mail delivery: the background sender of the store's mail outbox.
//!
//! Flows put a message in the outbox in the same store transaction as the event that causes it
//! (or with [`AppState::enqueue_mail`]); the sender spawned in `startup.rs` claims due messages
//! ([`Store::claim_mail`](keycard_store::Store::claim_mail): a lease, `FOR UPDATE SKIP LOCKED` on
//! PostgreSQL, so with several instances each message is sent once) and delivers them with
//! lettre: over SMTP (`smtp://`, `smtps://`, `smtp+starttls://`, optional `user:pass@`) or, with
//! no `smtp_url`, as `.eml` files into `mail_dir`. A failed attempt is retried with exponential
//! backoff ([`retry_delay`]); a permanent SMTP refusal (5xx), an unusable address or
//! `mail_max_attempts` failed attempts fail the message for good. The due times come from the
//! server's clock, so tests move time with a manual clock; [`AppState::enqueue_mail`] wakes the
//! sender at once, and it also looks every [`POLL_EVERY`] (messages queued by another instance).
//!
//! Logs carry the message id, the recipient's domain, the state and the SMTP reply code: never
//! a body (bodies hold links with tokens), a subject or a whole address.

use std::path::PathBuf;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncFileTransport, AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::task::JoinHandle;

use keycard_store::MailRecord;

use crate::settings::Secret;
use crate::state::AppState;

/// How many messages one claim takes.
pub const BATCH: i64 = 10;
/// How often the sender looks for due messages when nothing wakes it.
pub const POLL_EVERY: Duration = Duration::from_secs(5);
/// The first retry's delay; each further one doubles, up to [`RETRY_CAP`].
pub const RETRY_BASE: i64 = 30;
/// The longest delay between two attempts.
pub const RETRY_CAP: i64 = 3600;

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// `smtp://`: plain text (a relay on localhost or a test server).
    Plain,
    /// `smtps://`: TLS from the first byte (port 465 by default).
    Tls,
    /// `smtp+starttls://`: STARTTLS required before anything is sent (port 587 by default).
    StartTls,
}

/// An SMTP server as `smtp_url` names it: `smtp://host:2525`, `smtps://user:pass@host`,
/// `smtp+starttls://host:587`. The password is never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct SmtpUrl {
    /// How the connection is secured.
    pub security: SmtpSecurity,
    /// Host name or IP address.
    pub host: String,
    /// Port (the scheme's default when the URL has none).
    pub port: u16,
    /// User name and password (percent-decoded), when the URL has them.
    pub credentials: Option<(String, Secret)>,
    /// The URL as written.
    raw: String,
}

impl SmtpUrl {
    /// Parses `smtp[s|+starttls]://[user[:password]@]host[:port]`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = |why: &str| format!("smtp_url: {why} (use smtp://host:port, smtps://… or smtp+starttls://…)");
        let (scheme, rest) = text.split_once("://").ok_or_else(|| bad("no scheme"))?;
        let (security, default_port) = match scheme {
            "smtp" => (SmtpSecurity::Plain, 25),
            "smtps" => (SmtpSecurity::Tls, 465),
            "smtp+starttls" => (SmtpSecurity::StartTls, 587),
            _ => return Err(bad("unknown scheme")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("no path or query is allowed"));
        }
        let (userinfo, hostport) = match rest.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, rest),
        };
        let decode = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
        let credentials = userinfo.map(|userinfo| match userinfo.split_once(':') {
            Some((user, password)) => (decode(user), Secret::new(decode(password))),
            None => (decode(userinfo), Secret::new(String::new())),
        });
        let (host, port) = match hostport.rsplit_once(':') {
            Some((host, port)) if !port.contains(']') => {
                (host, port.parse::<u16>().map_err(|_| bad("the port is not a number"))?)
            }
            _ => (hostport, default_port),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(Self { security, host: host.to_owned(), port, credentials, raw: text.to_owned() })
    }
}

impl std::fmt::Debug for SmtpUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpUrl")
            .field("security", &self.security)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.credentials.as_ref().map(|(user, _)| user))
            .finish_non_exhaustive()
    }
}

impl Serialize for SmtpUrl {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.raw)
    }
}

impl<'de> Deserialize<'de> for SmtpUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Self::parse(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Where messages go.
#[derive(Debug, Clone)]
pub enum MailTransport {
    /// An SMTP server, each command within `timeout`.
    Smtp {
        /// The server.
        url: SmtpUrl,
        /// Connection and command timeout.
        timeout: Duration,
        /// PEM certificates trusted for the server's TLS certificate besides the system's
        /// (`smtp_ca_file`: a private CA).
        ca: Option<Vec<u8>>,
    },
    /// No SMTP server configured: `.eml` files in this folder.
    Dir(PathBuf),
}

/// The mail settings, resolved ([`crate::state::RuntimeConfig::mail`]).
#[derive(Debug, Clone)]
pub struct MailConfig {
    /// Where messages go.
    pub transport: MailTransport,
    /// The `From:` of every message.
    pub from: Mailbox,
    /// Failed attempts after which a message fails for good.
    pub max_attempts: i64,
}

impl MailConfig {
    /// How long a claim keeps its messages from other senders: long enough to deliver a whole
    /// batch, each attempt bounded by [`MailConfig::attempt_timeout`].
    pub fn lease(&self) -> i64 {
        60 + BATCH * i64::try_from(self.attempt_timeout().as_secs()).unwrap_or(60)
    }

    /// The longest one delivery attempt may take (connect, TLS, the SMTP dialogue).
    pub fn attempt_timeout(&self) -> Duration {
        match &self.transport {
            MailTransport::Smtp { timeout, .. } => *timeout * 3,
            MailTransport::Dir(_) => Duration::from_secs(10),
        }
    }
}

/// The delay before the attempt after failed attempt number `attempts` (1, 2, …): 30 s, 60 s,
/// 2 min, … doubling up to an hour.
pub fn retry_delay(attempts: i64) -> i64 {
    let doublings = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
    RETRY_BASE.saturating_mul(1 << doublings).min(RETRY_CAP)
}

/// The domain of an address, the only part of it logs carry.
pub fn recipient_domain(address: &str) -> &str {
    address.rsplit_once('@').map_or("?", |(_, domain)| domain)
}

/// A lettre transport built once for the sender's life.
enum Sender {
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
    Dir(AsyncFileTransport<Tokio1Executor>),
}

/// Why an attempt failed: what is stored as `last_error`, whether to retry, what to log.
struct Failure {
    /// The SMTP reply or the error (stored, shown by `keycard mail list`; never logged).
    reply: String,
    /// Retrying cannot help (5xx, an unusable address).
    permanent: bool,
    /// The SMTP reply code, if the server answered.
    code: Option<String>,
}

impl Sender {
    fn new(config: &MailConfig) -> anyhow::Result<Self> {
        match &config.transport {
            MailTransport::Smtp { url, timeout, ca } => {
                let mut builder = match url.security {
                    SmtpSecurity::Plain => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&url.host),
                    SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&url.host)?,
                    SmtpSecurity::StartTls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&url.host)?,
                };
                if let Some(pem) = ca.as_deref().filter(|_| url.security != SmtpSecurity::Plain) {
                    // The system's roots and the configured CA; the server's name is checked.
                    let tls = TlsParameters::builder(url.host.clone())
                        .add_root_certificate(Certificate::from_pem(pem)?)
                        .build_rustls()?;
                    builder = builder.tls(match url.security {
                        SmtpSecurity::Tls => Tls::Wrapper(tls),
                        _ => Tls::Required(tls),
                    });
                }
                let mut builder = builder.port(url.port).timeout(Some(*timeout));
                if let Some((user, password)) = &url.credentials {
                    builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
                }
                Ok(Self::Smtp(builder.build()))
            }
            MailTransport::Dir(dir) => Ok(Self::Dir(AsyncFileTransport::<Tokio1Executor>::new(dir))),
        }
    }

    async fn send(&self, message: Message) -> Result<(), Failure> {
        match self {
            Self::Smtp(smtp) => smtp.send(message).await.map(drop).map_err(|e| Failure {
                reply: bounded(e.to_string()),
                permanent: e.is_permanent(),
                code: e.status().map(|code| code.to_string()),
            }),
            Self::Dir(files) => files.send(message).await.map(drop).map_err(|e| Failure {
                reply: bounded(format!("writing the .eml file: {e}")),
                permanent: false,
                code: None,
            }),
        }
    }
}

/// At most 1000 bytes of an error, cut on a character boundary.
fn bounded(mut text: String) -> String {
    if text.len() > 1000 {
        let mut end = 1000;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// The MIME message of an outbox record: plain text, or text and HTML alternatives.
fn message(from: &Mailbox, mail: &MailRecord) -> Result<Message, Failure> {
    let unusable = |why: String| Failure { reply: bounded(why), permanent: true, code: None };
    let to: Mailbox = mail.recipient.parse().map_err(|e| unusable(format!("unusable recipient address: {e}")))?;
    let builder = Message::builder().from(from.clone()).to(to).subject(mail.subject.clone());
    let built = match &mail.html_body {
        Some(html) => builder.multipart(MultiPart::alternative_plain_html(mail.text_body.clone(), html.clone())),
        None => builder.singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(mail.text_body.clone())),
    };
    built.map_err(|e| unusable(format!("the message could not be built: {e}")))
}

/// Spawns the sender: it delivers due messages until the task is aborted (with the server).
pub fn spawn_sender(state: AppState) -> JoinHandle<()> {
    tokio::spawn(async move {
        let config = state.config.mail.clone();
        let sender = match &config.transport {
            MailTransport::Dir(dir) => {
                if let Err(e) = tokio::fs::create_dir_all(dir).await {
                    tracing::error!(folder = %dir.display(), error = %e, "could not create mail_dir");
                }
                tracing::info!(folder = %dir.display(), "no smtp_url: mail is written as .eml files into this folder");
                Sender::new(&config)
            }
            MailTransport::Smtp { url, .. } => {
                tracing::info!(host = %url.host, port = url.port, security = ?url.security, "mail goes out over SMTP");
                Sender::new(&config)
            }
        };
        let sender = match sender {
            Ok(sender) => sender,
            Err(e) => {
                tracing::error!(error = %e, "the mail sender cannot start: mail stays queued");
                return;
            }
        };
        loop {
            match deliver_due(&state, &config, &sender).await {
                // A full batch: there may be more due at once.
                Ok(n) if n >= BATCH as usize => continue,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "could not claim due mail"),
            }
            tokio::select! {
                _ = state.mail_wake.notified() => {}
                _ = tokio::time::sleep(POLL_EVERY) => {}
            }
        }
    })
}

/// Claims one batch of due messages and attempts each; returns how many were claimed.
async fn deliver_due(state: &AppState, config: &MailConfig, sender: &Sender) -> keycard_store::Result<usize> {
    let now = state.now();
    let claimed = state.store.claim_mail(now, now + config.lease(), BATCH).await?;
    let count = claimed.len();
    for mail in claimed {
        let attempt = async {
            let message = message(&config.from, &mail)?;
            match tokio::time::timeout(config.attempt_timeout(), sender.send(message)).await {
                Ok(result) => result,
                Err(_) => Err(Failure { reply: "timed out".into(), permanent: false, code: None }),
            }
        };
        let result = attempt.await;
        let domain = recipient_domain(&mail.recipient);
        let recorded = match result {
            Ok(()) => {
                metrics::counter!("keycard_mail_sent_total").increment(1);
                tracing::info!(id = %mail.id, domain, attempts = mail.attempts, state = "sent", "mail delivered");
                state.store.mail_sent(&mail.id, state.now()).await
            }
            Err(failure) => {
                let gave_up = failure.permanent || mail.attempts >= config.max_attempts;
                let retry_at = (!gave_up).then(|| state.now() + retry_delay(mail.attempts));
                metrics::counter!("keycard_mail_failed_total", "final" => if gave_up { "true" } else { "false" })
                    .increment(1);
                tracing::warn!(
                    id = %mail.id,
                    domain,
                    attempts = mail.attempts,
                    code = failure.code.as_deref().unwrap_or("-"),
                    state = if gave_up { "failed" } else { "queued" },
                    retry_at,
                    "mail delivery failed"
                );
                state.store.mail_failed(&mail.id, &failure.reply, retry_at).await
            }
        };
        if let Err(e) = recorded {
            // The lease runs out and the message is attempted again.
            tracing::warn!(id = %mail.id, error = %e, "could not record the delivery attempt");
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smtp_urls_parse_with_their_default_ports_and_credentials() {
        let plain = SmtpUrl::parse("smtp://127.0.0.1:2525").unwrap();
        assert_eq!((plain.security, plain.host.as_str(), plain.port), (SmtpSecurity::Plain, "127.0.0.1", 2525));
        assert!(plain.credentials.is_none());
        let tls = SmtpUrl::parse("smtps://me%40corp:p%3Ass@mail.example.com").unwrap();
        assert_eq!((tls.security, tls.port), (SmtpSecurity::Tls, 465));
        let (user, password) = tls.credentials.clone().unwrap();
        assert_eq!((user.as_str(), password.expose()), ("me@corp", "p:ss"));
        assert!(!format!("{tls:?}").contains("p:ss"), "Debug hides the password");
        let starttls = SmtpUrl::parse("smtp+starttls://[::1]").unwrap();
        assert_eq!((starttls.security, starttls.host.as_str(), starttls.port), (SmtpSecurity::StartTls, "::1", 587));
        for bad in ["mail.example.com", "http://host", "smtp://", "smtp://host:port", "smtp://host/path"] {
            assert!(SmtpUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let delays: Vec<i64> = (1..=9).map(retry_delay).collect();
        assert_eq!(delays, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
        assert_eq!(retry_delay(1000), RETRY_CAP);
    }

    #[test]
    fn only_the_domain_of_a_recipient_is_logged() {
        assert_eq!(recipient_domain("someone@example.com"), "example.com");
        assert_eq!(recipient_domain("nobody"), "?");
    }
}
