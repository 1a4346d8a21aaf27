//! Mail delivery against a real SMTP server (aiosmtpd writing a Maildir): a queued message is
//! delivered once with both parts; with SMTP down it stays queued with the error and goes out once
//! SMTP is back; with no `smtp_url` it becomes an `.eml` file; a restart delivers what was queued,
//! once; two instances on PostgreSQL deliver each message exactly once. Time is moved with the
//! manual clock and the sender woken: no test waits for a retry delay.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use keycard_core::clock::ManualClock;
use keycard_server::mail::SmtpUrl;
use keycard_store::{MailFilter, MailRecord, MailState, NewMail};

use crate::helpers::*;

/// An aiosmtpd server writing every message it accepts into a Maildir; killed on drop.
pub struct SmtpServer {
    child: Option<Child>,
    port: u16,
    maildir: PathBuf,
    /// More aiosmtpd options (TLS: `--smtpscert`/`--smtpskey`, `--tlscert`/`--tlskey`).
    options: Vec<String>,
    _dir: tempfile::TempDir,
}

impl SmtpServer {
    /// A port nothing listens on yet (the server starts later, with [`SmtpServer::start`]).
    pub fn stopped() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for sub in ["tmp", "new", "cur"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        Self { child: None, port, maildir, options: Vec::new(), _dir: dir }
    }

    /// Started and accepting connections; `None` when aiosmtpd is not installed (outside CI).
    pub fn started() -> Option<Self> {
        let mut server = Self::stopped();
        server.start().then_some(server)
    }

    /// Started with these aiosmtpd options; `None` when aiosmtpd is not installed (outside CI).
    pub fn started_with(options: &[&str]) -> Option<Self> {
        let mut server = Self::stopped();
        server.options = options.iter().map(|o| (*o).to_owned()).collect();
        server.start().then_some(server)
    }

    /// Starts aiosmtpd on the port; false (outside CI) when it cannot run, a loud failure in CI.
    pub fn start(&mut self) -> bool {
        let spawned = Command::new("python3")
            .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{}", self.port)])
            .args(&self.options)
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
        SmtpUrl::parse(&format!("smtp://127.0.0.1:{}", self.port)).unwrap()
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

/// A certificate for `localhost` (its own CA) written into `dir`: (certificate path, key path).
fn localhost_certificate(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert_path, key_path) = (dir.join("smtp-cert.pem"), dir.join("smtp-key.pem"));
    std::fs::write(&cert_path, cert.cert.pem()).unwrap();
    std::fs::write(&key_path, cert.signing_key.serialize_pem()).unwrap();
    (cert_path, key_path)
}

/// Delivery over TLS from the first byte (`smtps://`) and over STARTTLS (`smtp+starttls://`,
/// which aiosmtpd requires before any mail), to a server whose certificate a private CA signed:
/// trusted through `smtp_ca_file`, refused without it (the message stays queued with the error).
#[tokio::test]
async fn tls_and_starttls_deliver_to_a_server_trusted_through_smtp_ca_file_and_refuse_an_unknown_one() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = localhost_certificate(certs.path());
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    for (scheme, options) in
        [("smtps", ["--smtpscert", cert, "--smtpskey", key]), ("smtp+starttls", ["--tlscert", cert, "--tlskey", key])]
    {
        let Some(smtp) = SmtpServer::started_with(&options) else { return };
        let url = SmtpUrl::parse(&format!("{scheme}://localhost:{}", smtp.port)).unwrap();

        let untrusting = spawn_app_with(|s| s.smtp_url = Some(url.clone())).await;
        untrusting.state.enqueue_mail(&new_mail(1, untrusting.now())).await.unwrap();
        eventually("the refused attempt", async || outbox(&untrusting).await[0].last_error.is_some()).await;
        let refused = outbox(&untrusting).await.remove(0);
        assert_eq!(refused.state, MailState::Queued, "{scheme}: retried later");
        assert!(smtp.messages().is_empty(), "{scheme}: nothing delivered to an untrusted server");
        untrusting.stop().await;

        let app = spawn_app_with(|s| {
            s.smtp_url = Some(url);
            s.smtp_ca_file = Some(PathBuf::from(cert));
        })
        .await;
        app.state.enqueue_mail(&new_mail(2, app.now())).await.unwrap();
        eventually("the message in the Maildir", async || smtp.messages().len() == 1).await;
        eventually("the message marked sent", async || outbox(&app).await[0].state == MailState::Sent).await;
        assert!(smtp.messages()[0].contains("Plain text number 2"), "{scheme}");
    }
}

#[tokio::test]
async fn an_unreadable_smtp_ca_file_stops_start_up_naming_it() {
    let dir = Arc::new(tempfile::tempdir().unwrap());
    let mut settings = test_settings(&dir).await;
    settings.smtp_url = Some(SmtpUrl::parse("smtps://localhost:465").unwrap());
    settings.smtp_ca_file = Some(dir.path().join("missing-ca.pem"));
    let err = keycard_server::Application::build(settings.clone()).await.err().expect("start-up refused");
    assert!(format!("{err:#}").contains("missing-ca.pem"), "{err:#}");
    std::fs::write(dir.path().join("not-pem.pem"), "not a certificate").unwrap();
    settings.smtp_ca_file = Some(dir.path().join("not-pem.pem"));
    let err = keycard_server::Application::build(settings).await.err().expect("start-up refused");
    assert!(format!("{err:#}").contains("not-pem.pem"), "{err:#}");
}
