//! The SQLite backend: one writer connection (SQLite has one writer anyway) and a reader pool.

mod access;
mod accounts;
mod audit;
mod builds;
mod credentials;
mod durability;
mod events;
mod hub;
mod jobs;
mod lifecycle;
mod migrate;
mod namespaces;
mod orgs;
mod policies;
mod pulls;
mod ratelimit;
mod registry;
mod replication;
mod repositories;
mod scans;
mod search;
mod sessions;
mod sign_in_failures;
mod signatures;
mod signing;
mod snapshot;
mod tokens;
mod webhooks;
mod writer;

use writer::WriteTx;

pub use snapshot::{BlobRecord, ContentCounts, SqliteSnapshot};

use berth_core::ports::MetaError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{ConnectOptions, SqlitePool};
use std::path::Path;
use std::time::Duration;

/// Each reader's page cache: hot index pages fit, and the readers hold 4 MiB at most on
/// 8 cores (SQLite's default is 2 MiB each); other pages come from the kernel's page cache.
const READER_CACHE_KIB: u32 = 512;

/// Readers: two per core (a read waits on the kernel's page cache at most), at least four.
/// Each open reader keeps its page cache and prepared statements resident, so more than
/// the cores can run only adds memory: eight readers on two cores measured 7 MiB more peak
/// memory under 64 concurrent manifest GETs, and no more throughput.
fn readers() -> u32 {
    let cores = std::thread::available_parallelism().map_or(4, |n| n.get());
    u32::try_from(cores * 2).unwrap_or(u32::MAX).clamp(4, 16)
}

/// How every write transaction begins: with the write lock taken at once. A deferred one
/// that read first could not take it after another process (`berth gc`, `berth user …`
/// beside the server) committed, and would fail with `SQLITE_BUSY` instead of waiting.
const IMMEDIATE: &str = "BEGIN IMMEDIATE";

/// Begins a write transaction on the writer with the write lock taken at once
/// ([`IMMEDIATE`]); the writer is held until it commits or is dropped.
async fn begin_write(writer: &writer::Writer) -> Result<WriteTx, MetaError> {
    writer.begin(IMMEDIATE).await.map_err(backend)
}

/// Metadata in a SQLite file, in WAL mode.
#[derive(Debug, Clone)]
pub struct SqliteMeta {
    pub(crate) read: SqlitePool,
    write: writer::Writer,
    catalog: std::sync::Arc<berth_core::registry::CatalogCache>,
    wal: std::sync::Arc<durability::WalSync>,
    /// Delivery attempts waiting to be written together.
    attempts: std::sync::Arc<webhooks::AttemptBatch>,
    credentials: std::sync::Arc<credentials::CredentialsEpoch>,
    sign_in_failures: std::sync::Arc<sign_in_failures::InProcessFailures>,
}

/// When a commit is on stable storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Each commit is flushed before it returns (`synchronous=FULL`): for the CLI and
    /// anything else that does not call [`SqliteMeta::sync`].
    EveryCommit,
    /// Commits return unflushed (`synchronous=NORMAL`), and whoever acknowledges a write
    /// first awaits [`SqliteMeta::sync`], which flushes the commits of many requests at
    /// once: `serve` does it before every answer to a write.
    GroupCommit,
}

impl SqliteMeta {
    /// Opens (creating and migrating if needed) the database at `path`; every commit is
    /// flushed before it returns.
    pub async fn open(path: &Path) -> Result<SqliteMeta, MetaError> {
        SqliteMeta::open_with(path, Durability::EveryCommit).await
    }

