//! Mirrored repositories are governed like any other: marked as mirrors with their upstream
//! in the API, counted in `/metrics`, and kept by the mirror's retention policy (content
//! not pulled for a week is dropped by the scheduled run, collected, and fetched again on
//! the next pull).

use crate::support::*;
use berth_core::clock::ManualClock;
use berth_core::identity::Acting;
use berth_core::lifecycle::{mirror_retention, Target, MIRROR_SETTINGS_ACTOR};
use berth_oci::Digest;
use berth_testkit::images::SmallImage;
use berth_testkit::{data_dir, serve, Options};
use std::time::Duration;

const DAY: Duration = Duration::from_secs(86_400);

/// Pulls `repo:tag` through `base` (manifest, then its config and layer); the digest.
async fn pull_image(base: &str, repo: &str, tag: &str, image: &SmallImage) -> String {
    let client = reqwest::Client::new();
    let manifest = client
        .get(format!("{base}/v2/{repo}/manifests/{tag}"))
        .header("accept", "application/vnd.oci.image.manifest.v1+json")
        .send()
        .await
        .unwrap();
    assert_eq!(manifest.status(), 200, "{repo}:{tag}");
    let digest = manifest.headers()["docker-content-digest"]
        .to_str()
        .unwrap()
        .to_owned();
    for blob in [&image.config, &image.layer] {
        let url = format!("{base}/v2/{repo}/blobs/{}", Digest::sha256_of(blob));
        let got = client.get(url).send().await.unwrap();
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());
    }
    digest
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirrored_repositories_are_marked_counted_and_dropped_after_a_week_unpulled() {
    if !have_distribution() {
        return;
    }
    let upstream = Distribution::start(None).await;
    let seeder = client_for(&upstream.url, None);
    let old = SmallImage::linux("old", "governed");
    let new = SmallImage::linux("new", "governed");
    seed(&seeder, "team/app", "old", &old).await;
    seed(&seeder, "team/app", "new", &new).await;
    let proxy = CountingProxy::start(&upstream.url).await;
    let dir = data_dir();
    let clock = ManualClock::starting_now();
    let berth = serve(
        dir.path(),
        Options {
            clock: Some(clock.clone()),
            mirrors: vec![mirror("up", &proxy.url, Duration::from_secs(3600))],
            // The test runs the jobs, so the scheduled retention run happens when it says.
            run_jobs: false,
            metrics_allow: Some(vec!["127.0.0.0/8".parse().unwrap()]),
            ..Options::default()
        },
    )
    .await;
    let base = berth.url();
    berth.runner.run_due().await;

    // The settings' default policy is stored on the mirror's namespace, as the settings.
    let namespace = Target::Namespace("up".to_owned());
    let stored = berth
        .state
        .lifecycle
        .retention_policy(&Acting::cli(), &namespace)
        .await
        .unwrap()
        .expect("the mirror's retention policy is stored");
    assert_eq!(stored.policy, mirror_retention(7));
    assert_eq!(stored.updated_by, MIRROR_SETTINGS_ACTOR);

    pull_image(&base, "up/team/app", "old", &old).await;

    // The API marks the repository as a mirror with its upstream; local ones are not.
    let shown: serde_json::Value = reqwest::get(format!("{base}/api/v1/repositories/up/team/app"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shown["full_name"], "up/team/app", "{shown}");
    assert_eq!(shown["mirror"]["prefix"], "up", "{shown}");
    assert_eq!(shown["mirror"]["upstream"], proxy.url.as_str(), "{shown}");
    assert_eq!(shown["mirror"]["upstream_repository"], "team/app");
    assert_eq!(shown["mirror"]["access"], "public");
    // Its page in the UI says so too.
    let page = reqwest::get(format!("{base}/r/up/team/app"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        page.contains(&format!("Mirror of {}</span>", proxy.url)),
        "{page}"
    );

    // `/metrics`: one manifest and two blobs fetched, then the same served from the cache.
    pull_image(&base, "up/team/app", "old", &old).await;
    let metrics = reqwest::get(format!("{base}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let saved = old.config.len() + old.layer.len();
    for line in [
        "berth_mirror_hits_total{mirror=\"up\"} 3\n".to_owned(),
        "berth_mirror_misses_total{mirror=\"up\"} 3\n".to_owned(),
        "berth_mirror_hit_ratio{mirror=\"up\"} 0.5\n".to_owned(),
        format!("berth_mirror_saved_bytes_total{{mirror=\"up\"}} {saved}\n"),
        "berth_mirror_stale_total{mirror=\"up\"} 0\n".to_owned(),
        "berth_mirror_upstream_errors_total{mirror=\"up\"} 0\n".to_owned(),
    ] {
        assert!(metrics.contains(&line), "{line:?} missing from:\n{metrics}");
    }
    assert!(
        metrics.contains("berth_mirror_upstream_wait_seconds_total{mirror=\"up\"} "),
        "{metrics}"
    );

    // Eight days on, `new` is cached; `old` was last pulled eight days ago.
    clock.advance(8 * DAY);
    pull_image(&base, "up/team/app", "new", &new).await;
    berth.state.hub.flush_pulls().await.unwrap();
    berth.runner.run_due().await;
    let runs = berth
        .state
        .lifecycle
        .runs(&Acting::cli(), &namespace, 10)
        .await
        .unwrap();
    let run = runs
        .iter()
        .find(|r| r.trigger == "schedule")
        .unwrap_or_else(|| panic!("no scheduled retention run: {runs:?}"));
    assert_eq!(run.tags, ["up/team/app:old"], "{run:?}");
    assert_eq!(run.error, None);
    // Collected now, if the runner's own collection has not already done it.
    let collected = berth.state.collector.run(false).await.unwrap();
    let total = berth.state.collector.metrics();
    assert!(
        total.blobs.load(std::sync::atomic::Ordering::Relaxed) >= 2,
        "old's config and layer are collected: {collected:?}"
    );

    // `new` is still served from the cache; `old` is fetched from the upstream again.
    let before = proxy.total();
    pull_image(&base, "up/team/app", "new", &new).await;
    assert_eq!(proxy.total(), before, "new stayed cached");
    let manifests = proxy.count("GET", "/manifests/old");
    let layers = proxy.count("GET", &format!("/blobs/{}", Digest::sha256_of(&old.layer)));
    pull_image(&base, "up/team/app", "old", &old).await;
    assert_eq!(proxy.count("GET", "/manifests/old"), manifests + 1);
    assert_eq!(
        proxy.count("GET", &format!("/blobs/{}", Digest::sha256_of(&old.layer))),
        layers + 1,
        "old's layer was collected, so it is fetched again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_days_zero_keeps_everything_and_removes_the_settings_policy() {
    let dir = data_dir();
    let start = |days: Option<u32>| {
        let mut config = mirror("keep", "http://127.0.0.1:9", Duration::from_secs(3600));
        config.retention_days = days;
        serve(
            dir.path(),
            Options {
                mirrors: vec![config],
                ..Options::default()
            },
        )
    };
    let namespace = Target::Namespace("keep".to_owned());
    let berth = start(Some(3)).await;
    let stored = berth
        .state
        .lifecycle
        .retention_policy(&Acting::cli(), &namespace)
        .await
        .unwrap();
    assert_eq!(stored.map(|s| s.policy), Some(mirror_retention(3)));
    drop(berth);

    // Restarted with `retention_days = 0`: the settings' policy goes.
    let berth = start(None).await;
    let stored = berth
        .state
        .lifecycle
        .retention_policy(&Acting::cli(), &namespace)
        .await
        .unwrap();
    assert!(stored.is_none(), "{:?}", stored.map(|s| s.policy));
}
