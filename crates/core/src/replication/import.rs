//! The importer of pull rules: copies tags from a remote registry into Berth byte for byte,
//! with the children of indexes, their referrers (referrers API or the `sha256-HEX` fallback
//! index) and cosign's `.sig`/`.att`/`.sbom` tags, fetching only the blobs Berth lacks. It
//! writes through the registry service, as a push does: quotas, immutable tags, digest
//! checks, and `manifest.pushed` events (so webhooks, scans and push rules see imports).

use super::copy::{describe, Tally};
use super::destination::Origin;
use super::pacing::{paced, SharedPacer};
use super::rule::fallback_tags;
use crate::mirror::{UpstreamError, UpstreamManifest};
use crate::ports::{MetaError, MetaStore};
use crate::registry::{ChangedBy, PutManifest, Registry};
use berth_oci::{Digest, ParsedManifest, Reference, RepoName, Tag};
use std::collections::HashMap;

/// How deep referrers of referrers are followed (a signature of an SBOM of an image).
const MAX_REFERRER_DEPTH: u32 = 3;

/// Why an item could not be imported.
#[derive(Debug)]
enum ImportError {
    /// The remote failed or sent something unusable.
    Source(String),
    /// Berth refused it (a quota, an immutable tag, a bad manifest) or its store failed.
    Here(String),
}

impl std::fmt::Display for ImportError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImportError::Source(why) => write!(f, "source: {why}"),
            ImportError::Here(why) => write!(f, "here: {why}"),
        }
    }
}

impl From<UpstreamError> for ImportError {
    fn from(err: UpstreamError) -> ImportError {
        ImportError::Source(describe(&err))
    }
}

impl From<MetaError> for ImportError {
    fn from(err: MetaError) -> ImportError {
        ImportError::Here(err.to_string())
    }
}

impl From<crate::error::Error> for ImportError {
    fn from(err: crate::error::Error) -> ImportError {
        ImportError::Here(err.to_string())
    }
}

/// A manifest fetched from the remote and checked against its digest.
struct Fetched {
    media_type: Option<String>,
    body: Vec<u8>,
    digest: Digest,
}

/// One run's importer.
pub(super) struct Importer<'a> {
    registry: &'a Registry,
    meta: &'a dyn MetaStore,
    origin: &'a dyn Origin,
    pacer: Option<SharedPacer>,
    /// Who the imports' events and audit entries name (`replication:RULE`).
    actor: String,
    /// Blobs this run put here, with a repository holding them (to mount from).
    held: HashMap<Digest, RepoName>,
    pub tally: Tally,
}

