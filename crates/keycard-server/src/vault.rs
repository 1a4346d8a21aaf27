//! OpenBao / HashiCorp Vault Transit, for envelope encryption of the master key (the master key
//! that seals the signing keys in the store is itself stored only wrapped by a Transit key, and
//! unwrapped by Transit at start-up) and for remote signing (`transit_keys.rs`: reading a signing
//! key's public versions, signing with one). Typed requests over the workspace's reqwest (rustls on
//! aws-lc-rs; docs/DECISIONS.md says why not a Vault client crate). Authentication: a token read
//! from a file (what Vault Agent's sink or a Kubernetes secret provides), or an AppRole login.
//!
//! Errors say what failed and why (unreachable, denied, refused with Transit's message) and never
//! carry a token, a plaintext or a ciphertext.

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use keycard_store::{Store, WrappedMasterKey};
use reqwest::Method;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::keys::MasterKey;
use crate::settings::Settings;

/// How long one request to OpenBao/Vault may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// What went wrong talking to OpenBao/Vault.
#[derive(Debug, thiserror::Error)]
pub enum VaultError {
    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("OpenBao/Vault at {addr} is unreachable ({what}): {reason}")]
    Unreachable {
        /// The configured address.
        addr: String,
        /// The operation.
        what: String,
        /// The transport error.
        reason: String,
    },
    /// 403: the token is unknown, revoked, expired, or its policy does not allow the operation.
    #[error(
        "OpenBao/Vault denied {what} (permission denied): the token was revoked or expired, or its policy does not \
         allow it"
    )]
    Denied {
        /// The operation.
        what: String,
    },
    /// Any other refusal, with OpenBao/Vault's own message.
    #[error("OpenBao/Vault refused {what} (HTTP {status}): {message}")]
    Refused {
        /// The operation.
        what: String,
        /// The HTTP status.
        status: u16,
        /// OpenBao/Vault's `errors`, joined.
        message: String,
    },
    /// A local problem: a missing token file, a malformed answer.
    #[error("{0}")]
    Local(String),
}

/// How keycard authenticates to OpenBao/Vault.
#[derive(Debug, Clone)]
pub enum VaultAuth {
    /// A token read from this file (trimmed), e.g. Vault Agent's token sink.
    TokenFile(PathBuf),
    /// AppRole: the role id, and the file holding the secret id.
    AppRole {
        /// The role id (not a secret on its own).
        role_id: String,
        /// The file holding the secret id.
        secret_id_file: PathBuf,
    },
}

/// Where OpenBao/Vault is and how to log in to it.
#[derive(Debug, Clone)]
pub struct VaultConfig {
    /// Base address, e.g. `https://bao.internal:8200`.
    pub addr: String,
    /// Authentication.
    pub auth: VaultAuth,
    /// The Transit mount path (default `transit`).
    pub transit_mount: String,
}

impl VaultConfig {
    /// The configuration the settings describe (`vault_*`); `None` when `vault_addr` is unset.
    pub fn from_settings(settings: &Settings) -> Result<Option<Self>, VaultError> {
        let Some(addr) = settings.vault_addr.clone() else { return Ok(None) };
        let auth =
            match (&settings.vault_token_file, &settings.vault_approle_role_id, &settings.vault_approle_secret_id_file)
            {
                (Some(file), None, None) => VaultAuth::TokenFile(file.into()),
                (None, Some(role_id), Some(secret_id_file)) => {
                    VaultAuth::AppRole { role_id: role_id.clone(), secret_id_file: secret_id_file.into() }
                }
                _ => {
                    return Err(VaultError::Local(
                        "vault_addr needs either vault_token_file, or vault_approle_role_id with \
                     vault_approle_secret_id_file"
                            .into(),
                    ));
                }
            };
        let addr = addr.trim().trim_end_matches('/').to_owned();
        Ok(Some(Self { addr, auth, transit_mount: settings.vault_transit_mount.trim_matches('/').to_owned() }))
    }
}

