//! The signatures service: managing trusted keys and pull policies (Admin on the target, as for
//! the other repository settings; audited, with events), the pull check with its cached
//! policies, and the jobs that keep each image's signature state current (a feed that turns
//! pushed and deleted signatures into verify jobs, and a re-verify job when keys change).

use super::keys::PublicKey;
use super::policy::{evaluate, PolicyFacts, PullPolicy, Refusal};
use super::verify::check_image;
use super::{ImageSignature, SignatureState};
use crate::access::Authorizer;
use crate::audit::Audit;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::events::{EventKind, ManifestDeletedData, ManifestPushedData, NewEvent, TagDeletedData};
use crate::identity::Acting;
use crate::jobs::{JobError, JobFeed, JobHandler, JobOutcome, Wake};
use crate::lifecycle::Target;
use crate::ports::{
    ClaimedJob, ManifestRecord, MetaError, MetaStore, NewJob, StoredPullPolicy, TrustedKeyRecord,
};
use crate::Registry;
use berth_oci::signature::{
    cosign_tag_subject, is_supply_chain_artifact, signature_form_of_artifact, CosignTagKind,
};
use berth_oci::{Digest, ManifestKind, ParsedManifest, Reference, RepoName};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, RwLock};

/// Works out one image's signature state (payload: `{"repository", "digest"}`).
pub const VERIFY_JOB: &str = "signatures.verify";
/// Works out again the state of every signed image of a target whose keys changed (payload:
/// `{"scope", "target"}`).
pub const REVERIFY_JOB: &str = "signatures.reverify";
/// The event cursor of the signature feed.
const FEED_CURSOR: &str = "signatures";
/// How long a node serves pulls from its copy of the pull policies before reading them again
/// (changes made through this node apply at once; those of another node or the CLI within this).
const POLICY_REFRESH_MS: i64 = 2_000;
/// Most trusted keys one target holds.
pub const MAX_KEYS_PER_TARGET: usize = 50;

/// A trusted key as the API, the CLI and the UI show it (the PEM included: it is public).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TrustedKeyView {
    pub name: String,
    pub scope: String,
    pub target: String,
    pub algorithm: String,
    pub fingerprint: String,
    pub public_key: String,
    pub added_by: String,
    pub added_at: i64,
}

impl From<TrustedKeyRecord> for TrustedKeyView {
    fn from(record: TrustedKeyRecord) -> TrustedKeyView {
        TrustedKeyView {
            name: record.name,
            scope: record.target.scope().to_owned(),
            target: record.target.name().to_owned(),
            algorithm: record.algorithm,
            fingerprint: record.fingerprint,
            public_key: record.pem,
            added_by: record.added_by,
            added_at: record.added_at,
        }
    }
}

/// This node's copy of every pull policy: repositories' and namespaces' apart, so a pull
/// looks its own up by `&str` without allocating, and skips everything when both are empty.
#[derive(Default)]
struct PolicySnapshot {
    repositories: HashMap<String, PullPolicy>,
    namespaces: HashMap<String, PullPolicy>,
}

struct PolicyCache {
    snapshot: RwLock<Arc<PolicySnapshot>>,
    /// Whether the snapshot holds any policy: what the pull path reads first, a plain load
    /// (no lock, no reference count) when no policy is set anywhere.
    any: AtomicBool,
    loaded_at_ms: AtomicI64,
    refreshing: AtomicBool,
}

