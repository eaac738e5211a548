//! Pull workflow: manifests and blobs by tag/digest, HEAD, range requests and
//! the errors for unknown or invalid names and digests.

use reqwest::Method;
use serde_json::json;

use crate::common::*;

/// Assert a successful manifest GET: body, digest, type and length.
async fn check_manifest_get(server: &TestServer, pushed: &PushedManifest, reference: &str) {
    let ctx = format!("GET manifest {}:{reference}", pushed.repo);
    let resp = server.get_manifest(&pushed.repo, reference).await;
    let (headers, body) = expect_status(resp, 200, &ctx).await;
    assert!(
        body == pushed.bytes,
        "{ctx}: bytes differ from what was pushed"
    );
    assert_eq!(
        require_header(&headers, "docker-content-digest", &ctx),
        pushed.digest,
        "{ctx}: Docker-Content-Digest"
    );
    assert_eq!(
        bare_media_type(&require_header(&headers, "content-type", &ctx)),
        pushed.media_type,
        "{ctx}: Content-Type"
    );
    assert_eq!(
        require_header(&headers, "content-length", &ctx),
        pushed.bytes.len().to_string(),
        "{ctx}: Content-Length"
    );
}

/// Assert a successful manifest HEAD: no body, digest, type and length.
async fn check_manifest_head(server: &TestServer, pushed: &PushedManifest, reference: &str) {
    let ctx = format!("HEAD manifest {}:{reference}", pushed.repo);
    let resp = server.head_manifest(&pushed.repo, reference).await;
    let (headers, body) = expect_status(resp, 200, &ctx).await;
    assert!(body.is_empty(), "{ctx}: HEAD returned a body");
    assert_eq!(
        require_header(&headers, "docker-content-digest", &ctx),
        pushed.digest,
        "{ctx}: Docker-Content-Digest"
    );
    assert_eq!(
        bare_media_type(&require_header(&headers, "content-type", &ctx)),
        pushed.media_type,
        "{ctx}: Content-Type"
    );
    assert_eq!(
        require_header(&headers, "content-length", &ctx),
        pushed.bytes.len().to_string(),
        "{ctx}: Content-Length"
    );
}

#[tokio::test]
async fn pull_api_version_check() {
    let server = TestServer::start().await;
    let resp = server.request(Method::GET, "/v2/").send().await.unwrap();
    expect_status(resp, 200, "GET /v2/").await;
}

#[tokio::test]
async fn pull_manifest_by_tag() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-manifest-tag");
    let pushed = server.push_random_image(&repo, Some("v1")).await;
    check_manifest_get(&server, &pushed, "v1").await;
    check_manifest_head(&server, &pushed, "v1").await;
}

#[tokio::test]
async fn pull_manifest_by_digest() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-manifest-digest");
    let pushed = server.push_random_image(&repo, Some("v1")).await;
    check_manifest_get(&server, &pushed, &pushed.digest).await;
    check_manifest_head(&server, &pushed, &pushed.digest).await;

    // A manifest pushed only by digest (untagged) is pullable as well.
    let untagged = server.push_random_image(&repo, None).await;
    check_manifest_get(&server, &untagged, &untagged.digest).await;
    check_manifest_head(&server, &untagged, &untagged.digest).await;
}

#[tokio::test]
async fn pull_image_index() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-index");
    let a = server.push_random_image(&repo, None).await;
    let b = server.push_random_image(&repo, None).await;
    let bytes = image_index(&[a.descriptor(), b.descriptor()]);
    server
        .push_manifest_ok(&repo, Some("multi"), MT_OCI_INDEX, &bytes)
        .await;
    let pushed = PushedManifest::new(&repo, bytes, MT_OCI_INDEX, Vec::new());
    check_manifest_get(&server, &pushed, "multi").await;
    check_manifest_head(&server, &pushed, "multi").await;
    check_manifest_get(&server, &pushed, &pushed.digest).await;
}

/// Content-Type echoes the pushed media type for a non-OCI (Docker v2) manifest too.
#[tokio::test]
async fn pull_docker_manifest_content_type() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-docker-type");
    let config = pretty(&json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": []},
        "id": unique_id(),
    }));
    let layer = random_bytes(300);
    server.push_blob(&repo, &config).await;
    server.push_blob(&repo, &layer).await;
    let bytes = pretty(&json!({
        "schemaVersion": 2,
        "mediaType": MT_DOCKER_MANIFEST,
        "config": Descriptor::of("application/vnd.docker.container.image.v1+json", &config).json(),
        "layers": [Descriptor::of("application/vnd.docker.image.rootfs.diff.tar.gzip", &layer).json()],
    }));
    server
        .push_manifest_ok(&repo, Some("docker"), MT_DOCKER_MANIFEST, &bytes)
        .await;
    let pushed = PushedManifest::new(&repo, bytes, MT_DOCKER_MANIFEST, Vec::new());
    check_manifest_get(&server, &pushed, "docker").await;
    check_manifest_head(&server, &pushed, &pushed.digest).await;
}

