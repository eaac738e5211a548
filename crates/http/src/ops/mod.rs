//! What an operator watches: `GET /metrics` (Prometheus), `GET /healthz` (alive),
//! `GET /readyz` (the stores answer), and the request id, span, metrics and log line every
//! request gets on its way through.

mod metrics;
mod observe;

pub use metrics::PoolStats;
pub(crate) use observe::observe;

use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{header, HeaderValue, Method, Request, Response, StatusCode};
use axum::routing::any;
use axum::Router;
use berth_core::Error;
use ipnet::IpNet;
use metrics::{GcTotals, ProcessStats, RequestMetrics, Scrape, Snapshot};
use std::net::IpAddr;
use std::sync::Arc;

/// What the operations endpoints ask of the stores. Implemented where the stores are
/// composed (`berth serve`); answers must be quick, since probes come every few seconds.
#[async_trait::async_trait]
pub trait StoreProbe: Send + Sync {
    /// Whether the database answers a read; the error is logged, never sent.
    async fn database(&self) -> Result<(), String>;
    /// Whether the blob store answers.
    async fn blobs(&self) -> Result<(), String>;
    /// Upload sessions open now.
    async fn uploads_in_progress(&self) -> Result<u64, String>;
    /// The database's connection pools.
    fn pools(&self) -> Vec<PoolStats>;
    /// Returns once every commit made so far is on stable storage: awaited before any
    /// answer to a write is sent, so one flush serves every request waiting at once.
    async fn durable(&self) -> Result<(), String>;
}

/// The operations settings and the request metrics the router records into.
#[derive(Clone)]
pub struct Operations {
    metrics_allow: Arc<[IpNet]>,
    probe: Option<Arc<dyn StoreProbe>>,
    /// None with metrics off (`metrics = false`): requests are neither counted nor timed,
    /// and `/metrics` answers 404.
    pub(crate) requests: Option<Arc<RequestMetrics>>,
}

impl Default for Operations {
    /// Metrics for loopback callers only, and no store probe: `/readyz` then answers 503,
    /// since it cannot tell.
    fn default() -> Self {
        Operations {
            metrics_allow: loopback().into(),
            probe: None,
            requests: Some(Default::default()),
        }
    }
}

/// 127.0.0.0/8 and ::1.
fn loopback() -> Vec<IpNet> {
    let v4 = IpNet::new(IpAddr::from([127, 0, 0, 0]), 8);
    let v6 = IpNet::new(IpAddr::from(std::net::Ipv6Addr::LOCALHOST), 128);
    v4.into_iter().chain(v6).collect()
}

impl Operations {
    /// `metrics_allow`: who may read `/metrics` without credentials.
    pub fn new(metrics_allow: Vec<IpNet>, probe: Arc<dyn StoreProbe>) -> Operations {
        Operations {
            metrics_allow: metrics_allow.into(),
            probe: Some(probe),
            requests: Some(Default::default()),
        }
    }

    /// The same without request metrics (`metrics = false`): for operators who do not
    /// scrape, and to measure what the metrics cost.
    pub fn without_metrics(self) -> Operations {
        Operations {
            requests: None,
            ..self
        }
    }

    /// Holds an answer to a write until what it did is on stable storage; a failed flush
    /// turns it into an error, since the write may be lost.
    pub(crate) async fn durable(&self) -> Result<(), String> {
        match &self.probe {
            Some(probe) => probe.durable().await,
            None => Ok(()),
        }
    }

    fn allows_without_credentials(&self, peer: Option<IpAddr>) -> bool {
        // A v4 client of a server listening on `[::]` shows as ::ffff:a.b.c.d.
        peer.map(|ip| ip.to_canonical())
            .is_some_and(|ip| self.metrics_allow.iter().any(|net| net.contains(&ip)))
    }
}

