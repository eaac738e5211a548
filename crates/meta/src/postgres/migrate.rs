//! Schema migrations on PostgreSQL: embedded SQL files applied in order, each once (every one
//! the database lacks, see `crate::migrations`), in one transaction, under an advisory lock
//! so that nodes starting together migrate once.

use super::backend;
use berth_core::ports::MetaError;
use sqlx::PgPool;

/// PostgreSQL's own numbering, apart from SQLite's: its first file is the schema SQLite
/// reaches through its migrations 0001-0013.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../../migrations/postgres/0001_schema.sql")),
    (
        3,
        include_str!("../../migrations/postgres/0003_policies_limits_supply_chain.sql"),
    ),
    (
        4,
        include_str!("../../migrations/postgres/0004_replication.sql"),
    ),
    (5, include_str!("../../migrations/postgres/0005_builds.sql")),
    (
        7,
        include_str!("../../migrations/postgres/0007_migration_progress.sql"),
    ),
    (
        8,
        include_str!("../../migrations/postgres/0008_replication_bandwidth.sql"),
    ),
    (
        10,
        include_str!("../../migrations/postgres/0010_build_platforms.sql"),
    ),
    (
        11,
        include_str!("../../migrations/postgres/0011_identity_across_nodes.sql"),
    ),
    (
        12,
        include_str!("../../migrations/postgres/0012_build_tokens.sql"),
    ),
];

/// The advisory lock every node takes to migrate ("berth" in ASCII).
const MIGRATION_LOCK: i64 = 0x62_6572_7468;

/// The newest schema version applied; 0 for an empty database.
pub(super) async fn applied(pool: &PgPool) -> Result<i64, MetaError> {
    let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
        .fetch_one(pool)
        .await
        .map_err(backend)?;
    Ok(applied.unwrap_or(0))
}

pub(super) async fn run(pool: &PgPool) -> Result<(), MetaError> {
    run_these(pool, MIGRATIONS).await
}

/// Applies every migration of `known` the database lacks, lowest first.
async fn run_these(pool: &PgPool, known: &[(i64, &str)]) -> Result<(), MetaError> {
    let mut tx = pool.begin().await.map_err(backend)?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(MIGRATION_LOCK)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations \
         (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
    )
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
        .fetch_all(&mut *tx)
        .await
        .map_err(backend)?;
    // All pending files in the one transaction that holds the lock: DDL is transactional
    // in PostgreSQL, so a failed migration leaves the schema as it was.
    for (version, sql) in crate::migrations::pending(known, &applied.into_iter().collect())? {
        sqlx::raw_sql(sql)
            .execute(&mut *tx)
            .await
            .map_err(backend)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, applied_at) \
             VALUES ($1, extract(epoch FROM now())::bigint)",
        )
        .bind(version)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
        tracing::info!(version, "applied PostgreSQL migration");
    }
    tx.commit().await.map_err(backend)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ONE_TWO_THREE: &[(i64, &str)] = &[
        (1, "CREATE TABLE one (x INTEGER)"),
        (2, "CREATE TABLE two (x INTEGER)"),
        (3, "CREATE TABLE three (x INTEGER)"),
    ];

    async fn versions(pool: &PgPool) -> Vec<i64> {
        sqlx::query_scalar("SELECT version FROM schema_migrations ORDER BY version")
            .fetch_all(pool)
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_database_with_1_and_3_applied_gets_2_and_one_it_does_not_know_is_refused() {
        let Some(db) = berth_testkit::postgres::database("postgres_migrations_fill_gaps") else {
            return;
        };
        let pool = PgPool::connect(&db.url).await.unwrap();
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
