//! Signing keys handed over as files (`signing_key_files`): what Vault Agent templates,
//! Kubernetes secret volumes and systemd credentials produce. Each entry is a PEM private key
//! (the algorithm is the key's), or `hs256:PATH` for a file holding an HS256 secret. The kid is
//! the key's RFC 7638 thumbprint, so instances reading the same files agree without talking; the
//! last file signs, the others verify.
//!
//! The files are re-read every `key_reload_interval`. A key that leaves the files keeps verifying
//! for the overlap window (access-token lifetime + leeway + two reload intervals), as a rotated-out
//! key of the store does, so a file replaced in place loses no valid token. The ring is never
//! empty: at start-up a missing, unreadable or unusable file is an error naming it; later the
//! error is logged and the last good ring keeps serving. Errors name the file and say what is
//! wrong, never quoting the file's contents.

use std::path::PathBuf;
use std::sync::Mutex;

use keycard_core::keys::{KeyRing, SigningKey};

/// The prefix of an entry naming an HS256 secret file.
const HS256_PREFIX: &str = "hs256:";

/// One entry of `signing_key_files`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyFileSpec {
    /// The file.
    pub path: PathBuf,
    /// Whether it holds an HS256 secret (raw bytes) rather than a PEM private key.
    pub hs256: bool,
}

impl KeyFileSpec {
    /// Parses `PATH` or `hs256:PATH`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        let (path, hs256) = match entry.strip_prefix(HS256_PREFIX) {
            Some(path) => (path.trim(), true),
            None => (entry, false),
        };
        if path.is_empty() {
            return Err(format!("signing_key_files entry {entry:?} names no file"));
        }
        Ok(Self { path: PathBuf::from(path), hs256 })
    }

    /// Reads and parses the file. The error names the file and what is wrong with it.
    pub fn load(&self) -> anyhow::Result<SigningKey> {
        let bytes = std::fs::read(&self.path).map_err(|e| self.error(&e.to_string()))?;
        self.parse_contents(&bytes)
    }

    fn parse_contents(&self, bytes: &[u8]) -> anyhow::Result<SigningKey> {
        let key = if self.hs256 {
            // One trailing line break is the editor's or `echo`'s, not the secret's.
            let secret = bytes.strip_suffix(b"\n").map(|s| s.strip_suffix(b"\r").unwrap_or(s)).unwrap_or(bytes);
            SigningKey::from_hs256_secret(secret)
        } else {
            SigningKey::from_key_file(bytes)
        };
        key.map_err(|e| self.error(&e.to_string()))
    }

    fn error(&self, why: &str) -> anyhow::Error {
        let kind = if self.hs256 { "HS256 secret file" } else { "signing key file" };
        anyhow::anyhow!("{kind} {}: {why}", self.path.display())
    }
}

/// Parses every entry of `signing_key_files`.
pub fn specs(entries: &[String]) -> anyhow::Result<Vec<KeyFileSpec>> {
    entries.iter().map(|e| KeyFileSpec::parse(e).map_err(anyhow::Error::msg)).collect()
}

/// Loads every file, in order: the keys, or the first error (naming its file).
pub fn load_all(specs: &[KeyFileSpec]) -> anyhow::Result<Vec<SigningKey>> {
    specs.iter().map(KeyFileSpec::load).collect()
}

/// A key read from a file, and where.
#[derive(Debug, Clone)]
pub struct FileKey {
    /// The key (kid = thumbprint).
    pub key: SigningKey,
    /// The file it was read from.
    pub path: PathBuf,
}

/// What `keycard keys list` shows of a file key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct FileKeyStatus {
    /// Key id (RFC 7638 thumbprint).
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// The file.
    pub file: String,
    /// `active` (the last file: it signs) or `verify`.
    pub state: &'static str,
}

/// The status of each file's key, in file order.
pub fn statuses(specs: &[KeyFileSpec]) -> anyhow::Result<Vec<FileKeyStatus>> {
    let keys = load_all(specs)?;
    let last = keys.len().saturating_sub(1);
    Ok(specs
        .iter()
        .zip(keys)
        .enumerate()
        .map(|(i, (spec, key))| FileKeyStatus {
            kid: key.kid().to_owned(),
            alg: key.alg().as_str().to_owned(),
            file: spec.path.display().to_string(),
            state: if i == last { "active" } else { "verify" },
        })
        .collect())
}

