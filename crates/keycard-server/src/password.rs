//! Password hashing with Argon2id, off the async executor, a bounded number at a time.
//!
//! Each hash takes ~40 ms of one core. `spawn_blocking` alone would let a login flood grow the
//! blocking pool to 512 threads (~19 MiB each); a semaphore of about one permit per core keeps
//! hashing to the cores there are, and a login that cannot get a permit within the queue
//! timeout gets 503 rather than waiting forever.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
use argon2::{Algorithm, Argon2, Params, Version};
use keycard_core::ErrorCode;
use tokio::sync::Semaphore;

use crate::error::ApiError;

/// Shortest accepted password, in characters (NIST SP 800-63B).
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest accepted password, in bytes: hashing cost must not be the client's to choose.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// The bundled list of common passwords (one per line, `#` comments).
const COMMON_PASSWORDS: &str = include_str!("common-passwords.txt");

fn is_common(password: &str) -> bool {
    static SET: std::sync::OnceLock<std::collections::HashSet<String>> = std::sync::OnceLock::new();
    let set = SET.get_or_init(|| {
        COMMON_PASSWORDS
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(str::to_lowercase)
            .collect()
    });
    set.contains(&password.to_lowercase())
}

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    argon2: Arc<Argon2<'static>>,
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    /// A real hash of a random password, verified against when the email is unknown, so both
    /// failures cost one full Argon2 verification.
    dummy_hash: Arc<String>,
}

impl Passwords {
    /// Argon2id v19 with `memory_kib` (OWASP: 19456), t=2, p=1.
    pub fn new(memory_kib: u32, concurrency: usize, queue_timeout: Duration) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, params);
        let dummy_hash = argon2
            .hash_password(uuid::Uuid::new_v4().to_string().as_bytes())
            .map_err(|e| anyhow::anyhow!("argon2: {e}"))?
            .to_string();
        Ok(Self {
            argon2: Arc::new(argon2),
            permits: Arc::new(Semaphore::new(concurrency)),
            queue_timeout,
            dummy_hash: Arc::new(dummy_hash),
        })
    }

    /// Checks the password policy: [`MIN_PASSWORD_CHARS`]..=[`MAX_PASSWORD_BYTES`], and not one
    /// of the bundled most common passwords.
    pub fn check_policy(password: &str) -> Result<(), ApiError> {
        if is_common(password) {
            return Err(ApiError::new(
                ErrorCode::WeakPassword,
                "this password is among the most commonly used ones; choose another",
            ));
        }
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(ApiError::new(
                ErrorCode::WeakPassword,
                format!("the password must have at least {MIN_PASSWORD_CHARS} characters"),
            ));
        }
        if password.len() > MAX_PASSWORD_BYTES {
            return Err(ApiError::new(
                ErrorCode::WeakPassword,
                format!("the password must have at most {MAX_PASSWORD_BYTES} bytes"),
            ));
        }
        Ok(())
    }

    /// Hashes a new password (PHC string).
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        let argon2 = self.argon2.clone();
        self.run(move || {
            argon2.hash_password(password.as_bytes()).map(|h| h.to_string()).map_err(|e| anyhow::anyhow!("argon2: {e}"))
        })
        .await?
        .map_err(ApiError::Internal)
    }

    /// Verifies `password` against `stored` (or against the dummy hash when there is no user),
    /// doing the same work either way. True only for a real match.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let argon2 = self.argon2.clone();
        let real = stored.is_some();
        let hash = stored.unwrap_or_else(|| self.dummy_hash.as_ref().clone());
        let matched = self
            .run(move || {
                let Ok(parsed) = PasswordHash::new(&hash) else {
                    return false;
                };
                argon2.verify_password(password.as_bytes(), &parsed).is_ok()
            })
            .await?;
        Ok(real && matched)
    }

    async fn run<T: Send + 'static>(&self, work: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(self.queue_timeout, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                ApiError::new(ErrorCode::TemporarilyUnavailable, "too many logins in progress; retry shortly")
            })?
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("password semaphore closed")))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| ApiError::Internal(anyhow::anyhow!("password hashing task failed: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_passwords_are_weak_whatever_their_case() {
        for weak in ["password123", "PASSWORD123", "qwertyuiop", "iloveyou", "short"] {
            assert!(Passwords::check_policy(weak).is_err(), "{weak}");
        }
        assert!(Passwords::check_policy("a perfectly decent passphrase").is_ok());
    }

    #[tokio::test]
    async fn an_unknown_user_costs_a_full_verification() {
        let passwords = Passwords::new(19_456, 2, Duration::from_secs(5)).unwrap();
        let real = passwords.hash("the real password".into()).await.unwrap();
        assert!(passwords.verify("the real password".into(), Some(real.clone())).await.unwrap());
        let time = |stored: Option<String>| {
            let passwords = passwords.clone();
            async move {
                let t = std::time::Instant::now();
                assert!(!passwords.verify("a wrong password".into(), stored).await.unwrap());
                t.elapsed()
            }
        };
        // The fastest of a few runs is the real cost; slower runs measured a busy machine.
        let (mut known, mut unknown) = (Duration::MAX, Duration::MAX);
        for _ in 0..4 {
            known = known.min(time(Some(real.clone())).await);
            unknown = unknown.min(time(None).await);
        }
        let ratio = known.as_secs_f64() / unknown.as_secs_f64();
        assert!((0.33..3.0).contains(&ratio), "known {known:?} unknown {unknown:?}");
    }
}
