//! Password hashing with Argon2id on dedicated, low-priority threads that reuse their memory.
//!
//! Each hash takes ~17–40 ms of one core and 19 MiB of memory. `hash_concurrency` hashing
//! threads each own one Argon2 memory block (allocated on its first job, then reused: no 19 MiB
//! allocation, page faults or resident garbage per hash), and run at a lower scheduling priority
//! (nice +10) so the async workers preempt them: a login flood does not starve refreshes, and idle
//! CPU still goes to hashing. Jobs reach the threads through a bounded channel; admission is a
//! semaphore of `hash_concurrency` permits, and a login that cannot get one within the queue
//! timeout gets 503 rather than waiting forever.
//!
//! PHC strings are assembled and parsed with the `password-hash` types the argon2 crate
//! re-exports; verification recomputes with the parameters and salt of the stored string (older
//! parameters keep verifying) and compares in constant time ([`Output`]'s equality).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use argon2::password_hash::phc::{Output, ParamsString, PasswordHash, Salt};
use argon2::{ARGON2ID_IDENT, Algorithm, Argon2, Block, Params, Version};
use keycard_core::ErrorCode;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

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

/// Largest Argon2 memory (KiB) a stored hash may ask for: hashes made with other parameters
/// still verify, but a corrupt row must not make the server allocate gigabytes.
const MAX_STORED_M_KIB: u32 = 1024 * 1024;

/// Output length of new hashes, bytes (the argon2 crate's default).
const OUTPUT_LEN: usize = Params::DEFAULT_OUTPUT_LEN;

/// Hashes and verifies passwords.
#[derive(Clone)]
pub struct Passwords {
    inner: Arc<Inner>,
}

struct Inner {
    /// Jobs for the hashing threads; dropping the last `Passwords` closes it and ends them.
    jobs: SyncSender<Job>,
    permits: Arc<Semaphore>,
    queue_timeout: Duration,
    /// A hash with this server's parameters, a random salt and a random output (which no password
    /// produces), verified against when the email is unknown, so both failures cost one full
    /// Argon2 computation.
    dummy_hash: String,
}

/// One unit of work for a hashing thread; the permit is released when the thread is done.
struct Job {
    work: Work,
    _permit: OwnedSemaphorePermit,
}

enum Work {
    Hash { password: String, reply: oneshot::Sender<anyhow::Result<String>> },
    Verify { password: String, stored: String, reply: oneshot::Sender<bool> },
}

impl Passwords {
    /// Argon2id v19 with `memory_kib` (OWASP: 19456), t=2, p=1; `concurrency` hashing threads.
    pub fn new(memory_kib: u32, concurrency: usize, queue_timeout: Duration) -> anyhow::Result<Self> {
        let params = Params::new(memory_kib, 2, 1, None).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        let concurrency = concurrency.max(1);
        let dummy_hash = dummy_hash(&params)?;
        let (jobs, queue) = std::sync::mpsc::sync_channel::<Job>(concurrency);
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..concurrency {
            let queue = queue.clone();
            let params = params.clone();
            std::thread::Builder::new()
                .name(format!("keycard-argon2-{i}"))
                .spawn(move || Hasher::new(params).run(&queue))
                .map_err(|e| anyhow::anyhow!("could not start a password hashing thread: {e}"))?;
        }
        Ok(Self {
            inner: Arc::new(Inner { jobs, permits: Arc::new(Semaphore::new(concurrency)), queue_timeout, dummy_hash }),
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
        let (reply, answer) = oneshot::channel();
        self.submit(Work::Hash { password, reply }).await?;
        answer.await.map_err(|_| hashing_failed())?.map_err(ApiError::Internal)
    }

    /// Verifies `password` against `stored` (or against the dummy hash when there is no user),
    /// doing the same work either way. True only for a real match.
    pub async fn verify(&self, password: String, stored: Option<String>) -> Result<bool, ApiError> {
        let real = stored.is_some();
        let stored = stored.unwrap_or_else(|| self.inner.dummy_hash.clone());
        let (reply, answer) = oneshot::channel();
        self.submit(Work::Verify { password, stored, reply }).await?;
        let matched = answer.await.map_err(|_| hashing_failed())?;
        Ok(real && matched)
    }

    /// Waits (up to the queue timeout) for a hashing slot, then hands `work` to the threads.
    async fn submit(&self, work: Work) -> Result<(), ApiError> {
        let inner = &self.inner;
        let permit = tokio::time::timeout(inner.queue_timeout, inner.permits.clone().acquire_owned())
            .await
            .map_err(|_| overloaded())?
            .map_err(|_| ApiError::Internal(anyhow::anyhow!("password semaphore closed")))?;
        // At most `concurrency` permits exist and the channel holds `concurrency` jobs, so a
        // permit holder always finds room.
        match inner.jobs.try_send(Job { work, _permit: permit }) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => Err(overloaded()),
            Err(TrySendError::Disconnected(_)) => Err(hashing_failed()),
        }
    }
}

fn overloaded() -> ApiError {
    ApiError::new(ErrorCode::TemporarilyUnavailable, "too many logins in progress; retry shortly")
}

fn hashing_failed() -> ApiError {
    ApiError::Internal(anyhow::anyhow!("the password hashing thread failed"))
}

/// A PHC string with `params`, a random salt and a random output: verifying any password against
/// it costs one full Argon2 computation and never matches.
fn dummy_hash(params: &Params) -> anyhow::Result<String> {
    let mut salt = [0u8; 16];
    let mut output = [0u8; OUTPUT_LEN];
    getrandom::fill(&mut salt).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    getrandom::fill(&mut output).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    let hash = phc_string(params, &salt, &output)?;
    Ok(hash)
}

/// The PHC string of an Argon2id v19 hash, assembled by the `password-hash` types.
fn phc_string(params: &Params, salt: &[u8], output: &[u8]) -> anyhow::Result<String> {
    let phc = PasswordHash {
        algorithm: ARGON2ID_IDENT,
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(params).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?,
        salt: Some(Salt::new(salt).map_err(|e| anyhow::anyhow!("salt: {e}"))?),
        hash: Some(Output::new(output).map_err(|e| anyhow::anyhow!("output: {e}"))?),
    };
    Ok(phc.to_string())
}

/// The state of one hashing thread: the configured parameters and the memory it reuses.
struct Hasher {
    params: Params,
    /// `params.block_count()` blocks, allocated on the first job and kept.
    memory: Vec<Block>,
}

impl Hasher {
    fn new(params: Params) -> Self {
        Self { params, memory: Vec::new() }
    }

