//! Managing replication rules (site admins only: a rule reads every repository it matches
//! and holds a remote's credentials) and running them: the planner picks the repositories
//! and tags, the copier copies them, and each run is recorded with its items and event.

use super::copy::{describe, Copier, ItemResult, Tally};
use super::destination::{Connector, Origin, RemoteSpec};
use super::import::Importer;
use super::pacing::{format_bandwidth, parse_bandwidth, Pacer, SharedPacer};
use super::rule::{
    check_name, check_remote_url, check_tag_patterns, check_target_namespace, destination_name,
    import_name, tag_selected, RemotePattern, SourcePattern, Trigger,
};
use super::{RunPayload, REPLICATION_MAX_ATTEMPTS, REPLICATION_RUN_JOB};
use crate::audit::Audit;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::events::{data_of, EventKind, NewEvent, ReplicationCompletedData};
use crate::identity::Acting;
use crate::jobs::Wake;
use crate::ports::{BlobStore, MetaStore, NewJob, ReplicationRecord, ReplicationRunRecord};
use crate::registry::{Registry, RegistryOptions};
use crate::time::rfc3339;
use crate::webhooks::SealKey;
use berth_oci::RepoName;
use std::sync::{Arc, Mutex};

/// Repositories and tags read per page while planning.
const PAGE: u32 = 500;
/// Most runs a history shows.
pub const MAX_HISTORY: u32 = 200;

/// Remote repositories read per page of a pull rule's listing.
const REMOTE_PAGE: u32 = 100;
/// Most pages of one remote listing: a remote that ignores `last` cannot keep a run busy.
const MAX_REMOTE_PAGES: u32 = 1000;

/// A rule as asked for: a push rule names `to`, a pull rule `from`.
#[derive(Debug, Clone, Default)]
pub struct ReplicationRequest {
    pub name: String,
    /// Push: `NAMESPACE/REPO_GLOB` here. Pull: a glob over repository names at the remote.
    pub source: String,
    pub tags: Vec<String>,
    /// The destination registry's URL (a push rule).
    pub to: String,
    /// The registry to import from (a pull rule).
    pub from: Option<String>,
    /// Push: the namespace copies go under there. Pull: the namespace here imports go
    /// under (required).
    pub to_namespace: Option<String>,
    pub flatten: bool,
    pub username: Option<String>,
    /// Sealed before it is stored, and never shown again.
    pub password: Option<String>,
    /// None: verify.
    pub tls_verify: Option<bool>,
    /// `push`, `manual` (the default) or a cron expression.
    pub trigger: Option<String>,
    pub deletes: bool,
    /// Most bytes per second a run copies (`50MiB/s`); None: no limit.
    pub bandwidth: Option<String>,
}

/// A rule as its managers see it: never its password.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ReplicationView {
    pub name: String,
    /// `push` or `pull`.
    pub direction: String,
    pub source: String,
    pub tags: Vec<String>,
    /// The destination registry of a push rule.
    pub to: Option<String>,
    /// The registry a pull rule imports from.
    pub from: Option<String>,
    pub to_namespace: Option<String>,
    pub flatten: bool,
    pub username: Option<String>,
    pub has_password: bool,
    pub tls_verify: bool,
    pub trigger: String,
    pub deletes: bool,
    pub enabled: bool,
    pub created_by: String,
    pub created_at: String,
    /// Bytes per second, when limited.
    pub bandwidth_limit: Option<u64>,
    /// The same, as people write it (`50MiB/s`).
    pub bandwidth: Option<String>,
}

impl ReplicationView {
    fn of(record: &ReplicationRecord) -> ReplicationView {
        ReplicationView {
            name: record.name.clone(),
            direction: record.direction.clone(),
            source: record.source.clone(),
            tags: record.tags.clone(),
            to: (record.direction != "pull").then(|| record.remote_url.clone()),
            from: (record.direction == "pull").then(|| record.remote_url.clone()),
            to_namespace: record.target_namespace.clone(),
            flatten: record.flatten,
            username: record.username.clone(),
            has_password: record.password_sealed.is_some(),
            tls_verify: record.tls_verify,
            trigger: record.trigger.clone(),
            deletes: record.deletes,
            enabled: record.enabled,
            created_by: record.created_by.clone(),
            created_at: rfc3339(record.created_at),
            bandwidth_limit: record.bandwidth_limit,
            bandwidth: record.bandwidth_limit.map(format_bandwidth),
        }
    }
}

