//! What the server does with requests that are wrong: invalid names, digests and tags,
//! unknown endpoints and methods, bodies that end early, and random input.

use crate::support::{assert_error, bytes, header, sha256, with_query, TestApp};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestCaseError, TestRunner};
use reqwest::Method;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn invalid_repository_names_are_name_invalid() {
    let app = TestApp::spawn().await;
    let digest = sha256(b"x");
    let long = "a".repeat(256);
    for name in [
        "UPPER",
        "a..b",
        "-a",
        "a-",
        "a___b",
        "team/App",
        long.as_str(),
        "a/.b",
    ] {
        for path in [
            format!("/v2/{name}/tags/list"),
            format!("/v2/{name}/manifests/latest"),
            format!("/v2/{name}/blobs/{digest}"),
            format!("/v2/{name}/blobs/uploads/"),
            format!("/v2/{name}/referrers/{digest}"),
        ] {
            let method = if path.ends_with("/uploads/") {
                Method::POST
            } else {
                Method::GET
            };
            let resp = app.send(app.request(method, &path)).await;
            assert_error(resp, 400, "NAME_INVALID").await;
        }
    }
}

#[tokio::test]
async fn the_longest_valid_name_is_accepted() {
    let app = TestApp::spawn().await;
    let name = format!("{}/{}", "a".repeat(127), "b".repeat(127));
    assert_eq!(name.len(), 255);
    let blob = app.push_blob(&name, b"long name").await;
    let resp = app
        .send(app.get(&format!("/v2/{name}/blobs/{}", blob.digest)))
        .await;
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn invalid_digests_are_digest_invalid() {
    let app = TestApp::spawn().await;
    app.push_blob("ns/repo", b"x").await;
    let upper = sha256(b"x").to_uppercase().replace("SHA256", "sha256");
    for digest in [
        "sha256:abc",
        "sha256:",
        "notadigest",
        "md5:d41d8cd98f00b204e9800998ecf8427e",
        upper.as_str(),
        "sha512:abcd",
    ] {
        for path in [
            format!("/v2/ns/repo/blobs/{digest}"),
            format!("/v2/ns/repo/referrers/{digest}"),
        ] {
            assert_error(app.send(app.get(&path)).await, 400, "DIGEST_INVALID").await;
        }
        if digest.contains(':') {
            // With a colon the reference is a digest, not a tag.
            let path = format!("/v2/ns/repo/manifests/{digest}");
            assert_error(app.send(app.get(&path)).await, 400, "DIGEST_INVALID").await;
        }
    }
}

#[tokio::test]
async fn invalid_tags_are_tag_invalid_to_a_push_and_unknown_to_a_read() {
    let app = TestApp::spawn().await;
    let image = app.push_image("ns/repo", "v1", 1).await;
    let long = "t".repeat(129);
    for tag in ["-bad", ".bad", long.as_str(), "a%20b", "caf%C3%A9"] {
        let path = format!("/v2/ns/repo/manifests/{tag}");
        assert_error(app.send(app.get(&path)).await, 404, "MANIFEST_UNKNOWN").await;
        let resp = app.push_manifest("ns/repo", tag, &image).await;
        assert_error(resp, 400, "TAG_INVALID").await;
    }
    // 128 characters is fine.
    app.push_manifest_ok("ns/repo", &"t".repeat(128), &image)
        .await;
}

#[tokio::test]
async fn unknown_endpoints_are_404() {
    let app = TestApp::spawn().await;
    app.push_image("ns/repo", "v1", 2).await;
    for path in [
        "/v2/repo",
        "/v2/ns/repo/unknown/x",
        "/v2/ns/repo/tags",
        "/v2/ns/repo/tags/list/extra",
        "/v2/tags/list",
        "/v2/ns/repo/manifest/v1",
        "/v2/_catalog/x",
    ] {
        let resp = app.send(app.get(path)).await;
        assert_eq!(resp.status(), 404, "{path}");
        assert_eq!(
            header(&resp, "docker-distribution-api-version"),
            "registry/2.0"
        );
        let body: serde_json::Value = resp.json().await.expect("a JSON error body");
        assert!(body["errors"][0]["code"].is_string(), "{path}: {body}");
    }
    // `/` is the web UI's start page.
    for path in ["/v1/", "/v20/", "/nope"] {
        let resp = app.send(app.get(path)).await;
        assert_eq!(resp.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn wrong_methods_are_405_unsupported() {
    let app = TestApp::spawn().await;
    let image = app.push_image("ns/repo", "v1", 3).await;
    let location = app.start_upload("ns/repo").await;
    let digest = image.digest();
    for (method, path) in [
        (Method::PATCH, "/v2/".to_owned()),
        (Method::DELETE, "/v2/_catalog".to_owned()),
        (Method::PATCH, "/v2/ns/repo/tags/list".to_owned()),
        (Method::POST, "/v2/ns/repo/manifests/v1".to_owned()),
        (Method::PATCH, format!("/v2/ns/repo/blobs/{digest}")),
        (Method::GET, "/v2/ns/repo/blobs/uploads/".to_owned()),
        (Method::HEAD, "/v2/ns/repo/blobs/uploads/".to_owned()),
        (Method::POST, location),
        (Method::PUT, format!("/v2/ns/repo/referrers/{digest}")),
        (Method::OPTIONS, "/v2/ns/repo/manifests/v1".to_owned()),
        (Method::from_bytes(b"BREW").unwrap(), "/v2/".to_owned()),
    ] {
        let resp = app.send(app.request(method.clone(), &path)).await;
        if method == Method::HEAD {
            assert_eq!(resp.status(), 405, "{method} {path}");
        } else {
            assert_error(resp, 405, "UNSUPPORTED").await;
        }
    }
    // Nothing was changed by the refused requests.
    let resp = app.send(app.get("/v2/ns/repo/manifests/v1")).await;
    assert_eq!(resp.status(), 200);
}

/// Splits a raw HTTP/1.1 exchange into its first response's head and what follows it.
fn split_head(raw: &[u8]) -> (String, &[u8]) {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a complete response head");
    (
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        &raw[end + 4..],
    )
}

/// HEAD, then GET /v2/ on the same connection: if the HEAD response carried a body, the
/// second response would not start right after its head.
#[tokio::test]
async fn head_error_responses_have_no_body_on_the_wire() {
    let app = TestApp::spawn().await;
    app.push_image("ns/repo", "v1", 4).await;
    let digest = sha256(b"absent");
    for (path, status) in [
        (format!("/v2/ns/repo/blobs/{digest}"), "404"),
        (format!("/v2/ns/repo/manifests/{digest}"), "404"),
        ("/v2/ns/repo/manifests/nope".to_owned(), "404"),
        ("/v2/other/manifests/v1".to_owned(), "404"),
        ("/v2/UPPER/manifests/v1".to_owned(), "400"),
        ("/v2/ns/repo/blobs/sha256:bad".to_owned(), "400"),
        ("/v2/ns/repo/blobs/uploads/".to_owned(), "405"),
        ("/v2/ns/repo/tags/list?n=x".to_owned(), "400"),
        ("/v2/nowhere".to_owned(), "404"),
    ] {
        let request = format!(
            "HEAD {path} HTTP/1.1\r\nHost: test\r\n\r\n\
             GET /v2/ HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        );
        let raw = app.raw_exchange(request.as_bytes()).await;
        let (head, rest) = split_head(&raw);
        assert!(
            head.starts_with(&format!("HTTP/1.1 {status}")),
            "HEAD {path}: {head}"
        );
        assert!(
            rest.starts_with(b"HTTP/1.1 200"),
            "HEAD {path} sent a body: {:?}",
            String::from_utf8_lossy(rest)
        );
    }
}

#[tokio::test]
async fn errors_carry_the_api_version_header() {
    let app = TestApp::spawn().await;
    for path in ["/v2/UPPER/tags/list", "/v2/ns/repo/tags/list", "/v2/a/b"] {
        let resp = app.send(app.get(path)).await;
        assert!(resp.status().is_client_error());
        assert_eq!(
            header(&resp, "docker-distribution-api-version"),
            "registry/2.0"
        );
    }
}

/// Sends a PATCH that promises `promised` bytes, sends `sent` of them and hangs up.
async fn aborted_patch(app: &TestApp, location: &str, promised: usize, sent: &[u8]) {
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: test\r\nContent-Type: application/octet-stream\r\n\
         Content-Length: {promised}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream.flush().await.unwrap();
    // Let the server start on the body before the connection goes away.
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    // Give it time to notice and roll back.
    tokio::time::sleep(Duration::from_millis(300)).await;
}

#[tokio::test]
async fn a_truncated_chunk_leaves_the_session_at_its_old_size() {
    let app = TestApp::spawn().await;
    let content = bytes(7, 3000);
    let location = app.start_upload("ns/repo").await;
    let first = app
        .patch(&location)
        .header("content-range", "0-999")
        .body(content[..1000].to_vec());
    assert_eq!(app.send(first).await.status(), 202);

    aborted_patch(&app, &location, 2000, &[0xAA; 700]).await;
    assert_eq!(app.upload_range(&location).await, "0-999");

    // A second abort, this time with a Content-Range, changes nothing either.
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "PATCH {location} HTTP/1.1\r\nHost: test\r\nContent-Range: 1000-2999\r\n\
         Content-Length: 2000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&[0xBB; 10]).await.unwrap();
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(app.upload_range(&location).await, "0-999");

    // The upload continues where it stood and the blob has exactly the good bytes.
    let rest = app
        .patch(&location)
        .header("content-range", "1000-2999")
        .body(content[1000..].to_vec());
    let resp = app.send(rest).await;
    assert_eq!(resp.status(), 202);
    assert_eq!(header(&resp, "range"), "0-2999");
    let digest = sha256(&content);
    let resp = app
        .send(app.put(&with_query(&location, &format!("digest={digest}"))))
        .await;
    assert_eq!(resp.status(), 201);
    let resp = app
        .send(app.get(&format!("/v2/ns/repo/blobs/{digest}")))
        .await;
    assert_eq!(resp.bytes().await.unwrap(), content);
}

#[tokio::test]
async fn a_truncated_monolithic_upload_stores_nothing() {
    let app = TestApp::spawn().await;
    let content = bytes(8, 500);
    let digest = sha256(&content);
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "POST /v2/ns/repo/blobs/uploads/?digest={digest} HTTP/1.1\r\nHost: test\r\n\
         Content-Length: 500\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&content[..200]).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let resp = app
        .send(app.head(&format!("/v2/ns/repo/blobs/{digest}")))
        .await;
    assert_eq!(resp.status(), 404);
    // And the same push, complete, works.
    let post = app
        .post(&format!("/v2/ns/repo/blobs/uploads/?digest={digest}"))
        .body(content.clone());
    assert_eq!(app.send(post).await.status(), 201);
}

#[tokio::test]
async fn a_truncated_manifest_push_stores_nothing() {
    let app = TestApp::spawn().await;
    let image = app.push_image("ns/repo", "v1", 10).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = format!(
        "PUT /v2/ns/repo/manifests/v2 HTTP/1.1\r\nHost: test\r\n\
         Content-Type: application/vnd.oci.image.manifest.v1+json\r\n\
         Content-Length: {}\r\n\r\n",
        image.body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
        .write_all(&image.body[..image.body.len() / 2])
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;

    let resp = app.send(app.get("/v2/ns/repo/manifests/v2")).await;
    assert_error(resp, 404, "MANIFEST_UNKNOWN").await;
    let resp = app.send(app.get("/v2/ns/repo/tags/list")).await;
    let tags: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(tags["tags"], serde_json::json!(["v1"]));
}

#[tokio::test]
async fn oversized_paths_and_headers_are_refused_without_a_server_error() {
    let app = TestApp::spawn().await;
    // Longer than reqwest will send, so written by hand.
    let long_name = vec!["abc"; 20_000].join("/");
    let request = format!(
        "GET /v2/{long_name}/tags/list HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
    );
    let raw = app.raw_exchange(request.as_bytes()).await;
    let (head, _) = split_head(&raw);
    assert!(
        head.starts_with("HTTP/1.1 4"),
        "{}",
        &head[..head.len().min(200)]
    );

    // The server may refuse the header before reading all of it and reset the connection
    // under the client's feet; a transport error is fine, a 5xx is not.
    let sent = app
        .get("/v2/")
        .header("x-filler", "f".repeat(1 << 20))
        .send()
        .await;
    if let Ok(resp) = sent {
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }

    let resp = app.send(app.get("/v2/")).await;
    assert_eq!(resp.status(), 200);
}

// ---------------------------------------------------------------------------
// Random requests: whatever arrives, the server answers, and never with a 5xx.
// ---------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct RandomRequest {
    method: Method,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        Just(Method::GET),
        Just(Method::HEAD),
        Just(Method::PUT),
        Just(Method::POST),
        Just(Method::PATCH),
        Just(Method::DELETE),
        Just(Method::OPTIONS),
        Just(Method::from_bytes(b"MKCOL").unwrap()),
    ]
}

/// Path segments: endpoint words, names, references, digests and noise.
fn segment(known: Vec<String>) -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "blobs", "uploads", "manifests", "tags", "list", "referrers", "_catalog", "ns/repo",
            "library", "latest", "v1", "",
        ])
        .prop_map(str::to_owned),
        2 => prop::sample::select(known),
        2 => "[a-zA-Z0-9._:%~-]{0,24}",
        1 => "(sha256|sha512|md5|):[0-9a-fA-F]{0,130}",
        1 => "%[0-9A-Fa-f]{2}[a-z]{0,3}",
    ]
}

