//! Signing keys at rest and in use: private keys are kept in the store sealed with a master key
//! (AES-256-GCM, aws-lc-rs); the key ring is rebuilt from the store so rotation by `keycard keys`
//! reaches every instance; a superseded key stays published until every token it signed expired.
//!
//! A missing or wrong master key is a start-up error, never a silently generated new key (which
//! would invalidate every session and every issued token).

use std::path::{Path, PathBuf};

use aws_lc_rs::aead::{AES_256_GCM, Aad, NONCE_LEN, Nonce, RandomizedNonceKey};
use aws_lc_rs::{hkdf, hmac};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use keycard_core::keys::{KeyAlg, KeyMaterial, KeyRing, SigningKey};
use keycard_store::{Store, StoredKey};

use crate::settings::Settings;

/// Prefix of a sealed private key in the store (format version 1).
const SEALED_V1: &[u8] = b"kc1:";
const MASTER_KEY_BYTES: usize = 32;

/// The key that seals signing keys in the store, and the keys derived from it (HKDF-SHA256, one
/// per purpose) that sign keycard's own opaque values. Never printed.
pub struct MasterKey {
    seal: RandomizedNonceKey,
    /// Signs device tokens (login throttling by device, `devices.rs`).
    device: hmac::Key,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// Parses 32 bytes written as base64url, base64 or hex.
    pub fn from_text(text: &str) -> anyhow::Result<Self> {
        let text = text.trim();
        let right_size = |b: &Vec<u8>| b.len() == MASTER_KEY_BYTES;
        let bytes = hex_decode(text)
            .filter(right_size)
            .or_else(|| URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok().filter(right_size))
            .or_else(|| STANDARD.decode(text).ok().filter(right_size))
            .ok_or_else(|| anyhow::anyhow!("the master key must be 32 bytes, base64url or hex encoded"))?;
        Self::from_bytes(&bytes)
    }

    /// The master key of these 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> anyhow::Result<Self> {
        if bytes.len() != MASTER_KEY_BYTES {
            anyhow::bail!("the master key must be 32 bytes");
        }
        let seal = RandomizedNonceKey::new(&AES_256_GCM, bytes).map_err(|_| anyhow::anyhow!("bad master key"))?;
        let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"keycard master key v1").extract(bytes);
        let device: hmac::Key = prk
            .expand(&[b"keycard device token v1"], hmac::HMAC_SHA256)
            .map_err(|_| anyhow::anyhow!("deriving the device-token key failed"))?
            .into();
        Ok(Self { seal, device })
    }

    /// The HMAC-SHA256 key of device tokens, derived from the master key (so every instance
    /// sharing the master key accepts every instance's device tokens).
    pub fn device_key(&self) -> &hmac::Key {
        &self.device
    }

    /// A new random master key and its text form (base64url).
    pub fn generate() -> anyhow::Result<(Self, String)> {
        let (key, bytes) = Self::generate_bytes()?;
        Ok((key, URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// A new random master key and its 32 bytes (to be wrapped, never stored as they are).
    pub fn generate_bytes() -> anyhow::Result<(Self, [u8; MASTER_KEY_BYTES])> {
        let mut bytes = [0u8; MASTER_KEY_BYTES];
        getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        Ok((Self::from_bytes(&bytes)?, bytes))
    }

    fn aad(kid: &str, alg: &str) -> String {
        format!("keycard-signing-key|{kid}|{alg}")
    }

    /// Seals a private key; the kid and algorithm are bound as associated data.
    pub fn seal(&self, kid: &str, alg: &str, plaintext: &[u8]) -> anyhow::Result<Vec<u8>> {
        let mut data = plaintext.to_vec();
        let nonce = self
            .seal
            .seal_in_place_append_tag(Aad::from(Self::aad(kid, alg).as_bytes()), &mut data)
            .map_err(|_| anyhow::anyhow!("sealing key {kid} failed"))?;
        let mut out = SEALED_V1.to_vec();
        out.extend_from_slice(nonce.as_ref());
        out.extend_from_slice(&data);
        Ok(out)
    }

    /// Opens a sealed private key; fails for a wrong master key or tampered data.
    pub fn open(&self, kid: &str, alg: &str, sealed: &[u8]) -> anyhow::Result<Vec<u8>> {
        let wrong = || anyhow::anyhow!("the master key does not open signing key {kid} (wrong master key?)");
        let body = sealed.strip_prefix(SEALED_V1).ok_or_else(wrong)?;
        if body.len() < NONCE_LEN {
            return Err(wrong());
        }
        let (nonce, ciphertext) = body.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
        let mut data = ciphertext.to_vec();
        let plain = self
            .seal
            .open_in_place(nonce, Aad::from(Self::aad(kid, alg).as_bytes()), &mut data)
            .map_err(|_| wrong())?;
        Ok(plain.to_vec())
    }
}

fn hex_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok()).collect()
}

