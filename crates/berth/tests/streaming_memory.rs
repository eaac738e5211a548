//! Memory per transfer is constant: push and pull a 1 GiB blob through the real
//! `berth serve` and check that its peak resident memory (`VmHWM`) grows by
//! less than [`LIMIT`] over the idle baseline.
//!
//! The blob is generated on the fly, deterministically, and never held in
//! memory by the test either: its digest is computed in a first streaming pass
//! (monolithic push) or while the chunks are sent (chunked push).
//!
//! Linux only (reads `/proc/<pid>/status`); needs a spawned server.
//!
//! ```text
//! cargo nextest run -p berth --test streaming_memory
//! ```

mod common;

use common::*;
use futures_util::StreamExt as _;
use sha2::{Digest as _, Sha256};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const MIB: u64 = 1 << 20;
/// Size of the blob pushed and pulled.
const BLOB_SIZE: u64 = 1 << 30;
/// Bound on the server's peak memory growth during one transfer.
const LIMIT: u64 = 64 * MIB;
/// Size of the generated pieces of the request body.
const BLOCK: u64 = MIB;
/// Size of a PATCH in the chunked variant.
const CHUNK: u64 = 16 * MIB;

// ---------------------------------------------------------------------------
// A deterministic, fast byte source
// ---------------------------------------------------------------------------

fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Pseudo-random content of any length, as a pure function of `(seed, offset)`.
///
/// Block `i` is a window of a 3 MiB pool of splitmix64 output, at an offset
/// drawn from splitmix64(seed, i), stamped with `i` and the seed. Producing a
/// block is one memcpy, so gigabytes are cheap even in a debug build, and no
/// two blocks are alike.
#[derive(Clone)]
struct Content {
    seed: u64,
    len: u64,
    pool: Arc<Vec<u8>>,
}

impl Content {
    fn new(seed: u64, len: u64) -> Content {
        let pool_len = (3 * BLOCK) as usize;
        let mut pool = Vec::with_capacity(pool_len);
        let mut state = seed;
        while pool.len() < pool_len {
            state = splitmix64(state);
            pool.extend_from_slice(&state.to_le_bytes());
        }
        Content {
            seed,
            len,
            pool: Arc::new(pool),
        }
    }

    /// Block `i` (`BLOCK` bytes, or fewer at the end).
    fn block(&self, i: u64) -> Vec<u8> {
        let start = i * BLOCK;
        let len = BLOCK.min(self.len - start) as usize;
        let window = self.pool.len() - BLOCK as usize;
        let offset =
            (splitmix64(self.seed ^ i.wrapping_mul(0xA24B_AED4_963E_E407)) as usize) % window;
        let mut out = self.pool[offset..offset + len].to_vec();
        let stamp = [i.to_le_bytes(), self.seed.to_le_bytes()].concat();
        let n = stamp.len().min(len);
        out[..n].copy_from_slice(&stamp[..n]);
        out
    }

    fn blocks(&self) -> u64 {
        self.len.div_ceil(BLOCK)
    }

    /// The bytes `[from, to)` (block aligned) as a stream, optionally hashed as they go.
    fn stream(
        &self,
        from: u64,
        to: u64,
        hasher: Option<Arc<Mutex<Sha256>>>,
    ) -> impl futures_util::Stream<Item = std::io::Result<Vec<u8>>> + Send + 'static {
        assert_eq!(from % BLOCK, 0);
        let content = self.clone();
        let blocks = from / BLOCK..to.div_ceil(BLOCK);
        futures_util::stream::iter(blocks).map(move |i| {
            let block = content.block(i);
            if let Some(h) = &hasher {
                h.lock().unwrap().update(&block);
            }
            Ok(block)
        })
    }

    /// `sha256:<hex>` of all of it, streaming.
    fn digest(&self) -> String {
        let mut hasher = Sha256::new();
        for i in 0..self.blocks() {
            hasher.update(self.block(i));
        }
        format!("sha256:{}", hex::encode(hasher.finalize()))
    }
}

// ---------------------------------------------------------------------------
// Measuring the server
// ---------------------------------------------------------------------------

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Reset the server's `VmHWM` to its current RSS (`/proc/<pid>/clear_refs`, Linux >= 4.0).
fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// Samples the server's `VmRSS` every 50 ms until dropped; keeps the maximum.
struct RssSampler {
    max_kib: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
}

