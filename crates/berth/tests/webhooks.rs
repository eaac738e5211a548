//! Webhooks from the real binary: a delivery survives `kill -9` between the push's `201` and
//! its sending, and a load of pushes to a repository with two webhooks gives every delivery
//! once, signed (the time from `201` to delivery is printed; `scripts/bench` measures it).
//!
//! ```text
//! cargo nextest run -p berth --test webhooks --no-capture
//! ```

mod common;

use berth_testkit::receiver::{vacant_addr, Received, Receiver};
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Whether `delivery` is signed with any of `secrets`.
fn signed_with_any(delivery: &Received, secrets: &[String]) -> bool {
    secrets.iter().any(|secret| delivery.signed_with(secret))
}

/// Creates a push webhook on `repo` for `url`; its secret.
async fn create_webhook(server: &TestServer, repo: &str, url: &str) -> String {
    let resp = server
        .client()
        .post(server.url(&format!("/api/v1/repositories/{repo}/-/webhooks")))
        .json(&json!({ "hook_url": url }))
        .send()
        .await
        .expect("create webhook");
    assert_eq!(
        resp.status(),
        201,
        "{}",
        resp.text().await.unwrap_or_default()
    );
    let body: Value = resp.json().await.unwrap();
    body["secret"].as_str().unwrap().to_owned()
}

fn private_receivers() -> SpawnOptions {
    SpawnOptions::default().env("BERTH_WEBHOOK_ALLOW_PRIVATE", "true")
}

#[tokio::test]
async fn a_delivery_survives_kill_9_between_the_201_and_its_sending() {
    let mut server = TestServer::spawn_with(private_receivers()).await;
    let repo = unique_repo("webhook-crash");
    server.push_random_image(&repo, Some("1")).await;
    // The receiver is down at first: nothing listens on its port.
    let addr = vacant_addr();
    let secret = create_webhook(&server, &repo, &format!("http://{addr}/hook")).await;
    let pushed = server.push_random_image(&repo, Some("2")).await;
    server.kill_hard();

    let receiver = Receiver::start_on(addr).await;
    server.restart().await;
    // Sent at once if it never went out; otherwise at its first retry (within ~12 s).
    let deliveries = receiver.collect(1, Duration::from_secs(40)).await;
    assert_eq!(
        deliveries.len(),
        1,
        "the acknowledged push was not delivered: {}",
        server.log()
    );
    let delivery = &deliveries[0];
    assert!(delivery.signed_with(&secret));
    let body = delivery.json();
    assert_eq!(body["push_data"]["tag"], "2");
    assert_eq!(body["push_data"]["digest"], pushed.digest);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.count(), 1, "delivered once");
}

#[tokio::test]
async fn a_thousand_pushes_to_two_webhooks_are_each_delivered_once() {
    const PUSHES: usize = 1000;
    let server = TestServer::spawn_with(private_receivers()).await;
    let repo = unique_repo("webhook-load");
    let image = server.push_random_image(&repo, Some("base")).await;
    let receiver = Receiver::start().await;
    let mut secrets = Vec::new();
    for _ in 0..2 {
        secrets.push(create_webhook(&server, &repo, &receiver.url).await);
    }
    // The same config and layer under a thousand manifests, each with its own tag.
    let template: Value = serde_json::from_slice(&image.bytes).unwrap();
    let acknowledged: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let server = Arc::new(server);
    let mut pushers = tokio::task::JoinSet::new();
    for worker in 0..16 {
        let (server, repo, template, acknowledged) = (
            server.clone(),
            repo.clone(),
            template.clone(),
            acknowledged.clone(),
        );
        pushers.spawn(async move {
            for n in (worker..PUSHES).step_by(16) {
                let mut manifest = template.clone();
                manifest["annotations"] = json!({ "n": n.to_string() });
                let bytes = pretty(&manifest);
                let digest = sha256(&bytes);
                server
                    .push_manifest_ok(&repo, Some(&format!("t{n}")), MT_OCI_MANIFEST, &bytes)
                    .await;
                acknowledged.lock().unwrap().insert(digest, Instant::now());
            }
        });
    }
    while let Some(done) = pushers.join_next().await {
        done.unwrap();
    }
    let deliveries = receiver.collect(2 * PUSHES, Duration::from_secs(120)).await;
    assert_eq!(deliveries.len(), 2 * PUSHES, "deliveries lost");
    assert!(
        deliveries.iter().all(|d| signed_with_any(d, &secrets)),
        "every delivery is signed"
    );
    let mut ids: Vec<&str> = deliveries.iter().map(|d| d.header("webhook-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2 * PUSHES, "no delivery twice");
    let acknowledged = acknowledged.lock().unwrap();
    let mut per_digest: HashMap<&str, usize> = HashMap::new();
    let bodies: Vec<Value> = deliveries.iter().map(Received::json).collect();
    let mut latencies: Vec<Duration> = deliveries
        .iter()
        .zip(&bodies)
        .map(|(d, body)| {
            let digest = body["push_data"]["digest"].as_str().unwrap();
            *per_digest.entry(digest).or_default() += 1;
            d.at.saturating_duration_since(acknowledged[digest])
        })
        .collect();
    assert_eq!(per_digest.len(), PUSHES);
    assert!(
        per_digest.values().all(|n| *n == 2),
        "each push reaches both webhooks once"
    );
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p99 = latencies[latencies.len() * 99 / 100];
    println!(
        "webhook load: {} deliveries for {PUSHES} pushes; from 201 to delivery p50 {:.0} ms, p99 {:.0} ms",
        deliveries.len(),
        p50.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0
    );
    // Speed is the benchmark's to judge (`scripts/bench`, PERFORMANCE.md): this debug build
    // shares the machine with the rest of the suite, so the figures are only printed.
}
