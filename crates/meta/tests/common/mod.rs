//! The backends every contract suite runs its cases against: SQLite, and a real PostgreSQL
//! when the test kit can start one (skipped loudly without it, required under `CI=true`).
// Each suite is its own crate and uses a part of this module.
#![allow(dead_code)]

use berth_meta::{PostgresMeta, SqliteMeta};
use std::sync::Arc;

/// Where a backend's data lives, for suites that seed rows no port of theirs writes.
pub enum Database {
    Sqlite(std::path::PathBuf),
    Postgres(String),
}

/// One backend under test: two stores ("nodes") on the same database.
pub struct Backend<S: ?Sized> {
    pub name: &'static str,
    pub node: Arc<S>,
    pub other_node: Arc<S>,
    pub database: Database,
    _dir: tempfile::TempDir,
}

/// Both backends for `test` (its own PostgreSQL database), each store made into the suite's
/// view of the ports by `sqlite` and `postgres` (usually `|m| Arc::new(m)`).
pub async fn backends<S: ?Sized>(
    test: &str,
    sqlite: impl Fn(SqliteMeta) -> Arc<S>,
    postgres: impl Fn(PostgresMeta) -> Arc<S>,
) -> Vec<Backend<S>> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let node = SqliteMeta::open(&path).await.unwrap();
    let other_node = SqliteMeta::open(&path).await.unwrap();
    let mut all = vec![Backend {
        name: "sqlite",
        node: sqlite(node),
        other_node: sqlite(other_node),
        database: Database::Sqlite(path),
        _dir: dir,
    }];
    if let Some(db) = berth_testkit::postgres::database(test) {
        let node = PostgresMeta::connect(&db.url).await.unwrap();
        // The second node migrates nothing: the schema is there.
        let other_node = PostgresMeta::connect(&db.url).await.unwrap();
        all.push(Backend {
            name: "postgres",
            node: postgres(node),
            other_node: postgres(other_node),
            database: Database::Postgres(db.url.clone()),
            _dir: tempfile::tempdir().unwrap(),
        });
    }
    all
}
