//! The SQLite backend: one writer connection (SQLite has one writer anyway) and a reader pool.

mod access;
mod accounts;
mod audit;
mod catalog;
mod events;
mod hub;
mod jobs;
mod migrate;
mod namespaces;
mod orgs;
mod pulls;
mod registry;
mod repositories;
mod search;
mod signing;
mod tokens;
mod webhooks;

use berth_core::ports::MetaError;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::SqlitePool;
use std::path::Path;
use std::time::Duration;

/// How much of the database file each reading connection maps into memory.
const MMAP_BYTES: u64 = 256 * 1024 * 1024;

/// Metadata in a SQLite file, in WAL mode.
#[derive(Debug, Clone)]
pub struct SqliteMeta {
    read: SqlitePool,
    write: SqlitePool,
    catalog: std::sync::Arc<catalog::CatalogCache>,
}

impl SqliteMeta {
    /// Opens (creating and migrating if needed) the database at `path`.
    pub async fn open(path: &Path) -> Result<SqliteMeta, MetaError> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // WAL + NORMAL: a commit survives a process crash; blob bytes are fsynced separately.
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(30))
            // Reads through a memory map skip a copy and a system call per page: search
            // reads thousands of rows a query.
            .pragma("mmap_size", MMAP_BYTES.to_string());
        let write = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            // The writer reads few pages, and through its own small page cache; mapping the
            // file there only added the pages it touched to the server's resident memory.
            .connect_with(options.clone().pragma("mmap_size", "0"))
            .await
            .map_err(backend)?;
        migrate::run(&write).await?;
        let read = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options.read_only(true))
            .await
            .map_err(backend)?;
        Ok(SqliteMeta {
            read,
            write,
            catalog: Default::default(),
        })
    }

    /// Closes both pools, finishing the WAL checkpoint.
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
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
