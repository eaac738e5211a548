//! Metadata backends implementing the core's ports; SQLite is the embedded default and
//! PostgreSQL (cargo feature `postgres`) serves several nodes.

mod columns;
mod migrations;
#[cfg(feature = "postgres")]
pub mod postgres;
pub mod sqlite;
#[cfg(feature = "postgres")]
pub mod transfer;

#[cfg(feature = "postgres")]
pub use postgres::{ListenerTiming, PostgresMeta};
pub use sqlite::{BlobRecord, ContentCounts, Durability, PoolUse, SqliteMeta, SqliteSnapshot};
