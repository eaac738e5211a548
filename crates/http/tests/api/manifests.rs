//! `/v2/<name>/manifests/<reference>`: PUT (by tag, by digest, `?tag=`), GET, HEAD, DELETE.

use crate::support::{
    assert_error, assert_head_error, bytes, header, json_body, maybe_header, sha256, sha512,
    Descriptor, Manifest, ManifestBuilder, TestApp, DOCKER_CONFIG, DOCKER_LAYER,
    DOCKER_SCHEMA1_SIGNED, OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_MANIFEST,
};
use serde_json::json;

/// Pushes a config and a layer to `repo` and builds an OCI image manifest over them.
async fn oci_image(app: &TestApp, repo: &str, seed: u8) -> Manifest {
    let config = app
        .push_blob_as(repo, format!("{{\"seed\":{seed}}}").as_bytes(), OCI_CONFIG)
        .await;
    let layer = app.push_blob(repo, &bytes(seed, 128)).await;
    ManifestBuilder::oci_image(&config, &[layer]).build()
}

/// Asserts GET and HEAD by `reference` serve `m` byte for byte with its media type.
async fn assert_served(app: &TestApp, repo: &str, reference: &str, m: &Manifest) {
    let path = format!("/v2/{repo}/manifests/{reference}");
    let resp = app.send(app.get(&path)).await;
    assert_eq!(resp.status(), 200, "GET {path}");
    assert_eq!(header(&resp, "content-type"), m.media_type);
    assert_eq!(header(&resp, "docker-content-digest"), m.digest());
    assert_eq!(header(&resp, "content-length"), m.body.len().to_string());
    assert_eq!(resp.bytes().await.unwrap(), m.body, "GET {path}");

    let resp = app.send(app.head(&path)).await;
    assert_eq!(resp.status(), 200, "HEAD {path}");
    assert_eq!(header(&resp, "content-type"), m.media_type);
    assert_eq!(header(&resp, "docker-content-digest"), m.digest());
    assert_eq!(header(&resp, "content-length"), m.body.len().to_string());
    assert!(resp.bytes().await.unwrap().is_empty());
}

async fn tags_of(app: &TestApp, repo: &str) -> Vec<String> {
    let resp = app.send(app.get(&format!("/v2/{repo}/tags/list"))).await;
    assert_eq!(resp.status(), 200);
    let body = json_body(resp).await;
    serde_json::from_value(body["tags"].clone()).unwrap()
}

#[tokio::test]
async fn put_by_tag_answers_201_with_location_and_digest() {
    let app = TestApp::spawn().await;
    let m = oci_image(&app, "library/app", 1).await;
    let resp = app.push_manifest("library/app", "v1", &m).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/library/app/manifests/{}", m.digest())
    );
    assert_eq!(header(&resp, "docker-content-digest"), m.digest());
    assert_eq!(header(&resp, "content-length"), "0");
    assert_eq!(maybe_header(&resp, "oci-subject"), None);

    assert_served(&app, "library/app", "v1", &m).await;
    assert_served(&app, "library/app", &m.digest(), &m).await;
    assert_eq!(tags_of(&app, "library/app").await, ["v1"]);
}

#[tokio::test]
async fn put_by_digest_stores_an_untagged_manifest() {
    let app = TestApp::spawn().await;
    let m = oci_image(&app, "ns/repo", 2).await;
    let resp = app.push_manifest("ns/repo", &m.digest(), &m).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(
        header(&resp, "location"),
        format!("/v2/ns/repo/manifests/{}", m.digest())
    );
    assert_served(&app, "ns/repo", &m.digest(), &m).await;
    assert!(tags_of(&app, "ns/repo").await.is_empty());
}

#[tokio::test]
async fn put_by_sha512_digest_is_served_by_that_digest() {
    let app = TestApp::spawn().await;
    let m = oci_image(&app, "ns/repo", 3).await;
    let digest = sha512(&m.body);
    let resp = app.push_manifest("ns/repo", &digest, &m).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    let resp = app
        .send(app.get(&format!("/v2/ns/repo/manifests/{digest}")))
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "docker-content-digest"), digest);
    assert_eq!(resp.bytes().await.unwrap(), m.body);
}

