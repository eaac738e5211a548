//! The build store on SQLite, against the port's contract: at most `max` rules even when
//! added together, a build and its job in one transaction (a build born failed has none),
//! a start that only one of two runs wins, a finish that records its event once, the
//! cancellation flag, and interrupted builds failed at start.

use berth_core::builds::{BuildStatus, CredentialKind, NewBuild, RefKind, RuleSpec, StoredSource};
use berth_core::events::{EventKind, NewEvent};
use berth_core::ports::{BuildStore, EventLog, JobQueue, NewJob};
use berth_meta::SqliteMeta;
use std::sync::Arc;

const REPO: &str = "alice/app";

async fn open() -> (tempfile::TempDir, Arc<SqliteMeta>) {
    let dir = tempfile::tempdir().unwrap();
    let meta = SqliteMeta::open(&dir.path().join("berth.db"))
        .await
        .unwrap();
    meta.put_build_source(&StoredSource {
        repository: REPO.into(),
        git_url: "file:///srv/app.git".into(),
        credential_kind: CredentialKind::Token,
        sealed_credential: Some(vec![1, 2, 3]),
        public_key: None,
        sealed_hook_secret: vec![4, 5, 6],
        created_by: 0,
        updated_at: 1,
        poll_seconds: Some(60),
        polled_refs: None,
        polled_at: None,
    })
    .await
    .unwrap();
    (dir, Arc::new(meta))
}

fn rule(source: &str) -> RuleSpec {
    RuleSpec {
        kind: RefKind::Branch,
        source: source.into(),
        tag: "latest".into(),
        dockerfile: "Dockerfile".into(),
        context: ".".into(),
        build_args: vec!["A=1".into()],
        autobuild: true,
    }
}

fn build(reason: Option<&str>) -> NewBuild {
    NewBuild {
        repository: REPO.into(),
        rule_id: Some(1),
        ref_kind: RefKind::Branch,
        ref_name: "main".into(),
        commit: None,
        tags: vec!["latest".into()],
        dockerfile: "Dockerfile".into(),
        context: ".".into(),
        build_args: vec![],
        trigger: "manual".into(),
        reason: reason.map(str::to_owned),
        created_at: 10,
    }
}

fn job() -> NewJob {
    NewJob {
        kind: "build.run".into(),
        payload: String::new(),
        due_at_ms: 0,
        max_attempts: 2,
        unique_key: None,
    }
}

fn event(id: i64) -> NewEvent {
    NewEvent::about(
        EventKind::BuildCompleted,
        REPO,
        None,
        serde_json::json!({ "build_id": id }),
    )
}

#[tokio::test]
async fn rules_stop_at_the_limit_even_when_added_together() {
    let (_dir, meta) = open().await;
    let adds = (0..8).map(|i| {
        let meta = meta.clone();
        tokio::spawn(async move { meta.add_build_rule(REPO, &rule(&format!("b{i}")), 5).await })
    });
    let mut added = 0;
    for add in adds {
        if add.await.unwrap().unwrap().is_some() {
            added += 1;
        }
    }
    assert_eq!(added, 5);
    let rules = meta.build_rules(REPO).await.unwrap();
    assert_eq!(rules.len(), 5);
    assert_eq!(rules[0].spec.build_args, vec!["A=1".to_owned()]);
    assert!(meta.delete_build_rule(REPO, rules[0].id).await.unwrap());
    assert!(!meta
        .delete_build_rule("bob/app", rules[1].id)
        .await
        .unwrap());
    // Polls: due at once, then after their interval; a failed poll keeps the last refs.
    assert_eq!(meta.sources_to_poll(100).await.unwrap().len(), 1);
    meta.record_poll(REPO, 100, Some("{\"refs/heads/main\":\"ab\"}"))
        .await
        .unwrap();
    assert!(meta.sources_to_poll(159).await.unwrap().is_empty());
    meta.record_poll(REPO, 160, None).await.unwrap();
    let polled = meta.build_source(REPO).await.unwrap().unwrap();
    assert_eq!(
        polled.polled_refs.as_deref(),
        Some("{\"refs/heads/main\":\"ab\"}")
    );
    // Unlinking the source takes its rules along.
    assert!(meta.delete_build_source(REPO).await.unwrap());
    assert!(meta.build_rules(REPO).await.unwrap().is_empty());
}

#[tokio::test]
async fn a_build_runs_once_finishes_once_and_is_failed_by_a_restart() {
    let (_dir, meta) = open().await;
    let queued = meta.queue_build(&build(None), &job()).await.unwrap();
    assert_eq!(queued.status, BuildStatus::Queued);
    let jobs = meta.claim_jobs(i64::MAX / 2, 60_000, 10).await.unwrap();
    assert_eq!(jobs.len(), 1, "the build came with its job");
    assert_eq!(jobs[0].payload, format!("{{\"build_id\":{}}}", queued.id));

    let born_failed = meta
        .queue_build(&build(Some("no valid tag")), &job())
        .await
        .unwrap();
    assert_eq!(born_failed.status, BuildStatus::Failed);
    assert!(meta
        .claim_jobs(i64::MAX / 2, 60_000, 10)
        .await
        .unwrap()
        .is_empty());

    assert!(meta.start_build(queued.id, 20).await.unwrap());
    assert!(
        !meta.start_build(queued.id, 21).await.unwrap(),
        "started once"
    );
    meta.write_build_log(queued.id, "step 1\n").await.unwrap();
    assert_eq!(
        meta.build(queued.id).await.unwrap().unwrap().log,
        "step 1\n"
    );
    assert_eq!(
        meta.cancel_build(queued.id, 22).await.unwrap(),
        Some(BuildStatus::Running)
    );
    assert!(meta.build_cancel_requested(queued.id).await.unwrap());
    assert!(meta
        .finish_build(
            queued.id,
            BuildStatus::Cancelled,
            None,
            Some("cancelled"),
            "log",
            25,
            &event(queued.id)
        )
        .await
        .unwrap());
    assert!(
        !meta
            .finish_build(
                queued.id,
                BuildStatus::Failed,
                None,
                None,
                "",
                26,
                &event(queued.id)
            )
            .await
            .unwrap(),
        "finishing twice changes nothing"
    );
    let done = meta.build(queued.id).await.unwrap().unwrap();
    assert_eq!(done.status, BuildStatus::Cancelled);
    assert_eq!(done.duration, Some(5));
    let events = meta.events_after(0, 10).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::BuildCompleted)
            .count(),
        1
    );

    let running = meta.queue_build(&build(None), &job()).await.unwrap();
    meta.start_build(running.id, 30).await.unwrap();
    let failed = meta
        .fail_interrupted_builds("the server stopped", 40)
        .await
        .unwrap();
    assert_eq!(failed, vec![running.id]);
    let after = meta.build(running.id).await.unwrap().unwrap();
    assert_eq!(after.status, BuildStatus::Failed);
    assert!(after.log.contains("the server stopped"));
    let listed = meta.builds_of(REPO, None, 10).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert_eq!(listed[0].id, running.id, "newest first");
    assert!(
        listed.iter().all(|b| b.log.is_empty()),
        "lists leave the logs out"
    );
    assert_eq!(
        meta.last_finished_build(REPO).await.unwrap().unwrap().id,
        running.id
    );
}
