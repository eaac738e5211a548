//! Push workflow: blob uploads (monolithic, single POST, chunked), upload
//! sessions, cross-repository mounts and manifest pushes.

use reqwest::{Method, Response};

use crate::common::*;

/// PATCH `chunk` into the upload session at `location`, declaring it starts at `start`.
async fn patch_chunk(server: &TestServer, location: &str, chunk: &[u8], start: usize) -> Response {
    let end = start + chunk.len() - 1;
    server
        .client()
        .patch(location)
        .header("Content-Type", MT_OCTET_STREAM)
        .header("Content-Range", format!("{start}-{end}"))
        .body(chunk.to_vec())
        .send()
        .await
        .expect("PATCH chunk")
}

/// Assert a successful chunk upload: 202, `Location`, `Range: 0-<end>`.
/// Returns the (absolute) location to use for the next request.
async fn expect_chunk_accepted(
    server: &TestServer,
    resp: Response,
    end_inclusive: usize,
    ctx: &str,
) -> String {
    let (headers, _) = expect_status(resp, 202, ctx).await;
    let location = require_header(&headers, "location", ctx);
    let range = require_header(&headers, "range", ctx);
    assert_eq!(range, format!("0-{end_inclusive}"), "{ctx}: Range header");
    server.resolve(&location)
}

/// `GET <location>` on an upload session: 204, `Location`, `Range: 0-<end>`.
async fn expect_session_status(
    server: &TestServer,
    location: &str,
    end_inclusive: usize,
    ctx: &str,
) -> String {
    let resp = server
        .client()
        .get(location)
        .send()
        .await
        .expect("GET session");
    let (headers, _) = expect_status(resp, 204, ctx).await;
    let range = require_header(&headers, "range", ctx);
    assert_eq!(range, format!("0-{end_inclusive}"), "{ctx}: Range header");
    server.resolve(&require_header(&headers, "location", ctx))
}

/// Close an upload session with `PUT <location>?digest=` and no body; assert 201.
async fn finish_upload(server: &TestServer, location: &str, digest: &str, ctx: &str) -> String {
    let resp = server
        .client()
        .put(with_digest(location, digest))
        .header("Content-Length", "0")
        .send()
        .await
        .expect("PUT close session");
    let (headers, _) = expect_status(resp, 201, ctx).await;
    let blob_location = require_header(&headers, "location", ctx);
    if let Some(dcd) = header(&headers, "docker-content-digest") {
        assert_eq!(dcd, digest, "{ctx}: Docker-Content-Digest");
    }
    server.resolve(&blob_location)
}

/// The blob at `repo`/`digest` is pullable and equals `bytes`.
async fn assert_blob(server: &TestServer, repo: &str, digest: &str, bytes: &[u8], ctx: &str) {
    let (_, body) = expect_status(server.get_blob(repo, digest).await, 200, ctx).await;
    assert!(
        body == bytes,
        "{ctx}: blob content differs from what was pushed"
    );
}

/// Chunk size honouring `OCI-Chunk-Min-Length` if the registry announced one.
fn chunk_size(post_headers: &reqwest::header::HeaderMap) -> usize {
    let min = header(post_headers, "oci-chunk-min-length")
        .and_then(|v| v.parse::<usize>().ok())
        .unwrap_or(0);
    min.max(1000)
}

#[tokio::test]
async fn push_blob_post_then_put() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-post-put");
    let blob = random_bytes(4096);
    let digest = sha256(&blob);

    let resp = server.start_upload(&repo).await;
    let (headers, _) = expect_status(resp, 202, "POST /blobs/uploads/").await;
    let location = server.resolve(&require_header(&headers, "location", "POST"));

    let resp = server
        .client()
        .put(with_digest(&location, &digest))
        .header("Content-Type", MT_OCTET_STREAM)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    let (headers, _) = expect_status(resp, 201, "PUT upload").await;
    let blob_location = server.resolve(&require_header(&headers, "location", "PUT upload"));
    if let Some(dcd) = header(&headers, "docker-content-digest") {
        assert_eq!(dcd, digest, "PUT upload: Docker-Content-Digest");
    }

    // The returned Location is a pullable blob URL.
    let resp = server.client().get(&blob_location).send().await.unwrap();
    let (_, body) = expect_status(resp, 200, "GET blob Location").await;
    assert!(body == blob, "blob at Location differs");
    assert_blob(&server, &repo, &digest, &blob, "GET blob by digest").await;
    let (_, _) = expect_status(server.head_blob(&repo, &digest).await, 200, "HEAD blob").await;
}

