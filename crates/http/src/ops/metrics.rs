//! Request metrics kept in fixed arrays of atomics (one slot per route kind, method and
//! status class), so recording a request takes a few relaxed atomic adds and no lock or
//! allocation; a scrape reads them and the process's own figures and encodes them through
//! `prometheus-client`.

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// What a request was for, from its path alone: a small fixed set, so labels stay few.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RouteKind {
    /// `/v2/` and `/v2/<anything unrecognized>`.
    Base,
    Manifest,
    Blob,
    Upload,
    Tags,
    Catalog,
    Referrers,
    Token,
    /// `/v1/search`.
    Search,
    Api,
    /// `/metrics`, `/healthz`, `/readyz`.
    Ops,
    /// The web pages and everything else.
    Ui,
}

impl RouteKind {
    const ALL: [RouteKind; 12] = [
        RouteKind::Base,
        RouteKind::Manifest,
        RouteKind::Blob,
        RouteKind::Upload,
        RouteKind::Tags,
        RouteKind::Catalog,
        RouteKind::Referrers,
        RouteKind::Token,
        RouteKind::Search,
        RouteKind::Api,
        RouteKind::Ops,
        RouteKind::Ui,
    ];

    fn as_str(self) -> &'static str {
        match self {
            RouteKind::Base => "base",
            RouteKind::Manifest => "manifest",
            RouteKind::Blob => "blob",
            RouteKind::Upload => "upload",
            RouteKind::Tags => "tags",
            RouteKind::Catalog => "catalog",
            RouteKind::Referrers => "referrers",
            RouteKind::Token => "token",
            RouteKind::Search => "search",
            RouteKind::Api => "api",
            RouteKind::Ops => "ops",
            RouteKind::Ui => "ui",
        }
    }

    /// Classifies a path the way the OCI router does, from its end (repository names may
    /// contain `blobs` or `manifests` as components).
    pub fn of_path(path: &str) -> RouteKind {
        if let Some(rest) = path.strip_prefix("/v2") {
            return RouteKind::of_registry_path(rest);
        }
        let first = path.trim_start_matches('/').split('/').next().unwrap_or("");
        match first {
            "token" => RouteKind::Token,
            "api" => RouteKind::Api,
            "v1" if path.starts_with("/v1/search") => RouteKind::Search,
            "metrics" | "healthz" | "readyz" if path.len() == first.len() + 1 => RouteKind::Ops,
            _ => RouteKind::Ui,
        }
    }

    fn of_registry_path(rest: &str) -> RouteKind {
        if !rest.is_empty() && !rest.starts_with('/') {
            return RouteKind::Ui;
        }
        if rest == "/_catalog" {
            return RouteKind::Catalog;
        }
        let mut segments = rest.rsplit('/');
        let last = segments.next().unwrap_or("");
        let previous = segments.next().unwrap_or("");
        let before = segments.next().unwrap_or("");
        match (before, previous, last) {
            (_, "tags", "list") => RouteKind::Tags,
            (_, "blobs", "uploads") | ("blobs", "uploads", _) => RouteKind::Upload,
            (_, "manifests", _) => RouteKind::Manifest,
            (_, "blobs", _) => RouteKind::Blob,
            (_, "referrers", _) => RouteKind::Referrers,
            _ => RouteKind::Base,
        }
    }
}

const METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OTHER"];

