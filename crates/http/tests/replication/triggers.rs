//! Replication as jobs: a push copied within seconds, deletions only when the rule says so,
//! and a destination that is down delaying the copy without losing it.

use crate::copy::{rule, source_berth};
use crate::support::*;
use berth_core::identity::Acting;
use berth_core::mirror::Upstream as _;
use berth_testkit::data_dir;
use berth_testkit::images::SmallImage;
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_is_copied_at_once_and_a_deletion_follows_when_the_rule_says_so() {
    if !have_distribution() {
        return;
    }
    let destination = Distribution::start(None).await;
    let dir = data_dir();
    let (berth, source) = source_berth(dir.path()).await;
    let replications = &berth.state.replications;
    let mut on_push = rule("on-push", "alice/*", &destination.url);
    on_push.trigger = Some("push".to_owned());
    on_push.tags = vec!["v*".to_owned()];
    on_push.deletes = true;
    replications.create(&Acting::cli(), on_push).await.unwrap();

    let remote = client_for(&destination.url, None);
    let image = SmallImage::linux("pushed", "app");
    let pushed_at = Instant::now();
    let digest = seed(&source, "alice/app", "v1", &image).await;
    eventually(
        Duration::from_secs(60),
        "the push to reach the destination",
        || {
            let remote = &remote;
            async move {
                remote
                    .head_manifest("alice/app", "v1")
                    .await
                    .ok()
                    .flatten()
                    .is_some()
            }
        },
    )
    .await;
    let took = pushed_at.elapsed();
    eprintln!("push-triggered copy visible after {took:?}");
    assert_eq!(
        remote.head_manifest("alice/app", "v1").await.unwrap(),
        Some(digest.clone())
    );
    // A tag the patterns leave out is not copied.
    seed(
        &source,
        "alice/app",
        "dev",
        &SmallImage::linux("dev", "app"),
    )
    .await;

    // Deleting the tag here deletes it there (Distribution deletes by digest).
    let deleted = reqwest::Client::new()
        .delete(format!("{}/v2/alice/app/manifests/v1", berth.url()))
        .basic_auth("alice", Some("alice-password-1"))
        .send()
        .await
        .unwrap();
    assert!(deleted.status().is_success(), "{}", deleted.status());
    eventually(
        Duration::from_secs(60),
        "the deletion to reach the destination",
        || {
            let remote = &remote;
            async move { matches!(remote.head_manifest("alice/app", "v1").await, Ok(None)) }
        },
    )
    .await;
    assert!(remote
        .head_manifest("alice/app", "dev")
        .await
        .unwrap()
        .is_none());
    // The run is recorded just after its last request: wait for the record too.
    eventually(
        Duration::from_secs(60),
        "the deletion's run record",
        || async {
            replications
                .history(&Acting::cli(), "on-push", 10)
                .await
                .unwrap()
                .iter()
                .any(|r| r.trigger == "delete" && r.items.iter().any(|i| i.outcome == "deleted"))
        },
    )
    .await;
    eventually(Duration::from_secs(60), "the push's run record", || async {
        replications
            .history(&Acting::cli(), "on-push", 10)
            .await
            .unwrap()
            .iter()
            .any(|r| r.trigger == "push" && r.copied == 1)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_destination_that_is_down_delays_the_copy_and_loses_nothing() {
    if !have_distribution() {
        return;
    }
    // The destination goes away (connections refused) before the run.
    let mut destination = Distribution::start(None).await;
    let url = destination.url.clone();
    let port: u16 = url.rsplit(':').next().unwrap().parse().unwrap();
    destination.stop();
    let dir = data_dir();
    let (berth, source) = source_berth(dir.path()).await;
    let image = SmallImage::linux("delayed", "app");
    let digest = seed(&source, "alice/app", "v1", &image).await;
    let replications = &berth.state.replications;
    replications
        .create(&Acting::cli(), rule("delayed", "alice/app", &url))
        .await
        .unwrap();
    assert!(replications
        .enqueue_run(&Acting::cli(), "delayed")
        .await
        .unwrap());
    eventually(Duration::from_secs(60), "a failed attempt", || async {
        replications
            .history(&Acting::cli(), "delayed", 10)
            .await
            .unwrap()
            .iter()
            .any(|r| r.status == "failed")
    })
    .await;
    let failed = replications
        .history(&Acting::cli(), "delayed", 10)
        .await
        .unwrap();
    let reason = failed
        .iter()
        .find(|r| r.status == "failed")
        .and_then(|r| r.items.first())
        .and_then(|i| i.reason.clone())
        .unwrap();
    assert!(reason.contains("unreachable"), "{reason}");

    // Back up where it was: the job's retry copies the image.
    let _back = Distribution::start_on(None, port).await;
    eventually(
        Duration::from_secs(120),
        "the retried run to succeed",
        || async {
            replications
                .history(&Acting::cli(), "delayed", 10)
                .await
                .unwrap()
                .iter()
                .any(|r| r.status == "succeeded" && r.copied == 1)
        },
    )
    .await;
    let remote = client_for(&url, None);
    assert_eq!(
        remote.head_manifest("alice/app", "v1").await.unwrap(),
        Some(digest)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_rule_runs_when_its_time_comes() {
    if !have_distribution() {
        return;
    }
    let destination = Distribution::start(None).await;
    let clock = berth_core::clock::ManualClock::starting_now();
    let dir = data_dir();
    let berth = berth_testkit::serve(
        dir.path(),
        berth_testkit::Options {
            clock: Some(clock.clone()),
            ..berth_testkit::Options::default()
        },
    )
    .await;
    crate::copy::add_user(&berth, "alice", "alice-password-1").await;
    let source = client_for(&berth.url(), Some(("alice", "alice-password-1")));
    let digest = seed(
        &source,
        "alice/app",
        "v1",
        &SmallImage::linux("cron", "app"),
    )
    .await;
    let mut nightly = rule("every-minute", "alice/app", &destination.url);
    nightly.trigger = Some("* * * * *".to_owned());
    berth
        .state
        .replications
        .create(&Acting::cli(), nightly)
        .await
        .unwrap();
    let remote = client_for(&destination.url, None);
    assert!(remote
        .head_manifest("alice/app", "v1")
        .await
        .unwrap()
        .is_none());
    // Time passes (the scheduler looks each minute, the run is due at its minute): moved
    // on until the run has happened, with a generous real-time deadline.
    eventually(Duration::from_secs(120), "the scheduled run", || {
        clock.advance(Duration::from_secs(5));
        berth.runner.wake().wake();
        let replications = &berth.state.replications;
        async move {
            replications
                .history(&Acting::cli(), "every-minute", 10)
                .await
                .unwrap()
                .iter()
                .any(|r| r.trigger == "schedule" && r.copied == 1)
        }
    })
    .await;
    assert_eq!(
        remote.head_manifest("alice/app", "v1").await.unwrap(),
        Some(digest)
    );
}