#[tokio::test]
async fn put_by_a_digest_that_does_not_match_is_digest_invalid() {
    let app = TestApp::spawn().await;
    let m = oci_image(&app, "ns/repo", 4).await;
    let wrong = sha256(b"some other manifest");
    let resp = app.push_manifest("ns/repo", &wrong, &m).await;
    assert_error(resp, 400, "DIGEST_INVALID").await;
    for reference in [wrong, m.digest()] {
        let resp = app
            .send(app.get(&format!("/v2/ns/repo/manifests/{reference}")))
            .await;
        assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
}

#[tokio::test]
async fn every_manifest_format_round_trips_byte_for_byte() {
    let app = TestApp::spawn().await;
    let repo = "formats";
    let oci = oci_image(&app, repo, 5).await;

    let docker_config = app
        .push_blob_as(repo, br#"{"os":"linux"}"#, DOCKER_CONFIG)
        .await;
    let docker_layer = app.push_blob_as(repo, &bytes(6, 99), DOCKER_LAYER).await;
    let docker = ManifestBuilder::docker_image(&docker_config, &[docker_layer]).build();

    app.push_blob_as(repo, b"{}", OCI_EMPTY).await;
    let payload = app
        .push_blob_as(repo, b"artifact payload", "text/plain")
        .await;
    let artifact = ManifestBuilder::artifact("application/vnd.example.thing", &[payload]).build();

    // Children of an index must be pushed first.
    app.push_manifest_ok(repo, &oci.digest(), &oci).await;
    app.push_manifest_ok(repo, &docker.digest(), &docker).await;
    let index = ManifestBuilder::oci_index(&[oci.descriptor(), docker.descriptor()])
        .annotation("org.opencontainers.image.ref.name", "multi")
        .build();
    let list = ManifestBuilder::docker_list(&[docker.descriptor()]).build();

    for (tag, m) in [
        ("oci", &oci),
        ("docker", &docker),
        ("artifact", &artifact),
        ("index", &index),
        ("list", &list),
    ] {
        app.push_manifest_ok(repo, tag, m).await;
        assert_served(&app, repo, tag, m).await;
        assert_served(&app, repo, &m.digest(), m).await;
    }
}

#[tokio::test]
async fn the_manifest_body_is_not_reformatted() {
    let app = TestApp::spawn().await;
    let config = app.push_blob_as("ns/repo", b"{}", OCI_CONFIG).await;
    // Odd spacing, key order and a trailing newline must all survive.
    let body = format!(
        "{{ \"layers\" : [],\n\t\"config\":{},  \"schemaVersion\" :2 ,\"mediaType\":\"{OCI_MANIFEST}\"}}\n",
        config.json()
    );
    let m = Manifest::raw(OCI_MANIFEST, body);
    app.push_manifest_ok("ns/repo", "odd", &m).await;
    assert_served(&app, "ns/repo", "odd", &m).await;
}

#[tokio::test]
async fn tag_query_parameters_add_tags_to_a_push_by_digest() {
    let app = TestApp::spawn().await;
    let m = oci_image(&app, "ns/repo", 7).await;
    let resp = app
        .send(
            app.put(&format!(
                "/v2/ns/repo/manifests/{}?tag=v1&tag=v1.0&tag=latest",
                m.digest()
            ))
            .header("content-type", OCI_MANIFEST)
            .body(m.body.clone()),
        )
        .await;
    assert_eq!(resp.status(), 201);
    assert_eq!(tags_of(&app, "ns/repo").await, ["latest", "v1", "v1.0"]);
    for tag in ["v1", "v1.0", "latest"] {
        assert_served(&app, "ns/repo", tag, &m).await;
    }
}

#[tokio::test]
async fn an_invalid_tag_query_parameter_is_tag_invalid() {
    let app = TestApp::spawn().await;
    let m = oci_image(&app, "ns/repo", 8).await;
    let put = app
        .put(&format!("/v2/ns/repo/manifests/{}?tag=-bad", m.digest()))
        .header("content-type", OCI_MANIFEST)
        .body(m.body.clone());
    assert_error(app.send(put).await, 400, "TAG_INVALID").await;
    let resp = app
        .send(app.get(&format!("/v2/ns/repo/manifests/{}", m.digest())))
        .await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

/// The OCI conformance suite's "nonexistent manifest" is `.INVALID_MANIFEST_NAME`: a name
/// that cannot be a tag names nothing stored, so reading or deleting it is a 404, as on
/// Distribution; only a push is told that the tag is invalid.
#[tokio::test]
async fn a_reference_that_cannot_be_a_tag_is_an_unknown_manifest_except_to_a_push() {
    let app = TestApp::spawn().await;
    let m = app.push_image("ns/repo", "latest", 11).await;
    for reference in [".INVALID_MANIFEST_NAME", "-bad", &"x".repeat(129)] {
        let path = format!("/v2/ns/repo/manifests/{reference}");
        let error = assert_error(app.send(app.get(&path)).await, 404, "MANIFEST_UNKNOWN").await;
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains(&reference[..10.min(reference.len())]),
            "{error}"
        );
        assert_head_error(app.send(app.head(&path)).await, 404).await;
        assert_error(app.send(app.delete(&path)).await, 404, "MANIFEST_UNKNOWN").await;
        let put = app
            .put(&path)
            .header("content-type", OCI_MANIFEST)
            .body(m.body.clone());
        assert_error(app.send(put).await, 400, "TAG_INVALID").await;
    }
    // The same in a repository that does not exist: still nothing by that name.
    let resp = app
        .send(app.get("/v2/ns/missing/manifests/.INVALID_MANIFEST_NAME"))
        .await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    assert_served(&app, "ns/repo", "latest", &m).await;
}

#[tokio::test]
async fn pushing_a_tag_again_moves_it() {
    let app = TestApp::spawn().await;
    let first = app.push_image("ns/repo", "latest", 9).await;
    let second = app.push_image("ns/repo", "latest", 10).await;
    assert_served(&app, "ns/repo", "latest", &second).await;
    assert_served(&app, "ns/repo", &first.digest(), &first).await;
    assert_eq!(tags_of(&app, "ns/repo").await, ["latest"]);
}

#[tokio::test]
async fn missing_layers_and_configs_are_manifest_blob_unknown() {
    let app = TestApp::spawn().await;
    let config = app.push_blob_as("ns/repo", b"{}", OCI_CONFIG).await;
    let layer = app.push_blob("ns/repo", b"layer").await;
    let absent = Descriptor::of(OCI_CONFIG, b"never pushed");

    let missing_layer = ManifestBuilder::oci_image(
        &config,
        &[layer.clone(), Descriptor::of(OCI_CONFIG, b"nope")],
    )
    .build();
    let missing_config = ManifestBuilder::oci_image(&absent, &[layer]).build();
    // A layer of another repository does not count.
    let elsewhere = app.push_blob("other", b"other layer").await;
    let foreign_layer = ManifestBuilder::oci_image(&config, &[elsewhere]).build();

    for m in [missing_layer, missing_config, foreign_layer] {
        let resp = app.push_manifest("ns/repo", "broken", &m).await;
        assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
        let resp = app
            .send(app.get(&format!("/v2/ns/repo/manifests/{}", m.digest())))
            .await;
        assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    }
    assert!(tags_of(&app, "ns/repo").await.is_empty());
}

#[tokio::test]
async fn an_index_with_a_missing_child_is_manifest_blob_unknown() {
    let app = TestApp::spawn().await;
    let present = app.push_image("ns/repo", "present", 11).await;
    let absent = oci_image(&app, "ns/repo", 12).await; // never pushed as a manifest
    let index = ManifestBuilder::oci_index(&[present.descriptor(), absent.descriptor()]).build();
    let resp = app.push_manifest("ns/repo", "multi", &index).await;
    assert_error(resp, 400, "MANIFEST_BLOB_UNKNOWN").await;
    let resp = app.send(app.get("/v2/ns/repo/manifests/multi")).await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn a_missing_subject_is_allowed_and_reported_in_oci_subject() {
    let app = TestApp::spawn().await;
    app.push_blob_as("ns/repo", b"{}", OCI_EMPTY).await;
    let payload = app.push_blob("ns/repo", b"signature").await;
    let subject = Descriptor::of(OCI_MANIFEST, b"a manifest pushed later or never");
    let m = ManifestBuilder::artifact("application/vnd.example.sig", &[payload])
        .subject(&subject)
        .build();
    let resp = app.push_manifest("ns/repo", &m.digest(), &m).await;
    assert_eq!(resp.status(), 201);
    assert_eq!(header(&resp, "oci-subject"), subject.digest);
    assert_served(&app, "ns/repo", &m.digest(), &m).await;
}

#[tokio::test]
async fn schema1_manifests_are_refused_as_unsupported() {
    let app = TestApp::spawn().await;
    let schema1 = r#"{"schemaVersion":1,"name":"ns/repo","tag":"old","architecture":"amd64","fsLayers":[],"history":[]}"#;
    for content_type in [
        DOCKER_SCHEMA1_SIGNED,
        "application/vnd.docker.distribution.manifest.v1+json",
        "application/json",
    ] {
        let m = Manifest::raw(content_type, schema1);
        let error = assert_error(
            app.push_manifest("ns/repo", "old", &m).await,
            400,
            "UNSUPPORTED",
        )
        .await;
        let message = error["message"].as_str().unwrap().to_lowercase();
        assert!(message.contains("schema 1"), "{message}");
    }
}

#[tokio::test]
async fn a_content_type_that_contradicts_the_media_type_is_manifest_invalid() {
    let app = TestApp::spawn().await;
    let m = oci_image(&app, "ns/repo", 13).await;
    let pushed_as_docker = Manifest::raw(
        "application/vnd.docker.distribution.manifest.v2+json",
        m.body.clone(),
    );
    let resp = app.push_manifest("ns/repo", "x", &pushed_as_docker).await;
    assert_error(resp, 400, "MANIFEST_INVALID").await;
    let pushed_as_index = Manifest::raw(OCI_INDEX, m.body.clone());
    let resp = app.push_manifest("ns/repo", "x", &pushed_as_index).await;
    assert_error(resp, 400, "MANIFEST_INVALID").await;
}

#[tokio::test]
async fn malformed_manifests_are_manifest_invalid() {
    let app = TestApp::spawn().await;
    let config = app.push_blob_as("ns/repo", b"{}", OCI_CONFIG).await;
    let cases = [
        "not json at all".to_owned(),
        "{\"schemaVersion\":2,".to_owned(),
        String::new(),
        json!({ "schemaVersion": 3, "mediaType": OCI_MANIFEST, "config": config.json(), "layers": [] })
            .to_string(),
        json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "layers": [] }).to_string(),
        json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": { "digest": "sha256:abc" }, "layers": [] })
            .to_string(),
        json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config.json(), "layers": {} })
            .to_string(),
        json!({ "schemaVersion": 2, "mediaType": "application/vnd.example.unknown", "config": config.json() })
            .to_string(),
        json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "config": config.json(), "manifests": [] })
            .to_string(),
    ];
    for body in cases {
        let media_type = if body.contains("vnd.example.unknown") {
            "application/vnd.example.unknown"
        } else if body.contains(OCI_INDEX) {
            OCI_INDEX
        } else {
            OCI_MANIFEST
        };
        let m = Manifest::raw(media_type, body);
        let resp = app.push_manifest("ns/repo", "bad", &m).await;
        assert_error(resp, 400, "MANIFEST_INVALID").await;
    }
    let resp = app.send(app.get("/v2/ns/repo/manifests/bad")).await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn a_manifest_over_4_mib_is_413() {
    let app = TestApp::spawn().await;
    let config = app.push_blob_as("ns/repo", b"{}", OCI_CONFIG).await;
    let padding = "x".repeat(4 * 1024 * 1024);
    let m = ManifestBuilder::oci_image(&config, &[])
        .annotation("padding", &padding)
        .build();
    assert!(m.body.len() > 4 * 1024 * 1024);
    let resp = app.push_manifest("ns/repo", "huge", &m).await;
    assert_error(resp, 413, "SIZE_INVALID").await;

    // The same without a Content-Length: the limit holds for a streamed body too.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        m.body.chunks(64 * 1024).map(|c| Ok(c.to_vec())).collect();
    let put = app
        .put("/v2/ns/repo/manifests/huge")
        .header("content-type", OCI_MANIFEST)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )));
    assert_error(app.send(put).await, 413, "SIZE_INVALID").await;

    let resp = app.send(app.get("/v2/ns/repo/manifests/huge")).await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn a_manifest_just_under_the_limit_is_accepted() {
    let app = TestApp::spawn().await;
    let config = app.push_blob_as("ns/repo", b"{}", OCI_CONFIG).await;
    let empty = ManifestBuilder::oci_image(&config, &[])
        .annotation("padding", "")
        .build();
    let room = 4 * 1024 * 1024 - empty.body.len();
    let m = ManifestBuilder::oci_image(&config, &[])
        .annotation("padding", &"y".repeat(room))
        .build();
    assert_eq!(m.body.len(), 4 * 1024 * 1024);
    app.push_manifest_ok("ns/repo", "big", &m).await;
    assert_served(&app, "ns/repo", "big", &m).await;
}

