//! `berth serve`: the composition root. Opens the stores, builds the registry, the Hub and
//! the HTTP application, serves until SIGINT/SIGTERM, then drains in-flight requests and
//! writes the pulls still in memory.

use crate::config::{Config, LogFormat};
use axum::serve::ListenerExt as _;
use berth_core::access::PolicyAuthorizer;
use berth_core::auth::{AuthSettings, Authenticator};
use berth_core::hub::Hub;
use berth_core::identity::Identity;
use berth_core::ports::{BlobStore as _, IdentityStore, MetaStore, UploadSessions as _};
use berth_core::registry::RegistryOptions;
use berth_core::Registry;
use berth_http::AppState;
use berth_meta::{Durability, SqliteMeta};
use berth_storage::FsBlobStore;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data directory {dir} is not usable: {source}")]
    DataDir { dir: String, source: std::io::Error },
    #[error("data directory {dir} is in use by another berth server")]
    DataDirBusy { dir: String },
    #[error("cannot open the database in {dir}: {message}")]
    Database { dir: String, message: String },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("server failed: {0}")]
    Server(std::io::Error),
}

/// Creates the data directory, proves it writable and takes the server lock on it, so a
/// bad directory or a second server on the same one fails at startup. The returned file
/// holds the lock until the process exits.
fn prepare_data_dir(dir: &Path) -> Result<std::fs::File, ServeError> {
    let fail = |source| ServeError::DataDir {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)?;
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("berth.lock"))
        .map_err(fail)?;
    match lock.try_lock() {
        Ok(()) => Ok(lock),
        Err(std::fs::TryLockError::WouldBlock) => Err(ServeError::DataDirBusy {
            dir: dir.display().to_string(),
        }),
        Err(std::fs::TryLockError::Error(source)) => Err(fail(source)),
    }
}

pub fn run(config: Config) -> Result<(), ServeError> {
    let logs = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log.value)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr);
    match config.log_format.value {
        // One JSON object per line, with the request span (its id) on every line of a request.
        LogFormat::Json => logs
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
        LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), ServeError> {
    let data_dir = config.data_dir.value.clone();
    let shown_dir = data_dir.display().to_string();
    let _lock = prepare_data_dir(&data_dir)?;
    let blobs = FsBlobStore::open(&data_dir).map_err(|source| ServeError::DataDir {
        dir: shown_dir.clone(),
        source,
    })?;
    // Commits are flushed in groups, before each answer to a write (the HTTP layer awaits
    // `SqliteMeta::sync` through the store probe).
    let meta = SqliteMeta::open_with(&data_dir.join("berth.db"), Durability::GroupCommit)
        .await
        .map_err(|e| ServeError::Database {
            dir: shown_dir.clone(),
            message: e.to_string(),
        })?;
    recover_uploads(&blobs, &meta, &shown_dir).await?;
    let meta_store = Arc::new(meta.clone());
    create_first_admin(&meta_store, &shown_dir).await?;
    let authorizer = Arc::new(PolicyAuthorizer::new(meta_store.clone()));
    let hub = Arc::new(Hub::new(
        meta_store.clone() as Arc<dyn MetaStore>,
        authorizer.clone(),
    ));
    let auth = Authenticator::new(
        meta_store.clone(),
        authorizer,
        AuthSettings {
            token_ttl: config.token_ttl.value,
            ..AuthSettings::default()
        },
    )
    .await
    .map_err(|e| ServeError::Database {
        dir: shown_dir.clone(),
        message: e.to_string(),
    })?;
    let identity = Identity::<dyn IdentityStore>::new(meta_store.clone())
        .with_signup(config.allow_signup.value);
    if identity.signup_allowed() {
        tracing::info!(
            "self-service sign-up is open: anyone who reaches /signup can create an account"
        );
    }
    let registry = Registry::new(
        Arc::new(blobs),
        meta_store,
        RegistryOptions {
            upload_ttl: config.upload_ttl.value,
        },
    );
    // Expire abandoned uploads before serving, then periodically.
    expire_uploads(&registry).await;
    let addr = config.listen.value;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.to_string(),
            source,
        })?
        // Without TCP_NODELAY, a response whose body is written after its head waits for the
        // client's delayed ACK (40 ms on Linux) on every reused connection.
        .tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(error = %err, "could not set TCP_NODELAY");
            }
        });
    let expiry = tokio::spawn(expire_uploads_periodically(registry.clone()));
    // Manifests stored before platforms were recorded get theirs while Berth serves.
    let backfill = tokio::spawn(backfill_platforms(registry.clone()));
    let (stop_flushing, stop) = tokio::sync::oneshot::channel();
    let pull_flusher = tokio::spawn(flush_pulls_until(hub.clone(), stop));
    let probe = Arc::new(crate::probe::Stores {
        meta: meta.clone(),
        blob_root: data_dir.clone(),
    });
    let ops = berth_http::ops::Operations::new(config.metrics_allow.value.clone(), probe);
    let app = berth_http::router_with(
        AppState {
            registry,
            auth: Arc::new(auth),
            identity,
            hub: hub.clone(),
            public_url: config.public_url.value.clone(),
        },
        ops,
    );
    tracing::info!(%addr, data_dir = %shown_dir, "berth is listening");
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown_signal())
    .await
    .map_err(ServeError::Server)?;
    expiry.abort();
    // An unfinished backfill loses at most one uncommitted batch and resumes at the next start.
    backfill.abort();
    // Pulls of the last seconds are only in memory: the flusher writes them before it ends.
    let _ = stop_flushing.send(());
    if let Err(err) = pull_flusher.await {
        tracing::warn!(error = %err, "the pull recorder failed");
    }
    meta.close().await;
    tracing::info!("berth stopped");
    Ok(())
}

