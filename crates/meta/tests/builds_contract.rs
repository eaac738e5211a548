//! The contract of the build store, run against every backend: SQLite, and a real
//! PostgreSQL (a private cluster from the test kit; skipped with a loud notice when
//! PostgreSQL is not installed, required under `CI=true`). At most `max` rules even when two
//! nodes add them together, a build and its job in one transaction (a build born failed has
//! none), a start that only one of two nodes wins, a finish that records its event once,
//! the cancellation flag, interrupted builds failed at start (by any node), a build's tokens
//! revoked however it ends, and a deleted repository that takes its source, rules and
//! builds along.

use berth_core::builds::{BuildStatus, CredentialKind, NewBuild, RefKind, RuleSpec, StoredSource};
use berth_core::events::{EventKind, NewEvent};
use berth_core::ports::{
    AccessTokens, Accounts, BuildStore, EventLog, JobQueue, NewJob, NewToken, NewUser,
    RepositoryAccess,
};
use std::sync::Arc;

const REPO: &str = "alice/app";

trait Store: BuildStore + EventLog + JobQueue + RepositoryAccess + Accounts + AccessTokens {}
impl<T> Store for T where
    T: BuildStore + EventLog + JobQueue + RepositoryAccess + Accounts + AccessTokens
{
}

mod common;

/// One backend under test: two stores ("nodes") on the same database, the first with
/// `REPO` created and its build source linked.
type Backend = common::Backend<dyn Store>;

async fn backends(test: &str) -> Vec<Backend> {
    let all = common::backends(
        test,
        |m| -> Arc<dyn Store> { Arc::new(m) },
        |m| -> Arc<dyn Store> { Arc::new(m) },
    )
    .await;
    for backend in &all {
        backend
            .node
            .create_repository(&REPO.parse().unwrap(), None, 1, None)
            .await
            .unwrap();
        backend
            .node
            .put_build_source(&source(Some(60)))
            .await
            .unwrap();
    }
    all
}

