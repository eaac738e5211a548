//! Crash recovery: `kill -9` the real `berth serve` at bad moments, restart it on
//! the same data directory and check that what it acknowledged survived, that
//! nothing half-done became visible, and that interrupted work can resume.
//!
//! These tests need a spawned server (they kill it), so they ignore
//! `BERTH_TEST_REGISTRY`.
//!
//! ```text
//! cargo nextest run -p berth --test crash_recovery
//! ```
//!
//! The load test picks its kill moment from a seed printed at the start; rerun
//! a failure with `BERTH_CRASH_SEED=<seed>`.

mod common;

use common::*;
use futures_util::StreamExt as _;
use reqwest::{Method, StatusCode};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The session id: the last path segment of an upload location.
fn session_id(location: &str) -> String {
    let path = location.split('?').next().unwrap_or_default();
    path.trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Where Berth keeps the bytes of upload session `id`.
fn upload_file(server: &TestServer, id: &str) -> PathBuf {
    server
        .data_dir()
        .expect("spawned server")
        .join("uploads")
        .join(id)
}

fn file_len(path: &Path) -> Option<u64> {
    std::fs::metadata(path).ok().map(|m| m.len())
}

/// Poll `cond` every 10 ms until it holds; panic with `what` after `timeout`.
async fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// `PATCH` one chunk with `Content-Range`; returns the response headers (asserts 202).
async fn patch_chunk(
    server: &TestServer,
    location: &str,
    start: u64,
    bytes: &[u8],
    context: &str,
) -> reqwest::header::HeaderMap {
    let end = start + bytes.len() as u64 - 1;
    let resp = server
        .client()
        .patch(location)
        .header("Content-Type", MT_OCTET_STREAM)
        .header("Content-Range", format!("{start}-{end}"))
        .header("Content-Length", bytes.len().to_string())
        .body(bytes.to_vec())
        .send()
        .await
        .expect("PATCH");
    let (headers, _) = expect_status(resp, 202, context).await;
    assert_eq!(
        header(&headers, "range").as_deref(),
        Some(format!("0-{end}").as_str()),
        "{context}: Range after the chunk"
    );
    headers
}

/// GET a blob and assert it is exactly `bytes` under `digest`.
async fn assert_blob(server: &TestServer, repo: &str, digest: &str, bytes: &[u8], context: &str) {
    let resp = server.get_blob(repo, digest).await;
    let (headers, body) = expect_status(resp, 200, context).await;
    assert_eq!(
        body.len(),
        bytes.len(),
        "{context}: blob {digest} has the wrong length"
    );
    assert!(
        body == bytes,
        "{context}: blob {digest} has the wrong bytes"
    );
    assert_eq!(sha256(&body), digest, "{context}: content digest");
    if let Some(d) = header(&headers, "docker-content-digest") {
        assert_eq!(d, digest, "{context}: Docker-Content-Digest");
    }
}

/// A small splitmix64 generator: reproducible choices from a printed seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

fn seed() -> u64 {
    std::env::var("BERTH_CRASH_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        })
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// A chunk cut off by a crash is forgotten; the acknowledged chunks remain and
/// the upload can resume where the server says it stands.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_chunk_upload_keeps_acknowledged_chunks() {
    let mut server = TestServer::spawn().await;
    let repo = unique_repo("crash-chunk");
    let first = random_bytes(300 * 1024 + 7);
    let rest = random_bytes(6 * 1024 * 1024 + 13);
    let n1 = first.len() as u64;
    let total = n1 + rest.len() as u64;
    let mut whole = first.clone();
    whole.extend_from_slice(&rest);
    let digest = sha256(&whole);

    let location = server.open_session(&repo).await;
    let id = session_id(&location);
    let headers = patch_chunk(&server, &location, 0, &first, "PATCH first chunk").await;
    let location = server.resolve(&require_header(&headers, "location", "PATCH"));

    // The second chunk: declare all of it, send half, and wait until the server
    // has written some of it to the upload file, so the crash leaves bytes of
    // an unacknowledged chunk behind.
    let range = format!("{n1}-{}", total - 1);
    let mut in_flight = server
        .raw_request(
            "PATCH",
            &location,
            &[("Content-Type", MT_OCTET_STREAM), ("Content-Range", &range)],
            rest.len() as u64,
        )
        .await;
    in_flight
        .send(&rest[..rest.len() / 2])
        .await
        .expect("send half of the second chunk");
    let file = upload_file(&server, &id);
    wait_until(
        Duration::from_secs(20),
        "the server wrote part of the second chunk",
        || file_len(&file).is_some_and(|len| len > n1),
    )
    .await;
    server.kill_hard();
    drop(in_flight);
    server.restart().await;

    let resp = server.client().get(&location).send().await.unwrap();
    let (headers, _) = expect_status(resp, 204, "GET session after the crash").await;
    assert_eq!(
        header(&headers, "range"),
        Some(format!("0-{}", n1 - 1)),
        "after the crash the session must hold exactly the acknowledged first chunk"
    );
    let location = server.resolve(&require_header(&headers, "location", "GET session"));

    let headers = patch_chunk(
        &server,
        &location,
        n1,
        &rest,
        "PATCH the rest after restart",
    )
    .await;
    let location = server.resolve(&require_header(&headers, "location", "PATCH"));
    let resp = server
        .client()
        .put(with_digest(&location, &digest))
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    let (headers, _) = expect_status(resp, 201, "PUT ?digest= after resuming").await;
    assert_eq!(
        header(&headers, "docker-content-digest").as_deref(),
        Some(digest.as_str())
    );
    assert_blob(&server, &repo, &digest, &whole, "resumed blob").await;
    assert!(
        !file.exists(),
        "the upload file {} must be gone once the blob is committed",
        file.display()
    );
}

/// A manifest PUT cut off mid-body leaves no trace: no tag, no digest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_during_manifest_put_commits_nothing() {
    let mut server = TestServer::spawn().await;
    let repo = unique_repo("crash-manifest");
    let base = server.push_random_image(&repo, Some("base")).await;

    let config = pretty(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "berth.test": unique_id(),
    }));
    let layer = random_bytes(4096);
    server.push_blob(&repo, &config).await;
    server.push_blob(&repo, &layer).await;
    let manifest = image_manifest(
        &Descriptor::of(MT_OCI_CONFIG, &config),
        &[Descriptor::of(MT_OCI_LAYER, &layer)],
    );
    let digest = sha256(&manifest);

    let mut in_flight = server
        .raw_request(
            "PUT",
            &format!("/v2/{repo}/manifests/crash"),
            &[("Content-Type", MT_OCI_MANIFEST)],
            manifest.len() as u64,
        )
        .await;
    in_flight
        .send(&manifest[..manifest.len() / 2])
        .await
        .expect("send half of the manifest");
    // Give the server time to read the head and the partial body.
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill_hard();
    drop(in_flight);
    server.restart().await;

    for reference in ["crash", digest.as_str()] {
        let resp = server.get_manifest(&repo, reference).await;
        expect_error(
            resp,
            &[404],
            &["MANIFEST_UNKNOWN"],
            &format!("GET {reference} after a crashed PUT"),
        )
        .await;
        let resp = server.head_manifest(&repo, reference).await;
        assert_eq!(
            resp.status(),
            StatusCode::NOT_FOUND,
            "HEAD {reference} after a crashed PUT"
        );
    }
    assert_eq!(server.tags(&repo).await, vec!["base".to_string()]);
    let resp = server.get_manifest(&repo, "base").await;
    let (_, body) = expect_status(resp, 200, "GET base after the crash").await;
    assert!(body == base.bytes, "the earlier manifest is unchanged");

    // The same push succeeds after the restart.
    server
        .push_manifest_ok(&repo, Some("crash"), MT_OCI_MANIFEST, &manifest)
        .await;
    let resp = server.get_manifest(&repo, "crash").await;
    let (_, body) = expect_status(resp, 200, "GET crash after re-push").await;
    assert!(body == manifest);
}

