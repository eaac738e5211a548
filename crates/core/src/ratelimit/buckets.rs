//! The per-node counters: one GCRA (generic cell rate algorithm) state per allowance, in
//! memory, bounded, with what this node spent since it last told the other nodes.
//!
//! GCRA keeps one number per allowance, the theoretical arrival time (`tat`): each pull
//! moves it on by `window / pulls`, and a pull is allowed while `tat` stays within one
//! window of now. So a full allowance can be spent at once, and it comes back one pull per
//! `window / pulls` (not all at once at the end of a fixed window). An allowance whose `tat`
//! is in the past is full, which is what lets entries be forgotten freely.

use super::rate::Rate;
use berth_oci::Digest;
use std::collections::HashMap;
use std::sync::Mutex;

/// How many allowances a node tracks before it forgets some (about 100 bytes each).
pub const DEFAULT_CAPACITY: usize = 100_000;

/// Index children remembered per allowance (an index rarely has more platforms).
const MAX_FREE_CHILDREN: usize = 64;

/// What one allowance has left, for the headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub remaining: u32,
}

/// The outcome of a counted pull.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed; `charged` is false for a manifest already paid for through its index.
    Allowed { remaining: u32, charged: bool },
    /// Over the limit: the next pull is allowed in `retry_after_us`, and the whole
    /// allowance is back at `full_at_us` (microseconds since the epoch).
    Refused {
        retry_after_us: i64,
        full_at_us: i64,
    },
}

#[derive(Debug, Default)]
struct Entry {
    tat_us: i64,
    /// Manifests pulled through an index this allowance paid for, free until the instant
    /// given.
    free_children: Vec<(Digest, i64)>,
}

impl Entry {
    fn forgettable(&self, now_us: i64) -> bool {
        self.tat_us <= now_us && self.free_children.iter().all(|(_, until)| *until <= now_us)
    }
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    /// Microseconds of `tat` this node added per allowance since the last exchange.
    spent: HashMap<String, i64>,
}

/// The counters of one node.
#[derive(Debug)]
pub struct Buckets {
    inner: Mutex<Inner>,
    capacity: usize,
}

impl Default for Buckets {
    fn default() -> Self {
        Buckets::with_capacity(DEFAULT_CAPACITY)
    }
}

fn remaining(rate: &Rate, tat_us: i64, now_us: i64) -> u32 {
    let used = (tat_us - now_us).max(0);
    let left = (rate.window_us() - used).max(0) / rate.interval_us();
    u32::try_from(left).unwrap_or(u32::MAX).min(rate.pulls)
}

