//! The contract of the lifecycle policies, pull rate limits, supply-chain trust and scanning
//! ports, run with the same bodies against every backend: SQLite, and a real PostgreSQL (a
//! private cluster from the test kit; skipped with a loud notice when PostgreSQL is not
//! installed, required under `CI=true`). "Two nodes" are two stores on one database.

use berth_core::events::{EventKind, NewEvent};
use berth_core::lifecycle::retention::{RepoSnapshot, TagFacts};
use berth_core::lifecycle::{plan, ImmutableRule, RetentionPolicy, Target};
use berth_core::ports::{
    EventLog, HubStore, JobQueue, LifecycleStore, ManifestPlatform, Manifests, MetaError, NewJob,
    NewManifest, PullEvent, RateLimitStore, RetentionApply, RetentionRunRecord, ScanRecord,
    ScanStore, SignatureStore, StoredPullPolicy, Tags, TrustedKeyRecord, VulnDbStatus,
    INTERRUPTED_RUN,
};
use berth_core::ratelimit::{Plan, Rate};
use berth_core::signatures::{ImageSignature, PullPolicy, Severity, SignatureState};
use berth_oci::{Digest, RepoName};
use berth_scan::matching::SeverityCounts;
use berth_scan::osv::{Advisory, Affected};
use berth_scan::Ecosystem;
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;
const OCI: &str = "application/vnd.oci.image.manifest.v1+json";
const INDEX: &str = "application/vnd.oci.image.index.v1+json";

/// Every port this suite covers, and those it seeds data through, as one object.
trait Store:
    LifecycleStore
    + RateLimitStore
    + SignatureStore
    + ScanStore
    + Manifests
    + Tags
    + HubStore
    + EventLog
    + JobQueue
{
}
impl<T> Store for T where
    T: LifecycleStore
        + RateLimitStore
        + SignatureStore
        + ScanStore
        + Manifests
        + Tags
        + HubStore
        + EventLog
        + JobQueue
{
}

/// Plain SQL on a backend's database, for seeding rows no port of this suite writes
/// (accounts, organizations), in SQL both dialects accept.
enum Raw {
    Sqlite(sqlx::SqlitePool),
    Postgres(sqlx::PgPool),
}

