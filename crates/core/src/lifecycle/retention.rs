//! Retention: the policy (what to keep), its checks, and the pure planner that turns one
//! repository's facts into exactly the tags and manifests a run deletes.
//!
//! The planner's guarantees, which its table tests pin down:
//! - immutable tags are never deleted, nor the manifests they point at;
//! - a kept manifest keeps everything it refers to: the children of a kept index (shared
//!   children included) and the subject of a kept referrer;
//! - referrers (and cosign's fallback tags) go with their subject and stay with it;
//! - a manifest goes only when nothing kept needs it; it is listed after every listed
//!   manifest that refers to it, the order a real run deletes in.

use super::immutable::{cosign_subject, protecting, ImmutableRule};
use super::{check_tag_patterns, Schedule};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};

/// Largest count a `keep` rule takes: far above any real repository's tags.
pub const MAX_KEEP_COUNT: u32 = 100_000;
/// Largest number of days a rule takes (a century).
pub const MAX_DAYS: u32 = 36_500;

const DAY: i64 = 86_400;

/// What a retention policy keeps. Tags that none of the `keep` rules keeps are deleted (when
/// any is set); `tags` narrows the rules to matching tags, and other tags are left alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPolicy {
    pub keep_last_pushed: Option<u32>,
    pub keep_last_pulled: Option<u32>,
    pub keep_pushed_days: Option<u32>,
    pub keep_pulled_days: Option<u32>,
    /// Globs of the tags the rules apply to; empty: every tag.
    pub tags: Vec<String>,
    /// Untagged manifests pushed longer ago than this are deleted.
    pub untagged_days: Option<u32>,
    /// When the policy runs by itself: `daily` or a cron expression; None: only when asked.
    pub schedule: Option<String>,
    /// Whether a run may delete every tag of a repository.
    pub allow_empty: bool,
}

/// A policy as a caller asks for it, counts still signed so that a negative one is named.
#[derive(Debug, Clone, Default)]
pub struct RetentionRequest {
    pub keep_last_pushed: Option<i64>,
    pub keep_last_pulled: Option<i64>,
    pub keep_pushed_days: Option<i64>,
    pub keep_pulled_days: Option<i64>,
    pub tags: Vec<String>,
    pub untagged_days: Option<i64>,
    pub schedule: Option<String>,
    pub allow_empty: bool,
}

fn bounded(value: Option<i64>, name: &str, min: i64, max: u32) -> Result<Option<u32>, String> {
    match value {
        None => Ok(None),
        Some(n) if n < min || n > i64::from(max) => {
            Err(format!("{name} must be from {min} to {max}, not {n}"))
        }
        Some(n) => Ok(Some(n as u32)),
    }
}

impl RetentionRequest {
    /// The checked policy, or what is wrong with the request.
    pub fn check(&self) -> Result<RetentionPolicy, String> {
        let policy = RetentionPolicy {
            keep_last_pushed: bounded(
                self.keep_last_pushed,
                "keep_last_pushed",
                1,
                MAX_KEEP_COUNT,
            )?,
            keep_last_pulled: bounded(
                self.keep_last_pulled,
                "keep_last_pulled",
                1,
                MAX_KEEP_COUNT,
            )?,
            keep_pushed_days: bounded(self.keep_pushed_days, "keep_pushed_days", 1, MAX_DAYS)?,
            keep_pulled_days: bounded(self.keep_pulled_days, "keep_pulled_days", 1, MAX_DAYS)?,
            tags: check_tag_patterns(&self.tags, "tag")?,
            untagged_days: bounded(self.untagged_days, "untagged_days", 0, MAX_DAYS)?,
            schedule: match self.schedule.as_deref().map(str::trim) {
                None | Some("") => None,
                Some(text) => Some(Schedule::parse(text)?.to_string()),
            },
            allow_empty: self.allow_empty,
        };
        if !policy.has_tag_rules() && policy.untagged_days.is_none() {
            return Err(
                "a retention policy needs at least one rule: a keep rule or untagged_days"
                    .to_owned(),
            );
        }
        if !policy.has_tag_rules() && !policy.tags.is_empty() {
            return Err(
                "tag patterns narrow the keep rules; set at least one keep rule".to_owned(),
            );
        }
        Ok(policy)
    }
}