#[tokio::test]
async fn delete_by_tag_removes_only_the_tag() {
    let app = TestApp::spawn().await;
    let m = app.push_image("ns/repo", "v1", 14).await;
    app.push_manifest_ok("ns/repo", "v2", &m).await;

    let resp = app.send(app.delete("/v2/ns/repo/manifests/v1")).await;
    assert_eq!(resp.status(), 202);

    let resp = app.send(app.get("/v2/ns/repo/manifests/v1")).await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    assert_served(&app, "ns/repo", &m.digest(), &m).await;
    assert_served(&app, "ns/repo", "v2", &m).await;
    assert_eq!(tags_of(&app, "ns/repo").await, ["v2"]);
}

#[tokio::test]
async fn delete_by_digest_removes_the_manifest_and_its_tags() {
    let app = TestApp::spawn().await;
    let m = app.push_image("ns/repo", "v1", 15).await;
    app.push_manifest_ok("ns/repo", "v2", &m).await;
    let keep = app.push_image("ns/repo", "other", 16).await;

    let resp = app
        .send(app.delete(&format!("/v2/ns/repo/manifests/{}", m.digest())))
        .await;
    assert_eq!(resp.status(), 202);

    for reference in [m.digest(), "v1".to_owned(), "v2".to_owned()] {
        let path = format!("/v2/ns/repo/manifests/{reference}");
        assert_error(app.send(app.get(&path)).await, 404, "MANIFEST_UNKNOWN").await;
        assert_head_error(app.send(app.head(&path)).await, 404).await;
    }
    assert_eq!(tags_of(&app, "ns/repo").await, ["other"]);
    assert_served(&app, "ns/repo", "other", &keep).await;
}

