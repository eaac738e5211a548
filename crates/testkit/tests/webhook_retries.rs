//! Webhook retries and auto-disable with time moved by hand: a receiver that is down for a
//! while still gets the delivery, on the backoff schedule; one that keeps failing ends up
//! disabled, and says why. The server is wired as `berth serve` wires it; the test drives its
//! jobs runner and its clock.

use berth_core::clock::ManualClock;
use berth_core::identity::Acting;
use berth_core::registry::{ChangedBy, PutManifest};
use berth_core::webhooks::{WebhookRequest, WebhookTarget};
use berth_oci::{Reference, RepoName};
use berth_testkit::receiver::Receiver;
use berth_testkit::{data_dir, serve, Options, Served};
use std::sync::Arc;
use std::time::Duration;

/// A receiver that answers `status`.
async fn receiver(status: u16) -> Receiver {
    let receiver = Receiver::start().await;
    receiver.answer(status);
    receiver
}

/// Pushes an empty index tagged `tag` to `repo`, as the CLI's actor.
async fn push(served: &Served, repo: &RepoName, tag: &str) {
    let body = format!(
        r#"{{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[],"annotations":{{"t":"{tag}"}}}}"#
    );
    served
        .state
        .registry
        .put_manifest(PutManifest {
            repo,
            reference: &Reference::Tag(tag.parse().unwrap()),
            extra_tags: &[],
            content_type: Some("application/vnd.oci.image.index.v1+json"),
            body: body.as_bytes(),
            by: ChangedBy::new("alice", None),
        })
        .await
        .unwrap();
}

async fn start(clock: &Arc<ManualClock>, disable_after: u32) -> (tempfile::TempDir, Served) {
    let dir = data_dir();
    let mut options = Options {
        clock: Some(clock.clone()),
        run_jobs: false,
        ..Options::default()
    };
    options.settings.webhooks.disable_after = disable_after;
    let served = serve(dir.path(), options).await;
    (dir, served)
}

async fn hook(served: &Served, repo: &RepoName, url: &str) -> String {
    let request = WebhookRequest {
        url: url.to_owned(),
        ..WebhookRequest::default()
    };
    served
        .state
        .webhooks
        .create(
            &Acting::cli(),
            WebhookTarget::Repository(repo.clone()),
            request,
        )
        .await
        .unwrap()
        .webhook
        .id
}

#[tokio::test]
async fn a_receiver_down_for_a_while_gets_the_delivery_on_the_backoff_schedule() {
    let clock = ManualClock::starting_now();
    let (_dir, served) = start(&clock, 5).await;
    let repo: RepoName = "alice/app".parse().unwrap();
    push(&served, &repo, "1").await;
    let receiver = receiver(503).await;
    let id = hook(&served, &repo, &receiver.url).await;
    push(&served, &repo, "2").await;

    served.runner.run_due().await;
    assert_eq!(receiver.count(), 1, "sent at once");
    // The first retry comes 8–12 s later, not before.
    clock.advance(Duration::from_secs(7));
    served.runner.run_due().await;
    assert_eq!(receiver.count(), 1);
    clock.advance(Duration::from_secs(6));
    served.runner.run_due().await;
    assert_eq!(receiver.count(), 2);
    // Then 24–36 s. The receiver comes back meanwhile.
    receiver.answer(200);
    clock.advance(Duration::from_secs(20));
    served.runner.run_due().await;
    assert_eq!(receiver.count(), 2);
    clock.advance(Duration::from_secs(20));
    served.runner.run_due().await;
    assert_eq!(receiver.count(), 3);
    clock.advance(Duration::from_secs(3600));
    served.runner.run_due().await;
    assert_eq!(receiver.count(), 3, "delivered once, then done");

    let attempts = served
        .state
        .webhooks
        .attempts(&Acting::cli(), &id, 10)
        .await
        .unwrap();
    let statuses: Vec<Option<u16>> = attempts.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [Some(200), Some(503), Some(503)]);
    let numbers: Vec<u32> = attempts.iter().map(|a| a.attempt).collect();
    assert_eq!(numbers, [3, 2, 1]);
    let view = served
        .state
        .webhooks
        .get(&Acting::cli(), &id)
        .await
        .unwrap();
    assert!(view.enabled);
    assert_eq!(view.consecutive_failures, 0);
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_is_disabled_after_the_set_number_of_deliveries() {
    let clock = ManualClock::starting_now();
    let (_dir, served) = start(&clock, 2).await;
    let repo: RepoName = "alice/app".parse().unwrap();
    push(&served, &repo, "0").await;
    let receiver = receiver(500).await;
    let id = hook(&served, &repo, &receiver.url).await;
    push(&served, &repo, "1").await;
    push(&served, &repo, "2").await;
    // Every attempt of both deliveries: 13 each, over more than a day.
    for _ in 0..40 {
        served.runner.run_due().await;
        clock.advance(Duration::from_secs(4 * 3600));
    }
    assert_eq!(receiver.count(), 26);
    let view = served
        .state
        .webhooks
        .get(&Acting::cli(), &id)
        .await
        .unwrap();
    assert!(!view.enabled, "{view:?}");
    assert_eq!(
        view.disabled_reason.as_deref(),
        Some("disabled after 2 consecutive failed deliveries")
    );
    // A disabled webhook hears nothing more.
    push(&served, &repo, "3").await;
    served.runner.run_due().await;
    assert_eq!(receiver.count(), 26);
    // Turned back on, it does, and its failures start from zero.
    served
        .state
        .webhooks
        .set_enabled(&Acting::cli(), &id, true)
        .await
        .unwrap();
    receiver.answer(204);
    push(&served, &repo, "4").await;
    served.runner.run_due().await;
    assert_eq!(receiver.count(), 27);
    let view = served
        .state
        .webhooks
        .get(&Acting::cli(), &id)
        .await
        .unwrap();
    assert!(view.enabled && view.consecutive_failures == 0, "{view:?}");
}
