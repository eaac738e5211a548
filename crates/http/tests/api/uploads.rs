//! Blob uploads: `POST /v2/<name>/blobs/uploads/` (session, monolithic, mount) and the
//! session endpoint (`PATCH`, `PUT`, `GET`, `DELETE`).

use crate::support::{
    assert_error, assert_head_error, bytes, header, maybe_header, sha256, sha512, with_query,
    TestApp,
};
use reqwest::Response;

/// Asserts the headers of a session response (202 after POST/PATCH, 204 for GET) and
/// returns the session's `Location`.
fn assert_session(resp: &Response, status: u16, repo: &str, range: &str) -> String {
    assert_eq!(resp.status(), status, "{resp:?}");
    let location = header(resp, "location");
    let prefix = format!("/v2/{repo}/blobs/uploads/");
    let id = location
        .strip_prefix(&prefix)
        .unwrap_or_else(|| panic!("Location {location} is not under {prefix}"));
    assert!(!id.is_empty() && !id.contains('/'), "session id {id:?}");
    assert_eq!(header(resp, "docker-upload-uuid"), id);
    assert_eq!(header(resp, "range"), range);
    // A 204 has no body and so, per RFC 9110, no Content-Length either.
    let length = if status == 204 { None } else { Some("0") };
    assert_eq!(maybe_header(resp, "content-length"), length);
    location.to_owned()
}

/// Asserts a 201 for a blob now in `repo`.
fn assert_created(resp: &Response, repo: &str, digest: &str) {
    assert_eq!(resp.status(), 201, "{resp:?}");
    assert_eq!(
        header(resp, "location"),
        format!("/v2/{repo}/blobs/{digest}")
    );
    assert_eq!(header(resp, "docker-content-digest"), digest);
}

