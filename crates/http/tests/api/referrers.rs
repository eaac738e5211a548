//! `/v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is a digest.

use crate::support::{
    assert_error, header, json_body, maybe_header, sha256, Manifest, ManifestBuilder, TestApp,
    OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
use serde_json::{json, Value};

const SBOM: &str = "application/vnd.example.sbom.v1+json";
const SIGNATURE_CONFIG: &str = "application/vnd.example.signature.config.v1+json";

/// An image, and two manifests referring to it: an SBOM artifact with annotations and a
/// signature pushed as a plain image whose config type says what it is.
struct Fixture {
    subject: Manifest,
    sbom: Manifest,
    signature: Manifest,
}

async fn fixture(app: &TestApp, repo: &str) -> Fixture {
    let subject = app.push_image(repo, "v1", 1).await;

    app.push_blob_as(repo, b"{}", OCI_EMPTY).await;
    let sbom_blob = app.push_blob_as(repo, b"{\"packages\":[]}", SBOM).await;
    let sbom = ManifestBuilder::artifact(SBOM, &[sbom_blob])
        .subject(&subject.descriptor())
        .annotation("org.opencontainers.image.created", "2024-01-01T00:00:00Z")
        .annotation("com.example.note", "héllo \"quoted\"")
        .build();
    app.push_manifest_ok(repo, &sbom.digest(), &sbom).await;

    let sig_config = app
        .push_blob_as(repo, b"{\"sig\":1}", SIGNATURE_CONFIG)
        .await;
    let sig_layer = app.push_blob(repo, b"signature bytes").await;
    let signature = ManifestBuilder::oci_image(&sig_config, &[sig_layer])
        .subject(&subject.descriptor())
        .build();
    app.push_manifest_ok(repo, &signature.digest(), &signature)
        .await;

    Fixture {
        subject,
        sbom,
        signature,
    }
}

/// The `manifests` of a referrers response, after checking it is an image index.
async fn referrers(resp: reqwest::Response) -> Vec<Value> {
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), OCI_INDEX);
    let body = json_body(resp).await;
    assert_eq!(body["schemaVersion"], 2);
    assert_eq!(body["mediaType"], OCI_INDEX);
    body["manifests"].as_array().expect("manifests").clone()
}

fn entry<'a>(entries: &'a [Value], m: &Manifest) -> &'a Value {
    entries
        .iter()
        .find(|e| e["digest"] == m.digest())
        .unwrap_or_else(|| panic!("{} not listed in {entries:?}", m.digest()))
}

#[tokio::test]
async fn no_referrers_is_an_empty_index() {
    let app = TestApp::spawn().await;
    let image = app.push_image("ns/repo", "v1", 2).await;
    let unknown = sha256(b"nothing refers to this");
    for digest in [image.digest(), unknown] {
        let resp = app
            .send(app.get(&format!("/v2/ns/repo/referrers/{digest}")))
            .await;
        assert_eq!(maybe_header(&resp, "oci-filters-applied"), None);
        assert!(referrers(resp).await.is_empty());
    }
}

#[tokio::test]
async fn referrers_are_listed_with_type_size_and_annotations() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "ns/repo").await;
    let resp = app
        .send(app.get(&format!("/v2/ns/repo/referrers/{}", f.subject.digest())))
        .await;
    assert_eq!(maybe_header(&resp, "oci-filters-applied"), None);
    let entries = referrers(resp).await;
    assert_eq!(entries.len(), 2, "{entries:?}");

    let sbom = entry(&entries, &f.sbom);
    assert_eq!(sbom["mediaType"], OCI_MANIFEST);
    assert_eq!(sbom["size"], f.sbom.body.len());
    assert_eq!(sbom["artifactType"], SBOM);
    assert_eq!(
        sbom["annotations"],
        json!({
            "org.opencontainers.image.created": "2024-01-01T00:00:00Z",
            "com.example.note": "héllo \"quoted\"",
        })
    );

    // A plain image's artifact type is its config's media type.
    let signature = entry(&entries, &f.signature);
    assert_eq!(signature["mediaType"], OCI_MANIFEST);
    assert_eq!(signature["size"], f.signature.body.len());
    assert_eq!(signature["artifactType"], SIGNATURE_CONFIG);
    assert!(signature.get("annotations").is_none(), "{signature}");
}

