//! berth-bench: side-by-side benchmark of OCI registries on loopback.
//!
//! Every scenario runs against every target, interleaved: scenario by
//! scenario, round by round, with the starting target alternating each round
//! (A B, B A, A B, ...). The table shows the median over rounds and the ratio
//! of the first target over the second.

mod bearer;
mod data;
mod registry;
mod report;
mod scenarios;
mod stats;
mod target;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::data::{small_blobs, BigBlob, CHUNK};
use crate::report::{Better, Report};
use crate::scenarios::{big, catalog, manifest, manifest_push, mirror, search, small, soak};
use crate::target::{Cost, SignIn, Target, TargetSpec};

pub type Error = Box<dyn std::error::Error + Send + Sync>;
pub type Result<T> = std::result::Result<T, Error>;

const MIB: u64 = 1 << 20;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Scenario {
    /// 1 GiB blob, POST + one streamed PUT ?digest=
    Push,
    /// the same blob size in PATCH chunks, then PUT ?digest=
    PushChunked,
    /// GET of the large blob
    Pull,
    /// many small blobs pushed, then pulled, at fixed concurrency
    Small,
    /// manifest GET by tag at fixed concurrency
    Manifest,
    /// new manifests PUT by tag at fixed concurrency
    ManifestPush,
    /// `_catalog` over many repositories
    Catalog,
    /// `/v1/search` over many repositories (targets without it are skipped)
    Search,
    /// many clients pushing and pulling small images for minutes, with large blobs, then
    /// every acknowledged push checked (not in the default set; one target after another)
    Soak,
    /// an image with the large blob as its layer pulled through each target's pull-through
    /// cache of the `--mirror-upstream` target, cold then cached, against direct pulls from
    /// that upstream (not in the default set: the targets must mirror it under
    /// `--mirror-prefix`, as `SCENARIOS=mirror scripts/bench` sets up)
    Mirror,
}

#[derive(Debug, Parser)]
#[command(version, about = "Side-by-side OCI registry benchmark (loopback only)")]
struct Args {
    /// NAME=URL@PID (PID of the server, for CPU time and peak RSS; optional), or
    /// NAME=URL@PID+PID+... for a server of several processes (nodes, their load balancer,
    /// their database server): CPU is summed over them and their descendants, peak RSS over
    /// them. Repeat; ratios are first over second (and first over third).
    #[arg(long = "target", required = true)]
    targets: Vec<TargetSpec>,
    /// How a target with credentials in its URL is signed in: `bearer` asks its token
    /// service for a token per repository (as docker does), `basic` sends the URL's
    /// `user:password` as Basic credentials on every request (as curl scripts and
    /// htpasswd-era tools do).
    #[arg(long, value_enum, default_value = "bearer")]
    auth: SignIn,
    /// Measured rounds per scenario and target.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Comma-separated subset of scenarios to run.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "push,push-chunked,pull,small,manifest,manifest-push,catalog,search"
    )]
    scenarios: Vec<Scenario>,
    /// Smoke-test sizes: 64 MiB blob, 200 small blobs, 1,000 repositories,
    /// 3 s of manifest GETs, 5,000 searchable repositories (explicit size options still win).
    #[arg(long)]
    quick: bool,
    /// Large blob size in MiB [default: 1024, quick: 64].
    #[arg(long)]
    blob_mib: Option<u64>,
    /// Chunk size of the chunked push, in MiB.
    #[arg(long, default_value_t = 16)]
    chunk_mib: u64,
    /// Number of small blobs [default: 2000, quick: 200].
    #[arg(long)]
    small_count: Option<usize>,
    /// Smallest small blob in KiB.
    #[arg(long, default_value_t = 4)]
    small_min_kib: usize,
    /// Largest small blob in KiB.
    #[arg(long, default_value_t = 64)]
    small_max_kib: usize,
    /// Concurrency of small blob pushes and pulls.
    #[arg(long, default_value_t = 32)]
    small_concurrency: usize,
    /// Concurrency of manifest GETs.
    #[arg(long, default_value_t = 64)]
    manifest_concurrency: usize,
    /// Seconds of manifest GETs per round [default: 10, quick: 3].
    #[arg(long)]
    manifest_secs: Option<f64>,
    /// Manifests pushed per round of the manifest-push scenario [default: 1000, quick: 200].
    #[arg(long)]
    manifest_push_count: Option<usize>,
    /// Concurrency of manifest pushes.
    #[arg(long, default_value_t = 16)]
    manifest_push_concurrency: usize,
    /// Stop a manifest round after this many requests even before its time.
    #[arg(long, default_value_t = u64::MAX)]
    manifest_max: u64,
    /// Repositories for the catalog scenario [default: 10000, quick: 1000].
    #[arg(long)]
    catalog_repos: Option<usize>,
    /// `n` of GET /v2/_catalog?n= [default: catalog repos + 1000]; further
    /// pages (Link header) are followed and timed too.
    #[arg(long)]
    catalog_page: Option<usize>,
    /// Timed catalog listings per target.
    #[arg(long, default_value_t = 5)]
    catalog_reps: usize,
    /// Repositories for the search scenario [default: 100000, quick: 5000].
    #[arg(long)]
    search_repos: Option<usize>,
    /// Timed searches per round and target (exact, prefix, word and no-match in turn).
    #[arg(long, default_value_t = 200)]
    search_queries: usize,
    /// Concurrency of unmeasured setup (catalog and search repositories).
    #[arg(long, default_value_t = 32)]
    setup_concurrency: usize,
    /// Minutes of the soak scenario.
    #[arg(long, env = "SOAK_MINUTES", default_value_t = 30.0)]
    soak_minutes: f64,
    /// Concurrent clients of the soak scenario.
    #[arg(long, default_value_t = 100)]
    soak_clients: usize,
    /// Repositories the soak's images are spread over.
    #[arg(long, default_value_t = 20)]
    soak_repos: usize,
    /// Seconds between the soak's large-blob pushes.
    #[arg(long, default_value_t = 5.0)]
    soak_big_every: f64,
    /// Size of the soak's large blobs in MiB.
    #[arg(long, default_value_t = 64)]
    soak_big_mib: u64,
    /// The target the mirror scenario's images are pushed to and the others mirror.
    #[arg(long, default_value = "distribution")]
    mirror_upstream: String,
    /// The `[[mirror]]` prefix under which the other targets serve that upstream.
    #[arg(long, default_value = "up")]
    mirror_prefix: String,
    /// Seconds between samples of the server's resident memory during the soak.
    #[arg(long, default_value_t = 10.0)]
    soak_rss_every: f64,
    /// Do not run `sync` (flush dirty pages) before each large-blob run.
    #[arg(long)]
    no_sync: bool,
    /// Do not drop clean page-cache pages before each large push (needs root to take effect).
    #[arg(long)]
    no_drop_caches: bool,
    /// Hash pulled blobs and compare with the digest (costs client CPU).
    #[arg(long)]
    verify: bool,
    /// Seed of all generated data.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Seconds to wait for each target's GET /v2/ to answer 200.
    #[arg(long, default_value_t = 60)]
    ready_timeout: u64,
    /// Client runtime threads [default: one per core].
    #[arg(long)]
    client_threads: Option<usize>,
    /// Also write the markdown table here.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write all samples as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Sizes after applying `--quick` defaults.
