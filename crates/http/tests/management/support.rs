//! The in-process Berth every management test talks to: the real router over SQLite with
//! the policy authorizer, the management and Hub services, a site admin, and clients that
//! sign in to the API (`/api/v1/`) or use the registry (`/v2/`) with Basic credentials.
//! Every API answer is checked against the OpenAPI document on the way.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use berth_core::clock::ManualClock;
use berth_core::hub::Hub;
use berth_core::identity::Identity;
use berth_core::Registry;
use berth_meta::SqliteMeta;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use reqwest::{Client, Method, RequestBuilder};
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tempfile::TempDir;

pub const ADMIN_PASSWORD: &str = "admin-password-1";

/// What every account the tests create signs in with, unless a test changes it.
pub const PASSWORD: &str = "correct horse battery";

pub use berth_testkit::images::{sha256, OCI_INDEX, OCI_MANIFEST};
use berth_testkit::images::{Pusher, SmallImage, OCI_CONFIG, OCI_EMPTY, OCI_LAYER};

/// How a request proves who sends it.
#[derive(Debug, Clone)]
pub enum Credentials {
    Anonymous,
    /// `Authorization: Bearer …`
    Bearer(String),
    /// `Authorization: Basic …`: a password or an access token.
    Basic(String, String),
}

impl Credentials {
    /// The `Authorization` header's value, if any.
    fn authorization(&self) -> Option<String> {
        match self {
            Credentials::Anonymous => None,
            Credentials::Bearer(token) => Some(format!("Bearer {token}")),
            Credentials::Basic(name, secret) => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{name}:{secret}"))
            )),
        }
    }

    fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self.authorization() {
            Some(value) => request.header(AUTHORIZATION, value),
            None => request,
        }
    }
}

/// A response, read whole: status, headers and the body as JSON (`Null` when empty).
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Reply {
    async fn read(response: reqwest::Response) -> Reply {
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.expect("body");
        // JSON answers must parse; the few others (a build's SVG badge, its text log) are
        // kept as text only.
        let is_json = headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_none_or(|v| v.contains("json"));
        let body = if text.is_empty() || !is_json {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
        };
        Reply {
            status,
            headers,
            text,
            body,
        }
    }

    /// Asserts the status, showing the body when it differs.
    pub fn expect(self, status: u16) -> Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        self
    }

    /// Asserts an error answer: its status and the code of its first error.
    pub fn expect_error(self, status: u16, code: &str) -> Reply {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.text
        );
        assert_eq!(self.body["errors"][0]["code"], code, "{}", self.text);
        assert!(
            self.body["errors"][0]["message"].is_string(),
            "{}",
            self.text
        );
        self
    }

    /// The message of an error answer.
    pub fn message(&self) -> &str {
        self.body["errors"][0]["message"]
            .as_str()
            .unwrap_or_default()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("text"))
    }
}

/// Berth served in-process on a loopback port, over its own data directory.
pub struct Berth {
    pub addr: SocketAddr,
    /// The server's Hub, for flushing recorded pulls without waiting for a timer.
    pub hub: Arc<Hub>,
    /// The server's registry, for its background work (the platform backfill).
    pub registry: Registry,
    /// The server's database, for writing what an older Berth would have left there.
    pub meta: Arc<SqliteMeta>,
    client: Client,
    /// The server's clock, when the test moves it (see [`Berth::start_with_manual_clock`]).
    clock: Option<Arc<ManualClock>>,
    /// `http://127.0.0.1:PORT`
    base: String,
    /// The server itself: dropping it stops the server and its jobs runner.
    _served: berth_testkit::Served,
    _dir: TempDir,
}

impl Berth {
    /// A fresh instance whose only account is the site admin `admin`.
    pub async fn start() -> Berth {
        Berth::start_with_signup(false).await
    }

    /// Like [`Berth::start`], with self-service sign-up open or closed (`allow_signup`).
    pub async fn start_with_signup(allow_signup: bool) -> Berth {
        Berth::start_configured(allow_signup, None, None, false).await
    }

    /// Like [`Berth::start`], on a clock that stands still until the test moves it: TOTP
    /// steps and expiries follow [`Berth::clock`], so nothing waits for the wall clock.
    pub async fn start_with_manual_clock() -> Berth {
        Berth::start_configured(false, None, Some(ManualClock::starting_now()), false).await
    }

    /// The server's clock (only for [`Berth::start_with_manual_clock`]).
    pub fn clock(&self) -> &ManualClock {
        self.clock.as_deref().expect("started with a manual clock")
    }

    /// Like [`Berth::start`], with the operations endpoints wired to the stores as `serve`
    /// wires them, and `/metrics` open without credentials to `metrics_allow` only.
    pub async fn start_with_metrics_allow(metrics_allow: Vec<ipnet::IpNet>) -> Berth {
        Berth::start_configured(false, Some(metrics_allow), None, false).await
    }

