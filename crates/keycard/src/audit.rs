//! `keycard audit`: read and filter the audit log kept in the store.

use clap::Args;
use keycard_server::Settings;
use keycard_server::settings::HumanDuration;
use keycard_store::{AuditFilter, AuditKind};

/// Filters of `keycard audit`.
#[derive(Args)]
pub struct AuditArgs {
    /// Only this user's events (user id).
    #[arg(long)]
    user: Option<String>,
    /// Only this kind (signup, login, login_failed, refresh, refresh_token_reused, logout,
    /// session_revoked, password_changed, …; an unknown kind is refused with the list).
    #[arg(long)]
    kind: Option<AuditKind>,
    /// Only events of the last duration, e.g. 1h, 7d.
    #[arg(long)]
    since: Option<String>,
    /// Most events shown, newest first.
    #[arg(long, default_value_t = 100)]
    limit: i64,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

pub async fn run(args: AuditArgs, settings: &Settings) -> anyhow::Result<()> {
    let since = match args.since.as_deref() {
        Some(text) => {
            Some(keycard_core::now_unix() - HumanDuration::parse(text).map_err(anyhow::Error::msg)?.as_secs_i64())
        }
        None => None,
    };
    let store = keycard_server::startup::open_store(settings).await?;
    let filter = AuditFilter { user_id: args.user, kind: args.kind, since, limit: args.limit.max(1) };
    for record in store.audit_events(&filter).await? {
        let e = record.event;
        if args.json {
            let line = serde_json::json!({
                "id": record.id, "at": e.at, "kind": e.kind, "user_id": e.user_id, "session_id": e.session_id,
                "ip": e.ip, "user_agent": e.user_agent, "detail": e.detail,
            });
            println!("{line}");
        } else {
            let at = time::OffsetDateTime::from_unix_timestamp(e.at)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
                .unwrap_or_else(|| e.at.to_string());
            let dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
            println!(
                "{at}  {:<22} user={} session={} ip={} {}",
                e.kind,
                dash(e.user_id),
                dash(e.session_id),
                dash(e.ip),
                e.detail.unwrap_or_default()
            );
        }
    }
    Ok(())
}
