//! Automated builds: a git source and build rules per repository, builds triggered by the
//! source's push webhook or by hand, run as jobs with buildah, pushed back into the
//! repository with a token scoped to it alone.
//!
//! - `rules.rs`: rules, tag templates and the plan a push of refs makes (pure);
//! - `hooks.rs`: the git hosts' webhook signatures and push payloads (pure);
//! - `log.rs`: the kept log, secrets masked, cut at a limit;
//! - `deploy_key.rs`: generated Ed25519 deploy keys in OpenSSH's formats;
//! - `runner.rs`: the build job: git, buildah, the scoped tokens, cancellation;
//! - this file: the types and the service every surface goes through (authorize, apply
//!   the rules, audit).

pub mod deploy_key;
pub mod hooks;
mod index;
pub mod log;
pub mod poll;
pub mod rules;
mod runner;

pub use poll::{PollSources, MIN_POLL, POLL_JOB};
pub use rules::{BuildRule, PushedRef, RefKind, RuleSpec, MAX_RULES};
pub use runner::{RunBuild, BUILD_JOB};

use crate::access::{Authorizer, Principal};
use crate::audit::Audit;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::events::{data_of, EventKind, NewEvent};
use crate::identity::Acting;
use crate::jobs::Wake;
use crate::ports::{build_lock, ClusterLocks, MetaStore, NewJob, Permission, ProcessLocks};
use crate::replication::Connector;
use crate::webhooks::SealKey;
use berth_oci::RepoName;
use hooks::{HookRequest, Provider};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Builds listed per page.
pub const MAX_BUILD_PAGE: u32 = 100;

/// How a source authenticates to its git host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CredentialKind {
    None,
    /// A token, sent as the password of an `https://` URL.
    Token,
    /// A deploy key Berth generated, for `ssh://` URLs.
    DeployKey,
}

impl CredentialKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CredentialKind::None => "none",
            CredentialKind::Token => "token",
            CredentialKind::DeployKey => "deploy_key",
        }
    }

    pub fn parse(s: &str) -> Option<CredentialKind> {
        [
            CredentialKind::None,
            CredentialKind::Token,
            CredentialKind::DeployKey,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A repository's build source as stored: the secrets sealed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSource {
    pub repository: String,
    pub git_url: String,
    pub credential_kind: CredentialKind,
    /// The sealed token or private key.
    pub sealed_credential: Option<Vec<u8>>,
    /// The deploy key's public line.
    pub public_key: Option<String>,
    /// The sealed secret the webhooks are checked with.
    pub sealed_hook_secret: Vec<u8>,
    /// The account that set it: builds act for it (or its organization) when they pull
    /// and push. 0 for the CLI.
    pub created_by: i64,
    pub updated_at: i64,
    /// Seconds between polls of the source; None: only hooks and hands trigger builds.
    pub poll_seconds: Option<i64>,
    /// Where the source's refs stood at the last poll (JSON `{ref: commit}`).
    pub polled_refs: Option<String>,
    /// When it was last polled (Unix seconds).
    pub polled_at: Option<i64>,
}

/// What the user asks for.
#[derive(Debug, Clone)]
pub enum CredentialInput {
    None,
    Token(String),
    DeployKey,
}

/// A source as shown: never a secret, except once, right after it was set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceView {
    pub repository: String,
    pub git_url: String,
    pub credential: CredentialKind,
    /// The deploy key's public half (to add to the git host as a read-only deploy key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The webhook secret: only in the answer to setting the source.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hook_secret: Option<String>,
    pub updated_at: i64,
    /// Seconds between polls, when the source is polled.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub poll_seconds: Option<i64>,
    /// When it was last polled (Unix seconds).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub polled_at: Option<i64>,
}

