//! Webhooks from the real binary: a delivery survives `kill -9` between the push's `201` and
//! its sending, and a load of pushes to a repository with two webhooks gives every delivery
//! once, signed (the time from `201` to delivery is printed; `scripts/bench` measures it).
//!
//! ```text
//! cargo nextest run -p berth --test webhooks --no-capture
//! ```

mod common;

use axum::http::HeaderMap;
use axum::routing::post;
use axum::Router;
use berth_core::webhooks::verify;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a receiver got: the `webhook-id`, whether the signature verified, the body, and when.
#[derive(Debug, Clone)]
struct Delivery {
    id: String,
    signed: bool,
    body: Value,
    at: Instant,
}

/// A receiver on `addr` that checks signatures against `secrets` (any of them).
async fn receiver(addr: SocketAddr, secrets: Arc<Mutex<Vec<String>>>) -> Arc<Mutex<Vec<Delivery>>> {
    let got: Arc<Mutex<Vec<Delivery>>> = Arc::default();
    let log = got.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: String| {
            let (log, secrets) = (log.clone(), secrets.clone());
            async move {
                let at = Instant::now();
                let header = |name: &str| {
                    headers
                        .get(name)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                let id = header("webhook-id");
                let timestamp: i64 = header("webhook-timestamp").parse().unwrap_or(0);
                let signature = header("webhook-signature");
                let signed = secrets
                    .lock()
                    .unwrap()
                    .iter()
                    .any(|s| verify(s, &id, timestamp, body.as_bytes(), &signature));
                let body = serde_json::from_str(&body).unwrap_or(Value::Null);
                log.lock().unwrap().push(Delivery {
                    id,
                    signed,
                    body,
                    at,
                });
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("receiver port");
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    got
}

/// A loopback port nothing listens on (yet).
fn vacant_addr() -> SocketAddr {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    probe.local_addr().unwrap()
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

async fn wait_for(got: &Arc<Mutex<Vec<Delivery>>>, n: usize, within: Duration) -> Vec<Delivery> {
    let deadline = Instant::now() + within;
    loop {
        let now = got.lock().unwrap().clone();
        if now.len() >= n || Instant::now() > deadline {
            return now;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

    let got = receiver(addr, Arc::new(Mutex::new(vec![secret]))).await;
    server.restart().await;
    // Sent at once if it never went out; otherwise at its first retry (within ~12 s).
    let deliveries = wait_for(&got, 1, Duration::from_secs(40)).await;
    assert_eq!(
        deliveries.len(),
        1,
        "the acknowledged push was not delivered: {}",
        server.log()
    );
    let delivery = &deliveries[0];
    assert!(delivery.signed);
    assert_eq!(delivery.body["push_data"]["tag"], "2");
    assert_eq!(delivery.body["push_data"]["digest"], pushed.digest);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(got.lock().unwrap().len(), 1, "delivered once");
}

#[tokio::test]
async fn a_thousand_pushes_to_two_webhooks_are_each_delivered_once() {
    const PUSHES: usize = 1000;
    let server = TestServer::spawn_with(private_receivers()).await;
    let repo = unique_repo("webhook-load");
    let image = server.push_random_image(&repo, Some("base")).await;
    let secrets = Arc::new(Mutex::new(Vec::new()));
    let addr = vacant_addr();
    let got = receiver(addr, secrets.clone()).await;
    for path in ["/hook", "/hook"] {
        let secret = create_webhook(&server, &repo, &format!("http://{addr}{path}")).await;
        secrets.lock().unwrap().push(secret);
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
                let bytes = encode_manifest(&manifest);
                let digest = sha256_digest(&bytes);
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
    let deliveries = wait_for(&got, 2 * PUSHES, Duration::from_secs(120)).await;
    assert_eq!(deliveries.len(), 2 * PUSHES, "deliveries lost");
    assert!(
        deliveries.iter().all(|d| d.signed),
        "every delivery is signed"
    );
    let mut ids: Vec<&str> = deliveries.iter().map(|d| d.id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 2 * PUSHES, "no delivery twice");
    let acknowledged = acknowledged.lock().unwrap();
    let mut per_digest: HashMap<&str, usize> = HashMap::new();
    let mut latencies: Vec<Duration> = deliveries
        .iter()
        .map(|d| {
            let digest = d.body["push_data"]["digest"].as_str().unwrap();
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
