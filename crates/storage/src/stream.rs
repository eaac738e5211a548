//! Streaming file reads and writes on a blocking thread, so the async runtime never waits on disk.

use berth_core::ports::{ByteStream, StoreError};
use bytes::Bytes;
use futures_util::StreamExt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use tokio::sync::mpsc;

/// Chunk size of reads; large enough that per-chunk overhead vanishes, small enough to stay constant.
const READ_CHUNK: usize = 1 << 20;
/// Blobs at least this large are memory mapped for reading.
const MAP_AT_LEAST: u64 = 1 << 20;
/// Size of each mapping handed to the network.
const MAP_CHUNK: u64 = 2 << 20;
/// Mapped chunks queued ahead of the network.
const MAP_DEPTH: usize = 2;
/// Chunks buffered between the disk thread and the network.
const CHANNEL_DEPTH: usize = 4;
/// Appends at least this long get their disk space reserved before writing.
const PREALLOCATE_AT_LEAST: u64 = 8 << 20;
/// Most request-body frames gathered into one write.
const BATCH_FRAMES: usize = 64;
/// Flush to disk every this many bytes while writing: keeps write-back flowing so the
/// final fsync before acknowledging a blob is short.
const SYNC_EVERY: u64 = 64 << 20;

/// Streams `len` bytes of an immutable blob file from `start`. Large ranges are memory
/// mapped chunk by chunk and sent without copying them through user space; small ones
/// are read.
pub fn read_blob_file(file: File, start: u64, len: u64) -> ByteStream {
    if len < MAP_AT_LEAST {
        return read_file(file, start, len);
    }
    let end = start + len;
    let mut at = start;
    stream_from_blocking(MAP_DEPTH, move || {
        if at >= end {
            return Ok(None);
        }
        let chunk_len = (end - at).min(MAP_CHUNK);
        let chunk = map_chunk(&file, at, chunk_len)?;
        at += chunk_len;
        Ok(Some(chunk))
    })
}