impl PolicyCache {
    fn current(&self) -> Arc<PolicySnapshot> {
        match self.snapshot.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn replace(&self, policies: Vec<StoredPullPolicy>, now_ms: i64) {
        let mut snapshot = PolicySnapshot::default();
        for stored in policies {
            match stored.target {
                Target::Repository(repo) => {
                    snapshot
                        .repositories
                        .insert(repo.to_string(), stored.policy);
                }
                Target::Namespace(ns) => {
                    snapshot.namespaces.insert(ns, stored.policy);
                }
            }
        }
        let any = !(snapshot.repositories.is_empty() && snapshot.namespaces.is_empty());
        let snapshot = Arc::new(snapshot);
        match self.snapshot.write() {
            Ok(mut guard) => *guard = snapshot,
            Err(poisoned) => *poisoned.into_inner() = snapshot,
        }
        self.any.store(any, Ordering::Release);
        self.loaded_at_ms.store(now_ms, Ordering::Release);
    }
}

#[derive(Clone)]
pub struct Signatures {
    store: Arc<dyn MetaStore>,
    registry: Registry,
    authorizer: Arc<dyn Authorizer>,
    audit: Audit,
    clock: Arc<dyn Clock>,
    wake: Wake,
    policies: Arc<PolicyCache>,
}

impl Signatures {
    /// Builds the service and reads the pull policies once.
    pub async fn new(
        store: Arc<dyn MetaStore>,
        registry: Registry,
        authorizer: Arc<dyn Authorizer>,
        clock: Arc<dyn Clock>,
        wake: Wake,
    ) -> Result<Signatures> {
        let policies = Arc::new(PolicyCache {
            snapshot: RwLock::new(Arc::new(PolicySnapshot::default())),
            any: AtomicBool::new(false),
            loaded_at_ms: AtomicI64::new(0),
            refreshing: AtomicBool::new(false),
        });
        policies.replace(store.pull_policies().await?, clock.now_ms());
        Ok(Signatures {
            audit: Audit::over(store.clone()),
            store,
            registry,
            authorizer,
            clock,
            wake,
            policies,
        })
    }

    async fn require_admin(&self, acting: &Acting<'_>, target: &Target) -> Result<()> {
        crate::webhooks::require_admin_of(
            &*self.store,
            &*self.authorizer,
            acting,
            &target.as_webhook_target(),
        )
        .await
    }

    fn event(
        &self,
        kind: EventKind,
        target: &Target,
        actor: &str,
        data: serde_json::Value,
    ) -> NewEvent {
        NewEvent {
            kind,
            namespace: target.namespace().to_owned(),
            repository: match target {
                Target::Repository(repo) => Some(repo.to_string()),
                Target::Namespace(_) => None,
            },
            actor: Some(actor.to_owned()),
            data,
        }
    }

    /// The target's own trusted keys.
    pub async fn keys(&self, acting: &Acting<'_>, target: &Target) -> Result<Vec<TrustedKeyView>> {
        self.require_admin(acting, target).await?;
        Ok(self
            .store
            .trusted_keys(target)
            .await?
            .into_iter()
            .map(TrustedKeyView::from)
            .collect())
    }

    /// Trusts a public key (PEM) under a name; the target's signed images are checked again.
    pub async fn add_key(
        &self,
        acting: &Acting<'_>,
        target: &Target,
        name: &str,
        pem: &str,
    ) -> Result<TrustedKeyView> {
        self.require_admin(acting, target).await?;
        let name = check_key_name(name).map_err(Error::Invalid)?;
        let key = PublicKey::from_pem(pem).map_err(Error::Invalid)?;
        if self.store.trusted_keys(target).await?.len() >= MAX_KEYS_PER_TARGET {
            return Err(Error::Invalid(format!(
                "{target} already trusts {MAX_KEYS_PER_TARGET} keys, the most one target may; remove one first"
            )));
        }
        let record = TrustedKeyRecord {
            target: target.clone(),
            name: name.clone(),
            algorithm: key.algorithm.as_str().to_owned(),
            pem: key.to_pem(),
            fingerprint: key.fingerprint(),
            added_by: acting.actor_name(),
            added_at: self.clock.now_unix(),
        };
        let data = serde_json::json!({
            "change": "added", "scope": target.scope(), "target": target.name(), "key": name,
            "algorithm": record.algorithm, "fingerprint": record.fingerprint,
        });
        let event = self.event(EventKind::TrustChanged, target, &record.added_by, data);
        self.store
            .add_trusted_key(&record, event)
            .await
            .map_err(|e| match e {
                MetaError::Conflict(_) => Error::Conflict(format!(
                    "{target} already trusts a key named {name:?}; remove it first to replace it"
                )),
                other => other.into(),
            })?;
        let detail = serde_json::json!({
            "key": name, "algorithm": record.algorithm, "fingerprint": record.fingerprint,
        });
        self.audit
            .record_for_target(acting, "trust.add", target, detail)
            .await;
        self.queue_reverify(target).await?;
        Ok(record.into())
    }

