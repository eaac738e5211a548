//! Domain events: what happened, written by the store in the same transaction as the change
//! (an outbox), so a change that commits always has its events and one that rolls back never.

mod stream;

pub use stream::{visible_events, EventPage, MAX_EVENT_PAGE};

use serde::{Deserialize, Serialize};

/// The kinds of event, with their wire names (`manifest.pushed`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventKind {
    #[serde(rename = "manifest.pushed")]
    ManifestPushed,
    #[serde(rename = "tag.deleted")]
    TagDeleted,
    #[serde(rename = "manifest.deleted")]
    ManifestDeleted,
    #[serde(rename = "repository.created")]
    RepositoryCreated,
    #[serde(rename = "repository.deleted")]
    RepositoryDeleted,
    #[serde(rename = "repository.visibility_changed")]
    RepositoryVisibilityChanged,
    #[serde(rename = "access.changed")]
    AccessChanged,
    /// A link took a namespace past 85 % of its quota.
    #[serde(rename = "quota.warning")]
    QuotaWarning,
    #[serde(rename = "retention.completed")]
    RetentionCompleted,
    /// A trusted key was added to or removed from a namespace or repository.
    #[serde(rename = "trust.changed")]
    TrustChanged,
    /// A pull policy was set or cleared.
    #[serde(rename = "pull_policy.changed")]
    PullPolicyChanged,
    /// An image's signature state (unsigned, signed, verified, and by which keys) changed.
    #[serde(rename = "signature.changed")]
    SignatureChanged,
    /// An image was scanned for vulnerabilities.
    #[serde(rename = "scan.completed")]
    ScanCompleted,
    /// A replication rule's run ended (site-wide: no repository).
    #[serde(rename = "replication.completed")]
    ReplicationCompleted,
    /// An automated build finished: succeeded, failed or cancelled.
    #[serde(rename = "build.completed")]
    BuildCompleted,
}

impl EventKind {
    pub const ALL: [EventKind; 15] = [
        EventKind::ManifestPushed,
        EventKind::TagDeleted,
        EventKind::ManifestDeleted,
        EventKind::RepositoryCreated,
        EventKind::RepositoryDeleted,
        EventKind::RepositoryVisibilityChanged,
        EventKind::AccessChanged,
        EventKind::QuotaWarning,
        EventKind::RetentionCompleted,
        EventKind::TrustChanged,
        EventKind::PullPolicyChanged,
        EventKind::SignatureChanged,
        EventKind::ScanCompleted,
        EventKind::ReplicationCompleted,
        EventKind::BuildCompleted,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::ManifestPushed => "manifest.pushed",
            EventKind::TagDeleted => "tag.deleted",
            EventKind::ManifestDeleted => "manifest.deleted",
            EventKind::RepositoryCreated => "repository.created",
            EventKind::RepositoryDeleted => "repository.deleted",
            EventKind::RepositoryVisibilityChanged => "repository.visibility_changed",
            EventKind::AccessChanged => "access.changed",
            EventKind::QuotaWarning => "quota.warning",
            EventKind::RetentionCompleted => "retention.completed",
            EventKind::TrustChanged => "trust.changed",
            EventKind::PullPolicyChanged => "pull_policy.changed",
            EventKind::SignatureChanged => "signature.changed",
            EventKind::ScanCompleted => "scan.completed",
            EventKind::ReplicationCompleted => "replication.completed",
            EventKind::BuildCompleted => "build.completed",
        }
    }

    pub fn parse(s: &str) -> Option<EventKind> {
        EventKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// An event about to be recorded with a change.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    pub kind: EventKind,
    pub namespace: String,
    /// The repository it concerns (absent for namespace-wide access changes).
    pub repository: Option<String>,
    /// Who acted: an account name, `org/NAME`, `cli`, or none (anonymous or the system).
    pub actor: Option<String>,
    /// The kind's own fields, as JSON.
    pub data: serde_json::Value,
}