#[derive(Debug)]
struct Sizes {
    blob: u64,
    chunk: u64,
    small_count: usize,
    manifest_time: Duration,
    manifest_push_count: usize,
    catalog_repos: usize,
    catalog_page: usize,
    search_repos: usize,
}

impl Sizes {
    fn from_args(a: &Args) -> Result<Self> {
        let pick = |explicit: Option<u64>, full: u64, quick: u64| {
            explicit.unwrap_or(if a.quick { quick } else { full })
        };
        let blob = pick(a.blob_mib, 1024, 64) * MIB;
        let chunk = a.chunk_mib * MIB;
        if blob == 0 || chunk == 0 {
            return Err("--blob-mib and --chunk-mib must be positive".into());
        }
        if a.small_min_kib == 0 || a.small_min_kib > a.small_max_kib {
            return Err("need 0 < --small-min-kib <= --small-max-kib".into());
        }
        let catalog_repos = pick(a.catalog_repos.map(|n| n as u64), 10_000, 1_000) as usize;
        let manifest_secs = a.manifest_secs.unwrap_or(if a.quick { 3.0 } else { 10.0 });
        Ok(Sizes {
            blob,
            chunk,
            small_count: pick(a.small_count.map(|n| n as u64), 2_000, 200) as usize,
            manifest_time: Duration::from_secs_f64(manifest_secs),
            manifest_push_count: pick(a.manifest_push_count.map(|n| n as u64), 1_000, 200) as usize,
            catalog_repos,
            catalog_page: a.catalog_page.unwrap_or(catalog_repos + 1_000),
            search_repos: pick(a.search_repos.map(|n| n as u64), 100_000, 5_000) as usize,
        })
    }
}

/// Target indices for round `round`: the starting target rotates.
fn order(round: usize, n: usize) -> impl Iterator<Item = usize> {
    (0..n).map(move |i| (i + round) % n)
}

/// `value` with `prec` decimals, or "n/a".
fn opt(value: Option<f64>, prec: usize) -> String {
    value.map_or_else(|| "n/a".into(), |v| format!("{v:.prec$}"))
}

/// Server, client and other processes' CPU during a run as a share of one
/// core, for the log.
fn cpu_note(cost: &Cost) -> String {
    let pct = |c: Option<f64>| opt(c.map(|c| c / cost.wall.as_secs_f64() * 100.0), 0);
    format!(
        "CPU % of a core: server {}, client {}, others {}",
        pct(cost.cpu),
        pct(cost.client_cpu),
        pct(cost.other_cpu)
    )
}

