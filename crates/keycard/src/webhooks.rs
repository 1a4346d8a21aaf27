//! `keycard webhooks list | add | remove | test`: endpoints that receive security events as
//! signed POSTs (Standard Webhooks), with their delivery status. `add` prints the signing secret
//! once (it is stored sealed under the master key and never shown again).

use clap::Subcommand;
use keycard_server::Settings;
use keycard_server::keys::master_key;
use keycard_store::{WebhookEndpoint, WebhookEvent};
use serde_json::{Value, json};

/// Webhook operations.
#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Show every endpoint with its delivery status: pending (and of those failing), delivered,
    /// failed for good, the last error and the next attempt.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Add an endpoint (http:// or https://); prints its id and signing secret (`whsec_…`) once.
    Add {
        /// Where deliveries are POSTed.
        url: String,
        /// Comma-separated events to send (default: all): refresh_token_reused, password_changed,
        /// password_reset, account_deleted, session_revoked, new_device_login, mfa_enrolled,
        /// mfa_removed, passkey_added, passkey_removed, recovery_codes_regenerated,
        /// recovery_code_used.
        #[arg(long, value_delimiter = ',')]
        events: Vec<String>,
    },
    /// Remove an endpoint; its pending deliveries are dropped.
    Remove {
        /// Endpoint id (`wh_…`).
        id: String,
    },
    /// Queue a `webhook.test` event to one endpoint (a running server delivers it).
    Test {
        /// Endpoint id (`wh_…`).
        id: String,
    },
}

fn endpoint_json(e: &WebhookEndpoint) -> Value {
    let s = &e.status;
    json!({
        "id": e.id,
        "url": e.url,
        "events": e.events,
        "created_at": crate::time_text(e.created_at),
        "pending": s.pending,
        "failing": s.failing,
        "delivered": s.delivered,
        "failed": s.failed,
        "last_error": s.last_error,
        "next_attempt_at": s.next_attempt_at.map(crate::time_text),
    })
}

pub async fn run(command: WebhooksCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = keycard_server::startup::open_store(settings).await?;
    let now = keycard_core::now_unix();
    match command {
        WebhooksCommand::List { json } => {
            let endpoints = store.webhook_endpoints().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&endpoints.iter().map(endpoint_json).collect::<Vec<_>>())?);
                return Ok(());
            }
            println!(
                "{:<35} {:<40} {:<24} {:>7} {:>7} {:>9} {:>6} {:<22} last error",
                "id", "url", "events", "pending", "failing", "delivered", "failed", "next attempt"
            );
            for e in &endpoints {
                let s = &e.status;
                println!(
                    "{:<35} {:<40} {:<24} {:>7} {:>7} {:>9} {:>6} {:<22} {}",
                    e.id,
                    e.url,
                    e.events.join(","),
                    s.pending,
                    s.failing,
                    s.delivered,
                    s.failed,
                    s.next_attempt_at.map(crate::time_text).unwrap_or_else(|| "-".into()),
                    s.last_error.as_deref().unwrap_or("-").replace(['\r', '\n'], " ")
                );
            }
        }
        WebhooksCommand::Add { url, events } => {
            let events = events
                .iter()
                .map(|name| {
                    WebhookEvent::parse(name.trim()).ok_or_else(|| {
                        let known: Vec<&str> = WebhookEvent::ALL.iter().map(|e| e.as_str()).collect();
                        anyhow::anyhow!("unknown webhook event {name:?}; known: {}", known.join(", "))
                    })
                })
                .collect::<anyhow::Result<Vec<_>>>()?;
            let master = master_key(settings, store.as_ref()).await?;
            let (id, secret) =
                keycard_server::webhooks::add_endpoint(store.as_ref(), &master, &url, &events, now).await?;
            println!("id: {id}");
            println!("secret: {}", secret.expose());
            eprintln!("the secret is shown only this once: configure it in the receiver now");
        }
        WebhooksCommand::Remove { id } => {
            if !store.remove_webhook_endpoint(&id).await? {
                anyhow::bail!("no webhook endpoint {id}");
            }
            println!("removed {id}");
        }
        WebhooksCommand::Test { id } => {
            if !keycard_server::webhooks::send_test(store.as_ref(), &id, now).await? {
                anyhow::bail!("no webhook endpoint {id}");
            }
            println!("queued a webhook.test event to {id}; `keycard webhooks list` shows its delivery");
        }
    }
    Ok(())
}
