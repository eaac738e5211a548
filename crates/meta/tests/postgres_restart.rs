//! PostgreSQL restarting under a node: calls fail as `Unavailable` (which the HTTP layer
//! answers 503, retryable) rather than hang or report an internal error, and the same store
//! works again once the server is back, without being reopened. Its own test binary, so
//! stopping the cluster disturbs no other test.

use berth_core::ports::{Accounts, BlobLinks, MetaError, NewUser, Repositories};
use berth_meta::PostgresMeta;
use berth_oci::{Digest, RepoName};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_restart_fails_calls_as_unavailable_and_the_pool_recovers_by_itself() {
    let Some(db) = berth_testkit::postgres::database("postgres_restart") else {
        return;
    };
    let meta = PostgresMeta::connect(&db.url).await.unwrap();
    let repo: RepoName = "alice/app".parse().unwrap();
    let blob = Digest::sha256_of(b"x");
    meta.link_blob(&repo, &blob, 1, 0).await.unwrap();
    meta.create_user(&NewUser {
        name: "alice".into(),
        password_hash: "h".into(),
        is_admin: false,
        now: 0,
    })
    .await
    .unwrap();
    let epoch_before = meta.credentials_epoch().expect("listening");

    berth_testkit::postgres::stop();
    let started = Instant::now();
    let failed = meta.list_repositories(None, 10).await;
    assert!(
        matches!(failed, Err(MetaError::Unavailable(_))),
        "{failed:?}"
    );
    // Bounded by the pool's acquire timeout, not by TCP's.
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "{:?}",
        started.elapsed()
    );
    let write = meta
        .link_blob(&"bob/app".parse().unwrap(), &blob, 1, 0)
        .await;
    assert!(matches!(write, Err(MetaError::Unavailable(_))), "{write:?}");
    // Changes another node makes now could not be heard: nothing remembered is trusted.
    wait_until("the epoch is unknown while not listening", || {
        meta.credentials_epoch().is_none()
    })
    .await;

    berth_testkit::postgres::restart();
    let deadline = Instant::now() + Duration::from_secs(120);
    let names = loop {
        match meta.list_repositories(None, 10).await {
            Ok(names) => break names,
            Err(MetaError::Unavailable(_)) if Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(other) => panic!("the pool did not recover: {other:?}"),
        }
    };
    // What committed before the restart is there; the refused write left nothing.
    assert_eq!(names, ["alice/app"]);
    meta.link_blob(&"carol/app".parse().unwrap(), &blob, 1, 0)
        .await
        .unwrap();

    // The node listens again by itself, and hears another node's change.
    wait_until("listening again", || meta.credentials_epoch().is_some()).await;
    let epoch_after = meta.credentials_epoch().unwrap();
    assert_ne!(epoch_after, epoch_before, "moved across the outage");
    let other = PostgresMeta::connect(&db.url).await.unwrap();
    assert!(other.set_password_hash("alice", "new", 1).await.unwrap());
    wait_until("the other node's change is heard", || {
        meta.credentials_epoch()
            .is_some_and(|epoch| epoch != epoch_after)
    })
    .await;
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(120);
    while !done() {
        assert!(Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
