//! User accounts on SQLite: creation with their namespace, lookups, passwords, the admin
//! flag and two-factor settings with the last used code's time step.

use super::namespaces::claim_namespace;
use super::{backend, SqliteMeta};
use berth_core::ports::{Accounts, MetaError, NamespaceOwner, NewUser, UserRecord};
use sqlx::sqlite::SqliteRow;
use sqlx::Row;

const USER_COLUMNS: &str = "id, name, password_hash, is_admin, created_at, totp_secret, \
     totp_enabled, sessions_valid_from, credential_generation, disabled_at";

fn user_from_row(row: &SqliteRow) -> UserRecord {
    UserRecord {
        id: row.get("id"),
        name: row.get("name"),
        password_hash: row.get("password_hash"),
        is_admin: row.get::<i64, _>("is_admin") != 0,
        created_at: row.get("created_at"),
        totp_secret: row.get("totp_secret"),
        totp_enabled: row.get::<i64, _>("totp_enabled") != 0,
        sessions_valid_from: row.get("sessions_valid_from"),
        credential_generation: row.get("credential_generation"),
        disabled_at: row.get("disabled_at"),
    }
}

#[async_trait::async_trait]
impl Accounts for SqliteMeta {
    async fn create_user(&self, user: &NewUser) -> Result<i64, MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        let created: Option<i64> = sqlx::query_scalar(
            "INSERT INTO users (name, password_hash, is_admin, created_at) VALUES (?, ?, ?, ?) \
             ON CONFLICT(name) DO NOTHING RETURNING id",
        )
        .bind(&user.name)
        .bind(&user.password_hash)
        .bind(i64::from(user.is_admin))
        .bind(user.now)
        .fetch_optional(&mut *tx)
        .await
        .map_err(backend)?;
        let id = created.ok_or_else(|| MetaError::Conflict(format!("account {}", user.name)))?;
        // An organization may hold the name; dropping the transaction then undoes the user.
        claim_namespace(&mut tx, &user.name, NamespaceOwner::User(id), user.now).await?;
        tx.commit().await.map_err(backend)?;
        Ok(id)
    }

    async fn user_by_name(&self, name: &str) -> Result<Option<UserRecord>, MetaError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE name = ?"))
            .bind(name)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn user_by_id(&self, id: i64) -> Result<Option<UserRecord>, MetaError> {
        let row = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?"))
            .bind(id)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        Ok(row.as_ref().map(user_from_row))
    }

    async fn list_users(&self) -> Result<Vec<UserRecord>, MetaError> {
        let rows = sqlx::query(&format!("SELECT {USER_COLUMNS} FROM users ORDER BY name"))
            .fetch_all(&self.read)
            .await
            .map_err(backend)?;
        Ok(rows.iter().map(user_from_row).collect())
    }

    async fn count_users(&self) -> Result<u64, MetaError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM users")
            .fetch_one(&self.read)
            .await
            .map_err(backend)?;
        Ok(count as u64)
    }

    async fn set_password_hash(&self, name: &str, hash: &str, now: i64) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE users SET password_hash = ?, sessions_valid_from = ?, \
             credential_generation = credential_generation + 1 WHERE name = ?",
        )
        .bind(hash)
        .bind(now)
        .bind(name)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        self.credentials.bump();
        Ok(done.rows_affected() == 1)
    }

    async fn set_disabled(&self, name: &str, disabled_at: Option<i64>) -> Result<bool, MetaError> {
        let done = match disabled_at {
            Some(at) => sqlx::query(
                "UPDATE users SET disabled_at = ?, \
                 credential_generation = credential_generation + 1 \
                 WHERE name = ? AND disabled_at IS NULL",
            )
            .bind(at)
            .bind(name),
            None => sqlx::query(
                "UPDATE users SET disabled_at = NULL WHERE name = ? AND disabled_at IS NOT NULL",
            )
            .bind(name),
        }
        .execute(&self.write)
        .await
        .map_err(backend)?;
        // A remembered password of the account must be looked at again.
        self.credentials.bump();
        Ok(done.rows_affected() == 1)
    }

    async fn delete_user(&self, id: i64) -> Result<bool, MetaError> {
        // Everything the account holds references it with ON DELETE CASCADE: its namespace,
        // tokens, refresh tokens, team memberships, collaborations, stars and recovery codes.
        let done = sqlx::query("DELETE FROM users WHERE id = ?")
            .bind(id)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        self.credentials.bump();
        Ok(done.rows_affected() == 1)
    }

    async fn set_admin(&self, name: &str, is_admin: bool) -> Result<bool, MetaError> {
        let done = sqlx::query("UPDATE users SET is_admin = ? WHERE name = ?")
            .bind(i64::from(is_admin))
            .bind(name)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        self.credentials.bump();
        Ok(done.rows_affected() == 1)
    }

    async fn set_totp(
        &self,
        name: &str,
        secret: Option<&str>,
        enabled: bool,
    ) -> Result<bool, MetaError> {
        // SET reads the row as it was, so `totp_secret IS ?` compares the old secret with the
        // new one: steps used with another secret say nothing about this one's codes.
        let done = sqlx::query(
            "UPDATE users SET totp_secret = ?, totp_enabled = ?, \
             totp_last_step = CASE WHEN totp_secret IS ? THEN totp_last_step ELSE 0 END \
             WHERE name = ?",
        )
        .bind(secret)
        .bind(i64::from(enabled))
        .bind(secret)
        .bind(name)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        self.credentials.bump();
        Ok(done.rows_affected() == 1)
    }

    fn credentials_epoch(&self) -> Option<u64> {
        self.credentials.current()
    }

    async fn claim_totp_step(&self, user_id: i64, step: i64) -> Result<bool, MetaError> {
        let done =
            sqlx::query("UPDATE users SET totp_last_step = ? WHERE id = ? AND totp_last_step < ?")
                .bind(step)
                .bind(user_id)
                .bind(step)
                .execute(&self.write)
                .await
                .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }
}