    /// Like [`Berth::start_with_metrics_allow`] with loopback allowed, but with request
    /// metrics off (`metrics = false`).
    pub async fn start_without_metrics() -> Berth {
        let loopback = vec!["127.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        Berth::start_configured(false, Some(loopback), None, true).await
    }

    /// Like [`Berth::start`], with the test kit's options changed by `edit` first (settings
    /// such as `rate_limit` or `forwarding`).
    pub async fn start_with(edit: impl FnOnce(&mut berth_testkit::Options)) -> Berth {
        Berth::start_edited(false, None, None, false, edit).await
    }

    async fn start_configured(
        allow_signup: bool,
        metrics_allow: Option<Vec<ipnet::IpNet>>,
        clock: Option<Arc<ManualClock>>,
        metrics_off: bool,
    ) -> Berth {
        Berth::start_edited(allow_signup, metrics_allow, clock, metrics_off, |_| {}).await
    }

    async fn start_edited(
        allow_signup: bool,
        metrics_allow: Option<Vec<ipnet::IpNet>>,
        clock: Option<Arc<ManualClock>>,
        metrics_off: bool,
        edit: impl FnOnce(&mut berth_testkit::Options),
    ) -> Berth {
        let dir = tempfile::tempdir().expect("temp dir");
        // The first admin exists before the server starts, as `berth serve` makes it.
        let meta = Arc::new(
            SqliteMeta::open(&dir.path().join("berth.db"))
                .await
                .expect("database"),
        );
        Identity::new(meta.clone())
            .first_start_admin(Some(ADMIN_PASSWORD.to_owned()))
            .await
            .expect("first admin");
        meta.close().await;
        let mut options = berth_testkit::Options::default();
        options.settings.allow_signup = allow_signup;
        options.metrics_allow = metrics_allow;
        options.clock = clock
            .clone()
            .map(|clock| clock as Arc<dyn berth_core::clock::Clock>);
        options.metrics_off = metrics_off;
        edit(&mut options);
        let served = berth_testkit::serve(dir.path(), options).await;
        let addr = served.addr;
        let base = served.url();
        let hub = served.state.hub.clone();
        let registry = served.state.registry.clone();
        let meta = served.meta.clone();
        let client = Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .build()
            .expect("client");
        Berth {
            addr,
            hub,
            registry,
            meta,
            client,
            clock,
            base,
            _served: served,
            _dir: dir,
        }
    }

    /// The server's SQLite database file, for writing what another component (the scanner)
    /// would have stored.
    pub fn database_path(&self) -> std::path::PathBuf {
        self._dir.path().join("berth.db")
    }

    /// Writes the pulls recorded so far, as the server's timer does every few seconds.
    pub async fn flush_pulls(&self) {
        self.hub.flush_pulls().await.expect("flush pulls");
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Sends a request with `credentials` and an optional JSON body.
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        credentials: &Credentials,
        body: Option<Value>,
    ) -> Reply {
        let mut request = credentials.apply(self.client.request(method.clone(), self.url(path)));
        if let Some(body) = body {
            request = request.json(&body);
        }
        checked(
            &method,
            path,
            Reply::read(request.send().await.expect("request")).await,
        )
    }

    /// Sends raw bytes as the body (for malformed JSON).
    pub async fn send_raw(
        &self,
        method: Method,
        path: &str,
        credentials: &Credentials,
        body: impl Into<reqwest::Body>,
    ) -> Reply {
        let request = credentials
            .apply(self.client.request(method.clone(), self.url(path)))
            .header(CONTENT_TYPE, "application/json")
            .body(body);
        checked(
            &method,
            path,
            Reply::read(request.send().await.expect("request")).await,
        )
    }

    /// `GET` with a raw `Authorization` value (for credentials that cannot be read).
    pub async fn get_with_authorization(&self, path: &str, authorization: &str) -> Reply {
        let request = self
            .client
            .get(self.url(path))
            .header(AUTHORIZATION, authorization);
        checked(
            &Method::GET,
            path,
            Reply::read(request.send().await.expect("request")).await,
        )
    }

    /// `POST /api/v1/users/login`.
    pub async fn login(&self, username: &str, password: &str, otp: Option<&str>) -> Reply {
        let mut body = json!({ "username": username, "password": password });
        if let Some(otp) = otp {
            body["otp"] = json!(otp);
        }
        self.send(
            Method::POST,
            "/api/v1/users/login",
            &Credentials::Anonymous,
            Some(body),
        )
        .await
    }

    /// A client signed in to the API with a password.
    pub async fn session(&self, username: &str, password: &str) -> Session<'_> {
        let reply = self.login(username, password, None).await.expect(200);
        let token = reply.body["token"].as_str().expect("token").to_owned();
        Session {
            berth: self,
            credentials: Credentials::Bearer(token),
        }
    }

