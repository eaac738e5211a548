//! The in-process registry every API test talks to, and helpers to build and push content.
//!
//! Each test spawns its own [`TestApp`]: a fresh data directory and database, the real router
//! served on a loopback port, and a `reqwest` client. Media types are spelled out here rather
//! than taken from the server's crates, so the tests check the wire format independently.

use berth_core::access::OpenAccess;
use berth_core::registry::RegistryOptions;
use berth_core::Registry;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Map, Value};
use sha2::{Digest as _, Sha512};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

pub use berth_testkit::images::{
    sha256, Descriptor, OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
};
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// `sha512:<hex>` of `bytes`.
pub fn sha512(bytes: &[u8]) -> String {
    format!("sha512:{}", hex::encode(Sha512::digest(bytes)))
}

/// `len` bytes that differ from test to test (by `seed`) and are not all the same value.
pub fn bytes(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 8) as u8)
        .collect()
}

/// `path` with `query` appended, whether or not it already has a query string.
pub fn with_query(path: &str, query: &str) -> String {
    let sep = if path.contains('?') { '&' } else { '?' };
    format!("{path}{sep}{query}")
}

/// A header as text; panics with the header name when it is missing.
pub fn header<'a>(resp: &'a Response, name: &str) -> &'a str {
    resp.headers()
        .get(name)
        .unwrap_or_else(|| panic!("no {name} header in {resp:?}"))
        .to_str()
        .expect("header is text")
}

/// A header as text, if present.
pub fn maybe_header<'a>(resp: &'a Response, name: &str) -> Option<&'a str> {
    resp.headers().get(name).map(|v| v.to_str().expect("text"))
}

/// Asserts an OCI error response: status, JSON error body, and the code of its first error.
/// Returns that first error object.
pub async fn assert_error(resp: Response, status: u16, code: &str) -> Value {
    let got = resp.status().as_u16();
    let content_type = maybe_header(&resp, "content-type").map(str::to_owned);
    let version = maybe_header(&resp, "docker-distribution-api-version").map(str::to_owned);
    let text = resp.text().await.expect("error body");
    assert_eq!(got, status, "status of error response {text}");
    assert_eq!(content_type.as_deref(), Some("application/json"), "{text}");
    assert_eq!(version.as_deref(), Some("registry/2.0"));
    let body: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let first = body["errors"][0].clone();
    assert_eq!(first["code"], code, "error body {text}");
    assert!(first["message"].is_string(), "{text}");
    first
}

/// Asserts a HEAD response that failed: the status, and no body.
pub async fn assert_head_error(resp: Response, status: u16) {
    assert_eq!(resp.status().as_u16(), status);
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert!(resp.bytes().await.expect("body").is_empty());
}

/// A manifest exactly as it goes over the wire: its media type and bytes.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub media_type: String,
    pub body: Vec<u8>,
}

impl Manifest {
    /// A manifest from raw bytes, for the malformed cases the builder cannot produce.
    pub fn raw(media_type: &str, body: impl Into<Vec<u8>>) -> Manifest {
        Manifest {
            media_type: media_type.to_owned(),
            body: body.into(),
        }
    }

    pub fn digest(&self) -> String {
        sha256(&self.body)
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor::of(&self.media_type, &self.body)
    }
}

/// Builds OCI and Docker manifests and indexes, serialized pretty-printed so that a server
/// which re-serialized them would be caught by the byte-for-byte comparisons.
#[derive(Debug, Clone)]
pub struct ManifestBuilder {
    media_type: String,
    doc: Map<String, Value>,
}

impl ManifestBuilder {
    fn new(media_type: &str) -> ManifestBuilder {
        let mut doc = Map::new();
        doc.insert("schemaVersion".into(), json!(2));
        doc.insert("mediaType".into(), json!(media_type));
        ManifestBuilder {
            media_type: media_type.to_owned(),
            doc,
        }
    }

    fn image(media_type: &str, config: &Descriptor, layers: &[Descriptor]) -> ManifestBuilder {
        ManifestBuilder::new(media_type)
            .field("config", config.json())
            .field("layers", layers.iter().map(Descriptor::json).collect())
    }