fn method_index(method: &axum::http::Method) -> usize {
    use axum::http::Method;
    match *method {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::POST => 2,
        Method::PUT => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        _ => 6,
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

fn class_index(status: u16) -> usize {
    usize::from(status / 100).clamp(1, CLASSES.len()) - 1
}

/// Upper bounds of the latency buckets, in seconds: sub-millisecond manifest reads up to
/// minute-long blob uploads.
const BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

const KINDS: usize = RouteKind::ALL.len();

/// One kind's latency histogram: a count per bucket (the last is +Inf), the sum, the count.
#[derive(Debug, Default)]
struct Latency {
    buckets: [AtomicU64; BUCKETS.len() + 1],
    sum_nanos: AtomicU64,
    count: AtomicU64,
}

/// Every request's counts since the process started.
#[derive(Debug)]
pub struct RequestMetrics {
    requests: Vec<AtomicU64>,
    latency: [Latency; KINDS],
    received: [AtomicU64; KINDS],
    sent: [AtomicU64; KINDS],
    in_flight: AtomicI64,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        RequestMetrics {
            requests: (0..KINDS * METHODS.len() * CLASSES.len())
                .map(|_| AtomicU64::new(0))
                .collect(),
            latency: Default::default(),
            received: Default::default(),
            sent: Default::default(),
            in_flight: AtomicI64::new(0),
        }
    }
}

fn kind_index(kind: RouteKind) -> usize {
    kind as usize
}

impl RequestMetrics {
    /// A request whose response head is ready after `elapsed`.
    pub fn record(
        &self,
        kind: RouteKind,
        method: &axum::http::Method,
        status: u16,
        elapsed: Duration,
    ) {
        let k = kind_index(kind);
        let slot = (k * METHODS.len() + method_index(method)) * CLASSES.len() + class_index(status);
        self.requests[slot].fetch_add(1, Ordering::Relaxed);
        let seconds = elapsed.as_secs_f64();
        let bucket = BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(BUCKETS.len());
        let latency = &self.latency[k];
        latency.buckets[bucket].fetch_add(1, Ordering::Relaxed);
        let nanos = u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX);
        latency.sum_nanos.fetch_add(nanos, Ordering::Relaxed);
        latency.count.fetch_add(1, Ordering::Relaxed);
    }

    pub fn received(&self, kind: RouteKind, bytes: u64) {
        self.received[kind_index(kind)].fetch_add(bytes, Ordering::Relaxed);
    }

    pub fn sent(&self, kind: RouteKind, bytes: u64) {
        self.sent[kind_index(kind)].fetch_add(bytes, Ordering::Relaxed);
    }

    /// Counts a request as under way until the guard is dropped (also when the client goes
    /// away and the request is cancelled).
    pub fn start(&self) -> InFlight<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(&self.in_flight)
    }
}

/// A request under way; see [`RequestMetrics::start`].
pub struct InFlight<'a>(&'a AtomicI64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One connection pool's use at the moment of a scrape.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// Which pool (`read`, `write`).
    pub name: &'static str,
    /// Connections open, in use or idle.
    pub open: u32,
    pub idle: u32,
    /// The most the pool opens.
    pub max: u32,
}

/// The process's own figures, read from `/proc/self` at a scrape.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub max_fds: Option<u64>,
    pub cpu_seconds: Option<f64>,
}

impl ProcessStats {
    /// Reads `/proc/self`; on systems without it every figure is absent and left out.
    pub fn read() -> ProcessStats {
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let status_kib = |field: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        };
        let open_fds = std::fs::read_dir("/proc/self/fd")
            .ok()
            .map(|dir| dir.count() as u64);
        let max_fds = std::fs::read_to_string("/proc/self/limits")
            .ok()
            .and_then(|limits| {
                let line = limits
                    .lines()
                    .find(|l| l.starts_with("Max open files"))?
                    .to_owned();
                line.split_whitespace().nth(3)?.parse().ok()
            });
        ProcessStats {
            resident_bytes: status_kib("VmRSS").map(|kib| kib * 1024),
            virtual_bytes: status_kib("VmSize").map(|kib| kib * 1024),
            threads: status_kib("Threads"),
            open_fds,
            max_fds,
            cpu_seconds: cpu_seconds(),
        }
    }
}

/// User plus system CPU time from `/proc/self/stat`, in clock ticks there.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let after_name = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // Fields 14 and 15 of the whole line (utime, stime) are the 12th and 13th after the name.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    let ticks = rustix::param::clock_ticks_per_second();
    (ticks > 0).then(|| (utime + stime) as f64 / ticks as f64)
}

