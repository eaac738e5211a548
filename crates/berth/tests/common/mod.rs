//! Shared harness for Berth's integration tests.
//!
//! [`TestServer`] either talks to an external registry (when the
//! `BERTH_TEST_REGISTRY` environment variable holds its base URL, e.g.
//! `http://127.0.0.1:5001`) or spawns the real `berth` binary on a free
//! loopback port with a private temporary data directory.
//!
//! Include it from a test crate with
//! `#[path = "../common/mod.rs"] mod common;`.

// Each test binary uses a part of the harness, and of the test kit's names it passes on.
#![allow(dead_code, unused_imports)]

pub mod builds;

use std::fmt::Write as _;
use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

/// Environment variable selecting an external registry instead of spawning Berth.
pub const REGISTRY_ENV: &str = "BERTH_TEST_REGISTRY";

/// How long to wait for `GET /v2/` to answer 200 after (re)starting Berth.
pub const STARTUP_TIMEOUT: Duration = Duration::from_secs(10);

pub use berth_testkit::images::{
    image_manifest as image_manifest_json, pretty, sha256, Descriptor, OCI_CONFIG as MT_OCI_CONFIG,
    OCI_EMPTY as MT_OCI_EMPTY, OCI_INDEX as MT_OCI_INDEX, OCI_LAYER as MT_OCI_LAYER_GZIP,
    OCI_LAYER_TAR as MT_OCI_LAYER, OCI_MANIFEST as MT_OCI_MANIFEST,
};
pub const MT_DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const MT_DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";
pub const MT_OCTET_STREAM: &str = "application/octet-stream";

/// The content of the OCI "empty" descriptor (`application/vnd.oci.empty.v1+json`).
pub const EMPTY_JSON: &[u8] = b"{}";

/// `Accept` value sent on every manifest GET/HEAD.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.manifest.v1+json, \
     application/vnd.oci.image.index.v1+json, \
     application/vnd.docker.distribution.manifest.v2+json, \
     application/vnd.docker.distribution.manifest.list.v2+json";

/// Every error code the distribution-spec v1.1 allows in an error body.
pub const SPEC_ERROR_CODES: &[&str] = &[
    "BLOB_UNKNOWN",
    "BLOB_UPLOAD_INVALID",
    "BLOB_UPLOAD_UNKNOWN",
    "DIGEST_INVALID",
    "MANIFEST_BLOB_UNKNOWN",
    "MANIFEST_INVALID",
    "MANIFEST_UNKNOWN",
    "NAME_INVALID",
    "NAME_UNKNOWN",
    "SIZE_INVALID",
    "UNAUTHORIZED",
    "DENIED",
    "UNSUPPORTED",
    "TOOMANYREQUESTS",
];

// ---------------------------------------------------------------------------
// Unique names and test data
// ---------------------------------------------------------------------------

static COUNTER: AtomicU64 = AtomicU64::new(0);

fn entropy() -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{}", std::process::id(), nanos, n)
}

/// A short lowercase hex id, unique across processes and runs.
/// `?query`, or nothing for an empty query.
fn query_suffix(query: &str) -> String {
    if query.is_empty() {
        String::new()
    } else {
        format!("?{query}")
    }
}

pub fn unique_id() -> String {
    let h = Sha256::digest(entropy().as_bytes());
    hex::encode(&h[..6])
}

/// A repository name unique to this call, valid per the spec's `<name>` grammar,
/// e.g. `berth-conformance/push-blob-3fa9c0d1e2b4`.
pub fn unique_repo(label: &str) -> String {
    format!("berth-conformance/{}-{}", label, unique_id())
}

/// `len` pseudo-random bytes (different on every call).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let seed = Sha256::digest(entropy().as_bytes());
    let mut out = Vec::with_capacity(len + 32);
    let mut i: u64 = 0;
    while out.len() < len {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(i.to_le_bytes());
        out.extend_from_slice(&h.finalize());
        i += 1;
    }
    out.truncate(len);
    out
}

/// A syntactically valid sha256 digest of random content (almost surely unknown).
pub fn random_digest() -> String {
    sha256(&random_bytes(64))
}

