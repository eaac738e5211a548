//! What both ways of appending share: the blocking writer thread, the length check while
//! receiving, and the background flushes that keep the fsync before a `201` short.

use berth_core::ports::StoreError;
use std::fs::File;
use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use tokio::task::JoinHandle;

/// What each way of appending returns: the bytes received (or why receiving stopped), and
/// the writer thread's outcome, which hands the file back for the rollback.
pub(super) type Outcome = (
    Result<u64, StoreError>,
    Result<io::Result<(File, u64)>, tokio::task::JoinError>,
);

/// Runs `write` on a blocking thread after positioning `file` at `offset`; hands the file
/// back with the bytes written. When writing fails, the file is cut back to `offset` here,
/// since it is not handed back: a full disk keeps nothing of the append, including space
/// reserved for it.
pub(super) fn spawn_writer(
    mut file: File,
    offset: u64,
    write: impl FnOnce(&mut File) -> io::Result<u64> + Send + 'static,
) -> JoinHandle<io::Result<(File, u64)>> {
    tokio::task::spawn_blocking(move || {
        file.set_len(offset)?; // drops bytes of an append that crashed before its rollback
        file.seek(SeekFrom::Start(offset))?;
        match write(&mut file) {
            Ok(written) => Ok((file, written)),
            Err(e) => {
                cut_back(&file, offset);
                Err(e)
            }
        }
    })
}

/// Rolls a failed append back: cuts `file` to `offset`, where the append began.
pub(super) fn cut_back(file: &File, offset: u64) {
    if let Err(e) = file.set_len(offset) {
        tracing::error!(error = %e, "could not roll back a failed append");
    }
}

/// Writes all of `slices` at the file's position with as few system calls as the kernel
/// allows. A write the kernel refuses as invalid goes to `refused`, which may change how the
/// file is written and answer `true` to try again; `false` gives the error back.
pub(crate) fn write_all_vectored(
    file: &mut File,
    slices: &mut [IoSlice<'_>],
    mut refused: impl FnMut(&File) -> io::Result<bool>,
) -> io::Result<()> {
    let mut slices = slices;
    while slices.iter().any(|slice| !slice.is_empty()) {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.kind() == io::ErrorKind::InvalidInput && refused(&*file)? => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Adds one received frame's length to `received`; `true` when that goes past
/// `expected_len`, where receiving stops (the caller reports the mismatch).
pub(super) fn past_expected(
    received: &mut u64,
    frame_len: usize,
    expected_len: Option<u64>,
) -> bool {
    *received += frame_len as u64;
    expected_len.is_some_and(|max| *received > max)
}

/// Flushes what an append wrote every `every` bytes, on a thread of its own, so writing
/// never waits for the disk and the final fsync before a blob is acknowledged has little
/// left to do.
pub(super) struct Flushes {
    every: u64,
    since_last: u64,
    background: Option<BackgroundSync>,
}

impl Flushes {
    pub(super) fn new(offset: u64, every: u64) -> Flushes {
        Flushes {
            every,
            // Counted from the file's start, so chunked uploads made of many small appends
            // are flushed as they go too, not all at the final fsync.
            since_last: offset % every,
            background: None,
        }
    }

    pub(super) fn wrote(&mut self, file: &File, len: u64) -> io::Result<()> {
        self.since_last += len;
        if self.since_last >= self.every {
            if self.background.is_none() {
                self.background = Some(BackgroundSync::start(file)?);
            }
            if let Some(background) = &self.background {
                background.request();
            }
            self.since_last = 0;
        }
        Ok(())
    }
}

/// A thread that flushes a file to disk when asked. Dropping it lets a running flush
/// complete on its own; the commit's fsync covers the rest.
struct BackgroundSync {
    requests: std::sync::mpsc::SyncSender<()>,
}

impl BackgroundSync {
    fn start(file: &File) -> io::Result<BackgroundSync> {
        let file = file.try_clone()?;
        // Depth 1: while a flush runs, one more may be queued; further requests are dropped.
        let (requests, pending) = std::sync::mpsc::sync_channel::<()>(1);
        std::thread::Builder::new()
            .name("berth-fsync".into())
            .spawn(move || {
                while pending.recv().is_ok() {
                    if let Err(e) = file.sync_data() {
                        tracing::debug!(error = %e, "background flush failed");
                    }
                }
            })?;
        Ok(BackgroundSync { requests })
    }

    fn request(&self) {
        let _ = self.requests.try_send(());
    }
}
