//! Repository rows: creating one with its namespace and visibility, and the counter that
//! cached catalogs watch.

use super::backend;
use super::events::record_event;
use super::WriteTx;
use berth_core::events::{EventKind, NewEvent};
use berth_core::ports::{MetaError, RepositoryRecord};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

pub(super) const REPOSITORY_COLUMNS: &str = "id, name, namespace, is_private, created_at";

/// The namespace a repository name belongs to: its first path component, or the whole
/// name when it has only one.
pub(super) fn namespace_of(name: &str) -> &str {
    name.split_once('/')
        .map_or(name, |(namespace, _)| namespace)
}

pub(super) fn repository_from_row(row: &SqliteRow) -> RepositoryRecord {
    RepositoryRecord {
        id: row.get("id"),
        name: row.get("name"),
        namespace: row.get("namespace"),
        is_private: row.get::<i64, _>("is_private") != 0,
        created_at: row.get("created_at"),
    }
}

/// Cached catalogs compare this counter to know they are stale; bump it in the same
/// transaction as every change to the set of repositories.
pub(super) async fn bump_catalog_version(tx: &mut WriteTx) -> Result<(), MetaError> {
    sqlx::query("UPDATE counters SET value = value + 1 WHERE name = 'repositories'")
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// Inserts the repository unless the name exists (then `None`), with its
/// `repository.created` event by `actor`. `private: None` takes the namespace's default, and
/// private when no account owns the namespace.
pub(super) async fn insert_repository(
    tx: &mut WriteTx,
    name: &str,
    private: Option<bool>,
    now: i64,
    actor: Option<&str>,
) -> Result<Option<RepositoryRecord>, MetaError> {
    let row = sqlx::query(&format!(
        "INSERT INTO repositories (name, namespace, is_private, created_at) \
         VALUES (?1, ?2, coalesce(?3, (SELECT default_private FROM namespaces WHERE name = ?2), 1), ?4) \
         ON CONFLICT(name) DO NOTHING RETURNING {REPOSITORY_COLUMNS}"
    ))
    .bind(name)
    .bind(namespace_of(name))
    .bind(private.map(i64::from))
    .bind(now)
    .fetch_optional(&mut **tx)
    .await
    .map_err(backend)?;
    let Some(row) = row else {
        return Ok(None);
    };
    bump_catalog_version(tx).await?;
    let record = repository_from_row(&row);
    let data = serde_json::json!({ "is_private": record.is_private });
    record_event(
        tx,
        NewEvent::about(EventKind::RepositoryCreated, name, actor, data),
        now,
    )
    .await?;
    Ok(Some(record))
}

/// The id of `repo`, creating the repository (as a push does, by `actor`) if it does not
/// exist yet.
pub(super) async fn ensure_repository(
    tx: &mut WriteTx,
    repo: &str,
    now: i64,
    actor: Option<&str>,
) -> Result<i64, MetaError> {
    let existing: Option<i64> = sqlx::query_scalar("SELECT id FROM repositories WHERE name = ?")
        .bind(repo)
        .fetch_optional(&mut **tx)
        .await
        .map_err(backend)?;
    if let Some(id) = existing {
        return Ok(id);
    }
    let created = insert_repository(tx, repo, None, now, actor).await?;
    created
        .map(|record| record.id)
        .ok_or_else(|| MetaError::Backend(format!("repository {repo} appeared mid-transaction")))
}

#[cfg(test)]
mod tests {
    use super::namespace_of;

    #[test]
    fn namespace_is_the_first_component() {
        assert_eq!(namespace_of("alice/app"), "alice");
        assert_eq!(namespace_of("acme/team/api"), "acme");
        assert_eq!(namespace_of("nginx"), "nginx");
    }
}