async fn blob_bytes(app: &TestApp, repo: &str, digest: &str) -> Vec<u8> {
    let resp = app
        .send(app.get(&format!("/v2/{repo}/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 200, "{resp:?}");
    resp.bytes().await.unwrap().to_vec()
}

async fn assert_blob_absent(app: &TestApp, repo: &str, digest: &str) {
    let resp = app
        .send(app.head(&format!("/v2/{repo}/blobs/{digest}")))
        .await;
    assert_head_error(resp, 404).await;
}

/// PATCHes one chunk with its `Content-Range`.
/// Every method on the session at `location` answers 404 `BLOB_UPLOAD_UNKNOWN`: status,
/// a chunk continuing at `size`, finishing with the digest of `uploaded`, and cancel.
async fn assert_session_unknown(app: &TestApp, location: &str, size: usize, uploaded: &[u8]) {
    assert_error(
        app.send(app.get(location)).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    let resp = patch_chunk(app, location, size, b"more").await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    let put = app.put(&with_query(
        location,
        &format!("digest={}", sha256(uploaded)),
    ));
    assert_error(app.send(put).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
    assert_error(
        app.send(app.delete(location)).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
}

async fn patch_chunk(app: &TestApp, location: &str, start: usize, chunk: &[u8]) -> Response {
    let end = start + chunk.len() - 1;
    let patch = app
        .patch(location)
        .header("content-type", "application/octet-stream")
        .header("content-range", format!("{start}-{end}"))
        .body(chunk.to_vec());
    app.send(patch).await
}

#[tokio::test]
async fn post_opens_a_session_and_put_completes_it() {
    let app = TestApp::spawn().await;
    let resp = app.send(app.post("/v2/library/app/blobs/uploads/")).await;
    let location = assert_session(&resp, 202, "library/app", "0-0");

    let content = bytes(10, 500);
    let digest = sha256(&content);
    let put = app
        .put(&with_query(&location, &format!("digest={digest}")))
        .header("content-type", "application/octet-stream")
        .body(content.clone());
    let resp = app.send(put).await;
    assert_created(&resp, "library/app", &digest);
    assert_eq!(header(&resp, "content-length"), "0");

    assert_eq!(blob_bytes(&app, "library/app", &digest).await, content);
    // A completed session is gone.
    let resp = app.send(app.get(&location)).await;
    assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
}

#[tokio::test]
async fn post_without_the_trailing_slash_opens_a_session_too() {
    let app = TestApp::spawn().await;
    let resp = app.send(app.post("/v2/ns/repo/blobs/uploads")).await;
    assert_session(&resp, 202, "ns/repo", "0-0");
}

#[tokio::test]
async fn monolithic_post_with_digest_creates_the_blob_at_once() {
    let app = TestApp::spawn().await;
    let content = bytes(11, 4096);
    let digest = sha256(&content);
    let post = app
        .post(&format!("/v2/ns/repo/blobs/uploads/?digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(content.clone());
    let resp = app.send(post).await;
    assert_created(&resp, "ns/repo", &digest);
    assert_eq!(blob_bytes(&app, "ns/repo", &digest).await, content);
}

#[tokio::test]
async fn monolithic_post_with_a_wrong_digest_stores_nothing() {
    let app = TestApp::spawn().await;
    let content = bytes(12, 100);
    let claimed = sha256(b"something else");
    let post = app
        .post(&format!("/v2/ns/repo/blobs/uploads/?digest={claimed}"))
        .body(content.clone());
    assert_error(app.send(post).await, 400, "DIGEST_INVALID").await;
    assert_blob_absent(&app, "ns/repo", &claimed).await;
    assert_blob_absent(&app, "ns/repo", &sha256(&content)).await;

    let post = app
        .post("/v2/ns/repo/blobs/uploads/?digest=sha256:tooshort")
        .body(content.clone());
    assert_error(app.send(post).await, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn chunks_patched_in_order_make_up_the_blob() {
    let app = TestApp::spawn().await;
    let content = bytes(13, 3000);
    let mut location = app.start_upload("ns/repo").await;
    for (i, chunk) in content.chunks(1000).enumerate() {
        let resp = patch_chunk(&app, &location, i * 1000, chunk).await;
        let range = format!("0-{}", (i + 1) * 1000 - 1);
        location = assert_session(&resp, 202, "ns/repo", &range);
    }
    assert_eq!(app.upload_range(&location).await, "0-2999");

    let digest = sha256(&content);
    let resp = app
        .send(app.put(&with_query(&location, &format!("digest={digest}"))))
        .await;
    assert_created(&resp, "ns/repo", &digest);
    assert_eq!(blob_bytes(&app, "ns/repo", &digest).await, content);
}

#[tokio::test]
async fn chunks_without_content_range_are_appended() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    for chunk in [&b"hello "[..], b"chunked ", b"world"] {
        let resp = app.send(app.patch(&location).body(chunk.to_vec())).await;
        assert_eq!(resp.status(), 202);
    }
    assert_eq!(app.upload_range(&location).await, "0-18");
    // The final chunk can ride on the PUT.
    let digest = sha256(b"hello chunked world!");
    let put = app
        .put(&with_query(&location, &format!("digest={digest}")))
        .body("!");
    assert_created(&app.send(put).await, "ns/repo", &digest);
    assert_eq!(
        blob_bytes(&app, "ns/repo", &digest).await,
        b"hello chunked world!"
    );
}

#[tokio::test]
async fn an_out_of_order_chunk_is_416_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    assert_eq!(
        patch_chunk(&app, &location, 0, &[1; 10]).await.status(),
        202
    );

    let resp = patch_chunk(&app, &location, 20, &[2; 10]).await;
    assert_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    assert_eq!(app.upload_range(&location).await, "0-9");
}

#[tokio::test]
async fn an_overlapping_chunk_is_416_and_changes_nothing() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    assert_eq!(
        patch_chunk(&app, &location, 0, &[1; 10]).await.status(),
        202
    );

    for start in [0, 5, 9] {
        let resp = patch_chunk(&app, &location, start, &[2; 10]).await;
        assert_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    }
    assert_eq!(app.upload_range(&location).await, "0-9");

    // The session is still good for the right chunk.
    let resp = patch_chunk(&app, &location, 10, &[3; 5]).await;
    assert_session(&resp, 202, "ns/repo", "0-14");
}

#[tokio::test]
async fn a_content_range_that_disagrees_with_content_length_is_refused() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    let patch = app
        .patch(&location)
        .header("content-range", "0-19")
        .body(vec![7u8; 5]);
    let resp = app.send(patch).await;
    assert_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    assert_eq!(app.upload_range(&location).await, "0-0");
}

#[tokio::test]
async fn a_malformed_content_range_is_refused() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    for bad in ["abc", "5", "9-1", "-5"] {
        let patch = app
            .patch(&location)
            .header("content-range", bad)
            .body(vec![7u8; 5]);
        let resp = app.send(patch).await;
        assert_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    }
    assert_eq!(app.upload_range(&location).await, "0-0");
}

#[tokio::test]
async fn get_reports_the_session_progress_with_204() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("team/app").await;
    let resp = app.send(app.get(&location)).await;
    assert_session(&resp, 204, "team/app", "0-0");

    patch_chunk(&app, &location, 0, &bytes(14, 1234)).await;
    let resp = app.send(app.get(&location)).await;
    let again = assert_session(&resp, 204, "team/app", "0-1233");
    assert_eq!(again, location);
}

#[tokio::test]
async fn delete_cancels_the_session() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    patch_chunk(&app, &location, 0, b"abandoned").await;

    let resp = app.send(app.delete(&location)).await;
    assert_eq!(resp.status(), 204);

    assert_session_unknown(&app, &location, 9, b"abandoned").await;
    assert_blob_absent(&app, "ns/repo", &sha256(b"abandoned")).await;
}

#[tokio::test]
async fn put_without_a_digest_is_refused_and_the_session_survives() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    patch_chunk(&app, &location, 0, b"keep me").await;

    let resp = app.send(app.put(&location)).await;
    assert_error(resp, 400, "DIGEST_INVALID").await;
    let resp = app
        .send(app.put(&with_query(&location, "digest=sha256:nothex")))
        .await;
    assert_error(resp, 400, "DIGEST_INVALID").await;

    assert_eq!(app.upload_range(&location).await, "0-6");
    let digest = sha256(b"keep me");
    let resp = app
        .send(app.put(&with_query(&location, &format!("digest={digest}"))))
        .await;
    assert_created(&resp, "ns/repo", &digest);
}

#[tokio::test]
async fn put_with_a_wrong_digest_ends_the_session_and_stores_nothing() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    let content = bytes(15, 256);
    patch_chunk(&app, &location, 0, &content).await;

    let claimed = sha256(b"not what was uploaded");
    let resp = app
        .send(app.put(&with_query(&location, &format!("digest={claimed}"))))
        .await;
    assert_error(resp, 400, "DIGEST_INVALID").await;

    assert_error(
        app.send(app.get(&location)).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_blob_absent(&app, "ns/repo", &claimed).await;
    assert_blob_absent(&app, "ns/repo", &sha256(&content)).await;
}

#[tokio::test]
async fn a_session_belongs_to_its_repository() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo-a").await;
    patch_chunk(&app, &location, 0, b"for a").await;
    let foreign = location.replace("/v2/ns/repo-a/", "/v2/ns/repo-b/");
    assert_ne!(foreign, location);

    assert_session_unknown(&app, &foreign, 5, b"for a").await;

    // Nothing of that touched the session in repo-a.
    assert_eq!(app.upload_range(&location).await, "0-4");
    assert_blob_absent(&app, "repo-b", &sha256(b"for a")).await;
}

#[tokio::test]
async fn an_unknown_session_is_blob_upload_unknown() {
    let app = TestApp::spawn().await;
    app.start_upload("ns/repo").await;
    for id in ["0123456789abcdef0123456789abcdef", "not-a-session", "x"] {
        let path = format!("/v2/ns/repo/blobs/uploads/{id}");
        assert_error(app.send(app.get(&path)).await, 404, "BLOB_UPLOAD_UNKNOWN").await;
        let resp = app.send(app.patch(&path).body("x")).await;
        assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
    }
}

#[tokio::test]
async fn mount_from_a_repository_holding_the_blob_is_201() {
    let app = TestApp::spawn().await;
    let blob = app.push_blob("library/base", b"base layer").await;
    let post = app.post(&format!(
        "/v2/team/app/blobs/uploads/?mount={}&from=library/base",
        blob.digest
    ));
    let resp = app.send(post).await;
    assert_created(&resp, "team/app", &blob.digest);
    assert_eq!(
        blob_bytes(&app, "team/app", &blob.digest).await,
        b"base layer"
    );
}

#[tokio::test]
async fn mount_from_a_percent_encoded_source_is_201() {
    let app = TestApp::spawn().await;
    let blob = app.push_blob("library/base", b"encoded").await;
    let post = app.post(&format!(
        "/v2/team/app/blobs/uploads/?mount={}&from=library%2Fbase",
        blob.digest.replace(':', "%3A")
    ));
    assert_created(&app.send(post).await, "team/app", &blob.digest);
}

#[tokio::test]
async fn mount_that_cannot_be_satisfied_opens_a_session_instead() {
    let app = TestApp::spawn().await;
    app.push_blob("other", b"other content").await;
    let missing = sha256(b"not in other");
    for query in [
        format!("mount={missing}&from=other"),
        format!("mount={missing}&from=does-not-exist"),
        format!("mount={missing}"),
    ] {
        let resp = app
            .send(app.post(&format!("/v2/ns/target/blobs/uploads/?{query}")))
            .await;
        let location = assert_session(&resp, 202, "ns/target", "0-0");
        // The session is a real one.
        assert_eq!(app.upload_range(&location).await, "0-0");
    }
    assert_blob_absent(&app, "target", &missing).await;
}

#[tokio::test]
async fn mount_with_an_invalid_source_or_digest_is_400() {
    let app = TestApp::spawn().await;
    let blob = app.push_blob("src", b"content").await;
    let resp = app
        .send(app.post(&format!(
            "/v2/dst/blobs/uploads/?mount={}&from=Not..Valid",
            blob.digest
        )))
        .await;
    assert_error(resp, 400, "NAME_INVALID").await;
    let resp = app
        .send(app.post("/v2/dst/blobs/uploads/?mount=sha256:zzz&from=src"))
        .await;
    assert_error(resp, 400, "DIGEST_INVALID").await;
    assert_blob_absent(&app, "dst", &blob.digest).await;
}

#[tokio::test]
async fn sha512_digests_complete_chunked_uploads() {
    let app = TestApp::spawn().await;
    let content = bytes(16, 2500);
    let location = app.start_upload("ns/repo").await;
    patch_chunk(&app, &location, 0, &content[..1000]).await;
    patch_chunk(&app, &location, 1000, &content[1000..]).await;

    let digest = sha512(&content);
    let resp = app
        .send(app.put(&with_query(&location, &format!("digest={digest}"))))
        .await;
    assert_created(&resp, "ns/repo", &digest);
    assert_eq!(blob_bytes(&app, "ns/repo", &digest).await, content);
}

#[tokio::test]
async fn unsupported_digest_algorithms_are_digest_invalid() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    let put = app.put(&with_query(
        &location,
        "digest=md5:d41d8cd98f00b204e9800998ecf8427e",
    ));
    assert_error(app.send(put).await, 400, "DIGEST_INVALID").await;
}

