//! Sign-in state on SQLite: web sessions ended by signing out, and two-factor recovery
//! codes (only their hashes).

use super::{backend, SqliteMeta};
use berth_core::ports::{EndedSessions, MetaError, RecoveryCodeCounts, RecoveryCodes};

#[async_trait::async_trait]
impl EndedSessions for SqliteMeta {
    async fn end_session(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        sqlx::query("DELETE FROM ended_sessions WHERE expires_at < ?")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO ended_sessions (jti, expires_at) VALUES (?, ?) ON CONFLICT DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn session_ended(&self, jti: &str) -> Result<bool, MetaError> {
        let ended: Option<i64> = sqlx::query_scalar("SELECT 1 FROM ended_sessions WHERE jti = ?")
            .bind(jti)
            .fetch_optional(&self.read)
            .await
            .map_err(backend)?;
        Ok(ended.is_some())
    }
}

#[async_trait::async_trait]
impl RecoveryCodes for SqliteMeta {
    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: &[String],
    ) -> Result<(), MetaError> {
        let mut tx = super::begin_write(&self.write).await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        for hash in code_hashes {
            sqlx::query("INSERT INTO recovery_codes (user_id, code_hash) VALUES (?, ?)")
                .bind(user_id)
                .bind(hash)
                .execute(&mut *tx)
                .await
                .map_err(backend)?;
        }
        tx.commit().await.map_err(backend)
    }

    async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
        now: i64,
    ) -> Result<bool, MetaError> {
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = ? \
             WHERE user_id = ? AND code_hash = ? AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.write)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_code_counts(&self, user_id: i64) -> Result<RecoveryCodeCounts, MetaError> {
        let (unused, total): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE used_at IS NULL), count(*) \
             FROM recovery_codes WHERE user_id = ?",
        )
        .bind(user_id)
        .fetch_one(&self.read)
        .await
        .map_err(backend)?;
        Ok(RecoveryCodeCounts {
            unused: unused as u64,
            total: total as u64,
        })
    }

    async fn clear_recovery_codes(&self, user_id: i64) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = ?")
            .bind(user_id)
            .execute(&self.write)
            .await
            .map_err(backend)?;
        Ok(())
    }
}