fn query() -> impl Strategy<Value = String> {
    let pair = prop_oneof![
        "(n|last|digest|mount|from|tag|artifactType)=[a-zA-Z0-9:._%+/-]{0,40}",
        "n=-?[0-9]{0,12}",
        Just(
            "digest=sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
                .to_owned()
        ),
        "[a-z&=%]{0,10}",
    ];
    prop::collection::vec(pair, 0..4).prop_map(|pairs| {
        if pairs.is_empty() {
            String::new()
        } else {
            format!("?{}", pairs.join("&"))
        }
    })
}

fn headers() -> impl Strategy<Value = Vec<(&'static str, String)>> {
    let header = prop_oneof![
        ("[0-9]{0,20}-[0-9]{0,20}(/[0-9*]{0,5})?").prop_map(|v| ("content-range", v)),
        ("(bytes=)?-?[0-9]{0,20}-?[0-9]{0,20}(,[0-9]{0,3}-)?").prop_map(|v| ("range", v)),
        prop::sample::select(vec![
            "application/vnd.oci.image.manifest.v1+json",
            "application/vnd.oci.image.index.v1+json",
            "application/vnd.docker.distribution.manifest.v2+json",
            "application/vnd.docker.distribution.manifest.v1+prettyjws",
            "application/json",
            "application/octet-stream",
            "text/plain; charset=utf-8",
        ])
        .prop_map(|v| ("content-type", v.to_owned())),
        "[ -~]{0,60}".prop_map(|v| ("content-type", v)),
        "[ -~]{0,30}".prop_map(|v| ("accept", v)),
    ];
    prop::collection::vec(header, 0..4)
}

