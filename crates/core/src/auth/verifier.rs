//! Running argon2id password checks: bounded in flight and in queue, a lane kept free for
//! sign-ins from addresses the account trusts, and unknown names answered in about the
//! same time as known ones without doing the work.

use crate::identity::verify_password;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Semaphore;

/// Ordinary checks that may wait for a turn; past this a sign-in is answered "too many
/// requests" at once instead of waiting seconds behind a flood.
const MAX_WAITING: usize = 128;

/// Which checks a sign-in may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Lane {
    /// From an address the account signed in from lately.
    Trusted,
    Ordinary,
}

/// The queue is full: try again in a moment.
#[derive(Debug)]
pub(super) struct Busy;

pub(super) struct PasswordChecks {
    /// Every check holds one of these (each holds 7 MiB, see `identity::passwords`, and a core for tens of ms).
    all: Semaphore,
    /// Ordinary checks also hold one of these. There is one fewer than `all`, so however
    /// many ordinary sign-ins flood in, a trusted sign-in finds a check free.
    ordinary: Semaphore,
    ordinary_slots: usize,
    /// Ordinary checks waiting for their turn.
    waiting: AtomicUsize,
    /// What one check has cost lately, in microseconds (a moving average; 0 until measured).
    cost_micros: AtomicU64,
}

/// Counts a waiter for as long as it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl PasswordChecks {
    /// `parallel` ordinary checks at once (the cores), plus one kept for trusted sign-ins.
    pub(super) fn new(parallel: usize) -> Self {
        let parallel = parallel.max(1);
        PasswordChecks {
            all: Semaphore::new(parallel + 1),
            ordinary: Semaphore::new(parallel),
            ordinary_slots: parallel,
            waiting: AtomicUsize::new(0),
            cost_micros: AtomicU64::new(0),
        }
    }

    /// Whether `password` matches `hash`, checked off the async workers when its turn comes.
    pub(super) async fn verify(
        &self,
        password: &str,
        hash: &str,
        lane: Lane,
    ) -> Result<bool, Busy> {
        let _ordinary = match lane {
            Lane::Trusted => None,
            Lane::Ordinary => {
                let _waiting = self.wait()?;
                Some(self.ordinary.acquire().await.map_err(|_| Busy)?)
            }
        };
        let _permit = self.all.acquire().await.map_err(|_| Busy)?;
        let (password, hash) = (password.to_owned(), hash.to_owned());
        let started = Instant::now();
        let matches = tokio::task::spawn_blocking(move || verify_password(&password, &hash))
            .await
            .unwrap_or(false);
        self.remember_cost(started.elapsed());
        Ok(matches)
    }

    /// Takes as long as an ordinary check would now (its cost, and the queue ahead of it)
    /// without using a core: for names that are no account, so that a flood of made-up
    /// names cannot crowd real sign-ins out, while an observer still cannot tell the names
    /// apart by the time the answer takes. Until a check has been measured, `decoy` is
    /// really checked.
    pub(super) async fn imitate(&self, password: &str, decoy: &str) -> Result<(), Busy> {
        let cost = self.cost_micros.load(Ordering::Relaxed);
        if cost == 0 {
            return self.verify(password, decoy, Lane::Ordinary).await.map(drop);
        }
        let waiting = self.wait()?;
        let others_waiting = waiting.0.load(Ordering::Relaxed).saturating_sub(1);
        drop(waiting);
        let checking = self.ordinary_slots - self.ordinary.available_permits();
        let ahead = (others_waiting + checking) / self.ordinary_slots;
        let turns = u64::try_from(ahead).unwrap_or(u64::MAX).saturating_add(1);
        tokio::time::sleep(Duration::from_micros(cost.saturating_mul(turns))).await;
        Ok(())
    }

    fn wait(&self) -> Result<Waiting<'_>, Busy> {
        let before = self.waiting.fetch_add(1, Ordering::Relaxed);
        let waiting = Waiting(&self.waiting);
        if before >= MAX_WAITING {
            return Err(Busy);
        }
        Ok(waiting)
    }

    fn remember_cost(&self, took: Duration) {
        let sample = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
        // A lost race between two updates loses one sample, which an average can afford.
        let old = self.cost_micros.load(Ordering::Relaxed);
        let new = match old {
            0 => sample,
            old => old - old / 8 + sample / 8,
        };
        self.cost_micros.store(new.max(1), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::hash_password;
    use std::sync::Arc;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_trusted_check_is_not_queued_behind_ordinary_ones() {
        let checks = Arc::new(PasswordChecks::new(1));
        let hash = Arc::new(hash_password("right").unwrap());
        let finished = Arc::new(AtomicUsize::new(0));
        let ordinary: Vec<_> = (0..6)
            .map(|_| {
                let (checks, hash, finished) = (checks.clone(), hash.clone(), finished.clone());
                tokio::spawn(async move {
                    let matches = checks.verify("wrong", &hash, Lane::Ordinary).await;
                    finished.fetch_add(1, Ordering::SeqCst);
                    matches
                })
            })
            .collect();
        // Let the ordinary checks take their lane and queue behind it.
        while checks.ordinary.available_permits() > 0 {
            tokio::task::yield_now().await;
        }
        assert!(checks.verify("right", &hash, Lane::Trusted).await.unwrap());
        let finished_before = finished.load(Ordering::SeqCst);
        for check in ordinary {
            assert!(!check.await.unwrap().unwrap());
        }
        assert!(
            finished_before <= 2,
            "{finished_before} of 6 ordinary checks went first"
        );
    }

    #[tokio::test]
    async fn imitating_takes_about_as_long_as_a_check() {
        let checks = PasswordChecks::new(2);
        let hash = hash_password("right").unwrap();
        checks.imitate("x", &hash).await.unwrap();
        let started = Instant::now();
        checks.verify("wrong", &hash, Lane::Ordinary).await.unwrap();
        let real = started.elapsed();
        let started = Instant::now();
        checks.imitate("x", &hash).await.unwrap();
        let imitated = started.elapsed();
        assert!(
            imitated * 4 > real && imitated < real * 4,
            "real {real:?}, imitated {imitated:?}"
        );
    }
}
