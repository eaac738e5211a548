//! First and second pulls, revalidation after the ttl, stale serving with the upstream
//! stopped, and one upstream fetch for many concurrent pulls of an uncached blob.

use crate::support::*;
use berth_core::clock::ManualClock;
use berth_oci::Digest;
use berth_testkit::images::SmallImage;
use berth_testkit::{data_dir, serve, Options};
use futures_util::StreamExt;
use sha2::{Digest as _, Sha256};
use std::time::Duration;

/// A Berth mirroring `upstream` under `up/`, on a clock the test moves.
async fn berth_mirroring(
    dir: &std::path::Path,
    upstream: &str,
    ttl: Duration,
) -> (berth_testkit::Served, std::sync::Arc<ManualClock>) {
    let clock = ManualClock::starting_now();
    let options = Options {
        clock: Some(clock.clone()),
        mirrors: vec![mirror("up", upstream, ttl)],
        ..Options::default()
    };
    (serve(dir, options).await, clock)
}

async fn get(url: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url)
        .header(
            "accept",
            "application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json",
        )
        .send()
        .await
        .expect("request")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_pull_fetches_and_a_second_is_served_from_the_cache() {
    if !have_distribution() {
        return;
    }
    let upstream = Distribution::start(None).await;
    let image = SmallImage::linux("first", "cache");
    let digest = seed(&client_for(&upstream.url, None), "team/app", "v1", &image).await;
    let proxy = CountingProxy::start(&upstream.url).await;
    let dir = data_dir();
    let (berth, _clock) = berth_mirroring(dir.path(), &proxy.url, Duration::from_secs(3600)).await;
    let base = format!("{}/v2/up/team/app", berth.url());

    let first = get(&format!("{base}/manifests/v1")).await;
    assert_eq!(first.status(), 200);
    assert_eq!(
        first.headers()["docker-content-digest"].to_str().unwrap(),
        digest.to_string()
    );
    assert_eq!(
        first.bytes().await.unwrap().as_ref(),
        image.manifest.as_slice(),
        "byte for byte"
    );
    for blob in [&image.config, &image.layer] {
        let digest = Digest::sha256_of(blob);
        let got = get(&format!("{base}/blobs/{digest}")).await;
        assert_eq!(got.status(), 200);
        assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());
    }
    let fetched = proxy.total();
    assert_eq!(proxy.count("GET", "/manifests/v1"), 1);

    // The second pull (tag within the ttl, by digest, the blobs) reaches no upstream.
    let second = get(&format!("{base}/manifests/v1")).await;
    assert_eq!(second.status(), 200);
    assert!(second.headers().get("warning").is_none());
    assert_eq!(
        get(&format!("{base}/manifests/{digest}")).await.status(),
        200
    );
    for blob in [&image.config, &image.layer] {
        let got = get(&format!("{base}/blobs/{}", Digest::sha256_of(blob))).await;
        assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());
    }
    assert_eq!(
        proxy.total(),
        fetched,
        "the second pull went to the upstream"
    );
    let totals = &berth.state.mirrors.totals()[0].1;
    assert!(totals.hits >= 4, "{totals:?}");
    assert_eq!(
        totals.bytes_saved,
        (image.config.len() + image.layer.len()) as u64
    );

    // The cached repository is read-only for clients.
    let push = reqwest::Client::new()
        .post(format!("{base}/blobs/uploads/"))
        .send()
        .await
        .unwrap();
    assert_eq!(push.status(), 403);
    assert!(push.text().await.unwrap().contains("DENIED"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tag_updated_upstream_is_seen_after_the_ttl() {
    if !have_distribution() {
        return;
    }
    let upstream = Distribution::start(None).await;
    let seeder = client_for(&upstream.url, None);
    let old = seed(
        &seeder,
        "team/app",
        "latest",
        &SmallImage::linux("old", "ttl"),
    )
    .await;
    let proxy = CountingProxy::start(&upstream.url).await;
    let dir = data_dir();
    let (berth, clock) = berth_mirroring(dir.path(), &proxy.url, Duration::from_secs(60)).await;
    let url = format!("{}/v2/up/team/app/manifests/latest", berth.url());
    let digest_of = |r: &reqwest::Response| {
        r.headers()["docker-content-digest"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(digest_of(&get(&url).await), old.to_string());

    let new = seed(
        &seeder,
        "team/app",
        "latest",
        &SmallImage::linux("new", "ttl"),
    )
    .await;
    clock.advance(Duration::from_secs(30));
    assert_eq!(
        digest_of(&get(&url).await),
        old.to_string(),
        "within the ttl the cache answers"
    );
    assert_eq!(proxy.count("HEAD", "/manifests/latest"), 0);

    clock.advance(Duration::from_secs(31));
    assert_eq!(
        digest_of(&get(&url).await),
        new.to_string(),
        "after the ttl the tag moved"
    );
    assert_eq!(
        proxy.count("HEAD", "/manifests/latest"),
        1,
        "revalidated with a HEAD"
    );

    // Unchanged after the next ttl: a HEAD, and no GET.
    let gets = proxy.count("GET", "/manifests/latest");
    clock.advance(Duration::from_secs(61));
    assert_eq!(digest_of(&get(&url).await), new.to_string());
    assert_eq!(proxy.count("HEAD", "/manifests/latest"), 2);
    assert_eq!(proxy.count("GET", "/manifests/latest"), gets);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_serving_when_the_upstream_is_stopped() {
    if !have_distribution() {
        return;
    }
    let mut upstream = Distribution::start(None).await;
    let image = SmallImage::linux("outage", "cache");
    let digest = seed(&client_for(&upstream.url, None), "team/app", "v1", &image).await;
    let dir = data_dir();
    let (berth, clock) = berth_mirroring(dir.path(), &upstream.url, Duration::from_secs(60)).await;
    let base = format!("{}/v2/up/team/app", berth.url());
    assert_eq!(get(&format!("{base}/manifests/v1")).await.status(), 200);
    for blob in [&image.config, &image.layer] {
        assert_eq!(
            get(&format!("{base}/blobs/{}", Digest::sha256_of(blob)))
                .await
                .status(),
            200
        );
    }

    upstream.stop();
    clock.advance(Duration::from_secs(120));
    let stale = get(&format!("{base}/manifests/v1")).await;
    assert_eq!(stale.status(), 200);
    assert_eq!(
        stale.headers()["docker-content-digest"].to_str().unwrap(),
        digest.to_string()
    );
    let warning = stale.headers()["warning"].to_str().unwrap().to_owned();
    assert!(warning.starts_with("110 "), "{warning}");
    assert_eq!(
        get(&format!("{base}/manifests/{digest}")).await.status(),
        200
    );
    for blob in [&image.config, &image.layer] {
        let got = get(&format!("{base}/blobs/{}", Digest::sha256_of(blob))).await;
        assert_eq!(got.bytes().await.unwrap().as_ref(), blob.as_slice());
    }
    // What was never cached gets a clean gateway error, not a 500.
    let unseen = get(&format!("{base}/manifests/never-pulled")).await;
    assert_eq!(unseen.status(), 502);
    assert!(unseen
        .text()
        .await
        .unwrap()
        .contains("\"code\":\"UNKNOWN\""));
    let totals = &berth.state.mirrors.totals()[0].1;
    assert!(
        totals.stale >= 1 && totals.upstream_errors >= 2,
        "{totals:?}"
    );
}

/// 256 MiB of bytes no compressor shortens, made on the fly.
fn big_blob_stream(size: u64) -> berth_core::ports::ByteStream {
    const FRAME: u64 = 1 << 20;
    Box::pin(futures_util::stream::iter((0..size.div_ceil(FRAME)).map(
        move |i| {
            let len = FRAME.min(size - i * FRAME) as usize;
            let mut frame = vec![0u8; len];
            let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
            for chunk in frame.chunks_mut(8) {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                let bytes = state.to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
            Ok(bytes::Bytes::from(frame))
        },
    )))
}

async fn sha256_of_stream(mut stream: berth_core::ports::ByteStream) -> Digest {
    let mut hasher = Sha256::new();
    while let Some(frame) = stream.next().await {
        hasher.update(frame.unwrap());
    }
    format!("sha256:{}", hex::encode(hasher.finalize()))
        .parse()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_concurrent_pulls_of_an_uncached_blob_make_one_upstream_fetch() {
    if !have_distribution() {
        return;
    }
    const SIZE: u64 = 256 << 20;
    let upstream = Distribution::start(None).await;
    let seeder = client_for(&upstream.url, None);
    let digest = sha256_of_stream(big_blob_stream(SIZE)).await;
    seeder
        .push_blob(
            "team/big",
            &digest,
            berth_outbound::registry::PushBlob {
                size: SIZE,
                body: big_blob_stream(SIZE),
            },
        )
        .await
        .expect("256 MiB pushed upstream");
    let proxy = CountingProxy::start(&upstream.url).await;
    let dir = data_dir();
    let (berth, _clock) = berth_mirroring(dir.path(), &proxy.url, Duration::from_secs(3600)).await;
    let url = format!("{}/v2/up/team/big/blobs/{digest}", berth.url());
    let pulls = (0..20).map(|_| {
        let url = url.clone();
        tokio::spawn(async move {
            let response = reqwest::get(&url).await.expect("pull");
            assert_eq!(response.status(), 200);
            let body: berth_core::ports::ByteStream = Box::pin(
                response
                    .bytes_stream()
                    .map(|r| r.map_err(std::io::Error::other)),
            );
            sha256_of_stream(body).await
        })
    });
    for pull in futures_util::future::join_all(pulls).await {
        assert_eq!(pull.unwrap(), digest, "every client got the right bytes");
    }
    assert_eq!(
        proxy.count("GET", &format!("/blobs/{digest}")),
        1,
        "exactly one upstream fetch"
    );
    assert_eq!(berth.state.mirrors.totals()[0].1.bytes_fetched, SIZE);
}
