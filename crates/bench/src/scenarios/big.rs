//! One large blob: monolithic push, chunked push and pull.

use reqwest::Body;

use crate::data::BigBlob;
use crate::target::{Cost, Target};
use crate::Result;

pub const REPO: &str = "bench/big";

/// POST, then a single PUT ?digest= streaming the whole blob.
pub async fn push_monolithic(t: &Target, blob: &BigBlob) -> Result<Cost> {
    let (_, cost) = t
        .measure(async {
            let upload = t.start_upload(REPO).await?;
            let body = Body::wrap_stream(blob.stream(0, blob.size));
            t.finish_upload(upload, &blob.digest, body, blob.size).await
        })
        .await?;
    Ok(cost)
}

/// POST, PATCH `chunk` bytes at a time (following Location), then PUT ?digest=
/// with an empty body.
pub async fn push_chunked(t: &Target, blob: &BigBlob, chunk: u64) -> Result<Cost> {
    let (_, cost) = t
        .measure(async {
            let mut upload = t.start_upload(REPO).await?;
            let mut start = 0;
            while start < blob.size {
                let end = (start + chunk).min(blob.size);
                let body = Body::wrap_stream(blob.stream(start, end));
                upload = t.patch_chunk(upload, start, body, end - start).await?;
                start = end;
            }
            t.finish_upload(upload, &blob.digest, Body::from(""), 0)
                .await
        })
        .await?;
    Ok(cost)
}

/// GET the blob, reading and discarding it (hashing it too with `verify`).
pub async fn pull(t: &Target, blob: &BigBlob, verify: bool) -> Result<Cost> {
    let (n, cost) = t.measure(t.pull_blob(REPO, &blob.digest, verify)).await?;
    if n != blob.size {
        return Err(format!("pulled {n} bytes, expected {}", blob.size).into());
    }
    Ok(cost)
}

/// Pull the blob once, unmeasured, so that every target's measured pulls find it where
/// the first one left it (the page cache). Without it, on a store that keeps one copy of
/// identical content (Garage deduplicates blocks by hash), the first target of the first
/// round read the disk for all the others. Returns the host the bytes came from when the
/// registry redirected to another (its object store), `None` when it streamed them itself.
pub async fn warm_up(t: &Target, blob: &BigBlob) -> Result<Option<String>> {
    let (n, from) = t.pull_blob_from(REPO, &blob.digest, false).await?;
    if n != blob.size {
        return Err(format!("pulled {n} bytes, expected {}", blob.size).into());
    }
    let origin = |u: &reqwest::Url| (u.host_str().map(str::to_owned), u.port_or_known_default());
    Ok((origin(&from) != origin(&t.base)).then(|| {
        format!(
            "{}:{}",
            from.host_str().unwrap_or("?"),
            from.port_or_known_default().unwrap_or(0)
        )
    }))
}

/// Push the blob (unmeasured) unless the target already has it.
pub async fn ensure(t: &Target, blob: &BigBlob) -> Result<()> {
    if !t.blob_exists(REPO, &blob.digest).await? {
        push_monolithic(t, blob).await?;
    }
    Ok(())
}
