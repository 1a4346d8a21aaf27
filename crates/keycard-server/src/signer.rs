//! Who signs access tokens (`signing_backend`): keycard's own key ring (the store's sealed keys
//! or `signing_key_files`), or OpenBao/Vault Transit (`transit_keys.rs`), whose private key never
//! enters keycard. One enum in the state: local signing stays a match arm away from what it was
//! (no store read, no allocation added), and validation looks kids up in whichever is in force.

use keycard_core::claims::AccessClaims;
use keycard_core::keys::{JwkSet, KeyAlg, KeyRing, KeySource, VerifyingKey};

use crate::error::ApiError;
use crate::state::AppState;
use crate::transit_keys::TransitRing;

/// The keys in force.
#[derive(Debug)]
pub enum Keys {
    /// keycard signs with the ring's active key.
    Local(KeyRing),
    /// Transit signs with the key's newest version; keycard holds the public keys in force.
    Transit(TransitRing),
}

impl KeySource for Keys {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        match self {
            Self::Local(ring) => ring.verifying_key(kid),
            Self::Transit(ring) => ring.verifying_key(kid),
        }
    }
}

impl Keys {
    /// The public keys in force, for JWKS, sorted by kid.
    pub fn jwks(&self) -> JwkSet {
        match self {
            Self::Local(ring) => ring.jwks(),
            Self::Transit(ring) => ring.jwks().clone(),
        }
    }

    /// The algorithm of the key that signs.
    pub fn alg(&self) -> KeyAlg {
        match self {
            Self::Local(ring) => ring.active().alg(),
            Self::Transit(ring) => ring.alg(),
        }
    }

    /// The kid of the key that signs.
    pub fn active_kid(&self) -> &str {
        match self {
            Self::Local(ring) => ring.active().kid(),
            Self::Transit(ring) => ring.active_kid(),
        }
    }

    /// The local ring, when keycard signs itself.
    pub fn local(&self) -> Option<&KeyRing> {
        match self {
            Self::Local(ring) => Some(ring),
            Self::Transit(_) => None,
        }
    }

    /// The signing kid and every kid in force, sorted: equal values mean the same keys verify.
    pub fn kids(&self) -> (String, Vec<String>) {
        let mut kids: Vec<String> = match self {
            Self::Local(ring) => ring.keys().map(|k| k.kid().to_owned()).collect(),
            Self::Transit(ring) => ring.kids().map(str::to_owned).collect(),
        };
        kids.sort_unstable();
        (self.active_kid().to_owned(), kids)
    }
}

impl AppState {
    /// Signs access-token claims with the key in force. Locally this cannot fail for want of a
    /// service; with Transit, an unreachable or refusing Transit is
    /// [`ApiError::SigningUnavailable`] (503, `Retry-After`), its cause logged.
    pub async fn sign(&self, claims: &AccessClaims) -> Result<String, ApiError> {
        let keys = self.keys();
        match &*keys {
            Keys::Local(ring) => ring.sign(claims).map_err(|e| ApiError::Internal(e.into())),
            Keys::Transit(ring) => {
                let Some(signer) = self.transit() else {
                    return Err(ApiError::Internal(anyhow::anyhow!("a Transit key ring without a Transit signer")));
                };
                // Boxed: the local path's future does not carry the HTTP request's size.
                let signed = Box::pin(signer.sign(ring, claims)).await;
                signed.map_err(|e| {
                    metrics::counter!("keycard_transit_sign_failures_total").increment(1);
                    ApiError::SigningUnavailable(e.to_string())
                })
            }
        }
    }

    /// Whether access tokens are signed remotely (then a refresh signs before it spends).
    pub fn signs_remotely(&self) -> bool {
        self.transit().is_some()
    }
}
