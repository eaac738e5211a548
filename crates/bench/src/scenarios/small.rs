//! Many small blobs pushed and pulled with fixed concurrency.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use crate::data::SmallBlob;
use crate::target::{Cost, Target};
use crate::Result;

pub const REPO: &str = "bench/small";

/// Run `op` over every blob with `concurrency` worker tasks (spread over the
/// runtime's threads); stops at the first error.
async fn for_each<F, Fut>(
    t: &Arc<Target>,
    blobs: &Arc<Vec<SmallBlob>>,
    concurrency: usize,
    op: F,
) -> Result<()>
where
    F: Fn(Arc<Target>, SmallBlob) -> Fut + Send + Sync + Clone + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send,
{
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (t, blobs, next, op) = (t.clone(), blobs.clone(), next.clone(), op.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(b) = blobs.get(i) else { return Ok(()) };
                    if let Err(e) = op(t.clone(), b.clone()).await {
                        next.store(usize::MAX / 2, Ordering::Relaxed); // stop the others
                        return Err(e);
                    }
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    Ok(())
}

pub async fn push(
    t: &Arc<Target>,
    blobs: &Arc<Vec<SmallBlob>>,
    concurrency: usize,
) -> Result<Cost> {
    let (_, cost) = t
        .measure(for_each(t, blobs, concurrency, |t, b| async move {
            t.push_blob(REPO, &b.digest, b.data).await
        }))
        .await?;
    Ok(cost)
}

pub async fn pull(
    t: &Arc<Target>,
    blobs: &Arc<Vec<SmallBlob>>,
    concurrency: usize,
    verify: bool,
) -> Result<Cost> {
    let (_, cost) = t
        .measure(for_each(t, blobs, concurrency, move |t, b| async move {
            let n = t.pull_blob(REPO, &b.digest, verify).await?;
            if n != b.data.len() as u64 {
                return Err(format!(
                    "blob {}: got {n} bytes, expected {}",
                    b.digest,
                    b.data.len()
                )
                .into());
            }
            Ok(())
        }))
        .await?;
    Ok(cost)
}
