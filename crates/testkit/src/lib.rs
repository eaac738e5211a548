//! The test kit: a Berth server wired by `berth_http::wiring::wire` (the function `berth
//! serve` uses) over a fresh temporary data directory, served on a loopback port, with its
//! jobs runner running beside it; image builders and push helpers ([`images`]); a webhook
//! receiver that checks signatures ([`receiver`]); a private Garage, the S3-compatible
//! store, for tests that want one ([`garage`]); a private PostgreSQL cluster with a
//! database per test ([`postgres`]).

pub mod garage;
pub mod images;
pub mod postgres;
mod probe;
pub mod receiver;

use berth_core::access::Authorizer;
use berth_core::clock::Clock;
use berth_core::jobs::Runner;
use berth_core::webhooks::{SealKey, WebhookTransport};
use berth_http::wiring::{wire, Parts, Settings};
use berth_http::AppState;
use berth_meta::SqliteMeta;
use berth_outbound::HttpTransport;
use berth_storage::FsBlobStore;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// How to build a test server; the defaults are `berth serve`'s, except that webhooks may
/// call loopback receivers.
pub struct Options {
    pub settings: Settings,
    /// None: the real permission rules.
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// None: the system clock.
    pub clock: Option<Arc<dyn Clock>>,
    /// None: real HTTP, loopback allowed.
    pub transport: Option<Arc<dyn WebhookTransport>>,
    /// Whether the jobs runner runs by itself (false: the test drives `run_due`).
    pub run_jobs: bool,
    /// Some: the operations endpoints wired to the stores as `serve` wires them, with
    /// `/metrics` open without credentials to these networks only.
    pub metrics_allow: Option<Vec<ipnet::IpNet>>,
    /// Requests are not counted and `/metrics` answers 404, as with `metrics = false`.
    pub metrics_off: bool,
    /// `[[mirror]]` entries, reached through the real registry client.
    pub mirrors: Vec<berth_core::mirror::MirrorConfig>,
}

impl Default for Options {
    fn default() -> Self {
        let mut settings = Settings::default();
        settings.webhooks.allow_private = true;
        Options {
            settings,
            authorizer: None,
            clock: None,
            transport: None,
            run_jobs: true,
            metrics_allow: None,
            metrics_off: false,
            mirrors: Vec::new(),
        }
    }
}

/// A running server; stopped (server and runner) when dropped.
pub struct Served {
    pub addr: SocketAddr,
    pub state: AppState,
    pub meta: Arc<SqliteMeta>,
    pub runner: Runner,
    tasks: Vec<JoinHandle<()>>,
}

impl Served {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Serves the data in `dir` (its blobs in `dir/data`, its database `dir/berth.db`).
pub async fn serve(dir: &Path, options: Options) -> Served {
    let blobs = FsBlobStore::open(dir.join("data")).expect("blob store");
    let meta = Arc::new(
        SqliteMeta::open(&dir.join("berth.db"))
            .await
            .expect("database"),
    );
    let transport = options.transport.unwrap_or_else(|| {
        Arc::new(HttpTransport::new(options.settings.webhooks.allow_private).expect("HTTP client"))
    });
    let mut settings = options.settings;
    // Each test server builds in its own directory, beside its data.
    if settings.builds.work_dir == berth_core::builds::BuildSettings::default().work_dir {
        settings.builds.work_dir = dir.join("builds");
    }
    let wired = wire(Parts {
        blobs: Arc::new(blobs),
        meta: meta.clone(),
        clock: options.clock.unwrap_or_else(berth_core::clock::system),
        transport,
        seal: SealKey::from_bytes(&SealKey::generate()),
        authorizer: options.authorizer,
        mirrors: options
            .mirrors
            .into_iter()
            .map(|m| berth_outbound::registry::connect_mirror(m).expect("mirror client"))
            .collect(),
        replication: Arc::new(berth_outbound::registry::RegistryConnector),
        locks: Arc::new(berth_core::ports::ProcessLocks::default()),
        settings,
    })
    .await
    .expect("wiring");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("address");
    wired.state.builds.set_registry_address(&addr.to_string());
    let ops = match options.metrics_allow {
        None => berth_http::ops::Operations::default(),
        Some(allowed) => {
            let probe = Arc::new(probe::Stores {
                meta: meta.clone(),
                blob_root: dir.join("data"),
            });
            berth_http::ops::Operations::new(allowed, probe)
        }
    };
    let ops = match options.metrics_off {
        true => ops.without_metrics(),
        false => ops,
    };
    let app = berth_http::router_with(wired.state.clone(), ops);
    let mut tasks = vec![tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .await
        .expect("server");
    })];
    if options.run_jobs {
        let runner = wired.runner.clone();
        tasks.push(tokio::spawn(runner.run_until(std::future::pending())));
    }
    Served {
        addr,
        state: wired.state,
        meta,
        runner: wired.runner,
        tasks,
    }
}

/// A fresh data directory; keep it alive as long as the server.
pub fn data_dir() -> TempDir {
    tempfile::tempdir().expect("temp dir")
}