// ---------------------------------------------------------------------------
// Manifest builders
// ---------------------------------------------------------------------------

/// Minimal OCI image manifest JSON (`config` + `layers`).
pub fn image_manifest(config: &Descriptor, layers: &[Descriptor]) -> Vec<u8> {
    pretty(&image_manifest_json(config, layers))
}

/// OCI image index JSON listing `manifests`.
pub fn image_index(manifests: &[Descriptor]) -> Vec<u8> {
    pretty(&berth_testkit::images::image_index(manifests))
}

/// An OCI 1.1 "artifact": an image manifest with `artifactType`, the empty
/// config, the given layers, a `subject` and optional annotations.
pub fn artifact_manifest(
    artifact_type: &str,
    layers: &[Descriptor],
    subject: &Descriptor,
    annotations: &[(&str, &str)],
) -> Vec<u8> {
    let mut v = image_manifest_json(&Descriptor::empty(), layers);
    v["artifactType"] = json!(artifact_type);
    v["subject"] = subject.json();
    if !annotations.is_empty() {
        v["annotations"] = berth_testkit::images::annotations(annotations);
    }
    pretty(&v)
}

/// A manifest that was pushed successfully.
#[derive(Clone, Debug)]
pub struct PushedManifest {
    pub repo: String,
    pub bytes: Vec<u8>,
    pub digest: String,
    pub media_type: String,
    /// Digests of all blobs the manifest references (config first).
    pub blobs: Vec<String>,
}

impl PushedManifest {
    /// A manifest pushed as `bytes` with `media_type`, its digest derived from the bytes.
    pub fn new(repo: &str, bytes: Vec<u8>, media_type: &str, blobs: Vec<String>) -> Self {
        PushedManifest {
            repo: repo.to_string(),
            digest: sha256(&bytes),
            bytes,
            media_type: media_type.to_string(),
            blobs,
        }
    }

    pub fn descriptor(&self) -> Descriptor {
        Descriptor::of(&self.media_type, &self.bytes)
    }
}

// ---------------------------------------------------------------------------
// Response helpers
// ---------------------------------------------------------------------------

/// A header as a string, if present and valid UTF-8.
pub fn header(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(|s| s.to_string())
}

/// A header that must be present.
pub fn require_header(headers: &HeaderMap, name: &str, context: &str) -> String {
    header(headers, name)
        .unwrap_or_else(|| panic!("{context}: missing `{name}` header; headers: {headers:?}"))
}

/// Media type without parameters (`a/b; charset=x` -> `a/b`).
pub fn bare_media_type(v: &str) -> String {
    v.split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Panic unless `resp.status()` is `expected`; include the body in the message.
pub async fn expect_status(resp: Response, expected: u16, context: &str) -> (HeaderMap, Vec<u8>) {
    expect_status_in(resp, &[expected], context).await
}

/// Panic unless `resp.status()` is one of `expected`.
pub async fn expect_status_in(
    resp: Response,
    expected: &[u16],
    context: &str,
) -> (HeaderMap, Vec<u8>) {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    assert!(
        expected.contains(&status.as_u16()),
        "{context}: expected status {expected:?}, got {status}; headers: {headers:?}; body: {}",
        String::from_utf8_lossy(&body)
    );
    (headers, body)
}

/// A parsed spec error body.
#[derive(Debug)]
pub struct ErrorBody {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub codes: Vec<String>,
    pub raw: Value,
}

/// Assert an error response: status in `statuses`, body is
/// `{"errors":[{"code":..,"message":..}, ..]}`, every code is one of the
/// spec's codes, and at least one code is in `codes`.
pub async fn expect_error(
    resp: Response,
    statuses: &[u16],
    codes: &[&str],
    context: &str,
) -> ErrorBody {
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
    let text = String::from_utf8_lossy(&body).to_string();
    assert!(
        statuses.contains(&status.as_u16()),
        "{context}: expected status {statuses:?} (error code {codes:?}), got {status}; body: {text}"
    );
    let raw = parse_error_body(&body, context);
    let errors = raw["errors"]
        .as_array()
        .expect("checked by parse_error_body");
    let found: Vec<String> = errors
        .iter()
        .map(|e| e["code"].as_str().unwrap_or_default().to_string())
        .collect();
    for code in &found {
        assert!(
            SPEC_ERROR_CODES.contains(&code.as_str()),
            "{context}: error code `{code}` is not one of the distribution-spec codes; body: {text}"
        );
    }
    assert!(
        found.iter().any(|c| codes.contains(&c.as_str())),
        "{context}: expected one of error codes {codes:?}, got {found:?}; body: {text}"
    );
    ErrorBody {
        status,
        headers,
        codes: found,
        raw,
    }
}

/// Validate the shape of a spec error body and return it as JSON.
pub fn parse_error_body(body: &[u8], context: &str) -> Value {
    let text = String::from_utf8_lossy(body);
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!("{context}: error body is not JSON ({e}): {text:?}");
    });
    let errors = v
        .get("errors")
        .and_then(Value::as_array)
        .unwrap_or_else(|| panic!("{context}: error body lacks an `errors` array: {text}"));
    assert!(
        !errors.is_empty(),
        "{context}: `errors` array is empty: {text}"
    );
    for e in errors {
        let code = e
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("{context}: error entry lacks string `code`: {text}"));
        assert!(
            !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_'),
            "{context}: error code `{code}` must be uppercase letters and underscores"
        );
        assert!(
            e.get("message").is_some_and(Value::is_string),
            "{context}: error entry lacks string `message`: {text}"
        );
    }
    v
}

