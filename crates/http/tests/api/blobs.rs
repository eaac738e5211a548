//! `/v2/<name>/blobs/<digest>`: GET, HEAD (with `Range`) and DELETE.

use crate::support::{
    assert_error, assert_head_error, bytes, header, maybe_header, sha256, sha512, with_query,
    TestApp,
};

#[tokio::test]
async fn get_returns_the_exact_bytes_with_blob_headers() {
    let app = TestApp::spawn().await;
    let content = bytes(1, 1000);
    let blob = app.push_blob("library/app", &content).await;

    let resp = app
        .send(app.get(&format!("/v2/library/app/blobs/{}", blob.digest)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/octet-stream");
    assert_eq!(header(&resp, "content-length"), "1000");
    assert_eq!(header(&resp, "docker-content-digest"), blob.digest);
    assert_eq!(header(&resp, "accept-ranges"), "bytes");
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_eq!(resp.bytes().await.unwrap(), content);
}

#[tokio::test]
async fn get_streams_a_blob_larger_than_one_read_chunk() {
    let app = TestApp::spawn().await;
    let content = bytes(2, 3 * 1024 * 1024 + 17);
    let blob = app.push_blob("big", &content).await;
    let resp = app
        .send(app.get(&format!("/v2/big/blobs/{}", blob.digest)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), content.len().to_string());
    let body = resp.bytes().await.unwrap();
    assert!(body == content, "streamed bytes differ");
}

#[tokio::test]
async fn head_returns_the_headers_without_a_body() {
    let app = TestApp::spawn().await;
    let content = bytes(3, 321);
    let blob = app.push_blob("ns/repo", &content).await;

    let resp = app
        .send(app.head(&format!("/v2/ns/repo/blobs/{}", blob.digest)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), "321");
    assert_eq!(header(&resp, "docker-content-digest"), blob.digest);
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_empty_blob_is_served_empty() {
    let app = TestApp::spawn().await;
    let blob = app.push_blob("ns/repo", b"").await;
    let resp = app
        .send(app.get(&format!("/v2/ns/repo/blobs/{}", blob.digest)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-length"), "0");
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn a_percent_escaped_colon_in_the_digest_is_understood() {
    let app = TestApp::spawn().await;
    let blob = app.push_blob("ns/repo", b"escaped").await;
    let escaped = blob.digest.replace(':', "%3A");
    let resp = app
        .send(app.get(&format!("/v2/ns/repo/blobs/{escaped}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), &b"escaped"[..]);
}

#[tokio::test]
async fn unknown_blobs_are_blob_unknown() {
    let app = TestApp::spawn().await;
    app.push_blob("known", b"something").await;
    let missing = sha256(b"never pushed");
    for repo in ["known", "unknown"] {
        let path = format!("/v2/{repo}/blobs/{missing}");
        assert_error(app.send(app.get(&path)).await, 404, "BLOB_UNKNOWN").await;
        assert_head_error(app.send(app.head(&path)).await, 404).await;
    }
}

#[tokio::test]
async fn a_blob_is_only_visible_in_the_repository_it_was_pushed_to() {
    let app = TestApp::spawn().await;
    let blob = app.push_blob("team/a", b"private to a").await;
    app.push_blob("team/b", b"b has its own").await;
    let resp = app
        .send(app.get(&format!("/v2/team/b/blobs/{}", blob.digest)))
        .await;
    assert_error(resp, 404, "BLOB_UNKNOWN").await;
}

/// A 100-byte blob whose byte at offset i is i, so every range is easy to check.
async fn counting_blob(app: &TestApp) -> String {
    let content: Vec<u8> = (0..100u8).collect();
    app.push_blob("ranges", &content).await.digest
}

#[tokio::test]
async fn range_requests_return_206_with_the_part_asked_for() {
    let app = TestApp::spawn().await;
    let digest = counting_blob(&app).await;
    // (Range header, first byte, last byte)
    let cases = [
        ("bytes=0-9", 0u8, 9u8),
        ("bytes=5-", 5, 99),
        ("bytes=-5", 95, 99),
        ("bytes=90-1000", 90, 99),
        ("bytes=-1000", 0, 99),
        ("bytes=42-42", 42, 42),
        ("bytes=99-", 99, 99),
    ];
    for (range, first, last) in cases {
        let get = app
            .get(&format!("/v2/ranges/blobs/{digest}"))
            .header("range", range);
        let resp = app.send(get).await;
        assert_eq!(resp.status(), 206, "{range}");
        assert_eq!(
            header(&resp, "content-range"),
            format!("bytes {first}-{last}/100"),
            "{range}"
        );
        let len = (last - first) as usize + 1;
        assert_eq!(header(&resp, "content-length"), len.to_string(), "{range}");
        assert_eq!(header(&resp, "docker-content-digest"), digest);
        let expected: Vec<u8> = (first..=last).collect();
        assert_eq!(resp.bytes().await.unwrap(), expected, "{range}");
    }
}

#[tokio::test]
async fn head_with_a_range_reports_the_part_without_sending_it() {
    let app = TestApp::spawn().await;
    let digest = counting_blob(&app).await;
    let head = app
        .head(&format!("/v2/ranges/blobs/{digest}"))
        .header("range", "bytes=10-19");
    let resp = app.send(head).await;
    assert_eq!(resp.status(), 206);
    assert_eq!(header(&resp, "content-range"), "bytes 10-19/100");
    assert_eq!(header(&resp, "content-length"), "10");
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn unsatisfiable_ranges_are_416_with_the_blob_size() {
    let app = TestApp::spawn().await;
    let digest = counting_blob(&app).await;
    for range in ["bytes=100-", "bytes=100-200", "bytes=5000-5001", "bytes=-0"] {
        let get = app
            .get(&format!("/v2/ranges/blobs/{digest}"))
            .header("range", range);
        let resp = app.send(get).await;
        assert_eq!(
            maybe_header(&resp, "content-range"),
            Some("bytes */100"),
            "{range}"
        );
        assert_error(resp, 416, "RANGE_INVALID").await;
    }
}

#[tokio::test]
async fn malformed_or_foreign_ranges_are_ignored_and_the_whole_blob_served() {
    let app = TestApp::spawn().await;
    let digest = counting_blob(&app).await;
    let whole: Vec<u8> = (0..100u8).collect();
    for range in [
        "bytes=x-1",
        "bytes=9-1",
        "bytes=",
        "bytes=abc",
        "0-9",
        "items=0-9",
        "bytes=0-1,5-6",
    ] {
        let get = app
            .get(&format!("/v2/ranges/blobs/{digest}"))
            .header("range", range);
        let resp = app.send(get).await;
        assert_eq!(resp.status(), 200, "{range}");
        assert_eq!(maybe_header(&resp, "content-range"), None, "{range}");
        assert_eq!(resp.bytes().await.unwrap(), whole, "{range}");
    }
}

#[tokio::test]
async fn delete_unlinks_the_blob_from_the_repository() {
    let app = TestApp::spawn().await;
    let blob = app.push_blob("ns/repo", b"to be deleted").await;
    let path = format!("/v2/ns/repo/blobs/{}", blob.digest);

    let resp = app.send(app.delete(&path)).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "content-length"), "0");

    assert_error(app.send(app.get(&path)).await, 404, "BLOB_UNKNOWN").await;
    assert_head_error(app.send(app.head(&path)).await, 404).await;
    assert_error(app.send(app.delete(&path)).await, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn deleting_from_one_repository_leaves_a_mount_in_another() {
    let app = TestApp::spawn().await;
    let blob = app.push_blob("src", b"shared bytes").await;
    let mount = app.post(&with_query(
        "/v2/dst/blobs/uploads/",
        &format!("mount={}&from=src", blob.digest),
    ));
    assert_eq!(app.send(mount).await.status(), 201);

    let resp = app
        .send(app.delete(&format!("/v2/src/blobs/{}", blob.digest)))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = app
        .send(app.get(&format!("/v2/dst/blobs/{}", blob.digest)))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.bytes().await.unwrap(), &b"shared bytes"[..]);
}

#[tokio::test]
async fn delete_of_an_unknown_blob_is_blob_unknown() {
    let app = TestApp::spawn().await;
    let path = format!("/v2/nothing/blobs/{}", sha256(b"x"));
    assert_error(app.send(app.delete(&path)).await, 404, "BLOB_UNKNOWN").await;
}

#[tokio::test]
async fn sha512_blobs_are_served_by_their_sha512_digest() {
    let app = TestApp::spawn().await;
    let content = bytes(5, 777);
    let digest = sha512(&content);
    let post = app
        .post(&format!("/v2/ns/repo/blobs/uploads/?digest={digest}"))
        .body(content.clone());
    let resp = app.send(post).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "docker-content-digest"), digest);

    let resp = app
        .send(app.get(&format!("/v2/ns/repo/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    assert_eq!(resp.bytes().await.unwrap(), content);
}

#[tokio::test]
async fn blobs_refuse_other_methods() {
    let app = TestApp::spawn().await;
    let blob = app.push_blob("ns/repo", b"x").await;
    let path = format!("/v2/ns/repo/blobs/{}", blob.digest);
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::POST,
        reqwest::Method::PATCH,
    ] {
        let resp = app.send(app.request(method, &path)).await;
        assert_error(resp, 405, "UNSUPPORTED").await;
    }
}
