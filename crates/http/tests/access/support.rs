//! The harness of the access tests: a registry served in-process with the real policy
//! authorizer and the Hub service over SQLite, fixtures written through the identity ports,
//! content pushed over HTTP by the site admin, and helpers to compare and decode what the
//! server answers.

use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use berth_core::auth::AuthSettings;
use berth_core::identity::{hash_password, hash_token, new_token_secret};
use berth_core::ports::{
    AccessTokens as _, Accounts as _, NewToken, NewUser, Organizations as _, Permission,
    RepositoryAccess as _,
};
use berth_core::time::now_unix;
use berth_meta::SqliteMeta;
use berth_oci::RepoName;
use reqwest::header::{ACCEPT, CONTENT_TYPE};
use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tempfile::TempDir;

pub use berth_testkit::images::{
    sha256, OCI_CONFIG, OCI_EMPTY, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
};
use berth_testkit::images::{Descriptor, Pusher};
pub const SIGNATURE_TYPE: &str = "application/vnd.dev.cosign.artifact.sig.v1+json";

/// Every fixture user's password: `+`, spaces, `&`, `=` and `%` check form and Basic decoding.
pub const PASSWORD: &str = "s3cret +pass&word=%41 ok";

/// A number no other call in this process returns: makes pushed content and tags unique.
pub fn unique() -> u32 {
    static NEXT: AtomicU32 = AtomicU32::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// How a request proves who sends it.
#[derive(Debug, Clone)]
pub enum Creds {
    Anonymous,
    /// A name with a password or an access token.
    Basic(String, String),
    /// A token from the token service (or a forged one).
    Bearer(String),
}

impl Creds {
    pub fn basic(name: &str, secret: &str) -> Creds {
        Creds::Basic(name.to_owned(), secret.to_owned())
    }

    pub fn apply(&self, request: RequestBuilder) -> RequestBuilder {
        match self {
            Creds::Anonymous => request,
            Creds::Basic(name, secret) => request.basic_auth(name, Some(secret)),
            Creds::Bearer(token) => request.bearer_auth(token),
        }
    }

    /// The `Authorization` header's value, if any.
    pub fn authorization(&self) -> Option<String> {
        match self {
            Creds::Anonymous => None,
            Creds::Basic(name, secret) => Some(format!(
                "Basic {}",
                STANDARD.encode(format!("{name}:{secret}"))
            )),
            Creds::Bearer(token) => Some(format!("Bearer {token}")),
        }
    }
}

/// A plain HTTP client; `from` picks the loopback address requests come from, so tests
/// that fail sign-ins on purpose do not use up another test's per-address budget.
pub fn client(from: Option<IpAddr>) -> Client {
    Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(60))
        .local_address(from)
        .build()
        .expect("client")
}

/// A loopback address of its own (127.0.x.y, never 127.0.0.1) for each call.
pub fn fresh_loopback() -> IpAddr {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let (high, low) = (1 + n / 250, 1 + n % 250);
    assert!(high < 250, "ran out of loopback addresses");
    IpAddr::from([127, 0, high as u8, low as u8])
}

/// Berth served on a loopback port with the policy authorizer, as `berth serve` wires it.
pub struct Server {
    pub addr: SocketAddr,
    pub meta: Arc<SqliteMeta>,
    pub client: Client,
    /// `http://127.0.0.1:PORT`
    base: String,
    _served: berth_testkit::Served,
    _dir: TempDir,
}

impl Server {
    pub async fn start() -> Server {
        Server::start_with(AuthSettings::default()).await
    }

    pub async fn start_with(settings: AuthSettings) -> Server {
        let mut options = berth_testkit::Options::default();
        options.settings.auth = settings;
        Server::start_with_options(options).await
    }

    /// Like [`Server::start_with`], reading the time from `clock` (a test moves it).
    pub async fn start_on_clock(
        settings: AuthSettings,
        clock: Option<Arc<dyn berth_core::clock::Clock>>,
    ) -> Server {
        let mut options = berth_testkit::Options::default();
        options.settings.auth = settings;
        options.clock = clock;
        Server::start_with_options(options).await
    }