/// Extract the `rel="next"` target of a `Link` header, if any.
pub fn next_link(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all("link") {
        let Ok(value) = value.to_str() else { continue };
        for part in value.split(',') {
            let part = part.trim();
            let (Some(start), Some(end)) = (part.find('<'), part.find('>')) else {
                continue;
            };
            let params = &part[end + 1..];
            let is_next = params.split(';').any(|p| {
                let p = p.trim().to_ascii_lowercase();
                p == "rel=\"next\"" || p == "rel=next"
            });
            if is_next {
                return Some(part[start + 1..end].to_string());
            }
        }
    }
    None
}

// ---------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------

/// A registry under test: either a spawned `berth serve` or an external one.
pub struct TestServer {
    base: String,
    client: reqwest::Client,
    port: u16,
    child: Option<Child>,
    data_dir: Option<tempfile::TempDir>,
    log_dir: Option<tempfile::TempDir>,
    starts: u32,
    options: SpawnOptions,
}

/// Extra environment variables and arguments for a spawned `berth serve`,
/// applied on every (re)start.
#[derive(Clone, Debug, Default)]
pub struct SpawnOptions {
    pub env: Vec<(String, String)>,
    pub args: Vec<String>,
}

impl SpawnOptions {
    /// Set an environment variable of the server process.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.env.push((key.to_string(), value.to_string()));
        self
    }

    /// Append an argument after `serve --listen .. --data-dir ..`.
    pub fn arg(mut self, arg: &str) -> Self {
        self.args.push(arg.to_string());
        self
    }
}

impl std::fmt::Debug for TestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("base", &self.base)
            .field("external", &self.is_external())
            .finish()
    }
}

/// The site admin every spawned server starts with (through `BERTH_ADMIN_PASSWORD`).
pub const ADMIN_USER: &str = "admin";
pub const ADMIN_PASSWORD: &str = "test-admin-password";

/// `Authorization: Basic …` for a name and a password or token.
pub fn basic_auth(name: &str, secret: &str) -> String {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{name}:{secret}"));
    format!("Basic {encoded}")
}

/// A client that signs every request in as the site admin with Basic credentials, so the
/// protocol tests exercise the registry, not access control (which has its own tests).
pub fn admin_client_builder() -> reqwest::ClientBuilder {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::AUTHORIZATION,
        basic_auth(ADMIN_USER, ADMIN_PASSWORD)
            .parse()
            .expect("header"),
    );
    reqwest::Client::builder().default_headers(headers)
}

fn build_client() -> reqwest::Client {
    admin_client_builder()
        .timeout(Duration::from_secs(60))
        .pool_max_idle_per_host(4)
        .build()
        .expect("build reqwest client")
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().expect("local addr").port()
}