    fn run(mut self, queue: &Mutex<Receiver<Job>>) {
        lower_priority();
        loop {
            let next = match queue.lock() {
                Ok(queue) => queue.recv(),
                Err(poisoned) => poisoned.into_inner().recv(),
            };
            let Ok(job) = next else {
                return; // every `Passwords` is gone
            };
            // A panic (none is expected) drops the reply, so the request fails with a 500; the
            // thread carries on with the next job.
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.process(job)));
        }
    }

    fn process(&mut self, job: Job) {
        match job.work {
            Work::Hash { password, reply } => {
                let _ = reply.send(self.hash(password.as_bytes()));
            }
            Work::Verify { password, stored, reply } => {
                let matched = self.verify(password.as_bytes(), &stored).unwrap_or_else(|e| {
                    tracing::warn!(error = %e, "could not verify a stored password hash");
                    false
                });
                let _ = reply.send(matched);
            }
        }
    }

    fn hash(&mut self, password: &[u8]) -> anyhow::Result<String> {
        let salt = argon2::password_hash::try_generate_salt().map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
        let argon2 = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        let mut output = [0u8; OUTPUT_LEN];
        self.with_memory(self.params.block_count(), |memory| {
            argon2.hash_password_into_with_memory(password, &salt, &mut output, memory)
        })?
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        phc_string(&self.params, &salt, &output)
    }

    /// Recomputes the hash with the stored string's algorithm, version, parameters and salt, and
    /// compares the outputs in constant time. `Ok(false)` for a mismatch or an unusable string.
    fn verify(&mut self, password: &[u8], stored: &str) -> anyhow::Result<bool> {
        let Ok(parsed) = PasswordHash::new(stored) else {
            return Ok(false);
        };
        let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
            return Ok(false);
        };
        let algorithm = Algorithm::try_from(parsed.algorithm.as_str()).map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        let version = match parsed.version {
            Some(v) => Version::try_from(v).map_err(|e| anyhow::anyhow!("argon2: {e}"))?,
            None => Version::default(),
        };
        let params = Params::try_from(&parsed).map_err(|e| anyhow::anyhow!("argon2 parameters: {e}"))?;
        if params.m_cost() > MAX_STORED_M_KIB.max(self.params.m_cost()) {
            anyhow::bail!("stored hash asks for {} KiB of memory", params.m_cost());
        }
        let argon2 = Argon2::new(algorithm, version, params.clone());
        let mut buffer = [0u8; Output::MAX_LENGTH];
        let computed = buffer.get_mut(..expected.len()).ok_or_else(|| anyhow::anyhow!("output too long"))?;
        self.with_memory(params.block_count(), |memory| {
            argon2.hash_password_into_with_memory(password, salt, computed, memory)
        })?
        .map_err(|e| anyhow::anyhow!("argon2: {e}"))?;
        let computed = Output::new(computed).map_err(|e| anyhow::anyhow!("output: {e}"))?;
        // `Output`'s equality is constant-time.
        Ok(computed == *expected)
    }

    /// Runs `f` on `blocks` blocks of memory: this thread's own (allocated once) when they fit,
    /// otherwise a temporary allocation (a stored hash made with more memory than configured).
    fn with_memory<R>(&mut self, blocks: usize, f: impl FnOnce(&mut [Block]) -> R) -> anyhow::Result<R> {
        let own = self.params.block_count();
        if blocks <= own {
            if self.memory.len() < own {
                self.memory = vec![Block::new(); own];
            }
            Ok(f(&mut self.memory[..blocks]))
        } else {
            let mut temporary = vec![Block::new(); blocks];
            Ok(f(&mut temporary))
        }
    }
}

