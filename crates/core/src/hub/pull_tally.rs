//! How a batch of manifest pulls becomes counts, shared by every metadata backend: identical
//! pulls collapse into one write, and which pulls count towards a repository's pull count.

use crate::ports::PullEvent;
use std::collections::BTreeMap;

/// Identical pulls in a batch (same repository, manifest and tag), collapsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PullTally {
    pub pulls: u64,
    /// The latest of their times.
    pub last_at: i64,
}

/// repository → (manifest digest, tag asked for) → tally, in name order so that every
/// backend touches rows in the same order (no lock-order deadlocks between nodes).
pub type PullBatch<'a> = BTreeMap<&'a str, BTreeMap<(String, Option<&'a str>), PullTally>>;

/// Groups a batch of pulls by repository, manifest and tag.
pub fn tally_pulls(pulls: &[PullEvent]) -> PullBatch<'_> {
    let mut batch: PullBatch<'_> = BTreeMap::new();
    for pull in pulls {
        let key = (pull.digest.to_string(), pull.tag.as_deref());
        batch
            .entry(pull.repo.as_str())
            .or_default()
            .entry(key)
            .and_modify(|t| {
                t.pulls += pull.pulls;
                t.last_at = t.last_at.max(pull.at);
            })
            .or_insert(PullTally {
                pulls: pull.pulls,
                last_at: pull.at,
            });
    }
    batch
}

/// Whether pulls of a manifest count towards the repository's pull count. A client pulling
/// an image index goes on to fetch the manifest for its own platform by digest; that is
/// the same pull. A pull by tag always starts one.
pub fn counts_as_pull(by_tag: bool, child_of_an_index: bool) -> bool {
    by_tag || !child_of_an_index
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_oci::Digest;

    fn pull(repo: &str, digest: &Digest, tag: Option<&str>, at: i64) -> PullEvent {
        PullEvent {
            repo: repo.parse().unwrap(),
            tag: tag.map(str::to_owned),
            digest: digest.clone(),
            at,
            pulls: 1,
        }
    }

    #[test]
    fn identical_pulls_collapse_and_keep_the_latest_time() {
        let a = Digest::sha256_of(b"a");
        let b = Digest::sha256_of(b"b");
        let pulls = [
            pull("x/app", &a, Some("v1"), 10),
            pull("x/app", &a, Some("v1"), 30),
            pull("x/app", &a, Some("v1"), 20),
            pull("x/app", &a, None, 5),
            pull("x/app", &b, None, 7),
            pull("y/app", &a, Some("v1"), 1),
        ];
        let batch = tally_pulls(&pulls);
        assert_eq!(batch.len(), 2);
        let app = &batch["x/app"];
        assert_eq!(app.len(), 3);
        let by_tag = app[&(a.to_string(), Some("v1"))];
        assert_eq!((by_tag.pulls, by_tag.last_at), (3, 30));
        let by_digest = app[&(a.to_string(), None)];
        assert_eq!((by_digest.pulls, by_digest.last_at), (1, 5));
        assert_eq!(batch["y/app"].len(), 1);
    }

    #[test]
    fn a_platform_manifest_fetched_after_its_index_is_not_a_second_pull() {
        assert!(counts_as_pull(true, true));
        assert!(counts_as_pull(true, false));
        assert!(counts_as_pull(false, false));
        assert!(!counts_as_pull(false, true));
    }
}
