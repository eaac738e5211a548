-- `berth migrate`'s progress: one row per table copied from a single-node SQLite database,
-- written in the same transaction as the table's rows, so that `--resume` skips exactly the
-- tables that are complete and copies the others again from scratch.
CREATE TABLE migration_progress (
    table_name TEXT PRIMARY KEY,
    rows       BIGINT NOT NULL,
    copied_at  BIGINT NOT NULL
);