#[tokio::test]
async fn delete_of_something_unknown_is_404() {
    let app = TestApp::spawn().await;
    app.push_image("ns/repo", "v1", 17).await;
    let resp = app.send(app.delete("/v2/ns/repo/manifests/nope")).await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    let resp = app
        .send(app.delete(&format!("/v2/ns/repo/manifests/{}", sha256(b"x"))))
        .await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    let resp = app.send(app.delete("/v2/no-such-repo/manifests/v1")).await;
    assert_error(resp, 404, "NAME_UNKNOWN").await;
}

#[tokio::test]
async fn unknown_repository_and_unknown_reference_are_told_apart() {
    let app = TestApp::spawn().await;
    app.push_image("known", "v1", 18).await;
    let unknown_digest = sha256(b"unknown manifest");

    for reference in ["v1", unknown_digest.as_str()] {
        let path = format!("/v2/unknown/manifests/{reference}");
        assert_error(app.send(app.get(&path)).await, 404, "NAME_UNKNOWN").await;
        assert_head_error(app.send(app.head(&path)).await, 404).await;
    }
    for reference in ["v2", unknown_digest.as_str()] {
        let path = format!("/v2/known/manifests/{reference}");
        assert_error(app.send(app.get(&path)).await, 404, "MANIFEST_UNKNOWN").await;
        assert_head_error(app.send(app.head(&path)).await, 404).await;
    }
}

#[tokio::test]
async fn a_manifest_is_only_visible_in_its_repository() {
    let app = TestApp::spawn().await;
    let m = app.push_image("team/a", "v1", 19).await;
    app.push_image("team/b", "v1", 20).await;
    let resp = app
        .send(app.get(&format!("/v2/team/b/manifests/{}", m.digest())))
        .await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
}

#[tokio::test]
async fn manifests_refuse_other_methods() {
    let app = TestApp::spawn().await;
    for method in [reqwest::Method::POST, reqwest::Method::PATCH] {
        let resp = app
            .send(app.request(method, "/v2/ns/repo/manifests/v1"))
            .await;
        assert_error(resp, 405, "UNSUPPORTED").await;
    }
}

#[tokio::test]
async fn non_distributable_layers_need_not_be_pushed() {
    let app = TestApp::spawn().await;
    let config = app.push_blob_as("ns/repo", b"{}", OCI_CONFIG).await;
    let foreign = Descriptor::of(
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
        b"lives elsewhere",
    );
    let m = ManifestBuilder::oci_image(&config, &[foreign]).build();
    app.push_manifest_ok("ns/repo", "windows", &m).await;
    assert_served(&app, "ns/repo", "windows", &m).await;
}
