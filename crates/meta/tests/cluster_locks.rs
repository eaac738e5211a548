//! Cluster locks on a real PostgreSQL, with two nodes (two pools) on one database: a lock
//! has one holder across the nodes, a garbage collection runs on one node at a time, and a
//! node's start or poll fails only the builds whose node is gone, never one another live
//! node runs, and revokes the registry tokens the gone node made for them. Skipped loudly
//! without PostgreSQL, required under `CI=true`.

use berth_core::access::PolicyAuthorizer;
use berth_core::builds::{
    BuildSettings, BuildStatus, Builds, CredentialKind, NewBuild, RefKind, StoredSource,
};
use berth_core::lifecycle::gc::GcError;
use berth_core::lifecycle::{Collector, GcOptions};
use berth_core::ports::{
    build_lock, AccessTokens, Accounts, BuildStore, ClusterLocks, MetaStore, NewJob, NewToken,
    NewUser, RepositoryAccess, COLLECTION_LOCK,
};
use berth_core::registry::RegistryOptions;
use berth_core::webhooks::SealKey;
use berth_core::Registry;
use berth_meta::PostgresMeta;
use berth_storage::FsBlobStore;
use std::sync::Arc;

const REPO: &str = "alice/app";

async fn two_nodes(test: &str) -> Option<(PostgresMeta, PostgresMeta)> {
    let db = berth_testkit::postgres::database(test)?;
    let first = PostgresMeta::connect(&db.url).await.unwrap();
    let second = PostgresMeta::connect(&db.url).await.unwrap();
    Some((first, second))
}

#[tokio::test]
async fn a_lock_has_one_holder_across_the_nodes() {
    let Some((first, second)) = two_nodes("a_lock_has_one_holder_across_the_nodes").await else {
        return;
    };
    let held = first.try_hold(COLLECTION_LOCK).await.unwrap();
    assert!(held.is_some());
    assert!(
        second.try_hold(COLLECTION_LOCK).await.unwrap().is_none(),
        "the other node sees the lock held"
    );
    assert!(
        first.try_hold(COLLECTION_LOCK).await.unwrap().is_none(),
        "a second hold on the same node is refused too"
    );
    let build = second.try_hold(&build_lock(1)).await.unwrap();
    assert!(build.is_some(), "another name is free");
    drop(held);
    // The lock ends with its session, which the server closes once the socket is gone.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        if second.try_hold(COLLECTION_LOCK).await.unwrap().is_some() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the dropped hold was not freed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_collection_runs_on_one_node_at_a_time() {
    let Some((first, second)) = two_nodes("a_collection_runs_on_one_node_at_a_time").await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let second = Arc::new(second);
    let blobs = Arc::new(FsBlobStore::open(dir.path()).unwrap());
    let registry = Registry::new(
        blobs.clone(),
        second.clone() as Arc<dyn MetaStore>,
        RegistryOptions::default(),
    );
    let collector = Collector::new(
        second.clone(),
        blobs,
        registry,
        berth_core::clock::system(),
        GcOptions::default(),
    )
    .with_locks(second.clone());
    // The first node is collecting.
    let running = first.try_hold(COLLECTION_LOCK).await.unwrap().unwrap();
    assert!(
        matches!(collector.run(false).await, Err(GcError::Busy)),
        "a collection waits for the other node's"
    );
    assert_eq!(collector.finish_interrupted().await.unwrap(), 0);
    drop(running);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        match collector.run(false).await {
            Ok(_) => break,
            Err(GcError::Busy) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(50)).await
            }
            Err(err) => panic!("the collection did not run once the other ended: {err}"),
        }
    }
}