/// One run, as the history shows it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunView {
    pub id: i64,
    pub rule: String,
    pub trigger: String,
    pub status: String,
    pub started_at: String,
    pub finished_at: Option<String>,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    pub items: Vec<ItemResult>,
}

impl RunView {
    fn of(record: &ReplicationRunRecord) -> RunView {
        RunView {
            id: record.id,
            rule: record.rule.clone(),
            trigger: record.trigger.clone(),
            status: record.status.clone(),
            started_at: rfc3339(record.started_at),
            finished_at: record.finished_at.map(rfc3339),
            copied: record.copied,
            skipped: record.skipped,
            failed: record.failed,
            items: serde_json::from_str(&record.items_json).unwrap_or_default(),
        }
    }
}

/// What a finished run did: the JSON `berth replication run --wait` prints.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunSummary {
    pub run_id: i64,
    pub rule: String,
    pub status: String,
    #[serde(flatten)]
    pub tally: Tally,
}

/// The replication service.
#[derive(Clone)]
pub struct Replications {
    store: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    connector: Arc<dyn Connector>,
    seal: SealKey,
    clock: Arc<dyn Clock>,
    audit: Audit,
    wake: Wake,
    /// Pull rules import through the registry's push path.
    registry: Registry,
}

impl Replications {
    pub fn new(
        store: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        connector: Arc<dyn Connector>,
        seal: SealKey,
        clock: Arc<dyn Clock>,
        wake: Wake,
    ) -> Replications {
        Replications {
            audit: Audit::over(store.clone()),
            registry: Registry::new(blobs.clone(), store.clone(), RegistryOptions::default())
                .with_wake(wake.clone()),
            store,
            blobs,
            connector,
            seal,
            clock,
            wake,
        }
    }

    /// The same service, importing through `registry` (the server's, with its limits).
    pub fn with_registry(self, registry: Registry) -> Replications {
        Replications { registry, ..self }
    }

    pub(super) fn store(&self) -> &Arc<dyn MetaStore> {
        &self.store
    }