/// A build's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Queued,
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl BuildStatus {
    pub const ALL: [BuildStatus; 5] = [
        BuildStatus::Queued,
        BuildStatus::Running,
        BuildStatus::Succeeded,
        BuildStatus::Failed,
        BuildStatus::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Queued => "queued",
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<BuildStatus> {
        BuildStatus::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub fn is_final(self) -> bool {
        matches!(
            self,
            BuildStatus::Succeeded | BuildStatus::Failed | BuildStatus::Cancelled
        )
    }
}

/// A build about to be queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBuild {
    pub repository: String,
    pub rule_id: Option<i64>,
    pub ref_kind: RefKind,
    pub ref_name: String,
    pub commit: Option<String>,
    pub tags: Vec<String>,
    pub dockerfile: String,
    pub context: String,
    pub build_args: Vec<String>,
    /// The rule's platforms (empty: the machine's own).
    pub platforms: Vec<String>,
    /// `manual`, `github`, `gitlab`, `gitea`, `generic`.
    pub trigger: String,
    /// Set for a build that cannot run (it is stored failed, with no job).
    pub reason: Option<String>,
    pub created_at: i64,
}

/// A build as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildRecord {
    pub id: i64,
    pub repository: String,
    pub status: BuildStatus,
    pub rule_id: Option<i64>,
    pub ref_kind: RefKind,
    pub ref_name: String,
    pub commit: Option<String>,
    pub tags: Vec<String>,
    pub dockerfile: String,
    pub context: String,
    pub build_args: Vec<String>,
    /// The platforms built for (empty: the machine's own, pushed as one image; two or
    /// more: an index of one image each).
    pub platforms: Vec<String>,
    pub trigger: String,
    /// The pushed manifest: the image's, or the index's for several platforms.
    pub digest: Option<String>,
    /// Why it failed or was cancelled.
    pub reason: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    /// Seconds from start to finish.
    pub duration: Option<i64>,
    pub cancel_requested: bool,
    #[serde(skip)]
    pub log: String,
}

/// The fields of `build.completed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuildCompletedData {
    pub build_id: i64,
    pub status: BuildStatus,
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub commit: Option<String>,
    pub tags: Vec<String>,
    pub digest: Option<String>,
    pub reason: Option<String>,
}

/// The builder's settings.
#[derive(Debug, Clone)]
pub struct BuildSettings {
    /// Builds run at once by this node (`build_concurrency`).
    pub concurrency: usize,
    /// A build running longer is stopped and failed (`build_timeout`).
    pub timeout: Duration,
    /// Where checkouts, buildah's storage and the per-repository caches live
    /// (`build_dir`); never inside the data directory's blobs or database.
    pub work_dir: PathBuf,
    /// The `buildah` and `git` programs.
    pub buildah: String,
    pub git: String,
    /// How much of a log is kept.
    pub log_limit: usize,
    /// The prefix of the pull-through mirror that serves Docker Hub, when there is one:
    /// base images named `docker.io/...` (or bare names Berth has no repository for) are
    /// pulled through it.
    pub docker_hub_mirror: Option<String>,
    /// Where qemu-user-static's handlers are registered (`/proc/sys/fs/binfmt_misc`): a
    /// platform this machine cannot run and has no handler for is refused by name.
    pub binfmt_dir: PathBuf,
}

impl Default for BuildSettings {
    fn default() -> Self {
        BuildSettings {
            concurrency: 1,
            timeout: Duration::from_secs(3600),
            work_dir: std::env::temp_dir().join("berth-builds"),
            buildah: "buildah".into(),
            git: "git".into(),
            log_limit: log::LOG_LIMIT,
            docker_hub_mirror: None,
            binfmt_dir: PathBuf::from("/proc/sys/fs/binfmt_misc"),
        }
    }
}

/// Checks a git URL: `https://`, `http://` (loopback mirrors), `ssh://` or `file://`,
/// with no credentials inside it (they go in the source's token) and nothing git would
/// read as an option.
pub fn validate_git_url(raw: &str) -> Result<url::Url> {
    let bad = |why: &str| Error::Invalid(format!("git URL {raw:?} {why}"));
    if raw.starts_with('-') || raw.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(bad("has spaces or control characters"));
    }
    let url = url::Url::parse(raw).map_err(|e| bad(&format!("is not a URL: {e}")))?;
    match url.scheme() {
        "https" | "http" | "ssh" if url.host_str().is_some_and(|h| !h.is_empty()) => {}
        "file" if !url.path().is_empty() && url.path() != "/" => {}
        "https" | "http" | "ssh" => return Err(bad("names no host")),
        "file" => return Err(bad("names no path")),
        _ => return Err(bad("must start with https://, ssh:// or file://")),
    }
    if !url.password().unwrap_or("").is_empty()
        || (url.scheme() != "ssh" && !url.username().is_empty())
    {
        return Err(bad(
            "carries credentials: give the token with --token-stdin instead",
        ));
    }
    Ok(url)
}

