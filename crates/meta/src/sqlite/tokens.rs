//! Credentials on SQLite: personal and organization access tokens, and the token service's
//! refresh tokens; only hashes of their secrets are stored.

use super::registry::split_names;
use super::{backend, SqliteMeta};
use berth_core::ports::{
    AccessTokens, MetaError, NewToken, RefreshTokenRecord, RefreshTokens, TokenRecord,
};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

const TOKEN_COLUMNS: &str = "id, user_id, org_id, label, scope, repositories, created_at, \
                             expires_at, last_used_at, revoked_at";

fn token_from_row(row: &SqliteRow) -> TokenRecord {
    let repositories: Option<String> = row.get("repositories");
    TokenRecord {
        id: row.get("id"),
        user_id: row.get("user_id"),
        org_id: row.get("org_id"),
        label: row.get("label"),
        scope: row.get("scope"),
        repositories: split_names(repositories),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        last_used_at: row.get("last_used_at"),
        revoked_at: row.get("revoked_at"),
    }
}

/// Inserts `token` (on the pool, or in a caller's transaction).
pub(super) async fn insert_token<'c, E>(
    executor: E,
    token: &NewToken,
) -> Result<TokenRecord, MetaError>
where
    E: sqlx::Executor<'c, Database = sqlx::Sqlite>,
{
    let repositories = (!token.repositories.is_empty()).then(|| token.repositories.join("\n"));
    let row = sqlx::query(&format!(
        "INSERT INTO access_tokens \
         (user_id, org_id, label, token_hash, scope, repositories, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING {TOKEN_COLUMNS}"
    ))
    .bind(token.user_id)
    .bind(token.org_id)
    .bind(&token.label)
    .bind(&token.token_hash)
    .bind(&token.scope)
    .bind(repositories)
    .bind(token.created_at)
    .bind(token.expires_at)
    .fetch_one(executor)
    .await
    .map_err(backend)?;
    Ok(token_from_row(&row))
}

impl SqliteMeta {
    /// Tokens matching `condition` on one id, oldest first.
    async fn tokens_where(
        &self,
        condition: &'static str,
        id: i64,
    ) -> Result<Vec<TokenRecord>, MetaError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE {condition} ORDER BY id"
        ))
        .bind(id)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(token_from_row).collect())
    }
}

#[async_trait::async_trait]
impl AccessTokens for SqliteMeta {
    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, MetaError> {
        insert_token(&self.write, token).await
    }

    async fn token_by_hash(&self, token_hash: &str) -> Result<Option<TokenRecord>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE token_hash = ?"
        ))
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(token_from_row))
    }

    async fn token_by_id(&self, id: i64) -> Result<Option<TokenRecord>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE id = ?"
        ))
        .bind(id)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(token_from_row))
    }

    async fn tokens_of_user(&self, user_id: i64) -> Result<Vec<TokenRecord>, MetaError> {
        self.tokens_where("user_id = ? AND org_id IS NULL", user_id)
            .await
    }

    async fn tokens_of_org(&self, org_id: i64) -> Result<Vec<TokenRecord>, MetaError> {
        self.tokens_where("org_id = ?", org_id).await
    }

    async fn revoke_token(&self, id: i64, now: i64) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE access_tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(id)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        // Registry bearer tokens issued to it must be looked at again.
        self.credentials.bump();
        Ok(done.rows_affected() == 1)
    }

    async fn touch_token(&self, id: i64, now: i64) -> Result<bool, MetaError> {
        // RETURNING only sees the new value, so read the old one first, in the same
        // transaction: of concurrent first uses exactly one reports it.
        let mut tx = super::begin_write(&self.write).await?;
        let never_used: Option<bool> =
            sqlx::query_scalar("SELECT last_used_at IS NULL FROM access_tokens WHERE id = ?")
                .bind(id)
                .fetch_optional(&mut *tx)
                .await
                .map_err(backend)?;
        let Some(never_used) = never_used else {
            return Ok(false);
        };
        sqlx::query("UPDATE access_tokens SET last_used_at = ? WHERE id = ?")
            .bind(now)
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(never_used)
    }
}

const REFRESH_COLUMNS: &str = "id, user_id, access_token_id, created_at, revoked_at";

fn refresh_token_from_row(row: &SqliteRow) -> RefreshTokenRecord {
    RefreshTokenRecord {
        id: row.get("id"),
        user_id: row.get("user_id"),
        access_token_id: row.get("access_token_id"),
        created_at: row.get("created_at"),
        revoked_at: row.get("revoked_at"),
    }
}

#[async_trait::async_trait]
impl RefreshTokens for SqliteMeta {
    async fn create_refresh_token(
        &self,
        user_id: i64,
        access_token_id: Option<i64>,
        token_hash: &str,
        now: i64,
    ) -> Result<RefreshTokenRecord, MetaError> {
        let row = sqlx::query(&format!(
            "INSERT INTO refresh_tokens (user_id, access_token_id, token_hash, created_at) \
             VALUES (?, ?, ?, ?) RETURNING {REFRESH_COLUMNS}"
        ))
        .bind(user_id)
        .bind(access_token_id)
        .bind(token_hash)
        .bind(now)
        .fetch_one(&self.write)
        .await
        .map_err(backend)?;
        Ok(refresh_token_from_row(&row))
    }

    async fn refresh_token_by_hash(
        &self,
        token_hash: &str,
    ) -> Result<Option<RefreshTokenRecord>, MetaError> {
        let row = sqlx::query(&format!(
            "SELECT {REFRESH_COLUMNS} FROM refresh_tokens WHERE token_hash = ?"
        ))
        .bind(token_hash)
        .fetch_optional(&self.read)
        .await
        .map_err(backend)?;
        Ok(row.as_ref().map(refresh_token_from_row))
    }

    async fn revoke_refresh_tokens_of_user(
        &self,
        user_id: i64,
        now: i64,
    ) -> Result<u64, MetaError> {
        let done = sqlx::query(
            "UPDATE refresh_tokens SET revoked_at = ? WHERE user_id = ? AND revoked_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected())
    }
}