    /// Opens the database at `path` with the durability asked for.
    pub async fn open_with(path: &Path, durability: Durability) -> Result<SqliteMeta, MetaError> {
        let synchronous = match durability {
            // WAL + FULL: every commit is fsynced to the WAL before it returns, so a write
            // that was acknowledged survives a power cut, not only a killed process.
            Durability::EveryCommit => SqliteSynchronous::Full,
            // WAL + NORMAL syncs only at checkpoints; `sync` makes commits durable.
            Durability::GroupCommit => SqliteSynchronous::Normal,
        };
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // Blob bytes are fsynced separately, before their commit.
            .synchronous(synchronous)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // No connection maps the file: each mapping's resident pages count towards the
            // server's RSS once per connection, so eight readers that had touched the whole
            // database showed it eight times over, growing with the database (issue 11's
            // soak). Each connection reads through its own bounded page cache instead
            // (readers: `READER_CACHE_KIB`; the writer: SQLite's 2 MiB).
            .pragma("mmap_size", "0");
        let write = writer::Writer::new(options.connect().await.map_err(backend)?);
        migrate::run(&write).await?;
        // No ping before a reader is handed out: a connection to a local file cannot have
        // hung up, and each ping is one more round trip to the connection's worker thread
        // (two thread switches) on every read.
        let read = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(readers())
            .connect_with(
                options
                    .clone()
                    .read_only(true)
                    .pragma("cache_size", format!("-{READER_CACHE_KIB}")),
            )
            .await
            .map_err(backend)?;
        Ok(SqliteMeta {
            read,
            write,
            catalog: Default::default(),
            attempts: Default::default(),
            wal: std::sync::Arc::new(durability::WalSync::new(path)),
            credentials: std::sync::Arc::new(credentials::CredentialsEpoch::beside(path)),
            sign_in_failures: Default::default(),
        })
    }

    /// Returns once every commit that returned before the call is on stable storage (one
    /// flush of the WAL, shared with every caller waiting at the same time). Needed with
    /// [`Durability::GroupCommit`]; with `EveryCommit` it only repeats what is done.
    pub async fn sync(&self) -> Result<(), MetaError> {
        self.wal
            .sync()
            .await
            .map_err(|e| MetaError::Backend(format!("flushing the database's WAL: {e}")))
    }

    /// How many flushes [`SqliteMeta::sync`] has done: fewer than its callers when commits
    /// were grouped.
    pub fn wal_flushes(&self) -> u64 {
        self.wal.flushes()
    }

    /// The writer's `PRAGMA synchronous` level (0 off, 1 normal, 2 full, 3 extra): what an
    /// acknowledgement is worth, for checks that commits are synced before the answer.
    pub async fn writer_synchronous(&self) -> Result<i64, MetaError> {
        sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&self.write)
            .await
            .map_err(backend)
    }

    /// Whether the database answers a read, for readiness checks.
    pub async fn ping(&self) -> Result<(), MetaError> {
        sqlx::query_scalar::<_, i64>("SELECT 1")
            .fetch_one(&self.read)
            .await
            .map(drop)
            .map_err(backend)
    }

    /// Upload sessions open now (started, neither finished nor cancelled nor expired).
    pub async fn open_upload_sessions(&self) -> Result<u64, MetaError> {
        let count: i64 = sqlx::query_scalar("SELECT count(*) FROM upload_sessions")
            .fetch_one(&self.read)
            .await
            .map_err(backend)?;
        Ok(count.max(0) as u64)
    }

    /// How busy the connection pools are, for metrics.
    pub fn pool_use(&self) -> [PoolUse; 2] {
        let of = |name, pool: &SqlitePool| PoolUse {
            name,
            open: pool.size(),
            idle: u32::try_from(pool.num_idle()).unwrap_or(u32::MAX),
            max: pool.options().get_max_connections(),
        };
        let busy = u32::from(self.write.busy());
        let write = PoolUse {
            name: "write",
            open: 1,
            idle: 1 - busy,
            max: 1,
        };
        [of("read", &self.read), write]
    }

    /// Closes the readers and the writer, finishing the WAL checkpoint.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

/// One connection pool's use at a moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolUse {
    /// `read` or `write` (SQLite), `postgres`.
    pub name: &'static str,
    /// Connections open, in use or idle.
    pub open: u32,
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// Milliseconds since the epoch, for the bookkeeping columns of jobs and deliveries.
pub(super) fn wall_ms() -> i64 {
    berth_core::clock::Clock::now_ms(&berth_core::clock::SystemClock)
}

/// A stored count (attempts, failures) as the ports carry it.
pub(super) fn count_column(row: &sqlx::sqlite::SqliteRow, column: &str) -> u32 {
    use sqlx::Row as _;
    row.get::<i64, _>(column).clamp(0, u32::MAX.into()) as u32
}

pub(crate) fn backend(err: sqlx::Error) -> MetaError {
    // SQLITE_FULL (13): the disk is full, which the operator must hear about as such.
    let full = err
        .as_database_error()
        .and_then(|e| e.code())
        .is_some_and(|code| code.parse::<i32>().is_ok_and(|code| code & 0xff == 13));
    if full {
        return MetaError::StorageFull;
    }
    MetaError::Backend(err.to_string())
}
