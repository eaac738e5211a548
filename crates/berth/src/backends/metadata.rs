//! The one factory for the metadata store: SQLite in the data directory (the default), or
//! PostgreSQL when `database_url` is set (cargo feature `postgres`). `serve` and every
//! administration command open the store through [`open`], so both refuse the same
//! configurations with the same one-line error.

use crate::config::{redact_database_url, Config};
use berth_core::ports::{ClusterLocks, MetaError, MetaStore, ProcessLocks};
use berth_meta::{Durability, PoolUse, SqliteMeta};
use std::path::PathBuf;
use std::sync::Arc;

/// Which metadata store the configuration names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataBackend {
    /// The SQLite file in the data directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database (the URL as configured, password included).
    Postgres(String),
}

impl MetadataBackend {
    pub fn of(config: &Config) -> MetadataBackend {
        match &config.database_url.value {
            Some(url) => MetadataBackend::Postgres(url.clone()),
            None => {
                MetadataBackend::Sqlite(config.data_dir.value.join(crate::datadir::DATABASE_FILE))
            }
        }
    }
}

/// The opened metadata store: every port as one object for the services, and the backend
/// itself for what only operations ask of it (readiness, durability, pool use, closing).
/// Derefs to the ports.
#[derive(Clone)]
pub struct Metadata {
    pub store: Arc<dyn MetaStore>,
    pub backend: OpenedBackend,
}

/// The backend behind a [`Metadata`].
#[derive(Debug, Clone)]
pub enum OpenedBackend {
    Sqlite(SqliteMeta),
    #[cfg(feature = "postgres")]
    Postgres(berth_meta::PostgresMeta),
}

impl std::ops::Deref for Metadata {
    type Target = dyn MetaStore;

    fn deref(&self) -> &Self::Target {
        &*self.store
    }
}

impl Metadata {
    /// What keeps a collection or a build to one node: on PostgreSQL, advisory locks that
    /// every node on the database sees; on SQLite, locks within this process (the data
    /// directory's lock keeps other servers out).
    pub fn cluster_locks(&self) -> Arc<dyn ClusterLocks> {
        match &self.backend {
            OpenedBackend::Sqlite(_) => Arc::new(ProcessLocks::default()),
            #[cfg(feature = "postgres")]
            OpenedBackend::Postgres(meta) => Arc::new(meta.clone()),
        }
    }

    /// Whether the database answers a read, for readiness checks.
    pub async fn ping(&self) -> Result<(), MetaError> {
        match &self.backend {
            OpenedBackend::Sqlite(meta) => meta.ping().await,
            #[cfg(feature = "postgres")]
            OpenedBackend::Postgres(meta) => meta.ping().await,
        }
    }

    /// Returns once every commit that returned before the call is durable: SQLite's grouped
    /// WAL flush; on PostgreSQL every commit already is when it returns.
    pub async fn sync(&self) -> Result<(), MetaError> {
        match &self.backend {
            OpenedBackend::Sqlite(meta) => meta.sync().await,
            #[cfg(feature = "postgres")]
            OpenedBackend::Postgres(_) => Ok(()),
        }
    }

    /// Upload sessions open now.
    pub async fn open_upload_sessions(&self) -> Result<u64, MetaError> {
        match &self.backend {
            OpenedBackend::Sqlite(meta) => meta.open_upload_sessions().await,
            #[cfg(feature = "postgres")]
            OpenedBackend::Postgres(meta) => meta.open_upload_sessions().await,
        }
    }

    /// How busy the connection pools are, for metrics.
    pub fn pool_use(&self) -> Vec<PoolUse> {
        match &self.backend {
            OpenedBackend::Sqlite(meta) => meta.pool_use().to_vec(),
            #[cfg(feature = "postgres")]
            OpenedBackend::Postgres(meta) => vec![meta.pool_use()],
        }
    }

    pub async fn close(&self) {
        match &self.backend {
            OpenedBackend::Sqlite(meta) => meta.close().await,
            #[cfg(feature = "postgres")]
            OpenedBackend::Postgres(meta) => meta.close().await,
        }
    }
}

