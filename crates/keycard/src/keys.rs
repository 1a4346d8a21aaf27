//! `keycard keys list | rotate | retire | import | rewrap | master-key`: signing-key operations
//! on the store, or with `signing_key_files` set, the keys of those files, or with
//! `signing_backend = "transit"` the versions of the Transit signing key (listed only: Transit
//! rotates and retires them).
//!
//! Running servers re-read the key ring every `key_reload_interval` (default 5 s), so a rotation
//! made here reaches every instance within that time.

use clap::Subcommand;
use keycard_core::keys::KeyAlg;
use keycard_server::Settings;
use keycard_server::key_files::{self, KeyFileSpec};
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
    /// Put a PEM private key (or `hs256:FILE`, an HS256 secret) into the sealed store; it becomes
    /// the active key, kid = its RFC 7638 thumbprint.
    Import {
        /// PEM file: PKCS#8 Ed25519, PKCS#8/SEC1 P-256, PKCS#8/PKCS#1 RSA ≥ 2048; or hs256:FILE.
        file: String,
    },
    /// Re-wrap the stored master key under the latest version of its Transit key (after a
    /// Transit key rotation; `master_key_transit_key`).
    Rewrap,
    /// Print a new random master key (for KEYCARD_MASTER_KEY) and exit.
    MasterKey,
}

pub async fn run(command: KeysCommand, settings: &Settings) -> anyhow::Result<()> {
    if let KeysCommand::MasterKey = command {
        let (_, text) = MasterKey::generate()?;
        println!("{text}");
        return Ok(());
    }
    if let KeysCommand::Rewrap = command {
        let store = keycard_server::startup::open_store(settings).await?;
        let now = keycard_core::now_unix();
        match keycard_server::vault::rewrap_master_key(settings, store.as_ref(), now).await? {
            Some(version) => println!("rewrapped: the master key is wrapped by Transit key version {version}"),
            None => println!("the master key is already wrapped by the latest Transit key version"),
        }
        return Ok(());
    }
    if settings.signing_backend == keycard_server::settings::SigningBackend::Transit {
        return run_on_transit(command, settings).await;
    }
    if !settings.signing_key_files.0.is_empty() {
        return run_on_files(command, settings);
    }
    let store = keycard_server::startup::open_store(settings).await?;
    let master = master_key(settings, store.as_ref()).await?;
    let overlap = overlap(settings);
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
        KeysCommand::Import { file } => {
            let key = KeyFileSpec::parse(&file).map_err(anyhow::Error::msg)?.load()?;
            let kid = manager.import(&key, now).await?;
            println!("imported: {kid} ({}) is active; the previous key verifies for {overlap} s more", key.alg());
        }
        KeysCommand::MasterKey | KeysCommand::Rewrap => {}
    }
    Ok(())
}

/// With `signing_key_files` the keys are the files': `list` reads them, the store's commands are
/// refused (rotation is replacing the files).
fn run_on_files(command: KeysCommand, settings: &Settings) -> anyhow::Result<()> {
    let specs = key_files::specs(&settings.signing_key_files.0)?;
    match command {
        KeysCommand::List { json } => {
            let keys = key_files::statuses(&specs)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!("{:<44} {:<6} {:<7} file", "kid", "alg", "state");
                for k in keys {
                    println!("{:<44} {:<6} {:<7} {}", k.kid, k.alg, k.state, k.file);
                }
            }
            Ok(())
        }
        _ => anyhow::bail!(
            "signing keys come from signing_key_files ({}): rotate by putting a new key file last, retire by \
             removing a file; unset signing_key_files to manage the keys in the store",
            specs.iter().map(|s| s.path.display().to_string()).collect::<Vec<_>>().join(", ")
        ),
    }
}

/// How long a superseded key keeps verifying: as the server computes it.
fn overlap(settings: &Settings) -> i64 {
    settings.access_ttl.as_secs_i64() + settings.leeway.as_secs_i64() + 2 * settings.key_reload_interval.as_secs_i64()
}

/// With Transit signing the keys are the Transit key's versions: `list` reads them; rotation and
/// retirement are Transit's (`bao write -f <mount>/keys/<name>/rotate`, `min_decryption_version`).
async fn run_on_transit(command: KeysCommand, settings: &Settings) -> anyhow::Result<()> {
    let signer = keycard_server::transit_keys::TransitSigner::from_settings(settings)
        .await?
        .ok_or_else(|| anyhow::anyhow!("signing_backend is not transit"))?;
    let (mount, key) = (settings.vault_transit_mount.trim_matches('/'), signer.key_name());
    match command {
        KeysCommand::List { json } => {
            let keys = signer.statuses(keycard_core::now_unix(), overlap(settings)).await?;
            if json {
                println!("{}", serde_json::to_string_pretty(&keys)?);
            } else {
                println!(
                    "{:<7} {:<44} {:<6} {:<22} {:<8} published until",
                    "version", "kid", "alg", "created", "state"
                );
                for k in keys {
                    let s = &k.status;
                    let until = s.published_until.map(crate::time_text).unwrap_or_default();
                    println!(
                        "{:<7} {:<44} {:<6} {:<22} {:<8} {until}",
                        k.version,
                        s.kid,
                        s.alg,
                        crate::time_text(s.created_at),
                        s.state
                    );
                }
            }
            Ok(())
        }
        _ => anyhow::bail!(
            "signing keys are Transit key {key:?}'s versions (signing_backend = \"transit\"): rotate with `bao write -f \
             {mount}/keys/{key}/rotate` (the new version signs within key_reload_interval; the previous one verifies \
             for {} s more), retire old versions with `bao write {mount}/keys/{key}/config min_decryption_version=N`",
            overlap(settings)
        ),
    }
}
