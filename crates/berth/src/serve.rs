//! `berth serve`: opens the stores, recovers interrupted uploads, wires the services and the
//! jobs runner (`berth_http::wiring`), serves until SIGINT/SIGTERM, then drains in-flight
//! requests, stops the runner and writes the pulls still in memory.

use crate::backends::blobs::BlobBackend;
use crate::config::{Config, LogFormat};
use axum::serve::ListenerExt as _;
use berth_core::auth::AuthSettings;
use berth_core::hub::Hub;
use berth_core::identity::Identity;
use berth_core::jobs::maintenance::expire_abandoned_uploads;
use berth_core::jobs::RunnerOptions;
use berth_core::ports::{BlobStore as _, MetaStore};
use berth_core::registry::RegistryOptions;
use berth_core::webhooks::WebhookSettings;
use berth_http::wiring::{wire, Parts, Settings};
use berth_meta::Durability;
use berth_outbound::HttpTransport;
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
    #[error("{0}")]
    Metadata(#[from] crate::backends::metadata::MetadataError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    #[error("server failed: {0}")]
    Server(std::io::Error),
    #[error("{message}")]
    Secrets { message: String },
    #[error("{0}")]
    Tls(String),
    #[error("{0}")]
    Mirror(String),
    #[error("{0}")]
    Blobs(String),
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
    match crate::datadir::try_lock(dir).map_err(fail)? {
        Some(lock) => Ok(lock),
        None => Err(ServeError::DataDirBusy {
            dir: dir.display().to_string(),
        }),
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
        // File I/O runs on the blocking pool, one thread per operation in flight: tokio's
        // 512 let 64 concurrent uploads start dozens of threads, each with its own stack
        // and allocator cache resident. Sixteen keep the disk busy (fsyncs overlap) and
        // the rest queue.
        .max_blocking_threads(BLOCKING_THREADS)
        .build()
        .map_err(ServeError::Runtime)?;
    runtime.block_on(serve(config))
}

/// The blocking pool's size (file I/O and fsyncs).
const BLOCKING_THREADS: usize = 16;

async fn serve(config: Config) -> Result<(), ServeError> {
    let data_dir = config.data_dir.value.clone();
    let shown_dir = data_dir.display().to_string();
    // The certificate is checked before anything else starts, so a bad one fails fast.
    let certificates = match (&config.tls_cert.value, &config.tls_key.value) {
        (Some(cert), Some(key)) => Some(Arc::new(
            crate::tls::Certificates::load(cert, key).map_err(ServeError::Tls)?,
        )),
        _ => None,
    };
    // On PostgreSQL and S3 the data directory holds nothing shared, so nodes take no lock:
    // several run side by side behind a load balancer.
    let _lock = if config.shares_all_state() {
        None
    } else {
        Some(prepare_data_dir(&data_dir)?)
    };
    let seal = if config.shares_all_state() {
        crate::secrets::load_shared(config.secrets_key_file.value.as_deref())
    } else {
        crate::secrets::load_or_create(&config.secrets_key_path())
    }
    .map_err(|message| ServeError::Secrets { message })?;
    let blobs = BlobBackend::open(&config)
        .await
        .map_err(ServeError::Blobs)?;
    // Commits are flushed in groups, before each answer to a write (the HTTP layer awaits
    // `SqliteMeta::sync` through the store probe).
    let meta = crate::backends::metadata::open(&config, Durability::GroupCommit).await?;
    if let BlobBackend::Filesystem(files) = &blobs {
        // On S3 an append leaves no torn bytes behind and the next one clears leftovers.
        recover_uploads(files, &*meta, &shown_dir).await?;
    }
    let meta_store = meta.store.clone();
    create_first_admin(&meta_store, &shown_dir).await?;
    let transport = HttpTransport::new(config.webhook_allow_private.value)
        .map_err(|message| ServeError::Secrets { message })?;
    let mirrors = config
        .mirrors
        .value
        .iter()
        .cloned()
        .map(berth_outbound::registry::connect_mirror)
        .collect::<Result<Vec<_>, _>>()
        .map_err(ServeError::Mirror)?;
    let wired = wire(Parts {
        blobs: blobs.store(),
        meta: meta_store,
        clock: berth_core::clock::system(),
        transport: Arc::new(transport),
        seal,
        authorizer: None,
        mirrors,
        replication: Arc::new(berth_outbound::registry::RegistryConnector),
        locks: meta.cluster_locks(),
        settings: Settings {
            registry: RegistryOptions {
                upload_ttl: config.upload_ttl.value,
                max_upload_sessions: config.max_upload_sessions.value,
                max_blob_size: config.max_blob_size.value,
            },
            auth: AuthSettings {
                token_ttl: config.token_ttl.value,
                refresh_token_ttl: config.refresh_token_ttl.value,
                ..AuthSettings::default()
            },
            allow_signup: config.allow_signup.value,
            public_url: config.public_url.value.clone(),
            webhooks: WebhookSettings {
                allow_private: config.webhook_allow_private.value,
                disable_after: config.webhook_disable_after.value,
            },
            runner: RunnerOptions::default(),
            audit_retention: config.audit_retention.value,
            forwarding: berth_http::origin::Forwarding {
                trusted_proxies: config.trusted_proxies.value.clone(),
                tls: certificates.is_some(),
            },
            gc: config.gc_options(),
            default_quota: config.default_quota.value,
            rate_limit: config.rate_limit_tiers(),
            mirror_default: config.mirror_default.value.clone(),
            builds: config.build_settings(),
        },
    })
    .await
    .map_err(|e| ServeError::Database {
        dir: shown_dir.clone(),
        message: e.to_string(),
    })?;
    if wired.state.identity.signup_allowed() {
        tracing::info!(
            "self-service sign-up is open: anyone who reaches /signup can create an account"
        );
    }
    if config.webhook_allow_private.value {
        tracing::info!(
            "webhooks may call loopback and private-network addresses (webhook_allow_private)"
        );
    }
    // Expired uploads go before the first request, as part of startup recovery; the
    // recurring job does it from then on.
    if let Err(err) = expire_abandoned_uploads(&wired.state.registry).await {
        tracing::warn!(error = %err, "upload expiry failed");
    }
    let hub = wired.state.hub.clone();
    let addr = config.listen.value;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    // Builds push back through this listener, from this machine.
    wired.state.builds.set_registry_tls(certificates.is_some());
    match listener.local_addr() {
        Ok(bound) if bound.ip().is_unspecified() => wired
            .state
            .builds
            .set_registry_address(&format!("127.0.0.1:{}", bound.port())),
        Ok(bound) => wired.state.builds.set_registry_address(&bound.to_string()),
        Err(_) => {}
    }
    // Upload expiry, the platform backfill, history pruning and webhook deliveries are jobs;
    // a job under way at shutdown is left to its lease and runs again.
    let (stop_runner, runner_stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(wired.runner.run_until(async {
        let _ = runner_stopped.await;
    }));
    let (stop_flushing, stop) = tokio::sync::oneshot::channel();
    let pull_flusher = tokio::spawn(flush_pulls_until(hub.clone(), stop));
    // Runs for the life of the process: what it has not handed on at exit is at most one
    // second of this node's pulls.
    let limit_exchange = tokio::spawn(exchange_pull_limits(wired.state.pull_limits.clone()));
    let probe = Arc::new(crate::probe::Stores {
        meta: meta.clone(),
        blobs,
    });
    let mut ops = berth_http::ops::Operations::new(config.metrics_allow.value.clone(), probe);
    if !config.metrics.value {
        ops = ops.without_metrics();
    }
    let app = berth_http::router_with(wired.state, ops);
    match certificates {
        Some(certificates) => {
            let tls = certificates.server_config().map_err(ServeError::Tls)?;
            let listener = crate::tls::TlsListener::new(listener, tls).map_err(|source| {
                ServeError::Listen {
                    addr: addr.to_string(),
                    source,
                }
            })?;
            let reloader = tokio::spawn(crate::tls::reload_on_change(certificates));
            tracing::info!(%addr, data_dir = %shown_dir, "berth is listening (HTTPS)");
            // `tap_io` only so axum hands handlers the client's address as it does for TCP.
            axum::serve(
                listener.tap_io(|_| {}),
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(ServeError::Server)?;
            reloader.abort();
        }
        None => {
            // Without TCP_NODELAY, a response whose body is written after its head waits for
            // the client's delayed ACK (40 ms on Linux) on every reused connection.
            let listener = listener.tap_io(|tcp| {
                if let Err(err) = tcp.set_nodelay(true) {
                    tracing::debug!(error = %err, "could not set TCP_NODELAY");
                }
            });
            tracing::info!(%addr, data_dir = %shown_dir, storage = %config.storage.kind.value, "berth is listening");
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(shutdown_signal())
            .await
            .map_err(ServeError::Server)?;
        }
    }
    let _ = stop_runner.send(());
    if let Err(err) = runner.await {
        tracing::warn!(error = %err, "the jobs runner failed");
    }
    // Pulls of the last seconds are only in memory: the flusher writes them before it ends.
    let _ = stop_flushing.send(());
    limit_exchange.abort();
    if let Err(err) = pull_flusher.await {
        tracing::warn!(error = %err, "the pull recorder failed");
    }
    meta.close().await;
    tracing::info!("berth stopped");
    Ok(())
}

/// On first start (no accounts yet) creates the site admin `admin`, with the password from
/// `BERTH_ADMIN_PASSWORD` or a random one printed once, so the registry is never open.
async fn create_first_admin(meta: &Arc<dyn MetaStore>, shown_dir: &str) -> Result<(), ServeError> {
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
    meta: &dyn MetaStore,
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

/// Every second, hands this node's pull-limit spending to the database and applies what
/// the other nodes spent (the first round also reads what this node spent before a restart).
async fn exchange_pull_limits(limits: berth_core::ratelimit::PullLimits) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if let Err(err) = limits.exchange().await {
            tracing::warn!(error = %err, "could not exchange pull rate-limit counts");
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
