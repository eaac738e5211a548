//! The clock port: core reads time through it, so tests move time forward instead of sleeping.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Wall-clock time, in milliseconds since the Unix epoch.
pub trait Clock: Send + Sync + std::fmt::Debug {
    fn now_ms(&self) -> i64;

    /// Whole seconds since the Unix epoch, as most stored timestamps are.
    fn now_unix(&self) -> i64 {
        self.now_ms().div_euclid(1000)
    }
}

/// The system's clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64)
    }
}

/// The shared system clock, for wiring.
pub fn system() -> Arc<dyn Clock> {
    Arc::new(SystemClock)
}

/// A clock that stands still until a test moves it.
#[derive(Debug)]
pub struct ManualClock {
    now_ms: AtomicI64,
}

impl ManualClock {
    /// A clock showing `unix_ms`.
    pub fn at(unix_ms: i64) -> Arc<ManualClock> {
        Arc::new(ManualClock {
            now_ms: AtomicI64::new(unix_ms),
        })
    }

    /// A clock showing the present moment, then standing still.
    pub fn starting_now() -> Arc<ManualClock> {
        ManualClock::at(SystemClock.now_ms())
    }

    pub fn advance(&self, by: Duration) {
        self.now_ms
            .fetch_add(by.as_millis() as i64, Ordering::SeqCst);
    }

    pub fn set_ms(&self, unix_ms: i64) {
        self.now_ms.store(unix_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.now_ms.load(Ordering::SeqCst)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_clock_moves_only_when_told() {
        let clock = ManualClock::at(1_000_500);
        assert_eq!(clock.now_unix(), 1_000);
        clock.advance(Duration::from_millis(600));
        assert_eq!(clock.now_ms(), 1_001_100);
        assert_eq!(clock.now_unix(), 1_001);
    }

    #[test]
    fn the_system_clock_is_after_2026() {
        assert!(SystemClock.now_unix() > 1_767_225_600);
    }
}