/// A logged-in Transit client.
pub struct Transit {
    http: reqwest::Client,
    addr: String,
    mount: String,
    /// How to log in again when the token is refused (a renewed token file, a new AppRole login).
    auth: VaultAuth,
    /// The current token; replaced by [`Transit::relogin`].
    token: std::sync::RwLock<String>,
}

impl std::fmt::Debug for Transit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transit").field("addr", &self.addr).field("mount", &self.mount).finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct DataAnswer<T> {
    data: T,
}

#[derive(Deserialize)]
struct AuthAnswer {
    auth: AuthData,
}

#[derive(Deserialize)]
struct AuthData {
    client_token: String,
}

#[derive(Deserialize)]
struct Ciphertext {
    ciphertext: String,
}

#[derive(Deserialize)]
struct Plaintext {
    plaintext: String,
}

#[derive(Deserialize, Default)]
struct ErrorAnswer {
    #[serde(default)]
    errors: Vec<String>,
}

impl Transit {
    /// Logs in (reads the token file, or performs the AppRole login).
    pub async fn connect(config: &VaultConfig) -> Result<Self, VaultError> {
        Self::connect_with_timeout(config, REQUEST_TIMEOUT).await
    }

    /// [`Transit::connect`] with another limit per request (signing in the request path wants
    /// a short one). Connections are kept alive between requests.
    pub async fn connect_with_timeout(config: &VaultConfig, timeout: Duration) -> Result<Self, VaultError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| VaultError::Local(format!("building the OpenBao/Vault client: {e}")))?;
        let transit = Self {
            http,
            addr: config.addr.clone(),
            mount: config.transit_mount.clone(),
            auth: config.auth.clone(),
            token: std::sync::RwLock::new(String::new()),
        };
        transit.relogin().await?;
        Ok(transit)
    }

    /// Logs in again: re-reads the token file (Vault Agent renews it in place) or performs a new
    /// AppRole login, and uses that token from now on.
    pub async fn relogin(&self) -> Result<(), VaultError> {
        let token = match &self.auth {
            VaultAuth::TokenFile(path) => read_secret_file(path, "vault_token_file")?,
            VaultAuth::AppRole { role_id, secret_id_file } => {
                let secret_id = read_secret_file(secret_id_file, "vault_approle_secret_id_file")?;
                let body = json!({"role_id": role_id, "secret_id": secret_id});
                let answer: AuthAnswer =
                    self.request(Method::POST, "auth/approle/login", Some(&body), "the AppRole login", false).await?;
                answer.auth.client_token
            }
        };
        *self.token.write().unwrap_or_else(|poisoned| poisoned.into_inner()) = token;
        Ok(())
    }

    /// The Transit mount path.
    pub fn mount(&self) -> &str {
        &self.mount
    }

    /// A GET of `path` (under `/v1/`); on a 403 logs in again once and retries (a token that
    /// expired or was renewed meanwhile).
    pub async fn get_relogin<R: DeserializeOwned>(&self, path: &str, what: &str) -> Result<R, VaultError> {
        match self.request(Method::GET, path, None, what, true).await {
            Err(VaultError::Denied { .. }) => {
                self.relogin().await?;
                self.request(Method::GET, path, None, what, true).await
            }
            other => other,
        }
    }

    /// A POST of `body` to `path` (under `/v1/`); on a 403 logs in again once and retries.
    pub async fn post_relogin<R: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
        what: &str,
    ) -> Result<R, VaultError> {
        match self.request(Method::POST, path, Some(body), what, true).await {
            Err(VaultError::Denied { .. }) => {
                self.relogin().await?;
                self.request(Method::POST, path, Some(body), what, true).await
            }
            other => other,
        }
    }

    /// Encrypts `plaintext` with the Transit key `key`: its ciphertext (`vault:vN:…`).
    pub async fn encrypt(&self, key: &str, plaintext: &[u8]) -> Result<String, VaultError> {
        let body = json!({"plaintext": STANDARD.encode(plaintext)});
        let what = format!("encrypting with Transit key {key:?}");
        let answer: DataAnswer<Ciphertext> = self.post(&format!("{}/encrypt/{key}", self.mount), &body, &what).await?;
        Ok(answer.data.ciphertext)
    }

    /// Decrypts a ciphertext of the Transit key `key`.
    pub async fn decrypt(&self, key: &str, ciphertext: &str) -> Result<Vec<u8>, VaultError> {
        let body = json!({"ciphertext": ciphertext});
        let what = format!("decrypting with Transit key {key:?}");
        let answer: DataAnswer<Plaintext> = self.post(&format!("{}/decrypt/{key}", self.mount), &body, &what).await?;
        STANDARD
            .decode(answer.data.plaintext)
            .map_err(|_| VaultError::Local(format!("{what}: the answer is not base64")))
    }

    /// Re-encrypts a ciphertext under the latest version of the Transit key `key`, without the
    /// plaintext leaving Transit.
    pub async fn rewrap(&self, key: &str, ciphertext: &str) -> Result<String, VaultError> {
        let body = json!({"ciphertext": ciphertext});
        let what = format!("rewrapping with Transit key {key:?}");
        let answer: DataAnswer<Ciphertext> = self.post(&format!("{}/rewrap/{key}", self.mount), &body, &what).await?;
        Ok(answer.data.ciphertext)
    }

    async fn post<R: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
        what: &str,
    ) -> Result<R, VaultError> {
        self.request(Method::POST, path, Some(body), what, true).await
    }

    async fn request<R: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
        what: &str,
        with_token: bool,
    ) -> Result<R, VaultError> {
        let url = format!("{}/v1/{path}", self.addr);
        let mut request = self.http.request(method, &url);
        if let Some(body) = body {
            request = request.json(body);
        }
        if with_token {
            let token = self.token.read().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
            let mut value = reqwest::header::HeaderValue::from_str(&token)
                .map_err(|_| VaultError::Local("the OpenBao/Vault token is not a valid header value".into()))?;
            value.set_sensitive(true);
            request = request.header("X-Vault-Token", value);
        }
        let unreachable = |e: reqwest::Error| VaultError::Unreachable {
            addr: self.addr.clone(),
            what: what.to_owned(),
            reason: e.without_url().to_string(),
        };
        let response = request.send().await.map_err(unreachable)?;
        let status = response.status();
        let bytes = response.bytes().await.map_err(unreachable)?;
        if status == reqwest::StatusCode::FORBIDDEN {
            return Err(VaultError::Denied { what: what.to_owned() });
        }
        if !status.is_success() {
            let errors = serde_json::from_slice::<ErrorAnswer>(&bytes).unwrap_or_default().errors;
            let message = if errors.is_empty() { "no error message".to_owned() } else { errors.join("; ") };
            return Err(VaultError::Refused { what: what.to_owned(), status: status.as_u16(), message });
        }
        serde_json::from_slice(&bytes).map_err(|_| VaultError::Local(format!("{what}: an answer keycard cannot read")))
    }
}