fn source(poll_seconds: Option<i64>) -> StoredSource {
    StoredSource {
        repository: REPO.into(),
        git_url: "file:///srv/app.git".into(),
        credential_kind: CredentialKind::Token,
        sealed_credential: Some(vec![1, 2, 3]),
        public_key: None,
        sealed_hook_secret: vec![4, 5, 6],
        created_by: 0,
        updated_at: 1,
        poll_seconds,
        polled_refs: None,
        polled_at: None,
    }
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
        platforms: vec!["linux/amd64".into(), "linux/arm64".into()],
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
        platforms: vec!["linux/arm/v7".into()],
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rules_stop_at_the_limit_even_when_added_together() {
    for backend in backends("rules_stop_at_the_limit_even_when_added_together").await {
        let name = backend.name;
        eprintln!("{name}: rules_stop_at_the_limit_even_when_added_together");
        let meta = backend.node.clone();
        // Each node opens its connections first, so that the adds below meet in the
        // database rather than queue behind a connection being opened.
        for node in [&backend.node, &backend.other_node] {
            futures_util::future::try_join_all((0..8).map(|_| node.build_rules(REPO)))
                .await
                .unwrap();
        }
        // Sixteen adds at once, split over the two nodes.
        let start = Arc::new(tokio::sync::Barrier::new(16));
        let adds = (0..16).map(|i| {
            let node = if i % 2 == 0 {
                backend.node.clone()
            } else {
                backend.other_node.clone()
            };
            let start = start.clone();
            tokio::spawn(async move {
                start.wait().await;
                node.add_build_rule(REPO, &rule(&format!("b{i}")), 5).await
            })
        });
        // All spawned before any is awaited, so that they do run together.
        let adds: Vec<_> = adds.collect();
        let mut added = 0;
        for add in adds {
            if add.await.unwrap().unwrap().is_some() {
                added += 1;
            }
        }
        assert_eq!(added, 5, "{name}");
        let rules = meta.build_rules(REPO).await.unwrap();
        assert_eq!(rules.len(), 5, "{name}");
        assert!(
            rules.windows(2).all(|w| w[0].id < w[1].id),
            "{name}: in order"
        );
        assert_eq!(rules[0].spec.build_args, vec!["A=1".to_owned()], "{name}");
        assert_eq!(
            rules[0].spec.platforms,
            vec!["linux/amd64".to_owned(), "linux/arm64".to_owned()],
            "{name}"
        );
        assert!(rules[0].spec.autobuild, "{name}");
        assert_eq!(rules[0].spec.kind, RefKind::Branch, "{name}");
        assert!(meta.delete_build_rule(REPO, rules[0].id).await.unwrap());
        assert!(
            !meta
                .delete_build_rule("bob/app", rules[1].id)
                .await
                .unwrap(),
            "{name}: a rule is deleted only through its repository"
        );
        // Polls: due at once, then after their interval; a failed poll keeps the last refs.
        assert_eq!(meta.sources_to_poll(100).await.unwrap().len(), 1, "{name}");
        meta.record_poll(REPO, 100, Some("{\"refs/heads/main\":\"ab\"}"))
            .await
            .unwrap();
        assert!(
            meta.sources_to_poll(159).await.unwrap().is_empty(),
            "{name}"
        );
        assert_eq!(meta.sources_to_poll(160).await.unwrap().len(), 1, "{name}");
        meta.record_poll(REPO, 160, None).await.unwrap();
        let polled = meta.build_source(REPO).await.unwrap().unwrap();
        assert_eq!(
            polled.polled_refs.as_deref(),
            Some("{\"refs/heads/main\":\"ab\"}"),
            "{name}"
        );
        assert_eq!(polled.polled_at, Some(160), "{name}");
        assert_eq!(polled.sealed_credential, Some(vec![1, 2, 3]), "{name}");
        assert_eq!(polled.sealed_hook_secret, vec![4, 5, 6], "{name}");
        assert_eq!(polled.credential_kind, CredentialKind::Token, "{name}");
        // Linking again replaces the source and forgets the polls; the rules stay.
        meta.put_build_source(&source(None)).await.unwrap();
        let relinked = meta.build_source(REPO).await.unwrap().unwrap();
        assert_eq!(relinked.polled_refs, None, "{name}");
        assert_eq!(relinked.poll_seconds, None, "{name}");
        assert!(meta.sources_to_poll(i64::MAX / 2).await.unwrap().is_empty());
        assert_eq!(meta.build_rules(REPO).await.unwrap().len(), 4, "{name}");
        // Unlinking the source takes its rules along.
        assert!(meta.delete_build_source(REPO).await.unwrap(), "{name}");
        assert!(!meta.delete_build_source(REPO).await.unwrap(), "{name}");
        assert!(meta.build_rules(REPO).await.unwrap().is_empty(), "{name}");
        assert!(meta.build_source(REPO).await.unwrap().is_none(), "{name}");
    }
}

fn token(user_id: i64, label: &str) -> NewToken {
    NewToken {
        user_id,
        org_id: None,
        label: label.into(),
        token_hash: format!("hash of {label}"),
        scope: "repo:write".into(),
        repositories: vec![REPO.into()],
        created_at: 10,
        expires_at: Some(4_000),
    }
}

#[tokio::test]
async fn a_build_s_tokens_are_revoked_however_it_ends() {
    for backend in backends("a_build_s_tokens_are_revoked_however_it_ends").await {
        let name = backend.name;
        eprintln!("{name}: a_build_s_tokens_are_revoked_however_it_ends");
        let meta = backend.node.clone();
        let alice = meta
            .create_user(&NewUser {
                name: "alice".into(),
                password_hash: "hash".into(),
                is_admin: false,
                now: 1,
            })
            .await
            .unwrap();
        let revoked_at = |id: i64| {
            let meta = meta.clone();
            async move { meta.token_by_id(id).await.unwrap().unwrap().revoked_at }
        };

        // A build that finishes: its tokens go with the finish.
        let finished = meta.queue_build(&build(None), &job()).await.unwrap();
        assert!(meta.start_build(finished.id, 20).await.unwrap());
        let pull = meta
            .create_build_token(finished.id, &token(alice, "finished pull"))
            .await
            .unwrap();
        let push = meta
            .create_build_token(finished.id, &token(alice, "finished push"))
            .await
            .unwrap();
        assert_eq!(revoked_at(push.id).await, None, "{name}");
        assert!(meta
            .finish_build(
                finished.id,
                BuildStatus::Succeeded,
                Some("sha256:aa"),
                None,
                "ok",
                30,
                &event(finished.id)
            )
            .await
            .unwrap());
        assert_eq!(revoked_at(pull.id).await, Some(30), "{name}");
        assert_eq!(revoked_at(push.id).await, Some(30), "{name}");

        // A build whose node died, failed by another node (which never saw its work
        // directory): its tokens are revoked by that failing; another build's and the
        // user's own tokens stay.
        let orphan = meta.queue_build(&build(None), &job()).await.unwrap();
        assert!(backend.other_node.start_build(orphan.id, 40).await.unwrap());
        let orphan_push = backend
            .other_node
            .create_build_token(orphan.id, &token(alice, "orphan push"))
            .await
            .unwrap();
        let live = meta.queue_build(&build(None), &job()).await.unwrap();
        assert!(meta.start_build(live.id, 41).await.unwrap());
        let live_push = meta
            .create_build_token(live.id, &token(alice, "live push"))
            .await
            .unwrap();
        let own = meta.create_token(&token(alice, "own")).await.unwrap();
        let failed = meta
            .fail_interrupted_builds(&[(orphan.id, event(orphan.id))], "the server stopped", 50)
            .await
            .unwrap();
        assert_eq!(failed, vec![orphan.id], "{name}");
        assert_eq!(revoked_at(orphan_push.id).await, Some(50), "{name}");
        assert_eq!(revoked_at(live_push.id).await, None, "{name}");
        assert_eq!(revoked_at(own.id).await, None, "{name}");
        // Failing it again (another node's sweep) changes nothing.
        assert!(meta
            .fail_interrupted_builds(&[(orphan.id, event(orphan.id))], "the server stopped", 60)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(revoked_at(orphan_push.id).await, Some(50), "{name}");
        let announced = meta
            .events_after(0, 100)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| {
                e.kind == EventKind::BuildCompleted
                    && e.data["build_id"].as_i64() == Some(orphan.id)
            })
            .count();
        assert_eq!(announced, 1, "{name}: failed once, announced once");
    }
}

#[tokio::test]
async fn a_build_runs_once_finishes_once_and_is_failed_by_a_restart() {
    for backend in backends("a_build_runs_once_finishes_once_and_is_failed_by_a_restart").await {
        let name = backend.name;
        eprintln!("{name}: a_build_runs_once_finishes_once_and_is_failed_by_a_restart");
        let meta = backend.node.clone();
        let queued = meta.queue_build(&build(None), &job()).await.unwrap();
        assert_eq!(queued.status, BuildStatus::Queued, "{name}");
        assert_eq!(queued.tags, vec!["latest".to_owned()], "{name}");
        assert_eq!(queued.platforms, vec!["linux/arm/v7".to_owned()], "{name}");
        let jobs = meta.claim_jobs(i64::MAX / 2, 60_000, 10).await.unwrap();
        assert_eq!(jobs.len(), 1, "{name}: the build came with its job");
        assert_eq!(jobs[0].kind, "build.run", "{name}");
        assert_eq!(
            jobs[0].payload,
            format!("{{\"build_id\":{}}}", queued.id),
            "{name}"
        );

        let born_failed = meta
            .queue_build(&build(Some("no valid tag")), &job())
            .await
            .unwrap();
        assert_eq!(born_failed.status, BuildStatus::Failed, "{name}");
        assert_eq!(born_failed.finished_at, Some(10), "{name}");
        assert!(
            meta.claim_jobs(i64::MAX / 2, 60_000, 10)
                .await
                .unwrap()
                .is_empty(),
            "{name}: a build born failed has no job"
        );

        // Two nodes start the same build at once: one wins.
        let (first, second) = tokio::join!(
            backend.node.start_build(queued.id, 20),
            backend.other_node.start_build(queued.id, 20)
        );
        assert!(
            first.unwrap() ^ second.unwrap(),
            "{name}: started exactly once"
        );
        assert!(!meta.start_build(queued.id, 21).await.unwrap(), "{name}");
        meta.note_build_commit(queued.id, "abc123").await.unwrap();
        meta.write_build_log(queued.id, "step 1\n").await.unwrap();
        let running = meta.build(queued.id).await.unwrap().unwrap();
        assert_eq!(running.log, "step 1\n", "{name}");
        assert_eq!(running.commit.as_deref(), Some("abc123"), "{name}");
        assert_eq!(running.status, BuildStatus::Running, "{name}");
        assert_eq!(running.platforms, vec!["linux/arm/v7".to_owned()], "{name}");
        assert!(!meta.build_cancel_requested(queued.id).await.unwrap());
        assert_eq!(
            meta.cancel_build(queued.id, 22).await.unwrap(),
            Some(BuildStatus::Running),
            "{name}"
        );
        assert_eq!(meta.cancel_build(9_999, 22).await.unwrap(), None, "{name}");
        assert!(
            meta.build_cancel_requested(queued.id).await.unwrap(),
            "{name}"
        );
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
            "{name}: finishing twice changes nothing"
        );
        meta.write_build_log(queued.id, "late").await.unwrap();
        let done = meta.build(queued.id).await.unwrap().unwrap();
        assert_eq!(done.status, BuildStatus::Cancelled, "{name}");
        assert_eq!(done.duration, Some(5), "{name}");
        assert_eq!(done.reason.as_deref(), Some("cancelled"), "{name}");
        assert_eq!(done.log, "log", "{name}: a finished build's log stays");
        let events = meta.events_after(0, 100).await.unwrap();
        let completed: Vec<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::BuildCompleted)
            .collect();
        assert_eq!(completed.len(), 1, "{name}");
        assert_eq!(completed[0].data["build_id"], queued.id, "{name}");

        let succeeded = meta.queue_build(&build(None), &job()).await.unwrap();
        assert!(meta.start_build(succeeded.id, 27).await.unwrap());
        assert!(meta
            .finish_build(
                succeeded.id,
                BuildStatus::Succeeded,
                Some("sha256:aa"),
                None,
                "ok",
                28,
                &event(succeeded.id)
            )
            .await
            .unwrap());
        let succeeded = meta.build(succeeded.id).await.unwrap().unwrap();
        assert_eq!(succeeded.digest.as_deref(), Some("sha256:aa"), "{name}");

        let running = meta.queue_build(&build(None), &job()).await.unwrap();
        meta.start_build(running.id, 30).await.unwrap();
        // Another node's build, still running: left alone when not named.
        let elsewhere = meta.queue_build(&build(None), &job()).await.unwrap();
        meta.start_build(elsewhere.id, 31).await.unwrap();
        assert_eq!(
            meta.running_builds().await.unwrap(),
            vec![running.id, elsewhere.id],
            "{name}"
        );
        let failed = meta
            .fail_interrupted_builds(
                &[
                    (running.id, event(running.id)),
                    (succeeded.id, event(succeeded.id)),
                ],
                "the server stopped",
                40,
            )
            .await
            .unwrap();
        assert_eq!(
            failed,
            vec![running.id],
            "{name}: only a named build still running"
        );
        assert_eq!(
            meta.running_builds().await.unwrap(),
            vec![elsewhere.id],
            "{name}"
        );
        meta.fail_interrupted_builds(
            &[(elsewhere.id, event(elsewhere.id))],
            "the server stopped",
            41,
        )
        .await
        .unwrap();
        // Each build failed is announced once; the one already finished is not again.
        let announced: Vec<i64> = meta
            .events_after(0, 100)
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == EventKind::BuildCompleted)
            .map(|e| e.data["build_id"].as_i64().unwrap())
            .collect();
        assert_eq!(
            announced,
            vec![queued.id, succeeded.id, running.id, elsewhere.id],
            "{name}"
        );
        let after = meta.build(running.id).await.unwrap().unwrap();
        assert_eq!(after.status, BuildStatus::Failed, "{name}");
        assert_eq!(after.finished_at, Some(40), "{name}");
        assert!(after.log.contains("the server stopped"), "{name}");
        let listed = meta.builds_of(REPO, None, 10).await.unwrap();
        assert_eq!(listed.len(), 5, "{name}");
        assert_eq!(listed[0].id, elsewhere.id, "{name}: newest first");
        assert!(
            listed.iter().all(|b| b.log.is_empty()),
            "{name}: lists leave the logs out"
        );
        let page = meta.builds_of(REPO, Some(listed[1].id), 1).await.unwrap();
        assert_eq!(page.len(), 1, "{name}");
        assert_eq!(
            page[0].id, listed[2].id,
            "{name}: pages go on from `before`"
        );
        let last = meta.last_finished_build(REPO).await.unwrap().unwrap();
        assert_eq!(last.id, elsewhere.id, "{name}");
        assert!(meta.last_finished_build("bob/app").await.unwrap().is_none());
    }
}

