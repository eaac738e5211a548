//! The PostgreSQL backend: one connection pool shared by every node of a cluster, each
//! change one transaction, with the same contracts as the SQLite backend.
//!
//! Where SQLite serializes every write on its single writer, PostgreSQL runs them side by
//! side, so the few steps that check and then write take a lock that makes the check hold
//! until the commit: a row lock (`FOR UPDATE` / `FOR SHARE`) on the row the check read, or
//! a transaction-scoped advisory lock on a name (see `lock_name`).

mod access;
mod accounts;
mod audit;
mod builds;
mod events;
mod hub;
mod jobs;
mod lifecycle;
mod links;
mod locks;
mod migrate;
mod notifications;
mod orgs;
mod policies;
mod ratelimit;
mod registry;
mod replication;
mod scans;
mod sessions;
mod signatures;
mod tokens;
mod webhooks;

pub use notifications::ListenerTiming;

use berth_core::ports::MetaError;
use berth_core::registry::CatalogCache;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Connection as _, PgConnection, PgPool, Postgres, Transaction};
use std::sync::Arc;
use std::time::Duration;

/// The metadata ports this backend implements so far, and those it does not yet. The
/// factory that opens the configured store refuses to serve with a PostgreSQL URL while
/// [`PostgresMeta::MISSING_PORTS`] is not empty, naming them, rather than half-work.
impl PostgresMeta {
    pub const DONE_PORTS: &'static [&'static str] = &[
        "UploadSessions",
        "BlobLinks",
        "Manifests",
        "Tags",
        "Repositories",
        "HubStore",
        "EventLog",
        "JobQueue",
        "Collection",
        "UsageStore",
        "LifecycleStore",
        "RateLimitStore",
        "SignatureStore",
        "ScanStore",
        "IdentityStore",
        "WebhookStore",
        "BuildStore",
        "ReplicationStore",
    ];
    pub const MISSING_PORTS: &'static [&'static str] = &[];

    /// The store as every port at once, for `serve` and the administration commands;
    /// `None` while [`PostgresMeta::MISSING_PORTS`] is not empty (a port added to
    /// `MetaStore` before its PostgreSQL side exists makes this `None` again).
    pub fn into_meta_store(self) -> Option<Arc<dyn berth_core::ports::MetaStore>> {
        Some(Arc::new(self))
    }
}

/// How long a request waits for a connection before it is answered 503: long enough to
/// ride out a burst, short enough that a client retries rather than hangs while the
/// database restarts.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// Connections per node: PostgreSQL's default `max_connections` (100) leaves room for
/// several nodes and the administration commands.
const MAX_CONNECTIONS: u32 = 16;

/// Metadata in a PostgreSQL database.
#[derive(Debug, Clone)]
pub struct PostgresMeta {
    pub(crate) pool: PgPool,
    catalog: Arc<CatalogCache>,
    /// What other nodes announce: credentials changes and shared sign-in failures.
    notifications: Arc<notifications::Notifications>,
}

impl PostgresMeta {
    /// Connects to `url` (`postgres://user:password@host:port/database`) and migrates the
    /// schema (once, whichever node gets there first). Fails with `Unavailable` when the
    /// server cannot be reached and `Backend` when it refuses (a wrong password, no such
    /// database); the message never holds the password.
    pub async fn connect(url: &str) -> Result<PostgresMeta, MetaError> {
        Self::connect_with_listener_timing(url, ListenerTiming::default()).await
    }