impl<'a> Importer<'a> {
    pub fn new(
        registry: &'a Registry,
        meta: &'a dyn MetaStore,
        origin: &'a dyn Origin,
        pacer: Option<SharedPacer>,
        actor: String,
    ) -> Importer<'a> {
        Importer {
            registry,
            meta,
            origin,
            pacer,
            actor,
            held: HashMap::new(),
            tally: Tally::default(),
        }
    }

    /// Records an item that failed before any tag could be read (a listing).
    pub fn record_failure(&mut self, item: String, reason: String) {
        self.tally.record(item, "failed", Some(reason));
    }

    /// Imports `remote:tag` into `local:tag`, recording the item.
    pub async fn import_tag(&mut self, remote: &str, local: &RepoName, tag: &str) {
        let item = format!("{remote}:{tag} -> {local}:{tag}");
        match self.import_tag_inner(remote, local, tag).await {
            Ok(Some(true)) => self.tally.record(item, "copied", None),
            Ok(Some(false)) => self
                .tally
                .record(item, "skipped", Some("up to date".to_owned())),
            Ok(None) => self.tally.record(
                item,
                "skipped",
                Some("the tag is no longer at the source".to_owned()),
            ),
            Err(err) => self.tally.record(item, "failed", Some(err.to_string())),
        }
    }

    /// Some(true) when something was imported, Some(false) when all was here already, None
    /// when the remote no longer has the tag.
    async fn import_tag_inner(
        &mut self,
        remote: &str,
        local: &RepoName,
        tag: &str,
    ) -> Result<Option<bool>, ImportError> {
        let name: Tag = tag
            .parse()
            .map_err(|_| ImportError::Source(format!("{tag:?} is not a valid tag")))?;
        // A `HEAD` first: an unchanged tag costs no `GET` (which Docker Hub counts).
        let Some(remote_digest) = self.origin.head_manifest(remote, tag).await? else {
            return Ok(None);
        };
        let here = self
            .meta
            .manifest_by_tag(local, tag)
            .await?
            .map(|r| r.digest);
        let mut changed = false;
        let digest = if here.as_ref() == Some(&remote_digest) {
            remote_digest
        } else {
            let Some(fetched) = self.fetch(remote, tag, None).await? else {
                return Ok(None);
            };
            self.import_contents(remote, local, &fetched).await?;
            self.put(local, Reference::Tag(name), &fetched).await?;
            changed = true;
            fetched.digest
        };
        changed |= self.import_attachments(remote, local, &digest, 0).await?;
        Ok(Some(changed))
    }

    /// The manifest `reference` at the remote, its bytes checked against the digest the
    /// remote names (and the one asked for): None when the remote says 404.
    async fn fetch(
        &self,
        remote: &str,
        reference: &str,
        expected: Option<&Digest>,
    ) -> Result<Option<Fetched>, ImportError> {
        let Some(UpstreamManifest {
            media_type,
            body,
            digest: named,
        }) = self.origin.get_manifest(remote, reference).await?
        else {
            return Ok(None);
        };
        let algorithm = expected
            .or(named.as_ref())
            .map(|d| d.algorithm())
            .unwrap_or(berth_oci::digest::Algorithm::Sha256);
        let actual = Digest::of(algorithm, &body);
        for claimed in [expected, named.as_ref()].into_iter().flatten() {
            if claimed != &actual {
                return Err(ImportError::Source(format!(
                    "manifest {remote}:{reference} has digest {actual}, the remote said {claimed}"
                )));
            }
        }
        Ok(Some(Fetched {
            media_type,
            body,
            digest: actual,
        }))
    }

    /// Everything a manifest references: its blobs, and for an index its child manifests.
    async fn import_contents(
        &mut self,
        remote: &str,
        local: &RepoName,
        manifest: &Fetched,
    ) -> Result<(), ImportError> {
        let parsed = ParsedManifest::parse(manifest.media_type.as_deref(), &manifest.body)
            .map_err(|e| ImportError::Source(format!("manifest {}: {e}", manifest.digest)))?;
        for child in &parsed.manifests {
            self.import_by_digest(remote, local, &child.digest).await?;
        }
        for blob in parsed.required_blobs() {
            self.import_blob(remote, local, &blob.digest, blob.size)
                .await?;
        }
        Ok(())
    }

    /// Imports the manifest `digest` (with its contents) unless it is here; true when it
    /// was imported.
    async fn import_by_digest(
        &mut self,
        remote: &str,
        local: &RepoName,
        digest: &Digest,
    ) -> Result<bool, ImportError> {
        if self.meta.manifest_by_digest(local, digest).await?.is_some() {
            return Ok(false);
        }
        let fetched = self
            .fetch(remote, &digest.to_string(), Some(digest))
            .await?
            .ok_or_else(|| ImportError::Source(format!("manifest {digest} is not in {remote}")))?;
        Box::pin(self.import_contents(remote, local, &fetched)).await?;
        self.put(local, Reference::Digest(digest.clone()), &fetched)
            .await?;
        Ok(true)
    }

    /// Referrers of `digest` (the referrers API, or the fallback index tag where the remote
    /// has no such API) and cosign's tags, with their own referrers; true when something was
    /// imported.
    async fn import_attachments(
        &mut self,
        remote: &str,
        local: &RepoName,
        digest: &Digest,
        depth: u32,
    ) -> Result<bool, ImportError> {
        if depth > MAX_REFERRER_DEPTH {
            return Ok(false);
        }
        let mut changed = false;
        let referrers = match self.origin.referrers(remote, digest).await? {
            Some(referrers) => referrers,
            None => {
                // The fallback index itself is imported under its tag; its children are the
                // referrers.
                let index_tag = digest.to_string().replacen(':', "-", 1);
                let (imported, children) = self.import_extra_tag(remote, local, &index_tag).await?;
                changed |= imported;
                children
            }
        };
        for referrer in referrers {
            changed |= Box::pin(self.import_by_digest(remote, local, &referrer)).await?;
            changed |=
                Box::pin(self.import_attachments(remote, local, &referrer, depth + 1)).await?;
        }
        for tag in fallback_tags(digest) {
            changed |= self.import_extra_tag(remote, local, &tag).await?.0;
        }
        Ok(changed)
    }

    /// Imports a tag that travels with another manifest (`sha256-HEX.sig`, a fallback index)
    /// if the remote has it and it differs here; returns whether it was imported, and the
    /// children of the manifest it names (the referrers, for a fallback index).
    async fn import_extra_tag(
        &mut self,
        remote: &str,
        local: &RepoName,
        tag: &str,
    ) -> Result<(bool, Vec<Digest>), ImportError> {
        let Ok(name) = tag.parse::<Tag>() else {
            return Ok((false, Vec::new()));
        };
        let Some(remote_digest) = self.origin.head_manifest(remote, tag).await? else {
            return Ok((false, Vec::new()));
        };
        let here = self.meta.manifest_by_tag(local, tag).await?;
        if let Some(record) = here.filter(|r| r.digest == remote_digest) {
            let children = ParsedManifest::parse(Some(&record.media_type), &record.body)
                .map(|p| p.manifests.into_iter().map(|d| d.digest).collect())
                .unwrap_or_default();
            return Ok((false, children));
        }
        let Some(fetched) = self.fetch(remote, tag, None).await? else {
            return Ok((false, Vec::new()));
        };
        let children = ParsedManifest::parse(fetched.media_type.as_deref(), &fetched.body)
            .map(|p| p.manifests.into_iter().map(|d| d.digest).collect())
            .unwrap_or_default();
        Box::pin(self.import_contents(remote, local, &fetched)).await?;
        self.put(local, Reference::Tag(name), &fetched).await?;
        Ok((true, children))
    }

    /// Stores a manifest through the registry's push path.
    async fn put(
        &self,
        local: &RepoName,
        reference: Reference,
        manifest: &Fetched,
    ) -> Result<(), ImportError> {
        self.registry
            .put_manifest(PutManifest {
                repo: local,
                reference: &reference,
                extra_tags: &[],
                content_type: manifest.media_type.as_deref(),
                body: &manifest.body,
                by: ChangedBy::new(&self.actor, None),
            })
            .await?;
        Ok(())
    }

    /// Makes the blob part of `local`: nothing when it is already, mounted when this run put
    /// it into another repository, fetched (paced) and uploaded otherwise.
    async fn import_blob(
        &mut self,
        remote: &str,
        local: &RepoName,
        digest: &Digest,
        size: u64,
    ) -> Result<(), ImportError> {
        if self.meta.linked_blob_size(local, digest).await?.is_some() {
            self.tally.blobs_skipped += 1;
            return Ok(());
        }
        if let Some(from) = self.held.get(digest).filter(|from| *from != local).cloned() {
            if self
                .registry
                .mount_blob(local, digest, &from)
                .await?
                .is_some()
            {
                self.tally.blobs_mounted += 1;
                return Ok(());
            }
        }
        let blob = self
            .origin
            .get_blob(remote, digest)
            .await?
            .ok_or_else(|| ImportError::Source(format!("blob {digest} is not in {remote}")))?;
        if let Some(sent) = blob.size.filter(|s| *s != size) {
            return Err(ImportError::Source(format!(
                "blob {digest} is {sent} bytes at the remote, its manifest says {size}"
            )));
        }
        let body = paced(blob.body, self.pacer.clone());
        // The upload checks the digest and the quota, as for a push.
        self.registry
            .upload_monolithic(local, None, digest, Some(size), body)
            .await?;
        self.tally.blobs_copied += 1;
        self.tally.bytes_copied += size;
        self.held.insert(digest.clone(), local.clone());
        Ok(())
    }
}