/// Single `POST ?digest=` upload. The spec lets a registry answer 202 and
/// fall back to POST+PUT; Berth implements the one-request form, so this
/// test requires `201 Created`.
#[tokio::test]
async fn push_blob_monolithic_single_post() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-single-post");
    let blob = random_bytes(2048);
    let digest = sha256(&blob);

    let resp = server
        .request(
            Method::POST,
            &format!("/v2/{repo}/blobs/uploads/?digest={digest}"),
        )
        .header("Content-Type", MT_OCTET_STREAM)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    let (headers, _) = expect_status(resp, 201, "single POST ?digest=").await;
    let location = server.resolve(&require_header(&headers, "location", "single POST"));
    let dcd = require_header(&headers, "docker-content-digest", "single POST");
    assert_eq!(dcd, digest, "single POST: Docker-Content-Digest");

    let resp = server.client().get(&location).send().await.unwrap();
    let (_, body) = expect_status(resp, 200, "GET blob Location").await;
    assert!(body == blob, "blob at Location differs");
    assert_blob(&server, &repo, &digest, &blob, "GET blob by digest").await;
}

#[tokio::test]
async fn push_blob_chunked_in_order() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-chunked");

    let resp = server.start_upload(&repo).await;
    let (headers, _) = expect_status(resp, 202, "POST /blobs/uploads/").await;
    let mut location = server.resolve(&require_header(&headers, "location", "POST"));
    let chunk = chunk_size(&headers);
    let blob = random_bytes(chunk * 2 + 123);
    let digest = sha256(&blob);

    let mut offset = 0;
    for (i, piece) in blob.chunks(chunk).enumerate() {
        let ctx = format!("PATCH chunk {i}");
        let resp = patch_chunk(&server, &location, piece, offset).await;
        offset += piece.len();
        location = expect_chunk_accepted(&server, resp, offset - 1, &ctx).await;
        // The session reports the same progress.
        location =
            expect_session_status(&server, &location, offset - 1, &format!("GET after {ctx}"))
                .await;
    }
    assert_eq!(offset, blob.len());

    let blob_location = finish_upload(&server, &location, &digest, "PUT close session").await;
    let resp = server.client().get(&blob_location).send().await.unwrap();
    let (_, body) = expect_status(resp, 200, "GET blob Location").await;
    assert!(body == blob, "chunked blob differs from what was pushed");
    assert_blob(&server, &repo, &digest, &blob, "GET chunked blob").await;
}

/// The final chunk may travel in the closing PUT instead of a PATCH.
#[tokio::test]
async fn push_blob_chunked_final_chunk_in_put() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-chunked-put");

    let resp = server.start_upload(&repo).await;
    let (headers, _) = expect_status(resp, 202, "POST /blobs/uploads/").await;
    let location = server.resolve(&require_header(&headers, "location", "POST"));
    let chunk = chunk_size(&headers);
    let blob = random_bytes(chunk + 321);
    let digest = sha256(&blob);

    let resp = patch_chunk(&server, &location, &blob[..chunk], 0).await;
    let location = expect_chunk_accepted(&server, resp, chunk - 1, "PATCH first chunk").await;

    let resp = server
        .client()
        .put(with_digest(&location, &digest))
        .header("Content-Type", MT_OCTET_STREAM)
        .header("Content-Range", format!("{}-{}", chunk, blob.len() - 1))
        .body(blob[chunk..].to_vec())
        .send()
        .await
        .unwrap();
    let (headers, _) = expect_status(resp, 201, "PUT with final chunk").await;
    require_header(&headers, "location", "PUT with final chunk");
    assert_blob(&server, &repo, &digest, &blob, "GET blob").await;
}