impl TestServer {
    /// Start a registry for one test: the external one named by
    /// `BERTH_TEST_REGISTRY` or a fresh `berth serve`.
    pub async fn start() -> Self {
        match std::env::var(REGISTRY_ENV) {
            Ok(url) if !url.trim().is_empty() => Self::external(url.trim()).await,
            _ => Self::spawn().await,
        }
    }

    /// Use an already running registry.
    pub async fn external(url: &str) -> Self {
        let server = TestServer {
            base: url.trim_end_matches('/').to_string(),
            client: build_client(),
            port: 0,
            child: None,
            data_dir: None,
            log_dir: None,
            starts: 0,
            options: SpawnOptions::default(),
        };
        let resp = server
            .client
            .get(server.url("/v2/"))
            .send()
            .await
            .unwrap_or_else(|e| panic!("external registry {} unreachable: {e}", server.base));
        assert_eq!(
            resp.status(),
            StatusCode::OK,
            "external registry {}: GET /v2/ did not return 200",
            server.base
        );
        server
    }

    /// Spawn `berth serve` on a free port with a temporary data directory.
    pub async fn spawn() -> Self {
        Self::spawn_with(SpawnOptions::default()).await
    }

    /// Like [`TestServer::spawn`], with extra environment variables and arguments.
    pub async fn spawn_with(options: SpawnOptions) -> Self {
        let data_dir = tempfile::Builder::new()
            .prefix("berth-test-data-")
            .tempdir()
            .expect("create data dir");
        Self::spawn_on(data_dir, options).await
    }

    /// Like [`TestServer::spawn_with`], on a data directory the test prepared (on a small
    /// filesystem, for instance).
    pub async fn spawn_on(data_dir: tempfile::TempDir, options: SpawnOptions) -> Self {
        let log_dir = tempfile::Builder::new()
            .prefix("berth-test-log-")
            .tempdir()
            .expect("create log dir");
        let port = free_port();
        let mut server = TestServer {
            base: format!("http://127.0.0.1:{port}"),
            client: build_client(),
            port,
            child: None,
            data_dir: Some(data_dir),
            log_dir: Some(log_dir),
            starts: 0,
            options,
        };
        // The port was free a moment ago but could be taken before berth binds
        // it; if berth dies during startup, retry on a new port a few times.
        const ATTEMPTS: u32 = 3;
        for attempt in 1..=ATTEMPTS {
            match server.launch().await {
                Ok(()) => return server,
                Err(e) if attempt < ATTEMPTS => {
                    eprintln!("berth startup attempt {attempt} failed, retrying: {e}");
                    server.port = free_port();
                    server.base = format!("http://127.0.0.1:{}", server.port);
                }
                Err(e) => panic!("{e}"),
            }
        }
        unreachable!()
    }

    fn log_path(&self) -> PathBuf {
        self.log_dir
            .as_ref()
            .expect("log dir of spawned server")
            .path()
            .join(format!("berth-{}.log", self.starts))
    }