pub(crate) fn routes(ops: Operations) -> Router<AppState> {
    let for_metrics = ops.clone();
    Router::new()
        .route(
            "/metrics",
            any(
                move |State(state): State<AppState>, request: Request<Body>| {
                    let ops = for_metrics.clone();
                    async move { metrics_endpoint(&state, &ops, request).await }
                },
            ),
        )
        .route("/healthz", any(healthz))
        .route(
            "/readyz",
            any(move |request: Request<Body>| {
                let ops = ops.clone();
                async move { readyz(&ops, request.method()).await }
            }),
        )
}

/// A small JSON answer that no cache keeps.
fn answer(status: StatusCode, body: &'static str, method: &Method) -> Response<Body> {
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(body)
    };
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn only_reads(method: &Method) -> Option<Response<Body>> {
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    let mut response = crate::oci::error_response(&crate::oci::method_not_allowed(method), method);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(response)
}

/// The process is up and serving; it asks nothing of the stores.
async fn healthz(request: Request<Body>) -> Response<Body> {
    let method = request.method();
    only_reads(method).unwrap_or_else(|| answer(StatusCode::OK, "{\"status\":\"ok\"}", method))
}

/// The database and the blob store answer. What failed is logged, not told.
async fn readyz(ops: &Operations, method: &Method) -> Response<Body> {
    if let Some(refused) = only_reads(method) {
        return refused;
    }
    let unavailable = || {
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "{\"status\":\"unavailable\"}",
            method,
        )
    };
    let Some(probe) = &ops.probe else {
        return unavailable();
    };
    let (database, blobs) = tokio::join!(probe.database(), probe.blobs());
    let mut ready = true;
    if let Err(detail) = database {
        tracing::warn!(%detail, "not ready: the database does not answer");
        ready = false;
    }
    if let Err(detail) = blobs {
        tracing::warn!(%detail, "not ready: the blob store does not answer");
        ready = false;
    }
    if ready {
        answer(StatusCode::OK, "{\"status\":\"ready\"}", method)
    } else {
        unavailable()
    }
}

/// Prometheus metrics: open to `metrics_allow`, to site admins from anywhere else.
async fn metrics_endpoint(
    state: &AppState,
    ops: &Operations,
    request: Request<Body>,
) -> Response<Body> {
    let method = request.method().clone();
    let Some(requests) = ops.requests.clone() else {
        let err = Error::NotFound("/metrics (metrics are off: `metrics = false`)".into());
        return crate::oci::error_response(&err, &method);
    };
    if let Some(refused) = only_reads(&method) {
        return refused;
    }
    let peer = crate::auth::peer_address(request.extensions());
    if !ops.allows_without_credentials(peer) {
        let refusal = match crate::api::identify(state, request.headers(), peer).await {
            Ok(principal) if principal.is_site_admin() => None,
            Ok(principal) if principal.is_anonymous() => Some(Error::Unauthorized.into()),
            Ok(_) => Some(Error::Denied.into()),
            Err(err) => Some(err),
        };
        if let Some(err) = refusal {
            let mut response = crate::api::error::render(&err, &method);
            if response.status() == StatusCode::UNAUTHORIZED {
                response.headers_mut().insert(
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static("Basic realm=\"berth metrics\""),
                );
            }
            return response;
        }
    }
    let snapshot = Snapshot {
        uploads_in_progress: match &ops.probe {
            Some(probe) => probe
                .uploads_in_progress()
                .await
                .inspect_err(|detail| tracing::warn!(%detail, "cannot count open uploads"))
                .ok(),
            None => None,
        },
        pools: ops.probe.as_ref().map(|p| p.pools()).unwrap_or_default(),
        sign_ins: state.auth.sign_in_counts(),
        process: ProcessStats::read(),
        gc: GcTotals::read(&state.collector.metrics()),
        mirrors: state.mirrors.totals(),
        pull_decisions: state.pull_limits.decisions(),
    };
    let mut registry = prometheus_client::registry::Registry::default();
    registry.register_collector(Box::new(Scrape { requests, snapshot }));
    let mut text = String::with_capacity(16 * 1024);
    if let Err(err) = prometheus_client::encoding::text::encode(&mut text, &registry) {
        return crate::oci::error_response(&Error::internal("metrics", err), &method);
    }
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(text)
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
