//! `keycard users list | show | disable | enable | logout`: acting on an account during an
//! incident, without editing the database.
//!
//! Disabling revokes every live session of the user at once (reason `user_disabled`, on the
//! revocation feed) and makes the store refuse their access tokens and refreshes until they are
//! enabled. Enabling also revokes any session created while the user was disabled (a login that
//! should have been refused), so none comes back to life. `logout` revokes every session but
//! leaves the account enabled (reason `revoked_by_operator`). Each action is recorded in the audit
//! log (`user_disabled`, `user_enabled`, `sessions_revoked_by_operator`). Running servers see the
//! change on their next request: sessions and users are looked up on every request, never cached.

use clap::Subcommand;
use keycard_server::Settings;
use keycard_store::{
    AuditEvent, AuditKind, REVOKED_COUNT, RevocationReason, SessionRecord, Store, UserFilter, UserRecord, UserSummary,
};
use serde_json::{Value, json};

use crate::sessions::{print_sessions, session_json};
use crate::time_text;

/// Account operations. `<USER>` is a user id or an email address.
#[derive(Subcommand)]
pub enum UsersCommand {
    /// List users by email, with their live sessions and whether they are disabled.
    List {
        /// Only emails containing this text.
        #[arg(long)]
        email: Option<String>,
        /// Most users shown.
        #[arg(long, default_value_t = 100)]
        limit: i64,
        /// Start after this email (the last one of the previous page).
        #[arg(long)]
        after: Option<String>,
        /// Machine-readable output (a JSON array).
        #[arg(long)]
        json: bool,
    },
    /// Show one user: id, email, state, and their live sessions.
    Show {
        /// User id or email.
        user: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Disable the account: revoke every session now, refuse its tokens until enabled.
    Disable {
        /// User id or email.
        user: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Enable a disabled account (its revoked sessions stay revoked; the user logs in again).
    Enable {
        /// User id or email.
        user: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Log the user out everywhere: revoke every live session (the account stays enabled).
    Logout {
        /// User id or email.
        user: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove every second factor and recovery code of the account, for a user who lost both
    /// the device and the codes (make sure who is asking first). Sessions stay; the next login
    /// asks only for the password. Each removal is audited (`mfa_removed`) and sent as a webhook.
    ResetFactors {
        /// User id or email.
        user: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
}

pub async fn run(command: UsersCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = keycard_server::startup::open_store(settings).await?;
    let store = store.as_ref();
    let now = keycard_core::now_unix();
    match command {
        UsersCommand::List { email, limit, after, json } => {
            let filter = UserFilter {
                email_contains: email.map(|e| e.trim().to_lowercase()).filter(|e| !e.is_empty()),
                after_email: after.map(|e| e.trim().to_lowercase()),
                limit: limit.max(1),
            };
            let users = store.list_users(&filter, now).await?;
            if json {
                let list: Vec<Value> = users.iter().map(summary_json).collect();
                println!("{}", serde_json::to_string_pretty(&list)?);
            } else {
                print_users(&users);
            }
        }
        UsersCommand::Show { user, json } => {
            let user = find(store, &user).await?;
            let sessions = store.list_sessions(&user.id, now).await?;
            if json {
                let mut out = user_json(&user);
                out["sessions"] = sessions.iter().map(|s| session_json(s, &user.email)).collect();
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                print_user(&user, &sessions);
            }
        }
        UsersCommand::Disable { user, json } => {
            let user = find(store, &user).await?;
            let mut detail = format!("by operator; revoked {REVOKED_COUNT} session(s)");
            if let Some(since) = user.disabled_at {
                detail.push_str(&format!("; already disabled since {}", time_text(since)));
            }
            let event = operator_event(AuditKind::UserDisabled, Some(&user.id), None, detail);
            let Some(revoked) = store.set_user_disabled(&user.id, true, now, &event).await? else {
                return Err(no_user(&user.email));
            };
            report(json, &user, "disabled", &revoked, || {
                let already = if user.disabled_at.is_some() { " (it already was)" } else { "" };
                println!("disabled: {} ({}){already}", user.email, user.id);
                println!("revoked {} live session(s); the user's access tokens are refused from now on", revoked.len());
            })?;
        }
        UsersCommand::Enable { user, json } => {
            let user = find(store, &user).await?;
            if user.disabled_at.is_none() {
                // Nothing to do, nothing to audit.
                return report(json, &user, "enabled", &[], || {
                    println!("{} ({}) is not disabled; nothing changed", user.email, user.id);
                });
            }
            let detail = format!("by operator; revoked {REVOKED_COUNT} session(s) created while disabled");
            let event = operator_event(AuditKind::UserEnabled, Some(&user.id), None, detail);
            let Some(revoked) = store.set_user_disabled(&user.id, false, now, &event).await? else {
                return Err(no_user(&user.email));
            };
            report(json, &user, "enabled", &revoked, || {
                println!("enabled: {} ({}); they can log in again", user.email, user.id);
                if !revoked.is_empty() {
                    println!("revoked {} session(s) created while the user was disabled", revoked.len());
                }
            })?;
        }
        UsersCommand::Logout { user, json } => {
            let user = find(store, &user).await?;
            let detail = format!("by operator; revoked {REVOKED_COUNT} session(s)");
            let event = operator_event(AuditKind::SessionsRevokedByOperator, Some(&user.id), None, detail);
            let revoked =
                store.revoke_user_sessions(&user.id, None, RevocationReason::RevokedByOperator, now, &event).await?;
            let state = if user.disabled_at.is_some() { "disabled" } else { "enabled" };
            report(json, &user, state, &revoked, || {
                println!("logged out: {} ({}); revoked {} live session(s)", user.email, user.id, revoked.len());
            })?;
        }
        UsersCommand::ResetFactors { user, json } => {
            let user = find(store, &user).await?;
            let mut removed = Vec::new();
            for factor in store.factors(&user.id).await? {
                let detail = format!("by operator; {} factor {}", factor.kind, factor.id);
                let kind = if factor.kind == "passkey" { AuditKind::PasskeyRemoved } else { AuditKind::MfaRemoved };
                let event = operator_event(kind, Some(&user.id), None, detail);
                if store.remove_factor(&user.id, &factor.id, &event).await? {
                    removed.push(factor.id);
                }
            }
            if json {
                let out = json!({"id": user.id, "email": user.email, "removed_factors": removed});
                println!("{}", serde_json::to_string_pretty(&out)?);
            } else {
                println!("removed {} factor(s) and the recovery codes of {} ({})", removed.len(), user.email, user.id);
                println!("the next login asks only for the password; sessions are untouched");
            }
        }
    }
    Ok(())
}

/// The user named by `key`: an email (it has an `@`; compared normalised, as at login) or an id.
pub async fn find(store: &dyn Store, key: &str) -> anyhow::Result<UserRecord> {
    let key = key.trim();
    let found =
        if key.contains('@') { store.user_by_email(&key.to_lowercase()).await? } else { store.user_by_id(key).await? };
    found.ok_or_else(|| no_user(key))
}

fn no_user(key: &str) -> anyhow::Error {
    anyhow::anyhow!("no user with id or email {key:?}")
}

/// The audit event of an operator's action, for the store method that makes the change to write
/// in its transaction (`user_id` `None`: the store fills in the session's user).
pub fn operator_event(kind: AuditKind, user_id: Option<&str>, session_id: Option<&str>, detail: String) -> AuditEvent {
    AuditEvent {
        at: keycard_core::now_unix(),
        kind,
        user_id: user_id.map(str::to_owned),
        session_id: session_id.map(str::to_owned),
        ip: None,
        user_agent: None,
        detail: Some(detail),
    }
}

/// Prints an action's outcome: JSON, or the human lines `text` prints.
fn report(json: bool, user: &UserRecord, state: &str, revoked: &[String], text: impl FnOnce()) -> anyhow::Result<()> {
    if json {
        let out = json!({"id": user.id, "email": user.email, "state": state, "revoked_sessions": revoked});
        println!("{}", serde_json::to_string_pretty(&out)?);
    } else {
        text();
    }
    Ok(())
}

fn user_json(user: &UserRecord) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "created_at": user.created_at,
        "disabled_at": user.disabled_at,
    })
}

fn summary_json(user: &UserSummary) -> Value {
    json!({
        "id": user.id,
        "email": user.email,
        "created_at": user.created_at,
        "disabled_at": user.disabled_at,
        "live_sessions": user.live_sessions,
    })
}

fn state_text(disabled_at: Option<i64>) -> String {
    match disabled_at {
        Some(at) => format!("disabled since {}", time_text(at)),
        None => "enabled".into(),
    }
}

fn print_users(users: &[UserSummary]) {
    if users.is_empty() {
        println!("no users");
        return;
    }
    let width = users.iter().map(|u| u.email.len()).max().unwrap_or(0).max("email".len());
    println!("{:<36}  {:<width$}  {:<20}  {:>8}  state", "id", "email", "created", "sessions");
    for u in users {
        println!(
            "{:<36}  {:<width$}  {:<20}  {:>8}  {}",
            u.id,
            u.email,
            time_text(u.created_at),
            u.live_sessions,
            state_text(u.disabled_at)
        );
    }
}

fn print_user(user: &UserRecord, sessions: &[SessionRecord]) {
    println!("id:       {}", user.id);
    println!("email:    {}", user.email);
    println!("created:  {}", time_text(user.created_at));
    println!("state:    {}", state_text(user.disabled_at));
    println!("sessions: {} live", sessions.len());
    if !sessions.is_empty() {
        println!();
        print_sessions(sessions, |_| user.email.clone());
    }
}
