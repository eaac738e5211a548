//! The contract of the replication port, run against every backend: SQLite, and a real
//! PostgreSQL (a private cluster from the test kit; skipped with a loud notice when
//! PostgreSQL is not installed, required under `CI=true`). Rules (create, refuse a second
//! of a name, list, enable, delete with their history), runs (start, finish with their
//! event, history newest first), and the push feed's hand-on raced from two nodes.

use berth_core::events::{EventKind, NewEvent};
use berth_core::ports::{
    EventLog, JobQueue, MetaError, NewJob, ReplicationRecord, ReplicationRunRecord,
    ReplicationStore, RepositoryAccess,
};
use berth_meta::{PostgresMeta, SqliteMeta};
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;
const NOW_MS: i64 = NOW * 1000;

trait Store: ReplicationStore + EventLog + JobQueue + RepositoryAccess {}
impl<T> Store for T where T: ReplicationStore + EventLog + JobQueue + RepositoryAccess {}

/// One backend under test: two stores ("nodes") on the same database.
struct Backend {
    name: &'static str,
    node: Arc<dyn Store>,
    other_node: Arc<dyn Store>,
    _dir: tempfile::TempDir,
}

async fn backends(test: &str) -> Vec<Backend> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("berth.db");
    let sqlite = SqliteMeta::open(&path).await.unwrap();
    let sqlite_other = SqliteMeta::open(&path).await.unwrap();
    let mut all = vec![Backend {
        name: "sqlite",
        node: Arc::new(sqlite),
        other_node: Arc::new(sqlite_other),
        _dir: dir,
    }];
    if let Some(db) = berth_testkit::postgres::database(test) {
        let node = PostgresMeta::connect(&db.url).await.unwrap();
        let other = PostgresMeta::connect(&db.url).await.unwrap();
        all.push(Backend {
            name: "postgres",
            node: Arc::new(node),
            other_node: Arc::new(other),
            _dir: tempfile::tempdir().unwrap(),
        });
    }
    all
}

fn rule(name: &str) -> ReplicationRecord {
    ReplicationRecord {
        name: name.to_owned(),
        direction: "push".to_owned(),
        source: "alice/*".to_owned(),
        tags: vec!["v*".to_owned(), "latest".to_owned()],
        remote_url: "https://mirror.example.test".to_owned(),
        target_namespace: Some("backup".to_owned()),
        flatten: true,
        username: Some("robot".to_owned()),
        password_sealed: Some(vec![0, 1, 2, 255]),
        tls_verify: false,
        trigger: "push".to_owned(),
        deletes: true,
        enabled: true,
        created_by: "alice".to_owned(),
        created_at: NOW,
        after_event: 0,
        bandwidth_limit: Some(50 * 1024 * 1024),
    }
}

/// A pull rule with every optional part left out.
fn bare_rule(name: &str) -> ReplicationRecord {
    ReplicationRecord {
        direction: "pull".to_owned(),
        tags: Vec::new(),
        target_namespace: None,
        flatten: false,
        username: None,
        password_sealed: None,
        tls_verify: true,
        trigger: "0 3 * * *".to_owned(),
        deletes: false,
        enabled: false,
        bandwidth_limit: None,
        ..rule(name)
    }
}

fn completed(run_id: i64, rule: &str, status: &str) -> NewEvent {
    NewEvent {
        kind: EventKind::ReplicationCompleted,
        namespace: String::new(),
        repository: None,
        actor: None,
        data: serde_json::json!({ "run_id": run_id, "rule": rule, "status": status }),
    }
}

fn replicate_job(rule: &str, event: i64) -> NewJob {
    NewJob {
        kind: "replication.run".to_owned(),
        payload: format!("{{\"rule\":\"{rule}\",\"event\":{event}}}"),
        due_at_ms: NOW_MS,
        max_attempts: 5,
        unique_key: Some(format!("replication.run:{rule}:{event}")),
    }
}

async fn pending_payloads(meta: &dyn Store) -> Vec<String> {
    let mut payloads: Vec<String> = meta
        .list_jobs(false, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|job| job.payload)
        .collect();
    payloads.sort();
    payloads
}

