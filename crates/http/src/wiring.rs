//! The composition: every service built from the stores and settings, and the jobs runner
//! with its handlers. `berth serve` and the test kit both wire through [`wire`], so tests
//! run the server that ships.

use crate::AppState;
use berth_core::access::{Authorizer, PolicyAuthorizer};
use berth_core::auth::{AuthSettings, Authenticator};
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
use berth_core::ports::{BlobStore, IdentityStore, MetaStore};
use berth_core::registry::RegistryOptions;
use berth_core::scan::{RescanAll, ScanFeed, ScanImage, Scanner, RESCAN_JOB, SCAN_JOB};
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
        settings,
    } = parts;
    let authorizer = authorizer
        .unwrap_or_else(|| Arc::new(PolicyAuthorizer::new(meta.clone() as Arc<dyn IdentityStore>)));
    let hub = Arc::new(Hub::new(meta.clone(), authorizer.clone()));
    let auth = Authenticator::new(meta.clone(), authorizer.clone(), settings.auth.clone())
        .await?
        .with_clock(clock.clone());
    let identity = Identity::<dyn IdentityStore>::new(meta.clone())
        .with_authorizer(authorizer.clone())
        .with_signup(settings.allow_signup)
        .with_clock(clock.clone());
    let wake = Wake::default();
    let registry = Registry::new(blobs.clone(), meta.clone(), settings.registry.clone())
        .with_wake(wake.clone());
    meta.set_default_quota(settings.default_quota).await?;
    let usage = UsageService::new(meta.clone(), authorizer.clone());
    let scanner = Scanner::new(meta.clone(), blobs.clone(), registry.clone(), clock.clone());
    let collector = Collector::new(
        meta.clone(),
        blobs,
        registry.clone(),
        clock.clone(),
        settings.gc.clone(),
    );
    let lifecycle = Lifecycle::new(
        meta.clone(),
        authorizer.clone(),
        clock.clone(),
        wake.clone(),
    );
    let webhooks = Webhooks::new(
        meta.clone(),
        authorizer,
        transport.clone(),
        seal.clone(),
        clock.clone(),
        settings.webhooks.clone(),
        wake.clone(),
    );
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
    runner.handle(GC_JOB, Arc::new(CollectGarbage(collector.clone())));
    runner.handle(
        RETENTION_SCHEDULE_JOB,
        Arc::new(RetentionScheduler(lifecycle.clone())),
    );
    runner.handle(
        RETENTION_RUN_JOB,
        Arc::new(RetentionRunJob(lifecycle.clone())),
    );
    for kind in [
        GC_JOB,
        RETENTION_SCHEDULE_JOB,
        EXPIRE_UPLOADS_JOB,
        BACKFILL_PLATFORMS_JOB,
        PRUNE_HISTORY_JOB,
        PRUNE_AUDIT_JOB,
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
        scanner,
    };
    Ok(Wired { state, runner })
}
