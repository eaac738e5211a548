//! The identity ports on SQLite: users and personal access tokens.

use super::registry::split_names;
use super::{backend, SqliteMeta};
use berth_core::ports::{
    AccessTokens, Accounts, MetaError, NewToken, NewUser, TokenRecord, UserRecord,
};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

fn user_from_row(row: &SqliteRow) -> UserRecord {
    UserRecord {
        id: row.get("id"),
        name: row.get("name"),
        password_hash: row.get("password_hash"),
        is_admin: row.get::<i64, _>("is_admin") != 0,
        created_at: row.get("created_at"),
    }
}

fn token_from_row(row: &SqliteRow) -> TokenRecord {
    let repositories: Option<String> = row.get("repositories");
    TokenRecord {
        id: row.get("id"),
        user_id: row.get("user_id"),
        label: row.get("label"),
        scope: row.get("scope"),
        repositories: split_names(repositories),
        created_at: row.get("created_at"),
        expires_at: row.get("expires_at"),
        last_used_at: row.get("last_used_at"),
        revoked_at: row.get("revoked_at"),
    }
}

const TOKEN_COLUMNS: &str =
    "id, user_id, label, scope, repositories, created_at, expires_at, last_used_at, revoked_at";

#[async_trait::async_trait]
impl Accounts for SqliteMeta {
    async fn create_user(&self, user: &NewUser) -> Result<i64, MetaError> {
        let created = sqlx::query_scalar(
            "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(name) DO NOTHING RETURNING id",
        )
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(i64::from(user.is_admin))
        .bind(user.now)
        .fetch_optional(&self.write)
        .await
        .map_err(backend)?;
        created.ok_or_else(|| MetaError::Conflict(format!("account {}", user.name)))
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, MetaError> {
        let row = sqlx::query("SELECT * FROM users WHERE name = ?")
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn set_password_hash(&self, name: &str, hash: &str) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE users SET password_hash = ? WHERE name = ?")
            .bind(hash)
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}

#[async_trait::async_trait]
impl AccessTokens for SqliteMeta {
    async fn create_token(&self, token: &NewToken) -> Result<TokenRecord, MetaError> {
        let repositories = (!token.repositories.is_empty()).then(|| token.repositories.join("\n"));
        let row = sqlx::query(&format!(
            "INSERT INTO access_tokens (user_id, label, token_hash, scope, repositories, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING {TOKEN_COLUMNS}"
        ))
        .bind(token.user_id)
        .bind(&token.label)
        .bind(&token.token_hash)
        .bind(&token.scope)
        .bind(repositories)
        .bind(token.created_at)
        .bind(token.expires_at)
        .fetch_one(&self.write)
        .await
        .map_err(backend)?;
        Ok(token_from_row(&row))
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

    async fn tokens_of_user(&self, user_id: i64) -> Result<Vec<TokenRecord>, MetaError> {
        let rows = sqlx::query(&format!(
            "SELECT {TOKEN_COLUMNS} FROM access_tokens WHERE user_id = ? ORDER BY id"
        ))
        .bind(user_id)
        .fetch_all(&self.read)
        .await
        .map_err(backend)?;
        Ok(rows.iter().map(token_from_row).collect())
    }
}