/// One blob push: the data and whether the registry acknowledged it with 201.
#[derive(Clone)]
struct BlobPush {
    repo: String,
    digest: String,
    bytes: Arc<Vec<u8>>,
    acked: bool,
}

/// One manifest push (by tag).
#[derive(Clone)]
struct ManifestPush {
    repo: String,
    tag: String,
    digest: String,
    bytes: Arc<Vec<u8>>,
    acked: bool,
}

enum Job {
    Blob(BlobPush),
    /// Config, layer, then the manifest referencing them.
    Image(BlobPush, BlobPush, ManifestPush),
}

/// What a pusher needs: no borrow of the server, which the killer owns.
#[derive(Clone)]
struct Pusher {
    client: reqwest::Client,
    base: String,
    acks: Arc<AtomicUsize>,
    killed: Arc<AtomicBool>,
}

impl Pusher {
    async fn blob(&self, push: &mut BlobPush) {
        if self.killed.load(Ordering::SeqCst) {
            return;
        }
        let Ok(resp) = self
            .client
            .post(format!("{}/v2/{}/blobs/uploads/", self.base, push.repo))
            .header("Content-Length", "0")
            .send()
            .await
        else {
            return;
        };
        if resp.status() != StatusCode::ACCEPTED {
            return;
        }
        let Some(location) = header(resp.headers(), "location") else {
            return;
        };
        let location = if location.starts_with('/') {
            format!("{}{location}", self.base)
        } else {
            location
        };
        let sent = self
            .client
            .put(with_digest(&location, &push.digest))
            .header("Content-Type", MT_OCTET_STREAM)
            .body(push.bytes.to_vec())
            .send()
            .await;
        if sent.is_ok_and(|r| r.status() == StatusCode::CREATED) {
            push.acked = true;
            self.acks.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn manifest(&self, push: &mut ManifestPush) {
        if self.killed.load(Ordering::SeqCst) {
            return;
        }
        let sent = self
            .client
            .put(format!(
                "{}/v2/{}/manifests/{}",
                self.base, push.repo, push.tag
            ))
            .header("Content-Type", MT_OCI_MANIFEST)
            .body(push.bytes.to_vec())
            .send()
            .await;
        if sent.is_ok_and(|r| r.status() == StatusCode::CREATED) {
            push.acked = true;
            self.acks.fetch_add(1, Ordering::SeqCst);
        }
    }

    async fn run(&self, job: Job) -> Job {
        match job {
            Job::Blob(mut b) => {
                self.blob(&mut b).await;
                Job::Blob(b)
            }
            Job::Image(mut config, mut layer, mut manifest) => {
                self.blob(&mut config).await;
                self.blob(&mut layer).await;
                if config.acked && layer.acked {
                    self.manifest(&mut manifest).await;
                }
                Job::Image(config, layer, manifest)
            }
        }
    }
}

fn blob_push(repo: &str, bytes: Vec<u8>) -> BlobPush {
    BlobPush {
        repo: repo.to_string(),
        digest: sha256(&bytes),
        bytes: Arc::new(bytes),
        acked: false,
    }
}

/// After a crash: an acknowledged blob reads back exactly; any other attempted
/// blob is absent or exact.
async fn check_blob(server: &TestServer, push: &BlobPush) {
    let context = format!(
        "blob {} in {} (acknowledged: {})",
        push.digest, push.repo, push.acked
    );
    let resp = server.get_blob(&push.repo, &push.digest).await;
    if !push.acked && resp.status() == StatusCode::NOT_FOUND {
        return;
    }
    let (_, body) = expect_status(resp, 200, &context).await;
    assert_eq!(sha256(&body), push.digest, "{context}: wrong digest");
    assert!(body == *push.bytes, "{context}: wrong bytes");
}

async fn check_manifest(server: &TestServer, push: &ManifestPush) {
    for reference in [push.tag.as_str(), push.digest.as_str()] {
        let context = format!(
            "manifest {}:{reference} (acknowledged: {})",
            push.repo, push.acked
        );
        let resp = server.get_manifest(&push.repo, reference).await;
        if !push.acked && resp.status() == StatusCode::NOT_FOUND {
            continue;
        }
        let (headers, body) = expect_status(resp, 200, &context).await;
        assert_eq!(sha256(&body), push.digest, "{context}: wrong digest");
        assert!(body == *push.bytes, "{context}: wrong bytes");
        assert_eq!(
            header(&headers, "docker-content-digest").as_deref(),
            Some(push.digest.as_str()),
            "{context}: Docker-Content-Digest"
        );
    }
}

/// Every file left in `uploads/` belongs to a live session of the same size.
async fn check_upload_dir(server: &TestServer, repos: &[String]) {
    let dir = server.data_dir().expect("spawned server").join("uploads");
    for entry in std::fs::read_dir(&dir).expect("read uploads/") {
        let entry = entry.expect("uploads/ entry");
        let id = entry.file_name().to_string_lossy().to_string();
        let len = entry.metadata().expect("upload file metadata").len();
        let mut range = None;
        for repo in repos {
            let resp = server
                .request(Method::GET, &format!("/v2/{repo}/blobs/uploads/{id}"))
                .send()
                .await
                .unwrap();
            if resp.status() == StatusCode::NO_CONTENT {
                range = header(resp.headers(), "range");
                break;
            }
        }
        let range = range.unwrap_or_else(|| {
            panic!("uploads/{id} ({len} bytes) belongs to no upload session after the restart")
        });
        let end: u64 = range
            .strip_prefix("0-")
            .and_then(|e| e.parse().ok())
            .unwrap_or_else(|| panic!("bad Range {range:?}"));
        assert!(
            len == end + 1 || (end == 0 && len == 0),
            "uploads/{id} holds {len} bytes but its session reports Range {range}"
        );
    }
}

/// Many concurrent blob and manifest pushes, `kill -9` at a random moment:
/// everything acknowledged survives byte for byte, nothing appears under a
/// wrong digest, and the registry accepts the lost pushes afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_under_load_loses_nothing_acknowledged() {
    const ROUNDS: usize = 4;
    const BLOBS: usize = 200;
    const IMAGES: usize = 40;
    const CONCURRENCY: usize = 16;

    let seed = seed();
    eprintln!("kill_under_load: BERTH_CRASH_SEED={seed}");
    let mut rng = Rng(seed);
    let mut server = TestServer::spawn().await;
    let repos: Vec<String> = (0..4)
        .map(|i| unique_repo(&format!("crash-load-{i}")))
        .collect();
    let mut all_blobs: Vec<BlobPush> = Vec::new();
    let mut all_manifests: Vec<ManifestPush> = Vec::new();

    for round in 0..ROUNDS {
        let started = Instant::now();
        let mut jobs = Vec::new();
        for i in 0..BLOBS {
            let repo = &repos[i % repos.len()];
            let len = rng.range(4 * 1024, 64 * 1024) as usize;
            jobs.push(Job::Blob(blob_push(repo, rng.bytes(len))));
            if i % (BLOBS / IMAGES) == 0 {
                let config = pretty(&json!({
                    "architecture": "amd64",
                    "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []},
                    "berth.test": format!("{seed}-{round}-{i}"),
                }));
                let layer_len = rng.range(1024, 16 * 1024) as usize;
                let layer = rng.bytes(layer_len);
                let manifest = image_manifest(
                    &Descriptor::of(MT_OCI_CONFIG, &config),
                    &[Descriptor::of(MT_OCI_LAYER, &layer)],
                );
                jobs.push(Job::Image(
                    blob_push(repo, config),
                    blob_push(repo, layer),
                    ManifestPush {
                        repo: repo.clone(),
                        tag: format!("r{round}-m{i}"),
                        digest: sha256(&manifest),
                        bytes: Arc::new(manifest),
                        acked: false,
                    },
                ));
            }
        }
        let total_pushes = BLOBS + IMAGES * 3;
        // Kill once this many pushes were acknowledged: somewhere in the middle.
        let kill_after = rng.range(total_pushes as u64 / 10, total_pushes as u64 * 8 / 10) as usize;

        let pusher = Pusher {
            client: server.client().clone(),
            base: server.base().to_string(),
            acks: Arc::new(AtomicUsize::new(0)),
            killed: Arc::new(AtomicBool::new(false)),
        };
        let done = Arc::new(AtomicBool::new(false));
        let pushes = {
            let pusher = pusher.clone();
            let done = done.clone();
            async move {
                let results: Vec<Job> = futures_util::stream::iter(jobs)
                    .map(|job| {
                        let pusher = pusher.clone();
                        async move { pusher.run(job).await }
                    })
                    .buffer_unordered(CONCURRENCY)
                    .collect()
                    .await;
                done.store(true, Ordering::SeqCst);
                results
            }
        };
        let killer = async {
            while pusher.acks.load(Ordering::SeqCst) < kill_after && !done.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            pusher.killed.store(true, Ordering::SeqCst);
            server.kill_hard();
            pusher.acks.load(Ordering::SeqCst)
        };
        let (results, acked_at_kill) = tokio::join!(pushes, killer);
        let acked_total = pusher.acks.load(Ordering::SeqCst);
        assert!(
            !done.load(Ordering::SeqCst) || acked_at_kill < total_pushes,
            "round {round}: all pushes finished before the kill; nothing was tested"
        );

        let mut round_blobs = Vec::new();
        let mut round_manifests = Vec::new();
        for job in results {
            match job {
                Job::Blob(b) => round_blobs.push(b),
                Job::Image(c, l, m) => {
                    round_blobs.push(c);
                    round_blobs.push(l);
                    round_manifests.push(m);
                }
            }
        }
        eprintln!(
            "round {round}: killed after {acked_at_kill} acknowledged pushes (target {kill_after}, \
             {acked_total} in the end) of {total_pushes}, {:?} in",
            started.elapsed()
        );

        server.restart().await;
        for line in server.log().lines() {
            if line.contains("recovered interrupted uploads") || line.contains("abandoned") {
                eprintln!("round {round}: server: {line}");
            }
        }
        for b in &round_blobs {
            check_blob(&server, b).await;
        }
        for m in &round_manifests {
            check_manifest(&server, m).await;
        }
        for repo in &repos {
            let resp = server.list_tags(repo, "").await;
            if resp.status() == StatusCode::NOT_FOUND {
                continue;
            }
            let (_, body) = expect_status(resp, 200, "tags/list after the crash").await;
            let tags = tags_from_body(&body);
            for m in all_manifests.iter().chain(&round_manifests) {
                if &m.repo == repo && m.acked {
                    assert!(tags.contains(&m.tag), "acknowledged tag {} lost", m.tag);
                }
            }
            for tag in &tags {
                assert!(
                    all_manifests
                        .iter()
                        .chain(&round_manifests)
                        .any(|m| &m.repo == repo && &m.tag == tag),
                    "tag {tag} in {repo} was never pushed"
                );
            }
        }
        // Earlier rounds' data survived this crash too.
        for b in all_blobs.iter().filter(|b| b.acked) {
            check_blob(&server, b).await;
        }
        for m in all_manifests.iter().filter(|m| m.acked) {
            check_manifest(&server, m).await;
        }
        check_upload_dir(&server, &repos).await;

        // The registry takes the lost pushes now.
        for b in round_blobs.iter_mut().filter(|b| !b.acked) {
            let digest = server.push_blob(&b.repo, &b.bytes).await;
            assert_eq!(digest, b.digest);
            b.acked = true;
        }
        for m in round_manifests.iter_mut().filter(|m| !m.acked) {
            server
                .push_manifest_ok(&m.repo, Some(&m.tag), MT_OCI_MANIFEST, &m.bytes)
                .await;
            m.acked = true;
        }
        for b in &round_blobs {
            check_blob(&server, b).await;
        }
        for m in &round_manifests {
            check_manifest(&server, m).await;
        }
        all_blobs.extend(round_blobs);
        all_manifests.extend(round_manifests);
        eprintln!("round {round}: verified in {:?}", started.elapsed());
    }
}

/// Sessions idle past `upload_ttl` are expired when the server starts, bytes and all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_uploads_are_removed_at_startup() {
    let mut server =
        TestServer::spawn_with(SpawnOptions::default().env("BERTH_UPLOAD_TTL", "1s")).await;
    let repo = unique_repo("crash-expiry");
    let location = server.open_session(&repo).await;
    let id = session_id(&location);
    let bytes = random_bytes(10_000);
    let headers = patch_chunk(&server, &location, 0, &bytes, "PATCH").await;
    let location = server.resolve(&require_header(&headers, "location", "PATCH"));
    let file = upload_file(&server, &id);
    assert_eq!(
        file_len(&file),
        Some(bytes.len() as u64),
        "the session's bytes are in {}",
        file.display()
    );

    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.restart().await;

