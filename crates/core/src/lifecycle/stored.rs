//! The lifecycle rules every metadata backend applies to the rows it reads: how pattern and
//! run lists are stored, how a repository's rows become a retention snapshot, and which
//! bytes a retention run leaves unreferenced. Backends only run the queries.

use super::immutable::{protecting, ImmutableRule};
use super::retention::{ManifestFacts, RepoSnapshot, TagFacts};
use crate::events::NewEvent;
use crate::ports::{MetaError, RetentionApplied};
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Tag patterns as one stored text: newline-joined (a pattern holds no newline).
pub fn join_patterns(patterns: &[String]) -> String {
    patterns.join("\n")
}

/// The patterns of a stored text; empty text is no patterns.
pub fn split_patterns(joined: &str) -> Vec<String> {
    if joined.is_empty() {
        Vec::new()
    } else {
        joined.split('\n').map(str::to_owned).collect()
    }
}

/// A run's list of deleted items (`ns/repo:tag`, `ns/repo@digest`) as stored: JSON.
pub fn encode_run_list(items: &[String]) -> String {
    serde_json::to_string(items).unwrap_or_else(|_| "[]".to_owned())
}

/// A stored run list; unreadable text reads as empty (the history is informative only).
pub fn decode_run_list(stored: &str) -> Vec<String> {
    serde_json::from_str(stored).unwrap_or_default()
}

/// Adds what one repository lost to a run's lists, as the history names them.
pub fn add_to_run_lists(
    tags: &mut Vec<String>,
    manifests: &mut Vec<String>,
    repo: &str,
    applied: &RetentionApplied,
) {
    tags.extend(applied.tags.iter().map(|t| format!("{repo}:{t}")));
    manifests.extend(applied.manifests.iter().map(|d| format!("{repo}@{d}")));
}

/// A finished run's event, naming the run it reports.
pub fn run_event(mut event: NewEvent, run_id: i64) -> NewEvent {
    if let serde_json::Value::Object(fields) = &mut event.data {
        fields.insert("run_id".into(), run_id.into());
    }
    event
}

/// Refuses a change to `tag` with `TagImmutable` when one of `rules` protects it: the
/// check every backend makes inside the transaction of a tag move or delete.
pub fn refuse_if_immutable(rules: &[ImmutableRule], tag: &str) -> Result<(), MetaError> {
    match protecting(rules, tag) {
        Some(rule) => Err(MetaError::TagImmutable {
            tag: tag.to_owned(),
            rule: rule.describe(),
        }),
        None => Ok(()),
    }
}

/// A repository's retention snapshot from its rows: its tags, its manifests (children
/// empty) and the (index, child) pairs of its indexes.
pub fn assemble_snapshot(
    tags: Vec<TagFacts>,
    manifests: Vec<ManifestFacts>,
    children: impl IntoIterator<Item = (String, String)>,
) -> RepoSnapshot {
    let mut by_index: HashMap<String, Vec<String>> = HashMap::new();
    for (index, child) in children {
        by_index.entry(index).or_default().push(child);
    }
    let manifests = manifests
        .into_iter()
        .map(|mut m| {
            m.children = by_index.remove(&m.digest).unwrap_or_default();
            m
        })
        .collect();
    RepoSnapshot { tags, manifests }
}

/// The bytes that garbage collection reclaims once the listed (repository, manifest) links
/// are gone: each manifest body no repository links any more, and each blob no remaining
/// link's manifest references. Repositories are the backend's ids. Feed it every link of
/// the gone manifests ([`Self::manifest_link`]) and every use of their blobs by any linked
/// manifest ([`Self::blob_use`]); each item counts once.
#[derive(Debug)]
pub struct UnreferencedBytes<R> {
    gone: HashSet<(R, String)>,
    /// Size, and whether some link outside `gone` still holds it.
    manifests: HashMap<String, (u64, bool)>,
    blobs: HashMap<String, (u64, bool)>,
}

impl<R: Eq + Hash + Clone> UnreferencedBytes<R> {
    pub fn new(gone: impl IntoIterator<Item = (R, String)>) -> Self {
        UnreferencedBytes {
            gone: gone.into_iter().collect(),
            manifests: HashMap::new(),
            blobs: HashMap::new(),
        }
    }

    /// The distinct manifests going, sorted: what the backend's queries ask about.
    pub fn gone_manifests(&self) -> Vec<String> {
        let mut all: Vec<String> = self.gone.iter().map(|(_, d)| d.clone()).collect();
        all.sort_unstable();
        all.dedup();
        all
    }

    pub fn is_empty(&self) -> bool {
        self.gone.is_empty()
    }

    /// `manifest` (of `size` bytes) is linked into `repo`.
    pub fn manifest_link(&mut self, repo: R, manifest: String, size: i64) {
        let kept = !self.gone.contains(&(repo, manifest.clone()));
        let entry = self
            .manifests
            .entry(manifest)
            .or_insert((size.max(0) as u64, false));
        entry.1 |= kept;
    }

    /// `blob` (of `size` bytes) is referenced by `manifest`, which is linked into `repo`.
    pub fn blob_use(&mut self, blob: String, size: i64, repo: R, manifest: String) {
        let kept = !self.gone.contains(&(repo, manifest));
        let entry = self
            .blobs
            .entry(blob)
            .or_insert((size.max(0) as u64, false));
        entry.1 |= kept;
    }

    pub fn total(&self) -> u64 {
        self.manifests
            .values()
            .chain(self.blobs.values())
            .filter(|(_, kept)| !kept)
            .map(|(size, _)| size)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_round_trip_and_empty_text_is_no_pattern() {
        let patterns = vec!["v*".to_owned(), "latest".to_owned()];
        assert_eq!(split_patterns(&join_patterns(&patterns)), patterns);
        assert!(split_patterns("").is_empty());
    }

    #[test]
    fn a_blob_shared_with_a_kept_manifest_is_not_counted() {
        let mut bytes = UnreferencedBytes::new([(1, "m1".to_owned())]);
        bytes.manifest_link(1, "m1".into(), 10);
        // m1 is also linked into repository 2: its body stays.
        bytes.manifest_link(2, "m1".into(), 10);
        bytes.blob_use("layer".into(), 1000, 1, "m1".into());
        bytes.blob_use("own".into(), 5, 1, "m1".into());
        bytes.blob_use("layer".into(), 1000, 3, "m9".into());
        assert_eq!(bytes.total(), 5, "only the blob nothing else uses");
    }

    #[test]
    fn children_land_on_their_index() {
        let manifest = |d: &str| ManifestFacts {
            digest: d.into(),
            pushed_at: 0,
            last_pulled_at: None,
            subject: None,
            children: Vec::new(),
        };
        let snapshot = assemble_snapshot(
            Vec::new(),
            vec![manifest("index"), manifest("child")],
            [("index".to_owned(), "child".to_owned())],
        );
        assert_eq!(snapshot.manifests[0].children, ["child"]);
        assert!(snapshot.manifests[1].children.is_empty());
    }
}