/// Where the master key comes from, in order: `master_key` (env `KEYCARD_MASTER_KEY`),
/// `master_key_file`, or for a SQLite store the file `<database>.master-key` beside it.
pub fn master_key_source(settings: &Settings) -> anyhow::Result<MasterKeySource> {
    if let Some(text) = settings.master_key.as_ref() {
        return Ok(MasterKeySource::Text(text.expose().to_owned()));
    }
    if let Some(path) = settings.master_key_file.as_ref() {
        return Ok(MasterKeySource::File(PathBuf::from(path)));
    }
    match &settings.database {
        crate::settings::Database::Postgres(_) => anyhow::bail!(
            "with PostgreSQL every instance needs the same master key: set KEYCARD_MASTER_KEY or master_key_file \
             (generate one with `keycard keys master-key`)"
        ),
        crate::settings::Database::Sqlite(path) => {
            let mut file = path.clone().into_os_string();
            file.push(".master-key");
            Ok(MasterKeySource::File(PathBuf::from(file)))
        }
    }
}

/// A resolved master-key location.
#[derive(Debug, Clone)]
pub enum MasterKeySource {
    /// Given directly.
    Text(String),
    /// Read from (or, on first start, written to) this file.
    File(PathBuf),
}

/// Opens the master key: unwrapped by Transit when `master_key_transit_key` is set
/// ([`crate::vault::envelope_master_key`]), else from its text or file. A missing key file is
/// created only when the store holds no signing key yet (first start); otherwise it is an error.
pub async fn master_key(settings: &Settings, store: &dyn Store) -> anyhow::Result<MasterKey> {
    if let Some(key) = crate::vault::envelope_master_key(settings, store, keycard_core::now_unix()).await? {
        return Ok(key);
    }
    match master_key_source(settings)? {
        MasterKeySource::Text(text) => MasterKey::from_text(&text),
        MasterKeySource::File(path) if path.exists() => {
            let text =
                std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
            MasterKey::from_text(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
        }
        MasterKeySource::File(path) => {
            if !store.signing_keys().await?.is_empty() {
                anyhow::bail!(
                    "the store holds signing keys but the master key file {} is missing: restore it or set \
                     KEYCARD_MASTER_KEY (refusing to generate a new key, which would invalidate every session)",
                    path.display()
                );
            }
            let (key, text) = MasterKey::generate()?;
            write_secret_file(&path, &text)?;
            tracing::info!(path = %path.display(), "generated a master key for signing keys at rest; back it up");
            Ok(key)
        }
    }
}

fn write_secret_file(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| anyhow::anyhow!("creating {}: {e}", path.display()))?;
    file.write_all(text.as_bytes())?;
    file.write_all(b"\n")?;
    Ok(())
}

/// What `keycard keys list` shows of a key.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KeyStatus {
    /// Key id.
    pub kid: String,
    /// Algorithm.
    pub alg: String,
    /// Creation time (Unix seconds).
    pub created_at: i64,
    /// `active`, `overlap` (superseded, still verifying), `expired` or `retired`.
    pub state: &'static str,
    /// For overlapping keys: when they leave JWKS (Unix seconds).
    pub published_until: Option<i64>,
}

/// Key management over the store: the ring in force, rotation, retirement.
pub struct KeyManager<'a> {
    store: &'a dyn Store,
    master: &'a MasterKey,
    /// How long a superseded key keeps verifying: access-token lifetime + leeway + the time other
    /// instances take to notice the rotation.
    overlap: i64,
}

impl<'a> KeyManager<'a> {
    /// A manager whose superseded keys stay published for `overlap` seconds.
    pub fn new(store: &'a dyn Store, master: &'a MasterKey, overlap: i64) -> Self {
        Self { store, master, overlap }
    }

    /// The status of every key, oldest first.
    pub async fn list(&self, now: i64) -> anyhow::Result<Vec<KeyStatus>> {
        let mut keys = self.store.signing_keys().await?;
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        let live: Vec<&StoredKey> = keys.iter().filter(|k| k.retired_at.is_none()).collect();
        let active = live.last().map(|k| k.kid.clone());
        Ok(keys
            .iter()
            .map(|k| {
                // A key is superseded when the next newer live key was created.
                let superseded =
                    live.iter().find(|n| (n.created_at, &n.kid) > (k.created_at, &k.kid)).map(|n| n.created_at);
                let (state, until) = if k.retired_at.is_some() {
                    ("retired", None)
                } else if Some(&k.kid) == active.as_ref() {
                    ("active", None)
                } else {
                    let until = superseded.unwrap_or(k.created_at) + self.overlap;
                    (if now < until { "overlap" } else { "expired" }, Some(until))
                };
                KeyStatus {
                    kid: k.kid.clone(),
                    alg: k.alg.clone(),
                    created_at: k.created_at,
                    state,
                    published_until: until,
                }
            })
            .collect())
    }

