//! Deterministic test data: a fast PRNG, large blobs streamed in 1 MiB chunks
//! (never held in memory whole) and sets of small blobs.

use bytes::Bytes;
use futures_util::Stream;
use sha2::{Digest, Sha256};

/// Large blobs are generated, hashed and sent in pieces of this size.
pub const CHUNK: usize = 1 << 20;

/// wyrand: a tiny, fast 64-bit PRNG (one 64x64->128 multiply per output).
#[derive(Clone, Debug)]
pub struct WyRand(u64);

impl WyRand {
    pub fn new(seed: u64) -> Self {
        // Scramble the seed so that nearby seeds give unrelated streams.
        let mut r = WyRand(seed ^ 0x9e37_79b9_7f4a_7c15);
        r.next_u64();
        r
    }

    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0xa076_1d64_78bd_642f);
        let t = u128::from(self.0) * u128::from(self.0 ^ 0xe703_7ed1_a0b4_28db);
        ((t >> 64) ^ t) as u64
    }

    pub fn fill(&mut self, buf: &mut [u8]) {
        let mut words = buf.chunks_exact_mut(8);
        for w in &mut words {
            w.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let rest = words.into_remainder();
        if !rest.is_empty() {
            let last = self.next_u64().to_le_bytes();
            rest.copy_from_slice(&last[..rest.len()]);
        }
    }

    /// Uniform-ish value in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next_u64() % (hi - lo + 1)
    }
}

pub fn sha256_digest(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// A large pseudo-random blob, described by its seed and size. Chunk `i`
/// depends only on `(seed, i)`, so any chunk-aligned range can be generated
/// on its own.
#[derive(Clone, Debug)]
pub struct BigBlob {
    pub seed: u64,
    pub size: u64,
    pub digest: String,
}

impl BigBlob {
    /// Describe the blob and compute its digest (CPU-bound: about a second
    /// per GiB; call from a blocking thread).
    pub fn new(seed: u64, size: u64) -> Self {
        let mut hasher = Sha256::new();
        let mut buf = vec![0u8; CHUNK];
        let chunks = size.div_ceil(CHUNK as u64);
        for i in 0..chunks {
            let len = chunk_len(size, i);
            fill_chunk(seed, i, &mut buf[..len]);
            hasher.update(&buf[..len]);
        }
        BigBlob {
            seed,
            size,
            digest: format!("sha256:{}", hex::encode(hasher.finalize())),
        }
    }

    /// Bytes `start..end` of the blob as a stream of (at most) 1 MiB chunks.
    /// `start` must be chunk-aligned; `end` must be chunk-aligned or the
    /// blob's end.
    pub fn stream(
        &self,
        start: u64,
        end: u64,
    ) -> impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let c = CHUNK as u64;
        assert_eq!(start % c, 0, "range start must be chunk-aligned");
        assert!(end <= self.size, "range end past the blob");
        assert_eq!(
            end.min(self.size - self.size % c) % c,
            0,
            "range end must be chunk-aligned"
        );
        let (seed, size) = (self.seed, self.size);
        let first = start / CHUNK as u64;
        let last = end.div_ceil(CHUNK as u64);
        futures_util::stream::iter((first..last).map(move |i| {
            let mut buf = vec![0u8; chunk_len(size, i)];
            fill_chunk(seed, i, &mut buf);
            Ok(Bytes::from(buf))
        }))
    }
}

fn chunk_len(size: u64, index: u64) -> usize {
    (size - index * CHUNK as u64).min(CHUNK as u64) as usize
}

fn fill_chunk(seed: u64, index: u64, buf: &mut [u8]) {
    WyRand::new(seed.wrapping_mul(0x100_0000_01b3).wrapping_add(index)).fill(buf);
}

/// One small blob held in memory with its digest.
#[derive(Clone, Debug)]
pub struct SmallBlob {
    pub data: Bytes,
    pub digest: String,
}

/// `count` blobs of `min..=max` bytes, fully determined by `seed`.
pub fn small_blobs(seed: u64, count: usize, min: usize, max: usize) -> Vec<SmallBlob> {
    let mut sizes = WyRand::new(seed);
    (0..count)
        .map(|i| {
            let len = sizes.range(min as u64, max as u64) as usize;
            let mut buf = vec![0u8; len];
            WyRand::new(seed ^ ((i as u64 + 1) << 32)).fill(&mut buf);
            SmallBlob {
                digest: sha256_digest(&buf),
                data: Bytes::from(buf),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn streamed_ranges_match_digest() {
        let size = 3 * CHUNK as u64 + 12345;
        let blob = BigBlob::new(7, size);
        // Whole stream and a chunked split must give the same bytes and digest.
        let mut whole = Vec::new();
        let mut s = Box::pin(blob.stream(0, size));
        while let Some(c) = s.next().await {
            whole.extend_from_slice(&c.unwrap());
        }
        assert_eq!(whole.len() as u64, size);
        assert_eq!(sha256_digest(&whole), blob.digest);
        let mut split = Vec::new();
        for (a, b) in [(0, 2 * CHUNK as u64), (2 * CHUNK as u64, size)] {
            let mut s = Box::pin(blob.stream(a, b));
            while let Some(c) = s.next().await {
                split.extend_from_slice(&c.unwrap());
            }
        }
        assert_eq!(split, whole);
        assert_ne!(BigBlob::new(8, size).digest, blob.digest);
    }

    #[test]
    fn small_blobs_are_deterministic_and_in_range() {
        let a = small_blobs(1, 50, 4096, 65536);
        let b = small_blobs(1, 50, 4096, 65536);
        assert!(a.iter().all(|x| (4096..=65536).contains(&x.data.len())));
        assert!(a.iter().zip(&b).all(|(x, y)| x.digest == y.digest));
        assert_ne!(small_blobs(2, 1, 4096, 65536)[0].digest, a[0].digest);
    }
}