    /// A client signed in to the API with a password and a two-factor (or recovery) code.
    pub async fn session_with_code(&self, username: &str, code: &str) -> Session<'_> {
        let reply = self.login(username, PASSWORD, Some(code)).await.expect(200);
        let token = reply.body["token"].as_str().expect("token").to_owned();
        Session {
            berth: self,
            credentials: Credentials::Bearer(token),
        }
    }

    pub async fn admin(&self) -> Session<'_> {
        self.session("admin", ADMIN_PASSWORD).await
    }

    pub fn anonymous(&self) -> Session<'_> {
        Session {
            berth: self,
            credentials: Credentials::Anonymous,
        }
    }

    pub fn with(&self, credentials: Credentials) -> Session<'_> {
        Session {
            berth: self,
            credentials,
        }
    }

    /// Creates a user (as the admin, through the API) and signs in as them.
    pub async fn user(&self, name: &str) -> Session<'_> {
        self.admin()
            .await
            .post(
                "/api/v1/users",
                json!({ "username": name, "password": PASSWORD }),
            )
            .await
            .expect(201);
        self.session(name, PASSWORD).await
    }
}

/// The reply, after checking it against the OpenAPI document.
fn checked(method: &Method, path: &str, reply: Reply) -> Reply {
    if let Err(problem) =
        crate::schema::check_answer(method.as_str(), path, reply.status, &reply.body)
    {
        panic!(
            "the answer does not match openapi.json: {problem}\nbody: {}",
            reply.text
        );
    }
    reply
}

/// A client with fixed credentials.
pub struct Session<'a> {
    pub berth: &'a Berth,
    pub credentials: Credentials,
}

