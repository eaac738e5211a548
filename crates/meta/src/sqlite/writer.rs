//! The single writer connection, held by Berth rather than by a pool.
//!
//! sqlx's pool pings a connection on every return (a round trip to the connection's worker
//! thread, two thread switches), and the connection cannot be taken again until the ping is
//! back. On the one writer every write queues behind that: a blob push returned it twice. A
//! lock around one connection serializes writes the same way, with nothing after each.

use futures_util::future::BoxFuture;
use futures_util::stream::BoxStream;
use futures_util::{FutureExt, StreamExt};
use sqlx::sqlite::{
    Sqlite, SqliteConnection, SqliteQueryResult, SqliteRow, SqliteStatement,
    SqliteTransactionManager,
};
use sqlx::{Connection, Describe, Either, Execute, Executor, TransactionManager};
use std::sync::Arc;
use tokio::sync::{Mutex, OwnedMutexGuard};

/// The writer connection; cloning shares it. Usable as an executor (`&writer`): each
/// statement takes the connection for its own time.
#[derive(Debug, Clone)]
pub(super) struct Writer {
    /// `None` once closed.
    connection: Arc<Mutex<Option<SqliteConnection>>>,
}

/// The writer, taken: no other statement runs on it until the guard is dropped.
struct WriterGuard(OwnedMutexGuard<Option<SqliteConnection>>);

impl WriterGuard {
    fn connection(&self) -> &SqliteConnection {
        // `lock` only hands out a guard over an open connection.
        self.0
            .as_ref()
            .unwrap_or_else(|| unreachable!("the writer guard is never empty"))
    }

    fn connection_mut(&mut self) -> &mut SqliteConnection {
        self.0
            .as_mut()
            .unwrap_or_else(|| unreachable!("the writer guard is never empty"))
    }
}

/// A write transaction: holds the writer from its `BEGIN` until it commits, rolls back or
/// is dropped (which rolls it back), and derefs to the connection for its statements.
pub(super) struct WriteTx {
    writer: WriterGuard,
    open: bool,
}

impl WriteTx {
    pub(super) async fn commit(mut self) -> Result<(), sqlx::Error> {
        SqliteTransactionManager::commit(self.writer.connection_mut()).await?;
        self.open = false;
        Ok(())
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.writer.connection()
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.writer.connection_mut()
    }
}

impl Drop for WriteTx {
    fn drop(&mut self) {
        if self.open {
            // Queued on the connection's worker ahead of whatever the next holder sends.
            SqliteTransactionManager::start_rollback(self.writer.connection_mut());
        }
    }
}

impl Writer {
    pub(super) fn new(connection: SqliteConnection) -> Writer {
        Writer {
            connection: Arc::new(Mutex::new(Some(connection))),
        }
    }

    /// Waits for the writer and begins a transaction on it with `statement`.
    pub(super) async fn begin(&self, statement: &'static str) -> Result<WriteTx, sqlx::Error> {
        let mut writer = self.lock().await?;
        let connection = writer.connection_mut();
        // sqlx counts transactions itself, and its count stays raised after a `COMMIT` that
        // SQLite had already rolled back (a full disk): a custom `BEGIN` is then refused, and
        // a plain one opens a `SAVEPOINT`, which outside a transaction SQLite runs as one.
        let statement = (!connection.is_in_transaction()).then_some(statement.into());
        SqliteTransactionManager::begin(connection, statement).await?;
        Ok(WriteTx { writer, open: true })
    }

    async fn lock(&self) -> Result<WriterGuard, sqlx::Error> {
        let guard = self.connection.clone().lock_owned().await;
        match *guard {
            Some(_) => Ok(WriterGuard(guard)),
            None => Err(sqlx::Error::PoolClosed),
        }
    }

    /// Whether a statement or transaction holds the writer now (for the pool metrics).
    pub(super) fn busy(&self) -> bool {
        self.connection.try_lock().is_err()
    }

    /// Closes the connection once the statement holding it is done, finishing the WAL
    /// checkpoint; later statements fail with `PoolClosed`.
    pub(super) async fn close(&self) {
        let connection = self.connection.lock().await.take();
        if let Some(connection) = connection {
            if let Err(err) = connection.close().await {
                tracing::warn!(error = %err, "closing the database's writer");
            }
        }
    }
}

impl<'w> Executor<'w> for &'w Writer {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'w: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        // The rows are gathered while the writer is held (a stream cannot own both the
        // guard and a borrow of it); what runs on the writer returns few rows.
        async move {
            match self.lock().await {
                Ok(mut writer) => {
                    let rows: Vec<_> = writer.connection_mut().fetch_many(query).collect().await;
                    futures_util::stream::iter(rows).boxed()
                }
                Err(err) => futures_util::stream::once(async { Err(err) }).boxed(),
            }
        }
        .flatten_stream()
        .boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        'w: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        async move {
            self.lock()
                .await?
                .connection_mut()
                .fetch_optional(query)
                .await
        }
        .boxed()
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [sqlx::sqlite::SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement<'q>, sqlx::Error>>
    where
        'w: 'e,
    {
        async move {
            self.lock()
                .await?
                .connection_mut()
                .prepare_with(sql, parameters)
                .await
        }
        .boxed()
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Sqlite>, sqlx::Error>>
    where
        'w: 'e,
    {
        async move { self.lock().await?.connection_mut().describe(sql).await }.boxed()
    }
}
