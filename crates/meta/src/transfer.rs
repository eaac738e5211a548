//! Copying a single-node SQLite database into PostgreSQL, table by table, for `berth
//! migrate`: the tables come from SQLite's own catalog and the column types from
//! PostgreSQL's, so a table added to both schemas is copied without being listed here, and
//! one added to SQLite alone stops the plan with its name.
//!
//! Each table is copied in one PostgreSQL transaction that also writes its row in
//! `migration_progress`: an interrupted run leaves every table either complete and recorded,
//! or untouched, and a resumed run copies only the unrecorded ones. Rows are copied as they
//! are, derived columns included (star counts, usage totals), so the tables' own triggers
//! are switched off inside that transaction rather than counting everything twice.

use crate::postgres::PostgresMeta;
use crate::sqlite::SqliteMeta;
use berth_core::ports::MetaError;
use futures_util::TryStreamExt as _;
use sqlx::{PgPool, Postgres, Row as _, SqlitePool, Transaction};
use std::collections::{BTreeMap, BTreeSet};

/// SQLite tables that are not copied, and why. Virtual tables (the full-text index) and
/// their shadow tables are left out as well, without being listed: PostgreSQL derives its
/// own search column from the copied rows.
pub const NOT_COPIED: &[(&str, &str)] = &[
    (
        "schema_migrations",
        "each database's record of its own migrations, numbered apart",
    ),
    (
        "upload_sessions",
        "uploads in progress: their bytes stay in the old data directory, and clients start them again",
    ),
    (
        "sqlite_sequence",
        "SQLite's own id counters: PostgreSQL's identity sequences are set from the copied ids",
    ),
];

/// Tables into which PostgreSQL's migrations put rows of their own (the `library`
/// organization, event cursors, counters): rows there do not make a target non-empty,
/// and are replaced by the source's.
pub const SEEDED_BY_MIGRATIONS: &[&str] = &[
    "counters",
    "event_cursors",
    "namespace_usage",
    "namespaces",
    "organizations",
    "quota_defaults",
    "teams",
];

/// Rows sent in one `INSERT`, at most (PostgreSQL takes at most 65,535 parameters).
const BATCH_ROWS: usize = 1000;
/// Bytes of values sent in one `INSERT`, roughly: manifests carry up to megabytes each.
const BATCH_BYTES: usize = 4 << 20;

/// How a column's values are carried across, by its PostgreSQL type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Int,
    Bool,
    Float,
    Text,
    Bytes,
}

