//! The `keycard` command: `serve` runs the token service; the other subcommands operate on it.
//! Clap and glue only: the server lives in `keycard-server`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use keycard_server::settings::{HumanDuration, StringList};
use keycard_server::{Application, Settings};
use serde::Serialize;

mod audit;
mod check;
mod clients;
mod inspect;
mod keys;
mod mail;
mod sessions;
mod users;
mod webhooks;

#[derive(Parser)]
#[command(name = "keycard", version, about = "Self-hosted token service: JWT authentication, safe by default")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the token service (defaults: 127.0.0.1:8080, SQLite file keycard.db).
    Serve(ServeArgs),
    /// Manage signing keys: list, rotate, retire, import a PEM key.
    Keys {
        #[command(subcommand)]
        action: keys::KeysCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Show the audit log: logins, refreshes, reuse detections, revocations (filter with flags).
    Audit {
        #[command(flatten)]
        filter: audit::AuditArgs,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Act on accounts: list, show, disable (revokes every session), enable, logout (revokes).
    Users {
        #[command(subcommand)]
        action: users::UsersCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Act on sessions: list the live ones (every user's or one user's), revoke one.
    Sessions {
        #[command(subcommand)]
        action: sessions::SessionsCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// OAuth clients for services: add (prints the secret once), list, rotate-secret, remove.
    Clients {
        #[command(subcommand)]
        action: clients::ClientsCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// The mail outbox: list messages with their delivery state and the last SMTP reply.
    Mail {
        #[command(subcommand)]
        action: mail::MailCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Webhooks for security events: list endpoints with delivery status, add, remove, test.
    Webhooks {
        #[command(subcommand)]
        action: webhooks::WebhooksCommand,
        #[command(flatten)]
        store: StoreArgs,
    },
    /// Audit a deployment from outside: forged tokens, refresh reuse, CSRF, cookies, headers.
    Check(check::CheckArgs),
    /// Local token tools: `keycard token inspect <jwt>`.
    Token {
        #[command(subcommand)]
        action: inspect::TokenCommand,
    },
}

/// Which deployment an operator command works on: the same config, env and database as `serve`.
#[derive(Args, Serialize, Default, Clone)]
struct StoreArgs {
    /// TOML configuration file.
    #[arg(long, env = "KEYCARD_CONFIG", global = true)]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// SQLite file or postgres:// URL.
    #[arg(long, global = true)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
}

impl StoreArgs {
    fn settings(&self) -> anyhow::Result<Settings> {
        Ok(Settings::load(self.config.as_ref(), self)?)
    }
}

/// Flags override `KEYCARD_*` variables, which override the TOML file, which overrides defaults.
/// Each flag has its setting's own type, so a bad value is refused by name before anything starts.
#[derive(Args, Serialize, Default)]
struct ServeArgs {
    /// TOML configuration file.
    #[arg(long, env = "KEYCARD_CONFIG")]
    #[serde(skip)]
    config: Option<PathBuf>,
    /// Address to listen on, e.g. 127.0.0.1:8080 (port 0: any free port).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    bind: Option<std::net::SocketAddr>,
    /// SQLite file (created on first start).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    database: Option<String>,
    /// Issuer URL (`iss`); default `http://<bind>`.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    issuer: Option<String>,
    /// Audience (`aud`) of access tokens.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    audience: Option<String>,
    /// Access-token lifetime, e.g. 15m.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    access_ttl: Option<HumanDuration>,
    /// Session idle lifetime, e.g. 7d.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    session_idle_ttl: Option<HumanDuration>,
    /// Session absolute lifetime, e.g. 30d.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    session_absolute_ttl: Option<HumanDuration>,
    /// Clock leeway, e.g. 30s.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    leeway: Option<HumanDuration>,
    /// Grace period for retrying a used refresh token, e.g. 10s (default 0: strictly single-use).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    reuse_interval: Option<HumanDuration>,
    /// Comma-separated origins allowed for cookie requests and CORS.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    allowed_origins: Option<StringList>,
    /// Comma-separated PEM private key files to sign with (the last signs, the others verify;
    /// `hs256:FILE` for an HS256 secret) instead of the keys sealed in the store.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_key_files: Option<StringList>,
    /// Who signs access tokens: local (default) or transit (OpenBao/Vault Transit signs with
    /// `vault_signing_key`; the private key never enters keycard).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    signing_backend: Option<keycard_server::settings::SigningBackend>,
    /// With --signing-backend transit: the Transit key that signs access tokens.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    vault_signing_key: Option<String>,
    /// Accept `grant_type=password` at `POST /oauth/token` (off by default; OAuth 2.1 drops it).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    oauth_password_grant: bool,
    /// Email verification: off, optional (default: signup mails a link) or required (login waits
    /// for it).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    email_verification: Option<keycard_server::email::EmailVerification>,
}

#[tokio::main]
async fn main() -> ExitCode {
    init_logging();
    match run(Cli::parse().command).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, causes after colons, redacted like the logs; never a backtrace.
            eprintln!("error: {}", keycard_server::redact::redact(&format!("{e:#}")));
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command) -> anyhow::Result<()> {
    match command {
        Command::Serve(args) => serve(args).await,
        Command::Audit { filter, store } => audit::run(filter, &store.settings()?).await,
        Command::Keys { action, store } => keys::run(action, &store.settings()?).await,
        Command::Users { action, store } => users::run(action, &store.settings()?).await,
        Command::Sessions { action, store } => sessions::run(action, &store.settings()?).await,
        Command::Clients { action, store } => clients::run(action, &store.settings()?).await,
        Command::Mail { action, store } => mail::run(action, &store.settings()?).await,
        Command::Webhooks { action, store } => webhooks::run(action, &store.settings()?).await,
        Command::Check(args) => check::run(args).await,
        Command::Token { action } => inspect::run(action).await,
    }
}

/// Unix seconds as an RFC 3339 UTC time (the number itself if out of range).
fn time_text(unix: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(unix)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_else(|| unix.to_string())
}

/// Logs go to stderr through the redacting writer: no token, cookie or password reaches them.
/// `KEYCARD_LOG` sets the filter (default `info`), `KEYCARD_LOG_FORMAT=json` one JSON object per line.
fn init_logging() {
    let filter = std::env::var("KEYCARD_LOG").unwrap_or_else(|_| "info".into());
    let json = std::env::var("KEYCARD_LOG_FORMAT").is_ok_and(|f| f == "json");
    keycard_server::redact::init_logging(&filter, json);
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let settings = Settings::load(args.config.as_ref(), &args)?;
    for (variable, nearest) in Settings::unknown_env_vars() {
        match nearest {
            Some(nearest) => {
                tracing::warn!(%variable, %nearest, "ignoring a KEYCARD_ variable that names no setting; did you mean the nearest one?")
            }
            None => tracing::warn!(%variable, "ignoring a KEYCARD_ variable that names no setting"),
        }
    }
    let app = Application::build(settings).await?;
    app.run_until(shutdown_signal()).await?;
    tracing::info!("keycard stopped");
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM, so in-flight requests finish before exit.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { () = ctrl_c => {}, () = term => {} }
}