    /// Stops trusting a key; false when the target has none of that name.
    pub async fn remove_key(
        &self,
        acting: &Acting<'_>,
        target: &Target,
        name: &str,
    ) -> Result<bool> {
        self.require_admin(acting, target).await?;
        let data = serde_json::json!({
            "change": "removed", "scope": target.scope(), "target": target.name(), "key": name,
        });
        let event = self.event(EventKind::TrustChanged, target, &acting.actor_name(), data);
        let removed = self.store.remove_trusted_key(target, name, event).await?;
        if removed {
            self.audit
                .record_for_target(
                    acting,
                    "trust.remove",
                    target,
                    serde_json::json!({ "key": name }),
                )
                .await;
            self.queue_reverify(target).await?;
        }
        Ok(removed)
    }

    async fn queue_reverify(&self, target: &Target) -> Result<()> {
        let job = NewJob {
            kind: REVERIFY_JOB.to_owned(),
            payload: serde_json::json!({ "scope": target.scope(), "target": target.name() })
                .to_string(),
            due_at_ms: self.clock.now_ms(),
            max_attempts: 5,
            unique_key: None,
        };
        self.store.enqueue_job(&job).await?;
        self.wake.wake();
        Ok(())
    }

    pub async fn pull_policy(
        &self,
        acting: &Acting<'_>,
        target: &Target,
    ) -> Result<Option<StoredPullPolicy>> {
        self.require_admin(acting, target).await?;
        Ok(self
            .store
            .pull_policies()
            .await?
            .into_iter()
            .find(|p| &p.target == target))
    }

    /// Sets (replaces) the target's pull policy.
    pub async fn set_pull_policy(
        &self,
        acting: &Acting<'_>,
        target: &Target,
        policy: PullPolicy,
    ) -> Result<StoredPullPolicy> {
        self.require_admin(acting, target).await?;
        if policy.is_empty() {
            return Err(Error::Invalid(
                "the policy asks for nothing: require a signature or block a severity (or clear the policy)"
                    .to_owned(),
            ));
        }
        let stored = StoredPullPolicy {
            target: target.clone(),
            policy,
            updated_by: acting.actor_name(),
            updated_at: self.clock.now_unix(),
        };
        let data = serde_json::json!({
            "change": "set", "scope": target.scope(), "target": target.name(),
            "policy": policy, "description": policy.describe(),
        });
        let event = self.event(
            EventKind::PullPolicyChanged,
            target,
            &stored.updated_by,
            data,
        );
        self.store.set_pull_policy(&stored, event).await?;
        self.reload_policies().await?;
        let detail = serde_json::json!({ "policy": policy.describe() });
        self.audit
            .record_for_target(acting, "policy.set", target, detail)
            .await;
        Ok(stored)
    }

    pub async fn clear_pull_policy(&self, acting: &Acting<'_>, target: &Target) -> Result<bool> {
        self.require_admin(acting, target).await?;
        let data = serde_json::json!({
            "change": "cleared", "scope": target.scope(), "target": target.name(),
        });
        let event = self.event(
            EventKind::PullPolicyChanged,
            target,
            &acting.actor_name(),
            data,
        );
        let cleared = self.store.clear_pull_policy(target, event).await?;
        self.reload_policies().await?;
        if cleared {
            self.audit
                .record_for_target(acting, "policy.clear", target, serde_json::json!({}))
                .await;
        }
        Ok(cleared)
    }

