//! Sign-in state on PostgreSQL: web sessions ended by signing out, two-factor recovery
//! codes (only their hashes), and the token service's signing key.

use super::{backend, PostgresMeta};
use berth_core::ports::{EndedSessions, MetaError, RecoveryCodeCounts, RecoveryCodes, SigningKeys};

#[async_trait::async_trait]
impl EndedSessions for PostgresMeta {
    async fn end_session(&self, jti: &str, expires_at: i64, now: i64) -> Result<(), MetaError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM ended_sessions WHERE expires_at < $1")
            .bind(now)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO ended_sessions (jti, expires_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(jti)
        .bind(expires_at)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn session_ended(&self, jti: &str) -> Result<bool, MetaError> {
        let ended: Option<i32> = sqlx::query_scalar("SELECT 1 FROM ended_sessions WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await
            .map_err(backend)?;
        Ok(ended.is_some())
    }
}

#[async_trait::async_trait]
impl RecoveryCodes for PostgresMeta {
    async fn replace_recovery_codes(
        &self,
        user_id: i64,
        code_hashes: &[String],
    ) -> Result<(), MetaError> {
        let mut tx = self.begin().await?;
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO recovery_codes (user_id, code_hash) SELECT $1, unnest($2::text[])",
        )
        .bind(user_id)
        .bind(code_hashes)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)
    }

    async fn use_recovery_code(
        &self,
        user_id: i64,
        code_hash: &str,
        now: i64,
    ) -> Result<bool, MetaError> {
        // A racing use waits for the row lock and re-checks `used_at`: one of them wins.
        let done = sqlx::query(
            "UPDATE recovery_codes SET used_at = $1 \
             WHERE user_id = $2 AND code_hash = $3 AND used_at IS NULL",
        )
        .bind(now)
        .bind(user_id)
        .bind(code_hash)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        Ok(done.rows_affected() == 1)
    }

    async fn recovery_code_counts(&self, user_id: i64) -> Result<RecoveryCodeCounts, MetaError> {
        let (unused, total): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE used_at IS NULL), count(*) \
             FROM recovery_codes WHERE user_id = $1",
        )
        .bind(user_id)
        .fetch_one(&self.pool)
        .await
        .map_err(backend)?;
        Ok(RecoveryCodeCounts {
            unused: unused.max(0) as u64,
            total: total.max(0) as u64,
        })
    }

    async fn clear_recovery_codes(&self, user_id: i64) -> Result<(), MetaError> {
        sqlx::query("DELETE FROM recovery_codes WHERE user_id = $1")
            .bind(user_id)
            .execute(&self.pool)
            .await
            .map_err(backend)?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl SigningKeys for PostgresMeta {
    async fn signing_key_or_insert(
        &self,
        candidate: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, MetaError> {
        // A node inserting at the same time waits on the key's row and then does nothing;
        // the read that follows is a new statement, so it sees the row that won.
        sqlx::query(
            "INSERT INTO signing_keys (id, secret, created_at) VALUES (1, $1, $2) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(candidate)
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(backend)?;
        sqlx::query_scalar("SELECT secret FROM signing_keys WHERE id = 1")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)
    }
}
