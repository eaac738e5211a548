//! The composition: every service built from the stores and settings, and the jobs runner
//! with its handlers. `berth serve` and the test kit both wire through [`wire`], so tests
//! run the server that ships.

use crate::AppState;
use berth_core::access::{Authorizer, PolicyAuthorizer};
use berth_core::auth::{AuthSettings, Authenticator};
use berth_core::builds::{BuildSettings, Builds, PollSources, RunBuild, BUILD_JOB, POLL_JOB};
use berth_core::clock::Clock;
use berth_core::hub::Hub;
use berth_core::identity::Identity;
use berth_core::jobs::maintenance::{
    BackfillPlatforms, ExpireUploads, PruneAudit, PruneHistory, BACKFILL_PLATFORMS_JOB,
    EXPIRE_UPLOADS_JOB, PRUNE_AUDIT_JOB, PRUNE_HISTORY_JOB,
};
use berth_core::jobs::{Runner, RunnerOptions, Wake};
use berth_core::lifecycle::gc::CollectGarbage;
use berth_core::lifecycle::{Collector, GcOptions, UsageService, GC_JOB};
use berth_core::lifecycle::{
    Lifecycle, RetentionRunJob, RetentionScheduler, RETENTION_RUN_JOB, RETENTION_SCHEDULE_JOB,
};
use berth_core::mirror::{Mirror, MirrorAuthorizer, Mirrors};
use berth_core::ports::{BlobStore, ClusterLocks, IdentityStore, MetaStore};
use berth_core::ratelimit::PullLimits;
use berth_core::registry::RegistryOptions;
use berth_core::replication::{
    Connector, ReplicationFeed, ReplicationRunJob, ReplicationScheduler, Replications,
    REPLICATION_RUN_JOB, REPLICATION_SCHEDULE_JOB,
};
use berth_core::scan::{RescanAll, ScanFeed, ScanImage, Scanner, RESCAN_JOB, SCAN_JOB};
use berth_core::signatures::{
    SignatureFeed, Signatures, VerifySignatures, REVERIFY_JOB, VERIFY_JOB,
};
use berth_core::webhooks::{
    DeliverWebhook, EventHandOn, SealKey, WebhookSettings, WebhookTransport, Webhooks, DELIVER_JOB,
};
use berth_core::{Registry, Result};
use std::sync::Arc;

/// What the server is made of.
pub struct Parts {
    pub blobs: Arc<dyn BlobStore>,
    pub meta: Arc<dyn MetaStore>,
    pub clock: Arc<dyn Clock>,
    /// How webhook deliveries leave the server.
    pub transport: Arc<dyn WebhookTransport>,
    /// What webhook secrets are sealed with.
    pub seal: SealKey,
    /// None: the real permission rules ([`PolicyAuthorizer`]); protocol tests pass open access.
    pub authorizer: Option<Arc<dyn Authorizer>>,
    /// The `[[mirror]]` entries with the clients that reach their upstreams.
    pub mirrors: Vec<Mirror>,
    /// How replication reaches the registries it copies to (and a multi-platform build
    /// this server's own registry, to push the index it assembles).
    pub replication: Arc<dyn Connector>,
    /// What keeps a collection or a build to one node: PostgreSQL's advisory locks when
    /// several nodes share the database, [`berth_core::ports::ProcessLocks`] otherwise.
    pub locks: Arc<dyn ClusterLocks>,
    pub settings: Settings,
}

/// The settings the services take.
#[derive(Debug, Clone)]
pub struct Settings {
    pub registry: RegistryOptions,
    pub auth: AuthSettings,
    pub allow_signup: bool,
    pub public_url: Option<String>,
    pub webhooks: WebhookSettings,
    pub runner: RunnerOptions,
    /// How long audit records are kept (`audit_retention`).
    pub audit_retention: std::time::Duration,
    /// `trusted_proxies`, and whether `serve` speaks HTTPS itself.
    pub forwarding: crate::origin::Forwarding,
    /// Garbage collection: `gc_grace`, `gc_interval`.
    pub gc: GcOptions,
    /// The quota namespaces created from now on start with (`default_quota`).
    pub default_quota: Option<u64>,
    /// Pull rate limits per tier (`[rate_limit]`; none: only plans limit).
    pub rate_limit: berth_core::ratelimit::Tiers,
    /// The mirror that serves names matching no local repository (`mirror_default`).
    pub mirror_default: Option<String>,
    /// Automated builds: `build_concurrency`, `build_timeout`, `build_dir`.
    pub builds: BuildSettings,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            registry: RegistryOptions::default(),
            auth: AuthSettings::default(),
            allow_signup: false,
            public_url: None,
            webhooks: WebhookSettings::default(),
            runner: RunnerOptions::default(),
            audit_retention: std::time::Duration::from_secs(365 * 86400),
            forwarding: crate::origin::Forwarding::default(),
            gc: GcOptions::default(),
            default_quota: None,
            rate_limit: berth_core::ratelimit::Tiers::default(),
            mirror_default: None,
            builds: BuildSettings::default(),
        }
    }
}

