//! Where validation finds keys by `kid` ([`KeySource`]): a verifier's [`PublicKeys`] and a
//! signer's [`KeyRing`], which also publishes the JWKS.

use std::collections::HashMap;
use std::sync::Arc;

use super::{Jwk, JwkSet, KeyError, SigningKey, VerifyingKey};
use crate::claims::AccessClaims;

/// Where validation looks keys up by `kid`.
pub trait KeySource {
    /// The verifying key with this id, if any.
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey>;
}

impl<T: KeySource + ?Sized> KeySource for &T {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        (**self).verifying_key(kid)
    }
}

impl<T: KeySource + ?Sized> KeySource for Arc<T> {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        (**self).verifying_key(kid)
    }
}

impl<T: KeySource + ?Sized> KeySource for Box<T> {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        (**self).verifying_key(kid)
    }
}

/// A set of verifying keys by `kid`: what a resource server accepts (from JWKS or configured).
#[derive(Debug, Clone, Default)]
pub struct PublicKeys {
    keys: HashMap<String, VerifyingKey>,
}

impl PublicKeys {
    /// A set of `keys`; a later key with the same kid replaces an earlier one.
    pub fn new(keys: impl IntoIterator<Item = VerifyingKey>) -> Self {
        Self { keys: keys.into_iter().map(|k| (k.kid().to_owned(), k)).collect() }
    }

    /// The usable keys of a JWK set, and an error for each key left out (unsupported, malformed,
    /// a secret, or a kid already seen: the first key with a kid wins).
    pub fn from_jwk_set(set: &JwkSet) -> (Self, Vec<KeyError>) {
        let mut keys = HashMap::with_capacity(set.keys.len());
        let mut skipped = Vec::new();
        for jwk in &set.keys {
            match VerifyingKey::from_jwk(jwk) {
                Ok(key) if keys.contains_key(key.kid()) => skipped.push(KeyError::InvalidJwk {
                    kid: key.kid().to_owned(),
                    reason: "duplicate kid in the key set".into(),
                }),
                Ok(key) => {
                    keys.insert(key.kid().to_owned(), key);
                }
                Err(e) => skipped.push(e),
            }
        }
        (Self { keys }, skipped)
    }

    /// Adds `key`, returning the one it replaces.
    pub fn insert(&mut self, key: VerifyingKey) -> Option<VerifyingKey> {
        self.keys.insert(key.kid().to_owned(), key)
    }

    /// Removes the key with this id.
    pub fn remove(&mut self, kid: &str) -> Option<VerifyingKey> {
        self.keys.remove(kid)
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }

    /// The key ids, in no particular order.
    pub fn kids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// How many keys the set holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl KeySource for PublicKeys {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid)
    }
}

impl From<&KeyRing> for PublicKeys {
    /// Every key of the ring, HS256 secrets included (a service sharing the secret verifies with it).
    fn from(ring: &KeyRing) -> Self {
        Self::new(ring.keys().map(VerifyingKey::from))
    }
}

/// The keys a server signs with and accepts, looked up by `kid`; one of them is active.
#[derive(Clone)]
pub struct KeyRing {
    keys: HashMap<String, Arc<SigningKey>>,
    active: Arc<SigningKey>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut kids: Vec<&str> = self.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        f.debug_struct("KeyRing").field("active", &self.active.kid()).field("kids", &kids).finish()
    }
}

impl KeyRing {
    /// A ring of `keys` that signs with the one whose kid is `active`.
    pub fn new(keys: Vec<SigningKey>, active: String) -> Result<Self, KeyError> {
        let keys: HashMap<_, _> = keys.into_iter().map(|k| (k.kid().to_owned(), Arc::new(k))).collect();
        let active = keys.get(&active).cloned().ok_or(KeyError::NoActiveKey(active))?;
        Ok(Self { keys, active })
    }

    /// Signs access-token claims with the active key.
    pub fn sign(&self, claims: &AccessClaims) -> Result<String, KeyError> {
        self.active.sign(claims)
    }

    /// The key with this id, if the ring holds it.
    pub fn get(&self, kid: &str) -> Option<&SigningKey> {
        self.keys.get(kid).map(|k| k.as_ref())
    }