fn body(manifest: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => Just(Vec::new()),
        2 => prop::collection::vec(any::<u8>(), 0..200),
        1 => Just(manifest),
        1 => Just(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec()),
        1 => Just(br#"{"schemaVersion":1}"#.to_vec()),
    ]
}

/// A path that names a real endpoint, with a name and reference that may or may not be valid.
fn endpoint_path(known: Vec<String>) -> impl Strategy<Value = String> {
    let name = prop_oneof![
        3 => Just("ns/repo".to_owned()),
        1 => Just("library/repo".to_owned()),
        1 => "[a-z0-9._/-]{1,20}",
        1 => "[ -~]{0,12}".prop_map(|s| s.replace(['?', '#', '/', ' '], "")),
    ];
    let reference = prop_oneof![
        prop::sample::select(known),
        segment(Vec::from(["x".into()]))
    ];
    let endpoint = prop::sample::select(vec![
        "blobs/",
        "blobs/uploads/",
        "manifests/",
        "referrers/",
        "tags/list",
    ]);
    (name, endpoint, reference).prop_map(|(name, endpoint, reference)| {
        if endpoint.ends_with('/') {
            format!("/v2/{name}/{endpoint}{reference}")
        } else {
            format!("/v2/{name}/{endpoint}")
        }
    })
}

