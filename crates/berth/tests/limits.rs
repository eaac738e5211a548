//! The upload limits of the real `berth serve`, set through their `BERTH_*` variables:
//! sessions per account (`max_upload_sessions`) and blob size (`max_blob_size`).
//!
//! ```text
//! cargo nextest run -p berth --test limits
//! ```

mod common;

use common::*;
use reqwest::Method;

#[tokio::test]
async fn an_account_holds_at_most_max_upload_sessions() {
    let server =
        TestServer::spawn_with(SpawnOptions::default().env("BERTH_MAX_UPLOAD_SESSIONS", "3")).await;
    let repo = "admin/limited";
    let mut sessions = Vec::new();
    for _ in 0..3 {
        sessions.push(server.open_session(repo).await);
    }
    let resp = server.start_upload(repo).await;
    let error = expect_error(resp, &[429], &["TOOMANYREQUESTS"], "a fourth session").await;
    let message = error.raw["errors"][0]["message"]
        .as_str()
        .unwrap_or_default();
    assert!(message.contains("3 unfinished uploads"), "{message}");
    // A whole-blob push needs a session too.
    let blob = random_bytes(64);
    let resp = server
        .request(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&blob)),
        )
        .header("Content-Type", MT_OCTET_STREAM)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    expect_error(resp, &[429], &["TOOMANYREQUESTS"], "a monolithic push").await;

    // Finishing one and cancelling one make room for two.
    let resp = server
        .client()
        .put(with_digest(&sessions[0], &sha256(&blob)))
        .header("Content-Type", MT_OCTET_STREAM)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    expect_status(resp, 201, "finishing a session").await;
    let resp = server.client().delete(&sessions[1]).send().await.unwrap();
    expect_status(resp, 204, "cancelling a session").await;
    server.open_session(repo).await;
    server.open_session(repo).await;
    let resp = server.start_upload(repo).await;
    expect_error(resp, &[429], &["TOOMANYREQUESTS"], "the cap holds again").await;
}

#[tokio::test]
async fn blobs_over_max_blob_size_are_refused() {
    let server =
        TestServer::spawn_with(SpawnOptions::default().env("BERTH_MAX_BLOB_SIZE", "1KiB")).await;
    let repo = "admin/small";
    let fits = random_bytes(1024);
    server.push_blob(repo, &fits).await;
    let over = random_bytes(1025);
    let resp = server
        .request(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={}", sha256(&over)),
        )
        .header("Content-Type", MT_OCTET_STREAM)
        .body(over.clone())
        .send()
        .await
        .unwrap();
    expect_error(resp, &[413], &["SIZE_INVALID"], "a blob over the limit").await;
    let resp = server.head_blob(repo, &sha256(&over)).await;
    assert_eq!(resp.status(), 404, "nothing of it is visible");
}

/// The reproduction of issue 18: 20,000 requests naming made-up 8 KB upload ids grew the
/// server by 157 MiB for good. Now each is a 404 and the memory stays where it was.
#[tokio::test]
async fn made_up_upload_ids_do_not_grow_the_server() {
    let server = std::sync::Arc::new(TestServer::spawn().await);
    // Warm up the allocator and the connection pool with the same kind of request.
    let flood = |server: std::sync::Arc<TestServer>, first: u32, count: u32| async move {
        for n in first..first + count {
            let id: String = format!("{:08x}", n.wrapping_mul(2_654_435_761))
                .chars()
                .cycle()
                .take(8192)
                .collect();
            let path = format!("/v2/admin/flood/blobs/uploads/{id}");
            let request = match n % 3 {
                0 => server.request(Method::PATCH, &path).body("abc"),
                1 => server.request(Method::PUT, &format!("{path}?digest={}", sha256(b""))),
                _ => server.request(Method::DELETE, &path),
            };
            let resp = request.send().await.expect("request");
            assert_eq!(resp.status(), 404, "made-up id {n}");
        }
    };
    let warm: Vec<_> = (0..8)
        .map(|w| tokio::spawn(flood(server.clone(), w * 100, 100)))
        .collect();
    for task in warm {
        task.await.unwrap();
    }
    let before = server.proc_status_kib("VmRSS").expect("RSS");
    let workers: Vec<_> = (0..8)
        .map(|w| tokio::spawn(flood(server.clone(), 1_000_000 + w * 2_500, 2_500)))
        .collect();
    for task in workers {
        task.await.unwrap();
    }
    let after = server.proc_status_kib("VmRSS").expect("RSS");
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB over 20,000 made-up upload ids"
    );
}