impl Raw {
    async fn run(&self, sql: &str) {
        match self {
            Raw::Sqlite(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
            Raw::Postgres(pool) => sqlx::raw_sql(sql).execute(pool).await.map(drop),
        }
        .unwrap_or_else(|e| panic!("seeding with {sql:?}: {e}"));
    }
}

mod common;

type Backend = common::Backend<dyn Store>;

async fn backends(test: &str) -> Vec<Backend> {
    common::backends(
        test,
        |m| -> Arc<dyn Store> { Arc::new(m) },
        |m| -> Arc<dyn Store> { Arc::new(m) },
    )
    .await
}

impl Raw {
    /// A plain connection to the backend's database.
    async fn to(database: &common::Database) -> Raw {
        match database {
            common::Database::Sqlite(path) => Raw::Sqlite(
                sqlx::SqlitePool::connect(&format!("sqlite://{}", path.display()))
                    .await
                    .unwrap(),
            ),
            common::Database::Postgres(url) => {
                Raw::Postgres(sqlx::PgPool::connect(url).await.unwrap())
            }
        }
    }
}

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn digest_of(body: &str) -> Digest {
    Digest::sha256_of(body.as_bytes())
}

fn manifest(repo_name: &str, body: &str, tags: &[&str], now: i64) -> NewManifest {
    NewManifest {
        repo: repo(repo_name),
        digest: digest_of(body),
        media_type: OCI.to_owned(),
        body: body.as_bytes().to_vec(),
        blobs: vec![],
        children: vec![],
        subject: None,
        artifact_type: None,
        annotations_json: None,
        platform: ManifestPlatform::None,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        now,
        actor: Some("alice".to_owned()),
        events: vec![],
    }
}

/// `count` images in `repo`, tagged `t0`… and pushed a second apart (the last newest).
async fn seed_images(store: &dyn Store, repo_name: &str, count: usize) -> Vec<Digest> {
    let mut digests = Vec::new();
    for i in 0..count {
        let body = format!("{{\"image\":{i}}}");
        let tag = format!("t{i}");
        store
            .put_manifest(&manifest(repo_name, &body, &[&tag], NOW + i as i64))
            .await
            .unwrap();
        digests.push(digest_of(&body));
    }
    digests
}

fn keep_last(n: u32) -> RetentionPolicy {
    RetentionPolicy {
        keep_last_pushed: Some(n),
        ..RetentionPolicy::default()
    }
}

fn tag_names(snapshot: &RepoSnapshot) -> Vec<String> {
    let mut names: Vec<String> = snapshot.tags.iter().map(|t| t.name.clone()).collect();
    names.sort();
    names
}

#[tokio::test]
async fn immutable_rules_refuse_tag_moves_and_deletes_until_cleared() {
    for b in backends("immutable_rules_refuse_tag_moves_and_deletes_until_cleared").await {
        let store = &*b.node;
        let app = repo("acme/app");
        store
            .put_manifest(&manifest("acme/app", "{\"v\":1}", &["v1", "dev"], NOW))
            .await
            .unwrap();
        let rule = ImmutableRule {
            target: Target::Namespace("acme".into()),
            tags: vec!["v*".into()],
            excludes: vec!["v0*".into()],
            exempt_cosign: true,
            updated_by: "alice".into(),
            updated_at: NOW,
        };
        store.set_immutable_rule(&rule).await.unwrap();
        assert_eq!(
            store.immutable_rule(&rule.target).await.unwrap().as_ref(),
            Some(&rule),
            "{}",
            b.name
        );
        // Set through one node, obeyed by the other.
        let other = &*b.other_node;
        assert_eq!(
            other.immutable_rules_for(&app).await.unwrap(),
            std::slice::from_ref(&rule)
        );
        let moved = other
            .put_manifest(&manifest("acme/app", "{\"v\":2}", &["v1"], NOW + 1))
            .await;
        assert!(
            matches!(&moved, Err(MetaError::TagImmutable { tag, .. }) if tag == "v1"),
            "{}: {moved:?}",
            b.name
        );
        let deleted = other.delete_tag(&app, "v1", Some("bob")).await;
        assert!(
            matches!(deleted, Err(MetaError::TagImmutable { .. })),
            "{}: {deleted:?}",
            b.name
        );
        let whole = other
            .delete_manifest(&app, &digest_of("{\"v\":1}"), Some("bob"))
            .await;
        assert!(
            matches!(whole, Err(MetaError::TagImmutable { .. })),
            "{}: {whole:?}",
            b.name
        );
        // Tags the rule does not name move freely.
        other
            .put_manifest(&manifest("acme/app", "{\"v\":2}", &["dev"], NOW + 2))
            .await
            .unwrap();
        // Cleared: the tag moves.
        assert!(store.clear_immutable_rule(&rule.target).await.unwrap());
        assert!(!store.clear_immutable_rule(&rule.target).await.unwrap());
        assert!(store.immutable_rules_for(&app).await.unwrap().is_empty());
        other
            .put_manifest(&manifest("acme/app", "{\"v\":2}", &["v1"], NOW + 3))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_plan_applies_only_under_its_revision_and_skips_what_changed_since() {
    for b in backends("a_plan_applies_only_under_its_revision_and_skips_what_changed_since").await {
        let store = &*b.node;
        let app = repo("acme/app");
        let images = seed_images(store, "acme/app", 4).await;
        let target = Target::Repository(app.clone());
        let first = store
            .set_retention_policy(&target, &keep_last(1), None, "alice", NOW)
            .await
            .unwrap();
        assert_eq!(first.revision, 1, "{}", b.name);
        let snapshot = store.retention_snapshot(&app).await.unwrap().unwrap();
        assert_eq!(snapshot.tags.len(), 4);
        assert_eq!(snapshot.manifests.len(), 4);
        let planned = plan(&snapshot, &first.policy, &[], NOW + 100);
        assert_eq!(planned.tags.len(), 3, "{}", b.name);
        let apply = |revision| RetentionApply {
            repo: &app,
            policy_target: &target,
            policy_revision: revision,
            tags: &planned.tags,
            manifests: &planned.manifests,
            actor: Some("alice"),
            now: NOW + 100,
            run_id: None,
        };

        // Edited between the plan and the run (on the other node): the run stops whole.
        let second = b
            .other_node
            .set_retention_policy(&target, &keep_last(2), None, "bob", NOW + 1)
            .await
            .unwrap();
        assert_eq!(second.revision, first.revision + 1);
        let stale = store.apply_retention(&apply(first.revision)).await;
        assert!(
            matches!(stale, Err(MetaError::Conflict(_))),
            "{}: {stale:?}",
            b.name
        );
        assert_eq!(
            store.retention_snapshot(&app).await.unwrap().unwrap(),
            snapshot,
            "{}",
            b.name
        );

        // t0 is pushed again (to t1's image) after the plan: it and both images stay.
        store
            .put_manifest(&manifest("acme/app", "{\"image\":1}", &["t0"], NOW + 50))
            .await
            .unwrap();
        let before = store.last_event_id().await.unwrap();
        let applied = store
            .apply_retention(&apply(second.revision))
            .await
            .unwrap();
        let mut tags = applied.tags.clone();
        tags.sort();
        assert_eq!(tags, ["t1", "t2"], "{}", b.name);
        let mut manifests = applied.manifests.clone();
        manifests.sort();
        let mut expected = vec![images[0].to_string(), images[2].to_string()];
        expected.sort();
        assert_eq!(manifests, expected, "{}", b.name);
        assert_eq!(applied.skipped, 2, "{}", b.name);
        let left = store.retention_snapshot(&app).await.unwrap().unwrap();
        assert_eq!(tag_names(&left), ["t0", "t3"], "{}", b.name);
        // Each delete is in the log, as the registry's own deletes are.
        let kinds: Vec<EventKind> = store
            .events_after(before, 100)
            .await
            .unwrap()
            .iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            [
                EventKind::TagDeleted,
                EventKind::TagDeleted,
                EventKind::ManifestDeleted,
                EventKind::ManifestDeleted
            ],
            "{}",
            b.name
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_applying_one_plan_at_once_delete_each_item_once() {
    for b in backends("two_nodes_applying_one_plan_at_once_delete_each_item_once").await {
        let app = repo("acme/app");
        seed_images(&*b.node, "acme/app", 6).await;
        let target = Target::Repository(app.clone());
        let stored = b
            .node
            .set_retention_policy(&target, &keep_last(1), None, "alice", NOW)
            .await
            .unwrap();
        let snapshot = b.node.retention_snapshot(&app).await.unwrap().unwrap();
        let planned = plan(&snapshot, &stored.policy, &[], NOW + 100);
        let before = b.node.last_event_id().await.unwrap();
        let apply = RetentionApply {
            repo: &app,
            policy_target: &target,
            policy_revision: stored.revision,
            tags: &planned.tags,
            manifests: &planned.manifests,
            actor: None,
            now: NOW + 100,
            run_id: None,
        };
        let (one, two) = tokio::join!(
            b.node.apply_retention(&apply),
            b.other_node.apply_retention(&apply)
        );
        let (one, two) = (one.unwrap(), two.unwrap());
        let mut tags: Vec<String> = one.tags.iter().chain(&two.tags).cloned().collect();
        tags.sort();
        assert_eq!(tags, ["t0", "t1", "t2", "t3", "t4"], "{}", b.name);
        assert_eq!(one.manifests.len() + two.manifests.len(), 5, "{}", b.name);
        assert_eq!(
            one.skipped + two.skipped,
            10,
            "{}: the loser skips all",
            b.name
        );
        let events = b.node.events_after(before, 100).await.unwrap().len();
        assert_eq!(events, 10, "{}: one event per delete", b.name);
    }
}

#[tokio::test]
async fn retention_deletes_obey_rules_that_arrive_after_the_plan() {
    for b in backends("retention_deletes_obey_rules_that_arrive_after_the_plan").await {
        let store = &*b.node;
        let app = repo("acme/app");
        seed_images(store, "acme/app", 2).await;
        let target = Target::Repository(app.clone());
        let stored = store
            .set_retention_policy(&target, &keep_last(1), None, "alice", NOW)
            .await
            .unwrap();
        let snapshot = store.retention_snapshot(&app).await.unwrap().unwrap();
        let planned = plan(&snapshot, &stored.policy, &[], NOW + 100);
        b.other_node
            .set_immutable_rule(&ImmutableRule {
                target: Target::Namespace("acme".into()),
                tags: vec!["t0".into()],
                excludes: Vec::new(),
                exempt_cosign: true,
                updated_by: "alice".into(),
                updated_at: NOW,
            })
            .await
            .unwrap();
        let applied = store
            .apply_retention(&RetentionApply {
                repo: &app,
                policy_target: &target,
                policy_revision: stored.revision,
                tags: &planned.tags,
                manifests: &planned.manifests,
                actor: None,
                now: NOW,
                run_id: None,
            })
            .await
            .unwrap();
        assert!(
            applied.tags.is_empty() && applied.manifests.is_empty(),
            "{}: {applied:?}",
            b.name
        );
        assert_eq!(applied.skipped, 2, "{}", b.name);
    }
}

#[tokio::test]
async fn a_started_run_lists_what_it_deleted_until_it_is_finished() {
    for b in backends("a_started_run_lists_what_it_deleted_until_it_is_finished").await {
        let store = &*b.node;
        seed_images(store, "acme/one", 3).await;
        let target = Target::Namespace("acme".into());
        let policy = store
            .set_retention_policy(&target, &keep_last(1), None, "alice", NOW)
            .await
            .unwrap();
        let run = RetentionRunRecord {
            id: 0,
            target: target.clone(),
            trigger: "manual".into(),
            actor: Some("alice".into()),
            started_at: NOW + 10,
            finished_at: NOW + 10,
            tags: Vec::new(),
            manifests: Vec::new(),
            skipped: 0,
            bytes: 0,
            error: None,
        };
        let run_id = store.start_retention_run(&run).await.unwrap();
        let one = repo("acme/one");
        let snapshot = store.retention_snapshot(&one).await.unwrap().unwrap();
        let planned = plan(&snapshot, &policy.policy, &[], NOW + 100);
        store
            .apply_retention(&RetentionApply {
                repo: &one,
                policy_target: &target,
                policy_revision: policy.revision,
                tags: &planned.tags,
                manifests: &planned.manifests,
                actor: Some("alice"),
                now: NOW + 11,
                run_id: Some(run_id),
            })
            .await
            .unwrap();
        // As a crash here would leave it: interrupted, listing what acme/one lost.
        let recorded = b.other_node.retention_runs(&target, 10).await.unwrap();
        assert_eq!(recorded.len(), 1, "{}", b.name);
        let interrupted = &recorded[0];
        assert_eq!(interrupted.id, run_id);
        assert_eq!(interrupted.error.as_deref(), Some(INTERRUPTED_RUN));
        assert_eq!(
            interrupted.tags,
            ["acme/one:t0", "acme/one:t1"],
            "{}",
            b.name
        );
        assert_eq!(interrupted.manifests.len(), 2);
        // Finished, the same record says so, and its event names the run.
        let finished = RetentionRunRecord {
            id: run_id,
            finished_at: NOW + 12,
            tags: interrupted.tags.clone(),
            manifests: interrupted.manifests.clone(),
            bytes: 5,
            ..run.clone()
        };
        let before = store.last_event_id().await.unwrap();
        let event = NewEvent {
            kind: EventKind::RetentionCompleted,
            namespace: "acme".into(),
            repository: None,
            actor: Some("alice".into()),
            data: serde_json::json!({ "target": "acme" }),
        };
        assert_eq!(
            store
                .record_retention_run(&finished, Some(event))
                .await
                .unwrap(),
            run_id
        );
        let events = store.events_after(before, 10).await.unwrap();
        assert_eq!(events.len(), 1, "{}", b.name);
        assert_eq!(events[0].data["run_id"], run_id, "{}", b.name);
        let recorded = store.retention_runs(&target, 10).await.unwrap();
        assert_eq!(recorded.len(), 1);
        assert_eq!(recorded[0].error, None, "{}", b.name);
        assert_eq!((recorded[0].finished_at, recorded[0].bytes), (NOW + 12, 5));
        // A dry run's record is stored whole, newest first.
        let second = store
            .record_retention_run(&RetentionRunRecord { id: 0, ..finished }, None)
            .await
            .unwrap();
        let ids: Vec<i64> = store
            .retention_runs(&target, 10)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect();
        assert_eq!(ids, [second, run_id], "{}", b.name);
    }
}

#[tokio::test]
async fn schedules_move_only_under_the_revision_they_were_read_at() {
    for b in backends("schedules_move_only_under_the_revision_they_were_read_at").await {
        let store = &*b.node;
        seed_images(store, "acme/a", 1).await;
        seed_images(store, "acme/b", 1).await;
        seed_images(store, "other/c", 1).await;
        let names: Vec<String> = store
            .repositories_of_namespace("acme")
            .await
            .unwrap()
            .iter()
            .map(|r| r.to_string())
            .collect();
        assert_eq!(names, ["acme/a", "acme/b"], "{}", b.name);

        let target = Target::Namespace("acme".into());
        let policy = RetentionPolicy {
            schedule: Some("daily".into()),
            tags: vec!["t*".into(), "dev".into()],
            keep_pulled_days: Some(7),
            allow_empty: true,
            ..keep_last(3)
        };
        let stored = store
            .set_retention_policy(&target, &policy, Some(NOW), "alice", NOW - 10)
            .await
            .unwrap();
        assert_eq!(stored.policy, policy, "{}", b.name);
        assert_eq!(
            store.retention_policy(&target).await.unwrap().as_ref(),
            Some(&stored)
        );
        assert!(store
            .due_retention_policies(NOW - 1)
            .await
            .unwrap()
            .is_empty());
        let due = b.other_node.due_retention_policies(NOW).await.unwrap();
        assert_eq!(due, std::slice::from_ref(&stored), "{}", b.name);
        // Two nodes move the same due run: one wins.
        let moved = [
            store
                .set_retention_next_run(&target, stored.revision, Some(NOW + 86_400))
                .await
                .unwrap(),
            b.other_node
                .set_retention_next_run(&target, stored.revision + 1, Some(NOW + 1))
                .await
                .unwrap(),
        ];
        assert_eq!(moved, [true, false], "{}", b.name);
        assert!(store.due_retention_policies(NOW).await.unwrap().is_empty());
        assert!(store.clear_retention_policy(&target).await.unwrap());
        assert!(!store.clear_retention_policy(&target).await.unwrap());
        assert_eq!(store.retention_policy(&target).await.unwrap(), None);
    }
}

#[tokio::test]
async fn pulls_mark_manifests_and_bytes_count_what_no_one_else_uses() {
    for b in backends("pulls_mark_manifests_and_bytes_count_what_no_one_else_uses").await {
        let store = &*b.node;
        let app = repo("acme/app");
        store
            .put_manifest(&manifest("acme/app", "{\"a\":1}", &["latest"], NOW))
            .await
            .unwrap();
        store
            .put_manifest(&manifest("acme/app", "{\"untagged\":1}", &[], NOW))
            .await
            .unwrap();
        // The same untagged image is also in another repository.
        store
            .put_manifest(&manifest("acme/copy", "{\"untagged\":1}", &[], NOW))
            .await
            .unwrap();
        // An index and its child: the child is needed while the index is there.
        let child = manifest("acme/app", "{\"child\":1}", &[], NOW);
        store.put_manifest(&child).await.unwrap();
        let index = NewManifest {
            media_type: INDEX.to_owned(),
            children: vec![child.digest.clone()],
            ..manifest("acme/app", "{\"index\":1}", &["multi"], NOW)
        };
        store.put_manifest(&index).await.unwrap();

        let untagged = digest_of("{\"untagged\":1}");
        store
            .record_pulls(&[PullEvent {
                repo: app.clone(),
                tag: None,
                digest: untagged.clone(),
                at: NOW + 500,
                pulls: 1,
            }])
            .await
            .unwrap();
        let snapshot = store.retention_snapshot(&app).await.unwrap().unwrap();
        let pulled = snapshot
            .manifests
            .iter()
            .find(|m| m.digest == untagged.to_string())
            .unwrap();
        assert_eq!(pulled.last_pulled_at, Some(NOW + 500), "{}", b.name);
        let indexed = snapshot
            .manifests
            .iter()
            .find(|m| m.digest == index.digest.to_string())
            .unwrap();
        assert_eq!(indexed.children, [child.digest.to_string()], "{}", b.name);
        assert!(snapshot.tags.iter().any(|t: &TagFacts| t.name == "multi"));
        assert_eq!(
            store.retention_snapshot(&repo("acme/none")).await.unwrap(),
            None
        );

        // Gone from acme/app only, the shared body stays; gone from both, it is reclaimed.
        let size = "{\"untagged\":1}".len() as u64;
        let gone_here = vec![(app.clone(), vec![untagged.to_string()])];
        assert_eq!(store.unreferenced_bytes(&gone_here).await.unwrap(), 0);
        let gone_both = vec![
            (app.clone(), vec![untagged.to_string()]),
            (repo("acme/copy"), vec![untagged.to_string()]),
        ];
        assert_eq!(
            store.unreferenced_bytes(&gone_both).await.unwrap(),
            size,
            "{}",
            b.name
        );
        assert_eq!(store.unreferenced_bytes(&[]).await.unwrap(), 0);
    }
}

#[tokio::test]
async fn plans_attach_to_accounts_and_organizations_and_read_back_as_facts() {
    for b in backends("plans_attach_to_accounts_and_organizations_and_read_back_as_facts").await {
        Raw::to(&b.database)
            .await
            .run(
                "INSERT INTO users (name, password_hash, is_admin, created_at) \
                 VALUES ('alice', 'x', FALSE, 0), ('root', 'x', TRUE, 0); \
                 INSERT INTO organizations (name, created_at) VALUES ('acme', 0), ('zeta', 0); \
                 INSERT INTO namespaces (name, user_id, created_at) \
                 SELECT name, id, 0 FROM users WHERE name IN ('alice', 'root'); \
                 INSERT INTO namespaces (name, org_id, created_at) \
                 SELECT name, id, 0 FROM organizations WHERE name IN ('acme', 'zeta'); \
                 INSERT INTO teams (org_id, name) \
                 SELECT id, 'devs' FROM organizations WHERE name IN ('acme', 'zeta'); \
                 INSERT INTO team_members (team_id, user_id) \
                 SELECT t.id, u.id FROM teams t, users u \
                 WHERE u.name = 'alice' AND t.name = 'devs';",
            )
            .await;
        let store = &*b.node;
        let limited = Plan::Limited(Rate {
            pulls: 100,
            window_secs: 3600,
        });
        assert!(store.set_plan("alice", limited, "root", NOW).await.unwrap());
        // Setting the same plan again changes nothing.
        assert!(store.set_plan("alice", limited, "root", NOW).await.unwrap());
        assert!(store
            .set_plan("acme", Plan::Unlimited, "root", NOW)
            .await
            .unwrap());
        assert!(
            !store
                .set_plan("nobody", limited, "root", NOW)
                .await
                .unwrap(),
            "{}",
            b.name
        );

        let facts = b.other_node.pull_facts("alice").await.unwrap().unwrap();
        assert_eq!(facts.plan, Some(limited), "{}", b.name);
        assert!(!facts.is_site_admin && !facts.is_organization);
        assert_eq!(
            facts.organizations,
            [
                ("acme".to_owned(), Some(Plan::Unlimited)),
                ("zeta".to_owned(), None)
            ],
            "{}",
            b.name
        );
        let root = store.pull_facts("root").await.unwrap().unwrap();
        assert!(root.is_site_admin && root.plan.is_none() && root.organizations.is_empty());
        let org = store.pull_facts("org/acme").await.unwrap().unwrap();
        assert!(org.is_organization);
        assert_eq!(org.plan, Some(Plan::Unlimited));
        assert_eq!(store.pull_facts("nobody").await.unwrap(), None);
        assert_eq!(store.pull_facts("org/nobody").await.unwrap(), None);

        let plans = store.plans().await.unwrap();
        let listed: Vec<(&str, bool, Plan)> = plans
            .iter()
            .map(|p| (p.account.as_str(), p.is_organization, p.plan))
            .collect();
        assert_eq!(
            listed,
            [("acme", true, Plan::Unlimited), ("alice", false, limited)],
            "{}",
            b.name
        );
        assert!(store.clear_plan("alice").await.unwrap());
        assert!(!store.clear_plan("alice").await.unwrap());
        assert_eq!(store.pull_facts("alice").await.unwrap().unwrap().plan, None);
    }
}

#[tokio::test]
async fn each_node_gets_every_other_nodes_spending_once() {
    for b in backends("each_node_gets_every_other_nodes_spending_once").await {
        let (one, two) = (&*b.node, &*b.other_node);
        let spent = |key: &str, advance: i64| vec![(key.to_owned(), advance)];
        let (got, seq_one) = one
            .exchange_spent("n1", &spent("user:alice", 10), 1_000, 0, 0)
            .await
            .unwrap();
        assert!(got.is_empty(), "{}: its own rows are not returned", b.name);
        let (got, seq_two) = two
            .exchange_spent("n2", &spent("user:bob", 20), 2_000, 0, 0)
            .await
            .unwrap();
        let keys: Vec<&str> = got.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["user:alice"], "{}", b.name);
        assert_eq!((got[0].at_us, got[0].advance_us), (1_000, 10));
        assert!(seq_two > seq_one, "{}", b.name);
        // Passing back what it got: nothing twice.
        let (got, again) = two
            .exchange_spent("n2", &[], 3_000, seq_two, 0)
            .await
            .unwrap();
        assert!(got.is_empty() && again == seq_two, "{}: {got:?}", b.name);
        let (got, _) = one
            .exchange_spent("n1", &[], 3_000, seq_one, 0)
            .await
            .unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].key, "user:bob");
        // Rows older than the longest window are forgotten.
        let (got, _) = one
            .exchange_spent("n1", &spent("user:alice", 1), 5_000, 0, 1_500)
            .await
            .unwrap();
        let keys: Vec<&str> = got.iter().map(|r| r.key.as_str()).collect();
        assert_eq!(keys, ["user:bob"], "{}", b.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reader_sees_every_row_of_writers_appending_at_once_exactly_once() {
    for b in backends("a_reader_sees_every_row_of_writers_appending_at_once_exactly_once").await {
        const WRITERS: usize = 4;
        const ROUNDS: usize = 25;
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = if w % 2 == 0 {
                    b.node.clone()
                } else {
                    b.other_node.clone()
                };
                tokio::spawn(async move {
                    for round in 0..ROUNDS {
                        let spent = vec![(format!("w{w}:r{round}"), 1)];
                        store
                            .exchange_spent(&format!("n{w}"), &spent, 1_000, i64::MAX, 0)
                            .await
                            .unwrap();
                    }
                })
            })
            .collect();
        // The reader polls while they write, passing back what it got each time.
        let mut seen: Vec<String> = Vec::new();
        let mut after = 0;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
        while seen.len() < WRITERS * ROUNDS && std::time::Instant::now() < deadline {
            let (rows, last) = b
                .other_node
                .exchange_spent("reader", &[], 1_000, after, 0)
                .await
                .unwrap();
            seen.extend(rows.into_iter().map(|r| r.key));
            after = last;
            tokio::task::yield_now().await;
        }
        for writer in writers {
            writer.await.unwrap();
        }
        let (rest, _) = b
            .node
            .exchange_spent("reader", &[], 1_000, after, 0)
            .await
            .unwrap();
        assert!(
            rest.is_empty(),
            "{}: rows skipped and found late: {rest:?}",
            b.name
        );
        let total = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), total, "{}: a row was returned twice", b.name);
        assert_eq!(total, WRITERS * ROUNDS, "{}", b.name);
    }
}

fn key(target: &Target, name: &str) -> TrustedKeyRecord {
    TrustedKeyRecord {
        target: target.clone(),
        name: name.to_owned(),
        algorithm: "ecdsa-p256".into(),
        pem: "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n".into(),
        fingerprint: format!("sha256:{name}"),
        added_by: "alice".into(),
        added_at: NOW,
    }
}

fn event(kind: EventKind, repository: &str) -> NewEvent {
    NewEvent::about(kind, repository, Some("alice"), serde_json::json!({}))
}

#[tokio::test]
async fn trusted_keys_and_pull_policies_change_with_their_events() {
    for b in backends("trusted_keys_and_pull_policies_change_with_their_events").await {
        let store = &*b.node;
        let ns = Target::Namespace("acme".into());
        let app = Target::Repository(repo("acme/app"));
        let before = store.last_event_id().await.unwrap();
        store
            .add_trusted_key(
                &key(&ns, "release"),
                event(EventKind::SignatureChanged, "acme/app"),
            )
            .await
            .unwrap();
        store
            .add_trusted_key(
                &key(&app, "ci"),
                event(EventKind::SignatureChanged, "acme/app"),
            )
            .await
            .unwrap();
        let twice = b
            .other_node
            .add_trusted_key(
                &key(&ns, "release"),
                event(EventKind::SignatureChanged, "acme/app"),
            )
            .await;
        assert!(
            matches!(twice, Err(MetaError::Conflict(_))),
            "{}: {twice:?}",
            b.name
        );
        assert_eq!(
            store.trusted_keys(&ns).await.unwrap(),
            [key(&ns, "release")]
        );
        let names: Vec<String> = store
            .trusted_keys_for(&repo("acme/app"))
            .await
            .unwrap()
            .into_iter()
            .map(|k| k.name)
            .collect();
        assert_eq!(names, ["ci", "release"], "{}: its own first", b.name);
        assert!(store
            .remove_trusted_key(&app, "ci", event(EventKind::SignatureChanged, "acme/app"))
            .await
            .unwrap());
        assert!(!store
            .remove_trusted_key(&app, "ci", event(EventKind::SignatureChanged, "acme/app"))
            .await
            .unwrap());

        let policy = StoredPullPolicy {
            target: ns.clone(),
            policy: PullPolicy {
                require_signature: true,
                block_severity: Some(Severity::High),
                allow_unscanned: false,
            },
            updated_by: "alice".into(),
            updated_at: NOW,
        };
        store
            .set_pull_policy(&policy, event(EventKind::SignatureChanged, "acme/app"))
            .await
            .unwrap();
        assert_eq!(
            b.other_node.pull_policies().await.unwrap(),
            std::slice::from_ref(&policy)
        );
        assert!(store
            .clear_pull_policy(&ns, event(EventKind::SignatureChanged, "acme/app"))
            .await
            .unwrap());
        assert!(!store
            .clear_pull_policy(&ns, event(EventKind::SignatureChanged, "acme/app"))
            .await
            .unwrap());
        assert!(store.pull_policies().await.unwrap().is_empty());
        // Two adds, a remove, a set and a clear that took: five events; the refusals none.
        let logged = store.events_after(before, 100).await.unwrap().len();
        assert_eq!(logged, 5, "{}", b.name);
    }
}

#[tokio::test]
async fn signature_states_follow_their_images_and_index_children_inherit_verification() {
    for b in
        backends("signature_states_follow_their_images_and_index_children_inherit_verification")
            .await
    {
        let store = &*b.node;
        let app = repo("acme/app");
        let child = manifest("acme/app", "{\"child\":1}", &[], NOW);
        store.put_manifest(&child).await.unwrap();
        let index = NewManifest {
            media_type: INDEX.to_owned(),
            children: vec![child.digest.clone()],
            ..manifest("acme/app", "{\"index\":1}", &["latest"], NOW)
        };
        store.put_manifest(&index).await.unwrap();
        store
            .put_manifest(&manifest("acme/tool", "{\"tool\":1}", &["x"], NOW))
            .await
            .unwrap();
        let verified = ImageSignature {
            state: SignatureState::Verified,
            keys: vec!["release".into()],
            reasons: vec![],
        };
        let signed = ImageSignature {
            state: SignatureState::Signed,
            keys: vec![],
            reasons: vec!["signed by a key nobody trusts".into()],
        };
        let changed = |e| event(e, "acme/app");
        assert!(store
            .record_signature_state(
                &app,
                &index.digest,
                &verified,
                NOW,
                changed(EventKind::SignatureChanged)
            )
            .await
            .unwrap());
        assert!(
            !b.other_node
                .record_signature_state(
                    &app,
                    &index.digest,
                    &verified,
                    NOW,
                    changed(EventKind::SignatureChanged)
                )
                .await
                .unwrap(),
            "{}: the same state is no change",
            b.name
        );
        let tool = repo("acme/tool");
        let tool_digest = digest_of("{\"tool\":1}");
        assert!(store
            .record_signature_state(
                &tool,
                &tool_digest,
                &signed,
                NOW,
                event(EventKind::SignatureChanged, "acme/tool")
            )
            .await
            .unwrap());

        let states = store
            .signature_states(&app, &[index.digest.clone(), child.digest.clone()])
            .await
            .unwrap();
        assert_eq!(
            states,
            [(index.digest.clone(), verified.clone())],
            "{}",
            b.name
        );
        // Why a signed image does not verify is kept with its state.
        assert_eq!(
            store
                .signature_states(&tool, std::slice::from_ref(&tool_digest))
                .await
                .unwrap(),
            [(tool_digest.clone(), signed.clone())],
            "{}",
            b.name
        );
        assert!(
            store.verified_in(&app, &child.digest).await.unwrap(),
            "{}",
            b.name
        );
        assert!(store.verified_in(&app, &index.digest).await.unwrap());
        assert!(!store.verified_in(&tool, &tool_digest).await.unwrap());
        let mut signed_images = store
            .signed_images(&Target::Namespace("acme".into()))
            .await
            .unwrap();
        signed_images.sort_by_key(|(r, _)| r.to_string());
        assert_eq!(
            signed_images,
            [
                (app.clone(), index.digest.clone()),
                (tool.clone(), tool_digest.clone())
            ],
            "{}",
            b.name
        );
        assert!(store
            .signed_images(&Target::Namespace("acm".into()))
            .await
            .unwrap()
            .is_empty());

        // Unsigned is no row.
        assert!(store
            .record_signature_state(
                &tool,
                &tool_digest,
                &ImageSignature::unsigned(),
                NOW,
                event(EventKind::SignatureChanged, "acme/tool")
            )
            .await
            .unwrap());
        assert!(store
            .signature_states(&tool, std::slice::from_ref(&tool_digest))
            .await
            .unwrap()
            .is_empty());
        // The state goes with its manifest: pushed again later, it starts unsigned.
        assert!(store
            .delete_manifest(&app, &index.digest, Some("alice"))
            .await
            .unwrap());
        store.put_manifest(&index).await.unwrap();
        assert!(
            store
                .signature_states(&app, std::slice::from_ref(&index.digest))
                .await
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
    }
}

fn job(kind: &str, key: &str) -> NewJob {
    NewJob {
        kind: kind.to_owned(),
        payload: serde_json::json!({ "key": key }).to_string(),
        due_at_ms: 0,
        max_attempts: 3,
        unique_key: Some(key.to_owned()),
    }
}

#[tokio::test]
async fn an_event_feed_is_handed_on_once_whichever_node_tries() {
    for b in backends("an_event_feed_is_handed_on_once_whichever_node_tries").await {
        let (one, two) = (&*b.node, &*b.other_node);
        let start = one.scan_cursor("scanner").await.unwrap();
        let (jobs_a, jobs_b) = ([job("scan", "scan:a")], [job("scan", "scan:b")]);
        let both = tokio::join!(
            one.hand_on_scans("scanner", start, start + 5, &jobs_a),
            two.hand_on_scans("scanner", start, start + 5, &jobs_b),
        );
        let won = [both.0.unwrap(), both.1.unwrap()];
        assert_eq!(won.iter().filter(|w| **w).count(), 1, "{}: {won:?}", b.name);
        assert_eq!(two.scan_cursor("scanner").await.unwrap(), start + 5);
        // The signature feed: the same shape, its own cursor.
        assert!(one
            .hand_on_signature_events("signatures", 0, 3, &[job("verify", "verify:x")])
            .await
            .unwrap());
        assert!(!two
            .hand_on_signature_events("signatures", 0, 3, &[job("verify", "verify:y")])
            .await
            .unwrap());
        // A feed never seen before starts where it is told.
        assert!(one.hand_on_scans("fresh", 7, 9, &[]).await.unwrap());
        assert_eq!(one.scan_cursor("fresh").await.unwrap(), 9);

        let claimed = one.claim_jobs(i64::MAX / 2, 60_000, 10).await.unwrap();
        let mut kinds: Vec<&str> = claimed.iter().map(|j| j.kind.as_str()).collect();
        kinds.sort();
        assert_eq!(
            kinds,
            ["scan", "verify"],
            "{}: only the winners' jobs",
            b.name
        );
        let payloads: Vec<&str> = claimed.iter().map(|j| j.payload.as_str()).collect();
        assert!(
            payloads.contains(&r#"{"key":"verify:x"}"#),
            "{}: {payloads:?}",
            b.name
        );
    }
}

fn advisory(id: &str, package: &str) -> Advisory {
    Advisory {
        id: id.to_owned(),
        modified: "2024-01-01T00:00:00Z".into(),
        summary: format!("{id} in {package}"),
        aliases: vec![],
        severity: berth_scan::Severity::High,
        score: Some(7.5),
        affected: vec![Affected {
            ecosystem: Ecosystem::Debian,
            release: Some("12".into()),
            package: package.to_owned(),
            ranges: vec![],
            versions: vec!["1.0".into()],
        }],
    }
}

fn status(generation: i64, advisories: u64) -> VulnDbStatus {
    VulnDbStatus {
        generation,
        imported_at: NOW,
        source: "/tmp/osv".into(),
        advisories,
        skipped: 0,
        ignored: 0,
        by_ecosystem: [("Debian".to_owned(), advisories)].into_iter().collect(),
        newest_modified: Some("2024-01-01T00:00:00Z".into()),
    }
}

#[tokio::test]
async fn an_import_is_invisible_until_committed_and_replaces_the_last_whole() {
    for b in backends("an_import_is_invisible_until_committed_and_replaces_the_last_whole").await {
        let store = &*b.node;
        assert_eq!(store.vulndb_status().await.unwrap(), None);
        let first = store.begin_vulndb_import().await.unwrap();
        store
            .add_advisories(
                first,
                &[advisory("CVE-1", "openssl"), advisory("CVE-2", "zlib")],
            )
            .await
            .unwrap();
        // Repeated ids within and across batches: the last wins.
        let mut newer = advisory("CVE-1", "openssl");
        newer.summary = "newer".into();
        store
            .add_advisories(first, &[advisory("CVE-1", "openssl"), newer.clone()])
            .await
            .unwrap();
        assert!(
            store
                .advisories_for(Ecosystem::Debian, "openssl")
                .await
                .unwrap()
                .is_empty(),
            "{}: not current before its commit",
            b.name
        );
        store.commit_vulndb_import(&status(first, 2)).await.unwrap();
        assert_eq!(
            b.other_node
                .advisories_for(Ecosystem::Debian, "openssl")
                .await
                .unwrap(),
            [newer],
            "{}",
            b.name
        );
        assert_eq!(store.vulndb_status().await.unwrap(), Some(status(first, 2)));

        // An import left unfinished is dropped by the next; the committed one stays current.
        let abandoned = store.begin_vulndb_import().await.unwrap();
        assert!(abandoned > first);
        store
            .add_advisories(abandoned, &[advisory("CVE-9", "curl")])
            .await
            .unwrap();
        let second = store.begin_vulndb_import().await.unwrap();
        assert!(second > first, "{}", b.name);
        store
            .add_advisories(second, &[advisory("CVE-3", "zlib")])
            .await
            .unwrap();
        assert_eq!(
            store
                .advisories_for(Ecosystem::Debian, "zlib")
                .await
                .unwrap()[0]
                .id,
            "CVE-2"
        );
        store
            .commit_vulndb_import(&status(second, 1))
            .await
            .unwrap();
        let zlib: Vec<String> = store
            .advisories_for(Ecosystem::Debian, "zlib")
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.id)
            .collect();
        assert_eq!(zlib, ["CVE-3"], "{}", b.name);
        assert!(store
            .advisories_for(Ecosystem::Debian, "curl")
            .await
            .unwrap()
            .is_empty());
        assert!(store
            .advisories_for(Ecosystem::Debian, "openssl")
            .await
            .unwrap()
            .is_empty());
    }
}

#[tokio::test]
async fn a_scan_is_stored_once_with_its_summary_and_event() {
    for b in backends("a_scan_is_stored_once_with_its_summary_and_event").await {
        let store = &*b.node;
        let image = manifest("acme/app", "{\"scan\":1}", &["latest"], NOW);
        store.put_manifest(&image).await.unwrap();
        store
            .put_manifest(&manifest("acme/app", "{\"scan\":2}", &[], NOW))
            .await
            .unwrap();
        store
            .put_manifest(&NewManifest {
                media_type: INDEX.to_owned(),
                children: vec![image.digest.clone()],
                ..manifest("acme/app", "{\"index\":1}", &[], NOW)
            })
            .await
            .unwrap();
        store
            .put_manifest(&manifest("acme/zed", "{\"scan\":3}", &[], NOW))
            .await
            .unwrap();
        let scan = ScanRecord {
            digest: image.digest.to_string(),
            repository: "acme/app".into(),
            scanned_at: NOW + 5,
            db_generation: Some(1),
            os: Some("Debian GNU/Linux 12".into()),
            packages: 120,
            counts: SeverityCounts {
                critical: 1,
                high: 2,
                medium: 0,
                low: 3,
                unknown: 0,
            },
            findings: vec![],
            warnings: vec!["a layer could not be read".into()],
            sbom_digest: None,
        };
        let before = store.last_event_id().await.unwrap();
        let completed = event(EventKind::ScanCompleted, "acme/app");
        store.store_scan(&scan, Some(&completed)).await.unwrap();
        // A job run twice stores it again: one result.
        b.other_node.store_scan(&scan, None).await.unwrap();
        assert_eq!(
            store.scan_result(&scan.digest).await.unwrap().as_ref(),
            Some(&scan),
            "{}",
            b.name
        );
        assert_eq!(store.scan_result("sha256:none").await.unwrap(), None);
        assert_eq!(store.events_after(before, 10).await.unwrap().len(), 1);
        let summaries = store
            .vulnerability_summaries(&[scan.digest.clone(), "sha256:none".into()])
            .await
            .unwrap();
        assert_eq!(summaries.len(), 1, "{}", b.name);
        let summary = summaries[&scan.digest];
        assert_eq!(
            (
                summary.critical,
                summary.high,
                summary.low,
                summary.scanned_at
            ),
            (1, 2, 3, NOW + 5)
        );

        // Image manifests only (no index), in (repository, digest) order, page by page.
        let mut all = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = store
                .image_manifests(after.as_ref().map(|(r, d)| (r.as_str(), d.as_str())), 2)
                .await
                .unwrap();
            if page.is_empty() {
                break;
            }
            after = page.last().cloned();
            all.extend(page);
        }
        let mut expected = vec![
            ("acme/app".to_owned(), image.digest.to_string()),
            ("acme/app".to_owned(), digest_of("{\"scan\":2}").to_string()),
            ("acme/zed".to_owned(), digest_of("{\"scan\":3}").to_string()),
        ];
        expected.sort();
        assert_eq!(all, expected, "{}", b.name);
    }
}
