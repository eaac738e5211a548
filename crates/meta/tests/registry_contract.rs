//! The contract of the registry ports, the Hub's store, the event log, the job queue and
//! garbage collection with usage,
//! run against every
//! backend: SQLite, and a real PostgreSQL (a private cluster from the test kit; skipped with
//! a loud notice when PostgreSQL is not installed, required under `CI=true`). Where
//! PostgreSQL runs transactions side by side, "two nodes" are two stores on one database.

use berth_core::events::{EventKind, NewEvent};
use berth_core::ports::{
    BlobLinks, BlobStore, Collection, EventLog, HubStore, JobQueue, ManifestPlatform, Manifests,
    MetaError, NewJob, NewManifest, PullEvent, Repositories, RetryOutcome, SearchQuery, SearchSort,
    TagSort, Tags, UploadSession, UploadSessions, UsageStore, Viewer,
};
use berth_oci::{Digest, RepoName};
use berth_storage::FsBlobStore;
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;
const OCI: &str = "application/vnd.oci.image.manifest.v1+json";

/// Every port this suite covers, as one object.
trait Store:
    UploadSessions
    + BlobLinks
    + Manifests
    + Tags
    + Repositories
    + HubStore
    + EventLog
    + JobQueue
    + Collection
    + UsageStore
{
}
impl<T> Store for T where
    T: UploadSessions
        + BlobLinks
        + Manifests
        + Tags
        + Repositories
        + HubStore
        + EventLog
        + JobQueue
        + Collection
        + UsageStore
{
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

fn repo(name: &str) -> RepoName {
    name.parse().unwrap()
}

fn session(id: &str, owner: Option<&str>) -> UploadSession {
    UploadSession {
        id: id.to_owned(),
        repo: repo("alice/app"),
        size: 0,
        created_at: NOW,
        updated_at: NOW,
        owner: owner.map(str::to_owned),
    }
}

fn manifest(repo_name: &str, body: &str, blobs: &[&Digest], tags: &[&str]) -> NewManifest {
    NewManifest {
        repo: repo(repo_name),
        digest: Digest::sha256_of(body.as_bytes()),
        media_type: OCI.to_owned(),
        body: body.as_bytes().to_vec(),
        blobs: blobs.iter().map(|d| (*d).clone()).collect(),
        children: vec![],
        subject: None,
        artifact_type: None,
        annotations_json: None,
        platform: ManifestPlatform::None,
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        now: NOW,
        actor: Some("alice".to_owned()),
        events: vec![NewEvent::about(
            EventKind::ManifestPushed,
            repo_name,
            Some("alice"),
            serde_json::json!({ "body": body }),
        )],
    }
}

/// Stores `bytes` as a blob in `blobs` through an upload, as a push does.
async fn stored_blob(blobs: &FsBlobStore, id: &str, bytes: &'static [u8]) -> Digest {
    let digest = Digest::sha256_of(bytes);
    blobs.create_upload(id).await.unwrap();
    let stream: berth_core::ports::ByteStream = Box::pin(futures_util::stream::iter([Ok(
        bytes::Bytes::from_static(bytes),
    )]));
    blobs.append_upload(id, 0, stream, None).await.unwrap();
    blobs
        .commit_upload(id, &digest, bytes.len() as u64)
        .await
        .unwrap();
    digest
}

#[tokio::test]
async fn upload_sessions_advance_by_compare_and_set_on_any_node() {
    for b in backends("upload_sessions_advance_by_compare_and_set_on_any_node").await {
        let s = session("s1", Some("alice"));
        assert!(
            b.node.create_upload_session(&s, None).await.unwrap(),
            "{}",
            b.name
        );
        // The other node sees it at once and continues it.
        let seen = b.other_node.upload_session("s1").await.unwrap().unwrap();
        assert_eq!(seen, s, "{}", b.name);
        assert!(b
            .other_node
            .advance_upload_session("s1", 0, 10, NOW + 1)
            .await
            .unwrap());
        // A stale advance (from the size before) loses, on either node.
        assert!(
            !b.node
                .advance_upload_session("s1", 0, 5, NOW + 2)
                .await
                .unwrap(),
            "{}",
            b.name
        );
        let now = b.node.upload_session("s1").await.unwrap().unwrap();
        assert_eq!((now.size, now.updated_at), (10, NOW + 1), "{}", b.name);

        // Many advances from the same size at once, over both nodes: exactly one wins.
        let racers: Vec<_> = (0..16u64)
            .map(|i| {
                let store = if i % 2 == 0 {
                    b.node.clone()
                } else {
                    b.other_node.clone()
                };
                tokio::spawn(async move {
                    store
                        .advance_upload_session("s1", 10, 20 + i, NOW + 3)
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut winners = 0;
        for racer in racers {
            winners += usize::from(racer.await.unwrap());
        }
        assert_eq!(winners, 1, "{}", b.name);

        assert!(b.node.upload_session("nope").await.unwrap().is_none());
        assert!(!b
            .node
            .advance_upload_session("nope", 0, 1, NOW)
            .await
            .unwrap());
        let stale = b.node.stale_upload_sessions(NOW + 4, 10).await.unwrap();
        assert_eq!(stale.len(), 1, "{}", b.name);
        assert!(b
            .node
            .stale_upload_sessions(NOW + 3, 10)
            .await
            .unwrap()
            .is_empty());
        b.node.remove_upload_session("s1").await.unwrap();
        assert!(b.other_node.upload_session("s1").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_burst_of_uploads_over_two_nodes_cannot_pass_the_cap() {
    for b in backends("a_burst_of_uploads_over_two_nodes_cannot_pass_the_cap").await {
        let racers: Vec<_> = (0..20)
            .map(|i| {
                let store = if i % 2 == 0 {
                    b.node.clone()
                } else {
                    b.other_node.clone()
                };
                tokio::spawn(async move {
                    let s = session(&format!("burst-{i}"), Some("bob"));
                    store.create_upload_session(&s, Some(3)).await.unwrap()
                })
            })
            .collect();
        let mut created = 0;
        for racer in racers {
            created += usize::from(racer.await.unwrap());
        }
        assert_eq!(created, 3, "{}", b.name);
        // Other owners and anonymous sessions are not counted against bob.
        assert!(b
            .node
            .create_upload_session(&session("carol-1", Some("carol")), Some(3))
            .await
            .unwrap());
        assert!(b
            .node
            .create_upload_session(&session("anon-1", None), Some(3))
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn completing_an_upload_links_the_blob_only_when_its_bytes_are_stored() {
    for b in backends("completing_an_upload_links_the_blob_only_when_its_bytes_are_stored").await {
        let data = tempfile::tempdir().unwrap();
        let blobs = FsBlobStore::open(data.path()).unwrap();
        let digest = stored_blob(&blobs, "u1", b"layer bytes").await;
        b.node
            .create_upload_session(&session("u1", None), None)
            .await
            .unwrap();
        b.node
            .complete_upload_session("u1", &digest, 11, NOW, &blobs as &dyn BlobStore, None)
            .await
            .unwrap();
        assert!(
            b.node.upload_session("u1").await.unwrap().is_none(),
            "{}",
            b.name
        );
        assert_eq!(
            b.other_node
                .linked_blob_size(&repo("alice/app"), &digest)
                .await
                .unwrap(),
            Some(11),
            "{}",
            b.name
        );
        assert!(b.node.repository_exists(&repo("alice/app")).await.unwrap());

        // Bytes that are not there: refused, and the session is still open to retry.
        let missing = Digest::sha256_of(b"never stored");
        b.node
            .create_upload_session(&session("u2", None), None)
            .await
            .unwrap();
        let refused = b
            .node
            .complete_upload_session("u2", &missing, 12, NOW, &blobs as &dyn BlobStore, None)
            .await;
        assert!(
            matches!(refused, Err(MetaError::BlobCollected(_))),
            "{}: {refused:?}",
            b.name
        );
        assert!(
            b.node.upload_session("u2").await.unwrap().is_some(),
            "{}",
            b.name
        );
        assert_eq!(
            b.node
                .linked_blob_size(&repo("alice/app"), &missing)
                .await
                .unwrap(),
            None
        );

        // Mounting: from a repository that holds it, and not from one that does not.
        let size = b
            .node
            .mount_blob(&repo("bob/copy"), &repo("alice/app"), &digest, NOW)
            .await
            .unwrap();
        assert_eq!(size, Some(11), "{}", b.name);
        let none = b
            .node
            .mount_blob(&repo("bob/copy2"), &repo("nobody/none"), &digest, NOW)
            .await
            .unwrap();
        assert_eq!(none, None, "{}", b.name);
        assert!(
            !b.node.repository_exists(&repo("bob/copy2")).await.unwrap(),
            "{}",
            b.name
        );
        assert!(b
            .node
            .unlink_blob(&repo("bob/copy"), &digest)
            .await
            .unwrap());
        assert!(!b
            .node
            .unlink_blob(&repo("bob/copy"), &digest)
            .await
            .unwrap());
    }
}

#[tokio::test]
async fn manifests_tags_and_referrers_behave_alike() {
    for b in backends("manifests_tags_and_referrers_behave_alike").await {
        let layer = Digest::sha256_of(b"layer");
        let body = r#"{"schemaVersion":2,"layers":["one"]}"#;
        // A manifest naming a blob the repository does not hold: refused, nothing created.
        let refused = b
            .node
            .put_manifest(&manifest("alice/web", body, &[&layer], &["v1"]))
            .await;
        assert!(
            matches!(refused, Err(MetaError::MissingBlob(_))),
            "{}: {refused:?}",
            b.name
        );
        assert!(
            !b.node.repository_exists(&repo("alice/web")).await.unwrap(),
            "{}",
            b.name
        );
        let before = b.node.last_event_id().await.unwrap();

        b.node
            .link_blob(&repo("alice/web"), &layer, 5, NOW)
            .await
            .unwrap();
        let pushed = manifest("alice/web", body, &[&layer], &["v1", "latest", "V2", "a"]);
        b.node.put_manifest(&pushed).await.unwrap();
        let got = b
            .other_node
            .manifest_by_tag(&repo("alice/web"), "v1")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (got.digest.clone(), got.body.clone()),
            (pushed.digest.clone(), pushed.body.clone())
        );
        assert_eq!(got.media_type, OCI);
        let by_digest = b
            .node
            .manifest_by_digest(&repo("alice/web"), &pushed.digest)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_digest.body, pushed.body, "{}", b.name);
        assert!(b
            .node
            .manifest_by_tag(&repo("alice/web"), "nope")
            .await
            .unwrap()
            .is_none());
        assert!(b
            .node
            .manifest_by_tag(&repo("bob/web"), "v1")
            .await
            .unwrap()
            .is_none());

        // Tags in bytewise order (upper case first), paged by `last`.
        let tags = b
            .node
            .list_tags(&repo("alice/web"), None, 100)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(tags, ["V2", "a", "latest", "v1"], "{}", b.name);
        let page = b
            .node
            .list_tags(&repo("alice/web"), Some("a"), 1)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(page, ["latest"], "{}", b.name);
        assert_eq!(
            b.node.list_tags(&repo("nobody/x"), None, 10).await.unwrap(),
            None
        );

        // The push recorded its event after the repository's creation, in one commit.
        let events = b.node.events_after(before, 100).await.unwrap();
        let kinds: Vec<EventKind> = events.iter().map(|e| e.kind).collect();
        assert_eq!(
            kinds,
            [EventKind::RepositoryCreated, EventKind::ManifestPushed],
            "{}",
            b.name
        );
        assert!(events.windows(2).all(|w| w[0].id < w[1].id));

        assert!(b
            .node
            .delete_tag(&repo("alice/web"), "a", Some("alice"))
            .await
            .unwrap());
        assert!(!b
            .node
            .delete_tag(&repo("alice/web"), "a", Some("alice"))
            .await
            .unwrap());
        assert!(b
            .node
            .delete_manifest(&repo("alice/web"), &pushed.digest, Some("alice"))
            .await
            .unwrap());
        assert!(!b
            .node
            .delete_manifest(&repo("alice/web"), &pushed.digest, None)
            .await
            .unwrap());
        assert_eq!(
            b.node
                .list_tags(&repo("alice/web"), None, 100)
                .await
                .unwrap()
                .unwrap(),
            Vec::<String>::new(),
            "{}",
            b.name
        );
        let last = b.node.events_after(before, 100).await.unwrap();
        let deleted = last
            .iter()
            .find(|e| e.kind == EventKind::ManifestDeleted)
            .unwrap();
        assert_eq!(
            deleted.data["tags"],
            serde_json::json!(["V2", "latest", "v1"]),
            "{}",
            b.name
        );
        let tag_deleted = last
            .iter()
            .find(|e| e.kind == EventKind::TagDeleted)
            .unwrap();
        assert_eq!(tag_deleted.data["tag"], "a", "{}", b.name);

        // Referrers: a manifest whose subject is another, filtered by artifact type.
        let subject_body = r#"{"schemaVersion":2,"layers":[]}"#;
        let subject = manifest("alice/web", subject_body, &[], &["base"]);
        b.node.put_manifest(&subject).await.unwrap();
        let mut signature = manifest("alice/web", r#"{"sig":1}"#, &[], &[]);
        signature.subject = Some(subject.digest.clone());
        signature.artifact_type = Some("application/vnd.example.sig".to_owned());
        b.node.put_manifest(&signature).await.unwrap();
        let referrers = b
            .node
            .referrers(&repo("alice/web"), &subject.digest, None)
            .await
            .unwrap();
        assert_eq!(referrers.len(), 1, "{}", b.name);
        assert_eq!(referrers[0].digest, signature.digest);
        assert_eq!(referrers[0].size, 9);
        let other_type = b
            .node
            .referrers(&repo("alice/web"), &subject.digest, Some("text/plain"))
            .await
            .unwrap();
        assert!(other_type.is_empty(), "{}", b.name);
    }
}

#[tokio::test]
async fn a_node_sees_repositories_another_node_created_in_its_catalog() {
    for b in backends("a_node_sees_repositories_another_node_created_in_its_catalog").await {
        let d = Digest::sha256_of(b"x");
        for name in ["b/two", "a/one", "c/three"] {
            b.node.link_blob(&repo(name), &d, 1, NOW).await.unwrap();
        }
        assert_eq!(
            b.other_node.list_repositories(None, 100).await.unwrap(),
            ["a/one", "b/two", "c/three"],
            "{}",
            b.name
        );
        assert_eq!(
            b.other_node
                .list_repositories(Some("a/one"), 1)
                .await
                .unwrap(),
            ["b/two"]
        );
        // Created on the first node after the second cached its catalog.
        b.node.link_blob(&repo("a/zero"), &d, 1, NOW).await.unwrap();
        assert_eq!(
            b.other_node.list_repositories(None, 2).await.unwrap(),
            ["a/one", "a/zero"],
            "{}",
            b.name
        );
    }
}

fn job(kind: &str, key: Option<&str>, due: i64) -> NewJob {
    NewJob {
        kind: kind.to_owned(),
        payload: "{}".to_owned(),
        due_at_ms: due,
        max_attempts: 2,
        unique_key: key.map(str::to_owned),
    }
}

#[tokio::test]
async fn each_job_is_claimed_by_one_node_and_leases_hand_over() {
    for b in backends("each_job_is_claimed_by_one_node_and_leases_hand_over").await {
        assert!(b.node.enqueue_job(&job("gc", Some("gc"), 0)).await.unwrap());
        assert!(
            !b.other_node
                .enqueue_job(&job("gc", Some("gc"), 0))
                .await
                .unwrap(),
            "{}",
            b.name
        );
        for _ in 0..40 {
            b.node.enqueue_job(&job("work", None, 0)).await.unwrap();
        }
        // Both nodes claim at once, again and again: every job is handed out exactly once.
        let claimers: Vec<_> = [b.node.clone(), b.other_node.clone()]
            .into_iter()
            .map(|store| {
                tokio::spawn(async move {
                    let mut ids = Vec::new();
                    loop {
                        let claimed = store.claim_jobs(1_000, 60_000, 3).await.unwrap();
                        if claimed.is_empty() {
                            return ids;
                        }
                        ids.extend(claimed.into_iter().map(|job| job.id));
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for claimer in claimers {
            all.extend(claimer.await.unwrap());
        }
        let count = all.len();
        all.sort_unstable();
        all.dedup();
        assert_eq!((count, all.len()), (41, 41), "{}", b.name);

        // A lease that ran out is claimed again by the other node; the first node's lease
        // is then worth nothing.
        b.node
            .enqueue_job(&job("late", Some("late"), 2_000))
            .await
            .unwrap();
        let first = b.node.claim_jobs(2_000, 100, 1).await.unwrap().remove(0);
        assert!(
            b.other_node
                .claim_jobs(2_050, 100, 1)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            b.name
        );
        let second = b
            .other_node
            .claim_jobs(2_200, 100, 1)
            .await
            .unwrap()
            .remove(0);
        assert_eq!((second.id, second.attempt), (first.id, 2), "{}", b.name);
        assert!(
            !b.node.finish_job(first.id, &first.lease).await.unwrap(),
            "{}",
            b.name
        );
        // Out of attempts: the retry buries it.
        let outcome = b
            .other_node
            .retry_job(second.id, &second.lease, 3_000, "boom")
            .await
            .unwrap();
        assert_eq!(outcome, RetryOutcome::Dead, "{}", b.name);
        let dead = b.node.list_jobs(true, 10).await.unwrap();
        assert_eq!(dead.len(), 1, "{}", b.name);
        assert_eq!(dead[0].last_error.as_deref(), Some("boom"));
        assert_eq!(
            b.node.prune_dead_jobs(i64::MAX).await.unwrap(),
            1,
            "{}",
            b.name
        );
    }
}

fn search_for(
    text: &str,
    viewer: Viewer,
    sort: SearchSort,
    offset: u32,
    limit: u32,
) -> SearchQuery {
    SearchQuery {
        text: text.to_owned(),
        viewer,
        name_patterns: Vec::new(),
        official_only: false,
        min_stars: 0,
        namespace: None,
        sort,
        offset,
        limit,
    }
}

fn pull(repo_name: &str, digest: &Digest, tag: Option<&str>, at: i64) -> PullEvent {
    PullEvent {
        repo: repo(repo_name),
        tag: tag.map(str::to_owned),
        digest: digest.clone(),
        at,
        pulls: 1,
    }
}

#[tokio::test]
async fn search_ranks_in_the_same_tiers_and_hides_what_the_viewer_may_not_see() {
    for b in backends("search_ranks_in_the_same_tiers_and_hides_what_the_viewer_may_not_see").await
    {
        let d = Digest::sha256_of(b"x");
        for name in [
            "bob/my-redis",
            "alice/redis-tools",
            "library/redis",
            "carol/cache",
            "dave/other",
            "erin/redis-cli",
        ] {
            b.node.link_blob(&repo(name), &d, 1, NOW).await.unwrap();
        }
        assert!(b
            .node
            .set_descriptions(&repo("carol/cache"), Some("A Redis cache"), None)
            .await
            .unwrap());
        let popular = Digest::sha256_of(b"popular");
        let pulls: Vec<PullEvent> = (0..3)
            .map(|i| pull("erin/redis-cli", &popular, None, NOW + i))
            .collect();
        b.node.record_pulls(&pulls).await.unwrap();

        let names = |page: berth_core::ports::SearchPage| {
            (
                page.total,
                page.results.into_iter().map(|r| r.name).collect::<Vec<_>>(),
            )
        };
        let all = b
            .node
            .search(&search_for(
                "Redis",
                Viewer::Everything,
                SearchSort::Relevance,
                0,
                10,
            ))
            .await
            .unwrap();
        assert_eq!(
            names(all),
            (
                5,
                vec![
                    // The exact name, then names starting with the query (more pulled
                    // first), then the query later in the name, then the description.
                    "library/redis".to_owned(),
                    "erin/redis-cli".to_owned(),
                    "alice/redis-tools".to_owned(),
                    "bob/my-redis".to_owned(),
                    "carol/cache".to_owned(),
                ]
            ),
            "{}",
            b.name
        );
        let page = b
            .node
            .search(&search_for(
                "redis",
                Viewer::Everything,
                SearchSort::Relevance,
                1,
                2,
            ))
            .await
            .unwrap();
        assert_eq!(
            names(page),
            (
                5,
                vec!["erin/redis-cli".to_owned(), "alice/redis-tools".to_owned()]
            ),
            "{}",
            b.name
        );
        let by_pulls = b
            .node
            .search(&search_for(
                "redis",
                Viewer::Everything,
                SearchSort::Pulls,
                0,
                2,
            ))
            .await
            .unwrap();
        assert_eq!(
            names(by_pulls),
            (
                5,
                vec!["erin/redis-cli".to_owned(), "alice/redis-tools".to_owned()]
            ),
            "{}",
            b.name
        );
        // A new namespace's repositories start private: anonymous callers find only the
        // public official image, in results and total alike.
        let public = b
            .node
            .search(&search_for(
                "redis",
                Viewer::Public,
                SearchSort::Relevance,
                0,
                10,
            ))
            .await
            .unwrap();
        assert_eq!(
            names(public),
            (1, vec!["library/redis".to_owned()]),
            "{}",
            b.name
        );
        let nothing = b
            .node
            .search(&search_for(
                " -/- ",
                Viewer::Everything,
                SearchSort::Relevance,
                0,
                10,
            ))
            .await
            .unwrap();
        assert_eq!(nothing.total, 0, "{}", b.name);
        let mut scoped = search_for("redis", Viewer::Everything, SearchSort::Relevance, 0, 10);
        scoped.name_patterns = vec!["alice/*".to_owned(), "bob/my-*".to_owned()];
        assert_eq!(
            names(b.node.search(&scoped).await.unwrap()),
            (
                2,
                vec!["alice/redis-tools".to_owned(), "bob/my-redis".to_owned()]
            ),
            "{}",
            b.name
        );
        let mut every = search_for("", Viewer::Everything, SearchSort::LastUpdated, 0, 100);
        every.namespace = Some("carol".to_owned());
        assert_eq!(
            names(b.node.search(&every).await.unwrap()),
            (1, vec!["carol/cache".to_owned()])
        );
    }
}

#[tokio::test]
async fn a_platform_manifest_pulled_after_its_index_is_not_counted_twice() {
    for b in backends("a_platform_manifest_pulled_after_its_index_is_not_counted_twice").await {
        let child = manifest("alice/multi", r#"{"child":1}"#, &[], &[]);
        b.node.put_manifest(&child).await.unwrap();
        let mut index = manifest("alice/multi", r#"{"index":1}"#, &[], &["v1"]);
        index.children = vec![child.digest.clone()];
        b.node.put_manifest(&index).await.unwrap();
        b.node
            .record_pulls(&[
                pull("alice/multi", &index.digest, Some("v1"), NOW + 10),
                pull("alice/multi", &child.digest, None, NOW + 11),
            ])
            .await
            .unwrap();
        // Another node flushes its own batch: a pull of the index by digest counts.
        b.other_node
            .record_pulls(&[
                pull("alice/multi", &index.digest, None, NOW + 5),
                pull("gone/repo", &index.digest, None, NOW + 5),
            ])
            .await
            .unwrap();
        let info = b
            .node
            .repository_info(&repo("alice/multi"))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (info.pull_count, info.last_pulled_at),
            (2, Some(NOW + 11)),
            "{}",
            b.name
        );
        let (total, tags) = b
            .node
            .tag_records(&repo("alice/multi"), TagSort::LastPulled, 0, 10)
            .await
            .unwrap();
        assert_eq!(total, 1, "{}", b.name);
        // The pull of the child by digest went through the index's tag.
        assert_eq!(tags[0].last_pulled_at, Some(NOW + 11), "{}", b.name);
        assert_eq!(tags[0].digest, index.digest);
    }
}

#[tokio::test]
async fn a_marked_blob_is_never_linked_again_and_a_referenced_one_is_never_marked() {
    for b in
        backends("a_marked_blob_is_never_linked_again_and_a_referenced_one_is_never_marked").await
    {
        let stale = Digest::sha256_of(b"stale");
        let used = Digest::sha256_of(b"used");
        b.node
            .link_blob(&repo("alice/app"), &stale, 10, NOW)
            .await
            .unwrap();
        b.node
            .link_blob(&repo("alice/app"), &used, 20, NOW)
            .await
            .unwrap();
        b.node
            .put_manifest(&manifest("alice/app", r#"{"uses":1}"#, &[&used], &["v1"]))
            .await
            .unwrap();
        let window = b.node.collectable_blobs(None, 100, NOW + 1).await.unwrap();
        assert_eq!(window.candidates, [(stale.clone(), 10)], "{}", b.name);
        // Both asked: only the unreferenced one is marked, its stale link dropped.
        let marked = b
            .other_node
            .mark_blobs(&[stale.clone(), used.clone()], NOW + 1, NOW + 2)
            .await
            .unwrap();
        assert_eq!(marked, [(stale.clone(), 10)], "{}", b.name);
        assert_eq!(
            b.node
                .linked_blob_size(&repo("alice/app"), &stale)
                .await
                .unwrap(),
            None
        );
        let relinked = b
            .node
            .link_blob(&repo("bob/app"), &stale, 10, NOW + 3)
            .await;
        assert!(
            matches!(relinked, Err(MetaError::BlobCollected(_))),
            "{}: {relinked:?}",
            b.name
        );
        let pushed = b
            .node
            .put_manifest(&manifest("alice/app", r#"{"late":1}"#, &[&stale], &[]))
            .await;
        assert!(
            matches!(pushed, Err(MetaError::MissingBlob(_))),
            "{}: {pushed:?}",
            b.name
        );
        assert_eq!(
            b.node.doomed_blobs(10).await.unwrap(),
            [(stale.clone(), 10)]
        );
        b.node
            .drop_doomed_blobs(std::slice::from_ref(&stale))
            .await
            .unwrap();
        assert!(
            b.node.doomed_blobs(10).await.unwrap().is_empty(),
            "{}",
            b.name
        );

        // A manifest no repository holds any longer is an orphan, and goes.
        let orphan = manifest("alice/app", r#"{"orphan":1}"#, &[], &[]);
        b.node.put_manifest(&orphan).await.unwrap();
        assert!(b
            .node
            .delete_manifest(&repo("alice/app"), &orphan.digest, None)
            .await
            .unwrap());
        let orphans = b.node.orphan_manifests(None, 10).await.unwrap();
        assert_eq!(orphans, [orphan.digest.to_string()], "{}", b.name);
        assert_eq!(b.node.delete_orphan_manifests(&orphans).await.unwrap(), 1);
    }
}

#[tokio::test]
async fn usage_counts_a_blob_once_per_namespace_and_quotas_refuse_the_link() {
    for b in backends("usage_counts_a_blob_once_per_namespace_and_quotas_refuse_the_link").await {
        let shared = Digest::sha256_of(b"shared");
        b.node
            .link_blob(&repo("alice/a"), &shared, 100, NOW)
            .await
            .unwrap();
        b.node
            .link_blob(&repo("alice/b"), &shared, 100, NOW)
            .await
            .unwrap();
        let usage = b.other_node.namespace_usage("alice").await.unwrap();
        assert_eq!((usage.bytes, usage.quota), (100, None), "{}", b.name);
        assert_eq!(
            b.node.repository_usage(&repo("alice/b")).await.unwrap(),
            Some(100)
        );
        assert_eq!(
            b.node.repository_usage(&repo("alice/none")).await.unwrap(),
            None
        );

        b.node.set_quota("alice", Some(150)).await.unwrap();
        let big = Digest::sha256_of(b"big");
        assert_eq!(
            b.node
                .quota_check(&repo("alice/c"), &big, 60)
                .await
                .unwrap(),
            Some((100, 150)),
            "{}",
            b.name
        );
        // A blob the namespace holds already adds nothing.
        assert_eq!(
            b.node
                .quota_check(&repo("alice/c"), &shared, 100)
                .await
                .unwrap(),
            None
        );
        // A session about to be completed reads the same answers with it.
        b.node
            .create_upload_session(&session("q1", None), None)
            .await
            .unwrap();
        let (found, precheck) = b
            .other_node
            .upload_session_to_complete("q1", &repo("alice/app"), &big)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(found.id, "q1");
        assert_eq!(precheck.over_quota(60), Some((100, 150)), "{}", b.name);
        assert_eq!(precheck.over_quota(50), None, "{}", b.name);
        let (_, precheck) = b
            .other_node
            .upload_session_to_complete("q1", &repo("alice/app"), &shared)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(precheck.over_quota(100), None, "{}", b.name);
        assert!(b
            .node
            .upload_session_to_complete("nope", &repo("alice/app"), &big)
            .await
            .unwrap()
            .is_none());
        let refused = b.node.link_blob(&repo("alice/c"), &big, 60, NOW).await;
        assert!(
            matches!(
                refused,
                Err(MetaError::QuotaExceeded {
                    used: 100,
                    quota: 150
                })
            ),
            "{}: {refused:?}",
            b.name
        );
        assert!(
            !b.node.repository_exists(&repo("alice/c")).await.unwrap(),
            "{}",
            b.name
        );
        // Links from two nodes at once cannot both pass the quota with its last bytes.
        let racers: Vec<_> = (0..6u8)
            .map(|i| {
                let store = if i % 2 == 0 {
                    b.node.clone()
                } else {
                    b.other_node.clone()
                };
                tokio::spawn(async move {
                    let digest = Digest::sha256_of(&[i]);
                    store.link_blob(&repo("alice/d"), &digest, 20, NOW).await
                })
            })
            .collect();
        let mut linked = 0;
        for racer in racers {
            match racer.await.unwrap() {
                Ok(()) => linked += 1,
                Err(MetaError::QuotaExceeded { .. }) => {}
                Err(other) => panic!("{}: {other:?}", b.name),
            }
        }
        assert_eq!(linked, 2, "{}", b.name);
        assert_eq!(b.node.namespace_usage("alice").await.unwrap().bytes, 140);
        assert_eq!(
            b.node.recompute_usage().await.unwrap().corrected,
            0,
            "{}",
            b.name
        );
        b.node.set_quota("alice", None).await.unwrap();
        b.node
            .link_blob(&repo("alice/c"), &big, 60, NOW)
            .await
            .unwrap();
    }
}
