//! When a failed job is tried again: exponential backoff with jitter, as a pure function.

use std::time::Duration;

/// Delays that grow by `factor` from `first` up to `max`, each spread by ±`jitter`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub first: Duration,
    pub factor: f64,
    pub max: Duration,
    /// Fraction of the delay by which it is spread either way (0.2: ±20 %), so jobs that
    /// failed together do not come back together.
    pub jitter: f64,
}

impl Backoff {
    /// For background work in general: 5 s, doubling, at most an hour apart.
    pub const STANDARD: Backoff = Backoff {
        first: Duration::from_secs(5),
        factor: 2.0,
        max: Duration::from_secs(3600),
        jitter: 0.2,
    };

    /// The delay before attempt `failed + 1`, after `failed` failed attempts (from 1);
    /// `random` is uniform in [0, 1).
    pub fn delay(&self, failed: u32, random: f64) -> Duration {
        let exponent = failed.saturating_sub(1).min(64) as i32;
        let base =
            (self.first.as_secs_f64() * self.factor.powi(exponent)).min(self.max.as_secs_f64());
        let spread = 1.0 + self.jitter * (2.0 * random.clamp(0.0, 1.0) - 1.0);
        Duration::from_secs_f64((base * spread).max(0.0))
    }

    /// The shortest time `attempts` attempts can span (every delay at its lowest).
    pub fn shortest_span(&self, attempts: u32) -> Duration {
        (1..attempts).map(|failed| self.delay(failed, 0.0)).sum()
    }
}

/// A uniform number in [0, 1) from the system's randomness.
pub fn random_unit() -> f64 {
    let mut bytes = [0u8; 8];
    if getrandom::getrandom(&mut bytes).is_err() {
        return 0.5;
    }
    (u64::from_le_bytes(bytes) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_exponentially_up_to_the_cap() {
        let b = Backoff::STANDARD;
        assert_eq!(b.delay(1, 0.5), Duration::from_secs(5));
        assert_eq!(b.delay(2, 0.5), Duration::from_secs(10));
        assert_eq!(b.delay(4, 0.5), Duration::from_secs(40));
        assert_eq!(b.delay(30, 0.5), Duration::from_secs(3600));
        assert_eq!(b.delay(u32::MAX, 0.5), Duration::from_secs(3600));
    }

    #[test]
    fn jitter_spreads_each_delay_within_its_bounds() {
        let b = Backoff::STANDARD;
        assert_eq!(b.delay(3, 0.0), Duration::from_secs(16));
        assert_eq!(b.delay(3, 0.999_999_999).as_secs(), 23);
        for _ in 0..1000 {
            let d = b.delay(3, random_unit());
            assert!(
                d >= Duration::from_secs(16) && d <= Duration::from_secs(24),
                "{d:?}"
            );
        }
    }
}
