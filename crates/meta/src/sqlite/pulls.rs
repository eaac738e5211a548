//! Pull activity on SQLite: a batch of manifest pulls written in one transaction as
//! per-repository counts and last-pulled times, and per-tag and per-manifest last-pulled
//! times.

use super::backend;
use super::WriteTx;
use berth_core::hub::{counts_as_pull, tally_pulls};
use berth_core::ports::{MetaError, PullEvent};
pub(super) async fn record(
    write: &super::writer::Writer,
    pulls: &[PullEvent],
) -> Result<(), MetaError> {
    if pulls.is_empty() {
        return Ok(());
    }
    let mut tx = super::begin_write(write).await?;
    for (repo, manifests) in tally_pulls(pulls) {
        let repo_id: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
            .bind(repo)
            .fetch_optional(&mut *tx)
            .await
            .map_err(backend)?;
        // Deleted since the pull: nothing left to count against.
        let Some(repo_id) = repo_id else { continue };
        let mut counted = 0u64;
        let mut last_at = i64::MIN;
        for ((digest, tag), tally) in manifests {
            last_at = last_at.max(tally.last_at);
            // Whether it is an index's child is read only for pulls by digest.
            let by_tag = tag.is_some();
            if counts_as_pull(
                by_tag,
                !by_tag && is_child_of_index(&mut tx, repo_id, &digest).await?,
            ) {
                counted += tally.pulls;
            }
            touch_tags(&mut tx, repo_id, &digest, tag, tally.last_at).await?;
            touch_manifest(&mut tx, repo_id, &digest, tally.last_at).await?;
        }
        sqlx::query(
            "UPDATE repositories SET pull_count = pull_count + ?1, \
             last_pulled_at = max(coalesce(last_pulled_at, ?2), ?2) WHERE id = ?3",
        )
        .bind(i64::try_from(counted).unwrap_or(i64::MAX))
        .bind(last_at)
        .bind(repo_id)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    tx.commit().await.map_err(backend)
}

/// Whether `digest` is one of the manifests of an index in the repository.
async fn is_child_of_index(
    tx: &mut WriteTx,
    repo_id: i64,
    digest: &str,
) -> Result<bool, MetaError> {
    let child: i64 = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM manifest_children c \
         JOIN repository_manifests rm ON rm.digest = c.manifest \
         WHERE c.child = ? AND rm.repository_id = ?)",
    )
    .bind(digest)
    .bind(repo_id)
    .fetch_one(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(child != 0)
}

/// Moves the last-pulled time of the tags a pull went through: the tag asked for, or for a
/// pull by digest every tag pointing at the manifest or at an index holding it.
async fn touch_tags(
    tx: &mut WriteTx,
    repo_id: i64,
    digest: &str,
    tag: Option<&str>,
    at: i64,
) -> Result<(), MetaError> {
    let query = match tag {
        Some(tag) => sqlx::query(
            "UPDATE tags SET last_pulled_at = max(coalesce(last_pulled_at, ?1), ?1) \
             WHERE repository_id = ?2 AND name = ?3",
        )
        .bind(at)
        .bind(repo_id)
        .bind(tag),
        None => sqlx::query(
            "UPDATE tags SET last_pulled_at = max(coalesce(last_pulled_at, ?1), ?1) \
             WHERE repository_id = ?2 AND (digest = ?3 \
             OR digest IN (SELECT manifest FROM manifest_children WHERE child = ?3))",
        )
        .bind(at)
        .bind(repo_id)
        .bind(digest),
    };
    query.execute(&mut **tx).await.map_err(backend)?;
    Ok(())
}

/// Moves the last-pulled time of the manifest itself, which retention reads for manifests
/// no tag points at.
async fn touch_manifest(
    tx: &mut WriteTx,
    repo_id: i64,
    digest: &str,
    at: i64,
) -> Result<(), MetaError> {
    sqlx::query(
        "UPDATE repository_manifests SET last_pulled_at = max(coalesce(last_pulled_at, ?1), ?1) \
         WHERE repository_id = ?2 AND digest = ?3",
    )
    .bind(at)
    .bind(repo_id)
    .bind(digest)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    Ok(())
}
