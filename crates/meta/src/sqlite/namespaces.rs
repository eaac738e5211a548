//! Namespaces on SQLite: the one name space users and organizations share, and each
//! namespace's default visibility.

use super::WriteTx;
use super::{backend, SqliteMeta};
use berth_core::ports::{MetaError, NamespaceOwner, NamespaceRecord, Namespaces};
use sqlx::Row;

/// The owner named by a namespace row's `user_id` and `org_id` columns.
pub(super) fn namespace_owner(user_id: Option<i64>, org_id: Option<i64>) -> Option<NamespaceOwner> {
    match (user_id, org_id) {
        (Some(id), _) => Some(NamespaceOwner::User(id)),
        (None, Some(id)) => Some(NamespaceOwner::Organization(id)),
        (None, None) => None,
    }
}

/// Claims `name` for a new account; `Conflict` if a user or an organization holds it.
pub(super) async fn claim_namespace(
    tx: &mut WriteTx,
    name: &str,
    owner: NamespaceOwner,
    now: i64,
) -> Result<(), MetaError> {
    let (user_id, org_id) = match owner {
        NamespaceOwner::User(id) => (Some(id), None),
        NamespaceOwner::Organization(id) => (None, Some(id)),
    };
    let claimed = sqlx::query(
        "INSERT INTO namespaces (name, user_id, org_id, default_private, created_at) \
         VALUES (?, ?, ?, 1, ?) ON CONFLICT(name) DO NOTHING",
    )
    .bind(name)
    .bind(user_id)
    .bind(org_id)
    .bind(now)
    .execute(&mut **tx)
    .await
    .map_err(backend)?;
    if claimed.rows_affected() == 0 {
        return Err(MetaError::Conflict(format!("account {name}")));
    }
    Ok(())
}

#[async_trait::async_trait]
impl Namespaces for SqliteMeta {
    async fn namespace(&self, name: &str) -> Result<Option<NamespaceRecord>, MetaError> {
        let row = sqlx::query(
            "SELECT name, user_id, org_id, default_private, created_at FROM namespaces WHERE name = ?",
        )
        .bind(name)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        let Some(row) = row else {
            return Ok(None);
        };
        // The table's CHECK guarantees exactly one owner column is set.
        let owner = namespace_owner(row.get("user_id"), row.get("org_id"))
            .ok_or_else(|| MetaError::Backend(format!("namespace {name} has no owner")))?;
        Ok(Some(NamespaceRecord {
            name: row.get("name"),
            owner,
            default_private: row.get::<i64, _>("default_private") != 0,
            created_at: row.get("created_at"),
        }))
    }

    async fn set_default_private(&self, name: &str, private: bool) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE namespaces SET default_private = ? WHERE name = ?")
            .bind(i64::from(private))
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
