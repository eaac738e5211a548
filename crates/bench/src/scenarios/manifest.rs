//! Manifest GET by tag under concurrent load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::data::{sha256_digest, WyRand};
use crate::registry::{image_config, image_manifest};
use crate::stats::percentile;
use crate::target::{Cost, Target};
use crate::Result;

pub const REPO: &str = "bench/manifest";
pub const TAG: &str = "latest";

/// Push a small image (config blob, one 32 KiB layer, OCI manifest) to
/// `bench/manifest:latest`.
pub async fn setup(t: &Target) -> Result<()> {
    let config = image_config("manifest");
    let mut layer = vec![0u8; 32 * 1024];
    WyRand::new(42).fill(&mut layer);
    let (cd, ld) = (sha256_digest(&config), sha256_digest(&layer));
    let manifest = image_manifest((&cd, config.len()), &[(&ld, layer.len())]);
    t.push_blob(REPO, &cd, config.clone()).await?;
    t.push_blob(REPO, &ld, layer.clone().into()).await?;
    t.put_manifest(REPO, TAG, manifest).await
}

#[derive(Debug)]
pub struct Outcome {
    pub requests: u64,
    pub cost: Cost,
    pub p99: Duration,
}

/// GET the manifest from `concurrency` tasks until `duration` has passed or
/// `max_requests` have been sent.
pub async fn run(
    t: &Arc<Target>,
    concurrency: usize,
    duration: Duration,
    max_requests: u64,
) -> Result<Outcome> {
    let url = t.url(&format!("v2/{REPO}/manifests/{TAG}"));
    let sent = Arc::new(AtomicU64::new(0));
    let ((requests, mut latencies), cost) = t
        .measure(async {
            let deadline = Instant::now() + duration;
            let workers: Vec<_> = (0..concurrency)
                .map(|_| {
                    let (t, url, sent) = (t.clone(), url.clone(), sent.clone());
                    tokio::spawn(async move {
                        let mut lat: Vec<u32> = Vec::with_capacity(4096);
                        while Instant::now() < deadline
                            && sent.fetch_add(1, Ordering::Relaxed) < max_requests
                        {
                            let start = Instant::now();
                            t.get_manifest(url.clone()).await?;
                            lat.push(start.elapsed().as_micros().min(u32::MAX as u128) as u32);
                        }
                        Ok::<_, crate::Error>(lat)
                    })
                })
                .collect();
            let mut all = Vec::new();
            for w in workers {
                all.extend(w.await??);
            }
            Ok((all.len() as u64, all))
        })
        .await?;
    let p99 = percentile(&mut latencies, 99.0).unwrap_or(0);
    Ok(Outcome {
        requests,
        cost,
        p99: Duration::from_micros(u64::from(p99)),
    })
}