impl RetentionPolicy {
    /// Whether any rule about tags is set (otherwise tags are never deleted).
    pub fn has_tag_rules(&self) -> bool {
        self.keep_last_pushed.is_some()
            || self.keep_last_pulled.is_some()
            || self.keep_pushed_days.is_some()
            || self.keep_pulled_days.is_some()
    }

    /// One line for people: `keep 10 last pushed, pulled within 30 days; tags v*; …`.
    pub fn describe(&self) -> String {
        let mut keep = Vec::new();
        if let Some(n) = self.keep_last_pushed {
            keep.push(format!("the {n} last pushed"));
        }
        if let Some(n) = self.keep_last_pulled {
            keep.push(format!("the {n} last pulled"));
        }
        if let Some(d) = self.keep_pushed_days {
            keep.push(format!("pushed within {d} days"));
        }
        if let Some(d) = self.keep_pulled_days {
            keep.push(format!("pulled within {d} days"));
        }
        let mut parts = Vec::new();
        if !keep.is_empty() {
            let of = if self.tags.is_empty() {
                "tags".to_owned()
            } else {
                format!("tags matching {}", self.tags.join(", "))
            };
            parts.push(format!("keep {of}: {}", keep.join(", ")));
        }
        if let Some(d) = self.untagged_days {
            parts.push(format!("remove untagged manifests older than {d} days"));
        }
        if let Some(s) = &self.schedule {
            parts.push(format!("runs {s}"));
        }
        parts.join("; ")
    }
}

/// A tag as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagFacts {
    pub name: String,
    pub digest: String,
    pub pushed_at: i64,
    /// Pulls by digest count for the tags pointing at the manifest (or an index holding it).
    pub last_pulled_at: Option<i64>,
}

/// A manifest of the repository as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestFacts {
    pub digest: String,
    pub pushed_at: i64,
    /// The last pull of this manifest in the repository, by tag or by digest: what keeps an
    /// untagged manifest under "pulled within D days".
    pub last_pulled_at: Option<i64>,
    pub subject: Option<String>,
    pub children: Vec<String>,
}

/// Everything a plan is made from: one repository's tags and manifests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepoSnapshot {
    pub tags: Vec<TagFacts>,
    pub manifests: Vec<ManifestFacts>,
}

/// What a run deletes in one repository: tags by name, manifests in deletion order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionPlan {
    pub tags: Vec<TagFacts>,
    pub manifests: Vec<ManifestFacts>,
    /// Every tag of the repository goes (which needs `allow_empty`).
    pub deletes_every_tag: bool,
}

