//! A bounded cache of access tokens that passed full validation, so a client presenting the same
//! token again skips the signature verification (an Ed25519 verify is most of `/auth/me`).
//!
//! Why it is safe (docs/DECISIONS.md): the signature was verified once for this exact byte
//! string, and nothing else about a token can change. An entry is used only when
//! - the presented token is byte-for-byte the cached one (the key is the signature segment, the
//!   whole text is compared), so a token that differs in its header, payload or signature misses
//!   and goes through full validation;
//! - the key ring has not changed since (a rotation, retirement or expiry of a key bumps the
//!   generation and clears the cache), so a retired key's tokens are refused at once;
//! - `exp`, `nbf` and `iat` still hold at the current time, with the configured leeway.
//!
//! Session revocation and user deletion are not cached: callers still look the session up on
//! every request. Only successful validations are inserted, so forged tokens neither fill nor
//! evict it; its size is bounded (`verify_cache_size`, 0 turns it off).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use keycard_core::claims::AccessClaims;

/// Verified tokens, keyed by their signature segment.
pub struct VerifiedTokens {
    cache: Option<quick_cache::sync::Cache<Box<str>, Arc<Entry>>>,
    /// Bumped whenever the key ring changes; entries of an older generation are never used.
    generation: AtomicU64,
}

struct Entry {
    token: Box<str>,
    claims: AccessClaims,
    generation: u64,
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens; 0 disables it.
    pub fn new(capacity: usize) -> Self {
        Self { cache: (capacity > 0).then(|| quick_cache::sync::Cache::new(capacity)), generation: AtomicU64::new(0) }
    }

    /// The key-ring generation; read it before reading the ring a token is validated with.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The claims of `token` when exactly this token was validated under the current key ring
    /// and its `exp`, `nbf` and `iat` still hold at `now` (± `leeway` seconds).
    pub fn get(&self, token: &str, now: i64, leeway: i64) -> Option<AccessClaims> {
        let cache = self.cache.as_ref()?;
        let signature = signature(token)?;
        let entry = cache.get(signature)?;
        if entry.generation != self.generation() || *entry.token != *token {
            return None;
        }
        let claims = &entry.claims;
        if keycard_core::validate::check_times(claims.exp, claims.nbf, claims.iat, now, leeway).is_err() {
            // Full validation answers (and words) the refusal.
            cache.remove(signature);
            return None;
        }
        Some(claims.clone())
    }

    /// Records `token` as validated, with the claims validation returned, under the key-ring
    /// `generation` read before validating.
    pub fn insert(&self, token: &str, claims: &AccessClaims, generation: u64) {
        let (Some(cache), Some(signature)) = (self.cache.as_ref(), signature(token)) else {
            return;
        };
        let entry = Entry { token: token.into(), claims: claims.clone(), generation };
        cache.insert(signature.into(), Arc::new(entry));
    }

    /// Forgets every entry: the key ring changed.
    pub fn invalidate(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        if let Some(cache) = &self.cache {
            cache.clear();
        }
    }

    /// How many tokens are cached.
    pub fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, |c| c.len())
    }

    /// Whether nothing is cached.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The signature segment of a compact JWS (after the last dot), if there is one.
fn signature(token: &str) -> Option<&str> {
    token.rsplit_once('.').map(|(_, s)| s).filter(|s| !s.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> AccessClaims {
        AccessClaims {
            iss: "https://id.example".into(),
            aud: "api".into(),
            sub: "u".into(),
            exp,
            iat: exp - 60,
            nbf: exp - 60,
            jti: "j".into(),
            sid: "s".into(),
            scope: None,
            client_id: None,
            role: None,
            email_verified: None,
            cnf: None,
            amr: Default::default(),
            auth_time: None,
        }
    }

    #[test]
    fn hits_need_the_exact_token_the_same_generation_and_time_left() {
        let cache = VerifiedTokens::new(16);
        let token = "aGVhZGVy.cGF5bG9hZA.c2lnbmF0dXJl";
        // Valid from 940 (nbf, iat) to 1000 (exp).
        cache.insert(token, &claims(1_000), cache.generation());
        assert_eq!(cache.get(token, 950, 0).map(|c| c.exp), Some(1_000));
        // Same signature, another payload: a miss.
        assert!(cache.get("aGVhZGVy.cGF5bG9hZB.c2lnbmF0dXJl", 950, 0).is_none());
        // Not yet valid (leeway counted).
        assert!(cache.get(token, 935, 10).is_some());
        assert!(cache.get(token, 935, 0).is_none());
        // Expired (leeway counted), then gone.
        cache.insert(token, &claims(1_000), cache.generation());
        assert!(cache.get(token, 1_005, 10).is_some());
        assert!(cache.get(token, 1_000, 0).is_none());
        assert!(cache.is_empty());
        // A key-ring change forgets everything, including entries inserted late with the old
        // generation (a validation that raced the reload).
        let old = cache.generation();
        cache.insert(token, &claims(1_000), old);
        cache.invalidate();
        assert!(cache.is_empty());
        cache.insert(token, &claims(1_000), old);
        assert!(cache.get(token, 950, 0).is_none());
    }

    #[test]
    fn size_zero_is_off() {
        let cache = VerifiedTokens::new(0);
        cache.insert("a.b.c", &claims(1_000), cache.generation());
        assert!(cache.get("a.b.c", 950, 0).is_none());
    }
}