fn read_secret_file(path: &std::path::Path, setting: &str) -> Result<String, VaultError> {
    let text =
        std::fs::read_to_string(path).map_err(|e| VaultError::Local(format!("{setting} {}: {e}", path.display())))?;
    let text = text.trim();
    if text.is_empty() {
        return Err(VaultError::Local(format!("{setting} {} is empty", path.display())));
    }
    Ok(text.to_owned())
}

/// The Transit client and key name of envelope encryption, when `master_key_transit_key` is set.
async fn envelope(settings: &Settings) -> anyhow::Result<Option<(Transit, String)>> {
    let Some(key_name) = settings.master_key_transit_key.clone() else { return Ok(None) };
    let config = VaultConfig::from_settings(settings)?
        .ok_or_else(|| anyhow::anyhow!("master_key_transit_key needs vault_addr (the OpenBao/Vault address)"))?;
    Ok(Some((Transit::connect(&config).await?, key_name)))
}

/// The master key unwrapped by Transit (`master_key_transit_key`), or `None` when envelope
/// encryption is not configured. On the first start of an empty store a new master key is made
/// and only its Transit ciphertext stored; afterwards the stored ciphertext is unwrapped. Denied,
/// unreachable or a wrong key is an error: a new master key is never made for a store that has
/// one (it would invalidate every session and every signing key).
pub async fn envelope_master_key(
    settings: &Settings,
    store: &dyn Store,
    now: i64,
) -> anyhow::Result<Option<MasterKey>> {
    let Some((transit, key_name)) = envelope(settings).await? else { return Ok(None) };
    // Two rounds at most: a first start that loses the race to store its key unwraps the winner's.
    for _ in 0..2 {
        if let Some(stored) = store.wrapped_master_key().await? {
            if stored.key_name != key_name {
                anyhow::bail!(
                    "the store's master key is wrapped by Transit key {:?}, but master_key_transit_key is {key_name:?}: \
                     refusing to start (a new master key would invalidate every session)",
                    stored.key_name
                );
            }
            let plain = transit.decrypt(&key_name, &stored.ciphertext).await.map_err(|e| match e {
                VaultError::Refused { status: 400, message, .. } => anyhow::anyhow!(
                    "Transit key {key_name:?} does not unwrap the stored master key ({message}): wrong key, or the key \
                     was deleted and re-created; refusing to start (a new master key would invalidate every session)"
                ),
                other => anyhow::anyhow!("unwrapping the master key: {other}"),
            })?;
            let master = MasterKey::from_bytes(&plain).map_err(|_| {
                anyhow::anyhow!("Transit key {key_name:?} unwrapped something that is not a master key")
            })?;
            tracing::info!(transit_key = %key_name, "master key unwrapped by Transit");
            return Ok(Some(master));
        }
        if !store.signing_keys().await?.is_empty() {
            anyhow::bail!(
                "the store holds signing keys sealed by a master key that Transit does not wrap: refusing to generate \
                 a new master key (it would invalidate every session); start with the old master key, or on an empty \
                 store"
            );
        }
        let (master, bytes) = MasterKey::generate_bytes()?;
        let ciphertext = transit
            .encrypt(&key_name, &bytes)
            .await
            .map_err(|e| anyhow::anyhow!("wrapping the new master key: {e}"))?;
        let wrapped = WrappedMasterKey { key_name: key_name.clone(), ciphertext, updated_at: now };
        if store.replace_wrapped_master_key(None, &wrapped).await? {
            tracing::info!(transit_key = %key_name, "generated a master key; only its Transit-wrapped form is stored");
            return Ok(Some(master));
        }
    }
    anyhow::bail!("the wrapped master key changed while starting; start again")
}

