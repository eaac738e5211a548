//! Appends written around the page cache (`O_DIRECT`): request bytes gathered into
//! page-aligned blocks and written straight to the disk.
//!
//! Why: through the page cache a gigabyte costs the kernel about half as much CPU as hashing
//! it (page allocation, the copy, buffer heads, write-back submission), and one large layer
//! would push the registry's hot manifests and small blobs out of the cache. The one copy
//! this adds, into the blocks, is made while each frame is still in the CPU cache from
//! hashing.

use super::pipeline::{past_expected, spawn_writer, write_all_vectored, Flushes, Outcome};
use berth_core::ports::{ByteStream, StoreError};
use futures_util::StreamExt;
use memmap2::MmapMut;
use rustix::fs::{fcntl_getfl, fcntl_setfl, FallocateFlags, OFlags};
use std::fs::File;
use std::io::{self, IoSlice};
use tokio::sync::mpsc;

/// Appends of a known length at least this long, starting at an aligned offset, are written
/// directly; so are those of unknown length that turn out longer than one block.
const DIRECT_AT_LEAST: u64 = 8 << 20;
/// Direct writes start and end on multiples of this: the largest logical block size in
/// common use. A filesystem that wants more refuses the write and gets the buffered path.
const ALIGN: usize = 4096;
/// Bytes per block: one huge page where the kernel provides them, which makes both the
/// copy in and the kernel's pinning of the pages for the disk cheaper.
const BLOCK: usize = 2 << 20;
/// Blocks an append may own, filling, queued or being written: all the memory it holds.
const POOL: usize = 6;
/// Most blocks in one write. Half the pool, so the network always has blocks to fill while
/// the disk writes the other half.
const BLOCKS_PER_WRITE: usize = POOL / 2;
/// Bytes between background flushes. Direct writes land in the disk's volatile cache; on
/// the benchmark machine's virtual disk, flushing it every 16 MiB made a 1 GiB push as fast
/// as through the page cache, where every 64 MiB left it a fifth slower, and flushing only
/// at the commit added up to a second.
const FLUSH_EVERY: u64 = 16 << 20;

/// A file in direct mode, remembering its flags for the way back.
pub(super) struct Direct {
    buffered_flags: OFlags,
    direct: bool,
}

impl Direct {
    /// Puts `file` in direct mode when an append of `len` bytes at `offset` qualifies and
    /// the filesystem allows it; `None` means write through the page cache. An append of
    /// unknown length qualifies (docker streams a whole layer so): should it end within its
    /// first block, that block goes through the page cache after all.
    pub(super) fn enable(file: &File, offset: u64, len: Option<u64>) -> Option<Direct> {
        if !offset.is_multiple_of(ALIGN as u64) || len.is_some_and(|len| len < DIRECT_AT_LEAST) {
            return None;
        }
        let buffered_flags = fcntl_getfl(file).ok()?;
        fcntl_setfl(file, buffered_flags | OFlags::DIRECT).ok()?;
        Some(Direct {
            buffered_flags,
            direct: true,
        })
    }

    pub(super) async fn append(
        self,
        file: File,
        offset: u64,
        data: ByteStream,
        expected_len: Option<u64>,
    ) -> Outcome {
        let (tx, rx) = mpsc::channel(POOL);
        let (pool, recycler) = BlockPool::new(expected_len.is_none());
        let writer = spawn_writer(file, offset, move |file| {
            self.write_blocks(file, offset, expected_len, rx, recycler)
        });
        (receive(data, tx, pool, expected_len).await, writer.await)
    }

    fn write_blocks(
        mut self,
        file: &mut File,
        offset: u64,
        expected_len: Option<u64>,
        mut rx: mpsc::Receiver<Block>,
        recycler: Recycler,
    ) -> io::Result<u64> {
        let mut reserved = Reservation::start(file, offset, expected_len);
        let mut flushes = Flushes::new(offset, FLUSH_EVERY);
        let mut written = 0u64;
        let mut queued = Vec::with_capacity(BLOCKS_PER_WRITE);
        while let Some(first) = rx.blocking_recv() {
            queued.push(first);
            while queued.len() < BLOCKS_PER_WRITE {
                match rx.try_recv() {
                    Ok(block) => queued.push(block),
                    Err(_) => break,
                }
            }
            let len: u64 = queued.iter().map(|block| block.filled as u64).sum();
            // One partly filled block before anything was written: all of a small append
            // of unknown length, which goes through the page cache and needs no reserving.
            let small = written == 0 && queued.len() == 1 && queued[0].filled < BLOCK;
            if !small {
                reserved.cover(file, offset + written + len);
            }
            self.write(file, &queued, small)?;
            written += len;
            flushes.wrote(file, len)?;
            for block in queued.drain(..) {
                recycler.give_back(block);
            }
        }
        reserved.cut_to(file, offset + written)?;
        Ok(written)
    }

