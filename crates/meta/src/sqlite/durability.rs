//! Group commit: with the writer at `synchronous=NORMAL`, a commit reaches the WAL file but
//! is not flushed; [`WalSync::sync`] flushes it, and callers that arrive while a flush is
//! under way share the next one, so one `fdatasync` makes a whole batch of commits durable
//! instead of one per commit (each costs milliseconds, and the single writer waited for it).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug)]
pub(super) struct WalSync {
    wal: PathBuf,
    /// Tickets handed out: one per caller, taken after its commits returned.
    requested: AtomicU64,
    /// Every ticket up to this one is durable.
    synced: AtomicU64,
    /// Flushes done, for tests and metrics.
    flushes: AtomicU64,
    turn: tokio::sync::Mutex<()>,
}

impl WalSync {
    pub(super) fn new(database: &std::path::Path) -> WalSync {
        let mut wal = database.as_os_str().to_owned();
        wal.push("-wal");
        WalSync {
            wal: PathBuf::from(wal),
            requested: AtomicU64::new(0),
            synced: AtomicU64::new(0),
            flushes: AtomicU64::new(0),
            turn: tokio::sync::Mutex::new(()),
        }
    }

    /// Returns once every commit that returned before this call is on stable storage.
    pub(super) async fn sync(&self) -> std::io::Result<()> {
        let ticket = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        let _turn = self.turn.lock().await;
        if self.synced.load(Ordering::SeqCst) >= ticket {
            // A flush that began after our commits covered them.
            return Ok(());
        }
        // Every ticket handed out so far belongs to commits written before this flush.
        let covered = self.requested.load(Ordering::SeqCst);
        let wal = self.wal.clone();
        tokio::task::spawn_blocking(move || match std::fs::File::open(&wal) {
            Ok(file) => file.sync_data(),
            // No WAL (nothing written yet, or checkpointed away at close): the database file
            // itself was synced when its pages were written back.
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err),
        })
        .await
        .map_err(std::io::Error::other)??;
        self.flushes.fetch_add(1, Ordering::Relaxed);
        self.synced.store(covered, Ordering::SeqCst);
        Ok(())
    }

    pub(super) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::Relaxed)
    }
}