    /// The key new tokens are signed with.
    pub fn active(&self) -> &SigningKey {
        &self.active
    }

    /// Every key of the ring, in no particular order.
    pub fn keys(&self) -> impl Iterator<Item = &SigningKey> {
        self.keys.values().map(|k| k.as_ref())
    }

    /// Every public key, for JWKS, sorted by kid. HS256 keys are left out: their secret is never
    /// published.
    pub fn jwks(&self) -> JwkSet {
        let mut keys: Vec<Jwk> = self.keys.values().filter_map(|k| k.public_jwk().cloned()).collect();
        keys.sort_by(|a, b| a.kid.cmp(&b.kid));
        JwkSet { keys }
    }
}

impl KeySource for KeyRing {
    fn verifying_key(&self, kid: &str) -> Option<&VerifyingKey> {
        self.keys.get(kid).map(|k| k.verifying_key())
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::keys::KeyAlg;
    use crate::keys::test_support::claims;

    #[test]
    fn jwks_publish_each_public_key_type_and_never_an_hs256_secret() {
        let keys: Vec<SigningKey> = KeyAlg::ALL.iter().map(|a| SigningKey::generate(*a).unwrap()).collect();
        let hs_kid = keys[3].kid().to_owned();
        let ring = KeyRing::new(keys, hs_kid.clone()).unwrap();
        let set = ring.jwks();
        let ktys: Vec<&str> = set.keys.iter().map(|k| k.kty.as_str()).collect();
        assert_eq!(set.keys.len(), 3);
        for kty in ["OKP", "EC", "RSA"] {
            assert!(ktys.contains(&kty), "{kty} missing from {ktys:?}");
        }
        assert!(!set.keys.iter().any(|k| k.kid == hs_kid || k.kty == "oct"));
        let json = serde_json::to_string(&set).unwrap();
        let secret = URL_SAFE_NO_PAD.encode(&ring.get(&hs_kid).unwrap().material().private_der);
        assert!(!json.contains(&secret));
        assert!(ring.get(&hs_kid).unwrap().public_jwk().is_none());
    }

    #[test]
    fn a_public_key_set_from_jwks_verifies_what_the_ring_signs() {
        for alg in [KeyAlg::EdDsa, KeyAlg::Es256, KeyAlg::Rs256] {
            let key = SigningKey::generate(alg).unwrap();
            let ring = KeyRing::new(vec![key.clone()], key.kid().to_owned()).unwrap();
            let json = serde_json::to_string(&ring.jwks()).unwrap();
            let (public, skipped) = PublicKeys::from_jwk_set(&serde_json::from_str(&json).unwrap());
            assert!(skipped.is_empty(), "{skipped:?}");
            let token = ring.sign(&claims()).unwrap();
            let (message, signature) = token.rsplit_once('.').unwrap();
            assert!(public.verifying_key(key.kid()).unwrap().verify(signature, message.as_bytes()), "{alg}");
        }
    }

    #[test]
    fn unusable_jwks_entries_are_skipped_with_a_reason() {
        let ed = SigningKey::generate(KeyAlg::EdDsa).unwrap();
        let good = ed.jwk().clone();
        let mut oct = good.clone();
        (oct.kty, oct.alg, oct.kid) = ("oct".into(), "HS256".into(), "secret".into());
        let mut no_alg = good.clone();
        (no_alg.alg, no_alg.kid) = (String::new(), "no-alg".into());
        let mut mismatch = good.clone();
        (mismatch.alg, mismatch.kid) = ("RS256".into(), "mismatch".into());
        let mut short = good.clone();
        (short.x, short.kid) = (Some("AAAA".into()), "short".into());
        let mut enc = good.clone();
        (enc.use_, enc.kid) = ("enc".into(), "enc".into());
        let set = JwkSet { keys: vec![good.clone(), oct, no_alg, mismatch, short, enc, good] };
        let (keys, skipped) = PublicKeys::from_jwk_set(&set);
        assert_eq!(keys.len(), 1);
        assert_eq!(skipped.len(), 6, "{skipped:?}");
    }
}