    async fn reload_policies(&self) -> Result<()> {
        let policies = self.store.pull_policies().await?;
        self.policies.replace(policies, self.clock.now_ms());
        Ok(())
    }

    /// This node's copy of the policies (`None`: there are none), read again in the
    /// background once it is older than [`POLICY_REFRESH_MS`] (the pull that notices waits
    /// for nothing).
    fn cached_policies(&self) -> Option<Arc<PolicySnapshot>> {
        let now = self.clock.now_ms();
        let stale = now - self.policies.loaded_at_ms.load(Ordering::Acquire) > POLICY_REFRESH_MS;
        if stale
            && self
                .policies
                .refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                .is_ok()
        {
            let store = self.store.clone();
            let cache = self.policies.clone();
            let clock = self.clock.clone();
            tokio::spawn(async move {
                match store.pull_policies().await {
                    Ok(policies) => cache.replace(policies, clock.now_ms()),
                    Err(err) => {
                        tracing::warn!(error = %err, "pull policies could not be read again")
                    }
                }
                cache.refreshing.store(false, Ordering::Release);
            });
        }
        if self.policies.any.load(Ordering::Acquire) {
            Some(self.policies.current())
        } else {
            None
        }
    }

    /// Why a pull of `manifest` from `repo` is refused by a pull policy, if it is. With no
    /// policy anywhere this is two atomic loads and a clock read; facts are read only when a
    /// policy applies. Supply-chain artifacts themselves (signatures, attestations, SBOMs)
    /// always pass, so signing and copying keep working. Site admins are exempted by the
    /// caller, which knows who is asking.
    pub async fn pull_refusal(
        &self,
        repo: &RepoName,
        reference: &Reference,
        manifest: &ManifestRecord,
    ) -> Result<Option<Refusal>> {
        let Some(snapshot) = self.cached_policies() else {
            return Ok(None);
        };
        let mut applying: Vec<(Target, PullPolicy)> = Vec::new();
        if let Some(policy) = snapshot.repositories.get(repo.as_str()) {
            applying.push((Target::Repository(repo.clone()), *policy));
        }
        if let Some(ns) = repo.namespace() {
            if let Some(policy) = snapshot.namespaces.get(ns) {
                applying.push((Target::Namespace(ns.to_owned()), *policy));
            }
        }
        if applying.is_empty() {
            return Ok(None);
        }
        // Stored manifests were validated on push; one that no longer parses is refused by
        // no rule about its content but still by the signature rule.
        let parsed = ParsedManifest::parse(Some(&manifest.media_type), &manifest.body).ok();
        let tag = match reference {
            Reference::Tag(tag) => Some(tag.as_str()),
            Reference::Digest(_) => None,
        };
        if parsed
            .as_ref()
            .is_some_and(|p| is_supply_chain_artifact(p, tag))
        {
            return Ok(None);
        }
        let signature = if applying.iter().any(|(_, p)| p.require_signature) {
            if self.store.verified_in(repo, &manifest.digest).await? {
                SignatureState::Verified
            } else {
                self.store
                    .signature_states(repo, std::slice::from_ref(&manifest.digest))
                    .await?
                    .into_iter()
                    .next()
                    .map_or(SignatureState::Unsigned, |(_, s)| s.state)
            }
        } else {
            SignatureState::Unsigned
        };
        let scans = if applying.iter().any(|(_, p)| p.block_severity.is_some()) {
            let images: Vec<Digest> = match &parsed {
                Some(p) if p.kind == ManifestKind::Index => {
                    p.manifests.iter().map(|d| d.digest.clone()).collect()
                }
                _ => vec![manifest.digest.clone()],
            };
            let names: Vec<String> = images.iter().map(Digest::to_string).collect();
            let found = self.store.vulnerability_summaries(&names).await?;
            images
                .into_iter()
                .zip(&names)
                .map(|(d, name)| (d, found.get(name).copied()))
                .collect()
        } else {
            Vec::new()
        };
        let facts = PolicyFacts {
            digest: manifest.digest.clone(),
            signature,
            scans,
        };
        for (target, policy) in &applying {
            if let Err(refusal) = evaluate(target, policy, &facts) {
                return Ok(Some(refusal));
            }
        }
        Ok(None)
    }

