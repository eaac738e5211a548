//! Schema migrations on PostgreSQL: embedded SQL files applied in order, each once, each in
//! a transaction, under an advisory lock so that nodes starting together migrate once.

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
    let applied: Option<i64> = sqlx::query_scalar("SELECT max(version) FROM schema_migrations")
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
    let applied = applied.unwrap_or(0);
    if let Some(&(latest, _)) = MIGRATIONS.last() {
        if applied > latest {
            return Err(MetaError::Backend(format!(
                "the database is at schema version {applied}, newer than this Berth knows ({latest}); upgrade Berth"
            )));
        }
    }
    // All pending files in the one transaction that holds the lock: DDL is transactional
    // in PostgreSQL, so a failed migration leaves the schema as it was.
    for &(version, sql) in MIGRATIONS.iter().filter(|(v, _)| *v > applied) {
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