#[tokio::test]
async fn rules_are_created_once_listed_enabled_and_deleted() {
    for backend in backends("rules_are_created_once_listed_enabled_and_deleted").await {
        let name = backend.name;
        eprintln!("{name}: rules_are_created_once_listed_enabled_and_deleted");
        let meta = &*backend.node;
        // An event before the rule exists: the rule acts only on later ones.
        meta.create_repository(&"alice/app".parse().unwrap(), None, NOW, None)
            .await
            .unwrap();
        let last = meta.last_event_id().await.unwrap();
        assert!(last > 0, "{name}");

        meta.create_replication(&rule("mirror")).await.unwrap();
        let stored = meta.replication("mirror").await.unwrap().unwrap();
        assert_eq!(
            stored,
            ReplicationRecord {
                after_event: last,
                ..rule("mirror")
            },
            "{name}: every field as given, after_event the log's end"
        );
        meta.create_replication(&bare_rule("alpha")).await.unwrap();
        assert_eq!(
            meta.replication("alpha").await.unwrap().unwrap(),
            ReplicationRecord {
                after_event: last,
                ..bare_rule("alpha")
            },
            "{name}: the optional parts stay absent"
        );

        // A second rule of the name is refused and changes nothing.
        let mut again = bare_rule("mirror");
        again.remote_url = "https://elsewhere.example.test".to_owned();
        match meta.create_replication(&again).await {
            Err(MetaError::Conflict(what)) => assert!(what.contains("mirror"), "{name}: {what}"),
            other => panic!("{name}: expected a conflict, got {other:?}"),
        }
        assert_eq!(
            meta.replication("mirror")
                .await
                .unwrap()
                .unwrap()
                .remote_url,
            "https://mirror.example.test",
            "{name}"
        );

        // Listed by name, in byte order on every backend.
        meta.create_replication(&bare_rule("Zeta")).await.unwrap();
        let names: Vec<String> = meta
            .replications()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["Zeta", "alpha", "mirror"], "{name}");
        assert!(meta.replication("nope").await.unwrap().is_none(), "{name}");

        // Enabling and disabling, seen by the other node.
        assert!(meta.set_replication_enabled("mirror", false).await.unwrap());
        assert!(
            !backend
                .other_node
                .replication("mirror")
                .await
                .unwrap()
                .unwrap()
                .enabled,
            "{name}"
        );
        assert!(meta.set_replication_enabled("alpha", true).await.unwrap());
        assert!(
            meta.replication("alpha").await.unwrap().unwrap().enabled,
            "{name}"
        );
        assert!(
            !meta.set_replication_enabled("nope", true).await.unwrap(),
            "{name}: no such rule"
        );

        // Deleting: once true, then false.
        assert!(meta.delete_replication("alpha").await.unwrap(), "{name}");
        assert!(!meta.delete_replication("alpha").await.unwrap(), "{name}");
        assert!(meta.replication("alpha").await.unwrap().is_none(), "{name}");
        let names: Vec<String> = meta
            .replications()
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.name)
            .collect();
        assert_eq!(names, ["Zeta", "mirror"], "{name}");
    }
}

