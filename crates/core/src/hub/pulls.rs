//! Pull recording off the pull path: manifest pulls are queued in memory (a lock held for a
//! push, never across an await) and written to the database in batches.

use super::Hub;
use crate::error::Result;
use crate::ports::PullEvent;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// Pulls held between flushes; beyond this (the database is far behind or down) new pulls
/// are dropped and counted rather than growing memory without bound.
pub const MAX_PENDING_PULLS: usize = 100_000;

#[derive(Debug, Default)]
pub(super) struct PullRecorder {
    pending: Mutex<Vec<PullEvent>>,
    dropped: AtomicU64,
}

impl PullRecorder {
    /// The queue, even if a thread panicked while holding it: a pull list stays usable.
    fn pending(&self) -> MutexGuard<'_, Vec<PullEvent>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn record(&self, event: PullEvent) {
        let mut pending = self.pending();
        if pending.len() < MAX_PENDING_PULLS {
            pending.push(event);
            return;
        }
        drop(pending);
        if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                limit = MAX_PENDING_PULLS,
                "pull queue is full: pulls are not being counted until it is written"
            );
        }
    }

    fn take(&self) -> Vec<PullEvent> {
        std::mem::take(&mut *self.pending())
    }

    /// Puts a batch that could not be written back ahead of the pulls queued since, as far
    /// as the bound allows.
    fn restore(&self, mut batch: Vec<PullEvent>) {
        let mut pending = self.pending();
        let room = MAX_PENDING_PULLS.saturating_sub(pending.len());
        let lost = batch.len().saturating_sub(room);
        batch.truncate(room);
        batch.append(&mut pending);
        *pending = batch;
        drop(pending);
        self.dropped.fetch_add(lost as u64, Ordering::Relaxed);
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
        match self.store.record_pulls(&batch).await {
            Ok(()) => Ok(batch.len()),
            Err(err) => {
                self.pulls.restore(batch);
                Err(err.into())
            }
        }
    }

    /// Pulls waiting to be written.
    pub fn pending_pulls(&self) -> usize {
        self.pulls.pending().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_oci::Digest;

    fn pull(n: u8) -> PullEvent {
        PullEvent {
            repo: "a/b".parse().unwrap(),
            tag: None,
            digest: Digest::sha256_of(&[n]),
            at: i64::from(n),
        }
    }

    #[test]
    fn the_queue_is_bounded_and_counts_what_it_drops() {
        let recorder = PullRecorder::default();
        for _ in 0..MAX_PENDING_PULLS + 3 {
            recorder.record(pull(1));
        }
        assert_eq!(recorder.pending().len(), MAX_PENDING_PULLS);
        assert_eq!(recorder.dropped.load(Ordering::Relaxed), 3);
        assert_eq!(recorder.take().len(), MAX_PENDING_PULLS);
        assert!(recorder.take().is_empty());
    }

    #[test]
    fn a_failed_batch_goes_back_ahead_of_newer_pulls() {
        let recorder = PullRecorder::default();
        recorder.record(pull(1));
        recorder.record(pull(2));
        let batch = recorder.take();
        recorder.record(pull(3));
        recorder.restore(batch);
        let order: Vec<i64> = recorder.take().iter().map(|p| p.at).collect();
        assert_eq!(order, [1, 2, 3]);
    }
}
