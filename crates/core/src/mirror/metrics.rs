//! Per-mirror counters for `/metrics`: hits and misses, stale answers, upstream calls,
//! their latency and failures, corrupt upstream data, and bytes served without the upstream.

use super::upstream::UpstreamError;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Relaxed atomics: each figure is independent, read at a scrape.
#[derive(Debug, Default)]
pub struct MirrorCounters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    upstream_requests: AtomicU64,
    upstream_errors: AtomicU64,
    upstream_micros: AtomicU64,
    corrupt: AtomicU64,
    bytes_saved: AtomicU64,
    bytes_fetched: AtomicU64,
}

/// A snapshot of one mirror's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MirrorTotals {
    /// Manifests and blobs served from the cache without fetching them.
    pub hits: u64,
    /// Manifests and blobs fetched from the upstream for a client.
    pub misses: u64,
    /// Answers served from the cache because the upstream failed.
    pub stale: u64,
    pub upstream_requests: u64,
    pub upstream_errors: u64,
    /// Time spent waiting for upstream answers (headers), in microseconds.
    pub upstream_micros: u64,
    /// Upstream manifests or blobs refused: wrong digest, truncated, too large.
    pub corrupt: u64,
    /// Blob bytes served from the cache: what the upstream did not have to send.
    pub bytes_saved: u64,
    /// Blob bytes fetched from the upstream.
    pub bytes_fetched: u64,
}

impl MirrorCounters {
    pub(crate) fn hit(&self) {
        self.hits.fetch_add(1, Relaxed);
    }
    pub(crate) fn miss(&self) {
        self.misses.fetch_add(1, Relaxed);
    }
    pub(crate) fn stale(&self) {
        self.stale.fetch_add(1, Relaxed);
    }
    pub(crate) fn corrupt(&self) {
        self.corrupt.fetch_add(1, Relaxed);
    }
    pub(crate) fn saved(&self, bytes: u64) {
        self.bytes_saved.fetch_add(bytes, Relaxed);
    }
    pub(crate) fn fetched(&self, bytes: u64) {
        self.bytes_fetched.fetch_add(bytes, Relaxed);
    }
    pub(crate) fn upstream_call(&self, took: Duration, failed: Option<&UpstreamError>) {
        self.upstream_requests.fetch_add(1, Relaxed);
        self.upstream_micros
            .fetch_add(u64::try_from(took.as_micros()).unwrap_or(u64::MAX), Relaxed);
        if failed.is_some() {
            self.upstream_errors.fetch_add(1, Relaxed);
        }
    }

    pub fn read(&self) -> MirrorTotals {
        MirrorTotals {
            hits: self.hits.load(Relaxed),
            misses: self.misses.load(Relaxed),
            stale: self.stale.load(Relaxed),
            upstream_requests: self.upstream_requests.load(Relaxed),
            upstream_errors: self.upstream_errors.load(Relaxed),
            upstream_micros: self.upstream_micros.load(Relaxed),
            corrupt: self.corrupt.load(Relaxed),
            bytes_saved: self.bytes_saved.load(Relaxed),
            bytes_fetched: self.bytes_fetched.load(Relaxed),
        }
    }
}