#[tokio::test]
async fn runs_are_recorded_with_their_event_newest_first_and_go_with_their_rule() {
    let test = "runs_are_recorded_with_their_event_newest_first_and_go_with_their_rule";
    for backend in backends(test).await {
        let name = backend.name;
        eprintln!("{name}: {test}");
        let meta = &*backend.node;
        meta.create_replication(&rule("mirror")).await.unwrap();
        meta.create_replication(&bare_rule("other")).await.unwrap();

        let first = meta
            .start_replication_run("mirror", "manual", NOW)
            .await
            .unwrap();
        let second = backend
            .other_node
            .start_replication_run("mirror", "push", NOW + 5)
            .await
            .unwrap();
        let elsewhere = meta
            .start_replication_run("other", "schedule", NOW + 6)
            .await
            .unwrap();
        assert!(second > first, "{name}: ids grow");
        assert_ne!(elsewhere, second, "{name}");

        // Under way: running, nothing counted yet.
        let runs = meta.replication_runs("mirror", 10).await.unwrap();
        assert_eq!(runs.len(), 2, "{name}");
        assert_eq!(
            runs[1],
            ReplicationRunRecord {
                id: first,
                rule: "mirror".to_owned(),
                trigger: "manual".to_owned(),
                status: "running".to_owned(),
                started_at: NOW,
                finished_at: None,
                copied: 0,
                skipped: 0,
                failed: 0,
                items_json: "[]".to_owned(),
            },
            "{name}"
        );

        // Finishing: the run's result and its event, together. The rule, trigger and start
        // the caller passes are not the store's to change.
        let before = meta.last_event_id().await.unwrap();
        let items = r#"[{"item":"alice/app:v1","outcome":"copied","reason":null}]"#;
        let finished = ReplicationRunRecord {
            id: first,
            rule: "other".to_owned(),
            trigger: "schedule".to_owned(),
            status: "partial".to_owned(),
            started_at: 1,
            finished_at: Some(NOW + 9),
            copied: 3,
            skipped: 2,
            failed: 1,
            items_json: items.to_owned(),
        };
        meta.finish_replication_run(&finished, &completed(first, "mirror", "partial"))
            .await
            .unwrap();
        let events = meta.events_after(before, 10).await.unwrap();
        assert_eq!(events.len(), 1, "{name}: one event per finished run");
        assert_eq!(events[0].kind, EventKind::ReplicationCompleted, "{name}");
        assert_eq!(events[0].data["run_id"], first, "{name}");
        assert_eq!(events[0].data["status"], "partial", "{name}");

        let runs = meta.replication_runs("mirror", 10).await.unwrap();
        assert_eq!(
            runs.iter().map(|r| r.id).collect::<Vec<_>>(),
            [second, first],
            "{name}: newest first, the other rule's run not among them"
        );
        assert_eq!(
            runs[1],
            ReplicationRunRecord {
                rule: "mirror".to_owned(),
                trigger: "manual".to_owned(),
                started_at: NOW,
                ..finished.clone()
            },
            "{name}"
        );
        assert_eq!(runs[0].status, "running", "{name}: the other run untouched");

        // Finishing twice keeps the last result.
        let retried = ReplicationRunRecord {
            status: "succeeded".to_owned(),
            finished_at: Some(NOW + 20),
            copied: 6,
            skipped: 0,
            failed: 0,
            items_json: "[]".to_owned(),
            ..finished.clone()
        };
        backend
            .other_node
            .finish_replication_run(&retried, &completed(first, "mirror", "succeeded"))
            .await
            .unwrap();
        let runs = meta.replication_runs("mirror", 1).await.unwrap();
        assert_eq!(runs.len(), 1, "{name}: the limit holds");
        assert_eq!(runs[0].id, second, "{name}");
        let runs = meta.replication_runs("mirror", 10).await.unwrap();
        assert_eq!(runs[1].status, "succeeded", "{name}");
        assert_eq!(runs[1].copied, 6, "{name}");
        assert_eq!(runs[1].failed, 0, "{name}");
        assert_eq!(runs[1].finished_at, Some(NOW + 20), "{name}");
        assert_eq!(
            meta.events_after(before, 10).await.unwrap().len(),
            2,
            "{name}"
        );

        // Deleting the rule deletes its history: a new rule of the name starts afresh.
        assert!(meta.delete_replication("mirror").await.unwrap());
        assert!(meta
            .replication_runs("mirror", 10)
            .await
            .unwrap()
            .is_empty());
        meta.create_replication(&rule("mirror")).await.unwrap();
        assert!(
            meta.replication_runs("mirror", 10)
                .await
                .unwrap()
                .is_empty(),
            "{name}: no history carried over"
        );
        assert_eq!(
            meta.replication_runs("other", 10).await.unwrap().len(),
            1,
            "{name}: the other rule keeps its history"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_feed_is_handed_on_once_whichever_node_does_it() {
    let test = "the_push_feed_is_handed_on_once_whichever_node_does_it";
    for backend in backends(test).await {
        let name = backend.name;
        eprintln!("{name}: {test}");
        let meta = &*backend.node;
        let cursor = "replication";
        // A new database's feed starts at the end of the (empty) log.
        assert_eq!(meta.replication_cursor(cursor).await.unwrap(), 0, "{name}");
        assert_eq!(
            meta.replication_cursor("never-moved").await.unwrap(),
            0,
            "{name}"
        );

        // Round after round, both nodes hand on the same events at once: exactly one
        // moves the cursor and enqueues its jobs.
        let mut expected = Vec::new();
        for round in 0..8_i64 {
            let (from, to) = (round * 10, round * 10 + 10);
            let mine = [replicate_job("node-a", to), replicate_job("mirror", to)];
            let theirs = [replicate_job("node-b", to)];
            let (a, b) = tokio::join!(
                backend.node.hand_on_replications(cursor, from, to, &mine),
                backend
                    .other_node
                    .hand_on_replications(cursor, from, to, &theirs)
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(a ^ b, "{name}: round {round}: exactly one hand-on wins");
            assert_eq!(
                backend.other_node.replication_cursor(cursor).await.unwrap(),
                to,
                "{name}"
            );
            let won: &[NewJob] = if a { &mine } else { &theirs };
            expected.extend(won.iter().map(|job| job.payload.clone()));
        }
        expected.sort();
        assert_eq!(pending_payloads(meta).await, expected, "{name}");

        // A stale `from` enqueues nothing and leaves the cursor where it is.
        assert!(!meta
            .hand_on_replications(cursor, 0, 99, &[replicate_job("stale", 99)])
            .await
            .unwrap());
        assert_eq!(meta.replication_cursor(cursor).await.unwrap(), 80, "{name}");
        assert_eq!(pending_payloads(meta).await, expected, "{name}");
        // Moving on with nothing to enqueue works too.
        assert!(meta
            .hand_on_replications(cursor, 80, 85, &[])
            .await
            .unwrap());
        assert_eq!(meta.replication_cursor(cursor).await.unwrap(), 85, "{name}");
        // A cursor seen for the first time starts wherever it is moved to.
        assert!(meta
            .hand_on_replications("replication-2", 0, 3, &[])
            .await
            .unwrap());
        assert_eq!(
            meta.replication_cursor("replication-2").await.unwrap(),
            3,
            "{name}"
        );
    }
}