    pub(super) fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    pub async fn create(
        &self,
        acting: &Acting<'_>,
        request: ReplicationRequest,
    ) -> Result<ReplicationView> {
        acting.require_site_admin()?;
        check_name(&request.name).map_err(Error::Invalid)?;
        check_tag_patterns(&request.tags).map_err(Error::Invalid)?;
        let from = request
            .from
            .as_deref()
            .map(str::trim)
            .filter(|f| !f.is_empty());
        let to = Some(request.to.trim()).filter(|t| !t.is_empty());
        let (direction, url, source) = match (to, from) {
            (Some(to), None) => (
                "push",
                check_remote_url(to).map_err(Error::Invalid)?,
                SourcePattern::parse(&request.source)
                    .map_err(Error::Invalid)?
                    .to_string(),
            ),
            (None, Some(from)) => (
                "pull",
                check_remote_url(from).map_err(Error::Invalid)?,
                RemotePattern::parse(&request.source)
                    .map_err(Error::Invalid)?
                    .to_string(),
            ),
            (Some(_), Some(_)) => {
                return Err(Error::Invalid(
                    "a rule copies to a registry (to) or imports from one (from), not both"
                        .to_owned(),
                ))
            }
            (None, None) => {
                return Err(Error::Invalid(
                    "name the registry to copy to (to) or to import from (from)".to_owned(),
                ))
            }
        };
        let to_namespace = match request.to_namespace.as_deref().map(str::trim) {
            None | Some("") => None,
            Some(namespace) => {
                check_target_namespace(namespace).map_err(Error::Invalid)?;
                Some(namespace.to_owned())
            }
        };
        let trigger = Trigger::parse(request.trigger.as_deref().unwrap_or("manual"))
            .map_err(Error::Invalid)?;
        if direction == "pull" {
            self.check_pull_rule(to_namespace.as_deref(), &trigger, request.deletes)
                .await?;
        }
        let bandwidth_limit = request
            .bandwidth
            .as_deref()
            .map(str::trim)
            .filter(|b| !b.is_empty())
            .map(parse_bandwidth)
            .transpose()
            .map_err(Error::Invalid)?;
        let username = request
            .username
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty());
        if username
            .as_ref()
            .is_some_and(|u| u.len() > 255 || u.contains(':'))
        {
            return Err(Error::Invalid(
                "a username has at most 255 characters and no ':'".to_owned(),
            ));
        }
        let password = request.password.filter(|p| !p.is_empty());
        if password.is_some() && username.is_none() {
            return Err(Error::Invalid(
                "a password needs a username (for a token, the account it belongs to)".to_owned(),
            ));
        }
        if password.as_ref().is_some_and(|p| p.len() > 4096) {
            return Err(Error::Invalid(
                "a password or token has at most 4096 characters".to_owned(),
            ));
        }
        let mut tags = request.tags;
        tags.dedup();
        let record = ReplicationRecord {
            name: request.name.clone(),
            direction: direction.to_owned(),
            source,
            tags,
            remote_url: url,
            target_namespace: to_namespace,
            flatten: request.flatten,
            username,
            password_sealed: password.map(|p| self.seal.seal(&p)),
            tls_verify: request.tls_verify.unwrap_or(true),
            trigger: trigger.as_text(),
            deletes: request.deletes,
            enabled: true,
            created_by: acting.actor_name(),
            created_at: self.clock.now_unix(),
            after_event: 0,
            bandwidth_limit,
        };
        self.store
            .create_replication(&record)
            .await
            .map_err(|e| match e {
                crate::ports::MetaError::Conflict(what) => Error::Conflict(what),
                other => other.into(),
            })?;
        let view = ReplicationView::of(&record);
        self.audit
            .record_by(
                acting,
                "replication.create",
                &record.name,
                serde_json::json!({
                    "direction": view.direction, "source": view.source, "tags": view.tags,
                    "to": view.to, "from": view.from, "to_namespace": view.to_namespace,
                    "trigger": view.trigger, "deletes": view.deletes,
                    "bandwidth": view.bandwidth,
                }),
            )
            .await;
        Ok(view)
    }

    /// What only pull rules must say: where imports go, and a trigger other than push (no
    /// event tells of a push at the remote).
    async fn check_pull_rule(
        &self,
        to_namespace: Option<&str>,
        trigger: &Trigger,
        deletes: bool,
    ) -> Result<()> {
        let Some(namespace) = to_namespace else {
            return Err(Error::Invalid(
                "a pull rule needs the namespace its imports go under here (to_namespace)"
                    .to_owned(),
            ));
        };
        if matches!(trigger, Trigger::Push) {
            return Err(Error::Invalid(
                "a pull rule runs manually or on a schedule; push triggers push rules only"
                    .to_owned(),
            ));
        }
        if deletes {
            return Err(Error::Invalid(
                "deletions are replicated by push rules only".to_owned(),
            ));
        }
        // Like a site admin's push, an import may create repositories in any namespace.
        let _ = namespace;
        Ok(())
    }

    pub async fn list(&self, acting: &Acting<'_>) -> Result<Vec<ReplicationView>> {
        acting.require_site_admin()?;
        Ok(self
            .store
            .replications()
            .await?
            .iter()
            .map(ReplicationView::of)
            .collect())
    }

    async fn rule(&self, name: &str) -> Result<ReplicationRecord> {
        self.store
            .replication(name)
            .await?
            .ok_or_else(|| Error::ReplicationUnknown(name.to_owned()))
    }

    pub async fn get(&self, acting: &Acting<'_>, name: &str) -> Result<ReplicationView> {
        acting.require_site_admin()?;
        Ok(ReplicationView::of(&self.rule(name).await?))
    }

    pub async fn delete(&self, acting: &Acting<'_>, name: &str) -> Result<()> {
        acting.require_site_admin()?;
        if !self.store.delete_replication(name).await? {
            return Err(Error::ReplicationUnknown(name.to_owned()));
        }
        self.audit
            .record_by(acting, "replication.delete", name, serde_json::Value::Null)
            .await;
        Ok(())
    }

    pub async fn set_enabled(&self, acting: &Acting<'_>, name: &str, enabled: bool) -> Result<()> {
        acting.require_site_admin()?;
        if !self.store.set_replication_enabled(name, enabled).await? {
            return Err(Error::ReplicationUnknown(name.to_owned()));
        }
        let action = if enabled {
            "replication.enable"
        } else {
            "replication.disable"
        };
        self.audit
            .record_by(acting, action, name, serde_json::Value::Null)
            .await;
        Ok(())
    }

    /// Queues a full run for the jobs runner; false when one is already queued or under way.
    pub async fn enqueue_run(&self, acting: &Acting<'_>, name: &str) -> Result<bool> {
        acting.require_site_admin()?;
        self.rule(name).await?;
        let queued = self
            .store
            .enqueue_job(&full_run_job(name, "manual", self.clock.now_ms()))
            .await?;
        self.wake.wake();
        self.audit
            .record_by(
                acting,
                "replication.run",
                name,
                serde_json::json!({ "queued": queued }),
            )
            .await;
        Ok(queued)
    }

    /// Runs the rule now, in the caller's task, and records the run (`run --wait`).
    pub async fn run_now(&self, acting: &Acting<'_>, name: &str) -> Result<RunSummary> {
        acting.require_site_admin()?;
        let rule = self.rule(name).await?;
        self.audit
            .record_by(
                acting,
                "replication.run",
                name,
                serde_json::json!({ "wait": true }),
            )
            .await;
        self.execute(&rule, &RunPayload::full(name, "manual")).await
    }

    pub async fn history(
        &self,
        acting: &Acting<'_>,
        name: &str,
        limit: u32,
    ) -> Result<Vec<RunView>> {
        acting.require_site_admin()?;
        self.rule(name).await?;
        Ok(self
            .store
            .replication_runs(name, limit.clamp(1, MAX_HISTORY))
            .await?
            .iter()
            .map(RunView::of)
            .collect())
    }

    /// Carries out one run of `rule`: the whole rule, or what `payload` names (pushed tags,
    /// deletions); records the run, its items and its event.
    pub(super) async fn execute(
        &self,
        rule: &ReplicationRecord,
        payload: &RunPayload,
    ) -> Result<RunSummary> {
        let password = match &rule.password_sealed {
            None => None,
            Some(sealed) => Some(self.seal.open(sealed).ok_or_else(|| {
                Error::Invalid(format!(
                    "the password of replication rule {:?} cannot be opened with this secrets key",
                    rule.name
                ))
            })?),
        };
        let remote = RemoteSpec {
            url: rule.remote_url.clone(),
            username: rule.username.clone(),
            password,
            tls_verify: rule.tls_verify,
        };
        let pacer: Option<SharedPacer> = rule
            .bandwidth_limit
            .map(|rate| Arc::new(Mutex::new(Pacer::new(rate))));
        let tally = if rule.direction == "pull" {
            let pattern = RemotePattern::parse(&rule.source).map_err(Error::Invalid)?;
            let namespace = rule.target_namespace.clone().ok_or_else(|| {
                Error::Invalid(format!(
                    "pull rule {:?} names no namespace to import into",
                    rule.name
                ))
            })?;
            let origin = self
                .connector
                .connect_origin(&remote)
                .map_err(Error::Invalid)?;
            let run_id = self.start_run(rule, payload).await?;
            let tally = self
                .import(rule, &pattern, &namespace, &*origin, pacer)
                .await;
            (run_id, tally)
        } else {
            let source = SourcePattern::parse(&rule.source).map_err(Error::Invalid)?;
            let destination = self.connector.connect(&remote).map_err(Error::Invalid)?;
            let run_id = self.start_run(rule, payload).await?;
            let mut copier =
                Copier::new(&*self.store, &*self.blobs, &*destination).with_pacer(pacer);
            self.copy(rule, payload, &source, &mut copier).await?;
            (run_id, copier.tally)
        };
        let ((run_id, started), tally) = tally;
        self.finish_run(rule, payload, run_id, started, tally).await
    }

    /// Records the start of a run: its id and when it started.
    async fn start_run(
        &self,
        rule: &ReplicationRecord,
        payload: &RunPayload,
    ) -> Result<(i64, i64)> {
        let started = self.clock.now_unix();
        let run_id = self
            .store
            .start_replication_run(&rule.name, &payload.trigger, started)
            .await?;
        Ok((run_id, started))
    }

    /// A push rule's run: the tags `payload` names, or every tag the rule selects.
    async fn copy(
        &self,
        rule: &ReplicationRecord,
        payload: &RunPayload,
        source: &SourcePattern,
        copier: &mut Copier<'_>,
    ) -> Result<()> {
        let target_of = |repository: &str| {
            destination_name(
                source,
                repository,
                rule.target_namespace.as_deref(),
                rule.flatten,
            )
        };
        match &payload.repository {
            Some(repository) if source.matches(repository) => {
                if let Ok(repo) = repository.parse::<RepoName>() {
                    let target = target_of(repository);
                    for tag in &payload.tags {
                        if payload.delete {
                            copier.delete_tag(&target, tag).await;
                        } else {
                            copier.copy_tag(&repo, &target, tag).await;
                        }
                    }
                }
            }
            Some(_) => {}
            None => {
                for repository in self.matching_repositories(source).await? {
                    let Ok(repo) = repository.parse::<RepoName>() else {
                        continue;
                    };
                    let target = target_of(&repository);
                    for tag in self.selected_tags(&repo, &rule.tags).await? {
                        copier.copy_tag(&repo, &target, &tag).await;
                    }
                }
            }
        }
        Ok(())
    }

    /// A pull rule's run: every remote repository the pattern matches (from the remote's
    /// catalog, unless it names one), each selected tag imported under `namespace`. A
    /// listing the remote refuses is a failed item, so the run is retried.
    async fn import(
        &self,
        rule: &ReplicationRecord,
        pattern: &RemotePattern,
        namespace: &str,
        origin: &dyn Origin,
        pacer: Option<SharedPacer>,
    ) -> Tally {
        let mut importer = Importer::new(
            &self.registry,
            &*self.store,
            origin,
            pacer,
            format!("replication:{}", rule.name),
        );
        let repositories = match pattern.exact() {
            Some(one) => vec![one.to_owned()],
            None => match remote_repositories(origin, pattern).await {
                Ok(found) => found,
                Err(err) => {
                    importer.record_failure(
                        format!("list the repositories of {}", rule.remote_url),
                        format!("source: {}", describe(&err)),
                    );
                    Vec::new()
                }
            },
        };
        for remote in repositories {
            let local = import_name(&remote, namespace, rule.flatten);
            let Ok(local_name) = local.parse::<RepoName>() else {
                importer.record_failure(
                    format!("{remote} -> {local}"),
                    "here: not a valid repository name".to_owned(),
                );
                continue;
            };
            match remote_tags(origin, &remote, &rule.tags).await {
                Ok(tags) => {
                    for tag in tags {
                        importer.import_tag(&remote, &local_name, &tag).await;
                    }
                }
                Err(err) => importer.record_failure(
                    format!("list the tags of {remote}"),
                    format!("source: {}", describe(&err)),
                ),
            }
        }
        importer.tally
    }

    /// Records the end of a run, with its items and its event.
    async fn finish_run(
        &self,
        rule: &ReplicationRecord,
        payload: &RunPayload,
        run_id: i64,
        started: i64,
        tally: Tally,
    ) -> Result<RunSummary> {
        let status = if tally.failed == 0 {
            "succeeded"
        } else {
            "failed"
        };
        let record = ReplicationRunRecord {
            id: run_id,
            rule: rule.name.clone(),
            trigger: payload.trigger.clone(),
            status: status.to_owned(),
            started_at: started,
            finished_at: Some(self.clock.now_unix()),
            copied: tally.copied,
            skipped: tally.skipped,
            failed: tally.failed,
            items_json: serde_json::to_string(&tally.items).unwrap_or_else(|_| "[]".to_owned()),
        };
        // A pull rule's run is news for the namespace it imports into (its webhooks hear
        // it); a push rule's for the site.
        let namespace = match (&*rule.direction, &rule.target_namespace) {
            ("pull", Some(target)) => target.split('/').next().unwrap_or_default().to_owned(),
            _ => String::new(),
        };
        let event = NewEvent {
            kind: EventKind::ReplicationCompleted,
            namespace,
            repository: None,
            actor: None,
            data: data_of(&ReplicationCompletedData {
                run_id,
                rule: rule.name.clone(),
                trigger: payload.trigger.clone(),
                status: status.to_owned(),
                copied: tally.copied,
                skipped: tally.skipped,
                failed: tally.failed,
            }),
        };
        self.store.finish_replication_run(&record, &event).await?;
        self.wake.wake();
        Ok(RunSummary {
            run_id,
            rule: rule.name.clone(),
            status: status.to_owned(),
            tally,
        })
    }

    /// The repositories the source pattern matches, in name order.
    async fn matching_repositories(&self, source: &SourcePattern) -> Result<Vec<String>> {
        let mut out = Vec::new();
        // Names sort after their namespace's prefix: start just before it.
        let mut last: Option<String> = Some(format!("{}/", source.namespace));
        let prefix = format!("{}/", source.namespace);
        loop {
            let page = self.store.list_repositories(last.as_deref(), PAGE).await?;
            let Some(final_name) = page.last().cloned() else {
                break;
            };
            let mut past = false;
            for name in page.iter() {
                if !name.starts_with(&prefix) {
                    past = name.as_str() > prefix.as_str();
                    if past {
                        break;
                    }
                    continue;
                }
                if source.matches(name) {
                    out.push(name.clone());
                }
            }
            if past || page.len() < PAGE as usize {
                break;
            }
            last = Some(final_name);
        }
        Ok(out)
    }

    /// The repository's tags the patterns select, without cosign's fallback tags and
    /// referrers indexes (they travel with their subject).
    async fn selected_tags(&self, repo: &RepoName, patterns: &[String]) -> Result<Vec<String>> {
        let mut out = Vec::new();
        let mut last: Option<String> = None;
        loop {
            let Some(page) = self.store.list_tags(repo, last.as_deref(), PAGE).await? else {
                break;
            };
            for tag in &page {
                if !is_attachment_tag(tag) && tag_selected(patterns, tag) {
                    out.push(tag.clone());
                }
            }
            if page.len() < PAGE as usize {
                break;
            }
            last = page.last().cloned();
        }
        Ok(out)
    }
}

