//! `_catalog` over many repositories.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use reqwest::header::LINK;
use reqwest::{Method, StatusCode};

use crate::data::sha256_digest;
use crate::registry::{image_config, image_manifest};
use crate::target::Target;
use crate::Result;

fn repo_name(i: usize) -> String {
    format!("bench-catalog/r{i:05}")
}

/// Create `count` repositories, each holding one tiny blob (the config; the
/// first repo gets a real upload, the others a cross-repo mount or upload)
/// and one manifest tagged `v1`. Not measured.
pub async fn setup(t: &Arc<Target>, count: usize, concurrency: usize) -> Result<()> {
    let config = image_config("catalog");
    let digest = Arc::new(sha256_digest(&config));
    let manifest = image_manifest((&digest, config.len()), &[]);
    let first = repo_name(0);
    t.push_blob(&first, &digest, config.clone()).await?;
    t.put_manifest(&first, "v1", manifest.clone()).await?;

    let next = Arc::new(AtomicUsize::new(1));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (t, next, first, digest) = (t.clone(), next.clone(), first.clone(), digest.clone());
            let (config, manifest): (Bytes, Bytes) = (config.clone(), manifest.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, crate::Error>(());
                    }
                    let repo = repo_name(i);
                    t.mount_or_push_blob(&repo, &first, &digest, config.clone())
                        .await?;
                    t.put_manifest(&repo, "v1", manifest.clone()).await?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(())
}

/// Time listing the whole catalog with `?n=page`, following `Link` headers.
/// Returns the wall time and the number of repositories listed.
pub async fn list(t: &Target, page: usize) -> Result<(Duration, usize)> {
    #[derive(serde::Deserialize)]
    struct Catalog {
        repositories: Vec<String>,
    }
    let start = Instant::now();
    let mut url = t.url(&format!("v2/_catalog?n={page}"));
    let mut total = 0;
    loop {
        let resp = t.request(Method::GET, url.clone()).await?.send().await?;
        if resp.status() != StatusCode::OK {
            let status = resp.status();
            let body: String = resp
                .text()
                .await
                .unwrap_or_default()
                .chars()
                .take(300)
                .collect();
            return Err(format!("GET {url}: {status}: {body}").into());
        }
        let next = resp
            .headers()
            .get(LINK)
            .and_then(|l| l.to_str().ok())
            .and_then(|l| l.split_once('<'))
            .and_then(|(_, rest)| rest.split_once('>'))
            .map(|(target, _)| url.join(target))
            .transpose()?;
        let body: Catalog = serde_json::from_slice(&resp.bytes().await?)?;
        total += body.repositories.len();
        match next {
            Some(n) if !body.repositories.is_empty() => url = n,
            _ => break,
        }
    }
    Ok((start.elapsed(), total))
}