    /// With the test kit's options as given (the session cap aside).
    pub async fn start_with_options(mut options: berth_testkit::Options) -> Server {
        let dir = tempfile::tempdir().expect("temp dir");
        // The matrix opens hundreds of sessions as one admin and finishes none of them; the
        // cap on sessions per account has its own tests.
        options.settings.registry.max_upload_sessions = None;
        let served = berth_testkit::serve(dir.path(), options).await;
        Server {
            addr: served.addr,
            meta: served.meta.clone(),
            client: client(None),
            base: served.url(),
            _served: served,
            _dir: dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The token realm challenges must name.
    pub fn realm(&self) -> String {
        self.url("/token")
    }

    /// The challenge a refused request must carry, exactly.
    pub fn challenge(&self, scope: Option<&str>, insufficient_scope: bool) -> String {
        let mut challenge = format!("Bearer realm=\"{}\",service=\"berth\"", self.realm());
        if let Some(scope) = scope {
            challenge.push_str(&format!(",scope=\"{scope}\""));
        }
        if insufficient_scope {
            challenge.push_str(",error=\"insufficient_scope\"");
        }
        challenge
    }

    pub fn request(&self, creds: &Creds, method: Method, path: &str) -> RequestBuilder {
        creds.apply(self.client.request(method, self.url(path)))
    }

    /// Sends a request, panicking on transport errors only.
    pub async fn send(&self, request: RequestBuilder) -> Response {
        request.send().await.expect("request failed")
    }

    pub async fn get(&self, creds: &Creds, path: &str) -> Response {
        self.send(self.request(creds, Method::GET, path)).await
    }

    // --- fixtures through the ports ---

    /// A user whose password is [`PASSWORD`] (hashed once per process: argon2id is slow).
    pub async fn user(&self, name: &str, is_admin: bool) -> i64 {
        static HASH: OnceLock<String> = OnceLock::new();
        let hash = HASH.get_or_init(|| hash_password(PASSWORD).expect("hash"));
        self.user_with_hash(name, hash, is_admin).await
    }

    pub async fn user_with_hash(&self, name: &str, hash: &str, is_admin: bool) -> i64 {
        self.meta
            .create_user(&NewUser {
                name: name.to_owned(),
                password_hash: hash.to_owned(),
                is_admin,
                now: now_unix(),
            })
            .await
            .expect("create user")
    }

    /// A personal (or, with `org`, organization) access token; returns its id and secret.
    pub async fn token(
        &self,
        user_id: i64,
        org: Option<i64>,
        scope: &str,
        repositories: &[&str],
        expires_at: Option<i64>,
    ) -> (i64, String) {
        let secret = new_token_secret().expect("secret");
        let record = self
            .meta
            .create_token(&NewToken {
                user_id,
                org_id: org,
                label: format!("test {}", unique()),
                token_hash: hash_token(&secret),
                scope: scope.to_owned(),
                repositories: repositories.iter().map(|r| r.to_string()).collect(),
                created_at: now_unix(),
                expires_at,
            })
            .await
            .expect("create token");
        (record.id, secret)
    }

    pub async fn revoke(&self, token_id: i64) {
        assert!(self
            .meta
            .revoke_token(token_id, now_unix())
            .await
            .expect("revoke"));
    }

    pub async fn repo_id(&self, name: &str) -> i64 {
        self.meta
            .repository(&repo(name))
            .await
            .expect("repository")
            .unwrap_or_else(|| panic!("no repository {name}"))
            .id
    }

    pub async fn set_private(&self, name: &str, private: bool) {
        assert!(self
            .meta
            .set_repository_private(&repo(name), private, None)
            .await
            .expect("visibility"));
    }

    /// A team of `org` with `members`, holding `permission` on `repositories`.
    pub async fn team(
        &self,
        org: i64,
        name: &str,
        members: &[i64],
        permission: Permission,
        repositories: &[&str],
    ) {
        let team = self.meta.create_team(org, name, "").await.expect("team");
        for &member in members {
            self.meta
                .add_team_member(team.id, member, None)
                .await
                .expect("member");
        }
        for name in repositories {
            let id = self.repo_id(name).await;
            self.meta
                .grant_team(team.id, id, permission, None)
                .await
                .expect("grant");
        }
    }

    pub async fn collaborator(&self, repository: &str, user: i64, permission: Permission) {
        let id = self.repo_id(repository).await;
        self.meta
            .set_collaborator(id, user, permission, None)
            .await
            .expect("collaborator");
    }

    // --- content over HTTP ---

    /// Pushes to `/v2/` as `creds`.
    fn pusher(&self, creds: &Creds) -> Pusher<'_> {
        Pusher::new(&self.client, &self.base).authorized(creds.authorization())
    }

    /// Pushes `content` in one request (`POST ?digest=`) and returns its digest.
    pub async fn push_blob(&self, creds: &Creds, repo: &str, content: &[u8]) -> String {
        self.pusher(creds).push_blob_ok(repo, content).await
    }

    pub async fn put_manifest(
        &self,
        creds: &Creds,
        repo: &str,
        reference: &str,
        body: &[u8],
    ) -> Response {
        self.pusher(creds)
            .put_manifest(repo, reference, OCI_MANIFEST, body)
            .await
    }

    pub async fn push_manifest(&self, creds: &Creds, repo: &str, reference: &str, body: &[u8]) {
        self.pusher(creds)
            .push_manifest_ok(repo, reference, OCI_MANIFEST, body)
            .await;
    }

    /// Pushes an image (a config and a layer, unique to `seed`) tagged `tag`, and a
    /// signature that refers to it.
    pub async fn push_image(&self, creds: &Creds, repo: &str, tag: &str, seed: u32) -> Image {
        let config = format!(r#"{{"architecture":"amd64","os":"linux","seed":{seed}}}"#);
        let config_digest = self.push_blob(creds, repo, config.as_bytes()).await;
        let layer: Vec<u8> = format!("layer {seed} of {repo}").into_bytes();
        let layer_digest = self.push_blob(creds, repo, &layer).await;
        let manifest = image_manifest(
            (&config_digest, config.len()),
            &[(&layer_digest, layer.len())],
        );
        self.push_manifest(creds, repo, tag, &manifest).await;
        let digest = sha256(&manifest);

        let empty = self.push_blob(creds, repo, b"{}").await;
        let payload = format!("signature of {digest}").into_bytes();
        let payload_digest = self.push_blob(creds, repo, &payload).await;
        let signature = serde_json::to_vec_pretty(&json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": SIGNATURE_TYPE,
            "config": {"mediaType": OCI_EMPTY, "digest": empty, "size": 2},
            "layers": [{"mediaType": OCI_LAYER, "digest": payload_digest, "size": payload.len()}],
            "subject": {"mediaType": OCI_MANIFEST, "digest": digest, "size": manifest.len()},
        }))
        .expect("json");
        let signature_digest = sha256(&signature);
        self.push_manifest(creds, repo, &signature_digest, &signature)
            .await;
        Image {
            manifest,
            digest,
            layer,
            layer_digest,
            signature_digest,
        }
    }