/// The remote repositories `pattern` matches, from the remote's catalog.
async fn remote_repositories(
    origin: &dyn Origin,
    pattern: &RemotePattern,
) -> std::result::Result<Vec<String>, crate::mirror::UpstreamError> {
    let mut out = Vec::new();
    let mut last: Option<String> = None;
    for _ in 0..MAX_REMOTE_PAGES {
        let page = origin.catalog_page(last.as_deref(), REMOTE_PAGE).await?;
        out.extend(page.iter().filter(|r| pattern.matches(r)).cloned());
        match next_after(&page, last.as_deref()) {
            Some(next) => last = Some(next),
            None => break,
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The remote repository's tags the patterns select, without the tags that travel with
/// their subject (cosign's, referrers indexes); none when the repository is gone.
async fn remote_tags(
    origin: &dyn Origin,
    repo: &str,
    patterns: &[String],
) -> std::result::Result<Vec<String>, crate::mirror::UpstreamError> {
    let mut out = Vec::new();
    let mut last: Option<String> = None;
    for _ in 0..MAX_REMOTE_PAGES {
        let Some(page) = origin.tags_page(repo, last.as_deref(), REMOTE_PAGE).await? else {
            break;
        };
        out.extend(
            page.iter()
                .filter(|t| !is_attachment_tag(t) && tag_selected(patterns, t))
                .cloned(),
        );
        match next_after(&page, last.as_deref()) {
            Some(next) => last = Some(next),
            None => break,
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// Where the next page of a listing starts: after the page's last name, when the page was
/// full and moved forward (a remote that ignores `last` would answer the same page again).
fn next_after(page: &[String], last: Option<&str>) -> Option<String> {
    let final_name = page.last()?;
    let full = page.len() >= REMOTE_PAGE as usize;
    (full && last.is_none_or(|l| final_name.as_str() > l)).then(|| final_name.clone())
}

/// `sha256-HEX`, `sha256-HEX.sig|.att|.sbom`: tags that describe another manifest.
pub(super) fn is_attachment_tag(tag: &str) -> bool {
    let Some(rest) = tag.strip_prefix("sha256-") else {
        return false;
    };
    let hex = rest.split('.').next().unwrap_or_default();
    hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())
}

/// A full run of `rule`, one at a time per rule.
pub(super) fn full_run_job(rule: &str, trigger: &str, due_at_ms: i64) -> NewJob {
    NewJob {
        kind: REPLICATION_RUN_JOB.to_owned(),
        payload: serde_json::to_string(&RunPayload::full(rule, trigger)).unwrap_or_default(),
        due_at_ms,
        max_attempts: REPLICATION_MAX_ATTEMPTS,
        unique_key: Some(format!("replication:{rule}")),
    }
}