/// Why the configured store could not be opened; each is one line for the operator, and
/// none holds a password.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    #[error("cannot open the database in {dir}: {message}")]
    Sqlite { dir: String, message: String },
    #[cfg(feature = "postgres")]
    #[error("cannot reach the database at {url}: {message}")]
    Unreachable { url: String, message: String },
    #[cfg(feature = "postgres")]
    #[error("the database at {url} refused to open: {message}")]
    Refused { url: String, message: String },
    #[cfg(not(feature = "postgres"))]
    #[error(
        "database_url is set to {url}, but this berth was built without PostgreSQL support \
         (cargo feature `postgres`); rebuild with it, or unset database_url to use SQLite"
    )]
    NotBuiltIn { url: String },
    #[cfg(feature = "postgres")]
    #[error(
        "the PostgreSQL metadata backend is not complete in this build: it does not yet \
         implement {missing} (done: {done}); unset database_url to use SQLite"
    )]
    Incomplete { missing: String, done: String },
    #[error("{command} works on the SQLite database in data_dir; database_url is set to {url} (use PostgreSQL's own tools, pg_dump and pg_restore, for it)")]
    SqliteOnly { command: &'static str, url: String },
}

/// Opens the configured metadata store, migrated, for `serve` (`GroupCommit`) or for an
/// administration command (`EveryCommit`; ignored by PostgreSQL, where every commit is
/// durable when it returns).
pub async fn open(config: &Config, durability: Durability) -> Result<Metadata, MetadataError> {
    match MetadataBackend::of(config) {
        MetadataBackend::Sqlite(path) => {
            let dir = config.data_dir.value.display().to_string();
            std::fs::create_dir_all(&config.data_dir.value).map_err(|e| MetadataError::Sqlite {
                dir: dir.clone(),
                message: e.to_string(),
            })?;
            let meta = SqliteMeta::open_with(&path, durability)
                .await
                .map_err(|e| MetadataError::Sqlite {
                    dir,
                    message: e.to_string(),
                })?;
            Ok(Metadata {
                store: Arc::new(meta.clone()),
                backend: OpenedBackend::Sqlite(meta),
            })
        }
        MetadataBackend::Postgres(url) => open_postgres(&url).await,
    }
}

/// Refuses, with one line naming the alternative, commands that work on the SQLite file
/// itself (backup, restore, fsck) when the metadata lives in PostgreSQL.
pub fn require_sqlite(config: &Config, command: &'static str) -> Result<(), MetadataError> {
    match MetadataBackend::of(config) {
        MetadataBackend::Sqlite(_) => Ok(()),
        MetadataBackend::Postgres(url) => Err(MetadataError::SqliteOnly {
            command,
            url: redact_database_url(&url),
        }),
    }
}

#[cfg(feature = "postgres")]
async fn open_postgres(url: &str) -> Result<Metadata, MetadataError> {
    use berth_meta::PostgresMeta;
    let shown = redact_database_url(url);
    // Connecting first (and migrating) tells an unreachable or misconfigured database
    // apart from the incomplete backend, whose refusal follows.
    let meta = PostgresMeta::connect(url).await.map_err(|e| match e {
        MetaError::Unavailable(message) => MetadataError::Unreachable {
            url: shown.clone(),
            message: without_secret(&message, url),
        },
        other => MetadataError::Refused {
            url: shown.clone(),
            message: without_secret(&other.to_string(), url),
        },
    })?;
    match meta.clone().into_meta_store() {
        Some(store) => Ok(Metadata {
            store,
            backend: OpenedBackend::Postgres(meta),
        }),
        None => {
            // Until every port is ported this refuses, naming what is missing, rather than
            // serve half of the registry.
            meta.close().await;
            Err(MetadataError::Incomplete {
                missing: PostgresMeta::MISSING_PORTS.join(", "),
                done: PostgresMeta::DONE_PORTS.join(", "),
            })
        }
    }
}

#[cfg(not(feature = "postgres"))]
async fn open_postgres(url: &str) -> Result<Metadata, MetadataError> {
    Err(MetadataError::NotBuiltIn {
        url: redact_database_url(url),
    })
}

/// A driver's message with the URL's password taken out, should it quote the URL.
#[cfg(feature = "postgres")]
fn without_secret(message: &str, url: &str) -> String {
    let message = message.replace(url, &redact_database_url(url));
    let password = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|authority| authority.rsplit_once('@'))
        .and_then(|(user_info, _)| user_info.split_once(':'))
        .map(|(_, password)| password)
        .filter(|p| !p.is_empty());
    match password {
        Some(password) => message.replace(password, "***"),
        None => message,
    }
}
