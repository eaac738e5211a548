//! Docker's `/v1/search` over many repositories (Berth only: Distribution has no search).
//!
//! Setup creates the repositories through Berth's JSON API as the site admin, spread over a
//! few organizations and `library`, gives some a description, stars a few and pulls a few;
//! the measured part is one query at a time, of four kinds: an exact name, a name prefix, a
//! word, and text that matches nothing.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::{Client, StatusCode};
use serde_json::json;

use crate::data::{sha256_digest, WyRand};
use crate::registry::{image_config, image_manifest};
use crate::stats::percentile;
use crate::target::Target;
use crate::Result;

const ORGS: [&str; 9] = [
    "acme", "globex", "initech", "umbrella", "hooli", "stark", "wayne", "wonka", "tyrell",
];
const ADJECTIVES: [&str; 32] = [
    "quick", "lazy", "brave", "calm", "eager", "fancy", "gentle", "happy", "jolly", "kind",
    "lucky", "mighty", "noble", "proud", "quiet", "rapid", "silent", "tidy", "vivid", "witty",
    "zesty", "amber", "bold", "crisp", "dusty", "early", "frosty", "golden", "hollow", "icy",
    "jade", "keen",
];
const NOUNS: [&str; 32] = [
    "falcon", "otter", "badger", "comet", "delta", "ember", "forge", "glacier", "harbor", "island",
    "jetty", "kernel", "lantern", "meadow", "nebula", "orchard", "pixel", "quarry", "raven",
    "summit", "tunnel", "utopia", "valley", "willow", "xenon", "yonder", "zephyr", "anchor",
    "beacon", "cinder", "dynamo", "engine",
];
const TOPICS: [&str; 8] = [
    "database",
    "proxy",
    "cache",
    "queue",
    "web server",
    "build tools",
    "monitoring",
    "runtime",
];

/// The `i`-th repository: `namespace/adjective-noun-i`, public except every tenth.
fn repository(i: usize) -> (String, String, bool) {
    let namespace = match i % 50 {
        0 => "library",
        n => ORGS[n % ORGS.len()],
    };
    let name = format!(
        "{}-{}-{i}",
        ADJECTIVES[i % ADJECTIVES.len()],
        NOUNS[(i / ADJECTIVES.len()) % NOUNS.len()]
    );
    (namespace.to_owned(), name, i % 10 == 7)
}

fn description(i: usize) -> String {
    format!(
        "A {} {} for {} teams",
        ADJECTIVES[(i / 7) % ADJECTIVES.len()],
        TOPICS[i % TOPICS.len()],
        NOUNS[(i / 3) % NOUNS.len()]
    )
}

/// Every `DESCRIBED`-th repository gets a description, every `STARRED`-th a star and every
/// `PULLED`-th an image and a few pulls.
const DESCRIBED: usize = 10;
const STARRED: usize = 997;
const PULLED: usize = 4999;

async fn expect(resp: reqwest::Response, ok: &[StatusCode], what: &str) -> Result<()> {
    if ok.contains(&resp.status()) {
        return Ok(());
    }
    let status = resp.status();
    let body: String = resp
        .text()
        .await
        .unwrap_or_default()
        .chars()
        .take(300)
        .collect();
    Err(format!("{what}: {status}: {body}").into())
}

/// Whether the target answers `/v1/search` at all.
pub async fn supported(t: &Target) -> Result<bool> {
    let resp = t.client.get(t.url("v1/search?q=probe")).send().await?;
    Ok(resp.status() == StatusCode::OK)
}

/// Creates `count` repositories (not measured), `concurrency` requests at a time.
pub async fn setup(t: &Arc<Target>, count: usize, concurrency: usize) -> Result<()> {
    for org in ORGS {
        let resp = t
            .client
            .post(t.url("api/v1/orgs"))
            .json(&json!({ "orgname": org }))
            .send()
            .await?;
        expect(
            resp,
            &[StatusCode::CREATED, StatusCode::CONFLICT],
            "create org",
        )
        .await?;
    }
    let next = Arc::new(AtomicUsize::new(0));
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (t, next) = (t.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= count {
                        return Ok::<_, crate::Error>(());
                    }
                    create(&t, i).await?;
                }
            })
        })
        .collect();
    for w in workers {
        w.await??;
    }
    activity(t, count).await
}

async fn create(t: &Target, i: usize) -> Result<()> {
    let (namespace, name, private) = repository(i);
    let resp = t
        .client
        .post(t.url("api/v1/repositories"))
        .json(&json!({ "namespace": namespace, "name": name, "is_private": private }))
        .send()
        .await?;
    expect(
        resp,
        &[StatusCode::CREATED, StatusCode::CONFLICT],
        "create repository",
    )
    .await?;
    if i.is_multiple_of(DESCRIBED) {
        let resp = t
            .client
            .patch(t.url(&format!("api/v1/repositories/{namespace}/{name}")))
            .json(&json!({ "description": description(i) }))
            .send()
            .await?;
        expect(resp, &[StatusCode::OK], "describe repository").await?;
    }
    Ok(())
}