/// A wired server: the HTTP application's state and the jobs runner to run beside it.
pub struct Wired {
    pub state: AppState,
    pub runner: Runner,
}

/// Builds every service and the runner, with its handlers registered and its recurring
/// jobs scheduled (each once, whichever node schedules it first).
pub async fn wire(parts: Parts) -> Result<Wired> {
    let Parts {
        blobs,
        meta,
        clock,
        transport,
        seal,
        authorizer,
        mirrors,
        replication,
        locks,
        settings,
    } = parts;
    let wake = Wake::default();
    let registry = Registry::new(blobs.clone(), meta.clone(), settings.registry.clone())
        .with_wake(wake.clone());
    let authorizer = authorizer
        .unwrap_or_else(|| Arc::new(PolicyAuthorizer::new(meta.clone() as Arc<dyn IdentityStore>)));
    let mirrors = Mirrors::new(
        mirrors,
        settings.mirror_default.as_deref(),
        registry.clone(),
        meta.clone(),
        blobs.clone(),
        clock.clone(),
        settings.registry.max_blob_size,
    );
    // Mirrored names are read-only and follow their mirror's access rule, everywhere the
    // authorizer is asked (the registry, the token service, listings).
    let authorizer: Arc<dyn Authorizer> = if mirrors.is_empty() {
        authorizer
    } else {
        Arc::new(MirrorAuthorizer::new(authorizer, mirrors.clone()))
    };
    let hub = Arc::new(Hub::new(meta.clone(), authorizer.clone()));
    let auth = Authenticator::new(meta.clone(), authorizer.clone(), settings.auth.clone())
        .await?
        .with_clock(clock.clone());
    let identity = Identity::<dyn IdentityStore>::new(meta.clone())
        .with_authorizer(authorizer.clone())
        .with_signup(settings.allow_signup)
        .with_clock(clock.clone());
    meta.set_default_quota(settings.default_quota).await?;
    let usage = UsageService::new(meta.clone(), authorizer.clone());
    let pull_limits = PullLimits::new(meta.clone(), clock.clone(), settings.rate_limit);
    let scanner = Scanner::new(meta.clone(), blobs.clone(), registry.clone(), clock.clone());
    let replications = Replications::new(
        meta.clone(),
        blobs.clone(),
        replication.clone(),
        seal.clone(),
        clock.clone(),
        wake.clone(),
    )
    .with_registry(registry.clone());
    let collector = Collector::new(
        meta.clone(),
        blobs,
        registry.clone(),
        clock.clone(),
        settings.gc.clone(),
    )
    .with_locks(locks.clone());
    let lifecycle = Lifecycle::new(
        meta.clone(),
        authorizer.clone(),
        clock.clone(),
        wake.clone(),
    )
    .with_mirror_namespaces(mirrors.configs().map(|m| m.prefix.clone()).collect());
    // Each mirror's namespace gets the retention policy its settings ask for.
    for mirror in mirrors.configs() {
        lifecycle
            .govern_mirror(&mirror.prefix, mirror.retention_days)
            .await?;
    }
    let webhooks = Webhooks::new(
        meta.clone(),
        authorizer.clone(),
        transport.clone(),
        seal.clone(),
        clock.clone(),
        settings.webhooks.clone(),
        wake.clone(),
    );
    let signatures = Signatures::new(
        meta.clone(),
        registry.clone(),
        authorizer.clone(),
        clock.clone(),
        wake.clone(),
    )
    .await?;
    let builds = Builds::new(
        meta.clone(),
        authorizer.clone(),
        seal.clone(),
        clock.clone(),
        wake.clone(),
        settings.builds.clone(),
    )
    .with_locks(locks)
    // A multi-platform build pushes the index it assembles as any registry client would.
    .with_registry_client(replication);
    let mut runner = Runner::new(meta.clone(), clock.clone(), settings.runner.clone(), wake);
    let public_url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| "http://localhost".to_owned());
    runner.feed(Arc::new(EventHandOn::new(
        meta.clone(),
        clock.clone(),
        &public_url,
    )));
    runner.feed(Arc::new(SignatureFeed::new(meta.clone(), clock.clone())));
    let verify = Arc::new(VerifySignatures(signatures.clone()));
    runner.handle(VERIFY_JOB, verify.clone());
    runner.handle(REVERIFY_JOB, verify);
    // Scans run after the push committed and answered: the feed reads its event.
    runner.feed(Arc::new(ScanFeed::new(meta.clone(), clock.clone())));
    runner.handle(SCAN_JOB, Arc::new(ScanImage(scanner.clone())));
    runner.handle(RESCAN_JOB, Arc::new(RescanAll(scanner.clone())));
    runner.handle(
        DELIVER_JOB,
        Arc::new(DeliverWebhook::new(
            meta.clone(),
            transport,
            seal,
            clock.clone(),
            settings.webhooks.disable_after,
        )),
    );
    runner.handle(
        EXPIRE_UPLOADS_JOB,
        Arc::new(ExpireUploads(registry.clone())),
    );
    runner.handle(
        BACKFILL_PLATFORMS_JOB,
        Arc::new(BackfillPlatforms(registry.clone())),
    );
    runner.handle(
        PRUNE_HISTORY_JOB,
        Arc::new(PruneHistory {
            store: meta.clone(),
            clock: clock.clone(),
        }),
    );
    runner.handle(
        PRUNE_AUDIT_JOB,
        Arc::new(PruneAudit {
            store: meta.clone(),
            clock: clock.clone(),
            retention: settings.audit_retention,
        }),
    );
    runner.handle(BUILD_JOB, Arc::new(RunBuild(builds.clone())));
    runner.handle(POLL_JOB, Arc::new(PollSources(builds.clone())));
    // Builds whose node stopped (this one's last run, or another that died) are failed now,
    // their jobs finding them finished; those a live node runs hold their lock and stay.
    // A tag moves only when a push's manifest commits, so none is half-pushed.
    match builds.fail_interrupted().await {
        Ok(failed) if !failed.is_empty() => {
            tracing::warn!(builds = ?failed, "builds interrupted by the last stop are marked failed")
        }
        Ok(_) => {}
        Err(err) => tracing::warn!(error = %err, "could not mark interrupted builds failed"),
    }
    runner.handle(GC_JOB, Arc::new(CollectGarbage(collector.clone())));
    // Push-triggered and deletion replication read their events after the push committed.
    runner.feed(Arc::new(ReplicationFeed::new(meta.clone(), clock.clone())));
    runner.handle(
        REPLICATION_RUN_JOB,
        Arc::new(ReplicationRunJob(replications.clone())),
    );
    runner.handle(
        REPLICATION_SCHEDULE_JOB,
        Arc::new(ReplicationScheduler(replications.clone())),
    );
    runner.handle(
        RETENTION_SCHEDULE_JOB,
        Arc::new(RetentionScheduler(lifecycle.clone())),
    );
    runner.handle(
        RETENTION_RUN_JOB,
        Arc::new(RetentionRunJob(lifecycle.clone())),
    );
    // A collection the last process left half-done is finished now rather than when its
    // leased job runs again: its marked blobs cannot be pushed again until then. At most
    // one batch is marked at a time, so this is short; awaited, so that it never holds the
    // lock the start's own collection is about to take.
    if let Err(err) = collector.finish_interrupted().await {
        tracing::warn!(error = %err, "finishing an interrupted garbage collection failed");
    }
    for kind in [
        GC_JOB,
        RETENTION_SCHEDULE_JOB,
        REPLICATION_SCHEDULE_JOB,
        EXPIRE_UPLOADS_JOB,
        BACKFILL_PLATFORMS_JOB,
        PRUNE_HISTORY_JOB,
        PRUNE_AUDIT_JOB,
        POLL_JOB,
    ] {
        runner.run_at_start(kind).await?;
    }
    let state = AppState {
        registry,
        auth: Arc::new(auth),
        identity,
        hub,
        public_url: settings.public_url,
        webhooks,
        forwarding: Arc::new(settings.forwarding),
        usage,
        collector,
        lifecycle,
        pull_limits,
        mirrors,
        signatures,
        scanner,
        replications,
        builds,
    };
    Ok(Wired { state, runner })
}
