//! `keycard sessions list | revoke`: every user's live sessions, and revoking any one of them.
//!
//! A session revoked here is revoked as by its user's logout: its refresh token stops working,
//! its access tokens are refused on the server's next request, and its id goes on the revocation
//! feed (reason `revoked_by_operator`); the audit log records `session_revoked`, "by operator".

use std::collections::HashMap;

use clap::Subcommand;
use keycard_server::Settings;
use keycard_store::{AuditKind, RevocationReason, SessionRecord};
use serde_json::{Value, json};

use crate::time_text;
use crate::users::{find, operator_event};

/// Session operations.
#[derive(Subcommand)]
pub enum SessionsCommand {
    /// List live sessions, newest first: every user's, or one user's.
    List {
        /// Only this user's (id or email).
        #[arg(long)]
        user: Option<String>,
        /// Most sessions shown.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Machine-readable output (a JSON array).
        #[arg(long)]
        json: bool,
    },
    /// Revoke one session now, whoever's it is.
    Revoke {
        /// Session id (the `sid` of its access tokens).
        session: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: SessionsCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = keycard_server::startup::open_store(settings).await?;
    let store = store.as_ref();
    let now = keycard_core::now_unix();
    match command {
        SessionsCommand::List { user, limit, json } => {
            let owner = match user {
                Some(key) => Some(find(store, &key).await?),
                None => None,
            };
            let sessions = store.list_all_sessions(owner.as_ref().map(|u| u.id.as_str()), now, limit.max(1)).await?;
            // Emails for the owners shown (one lookup per distinct user).
            let mut emails: HashMap<String, String> = HashMap::new();
            for s in &sessions {
                if !emails.contains_key(&s.user_id) {
                    let email = store.user_by_id(&s.user_id).await?.map(|u| u.email).unwrap_or_else(|| "-".into());
                    emails.insert(s.user_id.clone(), email);
                }
            }
            let email = |s: &SessionRecord| emails.get(&s.user_id).cloned().unwrap_or_else(|| "-".into());
            if json {
                let list: Vec<Value> = sessions.iter().map(|s| session_json(s, &email(s))).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else if sessions.is_empty() {
                println!("no live sessions");
            } else {
                print_sessions(&sessions, email);
            }
        }
        SessionsCommand::Revoke { session, json } => {
            let session = session.trim();
            let event = operator_event(AuditKind::SessionRevoked, None, Some(session), "by operator".into());
            let reason = RevocationReason::RevokedByOperator;
            let Some(user_id) = store.revoke_session_by_id(session, reason, now, &event).await? else {
                anyhow::bail!("no live session {session:?}");
            };
            if json {
                println!("{}", serde_json::to_string_pretty(&json!({"session_id": session, "user_id": user_id}))?);
            } else {
                println!("revoked: session {session} of user {user_id}");
            }
        }
    }
    Ok(())
}

/// A session as JSON, with its owner's email.
pub fn session_json(s: &SessionRecord, email: &str) -> Value {
    json!({
        "id": s.id,
        "user_id": s.user_id,
        "email": email,
        "created_at": s.created_at,
        "last_used_at": s.last_used_at,
        "idle_expires_at": s.idle_expires_at,
        "absolute_expires_at": s.absolute_expires_at,
        "ip": s.ip,
        "user_agent": s.user_agent,
    })
}

/// Sessions as a table, one per line.
pub fn print_sessions(sessions: &[SessionRecord], email: impl Fn(&SessionRecord) -> String) {
    let emails: Vec<String> = sessions.iter().map(email).collect();
    let width = emails.iter().map(String::len).max().unwrap_or(0).max("user".len());
    println!(
        "{:<36}  {:<width$}  {:<20}  {:<20}  {:<20}  {:<15}  user agent",
        "session", "user", "created", "last used", "expires", "ip"
    );
    for (s, email) in sessions.iter().zip(emails) {
        println!(
            "{:<36}  {:<width$}  {:<20}  {:<20}  {:<20}  {:<15}  {}",
            s.id,
            email,
            time_text(s.created_at),
            time_text(s.last_used_at),
            time_text(s.idle_expires_at.min(s.absolute_expires_at)),
            s.ip.as_deref().unwrap_or("-"),
            s.user_agent.as_deref().unwrap_or("-"),
        );
    }
}