#[tokio::test]
async fn push_upload_session_status() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-session-status");
    let location = server.open_session(&repo).await;

    // A fresh session is active.
    let resp = server.client().get(&location).send().await.unwrap();
    let (headers, _) = expect_status(resp, 204, "GET fresh session").await;
    require_header(&headers, "location", "GET fresh session");

    let data = random_bytes(700);
    let resp = patch_chunk(&server, &location, &data, 0).await;
    let location = expect_chunk_accepted(&server, resp, 699, "PATCH").await;
    let location = expect_session_status(&server, &location, 699, "GET after PATCH").await;

    // The session can still be completed from the location GET returned.
    finish_upload(&server, &location, &sha256(&data), "PUT close").await;
    assert_blob(&server, &repo, &sha256(&data), &data, "GET blob").await;
}

#[tokio::test]
async fn push_blob_chunk_out_of_order_rejected() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-chunk-gap");
    let resp = server.start_upload(&repo).await;
    let (headers, _) = expect_status(resp, 202, "POST /blobs/uploads/").await;
    let location = server.resolve(&require_header(&headers, "location", "POST"));
    let chunk = chunk_size(&headers);
    let blob = random_bytes(chunk * 3);
    let digest = sha256(&blob);

    // The first chunk must start at 0.
    let resp = patch_chunk(&server, &location, &blob[10..chunk], 10).await;
    expect_error(
        resp,
        &[416],
        &["BLOB_UPLOAD_INVALID"],
        "first chunk not at 0",
    )
    .await;
    let location = expect_session_after_416(&server, &location, None).await;

    let resp = patch_chunk(&server, &location, &blob[..chunk], 0).await;
    let location = expect_chunk_accepted(&server, resp, chunk - 1, "PATCH chunk 0").await;

    // Skipping a chunk leaves a gap: 416.
    let resp = patch_chunk(&server, &location, &blob[2 * chunk..], 2 * chunk).await;
    expect_error(resp, &[416], &["BLOB_UPLOAD_INVALID"], "chunk with a gap").await;

    // The session survives with its progress intact and can be resumed.
    let location = expect_session_after_416(&server, &location, Some(chunk - 1)).await;
    let resp = patch_chunk(&server, &location, &blob[chunk..], chunk).await;
    let location =
        expect_chunk_accepted(&server, resp, blob.len() - 1, "PATCH remaining chunk").await;
    finish_upload(&server, &location, &digest, "PUT close").await;
    assert_blob(&server, &repo, &digest, &blob, "GET blob").await;
}

#[tokio::test]
async fn push_blob_chunk_overlapping_rejected() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-chunk-overlap");
    let resp = server.start_upload(&repo).await;
    let (headers, _) = expect_status(resp, 202, "POST /blobs/uploads/").await;
    let location = server.resolve(&require_header(&headers, "location", "POST"));
    let chunk = chunk_size(&headers);
    let blob = random_bytes(chunk * 2);
    let digest = sha256(&blob);

    let resp = patch_chunk(&server, &location, &blob[..chunk], 0).await;
    let location = expect_chunk_accepted(&server, resp, chunk - 1, "PATCH chunk 0").await;

    // Re-sending bytes the registry already has (overlap) is out of order: 416.
    let half = chunk / 2;
    let resp = patch_chunk(&server, &location, &blob[half..half + chunk], half).await;
    expect_error(resp, &[416], &["BLOB_UPLOAD_INVALID"], "overlapping chunk").await;

    let location = expect_session_after_416(&server, &location, Some(chunk - 1)).await;
    let resp = patch_chunk(&server, &location, &blob[chunk..], chunk).await;
    let location = expect_chunk_accepted(&server, resp, blob.len() - 1, "PATCH chunk 1").await;
    finish_upload(&server, &location, &digest, "PUT close").await;
    assert_blob(&server, &repo, &digest, &blob, "GET blob").await;
}

