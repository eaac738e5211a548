//! Metadata backends implementing the core's ports; SQLite is the embedded default.

pub mod sqlite;

pub use sqlite::{BlobRecord, ContentCounts, Durability, PoolUse, SqliteMeta, SqliteSnapshot};