impl Session<'_> {
    pub async fn get(&self, path: &str) -> Reply {
        self.berth
            .send(Method::GET, path, &self.credentials, None)
            .await
    }

    pub async fn post(&self, path: &str, body: Value) -> Reply {
        self.berth
            .send(Method::POST, path, &self.credentials, Some(body))
            .await
    }

    /// Creates an access token as `request` asks (`POST /api/v1/access-tokens`); its secret.
    pub async fn new_access_token(&self, request: Value) -> String {
        self.post("/api/v1/access-tokens", request)
            .await
            .expect(201)
            .body["token"]
            .as_str()
            .expect("the new token's secret")
            .to_owned()
    }

    pub async fn patch(&self, path: &str, body: Value) -> Reply {
        self.berth
            .send(Method::PATCH, path, &self.credentials, Some(body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Reply {
        self.berth
            .send(Method::PUT, path, &self.credentials, Some(body))
            .await
    }

    /// `PUT /v2/<repo>/manifests/<reference>`, read whole (a refusal's JSON body included).
    pub async fn put_manifest_reply(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        manifest: &Value,
    ) -> Reply {
        let response = self
            .registry(Method::PUT, &format!("/v2/{repo}/manifests/{reference}"))
            .header(CONTENT_TYPE, media_type)
            .body(manifest.to_string())
            .send()
            .await
            .expect("manifest push");
        Reply::read(response).await
    }

    /// `DELETE /v2/<repo>/manifests/<reference>`, read whole.
    pub async fn delete_manifest_reply(&self, repo: &str, reference: &str) -> Reply {
        let response = self
            .registry(Method::DELETE, &format!("/v2/{repo}/manifests/{reference}"))
            .send()
            .await
            .expect("manifest delete");
        Reply::read(response).await
    }

    pub async fn delete(&self, path: &str) -> Reply {
        self.berth
            .send(Method::DELETE, path, &self.credentials, None)
            .await
    }

    /// Pushes a small image (config, one layer, manifest) to `repo:tag` over `/v2/`;
    /// returns the status of the first step that failed, or of the manifest `PUT` (201).
    pub async fn push_image(&self, repo: &str, tag: &str) -> u16 {
        let image = SmallImage::new(
            format!(r#"{{"architecture":"amd64","os":"linux","repo":"{repo}"}}"#),
            format!("layer of {repo}:{tag}"),
        );
        self.pusher().push_image(repo, tag, &image).await
    }

    /// `GET /v2/<repo>/manifests/<tag>`: the status.
    pub async fn pull_manifest(&self, repo: &str, tag: &str) -> u16 {
        self.registry(Method::GET, &format!("/v2/{repo}/manifests/{tag}"))
            .header("accept", OCI_MANIFEST)
            .send()
            .await
            .expect("manifest pull")
            .status()
            .as_u16()
    }

    /// `GET /v2/<repo>/manifests/<reference>`, read whole (a refusal's JSON body included).
    pub async fn pull_manifest_reply(&self, repo: &str, reference: &str) -> Reply {
        let response = self
            .registry(Method::GET, &format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .await
            .expect("manifest pull");
        Reply::read(response).await
    }

    /// `DELETE /v2/<repo>/manifests/<tag>`: the status.
    pub async fn delete_tag(&self, repo: &str, tag: &str) -> u16 {
        self.registry(Method::DELETE, &format!("/v2/{repo}/manifests/{tag}"))
            .send()
            .await
            .expect("tag delete")
            .status()
            .as_u16()
    }

    /// `HEAD /v2/<repo>/manifests/<reference>`: the status.
    pub async fn head_manifest(&self, repo: &str, reference: &str) -> u16 {
        self.registry(Method::HEAD, &format!("/v2/{repo}/manifests/{reference}"))
            .header("accept", format!("{OCI_MANIFEST}, {OCI_INDEX}"))
            .send()
            .await
            .expect("manifest head")
            .status()
            .as_u16()
    }

    /// Uploads `content` as a blob of `repo`; its descriptor.
    pub async fn push_blob(&self, repo: &str, media_type: &str, content: &[u8]) -> Value {
        let digest = self.pusher().push_blob_ok(repo, content).await;
        json!({ "mediaType": media_type, "digest": digest, "size": content.len() })
    }

    /// Pushes `manifest` (of `media_type`) as `repo:reference`; its digest.
    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        manifest: &Value,
    ) -> String {
        self.pusher()
            .push_manifest_ok(repo, reference, media_type, manifest.to_string().as_bytes())
            .await
    }

    /// Pushes an image for one platform with layers of the given contents, tagged `tag` (or
    /// untagged with a digest reference when `tag` is None); its manifest descriptor.
    pub async fn push_platform_image(
        &self,
        repo: &str,
        tag: Option<&str>,
        (os, architecture): (&str, &str),
        layers: &[&[u8]],
    ) -> Value {
        let config = platform_config(os, architecture);
        let config = self.push_blob(repo, OCI_CONFIG, config.as_bytes()).await;
        let mut descriptors = Vec::new();
        for layer in layers {
            descriptors.push(self.push_blob(repo, OCI_LAYER, layer).await);
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config,
            "layers": descriptors,
        });
        let digest = sha256(manifest.to_string().as_bytes());
        let reference = tag.unwrap_or(&digest);
        self.push_manifest(repo, reference, OCI_MANIFEST, &manifest)
            .await;
        json!({
            "mediaType": OCI_MANIFEST,
            "digest": digest,
            "size": manifest.to_string().len(),
            "platform": { "os": os, "architecture": architecture },
        })
    }

    /// Pushes an index of `images` (descriptors with platforms) as `repo:tag`; its digest.
    pub async fn push_index(&self, repo: &str, tag: &str, images: &[Value]) -> String {
        let index = json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": images });
        self.push_manifest(repo, tag, OCI_INDEX, &index).await
    }

    /// Attaches an artifact of `artifact_type` to `subject` (a manifest descriptor) in `repo`;
    /// its digest.
    pub async fn push_referrer(&self, repo: &str, subject: &Value, artifact_type: &str) -> String {
        let empty = self.push_blob(repo, OCI_EMPTY, b"{}").await;
        let payload = self
            .push_blob(repo, "application/octet-stream", artifact_type.as_bytes())
            .await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty,
            "layers": [payload],
            "subject": { "mediaType": subject["mediaType"], "digest": subject["digest"], "size": subject["size"] },
        });
        let digest = sha256(manifest.to_string().as_bytes());
        self.push_manifest(repo, &digest, OCI_MANIFEST, &manifest)
            .await
    }

    fn pusher(&self) -> Pusher<'_> {
        Pusher::new(&self.berth.client, &self.berth.base)
            .authorized(self.credentials.authorization())
    }

    fn registry(&self, method: Method, path: &str) -> RequestBuilder {
        self.credentials
            .apply(self.berth.client.request(method, self.berth.url(path)))
    }
}

/// The image config [`Session::push_platform_image`] pushes.
pub fn platform_config(os: &str, architecture: &str) -> String {
    format!(r#"{{"architecture":"{architecture}","os":"{os}"}}"#)
}

/// Basic credentials for `/v2/`.
pub fn basic(name: &str, secret: &str) -> Credentials {
    Credentials::Basic(name.to_owned(), secret.to_owned())
}

/// Waits for the next second of the wall clock: push times are whole seconds, and a test
/// that orders pushes by time needs them in different seconds.
pub async fn into_the_next_second() {
    let now = berth_core::time::now_unix();
    while berth_core::time::now_unix() == now {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
