//! The contract of the webhooks port, run against every backend: SQLite, and a real
//! PostgreSQL (a private cluster from the test kit; skipped with a loud notice when
//! PostgreSQL is not installed, required under `CI=true`). Settings and the per-target
//! limit, the event hand-on's compare-and-set (two nodes handing on the same events store
//! them once), deliveries, attempts and disabling after a run of failures.

use berth_core::ports::{
    AttemptVerdict, DeliveryAttempt, DeliveryState, EventLog, JobQueue, MetaError, NewDelivery,
    NewJob, NewWebhook, RepositoryAccess, WebhookStore,
};
use berth_core::webhooks::{PayloadFormat, WebhookEvent, WebhookTarget};
use std::sync::Arc;

const NOW: i64 = 1_700_000_000;
const NOW_MS: i64 = NOW * 1000;

trait Store: WebhookStore + EventLog + JobQueue + RepositoryAccess {}
impl<T> Store for T where T: WebhookStore + EventLog + JobQueue + RepositoryAccess {}

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

fn webhook(id: &str, target: WebhookTarget) -> NewWebhook {
    NewWebhook {
        id: id.to_owned(),
        target,
        name: format!("hook {id}"),
        url: format!("https://example.test/{id}"),
        events: vec![WebhookEvent::Push, WebhookEvent::TagDelete],
        tag_filters: vec!["v*".to_owned(), "latest".to_owned()],
        format: PayloadFormat::CloudEvents,
        secret_sealed: vec![1, 2, 3],
        header_name: Some("X-Token".to_owned()),
        header_value_sealed: Some(vec![4, 5]),
        created_by: "alice".to_owned(),
        created_at: NOW,
    }
}

fn repo_target(name: &str) -> WebhookTarget {
    WebhookTarget::Repository(name.parse().unwrap())
}

fn delivery(id: &str, webhook_id: &str, event_id: Option<i64>) -> (NewDelivery, NewJob) {
    (
        NewDelivery {
            id: id.to_owned(),
            webhook_id: webhook_id.to_owned(),
            event_id,
            event_kind: "manifest.pushed".to_owned(),
            body: format!("{{\"delivery\":\"{id}\"}}"),
            created_at: NOW,
        },
        NewJob {
            kind: "webhook.deliver".to_owned(),
            payload: format!("{{\"delivery\":\"{id}\"}}"),
            due_at_ms: NOW_MS,
            max_attempts: 3,
            unique_key: Some(format!("webhook.deliver:{id}")),
        },
    )
}

fn attempt(delivery_id: &str, webhook_id: &str, n: u32) -> DeliveryAttempt {
    DeliveryAttempt {
        delivery_id: delivery_id.to_owned(),
        webhook_id: webhook_id.to_owned(),
        event_kind: "manifest.pushed".to_owned(),
        attempt: n,
        at_ms: NOW_MS + i64::from(n),
        status: Some(500),
        latency_ms: 12,
        response: Some("oops".to_owned()),
        error: None,
    }
}