/// How much nicer than the rest of the process the hashing threads are.
const NICE_STEP: i32 = 10;

/// Lowers the calling thread's scheduling priority by [`NICE_STEP`] (nice +10 in a process at 0;
/// on Linux, `setpriority` with a thread id applies to that thread only), so async workers
/// preempt hashing. Relative to the thread's own nice value, so a server started with `nice`
/// keeps the same gap. A failure is logged once and otherwise ignored.
fn lower_priority() {
    static WARNED: AtomicBool = AtomicBool::new(false);
    #[cfg(target_os = "linux")]
    let result = {
        let tid = rustix::thread::gettid();
        rustix::process::getpriority_process(Some(tid))
            .and_then(|nice| rustix::process::setpriority_process(Some(tid), (nice + NICE_STEP).min(19)))
            .map_err(|e| e.to_string())
    };
    #[cfg(not(target_os = "linux"))]
    let result: Result<(), String> = Err("per-thread priority is only lowered on Linux".into());
    if let Err(e) = result
        && !WARNED.swap(true, Ordering::Relaxed)
    {
        tracing::warn!(error = %e, "could not lower the priority of the password hashing threads");
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

    #[tokio::test]
    async fn hashes_are_standard_phc_strings_and_other_parameters_still_verify() {
        use argon2::password_hash::{PasswordHasher as _, PasswordVerifier as _};
        let passwords = Passwords::new(1024, 1, Duration::from_secs(5)).unwrap();
        // Ours verifies with the argon2 crate's own verifier.
        let ours = passwords.hash("a fine passphrase".into()).await.unwrap();
        assert!(ours.starts_with("$argon2id$v=19$m=1024,t=2,p=1$"), "{ours}");
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(Argon2::default().verify_password(b"a fine passphrase", &parsed).is_ok());
        assert!(Argon2::default().verify_password(b"another passphrase", &parsed).is_err());
        // Hashes made elsewhere with smaller, larger and older parameters verify with ours.
        for (m, t, version) in [(512, 3, Version::V0x13), (4096, 1, Version::V0x13), (1024, 2, Version::V0x10)] {
            let argon2 = Argon2::new(Algorithm::Argon2id, version, Params::new(m, t, 1, None).unwrap());
            let theirs = argon2.hash_password(b"a fine passphrase").unwrap().to_string();
            assert!(passwords.verify("a fine passphrase".into(), Some(theirs.clone())).await.unwrap(), "{theirs}");
            assert!(!passwords.verify("a fine passphrasE".into(), Some(theirs.clone())).await.unwrap(), "{theirs}");
        }
        // Garbage never matches, and the thread survives it.
        for garbage in [
            "",
            "$argon2id$v=19$m=1024,t=2,p=1$c2FsdHNhbHQ",
            "$argon2id$v=99$m=1024,t=2,p=1$c2FsdHNhbHQ$AAAAAAAAAAAAAAAAAAAAAA",
        ] {
            assert!(!passwords.verify("a fine passphrase".into(), Some(garbage.into())).await.unwrap());
        }
        assert!(passwords.verify("a fine passphrase".into(), Some(ours)).await.unwrap());
        // The dummy hash never matches.
        assert!(!passwords.verify("a fine passphrase".into(), None).await.unwrap());
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn hashing_threads_run_nicer_than_the_process() {
        let passwords = Passwords::new(1024, 1, Duration::from_secs(5)).unwrap();
        passwords.hash("a fine passphrase".into()).await.unwrap();
        let nice_of = |stat: &str| -> i32 {
            // Fields after the parenthesised name: state is field 3, nice field 19.
            let rest = &stat[stat.rfind(')').unwrap() + 2..];
            rest.split(' ').nth(16).unwrap().parse().unwrap()
        };
        let process = nice_of(&std::fs::read_to_string("/proc/self/stat").unwrap());
        let hashing: Vec<i32> = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter_map(|task| std::fs::read_to_string(task.path().join("stat")).ok())
            .filter(|stat| stat.contains("(keycard-argon2-)"))
            .map(|stat| nice_of(&stat))
            .collect();
        assert!(hashing.contains(&(process + NICE_STEP).min(19)), "process {process}, hashing threads {hashing:?}");
    }

    #[tokio::test]
    async fn a_full_queue_answers_503_after_the_timeout() {
        let passwords = Passwords::new(19_456, 1, Duration::from_millis(1)).unwrap();
        let results = futures::future::join_all((0..8).map(|_| passwords.hash("a fine passphrase".into()))).await;
        assert!(results.iter().any(Result::is_ok));
        assert!(
            results.iter().any(|r| matches!(r, Err(ApiError::Client { code: ErrorCode::TemporarilyUnavailable, .. }))),
            "a login that waited past the queue timeout is refused"
        );
    }
}
