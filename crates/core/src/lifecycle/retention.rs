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
        Some(n) if n < min || n > i64::from(max) => Err(format!(
            "{name} must be from {min} to {max}, not {n}"
        )),
        Some(n) => Ok(Some(n as u32)),
    }
}

impl RetentionRequest {
    /// The checked policy, or what is wrong with the request.
    pub fn check(&self) -> Result<RetentionPolicy, String> {
        let policy = RetentionPolicy {
            keep_last_pushed: bounded(self.keep_last_pushed, "keep_last_pushed", 1, MAX_KEEP_COUNT)?,
            keep_last_pulled: bounded(self.keep_last_pulled, "keep_last_pulled", 1, MAX_KEEP_COUNT)?,
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
            return Err("tag patterns narrow the keep rules; set at least one keep rule".to_owned());
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
                attached.entry(subject).or_default().push(tag.digest.as_str());
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
            referrers.entry(subject).or_default().push(m.digest.as_str());
        }
        is_child.extend(m.children.iter().map(String::as_str));
    }
    let attached_manifests: HashSet<&str> = attached.values().flatten().copied().collect();
    let untagged_cutoff = policy.untagged_days.map(|d| now - i64::from(d) * DAY);
    for m in &snapshot.manifests {
        let digest = m.digest.as_str();
        if tagged_before.contains(digest) {
            continue; // kept above if one of its tags stays
        }
        let dependent = is_child.contains(digest)
            || m.subject.as_deref().is_some_and(|s| present.contains_key(s))
            || attached_manifests.contains(digest);
        let expired = untagged_cutoff.is_some_and(|cutoff| m.pushed_at < cutoff);
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
    let deletes_every_tag = plain_tags > 0
        && tags.iter().filter(|t| attached_to(t).is_none()).count() == plain_tags;
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
    let mut ready: BTreeSet<&str> = waiting_on
        .iter()
        .filter(|(_, n)| **n == 0)
        .map(|(d, _)| *d)
        .collect();
    let mut out = Vec::with_capacity(doomed.len());
    while let Some(digest) = ready.pop_first() {
        let m = set[digest];
        out.push(m.clone());
        for r in referred(m) {
            if let Some(count) = waiting_on.get_mut(r.as_str()) {
                *count -= 1;
                if *count == 0 {
                    if let Some((key, _)) = set.get_key_value(r.as_str()) {
                        ready.insert(key);
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