    /// Works out the state of one image again and stores it (with a `signature.changed`
    /// event when it changed).
    pub async fn verify_image(&self, repo: &RepoName, digest: &Digest) -> Result<ImageSignature> {
        let check = check_image(&self.registry, &*self.store, repo, digest).await?;
        if !check.problems.is_empty() {
            tracing::info!(
                repository = %repo, %digest, state = check.signature.state.as_str(),
                problems = ?check.problems, "signature check"
            );
        }
        let data = serde_json::json!({
            "digest": digest.to_string(),
            "state": check.signature.state,
            "keys": check.signature.keys,
        });
        let event = NewEvent::about(EventKind::SignatureChanged, repo.as_str(), None, data);
        let changed = self
            .store
            .record_signature_state(repo, digest, &check.signature, self.clock.now_unix(), event)
            .await?;
        if changed {
            self.wake.wake();
        }
        Ok(check.signature)
    }

    /// Checks every signed image of the target again (its keys changed).
    pub async fn reverify(&self, target: &Target) -> Result<usize> {
        let images = self.store.signed_images(target).await?;
        for (repo, digest) in &images {
            self.verify_image(repo, digest).await?;
        }
        Ok(images.len())
    }

    /// The stored states of these digests of `repo` (unsigned when none is stored).
    pub async fn states(
        &self,
        repo: &RepoName,
        digests: &[Digest],
    ) -> Result<HashMap<Digest, ImageSignature>> {
        Ok(self
            .store
            .signature_states(repo, digests)
            .await?
            .into_iter()
            .collect())
    }
}

/// Key names: 1–64 characters of letters, digits, `-`, `_`, `.`.
fn check_key_name(name: &str) -> std::result::Result<String, String> {
    let name = name.trim();
    let valid = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "invalid key name {:?}: 1 to 64 letters, digits, '-', '_' or '.'",
            name.chars().take(70).collect::<String>()
        ))
    }
}

/// Runs [`VERIFY_JOB`] and [`REVERIFY_JOB`].
pub struct VerifySignatures(pub Signatures);

fn payload_of(job: &ClaimedJob) -> std::result::Result<serde_json::Value, JobError> {
    serde_json::from_str(&job.payload)
        .map_err(|e| JobError::Permanent(format!("broken payload: {e}")))
}

#[async_trait::async_trait]
impl JobHandler for VerifySignatures {
    async fn run(&self, job: &ClaimedJob) -> std::result::Result<JobOutcome, JobError> {
        let payload = payload_of(job)?;
        let field = |name: &str| {
            payload
                .get(name)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
        };
        let outcome = if job.kind == REVERIFY_JOB {
            let target = Target::from_stored(field("scope"), field("target"))
                .ok_or_else(|| JobError::Permanent("the payload names no target".to_owned()))?;
            self.0.reverify(&target).await.map(|_| ())
        } else {
            let repo: RepoName = field("repository")
                .parse()
                .map_err(|_| JobError::Permanent("the payload names no repository".to_owned()))?;
            let digest: Digest = field("digest")
                .parse()
                .map_err(|_| JobError::Permanent("the payload names no digest".to_owned()))?;
            self.0.verify_image(&repo, &digest).await.map(|_| ())
        };
        match outcome {
            Ok(()) => Ok(JobOutcome::Done),
            Err(Error::NameUnknown(_)) => Ok(JobOutcome::Done),
            Err(other) => Err(JobError::Retry(other.to_string())),
        }
    }
}