/// The pull scenario's name, saying whether the targets redirect to their store (whose
/// throughput is then the store's and the client's) or stream the blob themselves.
fn pull_name(mib: u64, sources: &[(String, bool)]) -> String {
    let how = if sources.iter().all(|(_, redirect)| *redirect) {
        " (redirected to the store)".to_owned()
    } else if sources.iter().all(|(_, redirect)| !*redirect) {
        String::new()
    } else {
        let redirecting: Vec<&str> = sources
            .iter()
            .filter(|(_, redirect)| *redirect)
            .map(|(name, _)| name.as_str())
            .collect();
        format!(
            " (redirected to the store by {} only)",
            redirecting.join(", ")
        )
    };
    format!("pull {mib} MiB{how}")
}

/// Metrics of the large-blob scenarios.
const BIG_METRICS: [(&str, Better); 2] =
    [("MB/s", Better::Higher), ("server CPU s/GB", Better::Lower)];

fn mb_per_s(bytes: u64, cost: &Cost) -> f64 {
    bytes as f64 / 1e6 / cost.wall.as_secs_f64()
}

struct Bench {
    args: Args,
    sizes: Sizes,
    targets: Vec<Arc<Target>>,
    report: Report,
    /// The soak scenario's results, printed after the table.
    soak_markdown: String,
    /// Whether the servers' common peak is taken and Berth-only scenarios have begun.
    berth_only_started: bool,
}

impl Bench {
    fn log(&self, scenario: &str, round: usize, t: usize, what: String) {
        eprintln!(
            "[{scenario}] round {}/{} {}: {what}",
            round + 1,
            self.args.rounds,
            self.targets[t].name
        );
    }

    fn big_blob_metrics(&mut self, scenario: &str, t: usize, res: Result<Cost>, round: usize) {
        const METRICS: [(&str, Better); 2] = BIG_METRICS;
        match res {
            Ok(cost) => {
                let size = self.sizes.blob;
                let (rate, cpu) = (mb_per_s(size, &cost), cost.cpu_per_gb(size));
                self.log(
                    scenario,
                    round,
                    t,
                    format!(
                        "{rate:.0} MB/s, CPU {} s/GB ({})",
                        opt(cpu, 2),
                        cpu_note(&cost)
                    ),
                );
                self.report.observe(&cost);
                self.report
                    .add(scenario, METRICS[0].0, METRICS[0].1, t, Some(rate));
                self.report
                    .add(scenario, METRICS[1].0, METRICS[1].1, t, cpu);
            }
            Err(e) => self.report.fail(scenario, &METRICS, t, e.to_string()),
        }
    }

    /// Digests of the large blobs, computed in parallel before any timing.
    async fn big_blobs(&self, seeds: &[u64]) -> Result<Vec<BigBlob>> {
        let size = self.sizes.blob;
        eprintln!(
            "computing digests of {} blob(s) of {} MiB ...",
            seeds.len(),
            size / MIB
        );
        let start = std::time::Instant::now();
        let tasks: Vec<_> = seeds
            .iter()
            .map(|&s| tokio::task::spawn_blocking(move || BigBlob::new(s, size)))
            .collect();
        let mut out = Vec::new();
        for t in tasks {
            out.push(t.await?);
        }
        eprintln!("... done in {:.1} s", start.elapsed().as_secs_f64());
        Ok(out)
    }

    /// Flush the page cache's dirty pages so that one target's write-back
    /// does not land in the next target's measurement.
    fn settle(&self) {
        if !self.args.no_sync {
            if let Err(e) = std::process::Command::new("sync").status() {
                eprintln!("warning: sync: {e}");
            }
        }
    }

    /// Before a large push: also drop clean cached pages, so every target writes into the
    /// same empty cache instead of paying page reclaim for the gigabytes earlier rounds left.
    fn settle_for_push(&self) {
        self.settle();
        if !self.args.no_drop_caches {
            // Silently skipped without root: the run is then noisier, not wrong.
            let _ = std::fs::write("/proc/sys/vm/drop_caches", "1");
        }
    }

    fn seed(&self, group: u64, round: usize) -> u64 {
        self.args
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(group * 1000 + round as u64)
    }

    async fn push(&mut self, chunked: bool) -> Result<()> {
        let (mib, chunk_mib) = (self.sizes.blob / MIB, self.sizes.chunk / MIB);
        let (name, group) = if chunked {
            (format!("push {mib} MiB in {chunk_mib} MiB chunks"), 2)
        } else {
            (format!("push {mib} MiB monolithic"), 1)
        };
        // A fresh blob every round so no registry can skip work for a blob it has.
        let seeds: Vec<u64> = (0..self.args.rounds).map(|r| self.seed(group, r)).collect();
        let blobs = self.big_blobs(&seeds).await?;
        for (round, blob) in blobs.iter().enumerate() {
            for t in order(round, self.targets.len()) {
                self.settle_for_push();
                let target = &self.targets[t];
                let res = if chunked {
                    big::push_chunked(target, blob, self.sizes.chunk).await
                } else {
                    big::push_monolithic(target, blob).await
                };
                self.big_blob_metrics(&name, t, res, round);
            }
        }
        Ok(())
    }