/// The automated-builds service: every surface (API, UI, CLI, hooks) goes through it.
#[derive(Clone)]
pub struct Builds {
    pub(crate) store: Arc<dyn MetaStore>,
    authorizer: Arc<dyn Authorizer>,
    pub(crate) seal: SealKey,
    pub(crate) clock: Arc<dyn Clock>,
    audit: Audit,
    wake: Wake,
    pub(crate) settings: Arc<BuildSettings>,
    /// Where buildah reaches this server's registry (`127.0.0.1:PORT`), known once the
    /// listener is bound.
    pub(crate) registry_address: Arc<OnceLock<String>>,
    /// Whether that listener speaks TLS (the index pusher must know; buildah tries both).
    pub(crate) registry_tls: Arc<AtomicBool>,
    /// How a multi-platform build pushes the index it assembles (an HTTP registry client);
    /// None: such builds fail, saying so.
    pub(crate) registry_client: Option<Arc<dyn Connector>>,
    pub(crate) running: Arc<tokio::sync::Semaphore>,
    /// Held by the node running a build (see [`build_lock`]): a build whose lock is free
    /// is running nowhere.
    pub(crate) locks: Arc<dyn ClusterLocks>,
}

impl Builds {
    pub fn new(
        store: Arc<dyn MetaStore>,
        authorizer: Arc<dyn Authorizer>,
        seal: SealKey,
        clock: Arc<dyn Clock>,
        wake: Wake,
        settings: BuildSettings,
    ) -> Builds {
        Builds {
            audit: Audit::over(store.clone()),
            store,
            authorizer,
            seal,
            clock,
            wake,
            running: Arc::new(tokio::sync::Semaphore::new(settings.concurrency.max(1))),
            settings: Arc::new(settings),
            registry_address: Arc::new(OnceLock::new()),
            registry_tls: Arc::new(AtomicBool::new(false)),
            registry_client: None,
            locks: Arc::new(ProcessLocks::default()),
        }
    }

    /// Gives the builder the registry client a multi-platform build pushes its index with.
    pub fn with_registry_client(mut self, client: Arc<dyn Connector>) -> Builds {
        self.registry_client = Some(client);
        self
    }

    /// Tells this node which builds other nodes run (the default, [`ProcessLocks`],
    /// suffices for one process).
    pub fn with_locks(mut self, locks: Arc<dyn ClusterLocks>) -> Builds {
        self.locks = locks;
        self
    }

    /// Tells the builder where the registry listens (`host:port`); builds wait for it.
    pub fn set_registry_address(&self, address: &str) {
        let _ = self.registry_address.set(address.to_owned());
    }

    /// Tells the builder that the registry's listener speaks TLS.
    pub fn set_registry_tls(&self, tls: bool) {
        self.registry_tls
            .store(tls, std::sync::atomic::Ordering::SeqCst);
    }

    pub fn settings(&self) -> &BuildSettings {
        &self.settings
    }

    pub(crate) fn now(&self) -> i64 {
        self.clock.now_ms() / 1000
    }

    async fn require(
        &self,
        principal: &Principal,
        repo: &RepoName,
        need: Permission,
    ) -> Result<()> {
        let held = self.authorizer.permission(principal, repo).await?;
        if held.is_some_and(|held| held >= need) {
            Ok(())
        } else {
            Err(principal.refusal())
        }
    }