#[tokio::test]
async fn only_builds_whose_node_is_gone_are_failed() {
    let Some((first, second)) = two_nodes("only_builds_whose_node_is_gone_are_failed").await else {
        return;
    };
    first
        .create_repository(&REPO.parse().unwrap(), None, 1, None)
        .await
        .unwrap();
    first
        .put_build_source(&StoredSource {
            repository: REPO.into(),
            git_url: "file:///srv/app.git".into(),
            credential_kind: CredentialKind::None,
            sealed_credential: None,
            public_key: None,
            sealed_hook_secret: vec![4, 5, 6],
            created_by: 0,
            updated_at: 1,
            poll_seconds: None,
            polled_refs: None,
            polled_at: None,
        })
        .await
        .unwrap();
    let queued = first
        .queue_build(
            &NewBuild {
                repository: REPO.into(),
                rule_id: None,
                ref_kind: RefKind::Branch,
                ref_name: "main".into(),
                commit: None,
                tags: vec!["latest".into()],
                dockerfile: "Dockerfile".into(),
                context: ".".into(),
                build_args: vec![],
                platforms: vec![],
                trigger: "manual".into(),
                reason: None,
                created_at: 10,
            },
            &NewJob {
                kind: "build.run".into(),
                payload: String::new(),
                due_at_ms: 0,
                max_attempts: 2,
                unique_key: None,
            },
        )
        .await
        .unwrap();
    // The first node runs the build, as its runner does: the build's lock, then the start.
    let running_on_first = first
        .try_hold(&build_lock(queued.id))
        .await
        .unwrap()
        .unwrap();
    assert!(first.start_build(queued.id, 20).await.unwrap());
    // Its pull and push tokens, made on the first node: the second never sees the first's
    // work directory (another machine's, in a cluster).
    let alice = first
        .create_user(&NewUser {
            name: "alice".into(),
            password_hash: "hash".into(),
            is_admin: false,
            now: 1,
        })
        .await
        .unwrap();
    let mut tokens = Vec::new();
    for (scope, label) in [("repo:read", "pull"), ("repo:write", "push")] {
        let token = first
            .create_build_token(
                queued.id,
                &NewToken {
                    user_id: alice,
                    org_id: None,
                    label: format!("build {} {label}", queued.id),
                    token_hash: format!("hash of the {label} token"),
                    scope: scope.into(),
                    repositories: vec![],
                    created_at: 20,
                    expires_at: Some(20 + 3_600 + 600),
                },
            )
            .await
            .unwrap();
        tokens.push(token.id);
    }

    // The second node starts (or polls) meanwhile.
    let work = tempfile::tempdir().unwrap();
    let second = Arc::new(second);
    let builds = Builds::new(
        second.clone(),
        Arc::new(PolicyAuthorizer::new(second.clone())),
        SealKey::from_bytes(&SealKey::generate()),
        berth_core::clock::system(),
        Default::default(),
        BuildSettings {
            work_dir: work.path().to_owned(),
            ..BuildSettings::default()
        },
    )
    .with_locks(second.clone());
    assert!(builds.fail_interrupted().await.unwrap().is_empty());
    let build = second.build(queued.id).await.unwrap().unwrap();
    assert_eq!(
        build.status,
        BuildStatus::Running,
        "a build another live node runs is left alone"
    );
    for id in &tokens {
        let token = second.token_by_id(*id).await.unwrap().unwrap();
        assert_eq!(
            token.revoked_at, None,
            "a live node's build keeps its tokens"
        );
    }

    // The first node dies: its lock goes with its connection.
    drop(running_on_first);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let failed = loop {
        let failed = builds.fail_interrupted().await.unwrap();
        if !failed.is_empty() || std::time::Instant::now() > deadline {
            break failed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert_eq!(failed, vec![queued.id]);
    let build = second.build(queued.id).await.unwrap().unwrap();
    assert_eq!(build.status, BuildStatus::Failed);
    assert!(
        build
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("stopped"),
        "{:?}",
        build.reason
    );
    for id in &tokens {
        let token = second.token_by_id(*id).await.unwrap().unwrap();
        assert!(
            token.revoked_at.is_some(),
            "the dead node's build token {} is revoked when its build is failed, not left \
             until it expires",
            token.label
        );
    }
}