    async fn pull(&mut self) -> Result<()> {
        // The first monolithic-push blob; pushed here (unmeasured) if missing, then pulled
        // once by every target before the measured rounds (see `big::warm_up`).
        let blob = self.big_blobs(&[self.seed(1, 0)]).await?.remove(0);
        let mut ready = vec![true; self.targets.len()];
        let mut setup_errors = Vec::new();
        let mut sources = Vec::new();
        for (t, target) in self.targets.iter().enumerate() {
            let warmed = match big::ensure(target, &blob).await {
                Ok(()) => big::warm_up(target, &blob).await,
                Err(e) => Err(e),
            };
            match warmed {
                Ok(redirect) => {
                    eprintln!(
                        "[pull] {}: {}",
                        target.name,
                        redirect.as_deref().map_or_else(
                            || "streams the blob itself".to_owned(),
                            |to| format!("redirects to {to}")
                        )
                    );
                    sources.push((target.name.clone(), redirect.is_some()));
                }
                Err(e) => {
                    ready[t] = false;
                    setup_errors.push((t, format!("setup: {e}")));
                }
            }
        }
        let name = pull_name(self.sizes.blob / MIB, &sources);
        for (t, e) in setup_errors {
            self.report.fail(&name, &BIG_METRICS, t, e);
        }
        for round in 0..self.args.rounds {
            for t in order(round, self.targets.len()).filter(|&t| ready[t]) {
                self.settle();
                let res = big::pull(&self.targets[t], &blob, self.args.verify).await;
                self.big_blob_metrics(&name, t, res, round);
            }
        }
        Ok(())
    }

    /// Each round: a fresh image pushed to the upstream (unmeasured), then pulled by every
    /// target, cold and then again: the others through their mirror, the upstream directly.
    async fn mirror(&mut self) -> Result<()> {
        let mib = self.sizes.blob / MIB;
        let upstream = self
            .targets
            .iter()
            .position(|t| t.name == self.args.mirror_upstream)
            .ok_or_else(|| {
                format!(
                    "--mirror-upstream {}: no target of that name",
                    self.args.mirror_upstream
                )
            })?;
        let via = &self.targets[upstream].name;
        let cold = format!("mirror: cold pull of a {mib} MiB image ({via}: direct)");
        let cached = format!("mirror: cached pull of a {mib} MiB image ({via}: direct)");
        let seeds: Vec<u64> = (0..self.args.rounds).map(|r| self.seed(9, r)).collect();
        let layers = self.big_blobs(&seeds).await?;
        for (round, layer) in layers.into_iter().enumerate() {
            let image = mirror::MirrorImage::new(round, layer);
            self.settle_for_push();
            if let Err(e) = image.seed(&self.targets[upstream]).await {
                for name in [&cold, &cached] {
                    for t in 0..self.targets.len() {
                        let why = format!("seeding the upstream: {e}");
                        self.report.fail(name, &BIG_METRICS, t, why);
                    }
                }
                continue;
            }
            for name in [&cold, &cached] {
                for t in order(round, self.targets.len()) {
                    self.settle();
                    let prefix = (t != upstream).then_some(self.args.mirror_prefix.as_str());
                    let target = &self.targets[t];
                    let res = image
                        .pull(target, &image.name_at(prefix), self.args.verify)
                        .await;
                    self.big_blob_metrics(name, t, res, round);
                }
            }
        }
        Ok(())
    }

    async fn small(&mut self) -> Result<()> {
        let (n, conc) = (self.sizes.small_count, self.args.small_concurrency);
        let (lo, hi) = (
            self.args.small_min_kib * 1024,
            self.args.small_max_kib * 1024,
        );
        let push_name = format!("push {n} small blobs (c={conc})");
        let pull_name = format!("pull {n} small blobs (c={conc})");
        const METRICS: [(&str, Better); 2] = [
            ("blobs/s", Better::Higher),
            ("server CPU ms/blob", Better::Lower),
        ];
        // pushed[round][target]: pulls only read blobs that were pushed.
        let mut pushed = Vec::new();
        let mut sets = Vec::new();
        for round in 0..self.args.rounds {
            let mut ok = vec![false; self.targets.len()];
            let seed = self.seed(3, round);
            let set =
                Arc::new(tokio::task::spawn_blocking(move || small_blobs(seed, n, lo, hi)).await?);
            for t in order(round, self.targets.len()) {
                match small::push(&self.targets[t], &set, conc).await {
                    Ok(cost) => {
                        ok[t] = true;
                        self.small_metrics(&push_name, round, t, &cost, n);
                    }
                    Err(e) => self.report.fail(&push_name, &METRICS, t, e.to_string()),
                }
            }
            sets.push(set);
            pushed.push(ok);
        }
        for (round, set) in sets.iter().enumerate() {
            for t in order(round, self.targets.len()) {
                if !pushed[round][t] {
                    self.report
                        .fail(&pull_name, &METRICS, t, "skipped: push failed".into());
                    continue;
                }
                match small::pull(&self.targets[t], set, conc, self.args.verify).await {
                    Ok(cost) => self.small_metrics(&pull_name, round, t, &cost, n),
                    Err(e) => self.report.fail(&pull_name, &METRICS, t, e.to_string()),
                }
            }
        }
        Ok(())
    }

