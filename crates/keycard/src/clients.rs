//! `keycard clients add | list | rotate-secret | remove`: OAuth clients for services
//! (`client_credentials`, introspection). A secret is printed once; the store keeps its hash.

use std::path::PathBuf;

use clap::Subcommand;
use keycard_server::Settings;
use keycard_server::oauth;
use keycard_store::ClientRecord;
use serde_json::{Value, json};

/// Client operations.
#[derive(Subcommand)]
pub enum ClientsCommand {
    /// Register a client; prints its id and (for a secret client) its secret, once.
    Add {
        /// A name for people.
        name: String,
        /// Scopes the client may ask for (space- or comma-separated; repeatable).
        #[arg(long)]
        scope: Vec<String>,
        /// A JWK set file of the client's public keys: it authenticates with `private_key_jwt`
        /// instead of a secret.
        #[arg(long)]
        jwks: Option<PathBuf>,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Show every client (never a secret).
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Replace a client's secret; the old one stops working at once. Prints the new one, once.
    RotateSecret {
        /// Client id.
        id: String,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Remove a client; its access tokens are revoked (on the revocation feed).
    Remove {
        /// Client id.
        id: String,
    },
}

fn client_json(c: &ClientRecord) -> Value {
    json!({
        "client_id": c.id,
        "name": c.name,
        "auth_method": auth_method(c),
        "scope": c.scopes,
        "created_at": crate::time_text(c.created_at),
        "secret_rotated_at": c.secret_rotated_at.map(crate::time_text),
    })
}

fn auth_method(c: &ClientRecord) -> &'static str {
    if c.jwks.is_some() { "private_key_jwt" } else { "client_secret_basic, client_secret_post" }
}

pub async fn run(command: ClientsCommand, settings: &Settings) -> anyhow::Result<()> {
    let store = keycard_server::startup::open_store(settings).await?;
    let now = keycard_core::now_unix();
    match command {
        ClientsCommand::Add { name, scope, jwks, json } => {
            let jwks = match jwks {
                Some(path) => Some(
                    std::fs::read_to_string(&path)
                        .map_err(|e| anyhow::anyhow!("reading the JWK set {}: {e}", path.display()))?,
                ),
                None => None,
            };
            let registered = oauth::register_client(store.as_ref(), &name, &scope, jwks.as_deref(), now).await?;
            let c = &registered.client;
            if json {
                let mut out = client_json(c);
                if let Some(secret) = &registered.secret {
                    out["client_secret"] = json!(secret);
                }
                println!("{out}");
            } else {
                println!("client_id:     {}", c.id);
                if let Some(secret) = &registered.secret {
                    println!("client_secret: {secret}");
                    println!("(shown once: keycard keeps only its hash)");
                }
                println!("auth method:   {}", auth_method(c));
                println!("scope:         {}", c.scopes);
            }
        }
        ClientsCommand::List { json } => {
            let clients = store.list_clients().await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&clients.iter().map(client_json).collect::<Vec<_>>())?);
            } else {
                println!("{:<36} {:<20} {:<40} {:<22} scope", "client_id", "name", "auth method", "created");
                for c in &clients {
                    println!(
                        "{:<36} {:<20} {:<40} {:<22} {}",
                        c.id,
                        c.name,
                        auth_method(c),
                        crate::time_text(c.created_at),
                        c.scopes
                    );
                }
            }
        }
        ClientsCommand::RotateSecret { id, json } => {
            let secret = oauth::rotate_client_secret(store.as_ref(), &id, now).await?;
            if json {
                println!("{}", json!({"client_id": id, "client_secret": secret}));
            } else {
                println!("client_secret: {secret}");
                println!("(shown once; the previous secret no longer works)");
            }
        }
        ClientsCommand::Remove { id } => {
            oauth::remove_client(store.as_ref(), &id, now).await?;
            println!("removed {id}; its access tokens are revoked");
        }
    }
    Ok(())
}