/// The key ring of a server whose keys come from files: the files' keys, and those that left the
/// files less than the overlap window ago.
pub struct FileKeys {
    specs: Vec<KeyFileSpec>,
    /// Seconds a key that left the files keeps verifying.
    overlap: i64,
    state: Mutex<Loaded>,
}

/// The last good reading.
struct Loaded {
    /// Each file's bytes as last read successfully (a file unchanged is not parsed again).
    contents: Vec<Vec<u8>>,
    /// The keys of the files, in file order.
    current: Vec<FileKey>,
    /// Keys that left the files, and until when (Unix seconds) they keep verifying.
    departed: Vec<(SigningKey, i64)>,
}

impl std::fmt::Debug for FileKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FileKeys").field("files", &self.specs).finish_non_exhaustive()
    }
}

impl FileKeys {
    /// Reads every file (start-up): any file missing, unreadable or unusable is an error naming
    /// it. Returns the loader and the first ring.
    pub fn load(specs: Vec<KeyFileSpec>, overlap: i64) -> anyhow::Result<(Self, KeyRing)> {
        if specs.is_empty() {
            anyhow::bail!("signing_key_files is empty");
        }
        let mut contents = Vec::with_capacity(specs.len());
        let mut current = Vec::with_capacity(specs.len());
        for spec in &specs {
            let bytes = std::fs::read(&spec.path).map_err(|e| spec.error(&e.to_string()))?;
            current.push(FileKey { key: spec.parse_contents(&bytes)?, path: spec.path.clone() });
            contents.push(bytes);
        }
        let loaded = Loaded { contents, current, departed: Vec::new() };
        let ring = loaded.ring()?;
        for k in &loaded.current {
            tracing::info!(kid = k.key.kid(), alg = k.key.alg().as_str(), file = %k.path.display(), "signing key loaded from file");
        }
        tracing::info!(kid = ring.active().kid(), "signing with the key of the last signing_key_files entry");
        Ok((Self { specs, overlap, state: Mutex::new(loaded) }, ring))
    }

    /// Re-reads the files. Unchanged files are not parsed again. When one cannot be read or
    /// used, the error (naming the file) is returned and the previous ring stays in force.
    /// Keys that left the files verify for the overlap window after `now`, then leave the ring.
    pub fn reload(&self, now: i64) -> anyhow::Result<KeyRing> {
        let mut guard = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let state = &mut *guard;
        let mut contents = Vec::with_capacity(self.specs.len());
        for spec in &self.specs {
            contents.push(std::fs::read(&spec.path).map_err(|e| spec.error(&e.to_string()))?);
        }
        if contents != state.contents {
            let mut current = Vec::with_capacity(self.specs.len());
            for (i, (spec, bytes)) in self.specs.iter().zip(&contents).enumerate() {
                let key = match state.contents.get(i) {
                    Some(old) if old == bytes => state.current[i].key.clone(),
                    _ => spec.parse_contents(bytes)?,
                };
                current.push(FileKey { key, path: spec.path.clone() });
            }
            let (before, after) = (kids(&state.current), kids(&current));
            for gone in state.current.iter().filter(|k| !after.contains(&k.key.kid())) {
                tracing::info!(kid = gone.key.kid(), file = %gone.path.display(), "signing key left its file; it verifies until its tokens expired");
                state.departed.push((gone.key.clone(), now.saturating_add(self.overlap)));
            }
            for new in current.iter().filter(|k| !before.contains(&k.key.kid())) {
                tracing::info!(kid = new.key.kid(), alg = new.key.alg().as_str(), file = %new.path.display(), "signing key loaded from file");
            }
            state.departed.retain(|(k, _)| !after.contains(&k.kid()));
            state.contents = contents;
            state.current = current;
        }
        state.departed.retain(|(_, until)| now < *until);
        state.ring()
    }
}

impl Loaded {
    fn ring(&self) -> anyhow::Result<KeyRing> {
        let active = self.current.last().ok_or_else(|| anyhow::anyhow!("no signing key file"))?.key.kid().to_owned();
        let keys = self.departed.iter().map(|(k, _)| k.clone()).chain(self.current.iter().map(|k| k.key.clone()));
        Ok(KeyRing::new(keys.collect(), active)?)
    }
}

fn kids(keys: &[FileKey]) -> Vec<&str> {
    keys.iter().map(|k| k.key.kid()).collect()
}