    /// Start berth and wait until it serves `GET /v2/`. `Err` when the process
    /// exited during startup; panics if it stays up but never becomes ready.
    async fn launch(&mut self) -> Result<(), String> {
        assert!(self.child.is_none(), "berth is already running");
        self.starts += 1;
        let log_path = self.log_path();
        let log = std::fs::File::create(&log_path).expect("create log file");
        let log_err = log.try_clone().expect("clone log file");
        let data_dir = self.data_dir().expect("data dir").to_path_buf();
        let child = Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", self.port))
            .arg("--data-dir")
            .arg(&data_dir)
            .args(&self.options.args)
            .env("BERTH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .envs(self.options.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", env!("CARGO_BIN_EXE_berth")));
        self.child = Some(child);
        self.wait_ready().await
    }

    /// Err if the child exited (it may have failed to bind its port).
    fn check_alive(&mut self) -> Result<(), String> {
        if let Some(child) = self.child.as_mut() {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Err(format!(
                    "berth exited during startup ({status}) on port {}; log:\n{}",
                    self.port,
                    self.read_log()
                ));
            }
        }
        Ok(())
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + STARTUP_TIMEOUT;
        loop {
            self.check_alive()?;
            let last_err = match self
                .client
                .get(self.url("/v2/"))
                .timeout(Duration::from_millis(1000))
                .send()
                .await
            {
                // Make sure it was our process that answered.
                Ok(r) if r.status() == StatusCode::OK => return self.check_alive(),
                Ok(r) => format!("GET /v2/ returned {}", r.status()),
                Err(e) => format!("GET /v2/ failed: {e}"),
            };
            if Instant::now() >= deadline {
                let log = self.read_log();
                self.kill_hard();
                panic!(
                    "berth did not become ready within {STARTUP_TIMEOUT:?} on port {} \
                     ({last_err}); log:\n{log}",
                    self.port
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn read_log(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = std::fs::File::open(self.log_path()) {
            let _ = f.read_to_string(&mut s);
        }
        if s.len() > 8000 {
            let cut = s.len() - 8000;
            let cut = (cut..s.len())
                .find(|i| s.is_char_boundary(*i))
                .unwrap_or(cut);
            s = format!("[...]{}", &s[cut..]);
        }
        s
    }

    /// True when testing an external registry (`BERTH_TEST_REGISTRY`).
    pub fn is_external(&self) -> bool {
        self.data_dir.is_none()
    }

    /// Base URL, e.g. `http://127.0.0.1:40123`.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// Data directory of a spawned server (None for an external registry).
    pub fn data_dir(&self) -> Option<&Path> {
        self.data_dir.as_ref().map(|d| d.path())
    }

    /// The server's log so far (spawned server only; empty otherwise).
    pub fn log(&self) -> String {
        if self.is_external() {
            String::new()
        } else {
            self.read_log()
        }
    }

    /// Kill the spawned server with SIGKILL (no graceful shutdown) and reap it.
    pub fn kill_hard(&mut self) {
        assert!(
            !self.is_external(),
            "kill_hard() is not possible on an external registry"
        );
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Process id of the running spawned server.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Send a signal (`TERM`, `INT`, ...) to the spawned server with `kill(1)`.
    pub fn signal(&self, signal: &str) {
        let pid = self.pid().expect("signal(): berth is not running");
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {pid} failed: {status}");
    }

    /// True while the spawned server process has not exited.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => matches!(child.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Wait up to `timeout` for the spawned server to exit on its own and reap
    /// it; `None` (and the server left running) on timeout.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let child = self
                .child
                .as_mut()
                .expect("wait_exit(): berth is not running");
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// A field of `/proc/<pid>/status` in KiB (e.g. `VmRSS`, `VmHWM`).
    pub fn proc_status_kib(&self, field: &str) -> Option<u64> {
        proc_status_kib(self.pid()?, field)
    }

    /// Open a raw HTTP/1.1 request whose body the caller writes piecemeal
    /// (to hold a request in flight). `path` may be absolute or relative.
    pub async fn raw_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        content_length: u64,
    ) -> RawRequest {
        let url = self.resolve(path);
        let rest = url.split_once("://").map(|(_, r)| r).expect("absolute URL");
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let mut stream = tokio::net::TcpStream::connect(authority)
            .await
            .unwrap_or_else(|e| panic!("connect to {authority}: {e}"));
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
             Content-Length: {content_length}\r\nAuthorization: {}\r\n",
            basic_auth(ADMIN_USER, ADMIN_PASSWORD)
        );
        for (name, value) in headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        head.push_str("\r\n");
        use tokio::io::AsyncWriteExt as _;
        stream
            .write_all(head.as_bytes())
            .await
            .expect("write request head");
        RawRequest { stream }
    }

    /// Start the server again on the same port and data directory (after
    /// `kill_hard()`; kills a still running instance first).
    pub async fn restart(&mut self) {
        assert!(
            !self.is_external(),
            "restart() is not possible on an external registry"
        );
        self.kill_hard();
        if let Err(e) = self.launch().await {
            panic!("restart: {e}");
        }
    }

    /// Absolute URL for `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Resolve a `Location`/`Link` value, which may be absolute or relative.
    pub fn resolve(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_string()
        } else if location.starts_with('/') {
            self.url(location)
        } else {
            format!("{}/{}", self.base, location)
        }
    }

    /// The shared HTTP client of this server.
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.client.request(method, self.url(path))
    }

    // --- pull helpers ------------------------------------------------------

    pub async fn get_manifest(&self, repo: &str, reference: &str) -> Response {
        self.manifest_request(Method::GET, repo, reference).await
    }

    pub async fn head_manifest(&self, repo: &str, reference: &str) -> Response {
        self.manifest_request(Method::HEAD, repo, reference).await
    }

    async fn manifest_request(&self, method: Method, repo: &str, reference: &str) -> Response {
        self.request(method, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Accept", MANIFEST_ACCEPT)
            .send()
            .await
            .expect("manifest request")
    }

    pub async fn get_blob(&self, repo: &str, digest: &str) -> Response {
        self.request(Method::GET, &format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .await
            .expect("blob GET")
    }

    pub async fn head_blob(&self, repo: &str, digest: &str) -> Response {
        self.request(Method::HEAD, &format!("/v2/{repo}/blobs/{digest}"))
            .send()
            .await
            .expect("blob HEAD")
    }

    /// GET `/v2/<repo>/tags/list` with an optional query string (without `?`).
    pub async fn list_tags(&self, repo: &str, query: &str) -> Response {
        let q = query_suffix(query);
        self.request(Method::GET, &format!("/v2/{repo}/tags/list{q}"))
            .send()
            .await
            .expect("tags list")
    }

    /// GET `/v2/<repo>/referrers/<digest>` with an optional query string.
    pub async fn referrers(&self, repo: &str, digest: &str, query: &str) -> Response {
        let q = query_suffix(query);
        self.request(Method::GET, &format!("/v2/{repo}/referrers/{digest}{q}"))
            .send()
            .await
            .expect("referrers GET")
    }

    // --- push helpers ------------------------------------------------------

    /// `POST /v2/<repo>/blobs/uploads/` (empty body), returning the raw response.
    pub async fn start_upload(&self, repo: &str) -> Response {
        self.request(Method::POST, &format!("/v2/{repo}/blobs/uploads/"))
            .header("Content-Length", "0")
            .send()
            .await
            .expect("POST upload")
    }

    /// Open an upload session and return its absolute location.
    pub async fn open_session(&self, repo: &str) -> String {
        let resp = self.start_upload(repo).await;
        let (headers, _) = expect_status(resp, 202, "POST /blobs/uploads/").await;
        self.resolve(&require_header(
            &headers,
            "location",
            "POST /blobs/uploads/",
        ))
    }

    /// Push a blob with POST + monolithic PUT; return its digest.
    pub async fn push_blob(&self, repo: &str, bytes: &[u8]) -> String {
        let digest = sha256(bytes);
        let location = self.open_session(repo).await;
        let resp = self
            .client
            .put(with_digest(&location, &digest))
            .header("Content-Type", MT_OCTET_STREAM)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("PUT upload");
        expect_status(resp, 201, &format!("push_blob PUT to {repo}")).await;
        digest
    }

    /// `PUT /v2/<repo>/manifests/<reference>` with the given Content-Type.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Response {
        self.request(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header("Content-Type", media_type)
            .body(bytes.to_vec())
            .send()
            .await
            .expect("manifest PUT")
    }

    /// Push a manifest and assert 201; `reference` may be a tag or `None` for by-digest.
    pub async fn push_manifest_ok(
        &self,
        repo: &str,
        reference: Option<&str>,
        media_type: &str,
        bytes: &[u8],
    ) -> Response {
        let digest = sha256(bytes);
        let reference = reference.unwrap_or(&digest);
        let resp = self.push_manifest(repo, reference, media_type, bytes).await;
        let status = resp.status();
        if status != StatusCode::CREATED {
            let body = resp.text().await.unwrap_or_default();
            panic!("push manifest {repo}:{reference}: expected 201, got {status}; body: {body}");
        }
        resp
    }

    /// Push the empty config blob `{}` into `repo`.
    pub async fn push_empty_blob(&self, repo: &str) -> String {
        self.push_blob(repo, EMPTY_JSON).await
    }

    /// Push a small random image (config + one layer + manifest) to `repo`,
    /// tagged with `tag` or by digest when `tag` is None.
    pub async fn push_random_image(&self, repo: &str, tag: Option<&str>) -> PushedManifest {
        let config_bytes = pretty(&json!({
            "architecture": "amd64",
            "os": "linux",
            "rootfs": {"type": "layers", "diff_ids": []},
            "berth.test": unique_id(),
        }));
        let layer_bytes = random_bytes(512);
        let config_digest = self.push_blob(repo, &config_bytes).await;
        let layer_digest = self.push_blob(repo, &layer_bytes).await;
        let manifest = image_manifest(
            &Descriptor::of(MT_OCI_CONFIG, &config_bytes),
            &[Descriptor::of(MT_OCI_LAYER, &layer_bytes)],
        );
        self.push_manifest_ok(repo, tag, MT_OCI_MANIFEST, &manifest)
            .await;
        PushedManifest::new(
            repo,
            manifest,
            MT_OCI_MANIFEST,
            vec![config_digest, layer_digest],
        )
    }

    /// Push an artifact (empty config, one random layer) referring to `subject`.
    pub async fn push_artifact(
        &self,
        repo: &str,
        artifact_type: &str,
        subject: &Descriptor,
        annotations: &[(&str, &str)],
    ) -> PushedManifest {
        let layer = random_bytes(128);
        let empty = self.push_empty_blob(repo).await;
        let layer_digest = self.push_blob(repo, &layer).await;
        let manifest = artifact_manifest(
            artifact_type,
            &[Descriptor::of("application/vnd.berth.test.payload", &layer)],
            subject,
            annotations,
        );
        self.push_manifest_ok(repo, None, MT_OCI_MANIFEST, &manifest)
            .await;
        PushedManifest::new(repo, manifest, MT_OCI_MANIFEST, vec![empty, layer_digest])
    }

    /// Tags of `repo` (`GET tags/list`, must be 200).
    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let (_, body) = expect_status(self.list_tags(repo, "").await, 200, "tags/list").await;
        tags_from_body(&body)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A field of `/proc/<pid>/status` in KiB (e.g. `VmRSS`, `VmHWM`); Linux only.
pub fn proc_status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// A raw HTTP/1.1 request in flight (see [`TestServer::raw_request`]).
#[derive(Debug)]
pub struct RawRequest {
    stream: tokio::net::TcpStream,
}

impl RawRequest {
    /// Write part of the body.
    pub async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt as _;
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }

    /// Read the whole response (the request asked for `Connection: close`);
    /// returns the status code and the raw response text.
    pub async fn response(mut self, timeout: Duration) -> std::io::Result<(u16, String)> {
        use tokio::io::AsyncReadExt as _;
        let mut raw = Vec::new();
        tokio::time::timeout(timeout, self.stream.read_to_end(&mut raw))
            .await
            .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "no response"))??;
        let text = String::from_utf8_lossy(&raw).to_string();
        let status = text
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("not an HTTP response: {text:?}"),
                )
            })?;
        Ok((status, text))
    }
}

/// Append `digest=<digest>` to an upload location (which may already carry a query).
pub fn with_digest(location: &str, digest: &str) -> String {
    with_query(location, &format!("digest={digest}"))
}

/// Append a `k=v` pair to a URL that may or may not already have a query.
pub fn with_query(url: &str, pair: &str) -> String {
    let mut s = url.to_string();
    if s.contains('?') {
        if !s.ends_with('?') && !s.ends_with('&') {
            s.push('&');
        }
    } else {
        s.push('?');
    }
    let _ = write!(s, "{pair}");
    s
}

/// Parse a tags/list body, asserting its shape; returns the tags (null -> empty).
pub fn tags_from_body(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).unwrap_or_else(|e| {
        panic!(
            "tags/list body is not JSON ({e}): {}",
            String::from_utf8_lossy(body)
        )
    });
    assert!(
        v.get("name").is_some_and(Value::is_string),
        "tags/list body lacks `name`: {v}"
    );
    match v.get("tags") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) => a
            .iter()
            .map(|t| t.as_str().expect("tag is a string").to_string())
            .collect(),
        Some(other) => panic!("tags/list `tags` is not an array: {other}"),
    }
}
