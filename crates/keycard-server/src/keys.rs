//! Loading the signing key ring from the store, generating the first key on first start.

use keycard_core::keys::{KeyAlg, KeyMaterial, KeyRing, SigningKey};
use keycard_store::{Store, StoredKey};

/// Loads every unretired key; when there is none (first start), generates an Ed25519 key and
/// stores it. Several instances starting at once each may insert one; all of them then load
/// the same set, and the newest key signs.
pub async fn load_or_create(store: &dyn Store, now: i64) -> anyhow::Result<KeyRing> {
    let mut stored = store.signing_keys().await?;
    if !stored.iter().any(|k| k.retired_at.is_none()) {
        let key = SigningKey::generate_ed25519()?;
        store
            .insert_signing_key(&StoredKey {
                kid: key.kid().to_owned(),
                alg: key.alg().as_str().to_owned(),
                private_key: key.material().private_der.clone(),
                created_at: now,
                retired_at: None,
            })
            .await?;
        tracing::info!(kid = key.kid(), alg = key.alg().as_str(), "generated the first signing key");
        stored = store.signing_keys().await?;
    }
    ring_from(stored)
}

fn ring_from(stored: Vec<StoredKey>) -> anyhow::Result<KeyRing> {
    let mut live: Vec<StoredKey> = stored.into_iter().filter(|k| k.retired_at.is_none()).collect();
    live.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
    let active = live.last().map(|k| k.kid.clone()).ok_or_else(|| anyhow::anyhow!("no signing key"))?;
    let keys = live
        .into_iter()
        .map(|k| {
            let alg = KeyAlg::parse(&k.alg)
                .ok_or_else(|| anyhow::anyhow!("key {}: unsupported algorithm {}", k.kid, k.alg))?;
            Ok(SigningKey::from_material(KeyMaterial { kid: k.kid, alg, private_der: k.private_key })?)
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    Ok(KeyRing::new(keys, active)?)
}
