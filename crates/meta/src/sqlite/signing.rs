//! The token service's signing key on SQLite: one row, written by whichever node asks first.

use super::{backend, SqliteMeta};
use berth_core::ports::{MetaError, SigningKeys};

#[async_trait::async_trait]
impl SigningKeys for SqliteMeta {
    async fn signing_key_or_insert(
        &self,
        candidate: &[u8],
        now: i64,
    ) -> Result<Vec<u8>, MetaError> {
        // Insert and read back in one transaction on the writer, so every caller gets the
        // key that was stored first.
        let mut tx = super::begin_write(&self.write).await?;
        sqlx::query(
            "INSERT INTO signing_keys (id, secret, created_at) VALUES (1, ?, ?) \
             ON CONFLICT(id) DO NOTHING",
        )
        .bind(candidate)
        .bind(now)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        let secret: Vec<u8> = sqlx::query_scalar("SELECT secret FROM signing_keys WHERE id = 1")
            .fetch_one(&mut *tx)
            .await
            .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        Ok(secret)
    }
}