    /// Links (or relinks) a git repository; the answer carries the webhook secret, and
    /// the deploy key's public half when one was generated: neither is shown again.
    pub async fn set_source(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        git_url: &str,
        credential: CredentialInput,
        poll: Option<Duration>,
    ) -> Result<SourceView> {
        self.require(acting.principal, repo, Permission::Admin)
            .await?;
        let url = validate_git_url(git_url)?;
        if poll.is_some_and(|poll| poll < MIN_POLL) {
            return Err(Error::Invalid(format!(
                "a source is polled at most every {} s",
                MIN_POLL.as_secs()
            )));
        }
        let poll_seconds = poll.map(|p| p.as_secs().min(i64::MAX as u64) as i64);
        let (kind, sealed, public_key) = match credential {
            CredentialInput::None => (CredentialKind::None, None, None),
            CredentialInput::Token(token) => {
                let token = token.trim();
                if token.is_empty() || token.len() > 4096 || token.contains(['\n', '\r']) {
                    return Err(Error::Invalid(
                        "the token must be one line of at most 4096 characters".into(),
                    ));
                }
                if !matches!(url.scheme(), "https" | "http") {
                    return Err(Error::Invalid(
                        "a token is sent over https://; for ssh:// use a deploy key".into(),
                    ));
                }
                (CredentialKind::Token, Some(self.seal.seal(token)), None)
            }
            CredentialInput::DeployKey => {
                if url.scheme() != "ssh" {
                    return Err(Error::Invalid(
                        "a deploy key is for ssh:// URLs; for https:// give a token".into(),
                    ));
                }
                let key = deploy_key::generate(&format!("berth-build {repo}"));
                (
                    CredentialKind::DeployKey,
                    Some(self.seal.seal(&key.private)),
                    Some(key.public),
                )
            }
        };
        let hook_secret = random_hex(32)?;
        let created_by = acting.principal.user_id().unwrap_or(0);
        let stored = StoredSource {
            repository: repo.to_string(),
            git_url: url.to_string(),
            credential_kind: kind,
            sealed_credential: sealed,
            public_key: public_key.clone(),
            sealed_hook_secret: self.seal.seal(&hook_secret),
            created_by,
            updated_at: self.now(),
            poll_seconds,
            polled_refs: None,
            polled_at: None,
        };
        self.store.put_build_source(&stored).await?;
        self.audit
            .record_by(
                acting,
                "build.source.set",
                repo.as_str(),
                serde_json::json!({"git_url": stored.git_url, "credential": kind.as_str()}),
            )
            .await;
        Ok(SourceView {
            repository: stored.repository,
            git_url: stored.git_url,
            credential: kind,
            public_key,
            hook_secret: Some(hook_secret),
            updated_at: stored.updated_at,
            poll_seconds,
            polled_at: None,
        })
    }

    /// The source, without secrets.
    pub async fn source(&self, principal: &Principal, repo: &RepoName) -> Result<SourceView> {
        self.require(principal, repo, Permission::Admin).await?;
        let stored = self.stored_source(repo).await?;
        Ok(SourceView {
            repository: stored.repository,
            git_url: stored.git_url,
            credential: stored.credential_kind,
            public_key: stored.public_key,
            hook_secret: None,
            updated_at: stored.updated_at,
            poll_seconds: stored.poll_seconds,
            polled_at: stored.polled_at,
        })
    }

    async fn stored_source(&self, repo: &RepoName) -> Result<StoredSource> {
        self.store
            .build_source(repo.as_str())
            .await?
            .ok_or_else(|| {
                Error::BuildUnknown(format!(
                    "{repo} has no build source: link one with `berth build source set`"
                ))
            })
    }

    /// Unlinks the source and removes its rules (builds are kept).
    pub async fn delete_source(&self, acting: &Acting<'_>, repo: &RepoName) -> Result<bool> {
        self.require(acting.principal, repo, Permission::Admin)
            .await?;
        let deleted = self.store.delete_build_source(repo.as_str()).await?;
        if deleted {
            self.audit
                .record_by(
                    acting,
                    "build.source.delete",
                    repo.as_str(),
                    serde_json::Value::Null,
                )
                .await;
        }
        Ok(deleted)
    }