    fn small_metrics(&mut self, name: &str, round: usize, t: usize, cost: &Cost, n: usize) {
        let rate = n as f64 / cost.wall.as_secs_f64();
        let cpu = cost.cpu.map(|c| c * 1000.0 / n as f64);
        self.log(
            name,
            round,
            t,
            format!(
                "{rate:.0} blobs/s, CPU {} ms/blob ({})",
                opt(cpu, 3),
                cpu_note(cost)
            ),
        );
        self.report.observe(cost);
        self.report
            .add(name, "blobs/s", Better::Higher, t, Some(rate));
        self.report
            .add(name, "server CPU ms/blob", Better::Lower, t, cpu);
    }

    async fn manifest(&mut self) -> Result<()> {
        let conc = self.args.manifest_concurrency;
        let name = format!("manifest GET by tag (c={conc})");
        const METRICS: [(&str, Better); 3] = [
            ("req/s", Better::Higher),
            ("p99 ms", Better::Lower),
            ("server CPU µs/req", Better::Lower),
        ];
        let mut ready = vec![true; self.targets.len()];
        for (t, target) in self.targets.iter().enumerate() {
            if let Err(e) = manifest::setup(target).await {
                ready[t] = false;
                self.report.fail(&name, &METRICS, t, format!("setup: {e}"));
            }
        }
        for round in 0..self.args.rounds {
            for t in order(round, self.targets.len()).filter(|&t| ready[t]) {
                let res = manifest::run(
                    &self.targets[t],
                    conc,
                    self.sizes.manifest_time,
                    self.args.manifest_max,
                )
                .await;
                match res {
                    Ok(o) => {
                        let rate = o.requests as f64 / o.cost.wall.as_secs_f64();
                        let p99 = o.p99.as_secs_f64() * 1000.0;
                        let cpu = o.cost.cpu.map(|c| c * 1e6 / o.requests.max(1) as f64);
                        self.log(
                            &name,
                            round,
                            t,
                            format!(
                                "{rate:.0} req/s, p99 {p99:.1} ms, CPU {} µs/req, client {} µs/req ({})",
                                opt(cpu, 0),
                                opt(o.cost.client_cpu.map(|c| c * 1e6 / o.requests.max(1) as f64), 0),
                                cpu_note(&o.cost)
                            ),
                        );
                        self.report.observe(&o.cost);
                        self.report
                            .add(&name, METRICS[0].0, METRICS[0].1, t, Some(rate));
                        self.report
                            .add(&name, METRICS[1].0, METRICS[1].1, t, Some(p99));
                        self.report.add(&name, METRICS[2].0, METRICS[2].1, t, cpu);
                    }
                    Err(e) => self.report.fail(&name, &METRICS, t, e.to_string()),
                }
            }
        }
        Ok(())
    }

    async fn manifest_push(&mut self) -> Result<()> {
        let (n, conc) = (
            self.sizes.manifest_push_count,
            self.args.manifest_push_concurrency,
        );
        let name = format!("push {n} manifests (c={conc})");
        const METRICS: [(&str, Better); 3] = [
            ("manifests/s", Better::Higher),
            ("p99 ms", Better::Lower),
            ("server CPU µs/manifest", Better::Lower),
        ];
        let mut blobs = Vec::new();
        for (t, target) in self.targets.iter().enumerate() {
            match manifest_push::setup(target, manifest_push::REPO).await {
                Ok(b) => blobs.push(Some(b)),
                Err(e) => {
                    blobs.push(None);
                    self.report.fail(&name, &METRICS, t, format!("setup: {e}"));
                }
            }
        }
        for round in 0..self.args.rounds {
            for t in order(round, self.targets.len()) {
                let Some(set) = blobs[t].clone() else {
                    continue;
                };
                match manifest_push::run(
                    &self.targets[t],
                    &set,
                    manifest_push::REPO,
                    round,
                    n,
                    conc,
                )
                .await
                {
                    Ok(o) => {
                        let rate = o.manifests as f64 / o.cost.wall.as_secs_f64();
                        let p99 = o.p99.as_secs_f64() * 1000.0;
                        let cpu = o.cost.cpu.map(|c| c * 1e6 / o.manifests.max(1) as f64);
                        self.log(
                            &name,
                            round,
                            t,
                            format!(
                                "{rate:.0} manifests/s, p99 {p99:.1} ms, CPU {} µs/manifest ({})",
                                opt(cpu, 0),
                                cpu_note(&o.cost)
                            ),
                        );
                        self.report.observe(&o.cost);
                        self.report
                            .add(&name, METRICS[0].0, METRICS[0].1, t, Some(rate));
                        self.report
                            .add(&name, METRICS[1].0, METRICS[1].1, t, Some(p99));
                        self.report.add(&name, METRICS[2].0, METRICS[2].1, t, cpu);
                    }
                    Err(e) => self.report.fail(&name, &METRICS, t, e.to_string()),
                }
            }
        }
        Ok(())
    }

