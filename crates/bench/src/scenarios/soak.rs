//! Soak: many clients pushing and pulling small images for a long time, with a large blob
//! pushed every few seconds; afterwards every acknowledged push is pulled and checked, and
//! the server's resident memory over the run is reported.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use reqwest::header::ACCEPT;
use reqwest::{Body, Method, StatusCode};

use crate::data::{sha256_digest, BigBlob, WyRand};
use crate::registry::{image_config, image_manifest, OCI_MANIFEST};
use crate::stats::percentile;
use crate::target::Target;
use crate::Result;

const BIG_REPO: &str = "soak/big";
/// No request of the soak may take longer than this; one that does counts as an error.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Error messages kept for the report (all are counted).
const KEPT_ERRORS: usize = 20;

#[derive(Debug, Clone)]
pub struct Options {
    pub duration: Duration,
    pub clients: usize,
    /// Repositories the clients' images are spread over.
    pub repos: usize,
    pub big_every: Duration,
    pub big_size: u64,
    pub rss_every: Duration,
    pub verify_concurrency: usize,
    pub seed: u64,
}

/// The small request kinds whose latency is reported (and must stay low).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    BlobHead,
    UploadPost,
    UploadPut,
    ManifestPut,
    ManifestGet,
    BlobGet,
}

impl Kind {
    pub fn label(self) -> &'static str {
        match self {
            Kind::BlobHead => "blob HEAD",
            Kind::UploadPost => "upload POST",
            Kind::UploadPut => "upload PUT (monolithic)",
            Kind::ManifestPut => "manifest PUT",
            Kind::ManifestGet => "manifest GET",
            Kind::BlobGet => "blob GET",
        }
    }
}

/// An image whose manifest `PUT` was answered `201`.
#[derive(Debug, Clone)]
struct Acknowledged {
    repo: String,
    tag: String,
    manifest_digest: String,
    blobs: Vec<(String, usize)>,
}

#[derive(Debug, Default)]
struct Errors {
    count: u64,
    kept: Vec<String>,
}

impl Errors {
    fn add(&mut self, what: String) {
        self.count += 1;
        if self.kept.len() < KEPT_ERRORS {
            eprintln!("[soak] error: {what}");
            self.kept.push(what);
        }
    }
}