    pub async fn add_rule(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        spec: RuleSpec,
    ) -> Result<BuildRule> {
        self.require(acting.principal, repo, Permission::Admin)
            .await?;
        spec.validate()?;
        self.stored_source(repo).await?;
        let rule = self
            .store
            .add_build_rule(repo.as_str(), &spec, MAX_RULES)
            .await?
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "{repo} has {MAX_RULES} build rules, the most a repository may have"
                ))
            })?;
        self.audit
            .record_by(acting, "build.rule.add", repo.as_str(), data_of(&rule))
            .await;
        Ok(rule)
    }

    pub async fn rules(&self, principal: &Principal, repo: &RepoName) -> Result<Vec<BuildRule>> {
        self.require(principal, repo, Permission::Read).await?;
        Ok(self.store.build_rules(repo.as_str()).await?)
    }

    pub async fn delete_rule(&self, acting: &Acting<'_>, repo: &RepoName, id: i64) -> Result<bool> {
        self.require(acting.principal, repo, Permission::Admin)
            .await?;
        let deleted = self.store.delete_build_rule(repo.as_str(), id).await?;
        if deleted {
            self.audit
                .record_by(
                    acting,
                    "build.rule.delete",
                    repo.as_str(),
                    serde_json::json!({"id": id}),
                )
                .await;
        }
        Ok(deleted)
    }

    /// A build by hand: of `git_ref` (`main`, `refs/tags/v1`) by every rule matching it,
    /// or, without a ref, of each rule's own branch or tag.
    pub async fn trigger(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        git_ref: Option<&str>,
    ) -> Result<Vec<BuildRecord>> {
        self.require(acting.principal, repo, Permission::Write)
            .await?;
        self.stored_source(repo).await?;
        let rules = self.store.build_rules(repo.as_str()).await?;
        if rules.is_empty() {
            return Err(Error::Invalid(format!(
                "{repo} has no build rules: add one with `berth build rule add`"
            )));
        }
        let refs = match git_ref {
            Some(git_ref) => vec![PushedRef::parse(git_ref.trim(), None)?],
            None => {
                let refs = rules::default_refs(&rules);
                if refs.is_empty() {
                    return Err(Error::Invalid(
                        "every rule's source is a regular expression: name a ref to build".into(),
                    ));
                }
                refs
            }
        };
        let planned = rules::plan(&rules, &refs, false);
        if planned.is_empty() {
            return Err(Error::Invalid(format!(
                "no build rule of {repo} matches {}",
                refs.iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        let builds = self.queue(repo, planned, "manual").await?;
        self.audit
            .record_by(
                acting,
                "build.trigger",
                repo.as_str(),
                serde_json::json!({"builds": builds.iter().map(|b| b.id).collect::<Vec<_>>()}),
            )
            .await;
        Ok(builds)
    }

    /// A push webhook: checked against the source's secret (a wrong or missing one is
    /// `Unauthorized`, and nothing is built), then every autobuild rule matching a pushed
    /// ref is queued once.
    pub async fn receive_hook(
        &self,
        repo: &RepoName,
        provider: Provider,
        request: &HookRequest<'_>,
    ) -> Result<Vec<BuildRecord>> {
        // An unknown repository and a wrong signature are answered alike.
        let Some(source) = self.store.build_source(repo.as_str()).await? else {
            return Err(Error::Unauthorized);
        };
        let secret = self
            .seal
            .open(&source.sealed_hook_secret)
            .ok_or_else(|| Error::Internal("the build hook secret does not open".into()))?;
        if !hooks::verify(provider, &secret, request) {
            return Err(Error::Unauthorized);
        }
        let mut refs = hooks::pushed_refs(provider, request)?;
        let rules = self.store.build_rules(repo.as_str()).await?;
        if provider == Provider::Generic && refs.is_empty() {
            refs = rules::default_refs(&rules);
        }
        let planned = rules::plan(&rules, &refs, true);
        let builds = self.queue(repo, planned, provider.as_str()).await?;
        if !builds.is_empty() {
            self.audit
                .record(
                    &format!("hook/{}", provider.as_str()),
                    None,
                    "build.trigger",
                    repo.as_str(),
                    serde_json::json!({"builds": builds.iter().map(|b| b.id).collect::<Vec<_>>()}),
                )
                .await;
        }
        Ok(builds)
    }

    pub(crate) async fn queue(
        &self,
        repo: &RepoName,
        planned: Vec<rules::PlannedBuild>,
        trigger: &str,
    ) -> Result<Vec<BuildRecord>> {
        let now_ms = self.clock.now_ms();
        let mut builds = Vec::new();
        for plan in planned {
            let build = NewBuild {
                repository: repo.to_string(),
                rule_id: Some(plan.rule.id),
                ref_kind: plan.kind,
                ref_name: plan.name,
                commit: plan.commit,
                tags: plan.tags,
                dockerfile: plan.rule.spec.dockerfile,
                context: plan.rule.spec.context,
                build_args: plan.rule.spec.build_args,
                platforms: plan.rule.spec.platforms,
                trigger: trigger.to_owned(),
                reason: plan.error,
                created_at: now_ms / 1000,
            };
            let job = NewJob {
                kind: BUILD_JOB.to_owned(),
                payload: String::new(),
                due_at_ms: now_ms,
                // A build is not retried: its failure is its result. The second attempt
                // only covers a lease that ran out (the run finds the build started).
                max_attempts: 2,
                unique_key: None,
            };
            builds.push(self.store.queue_build(&build, &job).await?);
        }
        self.wake.wake();
        Ok(builds)
    }

    pub async fn list(
        &self,
        principal: &Principal,
        repo: &RepoName,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<BuildRecord>> {
        self.require(principal, repo, Permission::Read).await?;
        Ok(self
            .store
            .builds_of(repo.as_str(), before, limit.clamp(1, MAX_BUILD_PAGE))
            .await?)
    }

    /// One build with its log (the log of a running build as far as it got).
    pub async fn get(&self, principal: &Principal, id: i64) -> Result<BuildRecord> {
        let build = self
            .store
            .build(id)
            .await?
            .ok_or_else(|| Error::BuildUnknown(format!("build {id} is not known")))?;
        let repo: RepoName = build
            .repository
            .parse()
            .map_err(|_| Error::Internal("a stored build names an invalid repository".into()))?;
        // Said the same whether it does not exist or cannot be seen.
        self.require(principal, &repo, Permission::Read)
            .await
            .map_err(|_| Error::BuildUnknown(format!("build {id} is not known")))?;
        Ok(build)
    }

    /// Cancels a queued build at once and stops a running one (its process group is
    /// killed within a second or two); a finished build is left as it is.
    pub async fn cancel(&self, acting: &Acting<'_>, id: i64) -> Result<BuildRecord> {
        let build = self.get(acting.principal, id).await?;
        let repo: RepoName = build
            .repository
            .parse()
            .map_err(|_| Error::Internal("a stored build names an invalid repository".into()))?;
        self.require(acting.principal, &repo, Permission::Write)
            .await?;
        if build.status.is_final() {
            return Err(Error::Invalid(format!(
                "build {id} is already {}",
                build.status.as_str()
            )));
        }
        let status = self.store.cancel_build(id, self.now()).await?;
        if status == Some(BuildStatus::Queued) {
            let reason = format!("cancelled by {}", acting.principal.name());
            self.finish(
                &build,
                BuildStatus::Cancelled,
                None,
                Some(&reason),
                &build.log,
            )
            .await?;
        }
        self.audit
            .record_by(
                acting,
                "build.cancel",
                &build.repository,
                serde_json::json!({"id": id}),
            )
            .await;
        self.get(acting.principal, id).await
    }

    /// The repository's latest finished build's status, for the badge: None without one.
    /// Public repositories only show theirs to everyone; private ones to their readers.
    pub async fn badge_status(
        &self,
        principal: &Principal,
        repo: &RepoName,
    ) -> Result<Option<BuildStatus>> {
        self.require(principal, repo, Permission::Read).await?;
        Ok(self
            .store
            .last_finished_build(repo.as_str())
            .await?
            .map(|b| b.status))
    }

    pub(crate) async fn finish(
        &self,
        build: &BuildRecord,
        status: BuildStatus,
        digest: Option<&str>,
        reason: Option<&str>,
        log: &str,
    ) -> Result<bool> {
        let event = completed_event(build, status, digest, reason);
        Ok(self
            .store
            .finish_build(build.id, status, digest, reason, log, self.now(), &event)
            .await?)
    }

    /// Fails the builds marked running whose runner is gone: its process died (a stop, a
    /// crash, a node killed), which frees the build's lock, so a build another live node
    /// runs is left alone. Each start runs it, and the recurring poll after it, so a dead
    /// node's builds are failed by whichever node looks next, which revokes their registry
    /// tokens in the same transaction. A build's tags move only when its push's manifest
    /// commits, so none is left half-pushed; its half-done scratch is removed (and its
    /// programs killed) when it is on this machine.
    pub async fn fail_interrupted(&self) -> Result<Vec<i64>> {
        let mut orphans = Vec::new();
        let mut holds = Vec::new();
        for id in self.store.running_builds().await? {
            if let Some(hold) = self.locks.try_hold(&build_lock(id)).await? {
                orphans.push(id);
                holds.push(hold);
            }
        }
        if orphans.is_empty() {
            return Ok(orphans);
        }
        const REASON: &str = "the server stopped during the build; trigger it again";
        // Each failed build is announced like any other that ends, so a webhook waiting
        // for its `build.completed` is not left waiting.
        let mut announced = Vec::with_capacity(orphans.len());
        for id in orphans {
            if let Some(build) = self.store.build(id).await? {
                let event = completed_event(&build, BuildStatus::Failed, None, Some(REASON));
                announced.push((id, event));
            }
        }
        let failed = self
            .store
            .fail_interrupted_builds(&announced, REASON, self.now())
            .await?;
        drop(holds);
        for id in &failed {
            let work = self.settings.work_dir.join(format!("build-{id}"));
            // The programs of the build outlived the server (they run in their own process
            // group): stop them. (The store revoked the build's tokens as it failed it, so a
            // build that was running on another machine, out of reach here, holds none.)
            if let Some(pgid) = std::fs::read_to_string(work.join(runner::PGID_FILE))
                .ok()
                .and_then(|text| text.trim().parse::<u32>().ok())
                .filter(|pgid| *pgid > 1)
            {
                // Only if that group is still one of ours (a reboot may have reused the id).
                let cmdline = std::fs::read(format!("/proc/{pgid}/cmdline")).unwrap_or_default();
                let ours = [&self.settings.buildah, &self.settings.git]
                    .iter()
                    .any(|program| {
                        let name = std::path::Path::new(program.as_str())
                            .file_name()
                            .map(|n| n.to_string_lossy().into_owned())
                            .unwrap_or_default();
                        !name.is_empty()
                            && cmdline.windows(name.len()).any(|w| w == name.as_bytes())
                    });
                if ours {
                    runner::kill_group(pgid);
                }
            }
            let _ = std::fs::remove_dir_all(work);
        }
        Ok(failed)
    }
}

/// `bytes` random bytes in hex: the webhook secret.
fn random_hex(bytes: usize) -> Result<String> {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).map_err(|e| Error::internal("randomness", e))?;
    Ok(hex::encode(buf))
}

/// A status badge (SVG) for `status`: what a README embeds.
pub fn badge_svg(status: Option<BuildStatus>) -> String {
    let (text, color) = match status {
        Some(BuildStatus::Succeeded) => ("passing", "#4c1"),
        Some(BuildStatus::Failed) => ("failing", "#e05d44"),
        Some(BuildStatus::Cancelled) => ("cancelled", "#9f9f9f"),
        Some(BuildStatus::Running) => ("running", "#dfb317"),
        Some(BuildStatus::Queued) => ("queued", "#dfb317"),
        None => ("none", "#9f9f9f"),
    };
    let right = 10 + 7 * text.len();
    let width = 40 + right;
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" aria-label="build: {text}"><title>build: {text}</title><rect width="40" height="20" fill="#555"/><rect x="40" width="{right}" height="20" fill="{color}"/><g fill="#fff" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11" text-anchor="middle"><text x="20" y="14">build</text><text x="{}" y="14">{text}</text></g></svg>"##,
        40 + right / 2
    )
}

/// The `build.completed` event of `build` ending with `status`.
fn completed_event(
    build: &BuildRecord,
    status: BuildStatus,
    digest: Option<&str>,
    reason: Option<&str>,
) -> NewEvent {
    let data = BuildCompletedData {
        build_id: build.id,
        status,
        git_ref: build.ref_kind.full_ref(&build.ref_name),
        commit: build.commit.clone(),
        tags: build.tags.clone(),
        digest: digest.map(str::to_owned),
        reason: reason.map(str::to_owned),
    };
    NewEvent::about(
        EventKind::BuildCompleted,
        &build.repository,
        None,
        data_of(&data),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_are_checked() {
        for good in [
            "https://github.com/acme/app.git",
            "ssh://git@github.com/acme/app.git",
            "file:///srv/git/app.git",
            "http://127.0.0.1:3000/acme/app.git",
        ] {
            validate_git_url(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for (bad, why) in [
            ("ftp://x/y", "must start with"),
            ("https://user:pw@github.com/a.git", "carries credentials"),
            ("-uhttps://x", "spaces or control"),
            ("https://x/a b", "spaces or control"),
            ("file:///", "names no path"),
            ("not a url", "spaces"),
            ("git@github.com:acme/app.git", "is not a URL"),
        ] {
            let err = validate_git_url(bad).unwrap_err().to_string();
            assert!(err.contains(why), "{bad}: {err}");
        }
    }

    #[test]
    fn statuses_round_trip_and_badges_name_them() {
        for status in BuildStatus::ALL {
            assert_eq!(BuildStatus::parse(status.as_str()), Some(status));
        }
        assert!(badge_svg(Some(BuildStatus::Succeeded)).contains("passing"));
        assert!(badge_svg(Some(BuildStatus::Failed)).contains("failing"));
        assert!(badge_svg(None).starts_with("<svg"));
    }
}
