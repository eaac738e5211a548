//! PostgreSQL restarting under a node: calls fail as `Unavailable` (which the HTTP layer
//! answers 503, retryable) rather than hang or report an internal error, and the same store
//! works again once the server is back, without being reopened. Its own test binary, so
//! stopping the cluster disturbs no other test.

use berth_core::ports::{BlobLinks, MetaError, Repositories};
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
}