/// What a scrape gathered from the stores and the sign-in counts before encoding.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Upload sessions open; None when the database did not answer.
    pub uploads_in_progress: Option<u64>,
    pub pools: Vec<PoolStats>,
    pub sign_ins: berth_core::auth::SignInCounts,
    pub process: ProcessStats,
    /// Garbage collection's totals since the process started.
    pub gc: GcTotals,
    /// Each mirror's figures, by prefix.
    pub mirrors: Vec<(String, berth_core::mirror::MirrorTotals)>,
    /// Counted manifest pulls allowed and refused by the pull rate limits, by tier.
    pub pull_decisions: berth_core::ratelimit::PullDecisions,
}

/// Garbage collection's totals, read from the collector's counters at a scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct GcTotals {
    pub runs: u64,
    pub failures: u64,
    pub blobs: u64,
    pub bytes: u64,
    pub manifests: u64,
    pub duration_ms: u64,
    pub last_duration_ms: u64,
}

impl GcTotals {
    pub fn read(metrics: &berth_core::lifecycle::gc::GcMetrics) -> GcTotals {
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GcTotals {
            runs: load(&metrics.runs),
            failures: load(&metrics.failures),
            blobs: load(&metrics.blobs),
            bytes: load(&metrics.bytes),
            manifests: load(&metrics.manifests),
            duration_ms: load(&metrics.duration_ms),
            last_duration_ms: load(&metrics.last_duration_ms),
        }
    }
}