    /// The Docker token endpoint: `GET /token?service=berth&scope=…` with `creds`.
    pub async fn get_token(&self, creds: &Creds, scopes: &[&str], offline: bool) -> Response {
        let mut query = vec![("service", "berth".to_owned())];
        query.extend(scopes.iter().map(|s| ("scope", s.to_string())));
        if offline {
            query.push(("offline_token", "true".to_owned()));
        }
        self.send(self.request(creds, Method::GET, "/token").query(&query))
            .await
    }

    /// A bearer token for `scopes`, asserting the token service issued one.
    pub async fn bearer(&self, creds: &Creds, scopes: &[&str]) -> (Creds, Value) {
        let resp = self.get_token(creds, scopes, false).await;
        let status = resp.status();
        let text = resp.text().await.expect("body");
        assert_eq!(status, 200, "token for {creds:?}: {text}");
        let body: Value = serde_json::from_str(&text).expect("json");
        let token = body["token"].as_str().expect("token").to_owned();
        let claims = jwt_claims(&token);
        (Creds::Bearer(token), claims)
    }

    /// `POST /token` with a form body.
    pub async fn post_token(&self, pairs: &[(&str, &str)]) -> Response {
        self.send(
            self.client
                .post(self.url("/token"))
                .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
                .body(form(pairs)),
        )
        .await
    }
}