    /// The ring in force: the active key and the overlapping ones. Generates the first key when the
    /// store has none.
    pub async fn ring(&self, now: i64, first_alg: KeyAlg) -> anyhow::Result<KeyRing> {
        let mut statuses = self.list(now).await?;
        if !statuses.iter().any(|s| s.state == "active") {
            self.rotate(first_alg, now).await?;
            statuses = self.list(now).await?;
        }
        let stored = self.store.signing_keys().await?;
        let mut keys = Vec::new();
        let mut active = None;
        for status in statuses.iter().filter(|s| s.state == "active" || s.state == "overlap") {
            let Some(k) = stored.iter().find(|k| k.kid == status.kid) else { continue };
            let alg = KeyAlg::parse(&k.alg)
                .ok_or_else(|| anyhow::anyhow!("key {}: unsupported algorithm {}", k.kid, k.alg))?;
            let private_der = self.master.open(&k.kid, &k.alg, &k.private_key)?;
            keys.push(SigningKey::from_material(KeyMaterial { kid: k.kid.clone(), alg, private_der })?);
            if status.state == "active" {
                active = Some(k.kid.clone());
            }
        }
        let active = active.ok_or_else(|| anyhow::anyhow!("no active signing key"))?;
        Ok(KeyRing::new(keys, active)?)
    }

    /// Creates a new key that becomes active at once; the previous one enters its overlap window.
    pub async fn rotate(&self, alg: KeyAlg, now: i64) -> anyhow::Result<String> {
        self.activate(&SigningKey::generate(alg)?, now).await
    }

    /// Puts a key handed over by the operator (a PEM file or HS256 secret, kid = its thumbprint)
    /// into the store, sealed, and makes it active as [`KeyManager::rotate`] does. A key already
    /// in the store is refused.
    pub async fn import(&self, key: &SigningKey, now: i64) -> anyhow::Result<String> {
        if self.store.signing_keys().await?.iter().any(|k| k.kid == key.kid()) {
            anyhow::bail!("key {} is already in the store", key.kid());
        }
        self.activate(key, now).await
    }

    /// Seals `key` into the store as the newest key: it signs from the next reload on.
    async fn activate(&self, key: &SigningKey, now: i64) -> anyhow::Result<String> {
        let alg = key.alg();
        let sealed = self.master.seal(key.kid(), alg.as_str(), &key.material().private_der)?;
        // Strictly newer than every existing key, so "newest wins" has no ties.
        let newest = self.store.signing_keys().await?.iter().map(|k| k.created_at).max().unwrap_or(i64::MIN);
        let created_at = now.max(newest.saturating_add(1));
        let stored = StoredKey {
            kid: key.kid().to_owned(),
            alg: alg.as_str().to_owned(),
            private_key: sealed,
            created_at,
            retired_at: None,
        };
        self.store.insert_signing_key(&stored).await?;
        tracing::info!(kid = key.kid(), alg = alg.as_str(), "new signing key is active");
        Ok(key.kid().to_owned())
    }

    /// Retires a key at once (e.g. after a compromise): tokens it signed stop verifying.
    pub async fn retire(&self, kid: &str, now: i64) -> anyhow::Result<bool> {
        Ok(self.store.retire_signing_key(kid, now).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_keys_open_only_with_the_same_master_key_kid_and_alg() {
        let (master, text) = MasterKey::generate().unwrap();
        let sealed = master.seal("k1", "EdDSA", b"private bytes").unwrap();
        assert!(!sealed.windows(13).any(|w| w == b"private bytes"));
        assert_eq!(MasterKey::from_text(&text).unwrap().open("k1", "EdDSA", &sealed).unwrap(), b"private bytes");
        let (other, _) = MasterKey::generate().unwrap();
        assert!(other.open("k1", "EdDSA", &sealed).is_err());
        assert!(master.open("k2", "EdDSA", &sealed).is_err(), "kid is bound");
        assert!(master.open("k1", "ES256", &sealed).is_err(), "alg is bound");
        assert!(master.open("k1", "EdDSA", b"kc1:short").is_err());
    }

    #[test]
    fn master_keys_parse_from_base64url_base64_and_hex() {
        let bytes = [7u8; 32];
        for text in
            [URL_SAFE_NO_PAD.encode(bytes), STANDARD.encode(bytes), bytes.iter().map(|b| format!("{b:02x}")).collect()]
        {
            assert!(MasterKey::from_text(&text).is_ok(), "{text}");
        }
        assert!(MasterKey::from_text("too short").is_err());
        assert!(format!("{:?}", MasterKey::from_text(&STANDARD.encode(bytes)).unwrap()).contains("redacted"));
    }
}