#[tokio::test]
async fn pull_manifest_unknown() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-manifest-unknown");
    server.push_random_image(&repo, Some("present")).await;

    let resp = server.get_manifest(&repo, "absent").await;
    expect_error(resp, &[404], &["MANIFEST_UNKNOWN"], "GET unknown tag").await;
    let digest = random_digest();
    let resp = server.get_manifest(&repo, &digest).await;
    expect_error(resp, &[404], &["MANIFEST_UNKNOWN"], "GET unknown digest").await;

    expect_status(
        server.head_manifest(&repo, "absent").await,
        404,
        "HEAD unknown tag",
    )
    .await;
    expect_status(
        server.head_manifest(&repo, &digest).await,
        404,
        "HEAD unknown digest",
    )
    .await;
}

#[tokio::test]
async fn pull_manifest_unknown_repository() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-no-such-repo");
    let resp = server.get_manifest(&repo, "latest").await;
    expect_error(
        resp,
        &[404],
        &["NAME_UNKNOWN", "MANIFEST_UNKNOWN"],
        "GET manifest in unknown repository",
    )
    .await;
    let resp = server.get_blob(&repo, &random_digest()).await;
    expect_error(
        resp,
        &[404],
        &["NAME_UNKNOWN", "BLOB_UNKNOWN"],
        "GET blob in unknown repository",
    )
    .await;
}

#[tokio::test]
async fn pull_blob() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-blob");
    let blob = random_bytes(5000);
    let digest = server.push_blob(&repo, &blob).await;

    let (headers, body) =
        expect_status(server.get_blob(&repo, &digest).await, 200, "GET blob").await;
    assert!(body == blob, "GET blob: content differs");
    assert_eq!(
        require_header(&headers, "content-length", "GET blob"),
        blob.len().to_string()
    );
    assert_eq!(
        require_header(&headers, "docker-content-digest", "GET blob"),
        digest
    );

    let (headers, body) =
        expect_status(server.head_blob(&repo, &digest).await, 200, "HEAD blob").await;
    assert!(body.is_empty(), "HEAD blob returned a body");
    assert_eq!(
        require_header(&headers, "content-length", "HEAD blob"),
        blob.len().to_string()
    );
    assert_eq!(
        require_header(&headers, "docker-content-digest", "HEAD blob"),
        digest
    );
}

async fn get_range(
    server: &TestServer,
    repo: &str,
    digest: &str,
    range: &str,
) -> reqwest::Response {
    server
        .request(Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
        .header("Range", range)
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn pull_blob_range() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-blob-range");
    let blob = random_bytes(100);
    let digest = server.push_blob(&repo, &blob).await;

    // (Range header, expected first byte, expected last byte inclusive)
    let cases: &[(&str, usize, usize)] = &[
        ("bytes=0-9", 0, 9),
        ("bytes=-5", 95, 99),
        ("bytes=90-", 90, 99),
        ("bytes=40-59", 40, 59),
        ("bytes=95-500", 95, 99), // last-pos past the end is clamped
    ];
    for &(range, first, last) in cases {
        let resp = get_range(&server, &repo, &digest, range).await;
        let ctx = format!("GET blob with Range: {range}");
        let (headers, body) = expect_status(resp, 206, &ctx).await;
        assert_eq!(
            require_header(&headers, "content-range", &ctx),
            format!("bytes {first}-{last}/{}", blob.len()),
            "{ctx}: Content-Range"
        );
        assert_eq!(
            require_header(&headers, "content-length", &ctx),
            (last - first + 1).to_string(),
            "{ctx}: Content-Length"
        );
        assert!(body == blob[first..=last], "{ctx}: wrong bytes");
    }
}

/// Unsatisfiable ranges get 416 with `Content-Range: bytes */<size>` (RFC 9110).
/// No spec error code describes this, so a non-JSON body is tolerated here;
/// a JSON body must still have the spec's error shape.
#[tokio::test]
async fn pull_blob_range_unsatisfiable() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-blob-range-416");
    let blob = random_bytes(100);
    let digest = server.push_blob(&repo, &blob).await;

    for range in ["bytes=100-110", "bytes=500-"] {
        let resp = get_range(&server, &repo, &digest, range).await;
        let ctx = format!("GET blob with Range: {range}");
        let is_json = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| bare_media_type(v) == "application/json");
        let (headers, body) = expect_status(resp, 416, &ctx).await;
        assert_eq!(
            require_header(&headers, "content-range", &ctx),
            format!("bytes */{}", blob.len()),
            "{ctx}: Content-Range"
        );
        if is_json && !body.is_empty() {
            parse_error_body(&body, &ctx);
        }
    }
}

#[tokio::test]
async fn pull_blob_unknown() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-blob-unknown");
    server.push_blob(&repo, &random_bytes(32)).await;
    let digest = random_digest();
    let resp = server.get_blob(&repo, &digest).await;
    expect_error(resp, &[404], &["BLOB_UNKNOWN"], "GET unknown blob").await;
    expect_status(
        server.head_blob(&repo, &digest).await,
        404,
        "HEAD unknown blob",
    )
    .await;
}