    fn list(media_type: &str, manifests: &[Descriptor]) -> ManifestBuilder {
        let entries = manifests
            .iter()
            .map(|d| {
                let mut entry = d.json();
                entry["platform"] = json!({ "architecture": "amd64", "os": "linux" });
                entry
            })
            .collect();
        ManifestBuilder::new(media_type).field("manifests", entries)
    }

    pub fn oci_image(config: &Descriptor, layers: &[Descriptor]) -> ManifestBuilder {
        ManifestBuilder::image(OCI_MANIFEST, config, layers)
    }

    pub fn docker_image(config: &Descriptor, layers: &[Descriptor]) -> ManifestBuilder {
        ManifestBuilder::image(DOCKER_MANIFEST, config, layers)
    }

    pub fn oci_index(manifests: &[Descriptor]) -> ManifestBuilder {
        ManifestBuilder::list(OCI_INDEX, manifests)
    }

    pub fn docker_list(manifests: &[Descriptor]) -> ManifestBuilder {
        ManifestBuilder::list(DOCKER_LIST, manifests)
    }

    /// An OCI artifact: the empty config (`{}` as `application/vnd.oci.empty.v1+json`) and
    /// an `artifactType`.
    pub fn artifact(artifact_type: &str, layers: &[Descriptor]) -> ManifestBuilder {
        ManifestBuilder::oci_image(&Descriptor::of(OCI_EMPTY, b"{}"), layers)
            .field("artifactType", json!(artifact_type))
    }

    pub fn subject(self, subject: &Descriptor) -> ManifestBuilder {
        self.field("subject", subject.json())
    }

    pub fn annotation(mut self, key: &str, value: &str) -> ManifestBuilder {
        let annotations = self.doc.entry("annotations").or_insert_with(|| json!({}));
        annotations[key] = json!(value);
        self
    }

    pub fn field(mut self, key: &str, value: Value) -> ManifestBuilder {
        self.doc.insert(key.to_owned(), value);
        self
    }

    pub fn build(self) -> Manifest {
        Manifest {
            body: serde_json::to_vec_pretty(&Value::Object(self.doc)).expect("json"),
            media_type: self.media_type,
        }
    }
}

/// A registry served in-process on a loopback port, with its own data directory.
pub struct TestApp {
    pub addr: SocketAddr,
    pub client: Client,
    /// The registry behind the server, for what only it can tell (the memory it keeps).
    pub registry: Registry,
    server: berth_testkit::Served,
    dir: TempDir,
    options: RegistryOptions,
}

