//! Pull counts and last-pulled times as the API shows them after real registry pulls: a
//! manifest GET counts, a HEAD does not, and a multi-platform pull counts once.

use crate::support::{basic, Berth, PASSWORD};
use serde_json::Value;

/// The repository's page as its owner sees it.
async fn shown(berth: &Berth, repo: &str) -> Value {
    berth
        .session("alice", PASSWORD)
        .await
        .get(&format!("/api/v1/repositories/{repo}"))
        .await
        .expect(200)
        .body
}

#[tokio::test]
async fn a_manifest_get_is_a_pull_and_a_head_is_not() {
    let berth = Berth::start().await;
    berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));
    assert_eq!(registry.push_image("alice/app", "v1").await, 201);
    berth.flush_pulls().await;
    let before = shown(&berth, "alice/app").await;
    assert_eq!(before["pull_count"], 0);
    assert_eq!(before["last_pulled"], Value::Null);
    assert!(before["last_updated"].is_string(), "pushed: {before}");

    for _ in 0..3 {
        assert_eq!(registry.head_manifest("alice/app", "v1").await, 200);
    }
    assert_eq!(registry.pull_manifest("alice/app", "v1").await, 200);
    assert_eq!(registry.pull_manifest("alice/app", "v1").await, 200);
    // Pulls that fail are not pulls.
    assert_eq!(registry.pull_manifest("alice/app", "v9").await, 404);
    assert_eq!(
        berth.anonymous().pull_manifest("alice/app", "v1").await,
        401
    );
    berth.flush_pulls().await;

    let after = shown(&berth, "alice/app").await;
    assert_eq!(after["pull_count"], 2);
    assert!(after["last_pulled"].is_string());
    let found = berth
        .session("alice", PASSWORD)
        .await
        .get("/api/v1/search?q=app")
        .await
        .expect(200);
    assert_eq!(found.body["results"][0]["pull_count"], 2);
}

#[tokio::test]
async fn pulls_wait_in_memory_until_flushed() {
    let berth = Berth::start().await;
    berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));
    assert_eq!(registry.push_image("alice/app", "v1").await, 201);
    assert_eq!(registry.pull_manifest("alice/app", "v1").await, 200);
    assert_eq!(shown(&berth, "alice/app").await["pull_count"], 0);
    berth.flush_pulls().await;
    assert_eq!(shown(&berth, "alice/app").await["pull_count"], 1);
    berth.flush_pulls().await;
    assert_eq!(shown(&berth, "alice/app").await["pull_count"], 1);
}

#[tokio::test]
async fn a_multi_platform_pull_counts_once() {
    let berth = Berth::start().await;
    berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));
    let amd64 = registry
        .push_platform_image("alice/multi", None, ("linux", "amd64"), &[b"amd64 layer"])
        .await;
    let arm64 = registry
        .push_platform_image("alice/multi", None, ("linux", "arm64"), &[b"arm64 layer"])
        .await;
    let index = registry
        .push_index("alice/multi", "latest", &[amd64.clone(), arm64])
        .await;

    // What a client does: the index by tag, then its platform's image by digest.
    assert_eq!(registry.pull_manifest("alice/multi", "latest").await, 200);
    let child = amd64["digest"].as_str().expect("digest");
    assert_eq!(registry.pull_manifest("alice/multi", child).await, 200);
    berth.flush_pulls().await;
    assert_eq!(shown(&berth, "alice/multi").await["pull_count"], 1);

    // Pinning the index by digest is a pull too, and touches the tag pointing at it.
    assert_eq!(registry.pull_manifest("alice/multi", &index).await, 200);
    berth.flush_pulls().await;
    let after = shown(&berth, "alice/multi").await;
    assert_eq!(after["pull_count"], 2);
    let tags = berth
        .session("alice", PASSWORD)
        .await
        .get("/api/v1/repositories/alice/multi/-/tags")
        .await
        .expect(200);
    assert!(tags.body["results"][0]["tag_last_pulled"].is_string());
}