/// A repository name.
pub fn repo(name: &str) -> RepoName {
    name.parse().expect("repository name")
}

/// An OCI image manifest with a config and layers given as (digest, size).
pub fn image_manifest(config: (&str, usize), layers: &[(&str, usize)]) -> Vec<u8> {
    let described = |media_type: &str, (digest, size): (&str, usize)| Descriptor {
        media_type: media_type.to_owned(),
        digest: digest.to_owned(),
        size: size as u64,
        artifact_type: None,
        annotations: Vec::new(),
    };
    let layers: Vec<Descriptor> = layers.iter().map(|l| described(OCI_LAYER, *l)).collect();
    let manifest = berth_testkit::images::image_manifest(&described(OCI_CONFIG, config), &layers);
    serde_json::to_vec_pretty(&manifest).expect("json")
}

/// What [`Server::push_image`] pushed.
#[derive(Debug, Clone)]
pub struct Image {
    pub manifest: Vec<u8>,
    pub digest: String,
    pub layer: Vec<u8>,
    pub layer_digest: String,
    pub signature_digest: String,
}

/// `application/x-www-form-urlencoded`, spelled out so the test controls the encoding:
/// spaces become `+`, everything but unreserved characters is percent-encoded.
pub fn form(pairs: &[(&str, &str)]) -> String {
    let encode = |s: &str| {
        s.bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                    (b as char).to_string()
                }
                b' ' => "+".to_owned(),
                other => format!("%{other:02X}"),
            })
            .collect::<String>()
    };
    pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The decoded payload of a JWT (not verified: that is the server's job).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("a JWT has a payload");
    let bytes = URL_SAFE_NO_PAD.decode(payload).expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON payload")
}

/// The `access` claim as {"type:name" → actions}.
pub fn access_of(claims: &Value) -> HashMap<String, Vec<String>> {
    claims["access"]
        .as_array()
        .expect("access is a list")
        .iter()
        .map(|entry| {
            let key = format!(
                "{}:{}",
                entry["type"].as_str().expect("type"),
                entry["name"].as_str().expect("name")
            );
            let actions = entry["actions"]
                .as_array()
                .expect("actions")
                .iter()
                .map(|a| a.as_str().expect("action").to_owned())
                .collect();
            (key, actions)
        })
        .collect()
}

/// A response as a client sees it, minus `Date`: what must not differ between a private
/// repository and a missing one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub status: u16,
    /// Sorted (name, value) pairs.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Snapshot {
    pub async fn of(resp: Response) -> Snapshot {
        let status = resp.status().as_u16();
        let mut headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            // Both differ on every answer, whatever was asked.
            .filter(|(name, _)| *name != "date" && *name != "x-request-id")
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        headers.sort();
        let body = String::from_utf8_lossy(&resp.bytes().await.expect("body")).into_owned();
        Snapshot {
            status,
            headers,
            body,
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The body as JSON (Null when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }

    /// The code of the first OCI error in the body.
    pub fn error_code(&self) -> Option<String> {
        self.json()["errors"][0]["code"].as_str().map(str::to_owned)
    }

    /// The same answer with `from` spelled `to` everywhere, and upload session ids (which
    /// are random) replaced by a placeholder.
    pub fn renamed(&self, from: &str, to: &str) -> Snapshot {
        let session = self.header("docker-upload-uuid").map(str::to_owned);
        let fix = |s: &str| {
            let s = s.replace(from, to);
            match &session {
                Some(id) => s.replace(id.as_str(), "<session>"),
                None => s,
            }
        };
        let mut headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(n, v)| (n.clone(), fix(v)))
            .collect();
        headers.sort();
        Snapshot {
            status: self.status,
            headers,
            body: fix(&self.body),
        }
    }
}

/// A manifest GET with the `Accept` header clients send.
pub fn accept_manifests(request: RequestBuilder) -> RequestBuilder {
    request.header(ACCEPT, format!("{OCI_MANIFEST}, {OCI_INDEX}"))
}
