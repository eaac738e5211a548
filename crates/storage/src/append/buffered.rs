//! Appends written through the page cache: request frames handed to the writer as they
//! come, in batches.

use super::pipeline::{past_expected, spawn_writer, write_all_vectored, Flushes, Outcome};
use berth_core::ports::{ByteStream, StoreError};
use bytes::Bytes;
use futures_util::StreamExt;
use std::fs::File;
use std::io::{self, IoSlice};
use tokio::sync::mpsc;

/// Batches queued between the network and the writer: one being written and one waiting
/// keep the disk busy; deeper queues only held more of a large body in memory.
const QUEUE_DEPTH: usize = 2;
/// Most request-body frames gathered into one write.
const BATCH_FRAMES: usize = 64;
/// Appends at least this long get their disk space reserved before writing.
const PREALLOCATE_AT_LEAST: u64 = 8 << 20;
/// Bytes between background flushes.
const FLUSH_EVERY: u64 = 64 << 20;

pub(super) async fn append(
    file: File,
    offset: u64,
    data: ByteStream,
    expected_len: Option<u64>,
) -> Outcome {
    let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
    let writer = spawn_writer(file, offset, move |file| {
        write_batches(file, offset, expected_len, rx)
    });
    (receive(data, tx, expected_len).await, writer.await)
}

/// Receives the request as it comes, frames that arrived together in one batch: one
/// wake-up and one write each. Returns the bytes received, or why receiving stopped.
/// Stops early past `expected_len`, or when the writer has stopped (the caller reports
/// its error).
async fn receive(
    data: ByteStream,
    tx: mpsc::Sender<Vec<Bytes>>,
    expected_len: Option<u64>,
) -> Result<u64, StoreError> {
    let mut data = data.ready_chunks(BATCH_FRAMES);
    let mut received = 0u64;
    while let Some(items) = data.next().await {
        let mut batch = Vec::with_capacity(items.len());
        for item in items {
            let frame = item.map_err(StoreError::Source)?;
            if past_expected(&mut received, frame.len(), expected_len) {
                return Ok(received);
            }
            batch.push(frame);
        }
        if tx.send(batch).await.is_err() {
            break;
        }
    }
    Ok(received)
}

fn write_batches(
    file: &mut File,
    offset: u64,
    expected_len: Option<u64>,
    mut rx: mpsc::Receiver<Vec<Bytes>>,
) -> io::Result<u64> {
    if let Some(len) = expected_len.filter(|len| *len >= PREALLOCATE_AT_LEAST) {
        // Reserving the blocks up front spares the filesystem allocating them page by
        // page; unsupported filesystems just skip it. A rollback's truncate frees them.
        let _ = rustix::fs::fallocate(&*file, rustix::fs::FallocateFlags::KEEP_SIZE, offset, len);
    }
    let mut flushes = Flushes::new(offset, FLUSH_EVERY);
    let mut written = 0u64;
    while let Some(batch) = rx.blocking_recv() {
        write_batch(file, &batch)?;
        let len: u64 = batch.iter().map(|b| b.len() as u64).sum();
        written += len;
        flushes.wrote(file, len)?;
    }
    Ok(written)
}

/// Writes every buffer of a batch with as few system calls as the kernel allows.
fn write_batch(file: &mut File, batch: &[Bytes]) -> io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = batch.iter().map(|b| IoSlice::new(b)).collect();
    write_all_vectored(file, &mut slices, |_| Ok(false))
}
