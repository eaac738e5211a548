//! What a client can make the registry hold or serve: unknown upload ids, blobs over the
//! size limit, and the media type each repository was pushed with.

use crate::support::*;
use berth_core::registry::RegistryOptions;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE};
use reqwest::Method;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// `len` characters that look random and differ by `seed`.
fn bogus_id(seed: u32, len: usize) -> String {
    let hex = format!("{:08x}", seed.wrapping_mul(2_654_435_761));
    hex.chars().cycle().take(len).collect()
}

#[tokio::test]
async fn unknown_upload_ids_answer_404_on_every_method() {
    let app = TestApp::spawn().await;
    let real = app.start_upload("ns/repo").await;
    let ids = [
        bogus_id(1, 8192),
        bogus_id(2, 32), // the shape Berth issues, naming no session
        "not-an-upload".to_owned(),
        "...".to_owned(),
        real.rsplit('/').next().unwrap().to_uppercase(),
    ];
    let digest = sha256(b"x");
    for id in &ids {
        let location = format!("/v2/ns/repo/blobs/uploads/{id}");
        for method in [Method::GET, Method::PATCH, Method::PUT, Method::DELETE] {
            let path = match method {
                Method::PUT => with_query(&location, &format!("digest={digest}")),
                _ => location.clone(),
            };
            let resp = app.send(app.request(method.clone(), &path).body("x")).await;
            assert_error(resp, 404, "BLOB_UPLOAD_UNKNOWN").await;
        }
    }
    // A real session seen through another repository is unknown there too.
    let elsewhere = real.replace("/ns/repo/", "/ns/other/");
    assert_error(
        app.send(app.patch(&elsewhere).body("x")).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_eq!(
        app.registry.upload_slots(),
        1,
        "memory for the one real session only"
    );
    assert_eq!(app.upload_range(&real).await, "0-0");
}

#[tokio::test]
async fn bogus_upload_ids_keep_no_memory() {
    let app = std::sync::Arc::new(TestApp::spawn().await);
    let location = app.start_upload("ns/repo").await;
    app.send(app.patch(&location).body("live")).await;
    let workers = (0..8u32).map(|worker| {
        let app = app.clone();
        tokio::spawn(async move {
            // 2,000 over HTTP (the core's test sends 20,000 straight to the registry).
            for n in 0..250u32 {
                let seed = worker * 250 + n;
                let path = format!("/v2/ns/repo/blobs/uploads/{}", bogus_id(seed, 8192));
                let request = match seed % 3 {
                    0 => app.patch(&path).body("abc"),
                    1 => app.put(&with_query(&path, &format!("digest={}", sha256(b"")))),
                    _ => app.delete(&path),
                };
                let status = app.send(request).await.status();
                assert_eq!(status, 404, "bogus id {seed}");
            }
        })
    });
    for worker in workers {
        worker.await.unwrap();
    }
    assert_eq!(
        app.registry.upload_slots(),
        1,
        "only the one live session has memory on this node"
    );
    assert_eq!(app.upload_range(&location).await, "0-3");
}

fn limited(max_blob_size: u64) -> RegistryOptions {
    RegistryOptions {
        max_blob_size: Some(max_blob_size),
        ..RegistryOptions::default()
    }
}

#[tokio::test]
async fn blobs_over_max_blob_size_are_refused_with_size_invalid() {
    let app = TestApp::spawn_with(limited(1000)).await;
    let fits = bytes(1, 1000);
    let resp = app
        .send(
            app.post(&format!(
                "/v2/ns/repo/blobs/uploads/?digest={}",
                sha256(&fits)
            ))
            .body(fits.clone()),
        )
        .await;
    assert_eq!(
        resp.status(),
        201,
        "a blob of exactly the limit is accepted"
    );

    let over = bytes(2, 1001);
    let resp = app
        .send(
            app.post(&format!(
                "/v2/ns/repo/blobs/uploads/?digest={}",
                sha256(&over)
            ))
            .body(over.clone()),
        )
        .await;
    let error = assert_error(resp, 413, "SIZE_INVALID").await;
    assert!(
        error["message"].as_str().unwrap().contains("1000 bytes"),
        "{error}"
    );

    // A chunk whose Content-Range ends past the limit ends its session.
    let location = app.start_upload("ns/repo").await;
    let resp = app
        .send(
            app.patch(&location)
                .header(CONTENT_RANGE, "0-1000")
                .header(CONTENT_LENGTH, "1001")
                .body(over.clone()),
        )
        .await;
    assert_error(resp, 413, "SIZE_INVALID").await;
    assert_error(
        app.send(app.get(&location)).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;

    // A body of unknown length is stopped once it crosses the limit.
    let location = app.start_upload("ns/repo").await;
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> = (0..8).map(|i| Ok(bytes(i, 300))).collect();
    let resp = app
        .send(
            app.patch(&location)
                .header(CONTENT_TYPE, "application/octet-stream")
                .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                    chunks,
                ))),
        )
        .await;
    assert_error(resp, 413, "SIZE_INVALID").await;
    assert_error(
        app.send(app.get(&location)).await,
        404,
        "BLOB_UPLOAD_UNKNOWN",
    )
    .await;
    assert_eq!(app.upload_files(), 0, "nothing of the refused blobs stays");
}

