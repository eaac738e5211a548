//! Pull rate limits over a real SQLite store: two nodes sharing one database see each
//! other's pulls after an exchange, a restarted node remembers what it spent, and plans
//! stored by one process reach another.

use berth_core::clock::ManualClock;
use berth_core::identity::{Acting, Identity};
use berth_core::ratelimit::{Plan, PullLimits, PullOutcome, Puller, Rate, Tiers};
use berth_core::Error;
use berth_meta::SqliteMeta;
use berth_oci::Digest;
use std::sync::Arc;
use std::time::Duration;

const MANIFEST: &[u8] = br#"{"schemaVersion":2}"#;

fn digest() -> Digest {
    format!("sha256:{}", "ab".repeat(32)).parse().unwrap()
}

fn tiers() -> Tiers {
    Tiers {
        anonymous: Some(Rate::parse("4;w=400").unwrap()),
        ..Tiers::default()
    }
}

async fn pull(limits: &PullLimits, client: &str) -> Result<u32, Error> {
    let puller = Puller::Anonymous(Some(client.parse().unwrap()));
    match limits
        .pull(
            puller,
            "library",
            &digest(),
            "application/vnd.oci.image.manifest.v1+json",
            MANIFEST,
        )
        .await?
    {
        PullOutcome::Allowed { remaining, .. } => Ok(remaining),
        PullOutcome::Free => panic!("anonymous pulls are limited here"),
    }
}

#[tokio::test]
async fn nodes_share_their_pulls_through_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteMeta::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let clock = ManualClock::starting_now();
    let one = PullLimits::new(store.clone(), clock.clone(), tiers());
    let two = PullLimits::new(store.clone(), clock.clone(), tiers());
    assert_eq!(pull(&one, "192.0.2.1").await.unwrap(), 3);
    assert_eq!(pull(&one, "192.0.2.1").await.unwrap(), 2);
    // Before an exchange, the other node does not know yet (the inexactness across nodes).
    assert_eq!(pull(&two, "192.0.2.1").await.unwrap(), 3);
    one.exchange().await.unwrap();
    assert_eq!(
        two.exchange().await.unwrap(),
        1,
        "one row of node one's spending"
    );
    assert_eq!(pull(&two, "192.0.2.1").await.unwrap(), 0);
    assert_eq!(one.exchange().await.unwrap(), 1, "node two's first pull");
    assert_eq!(two.exchange().await.unwrap(), 0, "it hands on its second");
    assert_eq!(one.exchange().await.unwrap(), 1);
    assert!(matches!(
        pull(&one, "192.0.2.1").await,
        Err(Error::PullRateLimited { .. })
    ));
    // Time pays pulls back on both nodes alike: one every 100 s.
    clock.advance(Duration::from_secs(100));
    assert_eq!(pull(&one, "192.0.2.1").await.unwrap(), 0);

    // A restarted node (a new process) reads what was spent before it started.
    let restarted = PullLimits::new(store.clone(), clock.clone(), tiers());
    one.exchange().await.unwrap();
    assert!(restarted.exchange().await.unwrap() >= 3);
    assert!(matches!(
        pull(&restarted, "192.0.2.1").await,
        Err(Error::PullRateLimited { .. })
    ));
    assert_eq!(pull(&restarted, "192.0.2.2").await.unwrap(), 3);
    // Rows older than the longest window are dropped as new ones come in.
    clock.advance(Duration::from_secs(1_000));
    assert_eq!(pull(&one, "192.0.2.3").await.unwrap(), 3);
    one.exchange().await.unwrap();
    let late = PullLimits::new(store.clone(), clock.clone(), tiers());
    assert_eq!(
        late.exchange().await.unwrap(),
        1,
        "only the recent row is left"
    );
}

#[tokio::test]
async fn plans_set_in_one_process_reach_another() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        SqliteMeta::open(&dir.path().join("berth.db"))
            .await
            .unwrap(),
    );
    let identity = Identity::new(store.clone());
    identity
        .create_user(&Acting::cli(), "alice", "correct horse battery", false)
        .await
        .unwrap();
    let clock = ManualClock::starting_now();
    let server = PullLimits::new(store.clone(), clock.clone(), Tiers::default());
    let alice = Puller::Account("alice");
    // No tiers and no plans: nothing is counted.
    server.exchange().await.unwrap();
    assert_eq!(
        server.check(alice, "library").await.unwrap(),
        PullOutcome::Free
    );
    let cli = PullLimits::new(store.clone(), clock.clone(), Tiers::default());
    cli.set_plan(&Acting::cli(), "alice", Plan::parse("2;w=60").unwrap())
        .await
        .unwrap();
    assert!(matches!(
        cli.set_plan(&Acting::cli(), "nobody", Plan::Unlimited)
            .await,
        Err(Error::AccountUnknown(_))
    ));
    // The server learns that plans exist at its next exchange, and reads alice's afresh
    // once what it knew of her is 30 s old.
    server.exchange().await.unwrap();
    clock.advance(Duration::from_secs(31));
    match server.check(alice, "library").await.unwrap() {
        PullOutcome::Allowed {
            rate,
            remaining,
            source,
        } => {
            assert_eq!(rate.to_string(), "2;w=60");
            assert_eq!(remaining, 2);
            assert_eq!(source, "alice");
        }
        other => panic!("expected a limit, got {other:?}"),
    }
    assert!(cli.clear_plan(&Acting::cli(), "alice").await.unwrap());
    assert!(!cli.clear_plan(&Acting::cli(), "alice").await.unwrap());
    let plans = cli.plans(&Acting::cli()).await.unwrap();
    assert!(plans.is_empty());
}
