//! Mail delivery against a real SMTP server (aiosmtpd writing a Maildir): a queued message is
//! delivered once with both parts; with SMTP down it stays queued with the error and goes out once
//! SMTP is back; with no `smtp_url` it becomes an `.eml` file; a restart delivers what was queued,
//! once; two instances on PostgreSQL deliver each message exactly once; STARTTLS and implicit TLS
//! deliver to a server signed by a test CA that `smtp_ca_file` trusts, and refuse it without.
//! Time is moved with the manual clock and the sender woken: no test waits for a retry delay.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keycard_core::clock::ManualClock;
use keycard_server::mail::SmtpUrl;
use keycard_store::{MailFilter, MailRecord, MailState, NewMail};

use crate::helpers::*;

/// How the test SMTP server secures its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain text.
    Off,
    /// STARTTLS offered and required before a message is accepted (`--tlscert`).
    StartTls,
    /// TLS from the first byte (`--smtpscert`).
    Implicit,
}

/// An aiosmtpd server writing every message it accepts into a Maildir; killed on drop.
pub struct SmtpServer {
    child: Option<Child>,
    port: u16,
    maildir: PathBuf,
    tls: SmtpTls,
    dir: tempfile::TempDir,
}

impl SmtpServer {
    /// A port nothing listens on yet (the server starts later, with [`SmtpServer::start`]).
    pub fn stopped() -> Self {
        Self::stopped_with(SmtpTls::Off)
    }

    fn stopped_with(tls: SmtpTls) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        if tls != SmtpTls::Off {
            test_ca(dir.path());
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self { child: None, port, maildir, tls, dir }
    }

    /// Started and accepting connections; `None` when aiosmtpd is not installed (outside CI).
    pub fn started() -> Option<Self> {
        Self::started_with(SmtpTls::Off)
    }

    /// Started with TLS: a certificate for 127.0.0.1 signed by a test CA ([`SmtpServer::ca_file`]).
    pub fn started_with(tls: SmtpTls) -> Option<Self> {
        let mut server = Self::stopped_with(tls);
        server.start().then_some(server)
    }