/// On first start (no accounts yet) creates the site admin `admin`, with the password from
/// `BERTH_ADMIN_PASSWORD` or a random one printed once, so the registry is never open.
async fn create_first_admin(meta: &Arc<SqliteMeta>, shown_dir: &str) -> Result<(), ServeError> {
    let from_env = std::env::var("BERTH_ADMIN_PASSWORD")
        .ok()
        .filter(|p| !p.is_empty());
    let generated = Identity::new(meta.clone())
        .first_start_admin(from_env)
        .await
        .map_err(|e| ServeError::Database {
            dir: shown_dir.to_owned(),
            message: format!("cannot create the first admin: {e}"),
        })?;
    if let Some(password) = generated {
        // The one time a secret is logged: there is no other way to hand it over.
        tracing::warn!(
            "created site admin \"admin\" with password {password} (shown once; change it with `berth user passwd admin --password-stdin`)"
        );
    }
    Ok(())
}

/// After a crash, upload files may disagree with their sessions: bytes of a chunk that was
/// never acknowledged, a file whose session was never recorded, a session whose bytes were
/// committed or lost. Make them agree before serving, so every session can resume.
async fn recover_uploads(
    blobs: &FsBlobStore,
    meta: &SqliteMeta,
    shown_dir: &str,
) -> Result<(), ServeError> {
    let sessions: HashMap<String, u64> = meta
        .stale_upload_sessions(i64::MAX, u32::MAX)
        .await
        .map_err(|e| ServeError::Database {
            dir: shown_dir.to_owned(),
            message: e.to_string(),
        })?
        .into_iter()
        .map(|s| (s.id, s.size))
        .collect();
    let report = blobs
        .recover_uploads(&sessions)
        .map_err(|source| ServeError::DataDir {
            dir: shown_dir.to_owned(),
            source,
        })?;
    for id in &report.lost {
        // The session cannot resume; ending it makes clients start over instead of failing.
        if let Err(err) = meta.remove_upload_session(id).await {
            tracing::warn!(upload = %id, error = %err, "could not end a lost upload session");
        }
        if let Err(err) = blobs.delete_upload(id).await {
            tracing::warn!(upload = %id, error = %err, "could not remove a lost upload");
        }
    }
    if report.trimmed + report.removed + report.lost.len() > 0 {
        tracing::info!(
            trimmed = report.trimmed,
            removed = report.removed,
            lost = report.lost.len(),
            "recovered interrupted uploads"
        );
    }
    Ok(())
}

/// Expires every upload session idle for longer than the TTL (in bounded batches).
async fn expire_uploads(registry: &Registry) {
    // A bound, in case a session keeps failing to go away.
    for _ in 0..100 {
        match registry.expire_uploads().await {
            Ok(0) => return,
            Ok(n) => tracing::info!(expired = n, "removed abandoned uploads"),
            Err(err) => {
                tracing::warn!(error = %err, "upload expiry failed");
                return;
            }
        }
    }
}

/// Reads the platform of every manifest that has none recorded yet; a failure is logged,
/// never fatal, and what is left is read at the next start.
async fn backfill_platforms(registry: Registry) {
    match registry.backfill_platforms().await {
        Ok(report) if report.recorded + report.unread == 0 => {}
        Ok(report) => tracing::info!(
            recorded = report.recorded,
            with_platform = report.with_platform,
            unread = report.unread,
            "recorded the platforms of manifests stored without one"
        ),
        Err(err) => {
            tracing::warn!(error = %err, "the platform backfill stopped; it resumes at the next start")
        }
    }
}

async fn expire_uploads_periodically(registry: Registry) {
    const PERIOD: Duration = Duration::from_secs(600);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
    loop {
        tick.tick().await;
        expire_uploads(&registry).await;
    }
}

/// Writes the pulls recorded since the last flush (counts, last pulled).
async fn flush_pulls(hub: &Hub) {
    match hub.flush_pulls().await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(pulls = n, "recorded pulls"),
        Err(err) => tracing::warn!(error = %err, "could not record pulls"),
    }
}

/// Flushes every 5 seconds, and once more when told to stop (a flush under way finishes
/// first, so no batch is lost halfway).
async fn flush_pulls_until(hub: Arc<Hub>, mut stop: tokio::sync::oneshot::Receiver<()>) {
    const PERIOD: Duration = Duration::from_secs(5);
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + PERIOD, PERIOD);
    loop {
        tokio::select! {
            _ = tick.tick() => flush_pulls(&hub).await,
            _ = &mut stop => break,
        }
    }
    flush_pulls(&hub).await;
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
    tracing::info!("shutting down: finishing in-flight requests");
}