#[tokio::test]
async fn the_same_blob_pushed_twice_is_fine() {
    let app = TestApp::spawn().await;
    let first = app.push_blob("ns/repo", b"twice").await;
    let second = app.push_blob("ns/repo", b"twice").await;
    assert_eq!(first, second);
    let other = app.push_blob("elsewhere", b"twice").await;
    assert_eq!(other.digest, first.digest);
    assert_eq!(blob_bytes(&app, "elsewhere", &first.digest).await, b"twice");
}

#[tokio::test]
async fn upload_endpoints_refuse_other_methods() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    for (method, path) in [
        (reqwest::Method::GET, "/v2/ns/repo/blobs/uploads/"),
        (reqwest::Method::PUT, "/v2/ns/repo/blobs/uploads/"),
        (reqwest::Method::PATCH, "/v2/ns/repo/blobs/uploads/"),
        (reqwest::Method::DELETE, "/v2/ns/repo/blobs/uploads/"),
        (reqwest::Method::POST, location.as_str()),
    ] {
        let resp = app.send(app.request(method.clone(), path)).await;
        assert_error(resp, 405, "UNSUPPORTED").await;
    }
}

#[tokio::test]
async fn concurrent_chunks_for_the_same_offset_are_accepted_once() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    let (a, b) = tokio::join!(
        patch_chunk(&app, &location, 0, &[0xA; 4096]),
        patch_chunk(&app, &location, 0, &[0xB; 4096]),
    );
    let mut statuses = [a.status().as_u16(), b.status().as_u16()];
    statuses.sort();
    assert_eq!(statuses, [202, 416]);
    assert_eq!(app.upload_range(&location).await, "0-4095");

    // Whichever chunk won, the blob holds exactly that chunk.
    let winner = if a.status() == 202 {
        [0xA; 4096]
    } else {
        [0xB; 4096]
    };
    let digest = sha256(&winner);
    let resp = app
        .send(app.put(&with_query(&location, &format!("digest={digest}"))))
        .await;
    assert_created(&resp, "ns/repo", &digest);
}