/// After a 416 the spec says to GET the session for the valid offset.
async fn expect_session_after_416(
    server: &TestServer,
    location: &str,
    end_inclusive: Option<usize>,
) -> String {
    match end_inclusive {
        Some(end) => expect_session_status(server, location, end, "GET session after 416").await,
        None => {
            let resp = server.client().get(location).send().await.unwrap();
            let (headers, _) = expect_status(resp, 204, "GET session after 416").await;
            server.resolve(&require_header(
                &headers,
                "location",
                "GET session after 416",
            ))
        }
    }
}

#[tokio::test]
async fn push_blob_wrong_digest_rejected() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-bad-digest");
    let blob = random_bytes(1024);
    let claimed = random_digest();
    let location = server.open_session(&repo).await;

    let resp = server
        .client()
        .put(with_digest(&location, &claimed))
        .header("Content-Type", MT_OCTET_STREAM)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    expect_error(resp, &[400], &["DIGEST_INVALID"], "PUT with wrong digest").await;

    // Nothing was stored under either digest.
    expect_status(
        server.head_blob(&repo, &claimed).await,
        404,
        "HEAD claimed digest",
    )
    .await;
    expect_status(
        server.head_blob(&repo, &sha256(&blob)).await,
        404,
        "HEAD real digest",
    )
    .await;
}

#[tokio::test]
async fn push_blob_upload_cancel() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-cancel");
    let location = server.open_session(&repo).await;
    let data = random_bytes(300);
    let resp = patch_chunk(&server, &location, &data, 0).await;
    let location = expect_chunk_accepted(&server, resp, 299, "PATCH").await;

    let resp = server.client().delete(&location).send().await.unwrap();
    expect_status(resp, 204, "DELETE upload session").await;

    let resp = server.client().get(&location).send().await.unwrap();
    expect_error(
        resp,
        &[404],
        &["BLOB_UPLOAD_UNKNOWN"],
        "GET cancelled session",
    )
    .await;
    expect_status(
        server.head_blob(&repo, &sha256(&data)).await,
        404,
        "HEAD blob of cancelled upload",
    )
    .await;
}

#[tokio::test]
async fn push_blob_mount_from_other_repo() {
    let server = TestServer::start().await;
    let source = unique_repo("push-mount-src");
    let target = unique_repo("push-mount-dst");
    let blob = random_bytes(1500);
    let digest = server.push_blob(&source, &blob).await;

    let resp = server
        .request(
            Method::POST,
            &format!("/v2/{target}/blobs/uploads/?mount={digest}&from={source}"),
        )
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    let (headers, _) = expect_status(resp, 201, "POST ?mount=&from=").await;
    let location = server.resolve(&require_header(&headers, "location", "mount"));
    let dcd = require_header(&headers, "docker-content-digest", "mount");
    assert_eq!(dcd, digest, "mount: Docker-Content-Digest");

    let resp = server.client().get(&location).send().await.unwrap();
    let (_, body) = expect_status(resp, 200, "GET mounted blob Location").await;
    assert!(body == blob, "mounted blob differs");
    assert_blob(&server, &target, &digest, &blob, "GET mounted blob").await;
    // The source still has it.
    assert_blob(&server, &source, &digest, &blob, "GET source blob").await;
}

#[tokio::test]
async fn push_blob_mount_missing_starts_session() {
    let server = TestServer::start().await;
    let source = unique_repo("push-mount-miss-src");
    let target = unique_repo("push-mount-miss-dst");
    // The source repository exists but does not hold the blob.
    server.push_blob(&source, &random_bytes(64)).await;
    let blob = random_bytes(900);
    let digest = sha256(&blob);

    let resp = server
        .request(
            Method::POST,
            &format!("/v2/{target}/blobs/uploads/?mount={digest}&from={source}"),
        )
        .header("Content-Length", "0")
        .send()
        .await
        .unwrap();
    let (headers, _) = expect_status(resp, 202, "POST ?mount= of missing blob").await;
    let location = server.resolve(&require_header(&headers, "location", "mount fallback"));

    // The Location is a fresh, usable upload session.
    let resp = server
        .client()
        .put(with_digest(&location, &digest))
        .header("Content-Type", MT_OCTET_STREAM)
        .body(blob.clone())
        .send()
        .await
        .unwrap();
    expect_status(resp, 201, "PUT into mount-fallback session").await;
    assert_blob(&server, &target, &digest, &blob, "GET uploaded blob").await;
    expect_status(
        server.head_blob(&source, &digest).await,
        404,
        "HEAD in source",
    )
    .await;
}