#[tokio::test]
async fn a_deleted_repository_takes_its_source_rules_and_builds_along() {
    for backend in backends("a_deleted_repository_takes_its_source_rules_and_builds_along").await {
        let name = backend.name;
        eprintln!("{name}: a_deleted_repository_takes_its_source_rules_and_builds_along");
        let meta = backend.node.clone();
        meta.add_build_rule(REPO, &rule("main"), 10).await.unwrap();
        let queued = meta.queue_build(&build(None), &job()).await.unwrap();
        assert!(meta
            .delete_repository(&REPO.parse().unwrap(), None)
            .await
            .unwrap());
        assert!(meta.build_source(REPO).await.unwrap().is_none(), "{name}");
        assert!(meta.build_rules(REPO).await.unwrap().is_empty(), "{name}");
        assert!(meta.build(queued.id).await.unwrap().is_none(), "{name}");
        assert!(meta.builds_of(REPO, None, 10).await.unwrap().is_empty());
        // Whoever makes the name again starts with no builds.
        meta.create_repository(&REPO.parse().unwrap(), None, 2, None)
            .await
            .unwrap();
        assert!(meta.last_finished_build(REPO).await.unwrap().is_none());
        assert!(meta.build_source(REPO).await.unwrap().is_none(), "{name}");
    }
}
