//! Content management: deleting tags, manifests and blobs.

use reqwest::{Method, Response};

use crate::common::*;

async fn delete(server: &TestServer, path: &str) -> Response {
    server.request(Method::DELETE, path).send().await.unwrap()
}

#[tokio::test]
async fn delete_tag_keeps_manifest() {
    let server = TestServer::start().await;
    let repo = unique_repo("delete-tag");
    let image = server.push_random_image(&repo, Some("doomed")).await;
    server
        .push_manifest_ok(&repo, Some("kept"), MT_OCI_MANIFEST, &image.bytes)
        .await;

    let resp = delete(&server, &format!("/v2/{repo}/manifests/doomed")).await;
    expect_status(resp, 202, "DELETE tag").await;

    let resp = server.get_manifest(&repo, "doomed").await;
    expect_error(resp, &[404], &["MANIFEST_UNKNOWN"], "GET deleted tag").await;
    expect_status(
        server.head_manifest(&repo, "doomed").await,
        404,
        "HEAD deleted tag",
    )
    .await;

    // The manifest itself and its other tag survive.
    let (_, body) = expect_status(
        server.get_manifest(&repo, &image.digest).await,
        200,
        "GET manifest by digest after tag delete",
    )
    .await;
    assert!(body == image.bytes);
    let (_, body) = expect_status(
        server.get_manifest(&repo, "kept").await,
        200,
        "GET other tag after tag delete",
    )
    .await;
    assert!(body == image.bytes);
    assert_eq!(
        server.tags(&repo).await,
        vec!["kept".to_string()],
        "tags after delete"
    );
}

#[tokio::test]
async fn delete_manifest_by_digest() {
    let server = TestServer::start().await;
    let repo = unique_repo("delete-manifest");
    let image = server.push_random_image(&repo, Some("doomed")).await;
    // A second image keeps the repository (and its tag list) alive.
    let other = server.push_random_image(&repo, Some("survivor")).await;

    let resp = delete(&server, &format!("/v2/{repo}/manifests/{}", image.digest)).await;
    expect_status(resp, 202, "DELETE manifest by digest").await;

    let resp = server.get_manifest(&repo, &image.digest).await;
    expect_error(
        resp,
        &[404],
        &["MANIFEST_UNKNOWN"],
        "GET deleted manifest by digest",
    )
    .await;
    expect_status(
        server.head_manifest(&repo, &image.digest).await,
        404,
        "HEAD deleted manifest",
    )
    .await;
    let resp = server.get_manifest(&repo, "doomed").await;
    expect_error(
        resp,
        &[404],
        &["MANIFEST_UNKNOWN"],
        "GET tag of deleted manifest",
    )
    .await;
    assert_eq!(
        server.tags(&repo).await,
        vec!["survivor".to_string()],
        "tags after manifest delete"
    );
    expect_status(
        server.get_manifest(&repo, &other.digest).await,
        200,
        "GET unrelated manifest",
    )
    .await;
}

#[tokio::test]
async fn delete_manifest_unknown() {
    let server = TestServer::start().await;
    let repo = unique_repo("delete-manifest-unknown");
    server.push_random_image(&repo, Some("present")).await;
    let resp = delete(
        &server,
        &format!("/v2/{repo}/manifests/{}", random_digest()),
    )
    .await;
    expect_error(
        resp,
        &[404],
        &["MANIFEST_UNKNOWN"],
        "DELETE unknown manifest",
    )
    .await;
}

#[tokio::test]
async fn delete_blob() {
    let server = TestServer::start().await;
    let repo = unique_repo("delete-blob");
    let blob = random_bytes(2000);
    let digest = server.push_blob(&repo, &blob).await;
    let keep = server.push_blob(&repo, &random_bytes(100)).await;

    let resp = delete(&server, &format!("/v2/{repo}/blobs/{digest}")).await;
    expect_status(resp, 202, "DELETE blob").await;

    expect_status(
        server.head_blob(&repo, &digest).await,
        404,
        "HEAD deleted blob",
    )
    .await;
    let resp = server.get_blob(&repo, &digest).await;
    expect_error(resp, &[404], &["BLOB_UNKNOWN"], "GET deleted blob").await;
    let resp = delete(&server, &format!("/v2/{repo}/blobs/{digest}")).await;
    expect_error(resp, &[404], &["BLOB_UNKNOWN"], "DELETE deleted blob again").await;

    expect_status(
        server.head_blob(&repo, &keep).await,
        200,
        "HEAD unrelated blob",
    )
    .await;
}

#[tokio::test]
async fn delete_blob_unknown() {
    let server = TestServer::start().await;
    let repo = unique_repo("delete-blob-unknown");
    server.push_blob(&repo, &random_bytes(100)).await;
    let resp = delete(&server, &format!("/v2/{repo}/blobs/{}", random_digest())).await;
    expect_error(resp, &[404], &["BLOB_UNKNOWN"], "DELETE unknown blob").await;
}

/// Deleting a referrer removes it from the subject's referrers list.
#[tokio::test]
async fn delete_referrer_updates_referrers() {
    let server = TestServer::start().await;
    let repo = unique_repo("delete-referrer");
    let subject = server.push_random_image(&repo, Some("base")).await;
    let sd = subject.descriptor();
    let gone = server
        .push_artifact(&repo, "application/vnd.berth.test.sbom.v1", &sd, &[])
        .await;
    let stays = server
        .push_artifact(&repo, "application/vnd.berth.test.signature.v1", &sd, &[])
        .await;

    let digests = |body: &[u8]| -> Vec<String> {
        let v: serde_json::Value = serde_json::from_slice(body).expect("referrers JSON");
        let mut d: Vec<String> = v["manifests"]
            .as_array()
            .expect("manifests array")
            .iter()
            .map(|m| m["digest"].as_str().unwrap().to_string())
            .collect();
        d.sort();
        d
    };
    let mut both = vec![gone.digest.clone(), stays.digest.clone()];
    both.sort();
    let (_, body) = expect_status(
        server.referrers(&repo, &subject.digest, "").await,
        200,
        "referrers before delete",
    )
    .await;
    assert_eq!(digests(&body), both, "referrers before delete");

    let resp = delete(&server, &format!("/v2/{repo}/manifests/{}", gone.digest)).await;
    expect_status(resp, 202, "DELETE referrer").await;
    let (_, body) = expect_status(
        server.referrers(&repo, &subject.digest, "").await,
        200,
        "referrers after delete",
    )
    .await;
    assert_eq!(
        digests(&body),
        vec![stays.digest.clone()],
        "referrers after delete"
    );
}