/// Serves a registry over the data in `dir` on a fresh loopback port, wired as `berth serve`
/// wires it but with access open: the protocol tests run with access open; access control
/// has its own tests.
async fn serve(dir: &Path, registry: RegistryOptions) -> berth_testkit::Served {
    let mut options = berth_testkit::Options {
        authorizer: Some(Arc::new(OpenAccess)),
        ..Default::default()
    };
    options.settings.registry = registry;
    berth_testkit::serve(dir, options).await
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        TestApp::spawn_with(RegistryOptions::default()).await
    }

    /// A registry with its tunables (limits) set.
    pub async fn spawn_with(options: RegistryOptions) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let server = serve(dir.path(), options.clone()).await;
        let (addr, registry) = (server.addr, server.state.registry.clone());
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        TestApp {
            addr,
            client,
            registry,
            server,
            dir,
            options,
        }
    }

    /// The metadata store behind the server, for what the protocol does not show (usage
    /// counters, quotas).
    pub fn meta(&self) -> Arc<berth_meta::SqliteMeta> {
        self.server.meta.clone()
    }

    /// Where the blob store keeps its files.
    pub fn blob_root(&self) -> std::path::PathBuf {
        self.dir.path().join("data")
    }

    /// Files of unfinished uploads in the data directory.
    pub fn upload_files(&self) -> usize {
        std::fs::read_dir(self.dir.path().join("data").join("uploads"))
            .expect("uploads directory")
            .count()
    }

    /// Stops the server and starts a new one over the same data, as a process restart
    /// would: everything the registry kept only in memory is gone. The port changes.
    pub async fn restart(&mut self) {
        self.server = serve(self.dir.path(), self.options.clone()).await;
        self.addr = self.server.addr;
        self.registry = self.server.state.registry.clone();
    }

    /// The absolute URL of a path (or of a `Location`, which may already be absolute).
    pub fn url(&self, path: &str) -> String {
        if path.starts_with("http://") {
            path.to_owned()
        } else {
            format!("http://{}{path}", self.addr)
        }
    }

    pub fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, self.url(path))
    }

    pub fn get(&self, path: &str) -> RequestBuilder {
        self.request(Method::GET, path)
    }

    pub fn head(&self, path: &str) -> RequestBuilder {
        self.request(Method::HEAD, path)
    }

    pub fn post(&self, path: &str) -> RequestBuilder {
        self.request(Method::POST, path)
    }

    pub fn put(&self, path: &str) -> RequestBuilder {
        self.request(Method::PUT, path)
    }

    pub fn patch(&self, path: &str) -> RequestBuilder {
        self.request(Method::PATCH, path)
    }

    pub fn delete(&self, path: &str) -> RequestBuilder {
        self.request(Method::DELETE, path)
    }

    /// Sends a request and returns the response, panicking on transport errors.
    pub async fn send(&self, request: RequestBuilder) -> Response {
        request.send().await.expect("request failed")
    }

    /// Opens an upload session in `repo` and returns its `Location`.
    pub async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .send(self.post(&format!("/v2/{repo}/blobs/uploads/")))
            .await;
        assert_eq!(resp.status(), 202, "{resp:?}");
        header(&resp, "location").to_owned()
    }

    /// The `Range` an upload session reports.
    pub async fn upload_range(&self, location: &str) -> String {
        let resp = self.send(self.get(location)).await;
        assert_eq!(resp.status(), 204, "{resp:?}");
        header(&resp, "range").to_owned()
    }

    /// Pushes `content` as a layer blob of `repo` (POST then PUT) and returns its descriptor.
    pub async fn push_blob(&self, repo: &str, content: &[u8]) -> Descriptor {
        self.push_blob_as(repo, content, OCI_LAYER).await
    }

    /// Pushes `content` and describes it with `media_type`.
    pub async fn push_blob_as(&self, repo: &str, content: &[u8], media_type: &str) -> Descriptor {
        let location = self.start_upload(repo).await;
        let descriptor = Descriptor::of(media_type, content);
        let put = self
            .put(&with_query(
                &location,
                &format!("digest={}", descriptor.digest),
            ))
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(content.to_vec());
        let resp = self.send(put).await;
        assert_eq!(resp.status(), 201, "{resp:?}");
        descriptor
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the manifest's media type.
    pub async fn push_manifest(&self, repo: &str, reference: &str, m: &Manifest) -> Response {
        let put = self
            .put(&format!("/v2/{repo}/manifests/{reference}"))
            .header(CONTENT_TYPE, &m.media_type)
            .body(m.body.clone());
        self.send(put).await
    }

    /// Pushes a manifest and asserts it was created.
    pub async fn push_manifest_ok(&self, repo: &str, reference: &str, m: &Manifest) {
        let resp = self.push_manifest(repo, reference, m).await;
        assert_eq!(
            resp.status(),
            201,
            "{}",
            resp.text().await.unwrap_or_default()
        );
    }

    /// Pushes a small OCI image (a config and one layer, distinct per `seed`) and tags it.
    pub async fn push_image(&self, repo: &str, tag: &str, seed: u8) -> Manifest {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
        let config = self.push_blob_as(repo, config.as_bytes(), OCI_CONFIG).await;
        let layer = self.push_blob(repo, &bytes(seed, 64)).await;
        let manifest = ManifestBuilder::oci_image(&config, &[layer]).build();
        self.push_manifest_ok(repo, tag, &manifest).await;
        manifest
    }

    /// Sends raw bytes on a fresh connection and reads until the server closes it.
    pub async fn raw_exchange(&self, request: &[u8]) -> Vec<u8> {
        let mut stream = TcpStream::connect(self.addr).await.expect("connect");
        stream.write_all(request).await.expect("write");
        let mut response = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
            .await
            .expect("server closed the connection in time")
            .expect("read");
        response
    }
}

/// The decoded JSON body of a successful response.
pub async fn json_body(resp: Response) -> Value {
    let text = resp.text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}
