//! Streaming file reads and writes on a blocking thread, so the async runtime never waits on disk.

use berth_core::ports::{ByteStream, StoreError};
use bytes::Bytes;
use futures_util::StreamExt;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use tokio::sync::mpsc;

/// Chunk size of reads; large enough that per-chunk overhead vanishes, small enough to stay constant.
const READ_CHUNK: usize = 1 << 20;
/// Chunks buffered between the disk thread and the network.
const CHANNEL_DEPTH: usize = 4;
/// Largest write buffer of an append.
const WRITE_BUFFER: usize = 1 << 20;
/// Flush to disk every this many bytes while writing: keeps write-back flowing so the
/// final fsync before acknowledging a blob is short.
const SYNC_EVERY: u64 = 64 << 20;

/// Streams `len` bytes of `file` from `start`.
pub fn read_file(mut file: File, start: u64, len: u64) -> ByteStream {
    let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_DEPTH);
    tokio::task::spawn_blocking(move || {
        if let Err(e) = file.seek(SeekFrom::Start(start)) {
            let _ = tx.blocking_send(Err(e));
            return;
        }
        let mut remaining = len;
        while remaining > 0 {
            let want = remaining.min(READ_CHUNK as u64) as usize;
            let mut buf = vec![0u8; want];
            let mut filled = 0;
            while filled < want {
                match file.read(&mut buf[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                }
            }
            if filled < want {
                let _ = tx.blocking_send(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "file shorter than expected",
                )));
                return;
            }
            buf.truncate(filled);
            remaining -= filled as u64;
            if tx.blocking_send(Ok(Bytes::from(buf))).is_err() {
                return; // the reader went away
            }
        }
    });
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    }))
}

/// Appends `data` to `file` at `offset`, all or nothing: on failure or a length other than
/// `expected_len`, the file is cut back to `offset`. Returns the bytes appended.
pub async fn append_file(
    file: File,
    offset: u64,
    mut data: ByteStream,
    expected_len: Option<u64>,
) -> Result<u64, StoreError> {
    let (tx, mut rx) = mpsc::channel::<Bytes>(CHANNEL_DEPTH * 4);
    let writer = tokio::task::spawn_blocking(move || -> io::Result<(File, u64)> {
        let mut file = file;
        file.set_len(offset)?; // drops bytes of an append that crashed before its rollback
        file.seek(SeekFrom::Start(offset))?;
        // Small blobs get small buffers, so many concurrent uploads stay cheap.
        let buffer =
            expected_len.map_or(WRITE_BUFFER, |len| (len as usize).clamp(4096, WRITE_BUFFER));
        let mut out = io::BufWriter::with_capacity(buffer, &mut file);
        let mut written = 0u64;
        let mut since_sync = 0u64;
        while let Some(chunk) = rx.blocking_recv() {
            out.write_all(&chunk)?;
            written += chunk.len() as u64;
            since_sync += chunk.len() as u64;
            if since_sync >= SYNC_EVERY {
                out.flush()?;
                out.get_ref().sync_data()?;
                since_sync = 0;
            }
        }
        out.flush()?;
        drop(out);
        Ok((file, written))
    });

    let mut source_error = None;
    let mut received = 0u64;
    while let Some(item) = data.next().await {
        match item {
            Ok(chunk) => {
                received += chunk.len() as u64;
                if expected_len.is_some_and(|max| received > max) {
                    break;
                }
                if tx.send(chunk).await.is_err() {
                    break; // the writer failed; its error is reported below
                }
            }
            Err(e) => {
                source_error = Some(e);
                break;
            }
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