async fn pending_job_keys(meta: &dyn Store) -> Vec<String> {
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
async fn webhooks_are_stored_listed_per_target_and_limited() {
    for backend in backends("webhooks_are_stored_listed_per_target_and_limited").await {
        eprintln!(
            "{}: webhooks_are_stored_listed_per_target_and_limited",
            backend.name
        );
        let meta = &*backend.node;
        // An event before the webhook exists: the webhook hears only of later ones.
        meta.create_repository(&"alice/app".parse().unwrap(), None, NOW, None)
            .await
            .unwrap();
        let last = meta.last_event_id().await.unwrap();
        assert!(last > 0);

        meta.create_webhook(&webhook("w1", repo_target("alice/app")), 2)
            .await
            .unwrap();
        meta.create_webhook(&webhook("w2", repo_target("alice/app")), 2)
            .await
            .unwrap();
        match meta
            .create_webhook(&webhook("w3", repo_target("alice/app")), 2)
            .await
        {
            Err(MetaError::Conflict(what)) => assert_eq!(what, "webhook number 3"),
            other => panic!("{}: expected the limit, got {other:?}", backend.name),
        }
        assert!(meta.webhook("w3").await.unwrap().is_none(), "refused");
        // The limit is per target.
        meta.create_webhook(&webhook("n1", WebhookTarget::Namespace("alice".into())), 2)
            .await
            .unwrap();
        meta.create_webhook(&webhook("s1", WebhookTarget::Site), 2)
            .await
            .unwrap();
        meta.create_webhook(&webhook("o1", repo_target("bob/other")), 2)
            .await
            .unwrap();

        let stored = meta.webhook("w1").await.unwrap().unwrap();
        assert_eq!(stored.target, repo_target("alice/app"));
        assert_eq!(stored.name, "hook w1");
        assert_eq!(stored.url, "https://example.test/w1");
        assert_eq!(stored.events, [WebhookEvent::Push, WebhookEvent::TagDelete]);
        assert_eq!(stored.tag_filters, ["v*", "latest"]);
        assert_eq!(stored.format, PayloadFormat::CloudEvents);
        assert_eq!(stored.secret_sealed, [1, 2, 3]);
        assert_eq!(stored.header_name.as_deref(), Some("X-Token"));
        assert_eq!(stored.header_value_sealed.as_deref(), Some(&[4u8, 5][..]));
        assert!(stored.enabled && stored.disabled_reason.is_none());
        assert_eq!(stored.consecutive_failures, 0);
        assert_eq!(stored.after_event, last);
        assert_eq!(
            (stored.created_by.as_str(), stored.created_at),
            ("alice", NOW)
        );
        assert!(meta.webhook("ghost").await.unwrap().is_none());

        let ids = |hooks: Vec<berth_core::ports::WebhookRecord>| -> Vec<String> {
            hooks.into_iter().map(|h| h.id).collect()
        };
        assert_eq!(
            ids(meta.webhooks_of(&repo_target("alice/app")).await.unwrap()),
            ["w1", "w2"]
        );
        assert_eq!(
            ids(meta
                .webhooks_of(&WebhookTarget::Namespace("alice".into()))
                .await
                .unwrap()),
            ["n1"]
        );
        assert_eq!(
            ids(meta.webhooks_of(&WebhookTarget::Site).await.unwrap()),
            ["s1"]
        );
        assert_eq!(
            ids(meta
                .webhooks_listening("alice", Some("alice/app"))
                .await
                .unwrap()),
            ["n1", "s1", "w1", "w2"]
        );
        assert_eq!(
            ids(meta.webhooks_listening("alice", None).await.unwrap()),
            ["n1", "s1"]
        );

        // Off with a reason: no longer listening; on again clears the run of failures.
        assert!(meta
            .set_webhook_enabled("w2", false, Some("paused"))
            .await
            .unwrap());
        let w2 = meta.webhook("w2").await.unwrap().unwrap();
        assert!(!w2.enabled);
        assert_eq!(w2.disabled_reason.as_deref(), Some("paused"));
        assert_eq!(
            ids(meta
                .webhooks_listening("alice", Some("alice/app"))
                .await
                .unwrap()),
            ["n1", "s1", "w1"]
        );
        assert!(meta
            .set_webhook_enabled("w2", true, Some("ignored"))
            .await
            .unwrap());
        let w2 = meta.webhook("w2").await.unwrap().unwrap();
        assert!(w2.enabled && w2.disabled_reason.is_none());
        assert!(!meta.set_webhook_enabled("ghost", true, None).await.unwrap());

        assert!(meta.delete_webhook("w2").await.unwrap());
        assert!(!meta.delete_webhook("w2").await.unwrap());
        // Room for one more on the target now.
        meta.create_webhook(&webhook("w3", repo_target("alice/app")), 2)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_creation_keeps_the_limit() {
    for backend in backends("concurrent_creation_keeps_the_limit").await {
        eprintln!("{}: concurrent_creation_keeps_the_limit", backend.name);
        let tasks: Vec<_> = (0..6)
            .map(|i| {
                let meta = if i % 2 == 0 {
                    backend.node.clone()
                } else {
                    backend.other_node.clone()
                };
                tokio::spawn(async move {
                    meta.create_webhook(&webhook(&format!("w{i}"), WebhookTarget::Site), 3)
                        .await
                })
            })
            .collect();
        let mut created = 0;
        for task in tasks {
            match task.await.unwrap() {
                Ok(()) => created += 1,
                Err(MetaError::Conflict(_)) => {}
                Err(other) => panic!("{}: {other}", backend.name),
            }
        }
        assert_eq!(created, 3, "{}", backend.name);
        assert_eq!(
            backend
                .node
                .webhooks_of(&WebhookTarget::Site)
                .await
                .unwrap()
                .len(),
            3
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_are_handed_on_once_whichever_node_does_it() {
    for backend in backends("events_are_handed_on_once_whichever_node_does_it").await {
        eprintln!(
            "{}: events_are_handed_on_once_whichever_node_does_it",
            backend.name
        );
        let meta = &*backend.node;
        meta.create_webhook(&webhook("w1", WebhookTarget::Site), 5)
            .await
            .unwrap();
        let cursor = "webhooks";
        let from = meta.event_cursor(cursor).await.unwrap();
        assert_eq!(from, 0);
        assert_eq!(meta.event_cursor("never-moved").await.unwrap(), 0);

        // Two nodes hand on the same events at once: exactly one stores its deliveries.
        let first = [delivery("d-a", "w1", Some(1))];
        let second = [delivery("d-b", "w1", Some(1))];
        let (a, b) = tokio::join!(
            backend.node.hand_on_events(cursor, from, 5, &first),
            backend.other_node.hand_on_events(cursor, from, 5, &second)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert!(a ^ b, "{}: exactly one hand-on wins", backend.name);
        assert_eq!(meta.event_cursor(cursor).await.unwrap(), 5);
        let (won, lost) = if a { ("d-a", "d-b") } else { ("d-b", "d-a") };
        let stored = meta.delivery(won).await.unwrap().unwrap();
        assert_eq!(stored.state, DeliveryState::Pending);
        assert_eq!(stored.event_id, Some(1));
        assert_eq!(stored.webhook_id, "w1");
        assert_eq!(stored.body, format!("{{\"delivery\":\"{won}\"}}"));
        assert!(
            meta.delivery(lost).await.unwrap().is_none(),
            "nothing stored"
        );
        assert_eq!(
            pending_job_keys(meta).await,
            [format!("{{\"delivery\":\"{won}\"}}")]
        );

        // A stale `from` stores nothing.
        assert!(!meta
            .hand_on_events(cursor, 0, 9, &[delivery("d-c", "w1", Some(6))])
            .await
            .unwrap());
        assert!(meta.delivery("d-c").await.unwrap().is_none());
        assert_eq!(meta.event_cursor(cursor).await.unwrap(), 5);
        // Moving on from where it stands works, with no deliveries too.
        assert!(meta.hand_on_events(cursor, 5, 9, &[]).await.unwrap());
        assert_eq!(meta.event_cursor(cursor).await.unwrap(), 9);
        // A cursor seen for the first time starts wherever it is moved to.
        assert!(meta.hand_on_events("other", 0, 3, &[]).await.unwrap());
        assert_eq!(meta.event_cursor("other").await.unwrap(), 3);
    }
}

#[tokio::test]
async fn attempts_settle_deliveries_and_a_run_of_failures_disables() {
    for backend in backends("attempts_settle_deliveries_and_a_run_of_failures_disables").await {
        eprintln!(
            "{}: attempts_settle_deliveries_and_a_run_of_failures_disables",
            backend.name
        );
        let meta = &*backend.node;
        meta.create_webhook(&webhook("w1", WebhookTarget::Site), 5)
            .await
            .unwrap();
        for id in ["d1", "d2", "d3", "d4"] {
            let (d, job) = delivery(id, "w1", None);
            meta.enqueue_delivery(&d, &job).await.unwrap();
        }
        assert_eq!(meta.delivery("d1").await.unwrap().unwrap().event_id, None);

        // A delivered attempt finishes its job (by lease) and settles the delivery.
        let claimed = meta.claim_jobs(NOW_MS, 60_000, 10).await.unwrap();
        assert_eq!(claimed.len(), 4);
        let d1_job = claimed
            .iter()
            .find(|j| j.payload.contains("\"d1\""))
            .unwrap();
        let mut ok = attempt("d1", "w1", 1);
        ok.status = Some(200);
        assert!(!meta
            .record_attempt(
                &ok,
                AttemptVerdict::Delivered,
                2,
                Some((d1_job.id, &d1_job.lease))
            )
            .await
            .unwrap());
        assert_eq!(
            meta.delivery("d1").await.unwrap().unwrap().state,
            DeliveryState::Delivered
        );
        assert_eq!(pending_job_keys(meta).await.len(), 3, "d1's job is done");

        // Retries do not count; a final failure does, and two in a row disable (limit 2).
        assert!(!meta
            .record_attempt(&attempt("d2", "w1", 1), AttemptVerdict::WillRetry, 2, None)
            .await
            .unwrap());
        assert_eq!(
            meta.delivery("d2").await.unwrap().unwrap().state,
            DeliveryState::Pending
        );
        assert_eq!(
            meta.webhook("w1")
                .await
                .unwrap()
                .unwrap()
                .consecutive_failures,
            0
        );
        assert!(!meta
            .record_attempt(&attempt("d2", "w1", 2), AttemptVerdict::Failed, 2, None)
            .await
            .unwrap());
        assert_eq!(
            meta.delivery("d2").await.unwrap().unwrap().state,
            DeliveryState::Failed
        );
        assert_eq!(
            meta.webhook("w1")
                .await
                .unwrap()
                .unwrap()
                .consecutive_failures,
            1
        );
        assert!(
            meta.record_attempt(&attempt("d3", "w1", 1), AttemptVerdict::Failed, 2, None)
                .await
                .unwrap(),
            "{}: the second failure in a row disables",
            backend.name
        );
        let w1 = meta.webhook("w1").await.unwrap().unwrap();
        assert!(!w1.enabled);
        assert_eq!(
            w1.disabled_reason.as_deref(),
            Some("disabled after 2 consecutive failed deliveries")
        );
        assert!(
            !meta
                .record_attempt(&attempt("d4", "w1", 1), AttemptVerdict::Failed, 2, None)
                .await
                .unwrap(),
            "already disabled"
        );

        // Enabled again, a delivery ends the run; 410 Gone disables at once.
        meta.set_webhook_enabled("w1", true, None).await.unwrap();
        assert_eq!(
            meta.webhook("w1")
                .await
                .unwrap()
                .unwrap()
                .consecutive_failures,
            0
        );
        assert!(meta
            .record_attempt(&attempt("d4", "w1", 2), AttemptVerdict::Gone, 5, None)
            .await
            .unwrap());
        let w1 = meta.webhook("w1").await.unwrap().unwrap();
        assert_eq!(
            w1.disabled_reason.as_deref(),
            Some("the receiver answered 410 Gone")
        );

        // The history, newest first.
        let history = meta.delivery_attempts("w1", 3).await.unwrap();
        let seen: Vec<_> = history
            .iter()
            .map(|a| (a.delivery_id.as_str(), a.attempt))
            .collect();
        assert_eq!(seen, [("d4", 2), ("d4", 1), ("d3", 1)]);
        assert_eq!(history[0].status, Some(500));
        assert_eq!(history[0].latency_ms, 12);
        assert_eq!(history[0].response.as_deref(), Some("oops"));
        assert_eq!(history[0].event_kind, "manifest.pushed");
        assert_eq!(meta.delivery_attempts("w1", 100).await.unwrap().len(), 6);

        // Redelivery: pending again with a new job.
        let again = NewJob {
            unique_key: Some("webhook.deliver:d2-again".into()),
            ..delivery("d2", "w1", None).1
        };
        assert!(meta.redeliver("d2", &again).await.unwrap());
        assert_eq!(
            meta.delivery("d2").await.unwrap().unwrap().state,
            DeliveryState::Pending
        );
        assert!(!meta.redeliver("ghost", &again).await.unwrap());

        // Pruning removes settled deliveries (with their attempts), never pending ones.
        let pruned = meta.prune_deliveries(NOW + 1).await.unwrap();
        assert_eq!(pruned, 3, "{}: d1, d3 and d4", backend.name);
        assert!(meta.delivery("d2").await.unwrap().is_some());
        assert!(meta.delivery("d1").await.unwrap().is_none());
        let left: Vec<_> = meta
            .delivery_attempts("w1", 100)
            .await
            .unwrap()
            .into_iter()
            .map(|a| a.delivery_id)
            .collect();
        assert_eq!(left, ["d2", "d2"]);
    }
}

#[tokio::test]
async fn deleting_a_webhook_drops_its_pending_deliveries() {
    for backend in backends("deleting_a_webhook_drops_its_pending_deliveries").await {
        eprintln!(
            "{}: deleting_a_webhook_drops_its_pending_deliveries",
            backend.name
        );
        let meta = &*backend.node;
        meta.create_webhook(&webhook("w1", WebhookTarget::Site), 5)
            .await
            .unwrap();
        meta.create_webhook(&webhook("w2", WebhookTarget::Site), 5)
            .await
            .unwrap();
        for (id, hook) in [("d1", "w1"), ("d2", "w2")] {
            let (d, job) = delivery(id, hook, None);
            meta.enqueue_delivery(&d, &job).await.unwrap();
        }
        assert!(meta.delete_webhook("w1").await.unwrap());
        assert!(meta.delivery("d1").await.unwrap().is_none());
        assert_eq!(
            pending_job_keys(meta).await,
            ["{\"delivery\":\"d2\"}"],
            "{}: only w2's job is left",
            backend.name
        );
    }
}