/// Stars some repositories and pushes to and pulls from a few, then waits for Berth's pull
/// recorder to write the pulls (it flushes every 5 seconds).
async fn activity(t: &Target, count: usize) -> Result<()> {
    let config = image_config("search");
    let config_digest = sha256_digest(&config);
    let manifest = image_manifest((&config_digest, config.len()), &[]);
    for i in (0..count).step_by(STARRED) {
        let (namespace, name, _) = repository(i);
        let resp = t
            .client
            .put(t.url(&format!("api/v1/repositories/{namespace}/{name}/-/star")))
            .send()
            .await?;
        expect(resp, &[StatusCode::NO_CONTENT], "star").await?;
    }
    for i in (0..count).step_by(PULLED) {
        let (namespace, name, _) = repository(i);
        let repo = format!("{namespace}/{name}");
        t.push_blob(&repo, &config_digest, config.clone()).await?;
        t.put_manifest(&repo, "latest", manifest.clone()).await?;
        for _ in 0..1 + i % 5 {
            t.get_manifest(t.url(&format!("v2/{repo}/manifests/latest")))
                .await?;
        }
    }
    tokio::time::sleep(Duration::from_secs(6)).await;
    Ok(())
}

/// The four kinds of query, in the order they are sent.
pub const KINDS: [&str; 4] = ["exact", "prefix", "word", "none"];

/// `count` search texts about the first `repos` repositories, cycling through the kinds,
/// varied by `seed`.
pub fn queries(repos: usize, count: usize, seed: u64) -> Vec<(usize, String)> {
    let mut rng = WyRand::new(seed);
    (0..count)
        .map(|q| {
            let i = rng.range(0, repos.saturating_sub(1) as u64) as usize;
            let (_, name, _) = repository(i);
            let kind = q % KINDS.len();
            let text = match kind {
                0 => name,
                // Four to eight characters of the name: hundreds to thousands of matches.
                1 => name.chars().take(4 + q % 5).collect(),
                2 => match q % 3 {
                    0 => NOUNS[i % NOUNS.len()].to_owned(),
                    1 => TOPICS[i % TOPICS.len()].to_owned(),
                    _ => ADJECTIVES[i % ADJECTIVES.len()].to_owned(),
                },
                _ => format!("zzq{}x", rng.range(0, 1_000_000)),
            };
            (kind, text)
        })
        .collect()
}

/// Latencies of the queries, one at a time, each `GET /v1/search?q=...&n=25`, as the
/// target's client (signed in) or, with `anonymous`, without credentials.
pub async fn run(
    t: &Target,
    anonymous: Option<&Client>,
    queries: &[(usize, String)],
) -> Result<Vec<(usize, Duration)>> {
    let client = anonymous.unwrap_or(&t.client);
    let mut latencies = Vec::with_capacity(queries.len());
    for (kind, text) in queries {
        let mut url = t.url("v1/search");
        url.query_pairs_mut()
            .append_pair("q", text)
            .append_pair("n", "25");
        let start = Instant::now();
        let resp = client.get(url.clone()).send().await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        let took = start.elapsed();
        if status != StatusCode::OK {
            return Err(format!("GET {url}: {status}").into());
        }
        let parsed: serde_json::Value = serde_json::from_slice(&body)?;
        if parsed["results"].as_array().is_none() {
            return Err(format!("GET {url}: no results in the answer").into());
        }
        latencies.push((*kind, took));
    }
    Ok(latencies)
}

/// Median and p99 in milliseconds.
pub fn summary(latencies: &[Duration]) -> (f64, f64) {
    let mut sorted = latencies.to_vec();
    let median = percentile(&mut sorted, 50.0).unwrap_or_default();
    let p99 = percentile(&mut sorted, 99.0).unwrap_or_default();
    (median.as_secs_f64() * 1e3, p99.as_secs_f64() * 1e3)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repositories_are_distinct_and_spread_over_namespaces() {
        let names: std::collections::HashSet<(String, String, bool)> =
            (0..5000).map(repository).collect();
        assert_eq!(names.len(), 5000);
        let library = (0..5000).filter(|&i| repository(i).0 == "library").count();
        assert_eq!(library, 100);
        let private = (0..5000).filter(|&i| repository(i).2).count();
        assert_eq!(private, 500);
    }

    #[test]
    fn queries_cycle_through_the_kinds() {
        let qs = queries(1000, 8, 1);
        let kinds: Vec<usize> = qs.iter().map(|(k, _)| *k).collect();
        assert_eq!(kinds, [0, 1, 2, 3, 0, 1, 2, 3]);
        let (_, exact) = &qs[0];
        assert!((0..1000).any(|i| repository(i).1 == *exact), "{exact}");
        assert!(qs[3].1.starts_with("zzq"));
        assert_eq!(queries(1000, 8, 1), qs, "deterministic");
    }
}