/// Push config + layer and return the manifest bytes referencing them.
async fn pushed_image_manifest(server: &TestServer, repo: &str) -> Vec<u8> {
    let config = pretty(&serde_json::json!({"os": "linux", "id": unique_id()}));
    let layer = random_bytes(256);
    server.push_blob(repo, &config).await;
    server.push_blob(repo, &layer).await;
    image_manifest(
        &Descriptor::of(MT_OCI_CONFIG, &config),
        &[Descriptor::of(MT_OCI_LAYER, &layer)],
    )
}

/// 201, `Location` pointing at the manifest, `Docker-Content-Digest` == digest.
async fn expect_manifest_created(server: &TestServer, resp: Response, bytes: &[u8], ctx: &str) {
    let digest = sha256(bytes);
    let (headers, _) = expect_status(resp, 201, ctx).await;
    let location = server.resolve(&require_header(&headers, "location", ctx));
    let dcd = require_header(&headers, "docker-content-digest", ctx);
    assert_eq!(dcd, digest, "{ctx}: Docker-Content-Digest");

    let resp = server
        .client()
        .get(&location)
        .header("Accept", MANIFEST_ACCEPT)
        .send()
        .await
        .unwrap();
    let (_, body) = expect_status(resp, 200, &format!("{ctx}: GET Location")).await;
    assert!(body == bytes, "{ctx}: manifest at Location differs");
}

#[tokio::test]
async fn push_manifest_by_tag() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-manifest-tag");
    let manifest = pushed_image_manifest(&server, &repo).await;
    let resp = server
        .push_manifest(&repo, "v1.0", MT_OCI_MANIFEST, &manifest)
        .await;
    expect_manifest_created(&server, resp, &manifest, "PUT manifest by tag").await;
    let (_, body) = expect_status(server.get_manifest(&repo, "v1.0").await, 200, "GET tag").await;
    assert!(body == manifest, "GET by tag returns different bytes");
}

#[tokio::test]
async fn push_manifest_by_digest() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-manifest-digest");
    let manifest = pushed_image_manifest(&server, &repo).await;
    let digest = sha256(&manifest);
    let resp = server
        .push_manifest(&repo, &digest, MT_OCI_MANIFEST, &manifest)
        .await;
    expect_manifest_created(&server, resp, &manifest, "PUT manifest by digest").await;
    let (_, body) =
        expect_status(server.get_manifest(&repo, &digest).await, 200, "GET digest").await;
    assert!(body == manifest, "GET by digest returns different bytes");
}

#[tokio::test]
async fn push_manifest_digest_mismatch_rejected() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-manifest-mismatch");
    let manifest = pushed_image_manifest(&server, &repo).await;
    let wrong = random_digest();
    let resp = server
        .push_manifest(&repo, &wrong, MT_OCI_MANIFEST, &manifest)
        .await;
    expect_error(
        resp,
        &[400],
        &["DIGEST_INVALID"],
        "PUT manifest under wrong digest",
    )
    .await;
    expect_status(
        server.head_manifest(&repo, &wrong).await,
        404,
        "HEAD wrong digest",
    )
    .await;
}