/// The tags and manifests of `snapshot` that `policy` deletes at `now`, never touching what
/// `rules` make immutable.
pub fn plan(
    snapshot: &RepoSnapshot,
    policy: &RetentionPolicy,
    rules: &[ImmutableRule],
    now: i64,
) -> RetentionPlan {
    let present: HashMap<&str, &ManifestFacts> = snapshot
        .manifests
        .iter()
        .map(|m| (m.digest.as_str(), m))
        .collect();
    // Cosign fallback tags of a manifest in the repository share its fate.
    let attached_to = |tag: &TagFacts| -> Option<String> {
        cosign_subject(&tag.name).filter(|s| present.contains_key(s.as_str()))
    };
    let immutable = |tag: &TagFacts| protecting(rules, &tag.name).is_some();

    // 1. The tags the keep rules let go.
    let mut doomed_tags: BTreeSet<&str> = BTreeSet::new();
    if policy.has_tag_rules() {
        let candidates: Vec<&TagFacts> = snapshot
            .tags
            .iter()
            .filter(|t| attached_to(t).is_none())
            .filter(|t| {
                policy.tags.is_empty()
                    || policy
                        .tags
                        .iter()
                        .any(|p| crate::access::glob_matches(p, &t.name))
            })
            .collect();
        let mut kept: HashSet<&str> = HashSet::new();
        if let Some(n) = policy.keep_last_pushed {
            let mut by_push = candidates.clone();
            by_push.sort_by(|a, b| b.pushed_at.cmp(&a.pushed_at).then(a.name.cmp(&b.name)));
            kept.extend(by_push.iter().take(n as usize).map(|t| t.name.as_str()));
        }
        if let Some(n) = policy.keep_last_pulled {
            let mut by_pull: Vec<&TagFacts> = candidates
                .iter()
                .copied()
                .filter(|t| t.last_pulled_at.is_some())
                .collect();
            by_pull.sort_by(|a, b| {
                b.last_pulled_at
                    .cmp(&a.last_pulled_at)
                    .then(a.name.cmp(&b.name))
            });
            kept.extend(by_pull.iter().take(n as usize).map(|t| t.name.as_str()));
        }
        if let Some(days) = policy.keep_pushed_days {
            let since = now - i64::from(days) * DAY;
            kept.extend(
                candidates
                    .iter()
                    .filter(|t| t.pushed_at >= since)
                    .map(|t| t.name.as_str()),
            );
        }
        if let Some(days) = policy.keep_pulled_days {
            let since = now - i64::from(days) * DAY;
            kept.extend(
                candidates
                    .iter()
                    .filter(|t| t.last_pulled_at.is_some_and(|at| at >= since))
                    .map(|t| t.name.as_str()),
            );
        }
        doomed_tags.extend(
            candidates
                .iter()
                .filter(|t| !kept.contains(t.name.as_str()) && !immutable(t))
                .map(|t| t.name.as_str()),
        );
    }

    // 2. The manifests something still needs: roots, then all they reach.
    let mut tagged_before: HashSet<&str> = HashSet::new();
    let mut roots: Vec<&str> = Vec::new();
    // subject → manifests its cosign tags point at, and back.
    let mut attached: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut attached_subjects: HashMap<&str, Vec<&str>> = HashMap::new();
    for tag in &snapshot.tags {
        match attached_to(tag) {
            Some(subject) => {
                let subject = present
                    .get_key_value(subject.as_str())
                    .map(|(k, _)| *k)
                    .unwrap_or_default();
                attached
                    .entry(subject)
                    .or_default()
                    .push(tag.digest.as_str());
                attached_subjects
                    .entry(tag.digest.as_str())
                    .or_default()
                    .push(subject);
                if immutable(tag) {
                    roots.push(tag.digest.as_str());
                }
            }
            None => {
                tagged_before.insert(tag.digest.as_str());
                if !doomed_tags.contains(tag.name.as_str()) {
                    roots.push(tag.digest.as_str());
                }
            }
        }
    }
    let mut referrers: HashMap<&str, Vec<&str>> = HashMap::new();
    let mut is_child: HashSet<&str> = HashSet::new();
    for m in &snapshot.manifests {
        if let Some(subject) = m.subject.as_deref().filter(|s| present.contains_key(s)) {
            referrers
                .entry(subject)
                .or_default()
                .push(m.digest.as_str());
        }
        is_child.extend(m.children.iter().map(String::as_str));
    }
    let attached_manifests: HashSet<&str> = attached.values().flatten().copied().collect();
    let untagged_cutoff = policy.untagged_days.map(|d| now - i64::from(d) * DAY);
    let pulled_since = policy.keep_pulled_days.map(|d| now - i64::from(d) * DAY);
    for m in &snapshot.manifests {
        let digest = m.digest.as_str();
        if tagged_before.contains(digest) {
            continue; // kept above if one of its tags stays
        }
        let dependent = is_child.contains(digest)
            || m.subject
                .as_deref()
                .is_some_and(|s| present.contains_key(s))
            || attached_manifests.contains(digest);
        // Pulled by digest within the days a pull keeps: a digest-pinned deployment.
        let pulled_recently =
            pulled_since.is_some_and(|since| m.last_pulled_at.is_some_and(|at| at >= since));
        let expired =
            untagged_cutoff.is_some_and(|cutoff| m.pushed_at < cutoff) && !pulled_recently;
        if !dependent && !expired {
            roots.push(digest);
        }
    }
    let mut kept: HashSet<&str> = HashSet::new();
    let mut queue: VecDeque<&str> = roots.into_iter().collect();
    while let Some(digest) = queue.pop_front() {
        let Some(m) = present.get(digest) else {
            continue;
        };
        if !kept.insert(m.digest.as_str()) {
            continue;
        }
        let mut next: Vec<&str> = m.children.iter().map(String::as_str).collect();
        next.extend(m.subject.as_deref());
        next.extend(referrers.get(digest).into_iter().flatten().copied());
        next.extend(attached.get(digest).into_iter().flatten().copied());
        next.extend(attached_subjects.get(digest).into_iter().flatten().copied());
        queue.extend(next.into_iter().filter(|d| !kept.contains(d)));
    }

    // 3. What goes: every manifest nothing kept, in an order where whatever refers to a
    // manifest goes first; tags with them.
    let doomed: Vec<&ManifestFacts> = snapshot
        .manifests
        .iter()
        .filter(|m| !kept.contains(m.digest.as_str()))
        .collect();
    let manifests = deletion_order(&doomed);
    let doomed_digests: HashSet<&str> = doomed.iter().map(|m| m.digest.as_str()).collect();
    let mut tags: Vec<TagFacts> = snapshot
        .tags
        .iter()
        .filter(|t| {
            doomed_tags.contains(t.name.as_str()) || doomed_digests.contains(t.digest.as_str())
        })
        .cloned()
        .collect();
    tags.sort_by(|a, b| a.name.cmp(&b.name));
    let plain_tags = snapshot
        .tags
        .iter()
        .filter(|t| attached_to(t).is_none())
        .count();
    let deletes_every_tag =
        plain_tags > 0 && tags.iter().filter(|t| attached_to(t).is_none()).count() == plain_tags;
    RetentionPlan {
        tags,
        manifests,
        deletes_every_tag,
    }
}

