//! `keycard keys list | rotate | retire | master-key`: signing-key operations on the store.
//!
//! Running servers re-read the key ring every `key_reload_interval` (default 5 s), so a rotation
//! made here reaches every instance within that time.

use clap::Subcommand;
use keycard_core::keys::KeyAlg;
use keycard_server::Settings;
use keycard_server::keys::{KeyManager, MasterKey, master_key};

/// Key operations.
#[derive(Subcommand)]
pub enum KeysCommand {
    /// Show every key: active, overlap (still verifying old tokens), expired, retired.
    List {
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Make a new key active now; the previous one keeps verifying until its tokens expired.
    Rotate {
        /// Algorithm of the new key.
        #[arg(long, default_value = "EdDSA")]
        alg: String,
    },
    /// Retire a key at once (compromise): tokens it signed stop verifying.
    Retire {
        /// Key id.
        kid: String,
    },
    /// Print a new random master key (for KEYCARD_MASTER_KEY) and exit.
    MasterKey,
}

pub async fn run(command: KeysCommand, settings: &Settings) -> anyhow::Result<()> {
    if let KeysCommand::MasterKey = command {
        let (_, text) = MasterKey::generate()?;
        println!("{text}");
        return Ok(());
    }
    let store = keycard_server::startup::open_store(settings).await?;
    let master = master_key(settings, store.as_ref()).await?;
    let overlap = settings.access_ttl.as_secs_i64()
        + settings.leeway.as_secs_i64()
        + 2 * settings.key_reload_interval.as_secs_i64();
    let manager = KeyManager::new(store.as_ref(), &master, overlap);
    let now = keycard_core::now_unix();
    match command {
        KeysCommand::List { json } => {
            let keys = manager.list(now).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<18} {:<6} {:<22} {:<8} published until", "kid", "alg", "created", "state");
                for k in keys {
                    let until = k.published_until.map(crate::time_text).unwrap_or_default();
                    println!(
                        "{:<18} {:<6} {:<22} {:<8} {until}",
                        k.kid,
                        k.alg,
                        crate::time_text(k.created_at),
                        k.state
                    );
                }
            }
        }
        KeysCommand::Rotate { alg } => {
            let alg = KeyAlg::parse(&alg).ok_or_else(|| anyhow::anyhow!("unsupported algorithm {alg:?}"))?;
            let kid = manager.rotate(alg, now).await?;
            println!("rotated: {kid} ({}) is active; the previous key verifies for {overlap} s more", alg.as_str());
        }
        KeysCommand::Retire { kid } => {
            if !manager.retire(&kid, now).await? {
                anyhow::bail!("no unretired key {kid}");
            }
            println!("retired: {kid}");
        }
        KeysCommand::MasterKey => {}
    }
    Ok(())
}