    /// The same pushes to a repository two webhooks listen on (Berth only: Distribution has
    /// no webhooks), and how long after the last `201` the receiver has every delivery.
    async fn manifest_push_with_webhooks(&mut self) -> Result<()> {
        let (n, conc) = (
            self.sizes.manifest_push_count,
            self.args.manifest_push_concurrency,
        );
        let name = format!("push {n} manifests (c={conc}), two webhooks (Berth only)");
        const METRICS: [(&str, Better); 4] = [
            ("manifests/s", Better::Higher),
            ("p99 ms", Better::Lower),
            ("deliveries done after last 201, ms", Better::Lower),
            // Pushes and their deliveries, which go on after the last 201: on a busy
            // machine the server's CPU per push compares with the run without webhooks
            // better than throughput does.
            ("server CPU µs/manifest, deliveries included", Better::Lower),
        ];
        let target = self.targets[0].clone();
        let (url, received) = manifest_push::start_receiver().await?;
        let set = match manifest_push::setup(&target, manifest_push::HOOKED_REPO).await {
            Ok(set) => set,
            Err(e) => {
                self.report.fail(&name, &METRICS, 0, format!("setup: {e}"));
                return Ok(());
            }
        };
        if let Err(e) =
            manifest_push::create_webhooks(&target, manifest_push::HOOKED_REPO, &url, 2).await
        {
            self.report.fail(&name, &METRICS, 0, e.to_string());
            return Ok(());
        }
        let mut expected = 0;
        for round in 0..self.args.rounds {
            let cpu_before = target.cpu();
            match manifest_push::run(&target, &set, manifest_push::HOOKED_REPO, round, n, conc)
                .await
            {
                Ok(o) => {
                    expected += 2 * o.manifests;
                    let drain = manifest_push::drained(
                        &received,
                        expected,
                        std::time::Duration::from_secs(120),
                    )
                    .await;
                    let rate = o.manifests as f64 / o.cost.wall.as_secs_f64();
                    let p99 = o.p99.as_secs_f64() * 1000.0;
                    let drain_ms = drain.map(|d| d.as_secs_f64() * 1000.0);
                    let cpu = (|| Some((target.cpu()? - cpu_before?) * 1e6))()
                        .map(|c| c / o.manifests.max(1) as f64);
                    self.log(
                        &name,
                        round,
                        0,
                        format!(
                            "{rate:.0} manifests/s, p99 {p99:.1} ms, deliveries done {} ms after the last 201, \
                             CPU {} µs/manifest with its deliveries",
                            opt(drain_ms, 0),
                            opt(cpu, 0)
                        ),
                    );
                    self.report
                        .add(&name, METRICS[0].0, METRICS[0].1, 0, Some(rate));
                    self.report
                        .add(&name, METRICS[1].0, METRICS[1].1, 0, Some(p99));
                    self.report
                        .add(&name, METRICS[2].0, METRICS[2].1, 0, drain_ms);
                    self.report.add(&name, METRICS[3].0, METRICS[3].1, 0, cpu);
                }
                Err(e) => self.report.fail(&name, &METRICS, 0, e.to_string()),
            }
        }
        Ok(())
    }

    async fn catalog(&mut self) -> Result<()> {
        let (repos, page, reps) = (
            self.sizes.catalog_repos,
            self.sizes.catalog_page,
            self.args.catalog_reps,
        );
        let name = format!("_catalog, {repos} repos (n={page})");
        const METRICS: [(&str, Better); 2] = [
            ("seconds", Better::Lower),
            ("repos listed", Better::Neither),
        ];
        let mut ready = vec![true; self.targets.len()];
        for (t, target) in self.targets.iter().enumerate() {
            eprintln!(
                "[{name}] creating {repos} repositories on {} ...",
                target.name
            );
            let start = std::time::Instant::now();
            if let Err(e) = catalog::setup(target, repos, self.args.setup_concurrency).await {
                ready[t] = false;
                self.report.fail(&name, &METRICS, t, format!("setup: {e}"));
            } else {
                eprintln!(
                    "[{name}] ... done in {:.1} s",
                    start.elapsed().as_secs_f64()
                );
            }
        }
        for rep in 0..reps {
            for t in order(rep, self.targets.len()).filter(|&t| ready[t]) {
                match catalog::list(&self.targets[t], page).await {
                    Ok((took, listed)) => {
                        eprintln!(
                            "[{name}] rep {}/{reps} {}: {:.3} s, {listed} repos",
                            rep + 1,
                            self.targets[t].name,
                            took.as_secs_f64()
                        );
                        if listed < repos {
                            eprintln!("WARNING: {} listed {listed} repositories, expected at least {repos}", self.targets[t].name);
                        }
                        self.report.add(
                            &name,
                            METRICS[0].0,
                            METRICS[0].1,
                            t,
                            Some(took.as_secs_f64()),
                        );
                        self.report
                            .add(&name, METRICS[1].0, METRICS[1].1, t, Some(listed as f64));
                    }
                    Err(e) => self.report.fail(&name, &METRICS, t, e.to_string()),
                }
            }
        }
        Ok(())
    }
}