#[tokio::test]
async fn a_declared_length_over_the_limit_is_refused_before_the_body_is_sent() {
    let app = TestApp::spawn_with(limited(1 << 20)).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    // Announces a gigabyte and sends 10 bytes: a server reading the body would wait forever.
    let head = format!(
        "POST /v2/ns/repo/blobs/uploads/?digest={} HTTP/1.1\r\nHost: x\r\n\
         Content-Length: 1073741824\r\nContent-Type: application/octet-stream\r\n\r\n0123456789",
        sha256(b"x")
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(10), async {
        while !response.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut buf).await.unwrap();
            if n == 0 {
                break;
            }
            response.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server answered without waiting for the body"
    );
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(app.upload_files(), 0);
}

#[tokio::test]
async fn each_repository_serves_the_media_type_pushed_to_it() {
    let app = TestApp::spawn().await;
    let mut digests = Vec::new();
    for repo in ["ns/oci", "ns/docker"] {
        let config = app.push_blob_as(repo, b"{}", OCI_CONFIG).await;
        let layer = app.push_blob(repo, &bytes(9, 64)).await;
        // No `mediaType` field: the Content-Type of the push is the only statement of type.
        let manifest = ManifestBuilder::oci_image(&config, &[layer]).build().body;
        let mut doc: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        doc.as_object_mut().unwrap().remove("mediaType");
        let body = serde_json::to_vec(&doc).unwrap();
        let media_type = match repo {
            "ns/oci" => OCI_MANIFEST,
            _ => DOCKER_MANIFEST,
        };
        app.push_manifest_ok(repo, "v1", &Manifest::raw(media_type, body.clone()))
            .await;
        digests.push(sha256(&body));
    }
    assert_eq!(
        digests[0], digests[1],
        "the same bytes in both repositories"
    );
    for (repo, media_type) in [("ns/oci", OCI_MANIFEST), ("ns/docker", DOCKER_MANIFEST)] {
        for reference in ["v1", digests[0].as_str()] {
            let path = format!("/v2/{repo}/manifests/{reference}");
            let resp = app.send(app.get(&path)).await;
            assert_eq!(resp.status(), 200);
            assert_eq!(header(&resp, "content-type"), media_type, "GET {path}");
            let resp = app.send(app.head(&path)).await;
            assert_eq!(header(&resp, "content-type"), media_type, "HEAD {path}");
        }
    }
    // A later push of the same bytes with another type is what the repository serves next.
    let body = app
        .send(app.get("/v2/ns/oci/manifests/v1"))
        .await
        .bytes()
        .await
        .unwrap();
    app.push_manifest_ok(
        "ns/oci",
        "v2",
        &Manifest::raw(DOCKER_MANIFEST, body.to_vec()),
    )
    .await;
    let resp = app.send(app.get("/v2/ns/oci/manifests/v1")).await;
    assert_eq!(header(&resp, "content-type"), DOCKER_MANIFEST);
}
