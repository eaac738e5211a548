//! A small bounded cache of verified credentials, keyed by a hash of the credential so the
//! secret itself is never kept.

use sha2::{Digest as _, Sha256};
use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

pub(crate) type Key = [u8; 32];

/// The cache key of a credential made of several parts (joined unambiguously).
pub(crate) fn key_of(parts: &[&str]) -> Key {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_le_bytes());
        hasher.update(part.as_bytes());
    }
    hasher.finalize().into()
}

pub(crate) struct TtlCache<V> {
    capacity: usize,
    entries: Mutex<HashMap<Key, (V, Instant)>>,
}

impl<V: Clone> TtlCache<V> {
    pub fn new(capacity: usize) -> Self {
        TtlCache {
            capacity,
            entries: Mutex::new(HashMap::new()),
        }
    }

    pub fn get(&self, key: &Key, now: Instant) -> Option<V> {
        let entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        entries
            .get(key)
            .filter(|(_, until)| now < *until)
            .map(|(value, _)| value.clone())
    }

    /// Like [`TtlCache::get`], and a live entry's life is extended to `now + ttl` when less
    /// than half of `ttl` is left: entries in use stay, idle ones expire.
    pub fn get_extending(&self, key: &Key, now: Instant, ttl: Duration) -> Option<V> {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        let (value, until) = entries.get_mut(key).filter(|(_, until)| now < *until)?;
        if *until < now + ttl / 2 {
            *until = now + ttl;
        }
        Some(value.clone())
    }

    pub fn insert(&self, key: Key, value: V, until: Instant, now: Instant) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity {
            entries.retain(|_, (_, expiry)| now < *expiry);
            if entries.len() >= self.capacity {
                // Still full of live entries: start over rather than track recency.
                entries.clear();
            }
        }
        entries.insert(key, (value, until));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_capacity_holds() {
        let cache = TtlCache::new(2);
        let now = Instant::now();
        let later = now + Duration::from_secs(10);
        cache.insert(key_of(&["a"]), 1, later, now);
        assert_eq!(cache.get(&key_of(&["a"]), now), Some(1));
        assert_eq!(cache.get(&key_of(&["a"]), later), None);
        cache.insert(key_of(&["b"]), 2, later, now);
        cache.insert(key_of(&["c"]), 3, later, now);
        assert!(cache.entries.lock().unwrap().len() <= 2);
        assert_eq!(cache.get(&key_of(&["c"]), now), Some(3));
        assert_ne!(key_of(&["ab", "c"]), key_of(&["a", "bc"]));
    }

    #[test]
    fn entries_in_use_are_extended_and_idle_ones_expire() {
        let cache = TtlCache::new(4);
        let ttl = Duration::from_secs(60);
        let start = Instant::now();
        cache.insert(key_of(&["a"]), 1, start + ttl, start);
        // Used every 20 s, it outlives its first minute many times over.
        for step in 1..=10 {
            let now = start + Duration::from_secs(20 * step);
            assert_eq!(
                cache.get_extending(&key_of(&["a"]), now, ttl),
                Some(1),
                "{step}"
            );
        }
        // Left alone for a minute, it is gone.
        let idle = start + Duration::from_secs(200 + 61);
        assert_eq!(cache.get_extending(&key_of(&["a"]), idle, ttl), None);
    }
}