#[tokio::test]
async fn an_upload_resumes_after_a_restart() {
    let mut app = TestApp::spawn().await;
    let content = bytes(17, 5000);
    let location = app.start_upload("ns/repo").await;
    patch_chunk(&app, &location, 0, &content[..3000]).await;

    app.restart().await;
    assert_eq!(app.upload_range(&location).await, "0-2999");
    let resp = patch_chunk(&app, &location, 3000, &content[3000..]).await;
    assert_session(&resp, 202, "ns/repo", "0-4999");
    let digest = sha256(&content);
    let resp = app
        .send(app.put(&with_query(&location, &format!("digest={digest}"))))
        .await;
    assert_created(&resp, "ns/repo", &digest);
    assert_eq!(blob_bytes(&app, "ns/repo", &digest).await, content);
}

#[tokio::test]
async fn a_streamed_chunk_shorter_than_its_content_range_is_refused() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    // No Content-Length: the body is streamed, and only its end shows it is short.
    let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(vec![1u8; 5])]);
    let patch = app
        .patch(&location)
        .header("content-range", "0-19")
        .body(reqwest::Body::wrap_stream(stream));
    let resp = app.send(patch).await;
    // Same answer as when Content-Length gives the mismatch away up front.
    assert_error(resp, 416, "BLOB_UPLOAD_INVALID").await;
    assert_eq!(app.upload_range(&location).await, "0-0");
}

#[tokio::test]
async fn a_final_chunk_out_of_order_is_416_and_the_session_survives() {
    let app = TestApp::spawn().await;
    let location = app.start_upload("ns/repo").await;
    patch_chunk(&app, &location, 0, b"first").await;
    let digest = sha256(b"firstsecond");
    let put = app
        .put(&with_query(&location, &format!("digest={digest}")))
        .header("content-range", "9-14")
        .body("second");
    assert_error(app.send(put).await, 416, "BLOB_UPLOAD_INVALID").await;
    assert_eq!(app.upload_range(&location).await, "0-4");

    let put = app
        .put(&with_query(&location, &format!("digest={digest}")))
        .header("content-range", "5-10")
        .body("second");
    assert_created(&app.send(put).await, "ns/repo", &digest);
}