/// A blob pushed to one repository is not visible through another one.
#[tokio::test]
async fn pull_blob_scoped_to_repository() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-blob-scope-a");
    let other = unique_repo("pull-blob-scope-b");
    let digest = server.push_blob(&repo, &random_bytes(64)).await;
    server.push_blob(&other, &random_bytes(64)).await;
    let resp = server.get_blob(&other, &digest).await;
    expect_error(
        resp,
        &[404],
        &["BLOB_UNKNOWN"],
        "GET blob via another repository",
    )
    .await;
}

/// The upstream OCI conformance suite's "nonexistent manifest": `.INVALID_MANIFEST_NAME`,
/// which cannot be a tag, answers `GET` and `HEAD` with 404 `MANIFEST_UNKNOWN`, as
/// Distribution does, in a repository that has other manifests.
#[tokio::test]
async fn pull_manifest_by_a_name_that_cannot_be_a_tag_is_404() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-invalid-tag");
    server.push_random_image(&repo, Some("present")).await;
    let resp = server.get_manifest(&repo, ".INVALID_MANIFEST_NAME").await;
    expect_error(
        resp,
        &[404],
        &["MANIFEST_UNKNOWN"],
        "GET .INVALID_MANIFEST_NAME",
    )
    .await;
    let resp = server.head_manifest(&repo, ".INVALID_MANIFEST_NAME").await;
    assert_eq!(resp.status(), 404, "HEAD .INVALID_MANIFEST_NAME");
}

/// Names outside the spec's `<name>` grammar: 400 NAME_INVALID, or 404.
#[tokio::test]
async fn pull_invalid_name() {
    let server = TestServer::start().await;
    let id = unique_id();
    let names = [
        format!("berth-conformance/UPPER-{id}"),
        format!("berth-conformance/trailing-{id}-"),
        format!("berth-conformance/-{id}"),
        format!("berth-conformance/a___{id}"),
        format!("berth-conformance/{id}..x"),
    ];
    for name in &names {
        let resp = server.get_manifest(name, "latest").await;
        expect_error(
            resp,
            &[400, 404],
            &["NAME_INVALID", "NAME_UNKNOWN", "MANIFEST_UNKNOWN"],
            &format!("GET manifest of invalid name {name:?}"),
        )
        .await;
        let resp = server.get_blob(name, &random_digest()).await;
        expect_error(
            resp,
            &[400, 404],
            &["NAME_INVALID", "NAME_UNKNOWN", "BLOB_UNKNOWN"],
            &format!("GET blob of invalid name {name:?}"),
        )
        .await;
        let resp = server.start_upload(name).await;
        expect_error(
            resp,
            &[400, 404],
            &["NAME_INVALID", "NAME_UNKNOWN"],
            &format!("POST upload to invalid name {name:?}"),
        )
        .await;
    }
}

/// Digest-shaped references that are not valid digests: 400 DIGEST_INVALID, or 404.
#[tokio::test]
async fn pull_invalid_digest_malformed_hex() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-invalid-digest");
    server.push_random_image(&repo, Some("present")).await;
    let real = random_digest();
    let digests = [
        // too short for sha256
        format!("sha256:{}", &real["sha256:".len().."sha256:".len() + 32]),
        // upper-case hex is not a valid sha256 encoding
        real.to_uppercase().replacen("SHA256", "sha256", 1),
    ];
    for digest in &digests {
        let resp = server.get_blob(&repo, digest).await;
        expect_error(
            resp,
            &[400, 404],
            &["DIGEST_INVALID", "BLOB_UNKNOWN"],
            &format!("GET blob {digest}"),
        )
        .await;
        let resp = server.get_manifest(&repo, digest).await;
        expect_error(
            resp,
            &[400, 404],
            &["DIGEST_INVALID", "MANIFEST_UNKNOWN"],
            &format!("GET manifest {digest}"),
        )
        .await;
    }
}

/// References that are neither a tag nor a well-formed digest.
#[tokio::test]
async fn pull_invalid_digest_garbage() {
    let server = TestServer::start().await;
    let repo = unique_repo("pull-garbage-digest");
    server.push_random_image(&repo, Some("present")).await;
    for digest in [
        "sha256:baddigeststring",
        "nosuchalgo:0123456789abcdef0123456789abcdef",
    ] {
        let resp = server.get_blob(&repo, digest).await;
        expect_error(
            resp,
            &[400, 404],
            &["DIGEST_INVALID", "BLOB_UNKNOWN"],
            &format!("GET blob {digest}"),
        )
        .await;
        let resp = server.get_manifest(&repo, digest).await;
        expect_error(
            resp,
            &[400, 404],
            &["DIGEST_INVALID", "MANIFEST_UNKNOWN"],
            &format!("GET manifest {digest}"),
        )
        .await;
    }
}