impl Bench {
    /// Search latency, one query at a time, signed in as the target's user and anonymously
    /// (who sees only public repositories).
    async fn search(&mut self) -> Result<()> {
        let (repos, count) = (self.sizes.search_repos, self.args.search_queries);
        const METRICS: [(&str, Better); 2] =
            [("median ms", Better::Lower), ("p99 ms", Better::Lower)];
        let scenarios = [
            format!("/v1/search, {repos} repos, signed in"),
            format!("/v1/search, {repos} repos, anonymous"),
        ];
        let anonymous = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .http1_only()
            .build()?;
        let mut ready = vec![false; self.targets.len()];
        for (t, target) in self.targets.iter().enumerate() {
            if !search::supported(target).await? {
                eprintln!("[search] {} has no /v1/search: skipped", target.name);
                continue;
            }
            eprintln!(
                "[search] creating {repos} repositories on {} ...",
                target.name
            );
            let start = std::time::Instant::now();
            match search::setup(target, repos, self.args.setup_concurrency).await {
                Ok(()) => {
                    ready[t] = true;
                    eprintln!(
                        "[search] ... done in {:.1} s",
                        start.elapsed().as_secs_f64()
                    );
                }
                Err(e) => {
                    for name in &scenarios {
                        self.report.fail(name, &METRICS, t, format!("setup: {e}"));
                    }
                }
            }
        }
        for round in 0..self.args.rounds {
            let queries = search::queries(repos, count, self.seed(7, round));
            for t in order(round, self.targets.len()).filter(|&t| ready[t]) {
                for (name, client) in scenarios.iter().zip([None, Some(&anonymous)]) {
                    match search::run(&self.targets[t], client, &queries).await {
                        Ok(latencies) => {
                            let all: Vec<Duration> = latencies.iter().map(|(_, d)| *d).collect();
                            let (median, p99) = search::summary(&all);
                            let by_kind: Vec<String> = search::KINDS
                                .iter()
                                .enumerate()
                                .map(|(k, kind)| {
                                    let of_kind: Vec<Duration> = latencies
                                        .iter()
                                        .filter(|(q, _)| *q == k)
                                        .map(|(_, d)| *d)
                                        .collect();
                                    format!("{kind} {:.1}", search::summary(&of_kind).0)
                                })
                                .collect();
                            self.log(
                                name,
                                round,
                                t,
                                format!(
                                    "median {median:.2} ms, p99 {p99:.2} ms (medians by kind, ms: {})",
                                    by_kind.join(", ")
                                ),
                            );
                            self.report
                                .add(name, METRICS[0].0, METRICS[0].1, t, Some(median));
                            self.report
                                .add(name, METRICS[1].0, METRICS[1].1, t, Some(p99));
                        }
                        Err(e) => self.report.fail(name, &METRICS, t, e.to_string()),
                    }
                }
            }
        }
        Ok(())
    }
}

impl Bench {
    /// The soak, on each target in turn (not interleaved: each takes minutes).
    async fn soak(&mut self) -> Result<()> {
        let a = &self.args;
        if a.soak_clients == 0 || a.soak_repos == 0 || a.soak_minutes <= 0.0 {
            return Err("the soak needs clients, repositories and minutes above 0".into());
        }
        let options = soak::Options {
            duration: Duration::from_secs_f64(a.soak_minutes * 60.0),
            clients: a.soak_clients,
            repos: a.soak_repos,
            big_every: Duration::from_secs_f64(a.soak_big_every.max(0.1)),
            big_size: a.soak_big_mib.max(1) * MIB,
            rss_every: Duration::from_secs_f64(a.soak_rss_every.max(0.1)),
            verify_concurrency: a.setup_concurrency,
            seed: a.seed,
        };
        for t in 0..self.targets.len() {
            let outcome = soak::run(&self.targets[t], &options).await?;
            let md = soak::markdown(&outcome);
            eprint!("{md}");
            self.soak_markdown.push_str(&md);
            if let Some(path) = &self.args.json {
                let path = path.with_extension(format!("soak-{}.json", outcome.target));
                std::fs::write(&path, serde_json::to_vec_pretty(&outcome)?)
                    .map_err(|e| format!("writing {}: {e}", path.display()))?;
            }
        }
        Ok(())
    }

    /// Once: records the servers' common peak, then runs what only Berth serves and is
    /// selected (manifest pushes with webhooks; search runs in its own turn).
    async fn berth_only_starts(&mut self) {
        if std::mem::replace(&mut self.berth_only_started, true) {
            return;
        }
        self.record_peak_rss("peak RSS MiB", usize::MAX);
        if self.args.scenarios.contains(&Scenario::ManifestPush) {
            if let Err(e) = self.manifest_push_with_webhooks().await {
                let msg = format!("ManifestPush (webhooks): {e}");
                eprintln!("ERROR: {msg}");
                self.report.errors.push(msg);
            }
        }
    }