/// Hands pushed and deleted signatures on as [`VERIFY_JOB`]s of the images they sign, before
/// each round of claims, from its own cursor in the event log.
pub struct SignatureFeed {
    store: Arc<dyn MetaStore>,
    clock: Arc<dyn Clock>,
}

impl SignatureFeed {
    pub fn new(store: Arc<dyn MetaStore>, clock: Arc<dyn Clock>) -> SignatureFeed {
        SignatureFeed { store, clock }
    }

    /// The image a pushed manifest signs, if it is a signature.
    async fn signed_by_push(
        &self,
        repo: &RepoName,
        data: &ManifestPushedData,
    ) -> std::result::Result<Option<Digest>, MetaError> {
        if let Some(subject) = signature_tag_subject(&data.tags) {
            return Ok(Some(subject));
        }
        // Referrers are pushed by digest; a tagged image cannot be one worth reading.
        if !data.tags.is_empty() || data.media_type != "application/vnd.oci.image.manifest.v1+json"
        {
            return Ok(None);
        }
        let Ok(digest) = data.digest.parse::<Digest>() else {
            return Ok(None);
        };
        let Some(record) = self.store.manifest_by_digest(repo, &digest).await? else {
            return Ok(None);
        };
        let Ok(parsed) = ParsedManifest::parse(Some(&record.media_type), &record.body) else {
            return Ok(None);
        };
        let Some(subject) = &parsed.subject else {
            return Ok(None);
        };
        let artifact_type = parsed.effective_artifact_type().unwrap_or_default();
        Ok(
            signature_form_of_artifact(artifact_type, parsed.annotations.as_ref())
                .map(|_| subject.digest.clone()),
        )
    }
}

fn signature_tag_subject(tags: &[String]) -> Option<Digest> {
    tags.iter().find_map(|t| match cosign_tag_subject(t) {
        Some((digest, CosignTagKind::Signature)) => Some(digest),
        _ => None,
    })
}

#[async_trait::async_trait]
impl JobFeed for SignatureFeed {
    async fn feed(&self) -> std::result::Result<usize, MetaError> {
        let from = self.store.event_cursor(FEED_CURSOR).await?;
        let events = self.store.events_after(from, 500).await?;
        let Some(last) = events.last().map(|e| e.id) else {
            return Ok(0);
        };
        let mut jobs: Vec<NewJob> = Vec::new();
        for event in &events {
            let Some(repo) = event
                .repository
                .as_deref()
                .and_then(|r| r.parse::<RepoName>().ok())
            else {
                continue;
            };
            let subject = match event.kind {
                EventKind::ManifestPushed => {
                    match serde_json::from_value::<ManifestPushedData>(event.data.clone()) {
                        Ok(data) => self.signed_by_push(&repo, &data).await?,
                        Err(_) => None,
                    }
                }
                EventKind::TagDeleted => {
                    serde_json::from_value::<TagDeletedData>(event.data.clone())
                        .ok()
                        .and_then(|d| signature_tag_subject(std::slice::from_ref(&d.tag)))
                }
                EventKind::ManifestDeleted => {
                    serde_json::from_value::<ManifestDeletedData>(event.data.clone())
                        .ok()
                        .and_then(|d| signature_tag_subject(&d.tags))
                }
                _ => None,
            };
            let Some(subject) = subject else { continue };
            let payload =
                serde_json::json!({ "repository": repo.as_str(), "digest": subject.to_string() })
                    .to_string();
            if jobs.iter().any(|j| j.payload == payload) {
                continue;
            }
            jobs.push(NewJob {
                kind: VERIFY_JOB.to_owned(),
                payload,
                due_at_ms: self.clock.now_ms(),
                max_attempts: 8,
                unique_key: None,
            });
        }
        let count = jobs.len();
        if self
            .store
            .hand_on_signature_events(FEED_CURSOR, from, last, &jobs)
            .await?
        {
            Ok(count)
        } else {
            Ok(0)
        }
    }
}