impl RssSampler {
    fn start(pid: u32) -> RssSampler {
        let max_kib = Arc::new(AtomicU64::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (max, halt) = (max_kib.clone(), stop.clone());
        tokio::spawn(async move {
            while !halt.load(Ordering::Relaxed) {
                if let Some(rss) = proc_status_kib(pid, "VmRSS") {
                    max.fetch_max(rss, Ordering::Relaxed);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        });
        RssSampler { max_kib, stop }
    }

    fn max_kib(&self) -> u64 {
        self.max_kib.load(Ordering::Relaxed)
    }
}

impl Drop for RssSampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// The server, its idle baseline and a client without the harness' 60 s timeout.
struct Bench {
    server: TestServer,
    pid: u32,
    client: reqwest::Client,
    repo: String,
    baseline_kib: u64,
}

impl Bench {
    /// Start berth, warm it up with small pushes and pulls of both kinds, then
    /// take the idle baseline.
    async fn start(label: &str) -> Bench {
        let server = TestServer::spawn().await;
        let pid = server.pid().expect("spawned server");
        let client = common::admin_client_builder()
            .timeout(Duration::from_secs(900))
            .build()
            .unwrap();
        let repo = unique_repo(label);
        let mut bench = Bench {
            server,
            pid,
            client,
            repo,
            baseline_kib: 0,
        };
        for round in 0..2u64 {
            let content = Content::new(1000 + round, 8 * MIB + 123);
            let digest = content.digest();
            bench.push_monolithic(&content, &digest).await;
            bench.pull(&digest, content.len).await;
            let content = Content::new(2000 + round, 8 * MIB + 77);
            let digest = bench.push_chunked(&content, 2 * MIB).await;
            bench.pull(&digest, content.len).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        bench.baseline_kib = bench.status("VmRSS");
        bench
    }

    fn status(&self, field: &str) -> u64 {
        proc_status_kib(self.pid, field)
            .unwrap_or_else(|| panic!("no {field} in /proc/{}/status", self.pid))
    }

    /// Resets the peak so the next reading covers only what follows.
    fn begin(&self, what: &str) -> RssSampler {
        let rss = self.status("VmRSS");
        let reset = reset_peak(self.pid);
        eprintln!(
            "{what}: server VmRSS before {:.1} MiB (idle baseline {:.1} MiB){}",
            mib(rss),
            mib(self.baseline_kib),
            if reset { "" } else { ", VmHWM not reset" }
        );
        RssSampler::start(self.pid)
    }

    /// Reports and checks the peak since `begin`.
    fn end(&self, what: &str, sampler: RssSampler, started: Instant, bytes: u64) {
        let hwm = self.status("VmHWM");
        let sampled = sampler.max_kib();
        let growth = hwm.saturating_sub(self.baseline_kib);
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{what}: {:.1} s ({:.0} MiB/s); server VmHWM {:.1} MiB, max sampled VmRSS {:.1} MiB, \
             peak over baseline {:.1} MiB (limit {} MiB)",
            secs,
            bytes as f64 / MIB as f64 / secs,
            mib(hwm),
            mib(sampled),
            mib(growth),
            LIMIT / MIB
        );
        assert!(
            growth * 1024 < LIMIT,
            "{what}: the server's peak memory grew by {:.1} MiB over its idle baseline of {:.1} MiB \
             (limit {} MiB); log:\n{}",
            mib(growth),
            mib(self.baseline_kib),
            LIMIT / MIB,
            self.server.log()
        );
    }

    async fn open_session(&self) -> String {
        self.server.open_session(&self.repo).await
    }

    /// POST + one PUT carrying the whole blob.
    async fn push_monolithic(&self, content: &Content, digest: &str) {
        let location = self.open_session().await;
        let resp = self
            .client
            .put(with_digest(&location, digest))
            .header("Content-Type", MT_OCTET_STREAM)
            .header("Content-Length", content.len.to_string())
            .body(reqwest::Body::wrap_stream(content.stream(
                0,
                content.len,
                None,
            )))
            .send()
            .await
            .expect("monolithic PUT");
        let (headers, _) = expect_status(resp, 201, "monolithic PUT").await;
        assert_eq!(
            header(&headers, "docker-content-digest").as_deref(),
            Some(digest)
        );
    }

    /// POST, PATCHes of `chunk` bytes, then PUT ?digest=; hashes while sending.
    async fn push_chunked(&self, content: &Content, chunk: u64) -> String {
        let hasher = Arc::new(Mutex::new(Sha256::new()));
        let mut location = self.open_session().await;
        let mut start = 0;
        while start < content.len {
            let end = (start + chunk).min(content.len);
            let resp = self
                .client
                .patch(&location)
                .header("Content-Type", MT_OCTET_STREAM)
                .header("Content-Range", format!("{start}-{}", end - 1))
                .header("Content-Length", (end - start).to_string())
                .body(reqwest::Body::wrap_stream(content.stream(
                    start,
                    end,
                    Some(hasher.clone()),
                )))
                .send()
                .await
                .expect("PATCH");
            let (headers, _) = expect_status(resp, 202, "PATCH chunk").await;
            assert_eq!(
                header(&headers, "range"),
                Some(format!("0-{}", end - 1)),
                "Range after PATCH"
            );
            location = self
                .server
                .resolve(&require_header(&headers, "location", "PATCH"));
            start = end;
        }
        let digest = format!(
            "sha256:{}",
            hex::encode(hasher.lock().unwrap().clone().finalize())
        );
        let resp = self
            .client
            .put(with_digest(&location, &digest))
            .header("Content-Length", "0")
            .send()
            .await
            .expect("closing PUT");
        expect_status(resp, 201, "closing PUT").await;
        digest
    }

    /// GET the blob, hashing it as it streams in.
    async fn pull(&self, digest: &str, len: u64) {
        let resp = self
            .client
            .get(
                self.server
                    .url(&format!("/v2/{}/blobs/{digest}", self.repo)),
            )
            .send()
            .await
            .expect("blob GET");
        assert_eq!(resp.status(), reqwest::StatusCode::OK, "blob GET");
        assert_eq!(resp.content_length(), Some(len), "Content-Length of GET");
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.expect("blob body");
            received += chunk.len() as u64;
            hasher.update(&chunk);
        }
        assert_eq!(received, len, "bytes pulled");
        assert_eq!(
            format!("sha256:{}", hex::encode(hasher.finalize())),
            digest,
            "digest of the pulled bytes"
        );
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// 1 GiB in one PUT, then one GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monolithic_gigabyte_push_and_pull_use_constant_memory() {
    let bench = Bench::start("memory-monolithic").await;
    let content = Content::new(0x5eed_0001, BLOB_SIZE);
    let started = Instant::now();
    let digest = content.digest();
    eprintln!(
        "digest of 1 GiB computed in {:.1} s: {digest}",
        started.elapsed().as_secs_f64()
    );

    let sampler = bench.begin("monolithic push");
    let started = Instant::now();
    bench.push_monolithic(&content, &digest).await;
    bench.end("monolithic push", sampler, started, BLOB_SIZE);

    let sampler = bench.begin("pull");
    let started = Instant::now();
    bench.pull(&digest, BLOB_SIZE).await;
    bench.end("pull", sampler, started, BLOB_SIZE);
}

/// 1 GiB in 16 MiB PATCHes, then one GET.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_gigabyte_push_and_pull_use_constant_memory() {
    let bench = Bench::start("memory-chunked").await;
    let content = Content::new(0x5eed_0002, BLOB_SIZE);

    let sampler = bench.begin("chunked push");
    let started = Instant::now();
    let digest = bench.push_chunked(&content, CHUNK).await;
    bench.end("chunked push", sampler, started, BLOB_SIZE);

    let sampler = bench.begin("pull");
    let started = Instant::now();
    bench.pull(&digest, BLOB_SIZE).await;
    bench.end("pull", sampler, started, BLOB_SIZE);
}

/// A burst of requests with one account's Basic credentials, none verified yet: they take
/// turns, one argon2id check runs (each holds 7 MiB) and the rest find it remembered, so
/// memory stays bounded instead of growing with the burst.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_sign_ins_checks_the_password_once() {
    let server = TestServer::spawn().await;
    let pid = server.pid().expect("spawned server");
    let data_dir = server.data_dir().expect("spawned server").to_owned();
    let mut create = std::process::Command::new(env!("CARGO_BIN_EXE_berth"))
        .args(["user", "create", "burst", "--password-stdin", "--data-dir"])
        .arg(&data_dir)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("berth user create");
    {
        use std::io::Write as _;
        let mut stdin = create.stdin.take().expect("stdin");
        stdin.write_all(b"burst-password\n").expect("password");
    }
    assert!(create.wait().expect("berth user create").success());

    let client = reqwest::Client::new();
    let baseline = proc_status_kib(pid, "VmRSS").expect("VmRSS");
    let reset = reset_peak(pid);
    let sampler = RssSampler::start(pid);
    let requests = (0..64).map(|_| {
        client
            .get(server.url("/v2/"))
            .header("authorization", basic_auth("burst", "burst-password"))
            .send()
    });
    for response in futures_util::future::join_all(requests).await {
        assert_eq!(response.expect("GET /v2/").status(), 200);
    }
    let peak = if reset {
        proc_status_kib(pid, "VmHWM").expect("VmHWM")
    } else {
        sampler.max_kib()
    };
    let growth = peak.saturating_sub(baseline);
    eprintln!(
        "64 concurrent first sign-ins: server RSS {:.1} MiB -> peak {:.1} MiB",
        mib(baseline),
        mib(peak)
    );
    assert!(
        growth < 96 * 1024,
        "peak memory grew by {:.1} MiB during the burst",
        mib(growth)
    );
}