/// Runs `next` on a blocking thread until it yields `None` or an error, handing each chunk
/// to the returned stream through a channel of `depth` chunks; stops early when the reader
/// goes away.
fn stream_from_blocking(
    depth: usize,
    mut next: impl FnMut() -> io::Result<Option<Bytes>> + Send + 'static,
) -> ByteStream {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(depth);
    tokio::task::spawn_blocking(move || loop {
        match next() {
            Ok(None) => return,
            Ok(Some(chunk)) => {
                if tx.blocking_send(Ok(chunk)).is_err() {
                    return; // the reader went away
                }
            }
            Err(e) => {
                let _ = tx.blocking_send(Err(e));
                return;
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Maps `len` bytes of `file` from `start` and faults them in here, on a blocking thread,
/// so that a cold blob's disk reads never stall the async runtime. Each chunk is its own
/// mapping, unmapped when the network is done with it: resident memory stays constant.
#[allow(unsafe_code)]
fn map_chunk(file: &File, start: u64, len: u64) -> io::Result<Bytes> {
    let len = usize::try_from(len).map_err(io::Error::other)?;
    // SAFETY: mappings are only ever made of committed blob files, which are immutable:
    // written once as an upload, fsynced, renamed into their content-addressed place and
    // never written or truncated again. Deleting one unlinks it, which leaves existing
    // mappings valid. Nothing in Berth writes through or aliases this read-only mapping.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(start)
            .len(len)
            .map(file)?
    };
    let mut touched = 0u8;
    for page in map.iter().step_by(4096) {
        touched ^= *page;
    }
    std::hint::black_box(touched);
    Ok(Bytes::from_owner(map))
}

/// Streams `len` bytes of `file` from `start` by reading it.
pub fn read_file(mut file: File, start: u64, len: u64) -> ByteStream {
    let mut positioned = false;
    let mut remaining = len;
    stream_from_blocking(CHANNEL_DEPTH, move || {
        if !positioned {
            file.seek(SeekFrom::Start(start))?;
            positioned = true;
        }
        if remaining == 0 {
            return Ok(None);
        }
        let want = remaining.min(READ_CHUNK as u64);
        // Read into spare capacity: no zero-filling of a buffer about to be overwritten.
        let mut buf = Vec::with_capacity(want as usize);
        if (&mut file).take(want).read_to_end(&mut buf)? as u64 != want {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than expected",
            ));
        }
        remaining -= want;
        Ok(Some(Bytes::from(buf)))
    })
}

/// Flushes a file to disk on its own thread when asked, so writing never waits for the
/// disk: the final fsync before a blob is acknowledged then has little left to do.
/// Dropping it lets a running flush complete on its own; the commit's fsync covers the rest.
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

/// Writes every buffer of a batch with as few system calls as the kernel allows.
fn write_batch(file: &mut File, batch: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<io::IoSlice<'_>> = batch.iter().map(|b| io::IoSlice::new(b)).collect();
    let mut slices = &mut slices[..];
    while !slices.is_empty() {
        match file.write_vectored(slices) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => io::IoSlice::advance_slices(&mut slices, n),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Appends `data` to `file` at `offset`, all or nothing: on failure or a length other than
/// `expected_len`, the file is cut back to `offset`. Returns the bytes appended.
pub async fn append_file(
    file: File,
    offset: u64,
    data: ByteStream,
    expected_len: Option<u64>,
) -> Result<u64, StoreError> {
    // Frames that arrived together travel as one batch: one wake-up and one write each.
    let mut data = data.ready_chunks(BATCH_FRAMES);
    let (tx, mut rx) = mpsc::channel::<Vec<Bytes>>(CHANNEL_DEPTH);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<(File, u64)> {
        let mut file = file;
        file.set_len(offset)?; // drops bytes of an append that crashed before its rollback
        file.seek(SeekFrom::Start(offset))?;
        if let Some(len) = expected_len.filter(|len| *len >= PREALLOCATE_AT_LEAST) {
            // Reserving the blocks up front spares the filesystem allocating them page by
            // page; unsupported filesystems just skip it. A rollback's truncate frees them.
            let _ =
                rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::KEEP_SIZE, offset, len);
        }
        let mut sync: Option<BackgroundSync> = None;
        let mut written = 0u64;
        // Counted from the file's start, so chunked uploads made of many small appends
        // are flushed as they go too, not all at the final fsync.
        let mut since_sync = offset % SYNC_EVERY;
        let result = (|| {
            while let Some(batch) = rx.blocking_recv() {
                write_batch(&mut file, &batch)?;
                let len: u64 = batch.iter().map(|b| b.len() as u64).sum();
                written += len;
                since_sync += len;
                if since_sync >= SYNC_EVERY {
                    if sync.is_none() {
                        sync = Some(BackgroundSync::start(&file)?);
                    }
                    if let Some(sync) = &sync {
                        sync.request();
                    }
                    since_sync = 0;
                }
            }
            Ok(())
        })();
        drop(sync);
        result.map(|()| (file, written))
    });

    let mut source_error = None;
    let mut received = 0u64;
    'receive: while let Some(items) = data.next().await {
        let mut batch = Vec::with_capacity(items.len());
        for item in items {
            match item {
                Ok(chunk) => {
                    received += chunk.len() as u64;
                    if expected_len.is_some_and(|max| received > max) {
                        break 'receive;
                    }
                    batch.push(chunk);
                }
                Err(e) => {
                    source_error = Some(e);
                    break 'receive;
                }
            }
        }
        if tx.send(batch).await.is_err() {
            break; // the writer failed; its error is reported below
        }
    }
    drop(tx);
    let joined = writer
        .await
        .map_err(|e| StoreError::Io(io::Error::other(e.to_string())))?;
    let rollback = |file: &File| {
        if let Err(e) = file.set_len(offset) {
            tracing::error!(error = %e, "could not roll back a failed append");
        }
    };
    let (file, written) = match joined {
        Ok(done) => done,
        Err(e) => return Err(StoreError::Io(e)),
    };
    if let Some(e) = source_error {
        rollback(&file);
        return Err(StoreError::Source(e));
    }
    if let Some(expected) = expected_len {
        if received != expected {
            rollback(&file);
            return Err(StoreError::LengthMismatch {
                expected,
                actual: received,
            });
        }
    }
    if written != received {
        rollback(&file);
        return Err(StoreError::Io(io::Error::other("short write")));
    }
    Ok(written)
}

/// Wraps an io error, mapping "not found" to the port's `NotFound`.
pub fn io_error(e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::NotFound
    } else {
        StoreError::Io(e)
    }
}