/// `keycard keys rewrap`: re-encrypts the stored master key under the latest version of its
/// Transit key (after a Transit key rotation), the plaintext never leaving Transit. Returns the
/// new ciphertext's key version (`vN`), or `None` when it already was the latest.
pub async fn rewrap_master_key(settings: &Settings, store: &dyn Store, now: i64) -> anyhow::Result<Option<String>> {
    let (transit, key_name) = envelope(settings)
        .await?
        .ok_or_else(|| anyhow::anyhow!("keys rewrap needs master_key_transit_key (envelope encryption) to be set"))?;
    let stored =
        store.wrapped_master_key().await?.ok_or_else(|| anyhow::anyhow!("the store holds no wrapped master key"))?;
    if stored.key_name != key_name {
        anyhow::bail!("the store's master key is wrapped by Transit key {:?}, not {key_name:?}", stored.key_name);
    }
    let ciphertext = transit.rewrap(&key_name, &stored.ciphertext).await?;
    if ciphertext == stored.ciphertext || version(&ciphertext) == version(&stored.ciphertext) {
        return Ok(None);
    }
    let new_version = version(&ciphertext).to_owned();
    let wrapped = WrappedMasterKey { key_name, ciphertext, updated_at: now };
    if !store.replace_wrapped_master_key(Some(&stored.ciphertext), &wrapped).await? {
        anyhow::bail!("the wrapped master key changed meanwhile (another rewrap?); run keys rewrap again");
    }
    Ok(Some(new_version))
}

/// The key version of a Transit ciphertext (`vault:v2:…` → `v2`).
fn version(ciphertext: &str) -> &str {
    ciphertext.split(':').nth(1).unwrap_or("")
}