/// Everything `/metrics` shows, encoded at each scrape.
#[derive(Debug)]
pub struct Scrape {
    pub requests: std::sync::Arc<RequestMetrics>,
    pub snapshot: Snapshot,
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Vec<(&'static str, &'static str)>, u64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, value) in rows {
        ConstCounter::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A gauge without labels.
fn single_gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    let family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    ConstGauge::new(value).encode(family)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    rows: impl IntoIterator<Item = (Vec<(&'static str, &'static str)>, i64)>,
) -> Result<(), std::fmt::Error> {
    let mut family = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, value) in rows {
        ConstGauge::new(value).encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

impl Collector for Scrape {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let requests = &self.requests;
        let load = |a: &AtomicU64| a.load(Ordering::Relaxed);
        // Only label sets that occurred: most kind × method pairs never happen.
        let mut rows = Vec::new();
        for (k, kind) in RouteKind::ALL.iter().enumerate() {
            for (m, method) in METHODS.iter().enumerate() {
                for (c, class) in CLASSES.iter().enumerate() {
                    let n = load(&requests.requests[(k * METHODS.len() + m) * CLASSES.len() + c]);
                    if n > 0 {
                        rows.push((
                            vec![
                                ("kind", kind.as_str()),
                                ("method", *method),
                                ("status", *class),
                            ],
                            n,
                        ));
                    }
                }
            }
        }
        counter(
            &mut encoder,
            "berth_http_requests",
            "HTTP requests answered, by route kind, method and status class",
            rows,
        )?;

        let mut family = encoder.encode_descriptor(
            "berth_http_request_duration_seconds",
            "Time from a request's arrival until its response head is ready, by route kind",
            None,
            MetricType::Histogram,
        )?;
        for (k, kind) in RouteKind::ALL.iter().enumerate() {
            let latency = &requests.latency[k];
            let count = load(&latency.count);
            if count == 0 {
                continue;
            }
            // Per-bucket counts: the encoder adds them up, and reads f64::MAX as +Inf.
            let buckets: Vec<(f64, u64)> = BUCKETS
                .iter()
                .copied()
                .chain([f64::MAX])
                .zip(&latency.buckets)
                .map(|(bound, n)| (bound, load(n)))
                .collect();
            let sum = load(&latency.sum_nanos) as f64 / 1e9;
            let labels = [("kind", kind.as_str())];
            family
                .encode_family(&labels)?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }

        let per_kind = |values: &[AtomicU64; KINDS]| {
            RouteKind::ALL
                .iter()
                .enumerate()
                .map(|(k, kind)| (vec![("kind", kind.as_str())], load(&values[k])))
                .filter(|(_, n)| *n > 0)
                .collect::<Vec<_>>()
        };
        counter(
            &mut encoder,
            "berth_http_received_bytes",
            "Request body bytes received, by route kind",
            per_kind(&requests.received),
        )?;
        counter(
            &mut encoder,
            "berth_http_sent_bytes",
            "Response body bytes sent, by route kind",
            per_kind(&requests.sent),
        )?;
        single_gauge(
            &mut encoder,
            "berth_http_requests_in_flight",
            "Requests under way",
            requests.in_flight.load(Ordering::Relaxed),
        )?;

        let snapshot = &self.snapshot;
        if let Some(uploads) = snapshot.uploads_in_progress {
            single_gauge(
                &mut encoder,
                "berth_uploads_in_progress",
                "Upload sessions open: started, and not yet finished, cancelled or expired",
                i64::try_from(uploads).unwrap_or(i64::MAX),
            )?;
        }
        let gc = &snapshot.gc;
        counter(
            &mut encoder,
            "berth_gc_runs",
            "Garbage collection runs, by outcome",
            [
                (vec![("outcome", "done")], gc.runs),
                (vec![("outcome", "failed")], gc.failures),
            ],
        )?;
        {
            let family = encoder.encode_descriptor(
                "berth_gc_reclaimed_bytes",
                "Blob bytes garbage collection deleted",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(gc.bytes).encode(family)?;
        }
        counter(
            &mut encoder,
            "berth_gc_deleted",
            "Blobs and orphan manifests garbage collection deleted, by what",
            [
                (vec![("what", "blob")], gc.blobs),
                (vec![("what", "manifest")], gc.manifests),
            ],
        )?;
        {
            let family = encoder.encode_descriptor(
                "berth_gc_duration_seconds",
                "Time spent in garbage collection runs",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(gc.duration_ms as f64 / 1000.0).encode(family)?;
        }
        {
            let family = encoder.encode_descriptor(
                "berth_gc_last_duration_seconds",
                "How long the latest garbage collection run took",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(gc.last_duration_ms as f64 / 1000.0).encode(family)?;
        }
        encode_mirrors(&mut encoder, &snapshot.mirrors)?;
        let decisions = &snapshot.pull_decisions;
        let tiers = berth_core::ratelimit::Tier::ALL;
        counter(
            &mut encoder,
            "berth_pull_limit_allowed",
            "Manifest pulls the pull rate limits counted and let through, by tier",
            tiers.map(|tier| (vec![("tier", tier.as_str())], decisions.allowed(tier))),
        )?;
        counter(
            &mut encoder,
            "berth_pull_limit_refused",
            "Manifest pulls refused with 429 by the pull rate limits, by tier",
            tiers.map(|tier| (vec![("tier", tier.as_str())], decisions.refused(tier))),
        )?;
        let sign_ins = &snapshot.sign_ins;
        counter(
            &mut encoder,
            "berth_sign_ins",
            "Sign-ins that checked a password or an access token and succeeded, by which",
            [
                (vec![("method", "password")], sign_ins.with_password),
                (vec![("method", "token")], sign_ins.with_token),
            ],
        )?;
        counter(
            &mut encoder,
            "berth_sign_in_refusals",
            "Refused sign-ins, by reason",
            berth_core::auth::RefusalReason::ALL
                .iter()
                .map(|reason| (vec![("reason", reason.as_str())], sign_ins.refused(*reason))),
        )?;
        let pools = |value: fn(&PoolStats) -> u32| {
            snapshot
                .pools
                .iter()
                .map(move |pool| (vec![("pool", pool.name)], i64::from(value(pool))))
                .collect::<Vec<_>>()
        };
        gauge(
            &mut encoder,
            "berth_db_connections_in_use",
            "Database connections in use, by pool",
            pools(|p| p.open.saturating_sub(p.idle)),
        )?;
        gauge(
            &mut encoder,
            "berth_db_connections_idle",
            "Database connections open and idle, by pool",
            pools(|p| p.idle),
        )?;
        gauge(
            &mut encoder,
            "berth_db_connections_max",
            "The most database connections a pool opens",
            pools(|p| p.max),
        )?;

        let process = &snapshot.process;
        let process_gauges = [
            (
                "process_resident_memory_bytes",
                "Resident memory size in bytes",
                process.resident_bytes,
            ),
            (
                "process_virtual_memory_bytes",
                "Virtual memory size in bytes",
                process.virtual_bytes,
            ),
            (
                "process_open_fds",
                "Number of open file descriptors",
                process.open_fds,
            ),
            (
                "process_max_fds",
                "Maximum number of open file descriptors",
                process.max_fds,
            ),
            ("process_threads", "Number of OS threads", process.threads),
        ];
        for (name, help, value) in process_gauges {
            if let Some(value) = value {
                single_gauge(
                    &mut encoder,
                    name,
                    help,
                    i64::try_from(value).unwrap_or(i64::MAX),
                )?;
            }
        }
        if let Some(seconds) = process.cpu_seconds {
            let family = encoder.encode_descriptor(
                "process_cpu_seconds",
                "Total user and system CPU time spent in seconds",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(seconds).encode(family)?;
        }
        Ok(())
    }
}

/// The pull-through cache's figures, one series per mirror (labelled by its prefix).
fn encode_mirrors(
    encoder: &mut DescriptorEncoder<'_>,
    mirrors: &[(String, berth_core::mirror::MirrorTotals)],
) -> Result<(), std::fmt::Error> {
    use berth_core::mirror::MirrorTotals;
    if mirrors.is_empty() {
        return Ok(());
    }
    /// A metric's name, help and the figure it reads.
    type MirrorCounter = (&'static str, &'static str, fn(&MirrorTotals) -> u64);
    let counters: [MirrorCounter; 8] = [
        (
            "berth_mirror_hits",
            "Manifests and blobs served from a mirror's cache without fetching them",
            |t| t.hits,
        ),
        (
            "berth_mirror_misses",
            "Manifests and blobs fetched from the upstream for a client",
            |t| t.misses,
        ),
        (
            "berth_mirror_stale",
            "Cached answers served because the upstream failed or did not confirm them",
            |t| t.stale,
        ),
        (
            "berth_mirror_upstream_requests",
            "Requests sent to the upstream",
            |t| t.upstream_requests,
        ),
        (
            "berth_mirror_upstream_errors",
            "Upstream requests that failed: down, timed out, 429, 5xx, refused",
            |t| t.upstream_errors,
        ),
        (
            "berth_mirror_corrupt",
            "Upstream manifests and blobs refused: wrong digest, truncated, too large",
            |t| t.corrupt,
        ),
        (
            "berth_mirror_saved_bytes",
            "Blob bytes served from the cache, which the upstream did not have to send",
            |t| t.bytes_saved,
        ),
        (
            "berth_mirror_fetched_bytes",
            "Blob bytes fetched from the upstream",
            |t| t.bytes_fetched,
        ),
    ];
    for (name, help, value) in counters {
        let mut family = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
        for (prefix, totals) in mirrors {
            let labels = [("mirror", prefix.as_str())];
            ConstCounter::new(value(totals)).encode(family.encode_family(&labels)?)?;
        }
    }
    {
        let mut family = encoder.encode_descriptor(
            "berth_mirror_hit_ratio",
            "Share of manifests and blobs served from the cache, of all the mirror served since start",
            None,
            MetricType::Gauge,
        )?;
        for (prefix, totals) in mirrors {
            let labels = [("mirror", prefix.as_str())];
            let served = totals.hits + totals.misses;
            let ratio = match served {
                0 => 0.0,
                n => totals.hits as f64 / n as f64,
            };
            ConstGauge::new(ratio).encode(family.encode_family(&labels)?)?;
        }
    }
    let mut family = encoder.encode_descriptor(
        "berth_mirror_upstream_wait_seconds",
        "Time spent waiting for upstream answers (sum; divide by the requests for the mean)",
        None,
        MetricType::Counter,
    )?;
    for (prefix, totals) in mirrors {
        let labels = [("mirror", prefix.as_str())];
        ConstCounter::new(totals.upstream_micros as f64 / 1e6)
            .encode(family.encode_family(&labels)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_classified_from_their_end() {
        for (path, kind) in [
            ("/v2/", RouteKind::Base),
            ("/v2", RouteKind::Base),
            ("/v2/_catalog", RouteKind::Catalog),
            ("/v2/a/b/manifests/latest", RouteKind::Manifest),
            ("/v2/blobs/manifests/tags/list", RouteKind::Tags),
            ("/v2/a/blobs/sha256:abc", RouteKind::Blob),
            ("/v2/a/blobs/uploads/", RouteKind::Upload),
            ("/v2/a/blobs/uploads", RouteKind::Upload),
            ("/v2/a/blobs/uploads/0f3c", RouteKind::Upload),
            ("/v2/manifests/blobs/sha256:abc", RouteKind::Blob),
            ("/v2/a/referrers/sha256:abc", RouteKind::Referrers),
            ("/v2/a/nothing", RouteKind::Base),
            ("/v2x", RouteKind::Ui),
            ("/token", RouteKind::Token),
            ("/api/v1/search", RouteKind::Api),
            ("/v1/search", RouteKind::Search),
            ("/metrics", RouteKind::Ops),
            ("/healthz", RouteKind::Ops),
            ("/readyz", RouteKind::Ops),
            ("/metrics/x", RouteKind::Ui),
            ("/", RouteKind::Ui),
            ("/r/alice/app", RouteKind::Ui),
        ] {
            assert_eq!(RouteKind::of_path(path), kind, "{path}");
        }
        for (i, kind) in RouteKind::ALL.iter().enumerate() {
            assert_eq!(kind_index(*kind), i, "ALL is in declaration order");
        }
    }

    #[test]
    fn status_classes_and_buckets() {
        assert_eq!(CLASSES[class_index(200)], "2xx");
        assert_eq!(CLASSES[class_index(404)], "4xx");
        assert_eq!(CLASSES[class_index(503)], "5xx");
        assert_eq!(CLASSES[class_index(999)], "5xx");
        assert_eq!(CLASSES[class_index(0)], "1xx");
        let metrics = RequestMetrics::default();
        metrics.record(
            RouteKind::Manifest,
            &axum::http::Method::GET,
            200,
            Duration::from_micros(700),
        );
        metrics.record(
            RouteKind::Manifest,
            &axum::http::Method::GET,
            200,
            Duration::from_secs(120),
        );
        let latency = &metrics.latency[kind_index(RouteKind::Manifest)];
        assert_eq!(latency.buckets[1].load(Ordering::Relaxed), 1, "≤ 1 ms");
        assert_eq!(
            latency.buckets[BUCKETS.len()].load(Ordering::Relaxed),
            1,
            "+Inf"
        );
        assert_eq!(latency.count.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn process_figures_are_read_on_linux() {
        let stats = ProcessStats::read();
        if std::path::Path::new("/proc/self/status").exists() {
            assert!(stats.resident_bytes.unwrap() > 1024 * 1024, "{stats:?}");
            assert!(stats.open_fds.unwrap() >= 3, "{stats:?}");
            assert!(stats.threads.unwrap() >= 1, "{stats:?}");
            assert!(stats.cpu_seconds.is_some(), "{stats:?}");
        }
    }
}
