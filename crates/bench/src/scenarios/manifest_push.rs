//! Manifest PUTs under concurrent load: each a new manifest (its own bytes, its own tag) over
//! blobs already in the repository, so every PUT is one committed database transaction.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;

use crate::data::{sha256_digest, WyRand};
use crate::registry::{image_config, OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};
use crate::stats::percentile;
use crate::target::{Cost, Target};
use crate::Result;

pub const REPO: &str = "bench/manifest-push";

/// The blobs every pushed manifest references, pushed once (not timed).
#[derive(Debug, Clone)]
pub struct Blobs {
    config: (String, usize),
    layer: (String, usize),
}

pub async fn setup(t: &Target, repo: &str) -> Result<Blobs> {
    let config = image_config("manifest-push");
    let mut layer = vec![0u8; 16 * 1024];
    WyRand::new(7).fill(&mut layer);
    let (cd, ld) = (sha256_digest(&config), sha256_digest(&layer));
    t.push_blob(repo, &cd, config.clone()).await?;
    t.push_blob(repo, &ld, layer.clone().into()).await?;
    Ok(Blobs {
        config: (cd, config.len()),
        layer: (ld, layer.len()),
    })
}

/// Manifest `i` of `round`: an annotation makes its bytes (and digest) its own.
fn manifest(blobs: &Blobs, round: usize, i: usize) -> Bytes {
    let m = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, "digest": blobs.config.0, "size": blobs.config.1},
        "layers": [{"mediaType": OCI_LAYER, "digest": blobs.layer.0, "size": blobs.layer.1}],
        "annotations": {"org.example.bench": format!("round {round} manifest {i}")},
    });
    Bytes::from(serde_json::to_vec(&m).expect("manifest serializes"))
}

#[derive(Debug)]
pub struct Outcome {
    pub manifests: usize,
    pub cost: Cost,
    pub p99: Duration,
}

/// PUT `count` new manifests, each under its own tag, from `concurrency` tasks.
pub async fn run(
    t: &Arc<Target>,
    blobs: &Blobs,
    repo: &'static str,
    round: usize,
    count: usize,
    concurrency: usize,
) -> Result<Outcome> {
    let bodies: Arc<Vec<Bytes>> = Arc::new((0..count).map(|i| manifest(blobs, round, i)).collect());
    let next = Arc::new(AtomicUsize::new(0));
    let latencies = Arc::new(Mutex::new(Vec::with_capacity(count)));
    let (_, cost) = t
        .measure(async {
            let workers: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (t, bodies, next, latencies) =
                        (t.clone(), bodies.clone(), next.clone(), latencies.clone());
                    tokio::spawn(async move {
                        let mut mine = Vec::new();
                        loop {
                            let i = next.fetch_add(1, Ordering::Relaxed);
                            let Some(body) = bodies.get(i) else { break };
                            let start = Instant::now();
                            let tag = format!("r{round}-{i}");
                            if let Err(e) = t.put_manifest(repo, &tag, body.clone()).await {
                                next.store(usize::MAX / 2, Ordering::Relaxed);
                                return Err(e);
                            }
                            mine.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        latencies.lock().expect("latencies").extend(mine);
                        Ok::<_, crate::Error>(())
                    })
                })
                .collect();
            for w in workers {
                w.await??;
            }
            Ok(())
        })
        .await?;
    let mut all = std::mem::take(&mut *latencies.lock().expect("latencies"));
    let p99 = percentile(&mut all, 99.0).unwrap_or(0);
    Ok(Outcome {
        manifests: all.len(),
        cost,
        p99: Duration::from_micros(u64::from(p99)),
    })
}

/// The repository the webhook variant pushes to: two webhooks listen on it.
pub const HOOKED_REPO: &str = "bench/manifest-push-hooks";

/// A webhook receiver on loopback that answers every request `204` and counts them. Plain
/// HTTP/1.1 over tokio: the benchmark measures Berth, not a web framework.
pub async fn start_receiver() -> Result<(String, Arc<AtomicUsize>)> {
    use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let count = Arc::new(AtomicUsize::new(0));
    let counted = count.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let counted = counted.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(socket);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    loop {
                        line.clear();
                        match reader.read_line(&mut line).await {
                            Ok(0) | Err(_) => return,
                            Ok(_) => {}
                        }
                        if line == "\r\n" {
                            break;
                        }
                        if let Some((name, value)) = line.split_once(':') {
                            if name.eq_ignore_ascii_case("content-length") {
                                length = value.trim().parse().unwrap_or(0);
                            }
                        }
                    }
                    let mut body = vec![0u8; length];
                    if reader.read_exact(&mut body).await.is_err() {
                        return;
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let answer = b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n";
                    if reader.get_mut().write_all(answer).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    Ok((url, count))
}

/// Creates `n` push webhooks on `repo` for `url` through Berth's API.
pub async fn create_webhooks(t: &Target, repo: &str, url: &str, n: usize) -> Result<()> {
    for i in 0..n {
        let response = t
            .client
            .post(t.url(&format!("api/v1/repositories/{repo}/-/webhooks")))
            .json(&serde_json::json!({ "name": format!("bench {i}"), "hook_url": url }))
            .send()
            .await?;
        if response.status() != reqwest::StatusCode::CREATED {
            let status = response.status();
            let body = response.text().await.unwrap_or_default();
            return Err(format!("creating a webhook: {status}: {body}").into());
        }
    }
    Ok(())
}

/// Waits until `count` reaches `expected` (at most `limit`); how long it took.
pub async fn drained(count: &AtomicUsize, expected: usize, limit: Duration) -> Option<Duration> {
    let start = Instant::now();
    while count.load(Ordering::SeqCst) < expected {
        if start.elapsed() > limit {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Some(start.elapsed())
}