    /// The peak resident memory so far (VmHWM) of the first `servers` servers.
    fn record_peak_rss(&mut self, metric: &'static str, servers: usize) {
        for t in 0..servers.min(self.targets.len()) {
            let rss = self.targets[t].peak_rss_mib();
            self.report.add("server", metric, Better::Lower, t, rss);
        }
    }
}

async fn run(args: Args) -> Result<()> {
    let sizes = Sizes::from_args(&args)?;
    if sizes.chunk % CHUNK as u64 != 0 {
        return Err("--chunk-mib must be whole MiB".into());
    }
    let pool = args
        .manifest_concurrency
        .max(args.small_concurrency)
        .max(args.setup_concurrency)
        .max(args.soak_clients)
        * 2;
    let targets = args
        .targets
        .iter()
        .map(|s| Target::new(s.clone(), pool, args.auth).map(Arc::new))
        .collect::<Result<Vec<_>>>()?;
    for t in &targets {
        t.wait_ready(Duration::from_secs(args.ready_timeout))
            .await?;
        if t.procs.is_empty() {
            eprintln!("note: no PID for {}; CPU and RSS are not measured", t.name);
        }
    }
    let mut report = Report::new(targets.iter().map(|t| t.name.clone()).collect());
    report.preamble = format!(
        "Rounds: {}, medians shown; ratio = {} / {}. Large blob {} MiB, {} small blobs of {}–{} KiB. Signed in with {}.\n\n",
        args.rounds,
        targets[0].name,
        targets.get(1).map_or("-", |t| t.name.as_str()),
        sizes.blob / MIB,
        sizes.small_count,
        args.small_min_kib,
        args.small_max_kib,
        match args.auth {
            SignIn::Bearer => "bearer tokens",
            SignIn::Basic => "Basic credentials on every request",
        },
    );
    let mut bench = Bench {
        args,
        sizes,
        targets,
        report,
        soak_markdown: String::new(),
        berth_only_started: false,
    };

    let selected = bench.args.scenarios.clone();
    let all = [
        Scenario::Push,
        Scenario::PushChunked,
        Scenario::Pull,
        Scenario::Small,
        Scenario::Manifest,
        Scenario::ManifestPush,
        Scenario::Catalog,
        // Both servers serve the mirror scenario: it comes before the Berth-only ones.
        Scenario::Mirror,
        Scenario::Search,
        Scenario::Soak,
    ];
    // The servers' peaks are compared over the scenarios both serve; what runs on Berth
    // alone (manifest pushes with webhooks, search) comes after, with its own peak line.
    for s in all.into_iter().filter(|s| selected.contains(s)) {
        if s == Scenario::Search {
            bench.berth_only_starts().await;
        }
        let res = match s {
            Scenario::Push => bench.push(false).await,
            Scenario::PushChunked => bench.push(true).await,
            Scenario::Pull => bench.pull().await,
            Scenario::Small => bench.small().await,
            Scenario::Manifest => bench.manifest().await,
            Scenario::ManifestPush => bench.manifest_push().await,
            Scenario::Catalog => bench.catalog().await,
            Scenario::Search => bench.search().await,
            Scenario::Soak => bench.soak().await,
            Scenario::Mirror => bench.mirror().await,
        };
        if let Err(e) = res {
            let msg = format!("{s:?}: {e}");
            eprintln!("ERROR: {msg}");
            bench.report.errors.push(msg);
        }
    }
    bench.berth_only_starts().await;
    if [Scenario::ManifestPush, Scenario::Search]
        .iter()
        .any(|s| selected.contains(s))
    {
        bench.record_peak_rss("peak RSS MiB after the Berth-only scenarios", 1);
    }

    let mut md = bench.report.markdown();
    md.push_str(&bench.soak_markdown);
    print!("{md}");
    if let Some(path) = &bench.args.out {
        std::fs::write(path, &md).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    if let Some(path) = &bench.args.json {
        let json = serde_json::to_vec_pretty(&bench.report)?;
        std::fs::write(path, json).map_err(|e| format!("writing {}: {e}", path.display()))?;
    }
    Ok(())
}

fn main() {
    let args = Args::parse();
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args.client_threads {
        builder.worker_threads(n.max(1));
    }
    let rt = builder.enable_all().build().expect("tokio runtime");
    if let Err(e) = rt.block_on(run(args)) {
        eprintln!("berth-bench: {e}");
        std::process::exit(1);
    }
}

#[cfg(test)]
mod tests {
    use super::pull_name;

    #[test]
    fn the_pull_row_says_who_redirected() {
        let sources = |list: &[(&str, bool)]| -> Vec<(String, bool)> {
            list.iter().map(|(n, r)| (n.to_string(), *r)).collect()
        };
        assert_eq!(
            pull_name(64, &sources(&[("berth", true), ("distribution", true)])),
            "pull 64 MiB (redirected to the store)"
        );
        assert_eq!(
            pull_name(64, &sources(&[("berth", false), ("distribution", false)])),
            "pull 64 MiB"
        );
        assert_eq!(
            pull_name(64, &sources(&[("berth", true), ("distribution", false)])),
            "pull 64 MiB (redirected to the store by berth only)"
        );
    }
}
