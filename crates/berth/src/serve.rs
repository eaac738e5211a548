//! `berth serve`: the composition root. Opens the stores, builds the registry and the HTTP
//! application, serves until SIGINT/SIGTERM, then drains in-flight requests.

use crate::config::Config;
use berth_core::access::OpenAccess;
use berth_core::registry::RegistryOptions;
use berth_core::Registry;
use berth_http::AppState;
use berth_meta::SqliteMeta;
use berth_storage::FsBlobStore;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("data directory {dir} is not usable: {source}")]
    DataDir { dir: String, source: std::io::Error },
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

/// Creates the data directory and proves it writable, so a bad one fails at startup.
fn prepare_data_dir(dir: &Path) -> Result<(), ServeError> {
    let fail = |source| ServeError::DataDir {
        dir: dir.display().to_string(),
        source,
    };
    std::fs::create_dir_all(dir).map_err(fail)?;
    let probe = dir.join(".write-probe");
    std::fs::write(&probe, b"ok").map_err(fail)?;
    std::fs::remove_file(&probe).map_err(fail)
}

pub fn run(config: Config) -> Result<(), ServeError> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log.value)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(serve(config))
}

async fn serve(config: Config) -> Result<(), ServeError> {
    let data_dir = config.data_dir.value.clone();
    let shown_dir = data_dir.display().to_string();
    prepare_data_dir(&data_dir)?;
    let blobs = FsBlobStore::open(&data_dir).map_err(|source| ServeError::DataDir {
        dir: shown_dir.clone(),
        source,
    })?;
    let meta = SqliteMeta::open(&data_dir.join("berth.db"))
        .await
        .map_err(|e| ServeError::Database {
            dir: shown_dir.clone(),
            message: e.to_string(),
        })?;
    let registry = Registry::new(
        Arc::new(blobs),
        Arc::new(meta.clone()),
        RegistryOptions {
            upload_ttl: config.upload_ttl.value,
        },
    );
    let addr = config.listen.value;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let expiry = tokio::spawn(expire_uploads_periodically(registry.clone()));
    let app = berth_http::router(AppState {
        registry,
        authorizer: Arc::new(OpenAccess),
    });
    tracing::info!(%addr, data_dir = %shown_dir, "berth is listening");
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await
        .map_err(ServeError::Server)?;
    expiry.abort();
    meta.close().await;
    tracing::info!("berth stopped");
    Ok(())
}

async fn expire_uploads_periodically(registry: Registry) {
    let mut tick = tokio::time::interval(Duration::from_secs(600));
    loop {
        tick.tick().await;
        match registry.expire_uploads().await {
            Ok(0) => {}
            Ok(n) => tracing::info!(expired = n, "removed abandoned uploads"),
            Err(err) => tracing::warn!(error = %err, "upload expiry failed"),
        }
    }
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
