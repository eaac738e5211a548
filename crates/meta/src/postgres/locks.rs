//! Cluster locks on PostgreSQL: session-level advisory locks, each on a connection of its
//! own taken out of the pool, so that the lock lives exactly as long as the hold (dropping it
//! closes the connection) or the process (the server ends a dead client's session and frees
//! its locks).

use super::{backend, PostgresMeta};
use berth_core::ports::{ClusterLocks, LockHold, MetaError};

/// A held advisory lock: the connection that took it. Dropping it closes the socket, which
/// ends the session and its lock.
struct AdvisoryHold {
    _session: sqlx::PgConnection,
}

#[async_trait::async_trait]
impl ClusterLocks for PostgresMeta {
    async fn try_hold(&self, name: &str) -> Result<Option<LockHold>, MetaError> {
        let mut conn = self.pool.acquire().await.map_err(backend)?;
        // Names share the key space of the transaction locks (`lock_name`), under a prefix.
        let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock(hashtextextended($1, 0))")
            .bind(format!("cluster:{name}"))
            .fetch_one(&mut *conn)
            .await
            .map_err(backend)?;
        if !held {
            // No lock on it: back to the pool.
            return Ok(None);
        }
        // Out of the pool for good: the lock is the connection's, and the pool must not
        // hand it to anyone else.
        let conn = conn.detach();
        Ok(Some(Box::new(AdvisoryHold { _session: conn })))
    }
}
