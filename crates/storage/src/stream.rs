//! Streaming file reads on a blocking thread, so the async runtime never waits on disk.

use berth_core::ports::{ByteStream, StoreError};
use bytes::Bytes;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
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

/// Wraps an io error, mapping "not found" to the port's `NotFound`.
pub fn io_error(e: io::Error) -> StoreError {
    if e.kind() == io::ErrorKind::NotFound {
        StoreError::NotFound
    } else {
        StoreError::Io(e)
    }
}