/// Latency percentiles of one request kind, in milliseconds.
#[derive(Debug, Clone, serde::Serialize)]
pub struct KindSummary {
    pub kind: &'static str,
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Outcome {
    pub target: String,
    pub seconds: f64,
    pub requests: u64,
    pub errors: u64,
    pub kept_errors: Vec<String>,
    pub images_acknowledged: usize,
    pub images_intact: usize,
    pub big_blobs_acknowledged: usize,
    pub big_blobs_intact: usize,
    pub big_push_p50_ms: Option<f64>,
    pub kinds: Vec<KindSummary>,
    /// (seconds since the start, resident MiB).
    pub rss: Vec<(f64, f64)>,
    /// (seconds since the start, anonymous resident MiB: without mapped file pages such as
    /// the database's).
    pub rss_anon: Vec<(f64, f64)>,
    /// Resident memory at the end minus at the middle of the run.
    pub rss_growth_second_half_mib: Option<f64>,
    /// Least-squares slope of the second half's samples.
    pub rss_slope_second_half_mib_per_min: Option<f64>,
    pub rss_anon_growth_second_half_mib: Option<f64>,
    pub rss_anon_slope_second_half_mib_per_min: Option<f64>,
}

async fn timed<T>(what: &str, f: impl std::future::Future<Output = Result<T>>) -> Result<T> {
    match tokio::time::timeout(REQUEST_TIMEOUT, f).await {
        Ok(out) => out,
        Err(_) => Err(format!("{what}: no answer within {REQUEST_TIMEOUT:?}").into()),
    }
}

type Latencies = BTreeMap<Kind, Vec<u32>>;

fn note(latencies: &mut Latencies, kind: Kind, started: Instant) {
    let micros = started.elapsed().as_micros().min(u128::from(u32::MAX)) as u32;
    latencies.entry(kind).or_default().push(micros);
}

/// GET a manifest by tag and check that its bytes hash to `digest`.
async fn pull_manifest(t: &Target, repo: &str, tag: &str, digest: &str) -> Result<()> {
    let url = t.url(&format!("v2/{repo}/manifests/{tag}"));
    let resp = t
        .request(Method::GET, url)
        .await?
        .header(ACCEPT, OCI_MANIFEST)
        .send()
        .await?;
    if resp.status() != StatusCode::OK {
        return Err(format!("GET manifest {repo}:{tag}: {}", resp.status()).into());
    }
    let body = resp.bytes().await?;
    let got = sha256_digest(&body);
    if got != digest {
        return Err(format!("manifest {repo}:{tag} hashes to {got}, pushed {digest}").into());
    }
    Ok(())
}

/// POST, then PUT `?digest=` with the whole blob; each timed as its own kind.
async fn push_small_blob(
    t: &Target,
    repo: &str,
    digest: &str,
    data: Bytes,
    latencies: &mut Latencies,
) -> Result<()> {
    let started = Instant::now();
    let upload = timed("upload POST", t.start_upload(repo)).await?;
    note(latencies, Kind::UploadPost, started);
    let started = Instant::now();
    let len = data.len() as u64;
    timed(
        "upload PUT",
        t.finish_upload(upload, digest, Body::from(data), len),
    )
    .await?;
    note(latencies, Kind::UploadPut, started);
    Ok(())
}

/// One client: pushes a new image (checking for its layer first, as docker does) about
/// one time in three, otherwise pulls the manifest and layer of an image pushed before.
async fn client(
    t: Arc<Target>,
    id: usize,
    options: Options,
    deadline: Instant,
    acknowledged: Arc<Mutex<Vec<Acknowledged>>>,
    errors: Arc<Mutex<Errors>>,
) -> (Latencies, u64) {
    let mut rng = WyRand::new(options.seed ^ ((id as u64 + 1) << 40));
    let mut latencies = Latencies::new();
    let mut requests = 0u64;
    let mut pushed = 0u64;
    while Instant::now() < deadline {
        let known = acknowledged.lock().map_or(0, |a| a.len());
        let push = known == 0 || rng.range(0, 2) == 0;
        let outcome = if push {
            let repo = format!("soak/r{}", rng.range(0, options.repos as u64 - 1));
            let tag = format!("c{id}-{pushed}");
            pushed += 1;
            requests += 4;
            push_image(&t, &repo, &tag, &mut rng, &mut latencies)
                .await
                .map(|image| {
                    requests += 1;
                    if let Ok(mut list) = acknowledged.lock() {
                        list.push(image);
                    }
                })
        } else {
            let image = acknowledged
                .lock()
                .ok()
                .and_then(|list| list.get(rng.range(0, known as u64 - 1) as usize).cloned());
            match image {
                Some(image) => {
                    requests += 2;
                    pull_image(&t, &image, &mut latencies).await
                }
                None => Ok(()),
            }
        };
        if let Err(e) = outcome {
            if let Ok(mut errors) = errors.lock() {
                errors.add(format!("client {id}: {e}"));
            }
        }
    }
    (latencies, requests)
}

async fn push_image(
    t: &Target,
    repo: &str,
    tag: &str,
    rng: &mut WyRand,
    latencies: &mut Latencies,
) -> Result<Acknowledged> {
    let config = image_config(&format!("{repo}:{tag}"));
    let mut layer = vec![0u8; rng.range(4 * 1024, 64 * 1024) as usize];
    rng.fill(&mut layer);
    let layer = Bytes::from(layer);
    let (config_digest, layer_digest) = (sha256_digest(&config), sha256_digest(&layer));
    let started = Instant::now();
    let exists = timed("blob HEAD", t.blob_exists(repo, &layer_digest)).await?;
    note(latencies, Kind::BlobHead, started);
    if exists {
        return Err(format!("a new layer {layer_digest} already exists in {repo}").into());
    }
    push_small_blob(t, repo, &config_digest, config.clone(), latencies).await?;
    push_small_blob(t, repo, &layer_digest, layer.clone(), latencies).await?;
    let manifest = image_manifest(
        (&config_digest, config.len()),
        &[(&layer_digest, layer.len())],
    );
    let manifest_digest = sha256_digest(&manifest);
    let started = Instant::now();
    timed("manifest PUT", t.put_manifest(repo, tag, manifest)).await?;
    note(latencies, Kind::ManifestPut, started);
    Ok(Acknowledged {
        repo: repo.to_owned(),
        tag: tag.to_owned(),
        manifest_digest,
        blobs: vec![(config_digest, config.len()), (layer_digest, layer.len())],
    })
}

async fn pull_image(t: &Target, image: &Acknowledged, latencies: &mut Latencies) -> Result<()> {
    let started = Instant::now();
    timed(
        "manifest GET",
        pull_manifest(t, &image.repo, &image.tag, &image.manifest_digest),
    )
    .await?;
    note(latencies, Kind::ManifestGet, started);
    let (digest, len) = &image.blobs[1];
    let started = Instant::now();
    let got = timed("blob GET", t.pull_blob(&image.repo, digest, true)).await?;
    note(latencies, Kind::BlobGet, started);
    if got != *len as u64 {
        return Err(format!("blob {digest}: {got} bytes, pushed {len}").into());
    }
    Ok(())
}

/// Pushes a large blob every `big_every` until the deadline; returns the acknowledged ones
/// and how long each push took.
async fn big_pusher(
    t: Arc<Target>,
    options: Options,
    deadline: Instant,
    errors: Arc<Mutex<Errors>>,
) -> (Vec<BigBlob>, Vec<u32>) {
    let mut pushed = Vec::new();
    let mut took = Vec::new();
    let mut tick = tokio::time::interval(options.big_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u64;
    loop {
        tick.tick().await;
        if Instant::now() >= deadline {
            break;
        }
        let (seed, size) = (
            options.seed.wrapping_mul(31).wrapping_add(n),
            options.big_size,
        );
        n += 1;
        let blob = match tokio::task::spawn_blocking(move || BigBlob::new(seed, size)).await {
            Ok(blob) => blob,
            Err(e) => {
                if let Ok(mut errors) = errors.lock() {
                    errors.add(format!("big blob generation: {e}"));
                }
                continue;
            }
        };
        let started = Instant::now();
        let res = timed("big blob push", async {
            let upload = t.start_upload(BIG_REPO).await?;
            let body = Body::wrap_stream(blob.stream(0, blob.size));
            t.finish_upload(upload, &blob.digest, body, blob.size).await
        })
        .await;
        match res {
            Ok(()) => {
                took.push(started.elapsed().as_millis().min(u128::from(u32::MAX)) as u32);
                pushed.push(blob);
            }
            Err(e) => {
                if let Ok(mut errors) = errors.lock() {
                    errors.add(format!("big blob {}: {e}", blob.digest));
                }
            }
        }
    }
    (pushed, took)
}

/// Resident memory (VmRSS, RssAnon) of the server every `every` until the deadline.
async fn rss_sampler(
    t: Arc<Target>,
    every: Duration,
    start: Instant,
    deadline: Instant,
) -> Vec<(f64, f64, f64)> {
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        if let Some((rss, anon)) = t.rss_mib() {
            let at = start.elapsed().as_secs_f64();
            eprintln!(
                "[soak] {}: {at:.0} s, RSS {rss:.1} MiB (anonymous {anon:.1})",
                t.name
            );
            samples.push((at, rss, anon));
        }
        if Instant::now() >= deadline {
            return samples;
        }
    }
}

/// (growth end − middle, least-squares slope per minute) over the second half.
fn second_half_growth(samples: &[(f64, f64)]) -> (Option<f64>, Option<f64>) {
    let Some(&(end, _)) = samples.last() else {
        return (None, None);
    };
    let half: Vec<(f64, f64)> = samples
        .iter()
        .copied()
        .filter(|(at, _)| *at >= end / 2.0)
        .collect();
    if half.len() < 2 {
        return (None, None);
    }
    let growth = half[half.len() - 1].1 - half[0].1;
    let n = half.len() as f64;
    let mean_t = half.iter().map(|(t, _)| t).sum::<f64>() / n;
    let mean_r = half.iter().map(|(_, r)| r).sum::<f64>() / n;
    let covariance: f64 = half.iter().map(|(t, r)| (t - mean_t) * (r - mean_r)).sum();
    let variance: f64 = half.iter().map(|(t, _)| (t - mean_t).powi(2)).sum();
    let slope = (variance > 0.0).then(|| covariance / variance * 60.0);
    (Some(growth), slope)
}

/// Pulls every acknowledged image and large blob and checks their digests.
async fn verify(
    t: &Arc<Target>,
    images: Vec<Acknowledged>,
    bigs: &[BigBlob],
    concurrency: usize,
    errors: &Mutex<Errors>,
) -> (usize, usize) {
    let check_image = |image: Acknowledged| {
        let t = t.clone();
        async move {
            pull_manifest(&t, &image.repo, &image.tag, &image.manifest_digest).await?;
            for (digest, len) in &image.blobs {
                let got = t.pull_blob(&image.repo, digest, true).await?;
                if got != *len as u64 {
                    return Err(format!("blob {digest}: {got} bytes, pushed {len}").into());
                }
            }
            Result::Ok(())
        }
    };
    let mut intact_images = 0;
    let mut results = futures_util::stream::iter(images.into_iter().map(check_image))
        .buffer_unordered(concurrency.max(1));
    while let Some(result) = results.next().await {
        match result {
            Ok(()) => intact_images += 1,
            Err(e) => {
                if let Ok(mut errors) = errors.lock() {
                    errors.add(format!("verify: {e}"));
                }
            }
        }
    }
    let mut intact_bigs = 0;
    for blob in bigs {
        match t.pull_blob(BIG_REPO, &blob.digest, true).await {
            Ok(n) if n == blob.size => intact_bigs += 1,
            Ok(n) => {
                if let Ok(mut errors) = errors.lock() {
                    errors.add(format!("verify big blob {}: {n} bytes", blob.digest));
                }
            }
            Err(e) => {
                if let Ok(mut errors) = errors.lock() {
                    errors.add(format!("verify big blob {}: {e}", blob.digest));
                }
            }
        }
    }
    (intact_images, intact_bigs)
}

pub async fn run(t: &Arc<Target>, options: &Options) -> Result<Outcome> {
    let start = Instant::now();
    let deadline = start + options.duration;
    let acknowledged = Arc::new(Mutex::new(Vec::new()));
    let errors = Arc::new(Mutex::new(Errors::default()));
    eprintln!(
        "[soak] {}: {} clients for {:.0} s, a {} MiB blob every {:.0} s",
        t.name,
        options.clients,
        options.duration.as_secs_f64(),
        options.big_size >> 20,
        options.big_every.as_secs_f64()
    );
    let sampler = tokio::spawn(rss_sampler(t.clone(), options.rss_every, start, deadline));
    let big = tokio::spawn(big_pusher(
        t.clone(),
        options.clone(),
        deadline,
        errors.clone(),
    ));
    let clients: Vec<_> = (0..options.clients)
        .map(|id| {
            tokio::spawn(client(
                t.clone(),
                id,
                options.clone(),
                deadline,
                acknowledged.clone(),
                errors.clone(),
            ))
        })
        .collect();
    let mut latencies = Latencies::new();
    let mut requests = 0;
    for c in clients {
        let (mine, sent) = c.await?;
        requests += sent;
        for (kind, mut values) in mine {
            latencies.entry(kind).or_default().append(&mut values);
        }
    }
    let (bigs, mut big_took) = big.await?;
    let samples = sampler.await?;
    let rss: Vec<(f64, f64)> = samples.iter().map(|s| (s.0, s.1)).collect();
    let rss_anon: Vec<(f64, f64)> = samples.iter().map(|s| (s.0, s.2)).collect();
    let seconds = start.elapsed().as_secs_f64();
    requests += 2 * bigs.len() as u64;

    let images: Vec<Acknowledged> = acknowledged.lock().map(|a| a.clone()).unwrap_or_default();
    let images_acknowledged = images.len();
    eprintln!(
        "[soak] {}: {requests} requests in {seconds:.0} s; verifying {images_acknowledged} images and {} large blobs ...",
        t.name,
        bigs.len()
    );
    let (images_intact, big_blobs_intact) =
        verify(t, images, &bigs, options.verify_concurrency, &errors).await;
    let kinds = latencies
        .into_iter()
        .map(|(kind, mut values)| {
            let ms = |p: f64, v: &mut [u32]| percentile(v, p).map_or(0.0, |us| f64::from(us) / 1e3);
            KindSummary {
                kind: kind.label(),
                count: values.len(),
                p50_ms: ms(50.0, &mut values),
                p99_ms: ms(99.0, &mut values),
                max_ms: ms(100.0, &mut values),
            }
        })
        .collect();
    let (growth, slope) = second_half_growth(&rss);
    let (anon_growth, anon_slope) = second_half_growth(&rss_anon);
    let errors = std::mem::take(&mut *errors.lock().map_err(|_| "errors lock poisoned")?);
    Ok(Outcome {
        target: t.name.clone(),
        seconds,
        requests,
        errors: errors.count,
        kept_errors: errors.kept,
        images_acknowledged,
        images_intact,
        big_blobs_acknowledged: bigs.len(),
        big_blobs_intact,
        big_push_p50_ms: percentile(&mut big_took, 50.0).map(f64::from),
        kinds,
        rss,
        rss_anon,
        rss_growth_second_half_mib: growth,
        rss_slope_second_half_mib_per_min: slope,
        rss_anon_growth_second_half_mib: anon_growth,
        rss_anon_slope_second_half_mib_per_min: anon_slope,
    })
}

/// The outcome as markdown.
pub fn markdown(o: &Outcome) -> String {
    let opt =
        |v: Option<f64>, prec: usize| v.map_or_else(|| "n/a".into(), |v| format!("{v:.prec$}"));
    let mut md = format!(
        "### Soak: {} ({:.1} min)\n\n\
         - requests: {} ({:.0}/s), errors: {}\n\
         - images acknowledged: {}, intact afterwards: {}\n\
         - {} MiB blobs acknowledged: {}, intact afterwards: {} (push p50 {} ms)\n\
         - RSS: first {} MiB, middle {} MiB, last {} MiB, peak {} MiB; second half: growth {} MiB, slope {} MiB/min\n\
         - anonymous RSS (without mapped file pages): first {} MiB, middle {} MiB, last {} MiB; second half: growth {} MiB, slope {} MiB/min\n\n\
         | request | count | p50 ms | p99 ms | max ms |\n| --- | --- | --- | --- | --- |\n",
        o.target,
        o.seconds / 60.0,
        o.requests,
        o.requests as f64 / o.seconds.max(1e-9),
        o.errors,
        o.images_acknowledged,
        o.images_intact,
        "large",
        o.big_blobs_acknowledged,
        o.big_blobs_intact,
        opt(o.big_push_p50_ms, 0),
        opt(o.rss.first().map(|s| s.1), 1),
        opt(o.rss.get(o.rss.len() / 2).map(|s| s.1), 1),
        opt(o.rss.last().map(|s| s.1), 1),
        opt(o.rss.iter().map(|s| s.1).reduce(f64::max), 1),
        opt(o.rss_growth_second_half_mib, 1),
        opt(o.rss_slope_second_half_mib_per_min, 2),
        opt(o.rss_anon.first().map(|s| s.1), 1),
        opt(o.rss_anon.get(o.rss_anon.len() / 2).map(|s| s.1), 1),
        opt(o.rss_anon.last().map(|s| s.1), 1),
        opt(o.rss_anon_growth_second_half_mib, 1),
        opt(o.rss_anon_slope_second_half_mib_per_min, 2),
    );
    for k in &o.kinds {
        md.push_str(&format!(
            "| {} | {} | {:.1} | {:.1} | {:.0} |\n",
            k.kind, k.count, k.p50_ms, k.p99_ms, k.max_ms
        ));
    }
    if !o.kept_errors.is_empty() {
        md.push_str("\nFirst errors:\n\n");
        for e in &o.kept_errors {
            md.push_str(&format!("- {e}\n"));
        }
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_is_measured_over_the_second_half() {
        let flat_then_growing: Vec<(f64, f64)> = (0..=20)
            .map(|i| {
                let t = f64::from(i) * 30.0;
                (
                    t,
                    if i < 10 {
                        50.0 + f64::from(i)
                    } else {
                        60.0 + f64::from(i - 10) * 0.5
                    },
                )
            })
            .collect();
        let (growth, slope) = second_half_growth(&flat_then_growing);
        assert_eq!(growth, Some(5.0));
        assert!((slope.unwrap() - 1.0).abs() < 1e-9, "{slope:?}");
        assert_eq!(second_half_growth(&[(0.0, 1.0)]), (None, None));
    }
}