    /// The PEM file of the CA that signed the server's certificate.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Starts aiosmtpd on the port; false (outside CI) when it cannot run, a loud failure in CI.
    fn start(&mut self) -> bool {
        let (cert, key) = (self.dir.path().join("cert.pem"), self.dir.path().join("key.pem"));
        let tls_args: Vec<&std::ffi::OsStr> = match self.tls {
            SmtpTls::Off => vec![],
            SmtpTls::StartTls => vec!["--tlscert".as_ref(), cert.as_os_str(), "--tlskey".as_ref(), key.as_os_str()],
            SmtpTls::Implicit => {
                vec!["--smtpscert".as_ref(), cert.as_os_str(), "--smtpskey".as_ref(), key.as_os_str()]
            }
        };
        let spawned = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{}", self.port)])
            .args(tls_args)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&self.maildir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn();
        let mut child = match spawned {
            Ok(child) => child,
            Err(e) => return missing(&format!("python3 could not start: {e}")),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                return missing(&format!("aiosmtpd exited with {status} (pip install aiosmtpd)"));
            }
            assert!(Instant::now() < deadline, "aiosmtpd did not listen within 20 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        self.child = Some(child);
        true
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> SmtpUrl {
        let scheme = match self.tls {
            SmtpTls::Off => "smtp",
            SmtpTls::StartTls => "smtp+starttls",
            SmtpTls::Implicit => "smtps",
        };
        SmtpUrl::parse(&format!("{scheme}://127.0.0.1:{}", self.port)).unwrap()
    }

    /// The messages delivered so far.
    pub fn messages(&self) -> Vec<String> {
        files_in(&self.maildir.join("new"), "")
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Writes `ca.pem` (a test CA), and `cert.pem` + `key.pem` (a certificate it signed for
/// 127.0.0.1 and localhost) into `dir`.
fn test_ca(dir: &Path) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "keycard test CA");
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    std::fs::write(dir.join("cert.pem"), cert.pem()).unwrap();
    std::fs::write(dir.join("key.pem"), key.serialize_pem()).unwrap();
}

/// Without aiosmtpd the tests cannot run: skipped on a laptop, a failure in CI.
fn missing(why: &str) -> bool {
    if std::env::var_os("CI").is_some() {
        panic!("the SMTP test server is required in CI: {why}");
    }
    eprintln!("skipping: {why}");
    false
}

/// The contents of the files in `dir` whose names end with `suffix`.
fn files_in(dir: &Path, suffix: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().ends_with(suffix))
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .collect()
}

/// Polls `check` until it holds, for at most 15 s.
pub async fn eventually(what: &str, mut check: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

fn new_mail(n: usize, now: i64) -> NewMail {
    NewMail {
        id: uuid::Uuid::new_v4().to_string(),
        recipient: format!("person{n}@example.org"),
        subject: format!("Hello {n}"),
        text_body: format!("Plain text number {n}"),
        html_body: Some(format!("<p>HTML number {n}</p>")),
        created_at: now,
    }
}

async fn outbox(app: &TestApp) -> Vec<MailRecord> {
    app.store().list_mail(&MailFilter::default()).await.unwrap()
}

#[tokio::test]
async fn a_queued_message_is_delivered_once_with_both_parts() {
    let Some(smtp) = SmtpServer::started() else { return };
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    let mail = new_mail(1, app.now());
    app.state.enqueue_mail(&mail).await.unwrap();

    eventually("the message in the Maildir", async || smtp.messages().len() == 1).await;
    let message = &smtp.messages()[0];
    assert!(message.contains("To: person1@example.org"), "{message}");
    assert!(message.contains("Subject: Hello 1"), "{message}");
    assert!(message.contains("multipart/alternative"), "{message}");
    assert!(message.contains("text/plain") && message.contains("Plain text number 1"), "{message}");
    assert!(message.contains("text/html") && message.contains("<p>HTML number 1</p>"), "{message}");
    eventually("the message marked sent", async || outbox(&app).await[0].state == MailState::Sent).await;
    let record = &outbox(&app).await[0];
    assert_eq!((record.attempts, record.sent_at.is_some(), record.last_error.as_deref()), (1, true, None));

    // Woken again (and time moved on), the sender does not send it twice.
    app.advance(3600.0);
    app.state.wake_mail_sender();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "delivered once");
}

#[tokio::test]
async fn starttls_and_implicit_tls_deliver_to_a_server_whose_ca_is_trusted_by_smtp_ca_file() {
    for tls in [SmtpTls::StartTls, SmtpTls::Implicit] {
        let Some(smtp) = SmtpServer::started_with(tls) else { return };
        let app = spawn_app_with(|s| {
            s.smtp_url = Some(smtp.url());
            s.smtp_ca_file = Some(smtp.ca_file());
        })
        .await;
        app.state.enqueue_mail(&new_mail(1, app.now())).await.unwrap();
        eventually("the message in the Maildir", async || smtp.messages().len() == 1).await;
        assert!(smtp.messages()[0].contains("Plain text number 1"), "{tls:?}");
        eventually("the message marked sent", async || outbox(&app).await[0].state == MailState::Sent).await;
        assert_eq!(outbox(&app).await[0].attempts, 1, "{tls:?}");
    }
}

#[tokio::test]
async fn a_certificate_no_trusted_ca_signed_is_refused_and_the_message_waits() {
    for tls in [SmtpTls::StartTls, SmtpTls::Implicit] {
        let Some(smtp) = SmtpServer::started_with(tls) else { return };
        // The system's roots only: the test CA is not among them.
        let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
        app.state.enqueue_mail(&new_mail(1, app.now())).await.unwrap();
        eventually("the failed attempt recorded", async || outbox(&app).await[0].last_error.is_some()).await;
        let record = &outbox(&app).await[0];
        assert_eq!(record.state, MailState::Queued, "{tls:?}: retried later, not sent in clear");
        let error = record.last_error.as_deref().unwrap_or_default().to_lowercase();
        assert!(error.contains("certificate") || error.contains("issuer"), "{tls:?}: {error}");
        assert!(smtp.messages().is_empty(), "{tls:?}: nothing delivered");
    }
}

#[test]
fn smtp_ca_file_must_hold_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ca.pem");
    std::fs::write(&file, "not a certificate").unwrap();
    let missing = keycard_server::mail::read_ca_file(&dir.path().join("nowhere.pem")).unwrap_err().to_string();
    assert!(missing.contains("smtp_ca_file") && missing.contains("nowhere.pem"), "{missing}");
    let empty = keycard_server::mail::read_ca_file(&file).unwrap_err().to_string();
    assert!(empty.contains("no PEM certificate"), "{empty}");
    test_ca(dir.path());
    assert!(keycard_server::mail::read_ca_file(&dir.path().join("ca.pem")).is_ok());
}

#[tokio::test]
async fn with_smtp_down_the_message_waits_with_the_error_and_goes_out_once_when_it_is_back() {
    let mut smtp = SmtpServer::stopped();
    let app = spawn_app_with(|s| s.smtp_url = Some(smtp.url())).await;
    app.state.enqueue_mail(&new_mail(1, app.now())).await.unwrap();
    eventually("the failed attempt recorded", async || outbox(&app).await[0].last_error.is_some()).await;
    let record = &outbox(&app).await[0];
    assert_eq!((record.state, record.attempts), (MailState::Queued, 1));
    assert_eq!(record.next_attempt_at, app.now() + 30, "retried after a backoff");

    // A second failure doubles the delay.
    app.advance(30.0);
    app.state.wake_mail_sender();
    eventually("the second attempt", async || outbox(&app).await[0].attempts == 2).await;
    eventually("its failure recorded", async || outbox(&app).await[0].next_attempt_at == app.now() + 60).await;

    if !smtp.start() {
        return;
    }
    app.advance(60.0);
    app.state.wake_mail_sender();
    eventually("the message in the Maildir", async || smtp.messages().len() == 1).await;
    eventually("the message marked sent", async || outbox(&app).await[0].state == MailState::Sent).await;
    assert_eq!(outbox(&app).await[0].attempts, 3);
    app.advance(3600.0);
    app.state.wake_mail_sender();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_permanent_refusal_or_too_many_attempts_fail_the_message_for_good() {
    let app = spawn_app_with(|s| {
        s.smtp_url = Some(SmtpServer::stopped().url());
        s.mail_max_attempts = 2;
    })
    .await;
    app.state.enqueue_mail(&new_mail(1, app.now())).await.unwrap();
    eventually("the first failure", async || outbox(&app).await[0].last_error.is_some()).await;
    app.advance(30.0);
    app.state.wake_mail_sender();
    eventually("the final failure", async || outbox(&app).await[0].state == MailState::Failed).await;
    assert_eq!(outbox(&app).await[0].attempts, 2);

    let unusable = NewMail { recipient: "not an address".into(), ..new_mail(2, app.now()) };
    app.state.enqueue_mail(&unusable).await.unwrap();
    eventually("the unusable address failed", async || {
        outbox(&app).await.iter().any(|m| m.id == unusable.id && m.state == MailState::Failed)
    })
    .await;
}

#[tokio::test]
async fn without_smtp_each_message_becomes_an_eml_file_in_mail_dir() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(&dir).await;
    let folder = dir.path().join("mail");
    if on_postgres() {
        settings.mail_dir = Some(folder.clone());
    } else {
        assert_eq!(settings.mail_dir(), folder, "next to the database by default");
    }
    let app = start(settings, dir).await;
    app.state.enqueue_mail(&new_mail(1, app.now())).await.unwrap();
    eventually("the .eml file", async || files_in(&folder, ".eml").len() == 1).await;
    let message = &files_in(&folder, ".eml")[0];
    assert!(message.contains("To: person1@example.org") && message.contains("Plain text number 1"), "{message}");
    eventually("the message marked sent", async || outbox(&app).await[0].state == MailState::Sent).await;
}

#[tokio::test]
async fn a_message_queued_before_a_restart_is_delivered_after_it_once() {
    let mut smtp = SmtpServer::stopped();
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(&dir).await;
    settings.smtp_url = Some(smtp.url());
    let clock = Arc::new(ManualClock::starting_now());
    let first = start_with_clock(settings.clone(), dir.clone(), clock.clone()).await;
    first.state.enqueue_mail(&new_mail(1, first.now())).await.unwrap();
    eventually("the failed attempt", async || outbox(&first).await[0].attempts == 1).await;
    eventually("its failure recorded", async || outbox(&first).await[0].last_error.is_some()).await;
    first.stop().await;

    if !smtp.start() {
        return;
    }
    let second = start_with_clock(settings, dir, clock).await;
    second.advance(30.0);
    second.state.wake_mail_sender();
    eventually("the message in the Maildir", async || smtp.messages().len() == 1).await;
    eventually("the message marked sent", async || outbox(&second).await[0].state == MailState::Sent).await;
    second.advance(3600.0);
    second.state.wake_mail_sender();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(smtp.messages().len(), 1, "delivered once");
}

/// Two instances on one PostgreSQL outbox, both woken for every message: each of 20 messages
/// reaches the Maildir exactly once.
#[tokio::test]
async fn two_instances_on_postgres_deliver_each_message_exactly_once() {
    let Ok(base) = std::env::var("KEYCARD_TEST_POSTGRES_URL") else {
        assert!(std::env::var_os("CI").is_none(), "CI runs this test on PostgreSQL: set KEYCARD_TEST_POSTGRES_URL");
        return;
    };
    let Some(smtp) = SmtpServer::started() else { return };
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let (server, _) = base.rsplit_once('/').unwrap();
    let url = format!("{server}/kc_mail_{}", uuid::Uuid::new_v4().simple());
    keycard_store::PgStore::create_database(&url).await.unwrap();
    let mut settings = test_settings(&dir).await;
    settings.database = url.into();
    let (_, master) = keycard_server::keys::MasterKey::generate().unwrap();
    settings.master_key = Some(keycard_server::settings::Secret::new(master));
    settings.smtp_url = Some(smtp.url());
    let clock = Arc::new(ManualClock::starting_now());
    let a = start_with_clock(settings.clone(), dir.clone(), clock.clone()).await;
    let b = start_with_clock(settings, dir, clock).await;

    for n in 0..20_usize {
        let on = if n.is_multiple_of(2) { &a } else { &b };
        on.state.enqueue_mail(&new_mail(n, on.now())).await.unwrap();
        a.state.wake_mail_sender();
        b.state.wake_mail_sender();
    }
    eventually("20 messages in the Maildir", async || smtp.messages().len() >= 20).await;
    eventually("all 20 marked sent", async || {
        a.store().list_mail(&MailFilter { state: Some(MailState::Sent), limit: 100 }).await.unwrap().len() == 20
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = smtp.messages();
    assert_eq!(messages.len(), 20, "no message delivered twice");
    for n in 0..20 {
        let to = format!("To: person{n}@example.org\n");
        let copies = messages.iter().filter(|m| m.replace("\r\n", "\n").contains(&to)).count();
        assert_eq!(copies, 1, "person{n}");
    }
    assert!(a.store().list_mail(&MailFilter::default()).await.unwrap().iter().all(|m| m.attempts == 1));
}