    /// [`PostgresMeta::connect`] with the listener's heartbeat and silence limit of one's
    /// choosing (tests shorten them to see a silently dead connection replaced).
    pub async fn connect_with_listener_timing(
        url: &str,
        timing: ListenerTiming,
    ) -> Result<PostgresMeta, MetaError> {
        let options = url
            .parse::<PgConnectOptions>()
            .map_err(|e| MetaError::Backend(format!("database_url is invalid: {e}")))?
            .application_name("berth");
        // One connection first, outside the pool: the pool retries a refused connection
        // until its timeout and then reports only that it timed out, where startup must
        // say why (refused, no such database, a wrong password).
        let probe = PgConnection::connect_with(&options)
            .await
            .map_err(backend)?;
        probe.close().await.map_err(backend)?;
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            // A connection that died with a server restart is found out before use, not
            // by the request it would be handed to.
            .test_before_acquire(true)
            .connect_with(options.clone())
            .await
            .map_err(backend)?;
        migrate::run(&pool).await?;
        let notifications = notifications::listen(options, pool.clone(), timing).await;
        Ok(PostgresMeta {
            pool,
            catalog: Default::default(),
            notifications,
        })
    }

    /// Whether the database answers a read, for readiness checks.
    pub async fn ping(&self) -> Result<(), MetaError> {
        sqlx::query_scalar::<_, i32>("SELECT 1")
            .fetch_one(&self.pool)
            .await
            .map(drop)
            .map_err(backend)
    }

    /// The schema version of the database, for checks and `berth doctor`-style reports.
    pub async fn schema_version(&self) -> Result<i64, MetaError> {
        migrate::applied(&self.pool).await
    }

    /// Upload sessions open now (started, neither finished nor cancelled nor expired).
    pub async fn open_upload_sessions(&self) -> Result<u64, MetaError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM upload_sessions")
            .fetch_one(&self.pool)
            .await
            .map_err(backend)?;
        Ok(count.max(0) as u64)
    }

    /// How busy the connection pool is, for metrics.
    pub fn pool_use(&self) -> crate::PoolUse {
        crate::PoolUse {
            name: "postgres",
            open: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: MAX_CONNECTIONS,
        }
    }

    /// Closes the pool.
    pub async fn close(&self) {
        self.notifications.stop();
        self.pool.close().await;
    }

    async fn begin(&self) -> Result<Transaction<'static, Postgres>, MetaError> {
        self.pool.begin().await.map_err(backend)
    }

    /// Begins a transaction that may record events, holding the event-order lock from the
    /// start (see `events::EVENT_ORDER_LOCK`). Such transactions run one at a time, as
    /// every write does on SQLite; reads and event-free writes run beside them.
    async fn begin_recording(&self) -> Result<Transaction<'static, Postgres>, MetaError> {
        let mut tx = self.begin().await?;
        lock_name(&mut tx, events::EVENT_ORDER_LOCK).await?;
        Ok(tx)
    }
}

/// A transaction-scoped advisory lock on `name`, held until the caller's commit or
/// rollback: for checks that no row can hold (a count, a row that may not exist yet).
pub(crate) async fn lock_name(
    tx: &mut Transaction<'_, Postgres>,
    name: &str,
) -> Result<(), MetaError> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(name)
        .execute(&mut **tx)
        .await
        .map_err(backend)?;
    Ok(())
}

/// A stored count (attempts, failures) as the ports carry it.
pub(crate) fn count_column(row: &sqlx::postgres::PgRow, column: &str) -> u32 {
    use sqlx::Row as _;
    row.get::<i64, _>(column).clamp(0, u32::MAX.into()) as u32
}

/// Maps a database error to the port's: unreachable is `Unavailable` (retryable), a full
/// disk is `StorageFull`, the rest is `Backend`.
pub(crate) fn backend(err: sqlx::Error) -> MetaError {
    match &err {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => return MetaError::Unavailable(err.to_string()),
        sqlx::Error::Database(db) => {
            let code = db.code();
            let code = code.as_deref().unwrap_or("");
            // Class 08: connection exceptions; 57P01-57P03: the server is shutting down
            // or starting; 53300: too many connections; 40001/40P01: serialization
            // failure or deadlock, which a retry resolves.
            if code.starts_with("08")
                || matches!(
                    code,
                    "57P01" | "57P02" | "57P03" | "53300" | "40001" | "40P01"
                )
            {
                return MetaError::Unavailable(err.to_string());
            }
            // 53100: disk full.
            if code == "53100" {
                return MetaError::StorageFull;
            }
        }
        _ => {}
    }
    MetaError::Backend(err.to_string())
}