    /// Writes the blocks' bytes, in order, at the file's position; all through the page
    /// cache when they are a `small` append.
    fn write(&mut self, file: &mut File, blocks: &[Block], small: bool) -> io::Result<()> {
        let Some(last) = blocks.last() else {
            return Ok(());
        };
        // Direct writes must end aligned too. Only an append's last block can be partly
        // filled, so only its unaligned tail goes through the page cache.
        let tail = if small {
            last.filled
        } else {
            last.filled % ALIGN
        };
        let mut slices: Vec<IoSlice<'_>> = blocks
            .iter()
            .map(|block| IoSlice::new(&block.bytes[..block.filled]))
            .collect();
        if let Some(last_slice) = slices.last_mut() {
            *last_slice = IoSlice::new(&last.bytes[..last.filled - tail]);
        }
        // Refused when the filesystem cannot write this directly (a block size above
        // `ALIGN`, no direct I/O for this file, or a short write that left the position
        // unaligned): nothing of that attempt was written, so go on through the page cache.
        write_all_vectored(file, &mut slices, |file| self.end_direct(file))?;
        if tail > 0 {
            self.end_direct(file)?;
            let rest = &last.bytes[last.filled - tail..last.filled];
            write_all_vectored(file, &mut [IoSlice::new(rest)], |_| Ok(false))?;
        }
        Ok(())
    }

    /// Puts the file back to writing through the page cache; `true` if it was direct.
    fn end_direct(&mut self, file: &File) -> io::Result<bool> {
        if !self.direct {
            return Ok(false);
        }
        fcntl_setfl(file, self.buffered_flags)?;
        self.direct = false;
        Ok(true)
    }
}

/// Space reserved for an append and inside the file's size before it is written. Direct
/// writes there are plain overwrites for the filesystem; past the end each one must also
/// grow the file, which measured half as fast on ext4. The reserved range reads as zeros
/// until written; a failed append's rollback cuts it off again, as does the recovery after
/// a crash (upload files are trimmed to their session's size). Filesystems without
/// `fallocate` just write past the end.
struct Reservation {
    /// The end of the reserved range.
    end: u64,
    /// Whether the append's length is unknown: then space is reserved `RESERVE_AHEAD` at a
    /// time as the writes come, and what was not written is cut off at the end.
    grows: bool,
}

/// Reserved at a time for an append of unknown length.
const RESERVE_AHEAD: u64 = 64 << 20;

impl Reservation {
    fn start(file: &File, offset: u64, expected_len: Option<u64>) -> Reservation {
        match expected_len {
            Some(len) => {
                reserve(file, offset, len);
                Reservation {
                    end: offset + len,
                    grows: false,
                }
            }
            None => Reservation {
                end: offset,
                grows: true,
            },
        }
    }

    /// Makes sure everything up to `end` is reserved.
    fn cover(&mut self, file: &File, end: u64) {
        if self.grows && end > self.end {
            let len = end - self.end + RESERVE_AHEAD;
            reserve(file, self.end, len);
            self.end += len;
        }
    }

    /// Cuts off what was reserved past `end`, where the append's bytes end.
    fn cut_to(&self, file: &File, end: u64) -> io::Result<()> {
        if self.grows && self.end > end {
            file.set_len(end)?;
        }
        Ok(())
    }
}

fn reserve(file: &File, offset: u64, len: u64) {
    let _ = rustix::fs::fallocate(file, FallocateFlags::empty(), offset, len);
}

