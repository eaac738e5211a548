//! Real upstreams on loopback for the pull-through cache tests: CNCF Distribution (Debian's
//! `docker-registry`, with or without htpasswd), a counting proxy in front of it, and
//! seeding through Berth's own registry client.

use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use berth_core::mirror::MirrorConfig;
use berth_oci::Digest;
use berth_outbound::registry::{PushBlob, RegistryClient, RemoteRegistry};
use berth_testkit::images::{SmallImage, OCI_MANIFEST};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Polls `check` until it holds or `deadline` passes (no fixed sleeps: the machine is shared).
pub async fn eventually<F, Fut>(deadline: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let until = Instant::now() + deadline;
    loop {
        if check().await {
            return;
        }
        assert!(Instant::now() < until, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Whether Debian's `docker-registry` is here; false (with a loud notice) lets a test skip,
/// except under `CI=true`, where it must run.
pub fn have_distribution() -> bool {
    let found = Command::new("docker-registry")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok();
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "docker-registry is required under CI (apt-get install -y docker-registry)"
        );
        eprintln!("SKIPPED: docker-registry (CNCF Distribution) is not installed: apt-get install -y docker-registry");
    }
    found
}

/// A running CNCF Distribution; killed when dropped.
pub struct Distribution {
    pub url: String,
    child: Option<Child>,
    config: PathBuf,
    _dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl Distribution {
    /// Starts one, with htpasswd Basic auth when `htpasswd` (a file's text) is given.
    pub async fn start(htpasswd: Option<&str>) -> Distribution {
        Distribution::start_on(htpasswd, free_port()).await
    }

    /// Starts one listening on `port` (a registry that comes back where it was).
    pub async fn start_on(htpasswd: Option<&str>, port: u16) -> Distribution {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("storage");
        std::fs::create_dir_all(&root).expect("storage dir");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: 127.0.0.1:{port}\n  secret: berth-mirror-test\n",
            root.display()
        );
        if let Some(htpasswd) = htpasswd {
            let path: PathBuf = dir.path().join("htpasswd");
            std::fs::write(&path, htpasswd).expect("htpasswd file");
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                path.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("config");
        let mut distribution = Distribution {
            url: format!("http://127.0.0.1:{port}"),
            child: None,
            config: config_path,
            _dir: dir,
        };
        distribution.restart().await;
        distribution
    }

    /// Starts it again where it was, with what it held (after [`Distribution::stop`]).
    pub async fn restart(&mut self) {
        self.stop();
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&self.config)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("docker-registry starts");
        self.child = Some(child);
        let probe = reqwest::Client::new();
        let base = format!("{}/v2/", self.url);
        eventually(Duration::from_secs(60), "Distribution to listen", || {
            let request = probe.get(&base).send();
            async move { request.await.is_ok() }
        })
        .await;
    }

    /// Stops it (the upstream goes away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Distribution {
    fn drop(&mut self) {
        self.stop();
    }
}

/// An `htpasswd -nbB` line for `user:password`, or None (skipped loudly) without htpasswd.
pub fn htpasswd_line(user: &str, password: &str) -> Option<String> {
    let out = Command::new("htpasswd")
        .args(["-nbB", user, password])
        .output();
    match out {
        Ok(out) if out.status.success() => {
            Some(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        }
        _ => {
            assert!(
                std::env::var("CI").as_deref() != Ok("true"),
                "htpasswd is required under CI (apt-get install -y apache2-utils)"
            );
            eprintln!("SKIPPED: htpasswd is not installed: apt-get install -y apache2-utils");
            None
        }
    }
}

/// One request the proxy passed on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub method: String,
    pub path: String,
}

/// A proxy in front of an upstream that records every request, and can answer with a
/// fixed status instead (a rate-limited or failing upstream).
#[derive(Clone)]
pub struct CountingProxy {
    pub url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    answer_with: Arc<AtomicU16>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Clone)]
struct ProxyState {
    target: String,
    client: reqwest::Client,
    seen: Arc<Mutex<Vec<Seen>>>,
    answer_with: Arc<AtomicU16>,
}

async fn forward(State(state): State<ProxyState>, request: Request<Body>) -> Response<Body> {
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    state.seen.lock().unwrap().push(Seen {
        method: request.method().to_string(),
        path: request.uri().path().to_owned(),
    });
    let fixed = state.answer_with.load(Ordering::SeqCst);
    if fixed != 0 {
        let mut response = Response::new(Body::from("{\"errors\":[]}"));
        *response.status_mut() = StatusCode::from_u16(fixed).unwrap();
        return response;
    }
    let method = reqwest::Method::from_bytes(request.method().as_str().as_bytes()).unwrap();
    let mut upstream = state
        .client
        .request(method, format!("{}{path}", state.target));
    for (name, value) in request.headers() {
        if name != "host" {
            upstream = upstream.header(name.as_str(), value.as_bytes());
        }
    }
    match upstream.send().await {
        Ok(answer) => {
            let mut response = Response::builder().status(answer.status().as_u16());
            for (name, value) in answer.headers() {
                response = response.header(name.as_str(), value.as_bytes());
            }
            response
                .body(Body::from_stream(answer.bytes_stream()))
                .unwrap()
        }
        Err(_) => {
            let mut response = Response::new(Body::empty());
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            response
        }
    }
}

impl CountingProxy {
    pub async fn start(target: &str) -> CountingProxy {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let answer_with = Arc::new(AtomicU16::new(0));
        let state = ProxyState {
            target: target.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            seen: seen.clone(),
            answer_with: answer_with.clone(),
        };
        let app = axum::Router::new().fallback(forward).with_state(state);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        CountingProxy {
            url,
            seen,
            answer_with,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }

    /// Requests seen whose method is `method` and whose path ends with `suffix`.
    pub fn count(&self, method: &str, suffix: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.method == method && s.path.ends_with(suffix))
            .count()
    }

    pub fn total(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// From now on every request is answered with `status` (0: passed on again).
    pub fn answer_with(&self, status: u16) {
        self.answer_with.store(status, Ordering::SeqCst);
    }
}

/// Berth's registry client for `url`, optionally signed in.
pub fn client_for(url: &str, credentials: Option<(&str, &str)>) -> RegistryClient {
    let mut remote = RemoteRegistry::new(url);
    if let Some((user, password)) = credentials {
        remote.username = Some(user.to_owned());
        remote.password = Some(password.to_owned());
    }
    RegistryClient::new(&remote).expect("registry client")
}

/// Pushes `image` as `repo:tag` through the registry client; the manifest's digest.
pub async fn seed(client: &RegistryClient, repo: &str, tag: &str, image: &SmallImage) -> Digest {
    for blob in [&image.config, &image.layer] {
        let digest = Digest::sha256_of(blob);
        client
            .push_blob(
                repo,
                &digest,
                PushBlob {
                    size: blob.len() as u64,
                    body: Box::pin(futures_util::stream::iter([Ok(bytes::Bytes::from(
                        blob.clone(),
                    ))])),
                },
            )
            .await
            .expect("blob pushed upstream");
    }
    client
        .put_manifest(repo, tag, OCI_MANIFEST, image.manifest.clone())
        .await
        .expect("manifest pushed upstream");
    Digest::sha256_of(&image.manifest)
}

/// A mirror of `upstream` under `prefix`, with the defaults except `ttl`.
pub fn mirror(prefix: &str, upstream: &str, ttl: Duration) -> MirrorConfig {
    let mut config = MirrorConfig::new(prefix, upstream);
    config.ttl = ttl;
    config
}