    let resp = server.client().get(&location).send().await.unwrap();
    expect_error(
        resp,
        &[404],
        &["BLOB_UPLOAD_UNKNOWN"],
        "GET an expired session after restart",
    )
    .await;
    assert!(
        !file.exists(),
        "the expired session's file {} is still there",
        file.display()
    );
    let leftovers: Vec<String> = std::fs::read_dir(file.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .collect();
    assert!(
        !leftovers.contains(&id),
        "uploads/ still holds {id}: {leftovers:?}"
    );

    // A fresh session still works under the short TTL.
    let location = server.open_session(&repo).await;
    patch_chunk(&server, &location, 0, &bytes, "PATCH a fresh session").await;
    let digest = sha256(&bytes);
    let resp = server
        .client()
        .put(with_digest(&location, &digest))
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    expect_status(resp, 201, "PUT a fresh session").await;
    assert_blob(&server, &repo, &digest, &bytes, "fresh blob").await;
}

/// Drops the kernel's clean page cache (`echo 3 > /proc/sys/vm/drop_caches`), which needs
/// root and a writable `/proc/sys`. This is not a power cut: dirty pages that were never
/// written back stay in memory and still reach the restarted server, so it shows only that
/// what was acknowledged is read back from the disk, not that it was fsynced. The checks
/// that it was are the group commit's flush before every answer to a write
/// (crates/meta/tests/durability.rs, crates/http/tests/management/operations.rs) and the
/// fsync before a blob's rename (crates/storage).
fn drop_page_cache() -> bool {
    match std::fs::write("/proc/sys/vm/drop_caches", b"3\n") {
        Ok(()) => true,
        Err(err) => {
            eprintln!("not dropping the page cache ({err}): needs root and a writable /proc/sys");
            false
        }
    }
}

/// Every acknowledged push, tag move and delete is still there after `kill -9` and (when
/// this runs as root) a dropped page cache, read back from disk byte for byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_kill_and_a_dropped_page_cache() {
    let mut server = TestServer::spawn().await;
    let repo = unique_repo("durable");
    let mut pushed = Vec::new();
    for i in 0..12 {
        pushed.push((
            format!("v{i}"),
            server
                .push_random_image(&repo, Some(&format!("v{i}")))
                .await,
        ));
    }
    // A tag moved and a tag deleted are acknowledged writes too.
    let moved = server.push_random_image(&repo, Some("v0")).await;
    pushed[0].1 = moved;
    let resp = server
        .request(Method::DELETE, &format!("/v2/{repo}/manifests/v1"))
        .send()
        .await
        .unwrap();
    expect_status(resp, 202, "DELETE tag v1").await;
    let deleted = pushed.remove(1);

    server.kill_hard();
    let dropped = drop_page_cache();
    server.restart().await;

    for (tag, image) in &pushed {
        let context = format!("{repo}:{tag} after kill -9 (page cache dropped: {dropped})");
        let (headers, body) =
            expect_status(server.get_manifest(&repo, tag).await, 200, &context).await;
        assert!(body == image.bytes, "{context}: wrong manifest bytes");
        assert_eq!(
            header(&headers, "docker-content-digest").as_deref(),
            Some(image.digest.as_str()),
            "{context}"
        );
        for digest in &image.blobs {
            let (_, blob) =
                expect_status(server.get_blob(&repo, digest).await, 200, &context).await;
            assert_eq!(&sha256(&blob), digest, "{context}: blob {digest}");
        }
    }
    let resp = server.get_manifest(&repo, &deleted.0).await;
    expect_status(resp, 404, "the deleted tag stays deleted").await;
    let mut tags = server.tags(&repo).await;
    tags.sort();
    let mut expected: Vec<String> = pushed.iter().map(|(tag, _)| tag.clone()).collect();
    expected.sort();
    assert_eq!(tags, expected);
}
