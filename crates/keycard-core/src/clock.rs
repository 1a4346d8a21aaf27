//! The time keycard reads: one [`Clock`] handed to everything that decides by the clock (token
//! lifetimes, session expiry, the reuse interval, key overlap, backoff), so tests drive time with
//! a [`ManualClock`] instead of sleeping.

use std::fmt::Debug;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// A source of wall-clock time.
pub trait Clock: Send + Sync + Debug + 'static {
    /// Milliseconds since the Unix epoch.
    fn now_ms(&self) -> i64;

    /// Seconds since the Unix epoch.
    fn now(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(since.as_millis()).unwrap_or(i64::MAX)
    }
}

/// A clock that moves only when told to (tests).
#[derive(Debug)]
pub struct ManualClock {
    ms: AtomicI64,
}

impl ManualClock {
    /// A clock reading the system time now, standing still from then on.
    pub fn starting_now() -> Self {
        Self { ms: AtomicI64::new(SystemClock.now_ms()) }
    }

    /// A clock reading `unix_secs`.
    pub fn at(unix_secs: i64) -> Self {
        Self { ms: AtomicI64::new(unix_secs.saturating_mul(1000)) }
    }

    /// Moves the clock forward by `by`.
    pub fn advance(&self, by: Duration) {
        let ms = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ms.fetch_add(ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_advanced() {
        let clock = ManualClock::at(1_000);
        assert_eq!((clock.now(), clock.now_ms()), (1_000, 1_000_000));
        clock.advance(Duration::from_millis(1_500));
        assert_eq!((clock.now(), clock.now_ms()), (1_001, 1_001_500));
    }

    #[test]
    fn the_system_clock_agrees_with_now_unix() {
        assert!((SystemClock.now() - crate::now_unix()).abs() <= 1);
    }
}