impl NewEvent {
    /// An event about `repository` (its namespace is the first component).
    pub fn about(
        kind: EventKind,
        repository: &str,
        actor: Option<&str>,
        data: serde_json::Value,
    ) -> NewEvent {
        let namespace = repository
            .split_once('/')
            .map_or(repository, |(namespace, _)| namespace);
        NewEvent {
            kind,
            namespace: namespace.to_owned(),
            repository: Some(repository.to_owned()),
            actor: actor.map(str::to_owned),
            data,
        }
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRecord {
    /// Position in the log: increasing in commit order.
    pub id: i64,
    pub kind: EventKind,
    pub namespace: String,
    pub repository: Option<String>,
    pub actor: Option<String>,
    pub data: serde_json::Value,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
}

/// The fields of `manifest.pushed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPushedData {
    pub digest: String,
    pub media_type: String,
    /// Tags the push pointed at the manifest (empty for a push by digest).
    pub tags: Vec<String>,
    /// `os/architecture[/variant]` of an image, or of each image of an index.
    pub platforms: Vec<String>,
    /// The manifest's bytes plus the sizes its descriptors declare (config and layers of an
    /// image; the child manifests of an index).
    pub size: u64,
    /// The manifest this one refers to, when it is a referrer (a signature, an SBOM);
    /// absent from events recorded before it was.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

/// The fields of `tag.deleted`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagDeletedData {
    pub tag: String,
    pub digest: String,
}

/// The fields of `manifest.deleted`: the manifest and the tags that went with it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestDeletedData {
    pub digest: String,
    pub tags: Vec<String>,
}

/// The fields of `repository.visibility_changed`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VisibilityChangedData {
    pub is_private: bool,
}

/// The fields of `access.changed`: what changed, for whom.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessChangedData {
    /// The audit action (`team.grant`, `collaborator.remove`, `team.member.add`,
    /// `team.member.remove`, `team.delete`, ...).
    pub action: String,
    /// The user or team whose access changed.
    pub subject: String,
    /// The permission the subject holds now, when it gained one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission: Option<String>,
    /// The team through which a member's access changed (membership changes and team
    /// deletion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
}

/// One repository a team reaches, as read before or after a change to the team: the team's
/// name, the repository and the permission the team gives there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamReach {
    pub team: String,
    pub repository: String,
    pub permission: crate::ports::Permission,
}

/// The `access.changed` events for a change to a team's membership or the team's deletion
/// (`action` about `subject`, a member or the team itself): one per repository the team
/// reaches, naming the highest permission it gives there when `gains` (the subject holds it
/// now), in repository order. Both metadata backends record exactly these.
pub fn team_access_events(
    reach: impl IntoIterator<Item = TeamReach>,
    action: &str,
    subject: &str,
    gains: bool,
    actor: Option<&str>,
) -> Vec<NewEvent> {
    let mut highest: std::collections::BTreeMap<String, (String, crate::ports::Permission)> =
        std::collections::BTreeMap::new();
    for r in reach {
        let entry = highest
            .entry(r.repository)
            .or_insert((r.team, r.permission));
        entry.1 = entry.1.max(r.permission);
    }
    highest
        .into_iter()
        .map(|(repo, (team, permission))| {
            let data = data_of(&AccessChangedData {
                action: action.to_owned(),
                subject: subject.to_owned(),
                permission: gains.then(|| permission.as_str().to_owned()),
                team: Some(team),
            });
            NewEvent::about(EventKind::AccessChanged, &repo, actor, data)
        })
        .collect()
}

/// The fields of `quota.warning`: the namespace's usage after the link that crossed 85 %.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuotaWarningData {
    pub bytes: u64,
    pub quota: u64,
}

/// The share of its quota past which a namespace's link records `quota.warning`, in percent.
pub const QUOTA_WARNING_PERCENT: u64 = 85;

/// The fields of `retention.completed`: one real retention run of a repository or a
/// namespace, and what it deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionCompletedData {
    pub run_id: i64,
    /// `repository` or `namespace`.
    pub scope: String,
    pub target: String,
    /// `manual` or `schedule`.
    pub trigger: String,
    /// `ns/repo:tag`.
    pub tags: Vec<String>,
    /// `ns/repo@digest`.
    pub manifests: Vec<String>,
    /// Bytes that garbage collection can now reclaim.
    pub bytes: u64,
}

