//! Pull recording off the pull path: manifest pulls are collapsed in memory as they come
//! (identical pulls are one entry with a count; a lock held for a lookup, never across an
//! await) and written to the database in batches.

use super::Hub;
use crate::error::Result;
use crate::ports::PullEvent;
use berth_oci::{Digest, RepoName};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Distinct pulls (repository, manifest, tag) held between flushes; beyond this (the
/// database is far behind or down) new ones are dropped and counted rather than growing
/// memory without bound. Repeats of a held pull only raise its count: memory follows what
/// is pulled, not how often (a queue of every GET held 23 MiB after 5 s at 20,000 GET/s).
pub const MAX_PENDING_PULLS: usize = 100_000;

type PullKey = (RepoName, Digest, Option<String>);

/// How many identical pulls are held, and the latest one's time.
#[derive(Debug, Clone, Copy)]
struct Held {
    pulls: u64,
    last_at: i64,
}

#[derive(Debug, Default)]
pub(super) struct PullRecorder {
    pending: Mutex<HashMap<PullKey, Held>>,
    dropped: AtomicU64,
}

impl PullRecorder {
    /// The pulls held, even if a thread panicked while holding them: the map stays usable.
    fn pending(&self) -> MutexGuard<'_, HashMap<PullKey, Held>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds `event` to what is held; false when it is new and there is no room for it.
    fn hold(pending: &mut HashMap<PullKey, Held>, event: PullEvent) -> bool {
        let key = (event.repo, event.digest, event.tag);
        if let Some(held) = pending.get_mut(&key) {
            held.pulls += event.pulls;
            held.last_at = held.last_at.max(event.at);
            return true;
        }
        if pending.len() >= MAX_PENDING_PULLS {
            return false;
        }
        let held = Held {
            pulls: event.pulls,
            last_at: event.at,
        };
        pending.insert(key, held);
        true
    }

    fn record(&self, event: PullEvent) {
        let pulls = event.pulls;
        if Self::hold(&mut self.pending(), event) {
            return;
        }
        if self.dropped.fetch_add(pulls, Ordering::Relaxed) == 0 {
            tracing::warn!(
                limit = MAX_PENDING_PULLS,
                "pull queue is full: pulls are not being counted until it is written"
            );
        }
    }

    fn take(&self) -> Vec<PullEvent> {
        std::mem::take(&mut *self.pending())
            .into_iter()
            .map(|((repo, digest, tag), held)| PullEvent {
                repo,
                tag,
                digest,
                at: held.last_at,
                pulls: held.pulls,
            })
            .collect()
    }

    /// Puts a batch that could not be written back with the pulls held since, as far as
    /// the bound allows.
    fn restore(&self, batch: Vec<PullEvent>) {
        let mut pending = self.pending();
        let lost: u64 = batch
            .into_iter()
            .filter_map(|event| {
                let pulls = event.pulls;
                (!Self::hold(&mut pending, event)).then_some(pulls)
            })
            .sum();
        drop(pending);
        self.dropped.fetch_add(lost, Ordering::Relaxed);
    }
}

impl Hub {
    /// Records one manifest pull (a GET that succeeded; HEAD requests are not pulls, so the
    /// HTTP layer does not call this for them). Cheap, and never waits for the database.
    pub fn record_pull(&self, event: PullEvent) {
        self.pulls.record(event);
    }

    /// Writes the pulls recorded so far in one transaction and returns how many; the server
    /// calls it every few seconds and at shutdown. On failure the pulls stay queued for the
    /// next flush.
    pub async fn flush_pulls(&self) -> Result<usize> {
        let dropped = self.pulls.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "pulls were dropped uncounted while the queue was full"
            );
        }
        let batch = self.pulls.take();
        if batch.is_empty() {
            return Ok(0);
        }
        let pulls = batch.iter().map(|event| event.pulls as usize).sum();
        match self.store.record_pulls(&batch).await {
            Ok(()) => Ok(pulls),
            Err(err) => {
                self.pulls.restore(batch);
                Err(err.into())
            }
        }
    }

    /// Pulls waiting to be written.
    pub fn pending_pulls(&self) -> usize {
        self.pulls
            .pending()
            .values()
            .map(|held| held.pulls as usize)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pull(n: u8) -> PullEvent {
        PullEvent {
            repo: "a/b".parse().unwrap(),
            tag: None,
            digest: Digest::sha256_of(&[n]),
            at: i64::from(n),
            pulls: 1,
        }
    }

    fn held(recorder: &PullRecorder) -> Vec<(u8, u64, i64)> {
        let mut held: Vec<(u8, u64, i64)> = recorder
            .take()
            .into_iter()
            .map(|p| {
                let n = (0..=u8::MAX)
                    .find(|n| Digest::sha256_of(&[*n]) == p.digest)
                    .unwrap();
                (n, p.pulls, p.at)
            })
            .collect();
        held.sort();
        held
    }

    #[test]
    fn repeats_are_counted_in_one_entry_whatever_their_number() {
        let recorder = PullRecorder::default();
        for _ in 0..MAX_PENDING_PULLS + 3 {
            recorder.record(pull(1));
        }
        recorder.record(PullEvent { at: 9, ..pull(1) });
        recorder.record(pull(2));
        assert_eq!(recorder.pending().len(), 2, "two distinct pulls held");
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 0);
        let total = MAX_PENDING_PULLS as u64 + 4;
        assert_eq!(held(&recorder), [(1, total, 9), (2, 1, 2)]);
        assert!(recorder.take().is_empty());
    }

    #[test]
    fn distinct_pulls_are_bounded_and_what_is_dropped_is_counted() {
        let recorder = PullRecorder::default();
        let repo = |i: usize| format!("a/r{i}").parse::<RepoName>().unwrap();
        for i in 0..MAX_PENDING_PULLS + 3 {
            recorder.record(PullEvent {
                repo: repo(i),
                ..pull(1)
            });
        }
        assert_eq!(recorder.pending().len(), MAX_PENDING_PULLS);
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 3);
        // A repeat of a held pull still counts.
        recorder.record(PullEvent {
            repo: repo(0),
            ..pull(1)
        });
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(recorder.take().len(), MAX_PENDING_PULLS);
    }

    #[test]
    fn a_failed_batch_goes_back_with_the_pulls_held_since() {
        let recorder = PullRecorder::default();
        recorder.record(pull(1));
        recorder.record(pull(2));
        let batch = recorder.take();
        recorder.record(pull(2));
        recorder.record(pull(3));
        recorder.restore(batch);
        assert_eq!(held(&recorder), [(1, 1, 1), (2, 2, 2), (3, 1, 3)]);
    }
}