#[tokio::test]
async fn push_manifest_missing_blob_rejected() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-manifest-missing-blob");
    let config = pretty(&serde_json::json!({"os": "linux", "id": unique_id()}));
    server.push_blob(&repo, &config).await;
    let missing_layer = random_bytes(128); // never uploaded
    let manifest = image_manifest(
        &Descriptor::of(MT_OCI_CONFIG, &config),
        &[Descriptor::of(MT_OCI_LAYER, &missing_layer)],
    );
    let resp = server
        .push_manifest(&repo, "broken", MT_OCI_MANIFEST, &manifest)
        .await;
    expect_error(
        resp,
        &[400],
        &["MANIFEST_BLOB_UNKNOWN"],
        "PUT manifest with missing layer",
    )
    .await;
    expect_status(
        server.head_manifest(&repo, "broken").await,
        404,
        "HEAD rejected tag",
    )
    .await;
}

#[tokio::test]
async fn push_manifest_retag_moves_tag() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-retag");
    let first = server.push_random_image(&repo, Some("latest")).await;
    let second = server.push_random_image(&repo, Some("latest")).await;
    assert_ne!(first.digest, second.digest);
    let resp = server.get_manifest(&repo, "latest").await;
    let (headers, body) = expect_status(resp, 200, "GET latest").await;
    assert!(
        body == second.bytes,
        "tag was not moved to the new manifest"
    );
    assert_eq!(
        require_header(&headers, "docker-content-digest", "GET latest"),
        second.digest
    );
    // The previous manifest stays reachable by digest.
    let (_, body) = expect_status(
        server.get_manifest(&repo, &first.digest).await,
        200,
        "GET old",
    )
    .await;
    assert!(body == first.bytes);
}

#[tokio::test]
async fn push_image_index() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-index");
    let a = server.push_random_image(&repo, None).await;
    let b = server.push_random_image(&repo, None).await;
    let index = image_index(&[a.descriptor(), b.descriptor()]);
    let resp = server
        .push_manifest(&repo, "multi", MT_OCI_INDEX, &index)
        .await;
    expect_manifest_created(&server, resp, &index, "PUT index by tag").await;

    let (headers, body) =
        expect_status(server.get_manifest(&repo, "multi").await, 200, "GET index").await;
    assert!(body == index, "index bytes differ");
    let ct = require_header(&headers, "content-type", "GET index");
    assert_eq!(bare_media_type(&ct), MT_OCI_INDEX, "index Content-Type");
}

/// A manifest whose `subject` does not exist (yet) MUST be accepted.
#[tokio::test]
async fn push_manifest_with_missing_subject_accepted() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-subject-missing");
    let phantom = Descriptor {
        media_type: MT_OCI_MANIFEST.to_string(),
        digest: random_digest(),
        size: 1234,
        artifact_type: None,
        annotations: Vec::new(),
    };
    let artifact = server
        .push_artifact(&repo, "application/vnd.berth.test.sbom.v1", &phantom, &[])
        .await;
    let (_, body) = expect_status(
        server.get_manifest(&repo, &artifact.digest).await,
        200,
        "GET artifact",
    )
    .await;
    assert!(body == artifact.bytes);
}

/// A registry supporting the referrers API answers `OCI-Subject: <digest>`.
#[tokio::test]
async fn push_manifest_with_subject_returns_oci_subject() {
    let server = TestServer::start().await;
    let repo = unique_repo("push-subject-header");
    let subject = server.push_random_image(&repo, Some("base")).await;

    server.push_empty_blob(&repo).await;
    let payload = random_bytes(100);
    server.push_blob(&repo, &payload).await;
    let manifest = artifact_manifest(
        "application/vnd.berth.test.signature.v1",
        &[Descriptor::of(
            "application/vnd.berth.test.payload",
            &payload,
        )],
        &subject.descriptor(),
        &[],
    );
    let resp = server
        .push_manifest(&repo, &sha256(&manifest), MT_OCI_MANIFEST, &manifest)
        .await;
    let (headers, _) = expect_status(resp, 201, "PUT artifact with subject").await;
    let oci_subject = require_header(&headers, "oci-subject", "PUT artifact with subject");
    assert_eq!(oci_subject, subject.digest, "OCI-Subject header");
}