impl Buckets {
    pub fn with_capacity(capacity: usize) -> Buckets {
        Buckets {
            inner: Mutex::new(Inner::default()),
            capacity: capacity.max(1),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves counters, not invariants: carry on.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How many allowances are tracked.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// What `key` has left, without spending anything (a `HEAD`).
    pub fn peek(&self, key: &str, rate: &Rate, now_us: i64) -> Quota {
        let inner = self.lock();
        let tat = inner.entries.get(key).map_or(now_us, |e| e.tat_us);
        Quota {
            remaining: remaining(rate, tat, now_us),
        }
    }

    /// Spends one pull of `key` on `digest`, unless an index this allowance paid for lately
    /// lists it.
    pub fn take(&self, key: &str, rate: &Rate, now_us: i64, digest: &Digest) -> Verdict {
        let mut guard = self.lock();
        let inner = &mut *guard;
        if !inner.entries.contains_key(key) {
            self.make_room(inner, now_us);
            inner.entries.insert(key.to_owned(), Entry::default());
        }
        // Looked up by `&str`: a pull allocates nothing for an allowance already tracked.
        let Some(entry) = inner.entries.get_mut(key) else {
            return Verdict::Allowed {
                remaining: rate.pulls,
                charged: false,
            };
        };
        if !entry.free_children.is_empty() {
            entry.free_children.retain(|(_, until)| *until > now_us);
            if entry.free_children.iter().any(|(d, _)| d == digest) {
                return Verdict::Allowed {
                    remaining: remaining(rate, entry.tat_us, now_us),
                    charged: false,
                };
            }
        }
        let start = entry.tat_us.max(now_us);
        let next = start + rate.interval_us();
        if next - now_us > rate.window_us() {
            return Verdict::Refused {
                retry_after_us: next - now_us - rate.window_us(),
                full_at_us: start,
            };
        }
        entry.tat_us = next;
        let advance = next - start;
        match inner.spent.get_mut(key) {
            Some(spent) => *spent += advance,
            None => {
                inner.spent.insert(key.to_owned(), advance);
            }
        }
        Verdict::Allowed {
            remaining: remaining(rate, next, now_us),
            charged: true,
        }
    }

    /// Makes the manifests an index lists free for `key` until `until_us`.
    pub fn free_children(&self, key: &str, children: &[Digest], until_us: i64) {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(key) else {
            return;
        };
        for child in children.iter().take(MAX_FREE_CHILDREN) {
            match entry.free_children.iter_mut().find(|(d, _)| d == child) {
                Some(found) => found.1 = until_us,
                None => entry.free_children.push((child.clone(), until_us)),
            }
        }
        if entry.free_children.len() > MAX_FREE_CHILDREN {
            let excess = entry.free_children.len() - MAX_FREE_CHILDREN;
            entry.free_children.drain(..excess);
        }
    }

    /// Before a new allowance is added at capacity: forget the full ones (nothing is lost),
    /// and if that is not enough, the tenth closest to full (they get their allowance back
    /// early: memory stays bounded whatever the number of clients).
    fn make_room(&self, inner: &mut Inner, now_us: i64) {
        if inner.entries.len() < self.capacity {
            return;
        }
        inner.entries.retain(|_, e| !e.forgettable(now_us));
        let target = self.capacity - self.capacity / 10 - 1;
        if inner.entries.len() > target {
            let mut tats: Vec<i64> = inner.entries.values().map(|e| e.tat_us).collect();
            let cut = inner.entries.len() - target;
            let (_, threshold, _) = tats.select_nth_unstable(cut - 1);
            let threshold = *threshold;
            let mut dropped = 0;
            inner.entries.retain(|_, e| {
                if dropped < cut && e.tat_us <= threshold {
                    dropped += 1;
                    false
                } else {
                    true
                }
            });
        }
        if inner.spent.len() >= self.capacity {
            // The database is far behind: these pulls stay counted here, not elsewhere.
            inner.spent.clear();
        }
    }

    /// What this node spent since the last call, per allowance (microseconds of `tat`),
    /// for the other nodes.
    pub fn drain_spent(&self) -> Vec<(String, i64)> {
        std::mem::take(&mut self.lock().spent).into_iter().collect()
    }

    /// Puts back spending an exchange could not hand on, for the next one.
    pub fn apply_unsent(&self, key: &str, advance_us: i64) {
        let mut inner = self.lock();
        if inner.spent.len() < self.capacity || inner.spent.contains_key(key) {
            *inner.spent.entry(key.to_owned()).or_default() += advance_us;
        }
    }

    /// Applies what another node (or this node before a restart) spent on `key` at `at_us`.
    pub fn apply_spent(&self, key: &str, at_us: i64, advance_us: i64, now_us: i64) {
        let mut inner = self.lock();
        if !inner.entries.contains_key(key) {
            if at_us + advance_us <= now_us {
                return; // long paid back: nothing to remember
            }
            self.make_room(&mut inner, now_us);
        }
        let entry = inner.entries.entry(key.to_owned()).or_default();
        entry.tat_us = entry.tat_us.max(at_us) + advance_us.max(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000;

    fn digest(n: u8) -> Digest {
        format!("sha256:{}", format!("{n:02x}").repeat(32))
            .parse()
            .unwrap()
    }

    fn rate(raw: &str) -> Rate {
        Rate::parse(raw).unwrap()
    }

    #[test]
    fn an_allowance_is_spent_then_comes_back_gradually() {
        let buckets = Buckets::default();
        let r = rate("3;w=60");
        let t0 = 1_000 * S;
        assert_eq!(buckets.peek("k", &r, t0).remaining, 3);
        for left in [2, 1, 0] {
            assert_eq!(
                buckets.take("k", &r, t0, &digest(1)),
                Verdict::Allowed {
                    remaining: left,
                    charged: true
                }
            );
        }
        match buckets.take("k", &r, t0, &digest(1)) {
            Verdict::Refused {
                retry_after_us,
                full_at_us,
            } => {
                assert_eq!(retry_after_us, 20 * S);
                assert_eq!(full_at_us, t0 + 60 * S);
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        // A refusal spends nothing; one pull comes back every window / pulls.
        assert_eq!(buckets.peek("k", &r, t0 + 20 * S).remaining, 1);
        assert_eq!(buckets.peek("k", &r, t0 + 60 * S).remaining, 3);
        assert!(matches!(
            buckets.take("k", &r, t0 + 20 * S, &digest(1)),
            Verdict::Allowed { remaining: 0, .. }
        ));
        // Other allowances are untouched.
        assert_eq!(buckets.peek("other", &r, t0).remaining, 3);
    }

    #[test]
    fn children_of_a_paid_index_are_free_for_a_while() {
        let buckets = Buckets::default();
        let r = rate("2;w=60");
        let t0 = 1_000 * S;
        assert!(matches!(
            buckets.take("k", &r, t0, &digest(1)),
            Verdict::Allowed { charged: true, .. }
        ));
        buckets.free_children("k", &[digest(2), digest(3)], t0 + 300 * S);
        for child in [2, 3, 2] {
            assert_eq!(
                buckets.take("k", &r, t0 + S, &digest(child)),
                Verdict::Allowed {
                    remaining: 1,
                    charged: false
                }
            );
        }
        // Other allowances pay for the same manifests, and the grace ends.
        assert!(matches!(
            buckets.take("other", &r, t0, &digest(2)),
            Verdict::Allowed { charged: true, .. }
        ));
        assert!(matches!(
            buckets.take("k", &r, t0 + 301 * S, &digest(2)),
            Verdict::Allowed { charged: true, .. }
        ));
    }

    #[test]
    fn memory_stays_bounded_under_many_clients() {
        let buckets = Buckets::with_capacity(1_000);
        let r = rate("1;w=3600");
        let t0 = 1_000 * S;
        for n in 0..50_000 {
            buckets.take(&format!("ip:{n}"), &r, t0 + n, &digest(1));
            assert!(buckets.len() <= 1_000);
        }
        // The most recent clients are still counted.
        assert!(matches!(
            buckets.take("ip:49999", &r, t0 + 50_000, &digest(1)),
            Verdict::Refused { .. }
        ));
        // Full allowances are forgotten first, losing nothing.
        let buckets = Buckets::with_capacity(10);
        buckets.take("busy", &rate("1;w=3600"), t0, &digest(1));
        for n in 0..100 {
            buckets.take(
                &format!("ip:{n}"),
                &rate("1000;w=1"),
                t0 + n * S,
                &digest(1),
            );
        }
        assert!(matches!(
            buckets.take("busy", &rate("1;w=3600"), t0 + 200 * S, &digest(1)),
            Verdict::Refused { .. }
        ));
    }

    #[test]
    fn spending_is_handed_on_and_applied_in_time() {
        let here = Buckets::default();
        let there = Buckets::default();
        let r = rate("4;w=40");
        let t0 = 1_000 * S;
        here.take("k", &r, t0, &digest(1));
        here.take("k", &r, t0, &digest(1));
        let spent = here.drain_spent();
        assert_eq!(spent, vec![("k".to_owned(), 20 * S)]);
        assert!(here.drain_spent().is_empty());
        for (key, advance) in &spent {
            there.apply_spent(key, t0, *advance, t0 + S);
        }
        assert_eq!(there.peek("k", &r, t0 + S).remaining, 2);
        // Spending long paid back is not even remembered.
        there.apply_spent("old", t0 - 100 * S, 10 * S, t0);
        assert_eq!(there.len(), 1);
    }
}
