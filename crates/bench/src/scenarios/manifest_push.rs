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

pub async fn setup(t: &Target) -> Result<Blobs> {
    let config = image_config("manifest-push");
    let mut layer = vec![0u8; 16 * 1024];
    WyRand::new(7).fill(&mut layer);
    let (cd, ld) = (sha256_digest(&config), sha256_digest(&layer));
    t.push_blob(REPO, &cd, config.clone()).await?;
    t.push_blob(REPO, &ld, layer.clone().into()).await?;
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
                            if let Err(e) = t.put_manifest(REPO, &tag, body.clone()).await {
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
