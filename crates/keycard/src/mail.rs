//! `keycard mail list`: the mail outbox, newest first, with each message's delivery state, its
//! attempts and the last SMTP reply. Never a body (bodies hold links with tokens).
//! `keycard mail templates DIR`: the built-in mail templates, written out to edit (then point
//! `mail_templates` at DIR).

use clap::{Subcommand, ValueEnum};
use keycard_server::Settings;
use keycard_store::{MailFilter, MailRecord, MailState};
use serde_json::{Value, json};

/// Outbox operations.
#[derive(Subcommand)]
pub enum MailCommand {
    /// Show the outbox, newest first: recipient, subject, state, attempts, last SMTP reply, times.
    List {
        /// Only messages in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Write the built-in mail templates into DIR (existing files are kept), to edit and use
    /// with the `mail_templates` setting.
    Templates {
        /// The folder (created if missing).
        dir: std::path::PathBuf,
    },
}

/// A delivery state on the command line.
#[derive(Clone, Copy, ValueEnum)]
pub enum StateArg {
    /// Waiting for (another) attempt.
    Queued,
    /// Delivered.
    Sent,
    /// Given up on.
    Failed,
}

impl From<StateArg> for MailState {
    fn from(state: StateArg) -> Self {
        match state {
            StateArg::Queued => Self::Queued,
            StateArg::Sent => Self::Sent,
            StateArg::Failed => Self::Failed,
        }
    }
}

fn mail_json(m: &MailRecord) -> Value {
    json!({
        "id": m.id,
        "recipient": m.recipient,
        "subject": m.subject,
        "state": m.state.as_str(),
        "attempts": m.attempts,
        "last_error": m.last_error,
        "created_at": crate::time_text(m.created_at),
        "next_attempt_at": (m.state == MailState::Queued).then(|| crate::time_text(m.next_attempt_at)),
        "sent_at": m.sent_at.map(crate::time_text),
    })
}

pub async fn run(command: MailCommand, settings: &Settings) -> anyhow::Result<()> {
    let (state, limit, json) = match command {
        MailCommand::List { state, limit, json } => (state, limit, json),
        MailCommand::Templates { dir } => return write_templates(&dir),
    };
    let store = keycard_server::startup::open_store(settings).await?;
    let mail = store.list_mail(&MailFilter { state: state.map(MailState::from), limit }).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&mail.iter().map(mail_json).collect::<Vec<_>>())?);
        return Ok(());
    }
    println!(
        "{:<36} {:<30} {:<30} {:<7} {:>8} {:<22} {:<22} last reply",
        "id", "recipient", "subject", "state", "attempts", "created", "sent / next attempt"
    );
    for m in &mail {
        let when = match (m.state, m.sent_at) {
            (_, Some(sent)) => crate::time_text(sent),
            (MailState::Queued, None) => crate::time_text(m.next_attempt_at),
            _ => "-".into(),
        };
        println!(
            "{:<36} {:<30} {:<30} {:<7} {:>8} {:<22} {:<22} {}",
            m.id,
            m.recipient,
            m.subject,
            m.state.as_str(),
            m.attempts,
            crate::time_text(m.created_at),
            when,
            m.last_error.as_deref().unwrap_or("-").replace(['\r', '\n'], " ")
        );
    }
    Ok(())
}

/// `keycard mail templates DIR`: needs no store.
fn write_templates(dir: &std::path::Path) -> anyhow::Result<()> {
    let written = keycard_server::templates::MailTemplates::write_builtin(dir)
        .map_err(|e| anyhow::anyhow!("writing the templates into {}: {e}", dir.display()))?;
    for path in &written {
        println!("{}", path.display());
    }
    eprintln!(
        "{} templates written into {} (files already there were kept); set mail_templates = {:?} to use them",
        written.len(),
        dir.display(),
        dir.display().to_string()
    );
    Ok(())
}
