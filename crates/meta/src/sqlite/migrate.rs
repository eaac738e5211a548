//! Schema migrations: embedded SQL files applied in order, each once (every one the database
//! lacks, see `crate::migrations`), each in a transaction.

use super::writer::Writer;
use super::{backend, begin_write};
use berth_core::ports::MetaError;

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/sqlite/0001_registry.sql")),
    (
        2,
        include_str!("../../migrations/sqlite/0002_catalog_version.sql"),
    ),
    (3, include_str!("../../migrations/sqlite/0003_accounts.sql")),
    (4, include_str!("../../migrations/sqlite/0004_access.sql")),
    (5, include_str!("../../migrations/sqlite/0005_hub.sql")),
    (
        6,
        include_str!("../../migrations/sqlite/0006_platforms.sql"),
    ),
    (
        7,
        include_str!("../../migrations/sqlite/0007_sessions_and_totp_steps.sql"),
    ),
    (
        8,
        include_str!("../../migrations/sqlite/0008_events_jobs_webhooks.sql"),
    ),
    (
        9,
        include_str!("../../migrations/sqlite/0009_upload_owners_and_link_media_types.sql"),
    ),
    (
        10,
        include_str!("../../migrations/sqlite/0010_audit_folding.sql"),
    ),
    (
        11,
        include_str!("../../migrations/sqlite/0011_session_lifecycle.sql"),
    ),
    (
        12,
        include_str!("../../migrations/sqlite/0012_gc_and_usage.sql"),
    ),
    (
        13,
        include_str!("../../migrations/sqlite/0013_immutable_tags_and_retention.sql"),
    ),
    (
        14,
        include_str!("../../migrations/sqlite/0014_lifecycle_marks_pulls_and_runs.sql"),
    ),
    (
        15,
        include_str!("../../migrations/sqlite/0015_trusted_keys_signatures_pull_policies.sql"),
    ),
    (
        16,
        include_str!("../../migrations/sqlite/0016_vulnerability_scanning.sql"),
    ),
    (
        17,
        include_str!("../../migrations/sqlite/0017_rate_limits.sql"),
    ),
    (
        18,
        include_str!("../../migrations/sqlite/0018_replication.sql"),
    ),
    (19, include_str!("../../migrations/sqlite/0019_builds.sql")),
    (
        20,
        include_str!("../../migrations/sqlite/0020_supply_chain.sql"),
    ),
    (
        23,
        include_str!("../../migrations/sqlite/0023_replication_bandwidth.sql"),
    ),
    (
        25,
        include_str!("../../migrations/sqlite/0025_build_platforms.sql"),
    ),
    (
        27,
        include_str!("../../migrations/sqlite/0027_build_tokens.sql"),
    ),
];

/// The schema version this build migrates databases to.
pub fn latest_version() -> i64 {
    MIGRATIONS.last().map_or(0, |&(version, _)| version)
}

pub(super) async fn run(writer: &Writer) -> Result<(), MetaError> {
    run_these(writer, MIGRATIONS).await
}

/// Applies every migration of `known` the database lacks, lowest first, each in its own
/// transaction.
async fn run_these(writer: &Writer, known: &[(i64, &str)]) -> Result<(), MetaError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
    )
    .execute(writer)
    .await
    .map_err(backend)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(writer)
        .await
        .map_err(backend)?;
    for (version, sql) in crate::migrations::pending(known, &applied.into_iter().collect())? {
        let mut tx = begin_write(writer).await?;
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, applied_at) VALUES (?, strftime('%s','now'))",
        )
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tx.commit().await.map_err(backend)?;
        tracing::info!(version, "applied database migration");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_TWO_THREE: &[(i64, &str)] = &[
        (1, "CREATE TABLE one (x INTEGER)"),
        (2, "CREATE TABLE two (x INTEGER)"),
        (3, "CREATE TABLE three (x INTEGER)"),
    ];

    async fn pool() -> (tempfile::TempDir, Writer) {
        use sqlx::ConnectOptions;
        let dir = tempfile::tempdir().unwrap();
        let options = sqlx::sqlite::SqliteConnectOptions::new()
            .filename(dir.path().join("m.db"))
            .create_if_missing(true);
        (dir, Writer::new(options.connect().await.unwrap()))
    }

    async fn versions(pool: &Writer) -> Vec<i64> {
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_database_with_1_and_3_applied_gets_2() {
        let (_dir, pool) = pool().await;
        // Migrated by a build that had 1 and 3 but not yet 2.
        run_these(&pool, &[ONE_TWO_THREE[0], ONE_TWO_THREE[2]])
            .await
            .unwrap();
        assert_eq!(versions(&pool).await, [1, 3]);
        run_these(&pool, ONE_TWO_THREE).await.unwrap();
        assert_eq!(versions(&pool).await, [1, 2, 3]);
        sqlx::query("INSERT INTO two (x) VALUES (1)")
            .execute(&pool)
            .await
            .expect("migration 2 ran");
        // And once only.
        run_these(&pool, ONE_TWO_THREE).await.unwrap();
    }

    #[tokio::test]
    async fn a_database_with_a_version_this_build_lacks_is_refused() {
        let (_dir, pool) = pool().await;
        run_these(&pool, ONE_TWO_THREE).await.unwrap();
        let refused = run_these(&pool, &[ONE_TWO_THREE[0], ONE_TWO_THREE[2]])
            .await
            .unwrap_err();
        assert!(
            refused.to_string().contains("schema version 2"),
            "{refused}"
        );
    }
}