#[tokio::test]
async fn the_artifact_type_filter_is_applied_and_announced() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "ns/repo").await;
    let path = format!("/v2/ns/repo/referrers/{}", f.subject.digest());

    // Media types contain '+': sent raw (as curl users type it) it is a plus, not a space...
    let resp = app
        .send(app.get(&format!("{path}?artifactType={SBOM}")))
        .await;
    assert_eq!(header(&resp, "oci-filters-applied"), "artifactType");
    let entries = referrers(resp).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], f.sbom.digest());

    // ...and percent-encoded (as Go's url.Values sends it) it is a plus too.
    let encoded = SIGNATURE_CONFIG.replace('+', "%2B").replace('/', "%2F");
    let resp = app
        .send(app.get(&format!("{path}?artifactType={encoded}")))
        .await;
    assert_eq!(header(&resp, "oci-filters-applied"), "artifactType");
    let entries = referrers(resp).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], f.signature.digest());

    let resp = app
        .send(app.get(&format!("{path}?artifactType=application/x.none")))
        .await;
    assert_eq!(header(&resp, "oci-filters-applied"), "artifactType");
    assert!(referrers(resp).await.is_empty());
}

#[tokio::test]
async fn an_index_can_refer_to_a_subject() {
    let app = TestApp::spawn().await;
    let subject = app.push_image("ns/repo", "v1", 3).await;
    let child = app.push_image("ns/repo", "child", 4).await;
    let index = ManifestBuilder::oci_index(&[child.descriptor()])
        .field("artifactType", json!("application/vnd.example.bundle"))
        .subject(&subject.descriptor())
        .build();
    let resp = app.push_manifest("ns/repo", &index.digest(), &index).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "oci-subject"), subject.digest());

    let resp = app
        .send(app.get(&format!("/v2/ns/repo/referrers/{}", subject.digest())))
        .await;
    let entries = referrers(resp).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["mediaType"], OCI_INDEX);
    assert_eq!(entries[0]["artifactType"], "application/vnd.example.bundle");
    assert_eq!(entries[0]["size"], index.body.len());
}

#[tokio::test]
async fn referrers_pushed_before_their_subject_are_listed() {
    let app = TestApp::spawn().await;
    let config = app
        .push_blob_as("ns/repo", b"{\"later\":1}", OCI_CONFIG)
        .await;
    let layer = app.push_blob("ns/repo", b"later layer").await;
    let subject = ManifestBuilder::oci_image(&config, &[layer]).build();

    app.push_blob_as("ns/repo", b"{}", OCI_EMPTY).await;
    let note = app.push_blob("ns/repo", b"note").await;
    let referrer = ManifestBuilder::artifact("application/vnd.example.note", &[note])
        .subject(&subject.descriptor())
        .build();
    app.push_manifest_ok("ns/repo", &referrer.digest(), &referrer)
        .await;
    app.push_manifest_ok("ns/repo", "v1", &subject).await;

    let resp = app
        .send(app.get(&format!("/v2/ns/repo/referrers/{}", subject.digest())))
        .await;
    let entries = referrers(resp).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], referrer.digest());
}

#[tokio::test]
async fn a_deleted_referrer_is_no_longer_listed() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "ns/repo").await;
    let resp = app
        .send(app.delete(&format!("/v2/ns/repo/manifests/{}", f.sbom.digest())))
        .await;
    assert_eq!(resp.status(), 202);
    let resp = app
        .send(app.get(&format!("/v2/ns/repo/referrers/{}", f.subject.digest())))
        .await;
    let entries = referrers(resp).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], f.signature.digest());
}

#[tokio::test]
async fn referrers_of_another_repository_are_not_listed() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "team/a").await;
    app.push_image("team/b", "v1", 5).await;
    let resp = app
        .send(app.get(&format!("/v2/team/b/referrers/{}", f.subject.digest())))
        .await;
    assert!(referrers(resp).await.is_empty());
}

#[tokio::test]
async fn head_on_referrers_has_no_body() {
    let app = TestApp::spawn().await;
    let f = fixture(&app, "ns/repo").await;
    let resp = app
        .send(app.head(&format!("/v2/ns/repo/referrers/{}", f.subject.digest())))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), OCI_INDEX);
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn an_invalid_digest_is_digest_invalid() {
    let app = TestApp::spawn().await;
    for digest in [
        "latest",
        "sha256:abc",
        "sha256:",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
    ] {
        let resp = app
            .send(app.get(&format!("/v2/ns/repo/referrers/{digest}")))
            .await;
        assert_error(resp, 400, "DIGEST_INVALID").await;
    }
}

#[tokio::test]
async fn referrers_refuse_other_methods() {
    let app = TestApp::spawn().await;
    let path = format!("/v2/ns/repo/referrers/{}", sha256(b"x"));
    for method in [
        reqwest::Method::PUT,
        reqwest::Method::POST,
        reqwest::Method::DELETE,
    ] {
        let resp = app.send(app.request(method, &path)).await;
        assert_error(resp, 405, "UNSUPPORTED").await;
    }
}