/// `doomed` ordered so that parents (indexes) and referrers come before what they refer to.
fn deletion_order(doomed: &[&ManifestFacts]) -> Vec<ManifestFacts> {
    let set: HashMap<&str, &ManifestFacts> =
        doomed.iter().map(|m| (m.digest.as_str(), *m)).collect();
    // Edges referrer/parent → referred; a manifest is ready once nothing doomed refers to it.
    let mut waiting_on: HashMap<&str, usize> = set.keys().map(|d| (*d, 0)).collect();
    let referred = |m: &ManifestFacts| -> Vec<String> {
        let mut out = m.children.clone();
        out.extend(m.subject.clone());
        out.sort();
        out.dedup();
        out
    };
    for m in doomed {
        for r in referred(m) {
            if let Some(count) = waiting_on.get_mut(r.as_str()) {
                *count += 1;
            }
        }
    }
    // Among the ready ones, oldest push first: the order people read the list in.
    let mut ready: BTreeSet<(i64, &str)> = waiting_on
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(d, _)| (set[d].pushed_at, *d))
        .collect();
    let mut out = Vec::with_capacity(doomed.len());
    while let Some((_, digest)) = ready.pop_first() {
        let m = set[digest];
        out.push(m.clone());
        for r in referred(m) {
            if let Some(count) = waiting_on.get_mut(r.as_str()) {
                *count -= 1;
                if *count == 0 {
                    if let Some((key, m)) = set.get_key_value(r.as_str()) {
                        ready.insert((m.pushed_at, key));
                    }
                }
            }
        }
    }
    // A cycle cannot be pushed (digests are of content); should one be stored, its members
    // are still listed, last.
    if out.len() < doomed.len() {
        let listed: HashSet<String> = out.iter().map(|m| m.digest.clone()).collect();
        let mut rest: Vec<ManifestFacts> = doomed
            .iter()
            .filter(|m| !listed.contains(&m.digest))
            .map(|m| (*m).clone())
            .collect();
        rest.sort_by(|a, b| a.digest.cmp(&b.digest));
        out.extend(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Target;

    const NOW: i64 = 1_000 * DAY;

    /// A digest-like name for test manifest `n`.
    fn d(name: &str) -> String {
        format!("sha256:{}", crate::lifecycle::tests_support::hex_of(name))
    }

    fn tag(
        name: &str,
        manifest: &str,
        pushed_days_ago: i64,
        pulled_days_ago: Option<i64>,
    ) -> TagFacts {
        TagFacts {
            name: name.to_owned(),
            digest: d(manifest),
            pushed_at: NOW - pushed_days_ago * DAY,
            last_pulled_at: pulled_days_ago.map(|days| NOW - days * DAY),
        }
    }

    fn image(name: &str, pushed_days_ago: i64) -> ManifestFacts {
        ManifestFacts {
            digest: d(name),
            pushed_at: NOW - pushed_days_ago * DAY,
            last_pulled_at: None,
            subject: None,
            children: Vec::new(),
        }
    }

    fn index(name: &str, pushed_days_ago: i64, children: &[&str]) -> ManifestFacts {
        ManifestFacts {
            children: children.iter().map(|c| d(c)).collect(),
            ..image(name, pushed_days_ago)
        }
    }

    fn referrer(name: &str, pushed_days_ago: i64, subject: &str) -> ManifestFacts {
        ManifestFacts {
            subject: Some(d(subject)),
            ..image(name, pushed_days_ago)
        }
    }

    fn rule(tags: &[&str]) -> ImmutableRule {
        ImmutableRule {
            target: Target::Namespace("acme".into()),
            tags: tags.iter().map(|s| s.to_string()).collect(),
            excludes: Vec::new(),
            exempt_cosign: true,
            updated_by: "alice".into(),
            updated_at: 0,
        }
    }

    fn keep_last(n: u32) -> RetentionPolicy {
        RetentionPolicy {
            keep_last_pushed: Some(n),
            ..RetentionPolicy::default()
        }
    }

    /// The plan as names: deleted tags, and deleted manifests in deletion order.
    fn outcome(
        tags: Vec<TagFacts>,
        manifests: Vec<ManifestFacts>,
        policy: &RetentionPolicy,
        rules: &[ImmutableRule],
    ) -> (Vec<String>, Vec<String>) {
        let snapshot = RepoSnapshot { tags, manifests };
        let planned = plan(&snapshot, policy, rules, NOW);
        let by_digest: HashMap<String, String> = [
            "a", "b", "c", "d", "e", "i1", "i2", "c1", "c2", "c3", "sig", "sbom", "att", "u1",
            "u2", "x",
        ]
        .iter()
        .map(|n| (d(n), (*n).to_owned()))
        .collect();
        (
            planned.tags.iter().map(|t| t.name.clone()).collect(),
            planned
                .manifests
                .iter()
                .map(|m| {
                    by_digest
                        .get(&m.digest)
                        .cloned()
                        .unwrap_or(m.digest.clone())
                })
                .collect(),
        )
    }

    #[test]
    fn keep_the_last_pushed_and_let_the_others_go_with_their_manifests() {
        let (tags, manifests) = outcome(
            vec![
                tag("v1", "a", 40, None),
                tag("v2", "b", 30, None),
                tag("v3", "c", 20, None),
                tag("v4", "d", 10, None),
            ],
            vec![
                image("a", 40),
                image("b", 30),
                image("c", 20),
                image("d", 10),
            ],
            &keep_last(2),
            &[],
        );
        assert_eq!(tags, ["v1", "v2"]);
        assert_eq!(manifests, ["a", "b"]);
    }

    #[test]
    fn a_manifest_another_kept_tag_points_at_stays() {
        let (tags, manifests) = outcome(
            vec![
                tag("old", "a", 40, None),
                tag("new", "b", 1, None),
                tag("stable", "a", 2, None),
            ],
            vec![image("a", 40), image("b", 1)],
            &keep_last(2),
            &[],
        );
        assert_eq!(tags, ["old"]);
        assert!(manifests.is_empty(), "{manifests:?}");
    }

    #[test]
    fn children_shared_with_a_kept_index_stay_and_the_index_goes_first() {
        let (tags, manifests) = outcome(
            vec![tag("v1", "i1", 40, None), tag("v2", "i2", 1, None)],
            vec![
                index("i1", 40, &["c1", "c2"]),
                index("i2", 1, &["c1", "c3"]),
                image("c1", 40),
                image("c2", 40),
                image("c3", 1),
            ],
            &keep_last(1),
            &[],
        );
        assert_eq!(tags, ["v1"]);
        assert_eq!(
            manifests,
            ["i1", "c2"],
            "c1 is i2's too; the index before its child"
        );
    }

    #[test]
    fn old_untagged_children_of_a_kept_index_are_not_untagged_garbage() {
        let policy = RetentionPolicy {
            untagged_days: Some(7),
            ..RetentionPolicy::default()
        };
        let (tags, manifests) = outcome(
            vec![tag("v1", "i1", 40, None)],
            vec![
                index("i1", 40, &["c1"]),
                image("c1", 40),
                image("u1", 30),
                image("u2", 1),
            ],
            &policy,
            &[],
        );
        assert!(tags.is_empty());
        assert_eq!(
            manifests,
            ["u1"],
            "only the old standalone untagged manifest"
        );
    }

    #[test]
    fn referrers_go_with_their_subject_and_stay_with_it() {
        let manifests = vec![
            image("a", 40),
            referrer("sig", 40, "a"),
            image("b", 1),
            referrer("sbom", 40, "b"),
        ];
        let tags = vec![tag("old", "a", 40, None), tag("new", "b", 1, None)];
        let untagged_too = RetentionPolicy {
            untagged_days: Some(0),
            ..keep_last(1)
        };
        let (gone_tags, gone) = outcome(tags, manifests, &untagged_too, &[]);
        assert_eq!(gone_tags, ["old"]);
        assert_eq!(
            gone,
            ["sig", "a"],
            "the signature first, then its subject; b's SBOM stays"
        );
    }

    #[test]
    fn a_kept_referrer_keeps_its_subject() {
        let (tags, manifests) = outcome(
            vec![
                tag("old", "a", 40, None),
                tag("new", "b", 1, None),
                tag("sig-tag", "sig", 1, None),
            ],
            vec![image("a", 40), image("b", 1), referrer("sig", 1, "a")],
            &keep_last(2),
            &[],
        );
        assert_eq!(tags, ["old"]);
        assert!(
            manifests.is_empty(),
            "a is what the kept signature refers to: {manifests:?}"
        );
    }

    #[test]
    fn cosign_fallback_tags_follow_their_image() {
        let sig_of = |m: &str| format!("{}.sig", d(m).replace(':', "-"));
        let (tags, manifests) = outcome(
            vec![
                tag("old", "a", 40, None),
                tag("new", "b", 1, None),
                tag(&sig_of("a"), "sig", 40, None),
                tag(&sig_of("b"), "att", 40, None),
            ],
            vec![
                image("a", 40),
                image("b", 1),
                image("sig", 40),
                image("att", 40),
            ],
            &keep_last(1),
            &[],
        );
        assert_eq!(tags, ["old".to_owned(), sig_of("a")]);
        let mut manifests = manifests;
        manifests.sort();
        assert_eq!(manifests, ["a", "sig"], "b's attestation stays with b");
    }

    #[test]
    fn immutable_tags_and_their_manifests_are_never_deleted() {
        let (tags, manifests) = outcome(
            vec![
                tag("v1.0", "a", 400, None),
                tag("dev-1", "b", 300, None),
                tag("dev-2", "c", 1, None),
            ],
            vec![image("a", 400), image("b", 300), image("c", 1)],
            &keep_last(1),
            &[rule(&["v*"])],
        );
        assert_eq!(tags, ["dev-1"]);
        assert_eq!(manifests, ["b"]);
    }

    #[test]
    fn pulls_keep_tags_and_a_pull_by_digest_counts_for_its_tags() {
        // The store moves a tag's last pull when its manifest (or an index holding it) is
        // pulled by digest; the planner sees that time on every such tag.
        let policy = RetentionPolicy {
            keep_last_pulled: Some(1),
            keep_pulled_days: Some(30),
            ..RetentionPolicy::default()
        };
        let (tags, manifests) = outcome(
            vec![
                tag("never", "a", 1, None),
                tag("long-ago", "b", 100, Some(90)),
                tag("recent", "c", 100, Some(10)),
                tag("latest-pull", "d", 100, Some(1)),
            ],
            vec![
                image("a", 1),
                image("b", 100),
                image("c", 100),
                image("d", 100),
            ],
            &policy,
            &[],
        );
        assert_eq!(tags, ["long-ago", "never"]);
        assert_eq!(manifests, ["b", "a"], "oldest push first");
    }

    #[test]
    fn an_untagged_manifest_pulled_by_digest_within_the_days_stays() {
        let pulled = |name: &str, pushed_days_ago: i64, pulled_days_ago: i64| ManifestFacts {
            last_pulled_at: Some(NOW - pulled_days_ago * DAY),
            ..image(name, pushed_days_ago)
        };
        let policy = RetentionPolicy {
            keep_pulled_days: Some(30),
            untagged_days: Some(7),
            ..RetentionPolicy::default()
        };
        let (tags, manifests) = outcome(
            vec![tag("v1", "a", 1, Some(1))],
            vec![
                image("a", 1),
                pulled("u1", 100, 2),
                pulled("u2", 100, 60),
                image("x", 100),
            ],
            &policy,
            &[],
        );
        assert!(tags.is_empty(), "{tags:?}");
        let mut manifests = manifests;
        manifests.sort();
        assert_eq!(
            manifests,
            ["u2", "x"],
            "u1 was pulled 2 days ago; u2's pull is past the 30 days, x was never pulled"
        );
        // Without a pull rule, untagged manifests age by their push alone.
        let untagged_only = RetentionPolicy {
            untagged_days: Some(7),
            ..RetentionPolicy::default()
        };
        let (_, manifests) = outcome(
            vec![tag("v1", "a", 1, Some(1))],
            vec![image("a", 1), pulled("u1", 100, 2)],
            &untagged_only,
            &[],
        );
        assert_eq!(manifests, ["u1"]);
    }

    #[test]
    fn tag_patterns_narrow_the_rules_and_leave_other_tags_alone() {
        let policy = RetentionPolicy {
            tags: vec!["pr-*".into()],
            ..keep_last(1)
        };
        let (tags, _) = outcome(
            vec![
                tag("latest", "a", 400, None),
                tag("pr-1", "b", 30, None),
                tag("pr-2", "c", 1, None),
            ],
            vec![image("a", 400), image("b", 30), image("c", 1)],
            &policy,
            &[],
        );
        assert_eq!(tags, ["pr-1"]);
    }

    #[test]
    fn deleting_every_tag_is_flagged() {
        let snapshot = RepoSnapshot {
            tags: vec![tag("a", "a", 40, None)],
            manifests: vec![image("a", 40)],
        };
        let policy = RetentionPolicy {
            keep_pushed_days: Some(7),
            ..RetentionPolicy::default()
        };
        assert!(plan(&snapshot, &policy, &[], NOW).deletes_every_tag);
        assert!(!plan(&snapshot, &keep_last(1), &[], NOW).deletes_every_tag);
    }

    #[test]
    fn requests_are_checked() {
        let ok = RetentionRequest {
            keep_last_pushed: Some(10),
            schedule: Some("daily".into()),
            ..RetentionRequest::default()
        };
        assert_eq!(ok.check().unwrap().keep_last_pushed, Some(10));
        let bad = [
            (
                RetentionRequest {
                    keep_last_pushed: Some(-1),
                    ..Default::default()
                },
                "keep_last_pushed",
            ),
            (
                RetentionRequest {
                    keep_last_pulled: Some(0),
                    ..Default::default()
                },
                "keep_last_pulled",
            ),
            (
                RetentionRequest {
                    keep_pushed_days: Some(1_000_000),
                    ..Default::default()
                },
                "keep_pushed_days",
            ),
            (
                RetentionRequest {
                    untagged_days: Some(-3),
                    ..Default::default()
                },
                "untagged_days",
            ),
            (RetentionRequest::default(), "at least one rule"),
            (
                RetentionRequest {
                    tags: vec!["v*".into()],
                    untagged_days: Some(1),
                    ..Default::default()
                },
                "keep rule",
            ),
            (
                RetentionRequest {
                    keep_last_pushed: Some(1),
                    tags: vec!["a b".into()],
                    ..Default::default()
                },
                "tag pattern",
            ),
            (
                RetentionRequest {
                    keep_last_pushed: Some(1),
                    schedule: Some("sometimes".into()),
                    ..Default::default()
                },
                "schedule",
            ),
        ];
        for (request, says) in bad {
            let err = request.check().unwrap_err();
            assert!(err.contains(says), "{request:?}: {err}");
        }
    }
}
