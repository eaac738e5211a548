//! Upstreams that misbehave: a manifest whose digest does not match, a blob with the wrong
//! bytes, a truncated body, an enormous manifest, a rate limit. Nothing corrupt is cached,
//! the client gets an error, and it is counted.

use crate::support::*;
use berth_oci::Digest;
use berth_testkit::images::SmallImage;
use berth_testkit::{data_dir, serve, Options};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A registry that lies: answers written by hand on a raw socket, so a body can be cut
/// short. Counts the requests it receives.
struct LyingUpstream {
    url: String,
    requests: Arc<AtomicUsize>,
}

const GOOD: &[u8] = b"the right bytes";

async fn answer(path: &str) -> Vec<u8> {
    let honest = SmallImage::linux("liar", "faults");
    let good_digest = Digest::sha256_of(GOOD);
    let head = |status: &str, headers: &str, len: usize| {
        format!("HTTP/1.1 {status}\r\n{headers}Content-Length: {len}\r\nConnection: close\r\n\r\n")
            .into_bytes()
    };
    if path.ends_with("/manifests/wrong-digest") {
        let other = Digest::sha256_of(b"something else");
        let mut out = head(
            "200 OK",
            &format!("Content-Type: application/vnd.oci.image.manifest.v1+json\r\nDocker-Content-Digest: {other}\r\n"),
            honest.manifest.len(),
        );
        out.extend_from_slice(&honest.manifest);
        out
    } else if path.ends_with("/manifests/enormous") {
        // Announced larger than pushes may be; never sent.
        head(
            "200 OK",
            "Content-Type: application/vnd.oci.image.manifest.v1+json\r\n",
            5 << 20,
        )
    } else if path.ends_with(&format!("/blobs/{good_digest}")) && path.contains("/wrong/") {
        let wrong = b"the wrong bytes";
        let mut out = head("200 OK", "", wrong.len());
        out.extend_from_slice(wrong);
        out
    } else if path.ends_with(&format!("/blobs/{good_digest}")) && path.contains("/short/") {
        let mut out = head("200 OK", "", GOOD.len());
        out.extend_from_slice(&GOOD[..5]);
        out
    } else {
        head("404 Not Found", "", 0)
    }
}

impl LyingUpstream {
    async fn start() -> LyingUpstream {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(AtomicUsize::new(0));
        let counted = requests.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buf[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    let line = String::from_utf8_lossy(&request);
                    let path = line.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    let _ = socket.write_all(&answer(&path).await).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        LyingUpstream { url, requests }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_upstream_data_is_never_cached() {
    let liar = LyingUpstream::start().await;
    let dir = data_dir();
    let berth = serve(
        dir.path(),
        Options {
            mirrors: vec![mirror("liar", &liar.url, Duration::from_secs(3600))],
            ..Options::default()
        },
    )
    .await;
    let client = reqwest::Client::new();
    let base = format!("{}/v2/liar/team", berth.url());

    for _ in 0..2 {
        let response = client
            .get(format!("{base}/app/manifests/wrong-digest"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 502);
        assert!(response.text().await.unwrap().contains("digest"));
    }
    let response = client
        .get(format!("{base}/app/manifests/enormous"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 502);

    let good = Digest::sha256_of(GOOD);
    for repo in ["wrong", "short"] {
        for _ in 0..2 {
            // The status is sent before the bytes are known wrong: the body then breaks off,
            // which every client notices (length or digest).
            let sent = client
                .get(format!("{base}/{repo}/blobs/{good}"))
                .send()
                .await;
            if let Ok(response) = sent {
                let body = response.bytes().await;
                assert!(
                    body.as_ref().map_or(true, |b| b.as_ref() != GOOD),
                    "{repo}: a corrupt blob was served whole"
                );
            }
        }
    }
    // Each try reached the upstream again: nothing was cached.
    let requests = liar.requests.load(Ordering::SeqCst);
    assert!(requests >= 7, "{requests} upstream requests");
    for repo in ["liar/team/wrong", "liar/team/short"] {
        let cached = berth
            .state
            .registry
            .blob_size(&repo.parse().unwrap(), &good)
            .await;
        assert!(cached.is_err(), "{repo}: a corrupt blob became visible");
    }
    let totals = &berth.state.mirrors.totals()[0].1;
    assert!(totals.corrupt >= 5, "{totals:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rate_limited_upstream_serves_the_cache_and_maps_the_error() {
    if !have_distribution() {
        return;
    }
    let upstream = Distribution::start(None).await;
    seed(
        &client_for(&upstream.url, None),
        "team/app",
        "v1",
        &SmallImage::linux("429", "x"),
    )
    .await;
    let proxy = CountingProxy::start(&upstream.url).await;
    let clock = berth_core::clock::ManualClock::starting_now();
    let dir = data_dir();
    let berth = serve(
        dir.path(),
        Options {
            clock: Some(clock.clone()),
            mirrors: vec![mirror("up", &proxy.url, Duration::from_secs(60))],
            ..Options::default()
        },
    )
    .await;
    let base = format!("{}/v2/up/team/app", berth.url());
    assert_eq!(
        reqwest::get(format!("{base}/manifests/v1"))
            .await
            .unwrap()
            .status(),
        200
    );

    proxy.answer_with(429);
    clock.advance(Duration::from_secs(61));
    let stale = reqwest::get(format!("{base}/manifests/v1")).await.unwrap();
    assert_eq!(stale.status(), 200);
    assert!(stale.headers().contains_key("warning"));
    let unseen = reqwest::get(format!("{base}/manifests/v2")).await.unwrap();
    assert_eq!(unseen.status(), 429);
    assert!(unseen.text().await.unwrap().contains("TOOMANYREQUESTS"));

    proxy.answer_with(503);
    let unseen = reqwest::get(format!("{base}/manifests/v3")).await.unwrap();
    assert_eq!(unseen.status(), 502);
}