/// The fields of `scan.completed`: one image's scan and its counts by severity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanCompletedData {
    pub digest: String,
    /// The tags pointing at the image when it was scanned.
    pub tags: Vec<String>,
    pub packages: u64,
    pub critical: u64,
    pub high: u64,
    pub medium: u64,
    pub low: u64,
    pub unknown: u64,
    /// Whether a vulnerability database was loaded (without one only the inventory ran).
    pub matched: bool,
}

/// The fields of `replication.completed`: one run of a replication rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplicationCompletedData {
    pub run_id: i64,
    pub rule: String,
    /// `manual`, `push`, `schedule` or `delete`.
    pub trigger: String,
    /// `succeeded` or `failed` (some items failed; the run is tried again).
    pub status: String,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
}

/// Serializes an event's fields; they are plain structs, so this cannot fail.
pub fn data_of<T: Serialize>(fields: &T) -> serde_json::Value {
    serde_json::to_value(fields).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_through_their_wire_names() {
        for kind in EventKind::ALL {
            assert_eq!(EventKind::parse(kind.as_str()), Some(kind));
            assert_eq!(
                serde_json::to_value(kind).unwrap(),
                serde_json::Value::String(kind.as_str().into())
            );
        }
        assert_eq!(EventKind::parse("push"), None);
    }

    #[test]
    fn an_event_about_a_repository_names_its_namespace() {
        let event = NewEvent::about(
            EventKind::TagDeleted,
            "acme/team/api",
            Some("bob"),
            serde_json::json!({}),
        );
        assert_eq!(event.namespace, "acme");
        assert_eq!(event.repository.as_deref(), Some("acme/team/api"));
        let official = NewEvent::about(EventKind::TagDeleted, "nginx", None, serde_json::json!({}));
        assert_eq!(official.namespace, "nginx");
    }

    #[test]
    fn a_team_change_is_one_event_per_repository_with_the_highest_permission() {
        use crate::ports::Permission;
        let reach = |team: &str, repository: &str, permission| TeamReach {
            team: team.to_owned(),
            repository: repository.to_owned(),
            permission,
        };
        let events = team_access_events(
            [
                reach("owners", "acme/web", Permission::Admin),
                reach("owners", "acme/api", Permission::Read),
                reach("owners", "acme/api", Permission::Admin),
                reach("owners", "acme/api", Permission::Write),
            ],
            "team.member.add",
            "bob",
            true,
            Some("alice"),
        );
        let seen: Vec<_> = events
            .iter()
            .map(|e| {
                let data: AccessChangedData = serde_json::from_value(e.data.clone()).unwrap();
                (e.repository.clone().unwrap(), data.permission, data.team)
            })
            .collect();
        assert_eq!(
            seen,
            [
                (
                    "acme/api".into(),
                    Some("admin".into()),
                    Some("owners".into())
                ),
                (
                    "acme/web".into(),
                    Some("admin".into()),
                    Some("owners".into())
                ),
            ]
        );
        assert!(events
            .iter()
            .all(|e| e.kind == EventKind::AccessChanged && e.actor.as_deref() == Some("alice")));
        // A loss names no permission.
        let lost = team_access_events(
            [reach("dev", "acme/api", Permission::Write)],
            "team.member.remove",
            "bob",
            false,
            None,
        );
        let data: AccessChangedData = serde_json::from_value(lost[0].data.clone()).unwrap();
        assert_eq!((data.subject.as_str(), data.permission), ("bob", None));
    }

    #[test]
    fn permission_ranks_order_and_round_trip() {
        use crate::ports::Permission;
        for p in Permission::ALL {
            assert_eq!(Permission::of_rank(p.rank()), Some(p));
        }
        assert!(Permission::Read.rank() < Permission::Write.rank());
        assert!(Permission::Write.rank() < Permission::Admin.rank());
        assert_eq!(Permission::of_rank(0), None);
        assert_eq!(Permission::of_rank(4), None);
    }
}