/// Any path under `/v2/`, made of arbitrary segments.
fn any_path(known: Vec<String>) -> impl Strategy<Value = String> {
    (prop::collection::vec(segment(known), 0..7), prop::bool::ANY).prop_map(|(segments, slash)| {
        let mut path = format!("/v2/{}", segments.join("/"));
        if slash {
            path.push('/');
        }
        path
    })
}

fn random_request(known: Vec<String>, manifest: Vec<u8>) -> impl Strategy<Value = RandomRequest> {
    let path = prop_oneof![2 => endpoint_path(known.clone()), 1 => any_path(known)];
    (method(), path, query(), headers(), body(manifest)).prop_map(
        |(method, path, query, headers, body)| RandomRequest {
            method,
            path: format!("{path}{query}"),
            headers,
            body,
        },
    )
}

#[test]
fn random_requests_never_cause_a_server_error() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, known, manifest) = runtime.block_on(async {
        let app = TestApp::spawn().await;
        let image = app.push_image("ns/repo", "latest", 9).await;
        let location = app.start_upload("ns/repo").await;
        let id = location.rsplit('/').next().unwrap().to_owned();
        let known = vec![
            image.digest(),
            sha256(b"x"),
            id,
            "latest".to_owned(),
            "library/repo".to_owned(),
        ];
        (app, known, image.body)
    });

    let config = Config {
        cases: 512,
        failure_persistence: None,
        ..Config::default()
    };
    // How often each status came back (0: reqwest refused to send it), to check below that
    // the generator reaches the handlers rather than only the path parser.
    let seen = RefCell::new(BTreeMap::<u16, usize>::new());
    let mut runner = TestRunner::new(config);
    let result = runner.run(&random_request(known, manifest), |request| {
        let mut builder = app
            .request(request.method.clone(), &request.path)
            .body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let status = runtime.block_on(async {
            match builder.send().await {
                Ok(resp) => {
                    let status = resp.status();
                    // Read the whole body: a response that breaks off midway is a failure too.
                    resp.bytes()
                        .await
                        .map(|_| status.as_u16())
                        .map_err(|e| e.to_string())
                }
                Err(e) if e.is_builder() => Ok(0),
                Err(e) => Err(e.to_string()),
            }
        });
        match status {
            Ok(status) if status < 500 => {
                *seen.borrow_mut().entry(status).or_default() += 1;
                Ok(())
            }
            Ok(status) => Err(TestCaseError::fail(format!("{status} for {request:?}"))),
            Err(e) => Err(TestCaseError::fail(format!("{e} for {request:?}"))),
        }
    });
    if let Err(err) = result {
        panic!("{err}");
    }
    let seen = seen.into_inner();
    let count = |range: std::ops::Range<u16>| -> usize { seen.range(range).map(|(_, n)| n).sum() };
    assert!(count(200..300) > 0, "no request succeeded: {seen:?}");
    for status in [400, 404, 405] {
        assert!(seen.contains_key(&status), "no {status}: {seen:?}");
    }
    assert!(
        count(0..1) < 512 / 4,
        "most requests were never sent: {seen:?}"
    );

    // The server still works after all that.
    runtime.block_on(async {
        let resp = app.send(app.get("/v2/")).await;
        assert_eq!(resp.status(), 200);
    });
}