/// Receives the request into blocks. Each frame is copied as soon as it arrives, right
/// after the upload's hashing read it, while it is still in the CPU cache, and is then
/// dropped, so the network's read buffer is reused. Returns the bytes received, or why
/// receiving stopped; stops early past `expected_len`, or when the writer has stopped
/// (the caller reports its error).
async fn receive(
    mut data: ByteStream,
    tx: mpsc::Sender<Block>,
    mut pool: BlockPool,
    expected_len: Option<u64>,
) -> Result<u64, StoreError> {
    let mut received = 0u64;
    let mut filling: Option<Block> = None;
    while let Some(item) = data.next().await {
        let frame = item.map_err(StoreError::Source)?;
        if past_expected(&mut received, frame.len(), expected_len) {
            return Ok(received);
        }
        let mut rest = &frame[..];
        while !rest.is_empty() {
            let block = match filling.as_mut() {
                Some(block) => block,
                None => match pool.next_empty().await.map_err(StoreError::Io)? {
                    Some(block) => filling.insert(block),
                    None => return Ok(received),
                },
            };
            rest = &rest[block.fill_from(rest)..];
            if block.filled == BLOCK {
                let full = filling.take().expect("a block is filling");
                if tx.send(full).await.is_err() {
                    return Ok(received);
                }
            }
        }
    }
    if let Some(last) = filling.filter(|block| block.filled > 0) {
        let _ = tx.send(last).await;
    }
    Ok(received)
}

/// A page-aligned buffer, filled from the front.
struct Block {
    bytes: MmapMut,
    filled: usize,
}

impl Block {
    /// An empty block; `huge` asks for a huge page, which is faulted in (zeroed) whole at
    /// the first byte written, so it is not asked for where a few KiB may be all.
    fn new(huge: bool) -> io::Result<Block> {
        // Anonymous mappings are page aligned, as direct I/O requires.
        let bytes = MmapMut::map_anon(BLOCK)?;
        if huge {
            let _ = bytes.advise(memmap2::Advice::HugePage); // a hint; small pages work too
        }
        Ok(Block { bytes, filled: 0 })
    }

    /// Copies as much of `src` as fits; returns how many bytes it took.
    fn fill_from(&mut self, src: &[u8]) -> usize {
        let take = src.len().min(BLOCK - self.filled);
        self.bytes[self.filled..self.filled + take].copy_from_slice(&src[..take]);
        self.filled += take;
        take
    }
}

/// The receiving side's supply of empty blocks: blocks the writer gave back, or new ones
/// while fewer than `POOL` exist.
struct BlockPool {
    returned: mpsc::UnboundedReceiver<Block>,
    allocated: usize,
    /// Whether the append may turn out small (its length is unknown): its first block then
    /// gets small pages.
    may_be_small: bool,
}

/// The writer's way to hand a written block back to the pool.
struct Recycler(mpsc::UnboundedSender<Block>);

impl Recycler {
    fn give_back(&self, mut block: Block) {
        block.filled = 0;
        let _ = self.0.send(block); // the receiving side is done: the block is freed
    }
}

impl BlockPool {
    fn new(may_be_small: bool) -> (BlockPool, Recycler) {
        let (give_back, returned) = mpsc::unbounded_channel();
        let pool = BlockPool {
            returned,
            allocated: 0,
            may_be_small,
        };
        (pool, Recycler(give_back))
    }

    /// An empty block; waits for the writer when all `POOL` blocks are in use. `None` when
    /// the writer has stopped.
    async fn next_empty(&mut self) -> io::Result<Option<Block>> {
        if let Ok(block) = self.returned.try_recv() {
            return Ok(Some(block));
        }
        if self.allocated < POOL {
            let huge = !(self.may_be_small && self.allocated == 0);
            self.allocated += 1;
            return Block::new(huge).map(Some);
        }
        Ok(self.returned.recv().await)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_or_unknown_length_appends_at_aligned_offsets_go_direct() {
        let dir = tempfile::tempdir().unwrap();
        let file = File::create(dir.path().join("upload")).unwrap();
        let large = Some(DIRECT_AT_LEAST);
        assert!(
            Direct::enable(&file, 1, large).is_none(),
            "unaligned offset"
        );
        assert!(Direct::enable(&file, 1, None).is_none(), "unaligned offset");
        assert!(Direct::enable(&file, 0, Some(DIRECT_AT_LEAST - 1)).is_none());
        let flags = fcntl_getfl(&file).unwrap();
        for len in [large, None] {
            let direct = Direct::enable(&file, ALIGN as u64 * 3, len);
            assert!(
                direct.is_some(),
                "the test directory's filesystem refused direct writes; they are what this tests"
            );
            assert!(fcntl_getfl(&file).unwrap().contains(OFlags::DIRECT));
            direct.unwrap().end_direct(&file).unwrap();
            assert_eq!(fcntl_getfl(&file).unwrap(), flags);
        }
    }
}