impl Kind {
    fn of(data_type: &str) -> Option<Kind> {
        Some(match data_type {
            "bigint" | "integer" | "smallint" => Kind::Int,
            "boolean" => Kind::Bool,
            "double precision" | "real" => Kind::Float,
            "text" | "character varying" => Kind::Text,
            "bytea" => Kind::Bytes,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone)]
enum Value {
    Int(Option<i64>),
    Bool(Option<bool>),
    Float(Option<f64>),
    Text(Option<String>),
    Bytes(Option<Vec<u8>>),
}

impl Value {
    fn len(&self) -> usize {
        match self {
            Value::Text(Some(text)) => text.len(),
            Value::Bytes(Some(bytes)) => bytes.len(),
            _ => 8,
        }
    }
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: Kind,
}

/// One table to copy: its columns (those SQLite has), whether its ids are generated
/// `ALWAYS` (inserting them needs `OVERRIDING SYSTEM VALUE`), its identity columns (whose
/// sequences continue after the copied ids) and whether it has triggers to switch off.
#[derive(Debug, Clone)]
struct TablePlan {
    name: String,
    columns: Vec<Column>,
    identity: Vec<String>,
    identity_always: bool,
    triggers: bool,
}

/// What the target database holds before a copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetState {
    /// Nothing but what PostgreSQL's migrations put there.
    Empty,
    /// A migration was started here: these tables are complete.
    Started { done: Vec<String> },
    /// Rows that no migration wrote: `rows` in `table` (the first found).
    Occupied { table: String },
}

/// A step of [`Transfer::copy`], for progress lines and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step<'a> {
    /// A table's rows are written, not yet committed.
    Written { table: &'a str, rows: u64 },
    /// A table is committed.
    Copied { table: &'a str, rows: u64 },
    /// A table was complete already (a resumed run).
    AlreadyCopied { table: &'a str },
}

/// One table's rows on each side, from [`Transfer::counts`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub source: u64,
    pub target: u64,
}

/// A planned copy from a SQLite database into a PostgreSQL one; both are migrated to this
/// build's schema already (opening them does that).
#[derive(Debug)]
pub struct Transfer {
    source: SqlitePool,
    target: PgPool,
    /// In the order they are copied: referenced tables before those that reference them.
    tables: Vec<TablePlan>,
    /// SQLite tables left out, with the reason.
    left_out: Vec<(String, String)>,
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn source_error(err: sqlx::Error) -> MetaError {
    MetaError::Backend(format!("reading the SQLite database: {err}"))
}

fn target_error(err: sqlx::Error) -> MetaError {
    crate::postgres::backend(err)
}

impl Transfer {
    /// Lists SQLite's tables and matches each, column by column, with PostgreSQL's. Fails,
    /// naming it, on a table or column that PostgreSQL does not have, or on a column type
    /// this copy cannot carry.
    pub async fn plan(source: &SqliteMeta, target: &PostgresMeta) -> Result<Transfer, MetaError> {
        let source = source.read.clone();
        let target = target.pool.clone();
        let sqlite_tables: Vec<(String, Option<String>)> = sqlx::query_as(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name",
        )
        .fetch_all(&source)
        .await
        .map_err(source_error)?;
        let virtual_tables: Vec<String> = sqlite_tables
            .iter()
            .filter(|(_, sql)| {
                sql.as_deref()
                    .is_some_and(|sql| sql.to_ascii_uppercase().starts_with("CREATE VIRTUAL"))
            })
            .map(|(name, _)| name.clone())
            .collect();

        let pg_columns = target_columns(&target).await?;
        let with_triggers: BTreeSet<String> = sqlx::query_scalar(
            "SELECT DISTINCT c.relname::text FROM pg_trigger t \
             JOIN pg_class c ON c.oid = t.tgrelid \
             WHERE NOT t.tgisinternal AND c.relnamespace = current_schema()::regnamespace",
        )
        .fetch_all(&target)
        .await
        .map_err(target_error)?
        .into_iter()
        .collect();

        let mut tables = Vec::new();
        let mut left_out = Vec::new();
        for (name, _) in &sqlite_tables {
            if let Some((_, why)) = NOT_COPIED.iter().find(|(table, _)| table == name) {
                left_out.push((name.clone(), (*why).to_owned()));
                continue;
            }
            if virtual_tables
                .iter()
                .any(|v| name == v || name.starts_with(&format!("{v}_")))
            {
                left_out.push((
                    name.clone(),
                    "SQLite's full-text index: PostgreSQL derives its own from the rows".into(),
                ));
                continue;
            }
            let Some(pg) = pg_columns.get(name) else {
                return Err(MetaError::Backend(format!(
                    "table {name} has no counterpart in the PostgreSQL schema, so this berth cannot migrate it"
                )));
            };
            let sqlite_columns: Vec<String> =
                sqlx::query_scalar("SELECT name FROM pragma_table_info(?) ORDER BY cid")
                    .bind(name)
                    .fetch_all(&source)
                    .await
                    .map_err(source_error)?;
            let mut columns = Vec::new();
            for column in &sqlite_columns {
                let Some(target) = pg.iter().find(|c| &c.name == column) else {
                    return Err(MetaError::Backend(format!(
                        "column {name}.{column} has no counterpart in the PostgreSQL schema"
                    )));
                };
                if target.generated {
                    continue;
                }
                let kind = Kind::of(&target.data_type).ok_or_else(|| {
                    MetaError::Backend(format!(
                        "column {name}.{column} is of PostgreSQL type {}, which migrate cannot fill",
                        target.data_type
                    ))
                })?;
                columns.push(Column {
                    name: column.clone(),
                    kind,
                });
            }
            if let Some(missing) = pg.iter().find(|c| {
                c.required && !c.generated && !sqlite_columns.iter().any(|s| s == &c.name)
            }) {
                return Err(MetaError::Backend(format!(
                    "column {name}.{} is required in PostgreSQL but SQLite has no such column",
                    missing.name
                )));
            }
            tables.push(TablePlan {
                name: name.clone(),
                identity: pg
                    .iter()
                    .filter(|c| c.identity.is_some())
                    .map(|c| c.name.clone())
                    .collect(),
                identity_always: pg.iter().any(|c| c.identity.as_deref() == Some("ALWAYS")),
                triggers: with_triggers.contains(name),
                columns,
            });
        }
        let tables = in_reference_order(tables, &foreign_keys(&target).await?)?;
        Ok(Transfer {
            source,
            target,
            tables,
            left_out,
        })
    }

    /// The tables copied, in copy order.
    pub fn tables(&self) -> Vec<&str> {
        self.tables.iter().map(|t| t.name.as_str()).collect()
    }

    /// The SQLite tables left out, each with the reason.
    pub fn left_out(&self) -> &[(String, String)] {
        &self.left_out
    }

    /// Whether the target is empty, holds a migration already started, or holds other data.
    pub async fn target_state(&self) -> Result<TargetState, MetaError> {
        let done = self.done().await?;
        if !done.is_empty() {
            return Ok(TargetState::Started {
                done: done.into_iter().collect(),
            });
        }
        for table in &self.tables {
            if SEEDED_BY_MIGRATIONS.contains(&table.name.as_str()) {
                continue;
            }
            let any: bool = sqlx::query_scalar(&format!(
                "SELECT EXISTS (SELECT 1 FROM {})",
                quoted(&table.name)
            ))
            .fetch_one(&self.target)
            .await
            .map_err(target_error)?;
            if any {
                return Ok(TargetState::Occupied {
                    table: table.name.clone(),
                });
            }
        }
        Ok(TargetState::Empty)
    }

    async fn done(&self) -> Result<BTreeSet<String>, MetaError> {
        Ok(
            sqlx::query_scalar::<_, String>("SELECT table_name FROM migration_progress")
                .fetch_all(&self.target)
                .await
                .map_err(target_error)?
                .into_iter()
                .collect(),
        )
    }

    /// Copies every table not yet recorded as complete, each in its own transaction, then
    /// moves the identity sequences past the copied ids. Tables not complete are emptied
    /// first (of the rows PostgreSQL's migrations seeded), dependents before what they
    /// reference. Rerunning after an interruption, at any point, finishes the copy.
    pub async fn copy(&self, progress: &mut dyn FnMut(Step<'_>)) -> Result<(), MetaError> {
        let done = self.done().await?;
        let pending: Vec<&TablePlan> = self
            .tables
            .iter()
            .filter(|t| !done.contains(&t.name))
            .collect();
        let mut tx = self.target.begin().await.map_err(target_error)?;
        for table in pending.iter().rev() {
            let name = quoted(&table.name);
            let mut statements = vec![format!("DELETE FROM {name}")];
            if table.triggers {
                statements.insert(0, format!("ALTER TABLE {name} DISABLE TRIGGER USER"));
                statements.push(format!("ALTER TABLE {name} ENABLE TRIGGER USER"));
            }
            for statement in statements {
                sqlx::query(&statement)
                    .execute(&mut *tx)
                    .await
                    .map_err(target_error)?;
            }
        }
        tx.commit().await.map_err(target_error)?;

        for table in &self.tables {
            if done.contains(&table.name) {
                progress(Step::AlreadyCopied { table: &table.name });
                continue;
            }
            let mut tx = self.target.begin().await.map_err(target_error)?;
            let rows = self.copy_rows(&mut tx, table).await?;
            progress(Step::Written {
                table: &table.name,
                rows,
            });
            sqlx::query(
                "INSERT INTO migration_progress (table_name, rows, copied_at) \
                 VALUES ($1, $2, extract(epoch FROM now())::bigint)",
            )
            .bind(&table.name)
            .bind(i64::try_from(rows).unwrap_or(i64::MAX))
            .execute(&mut *tx)
            .await
            .map_err(target_error)?;
            tx.commit().await.map_err(target_error)?;
            progress(Step::Copied {
                table: &table.name,
                rows,
            });
        }

        for table in &self.tables {
            for column in &table.identity {
                sqlx::query(&format!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), m) \
                     FROM (SELECT max({}) AS m FROM {}) AS copied WHERE m IS NOT NULL",
                    quoted(column),
                    quoted(&table.name)
                ))
                .bind(quoted(&table.name))
                .bind(column)
                .execute(&self.target)
                .await
                .map_err(target_error)?;
            }
        }
        Ok(())
    }

    /// Streams one table's rows from SQLite into `tx`, in batches; the number copied.
    async fn copy_rows(
        &self,
        tx: &mut Transaction<'static, Postgres>,
        table: &TablePlan,
    ) -> Result<u64, MetaError> {
        if table.triggers {
            sqlx::query(&format!(
                "ALTER TABLE {} DISABLE TRIGGER USER",
                quoted(&table.name)
            ))
            .execute(&mut **tx)
            .await
            .map_err(target_error)?;
        }
        let names: Vec<String> = table.columns.iter().map(|c| quoted(&c.name)).collect();
        let select = format!("SELECT {} FROM {}", names.join(", "), quoted(&table.name));
        let mut source = self.source.acquire().await.map_err(source_error)?;
        let mut rows = sqlx::query(&select).fetch(&mut *source);
        let per_batch = (BATCH_ROWS).min(60_000 / table.columns.len().max(1)).max(1);
        let (mut batch, mut batch_bytes, mut copied) = (Vec::new(), 0usize, 0u64);
        while let Some(row) = rows.try_next().await.map_err(source_error)? {
            let values = table
                .columns
                .iter()
                .enumerate()
                .map(|(i, column)| read_value(&row, i, column, &table.name))
                .collect::<Result<Vec<_>, _>>()?;
            batch_bytes += values.iter().map(Value::len).sum::<usize>();
            batch.push(values);
            if batch.len() >= per_batch || batch_bytes >= BATCH_BYTES {
                copied += insert(tx, table, &names, std::mem::take(&mut batch)).await?;
                batch_bytes = 0;
            }
        }
        if !batch.is_empty() {
            copied += insert(tx, table, &names, batch).await?;
        }
        if table.triggers {
            sqlx::query(&format!(
                "ALTER TABLE {} ENABLE TRIGGER USER",
                quoted(&table.name)
            ))
            .execute(&mut **tx)
            .await
            .map_err(target_error)?;
        }
        Ok(copied)
    }

    /// Every copied table's row count on both sides, for the check after the copy.
    pub async fn counts(&self) -> Result<Vec<TableCount>, MetaError> {
        let mut counts = Vec::new();
        for table in &self.tables {
            let sql = format!("SELECT count(*) FROM {}", quoted(&table.name));
            let source: i64 = sqlx::query_scalar(&sql)
                .fetch_one(&self.source)
                .await
                .map_err(source_error)?;
            let target: i64 = sqlx::query_scalar(&sql)
                .fetch_one(&self.target)
                .await
                .map_err(target_error)?;
            counts.push(TableCount {
                table: table.name.clone(),
                source: source.max(0) as u64,
                target: target.max(0) as u64,
            });
        }
        Ok(counts)
    }
}

fn read_value(
    row: &sqlx::sqlite::SqliteRow,
    index: usize,
    column: &Column,
    table: &str,
) -> Result<Value, MetaError> {
    let unreadable = |err: sqlx::Error| {
        MetaError::Backend(format!(
            "a value of {table}.{} cannot be read as {:?}: {err}",
            column.name, column.kind
        ))
    };
    Ok(match column.kind {
        Kind::Int => Value::Int(row.try_get(index).map_err(unreadable)?),
        Kind::Bool => Value::Bool(
            row.try_get::<Option<i64>, _>(index)
                .map_err(unreadable)?
                .map(|flag| flag != 0),
        ),
        Kind::Float => Value::Float(row.try_get(index).map_err(unreadable)?),
        Kind::Text => Value::Text(row.try_get(index).map_err(unreadable)?),
        Kind::Bytes => Value::Bytes(row.try_get(index).map_err(unreadable)?),
    })
}

/// One multi-row `INSERT` of `rows` into `table`; the number inserted.
async fn insert(
    tx: &mut Transaction<'static, Postgres>,
    table: &TablePlan,
    names: &[String],
    rows: Vec<Vec<Value>>,
) -> Result<u64, MetaError> {
    let width = names.len();
    let mut sql = format!("INSERT INTO {} ({})", quoted(&table.name), names.join(", "));
    if table.identity_always {
        sql.push_str(" OVERRIDING SYSTEM VALUE");
    }
    sql.push_str(" VALUES ");
    for r in 0..rows.len() {
        if r > 0 {
            sql.push_str(", ");
        }
        let placeholders: Vec<String> =
            (1..=width).map(|c| format!("${}", r * width + c)).collect();
        sql.push('(');
        sql.push_str(&placeholders.join(", "));
        sql.push(')');
    }
    let mut query = sqlx::query(&sql);
    for value in rows.into_iter().flatten() {
        query = match value {
            Value::Int(v) => query.bind(v),
            Value::Bool(v) => query.bind(v),
            Value::Float(v) => query.bind(v),
            Value::Text(v) => query.bind(v),
            Value::Bytes(v) => query.bind(v),
        };
    }
    let done = query.execute(&mut **tx).await.map_err(|err| {
        MetaError::Backend(format!(
            "writing table {} into PostgreSQL: {err}",
            table.name
        ))
    })?;
    Ok(done.rows_affected())
}

#[derive(Debug)]
struct TargetColumn {
    name: String,
    data_type: String,
    /// NOT NULL without a default.
    required: bool,
    generated: bool,
    /// `ALWAYS` or `BY DEFAULT` for an identity column.
    identity: Option<String>,
}

/// PostgreSQL's tables in the current schema, with their columns.
async fn target_columns(pool: &PgPool) -> Result<BTreeMap<String, Vec<TargetColumn>>, MetaError> {
    let rows = sqlx::query(
        "SELECT table_name::text, column_name::text, data_type::text, \
                (is_nullable = 'NO' AND column_default IS NULL AND is_identity = 'NO') AS required, \
                (is_generated = 'ALWAYS') AS generated, \
                CASE WHEN is_identity = 'YES' THEN identity_generation::text END AS identity \
         FROM information_schema.columns WHERE table_schema = current_schema() \
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(pool)
    .await
    .map_err(target_error)?;
    let mut tables: BTreeMap<String, Vec<TargetColumn>> = BTreeMap::new();
    for row in rows {
        tables
            .entry(row.get("table_name"))
            .or_default()
            .push(TargetColumn {
                name: row.get("column_name"),
                data_type: row.get("data_type"),
                required: row.get("required"),
                generated: row.get("generated"),
                identity: row.get("identity"),
            });
    }
    Ok(tables)
}

/// Foreign keys among the current schema's tables, as (referencing, referenced).
async fn foreign_keys(pool: &PgPool) -> Result<Vec<(String, String)>, MetaError> {
    sqlx::query_as(
        "SELECT child.relname::text, parent.relname::text FROM pg_constraint c \
         JOIN pg_class child ON child.oid = c.conrelid \
         JOIN pg_class parent ON parent.oid = c.confrelid \
         WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(pool)
    .await
    .map_err(target_error)
}

/// `tables` ordered so that each comes after every table it references (ties by name), so
/// that inserting in this order satisfies every foreign key.
fn in_reference_order(
    tables: Vec<TablePlan>,
    references: &[(String, String)],
) -> Result<Vec<TablePlan>, MetaError> {
    let mut remaining: BTreeMap<String, TablePlan> =
        tables.into_iter().map(|t| (t.name.clone(), t)).collect();
    let mut ordered = Vec::new();
    while !remaining.is_empty() {
        let ready: Vec<String> = remaining
            .keys()
            .filter(|name| {
                !references.iter().any(|(child, parent)| {
                    child == *name && parent != *name && remaining.contains_key(parent)
                })
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(MetaError::Backend(format!(
                "the tables {} reference each other in a cycle; migrate cannot order them",
                remaining.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
        for name in ready {
            ordered.extend(remaining.remove(&name));
        }
    }
    Ok(ordered)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(name: &str) -> TablePlan {
        TablePlan {
            name: name.into(),
            columns: Vec::new(),
            identity: Vec::new(),
            identity_always: false,
            triggers: false,
        }
    }

    #[test]
    fn referenced_tables_come_first_and_cycles_are_refused() {
        let refs = vec![
            ("tags".to_owned(), "repositories".to_owned()),
            ("repositories".to_owned(), "namespaces".to_owned()),
            ("events".to_owned(), "events".to_owned()),
        ];
        let ordered = in_reference_order(
            vec![
                plan("tags"),
                plan("events"),
                plan("repositories"),
                plan("namespaces"),
            ],
            &refs,
        )
        .unwrap();
        let names: Vec<&str> = ordered.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["events", "namespaces", "repositories", "tags"]);
        let cycle = vec![
            ("a".to_owned(), "b".to_owned()),
            ("b".to_owned(), "a".to_owned()),
        ];
        let err = in_reference_order(vec![plan("a"), plan("b")], &cycle).unwrap_err();
        assert!(err.to_string().contains("a, b"), "{err}");
    }
}
