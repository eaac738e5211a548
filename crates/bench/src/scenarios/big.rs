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

/// Push the blob (unmeasured) unless the target already has it.
pub async fn ensure(t: &Target, blob: &BigBlob) -> Result<()> {
    if !t.blob_exists(REPO, &blob.digest).await? {
        push_monolithic(t, blob).await?;
    }
    Ok(())
}
