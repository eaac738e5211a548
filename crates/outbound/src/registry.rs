//! A client for remote OCI registries, for mirrors (pull) and replication (push, and the
//! listings pull rules read: `_catalog`, tags, referrers): Docker
//! token auth (`realm`, `service`, `scope`, as Docker Hub and GHCR answer) and Basic auth,
//! redirects followed only to addresses the webhook address policy allows, bounded time;
//! blobs pushed in one streamed request or, when large, in chunks.
//!
//! The configured registry's own host is trusted (the operator chose it, loopback
//! included); every other host a redirect or a token realm names is resolved through the
//! checked resolver, and credentials are only ever sent to the configured host and its
//! token realm.

use crate::{cause, find_refusal, CheckedResolver};
use base64::Engine;
use berth_core::mirror::{Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};
use berth_core::ports::ByteStream;
use berth_core::replication::{
    BlobSource, Connector, Destination, ManifestPut, Origin, RemoteManifest, RemoteSpec,
};
use berth_core::webhooks::check_address;
use berth_oci::manifest::MAX_MANIFEST_BYTES;
use berth_oci::Digest;
use futures_util::StreamExt;
use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode, Url};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The manifest types a pull accepts, most specific first.
const MANIFEST_TYPES: &str = "application/vnd.oci.image.index.v1+json, \
application/vnd.docker.distribution.manifest.list.v2+json, \
application/vnd.oci.image.manifest.v1+json, \
application/vnd.docker.distribution.manifest.v2+json";

/// Redirects followed per request (a blob `GET` usually takes one, to a CDN).
const MAX_REDIRECTS: usize = 5;

/// How a remote registry is reached.
#[derive(Clone)]
pub struct RemoteRegistry {
    /// The registry's root URL (`https://registry-1.docker.io`).
    pub url: String,
    pub username: Option<String>,
    /// A password or access token; never logged.
    pub password: Option<String>,
    pub tls_verify: bool,
    /// Limit for answers other than blob bodies, and for each read of a blob body.
    pub timeout: Duration,
    /// Blobs larger than this are pushed in `PATCH` chunks of this size.
    pub chunk_size: u64,
}

impl std::fmt::Debug for RemoteRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteRegistry")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("tls_verify", &self.tls_verify)
            .finish_non_exhaustive()
    }
}

impl RemoteRegistry {
    pub fn new(url: &str) -> RemoteRegistry {
        RemoteRegistry {
            url: url.to_owned(),
            username: None,
            password: None,
            tls_verify: true,
            timeout: Duration::from_secs(30),
            chunk_size: DEFAULT_CHUNK_SIZE,
        }
    }
}

/// The chunk size of pushes: large, because every chunk is a request the remote commits
/// (Distribution pushes 16 MiB chunks at about half its one-request speed), yet a bound
/// on what a broken connection costs.
pub const DEFAULT_CHUNK_SIZE: u64 = 128 * 1024 * 1024;

/// A bearer token for one set of scopes, until shortly before it expires.
struct CachedToken {
    header: HeaderValue,
    until: Instant,
}

/// The most scope sets whose tokens are kept.
const MAX_TOKENS: usize = 1024;

/// A client for one remote registry.
pub struct RegistryClient {
    base: Url,
    /// To the configured host (and its realm when on the same host).
    trusted: reqwest::Client,
    /// To any other host: only addresses the address policy allows.
    checked: reqwest::Client,
    basic: Option<HeaderValue>,
    timeout: Duration,
    tokens: Mutex<HashMap<String, CachedToken>>,
    /// Set once the registry asked for Basic auth: sent up front from then on.
    wants_basic: std::sync::atomic::AtomicBool,
    chunk_size: u64,
}

impl std::fmt::Debug for RegistryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryClient")
            .field("base", &self.base.as_str())
            .finish_non_exhaustive()
    }
}

/// A push's blob: its size and bytes.
pub struct PushBlob {
    pub size: u64,
    pub body: ByteStream,
}

impl RegistryClient {
    pub fn new(remote: &RemoteRegistry) -> Result<RegistryClient, String> {
        let base = Url::parse(remote.url.trim_end_matches('/'))
            .map_err(|e| format!("registry URL {:?}: {e}", remote.url))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(format!("registry URL {:?} is not http(s)", remote.url));
        }
        let build = |resolver: Option<CheckedResolver>| {
            let mut builder = reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(remote.timeout)
                .pool_idle_timeout(Duration::from_secs(60))
                .danger_accept_invalid_certs(!remote.tls_verify)
                .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")));
            if let Some(resolver) = resolver {
                builder = builder.dns_resolver(Arc::new(resolver));
            }
            builder
                .build()
                .map_err(|e| format!("cannot build the registry HTTP client: {e}"))
        };
        let basic = match (&remote.username, &remote.password) {
            (Some(user), password) => {
                let raw = format!("{user}:{}", password.as_deref().unwrap_or_default());
                let encoded = base64::engine::general_purpose::STANDARD.encode(raw);
                let mut value =
                    HeaderValue::from_str(&format!("Basic {encoded}")).map_err(|_| {
                        "username or password holds characters a header cannot".to_owned()
                    })?;
                value.set_sensitive(true);
                Some(value)
            }
            _ => None,
        };
        Ok(RegistryClient {
            base,
            trusted: build(None)?,
            checked: build(Some(CheckedResolver {
                allow_private: false,
            }))?,
            basic,
            timeout: remote.timeout,
            tokens: Mutex::new(HashMap::new()),
            wants_basic: std::sync::atomic::AtomicBool::new(false),
            chunk_size: remote.chunk_size.max(1024 * 1024),
        })
    }

    fn url(&self, path: &str) -> Result<Url, UpstreamError> {
        self.base
            .join(path)
            .map_err(|e| UpstreamError::Invalid(format!("bad path {path}: {e}")))
    }

    /// Whether `url` is on the configured registry's host and port.
    fn is_home(&self, url: &Url) -> bool {
        url.host_str() == self.base.host_str()
            && url.port_or_known_default() == self.base.port_or_known_default()
    }

    /// The client for `url`, refusing literal addresses the policy forbids off the home host.
    fn client_for(&self, url: &Url) -> Result<&reqwest::Client, UpstreamError> {
        if self.is_home(url) {
            return Ok(&self.trusted);
        }
        let literal: Option<IpAddr> = match url.host() {
            Some(url::Host::Ipv4(ip)) => Some(IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => Some(IpAddr::V6(ip)),
            _ => None,
        };
        if let Some(ip) = literal {
            check_address(ip).map_err(|why| UpstreamError::Refused(format!("{ip} is {why}")))?;
        }
        Ok(&self.checked)
    }

    /// The credentials header cached for `scopes`, if any.
    fn cached_auth(&self, scopes: &[String]) -> Option<HeaderValue> {
        if self.wants_basic.load(std::sync::atomic::Ordering::Relaxed) {
            return self.basic.clone();
        }
        let tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        tokens
            .get(&scopes.join(" "))
            .filter(|t| t.until > Instant::now())
            .map(|t| t.header.clone())
    }

    /// Sends a request, answering one auth challenge, following redirects.
    async fn send(
        &self,
        method: Method,
        url: Url,
        scopes: &[String],
        headers: HeaderMap,
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response, UpstreamError> {
        let mut auth = self.cached_auth(scopes);
        let mut challenged = false;
        loop {
            let response = self
                .follow(
                    method.clone(),
                    url.clone(),
                    &headers,
                    auth.as_ref(),
                    body.clone(),
                )
                .await?;
            if response.status() != StatusCode::UNAUTHORIZED || challenged {
                return Ok(response);
            }
            challenged = true;
            let challenge = response
                .headers()
                .get(WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
                .ok_or(UpstreamError::Denied(401))?;
            auth = Some(self.answer(&challenge, scopes).await?);
        }
    }

    /// One request, following redirects: credentials go only to the home host.
    async fn follow(
        &self,
        method: Method,
        mut url: Url,
        headers: &HeaderMap,
        auth: Option<&HeaderValue>,
        body: Option<bytes::Bytes>,
    ) -> Result<reqwest::Response, UpstreamError> {
        for _ in 0..=MAX_REDIRECTS {
            let client = self.client_for(&url)?;
            let mut request = client
                .request(method.clone(), url.clone())
                .headers(headers.clone());
            if let (true, Some(auth)) = (self.is_home(&url), auth) {
                request = request.header(AUTHORIZATION, auth.clone());
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let response = tokio::time::timeout(self.timeout, request.send())
                .await
                .map_err(|_| UpstreamError::Timeout(self.timeout.as_secs()))?
                .map_err(|e| self.transport_error(&e))?;
            if !response.status().is_redirection() {
                return Ok(response);
            }
            let location = response
                .headers()
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .ok_or_else(|| UpstreamError::Invalid("redirect without Location".to_owned()))?;
            url = url
                .join(location)
                .map_err(|e| UpstreamError::Invalid(format!("redirect to a bad URL: {e}")))?;
            if !matches!(url.scheme(), "http" | "https") {
                return Err(UpstreamError::Refused(format!(
                    "redirect to {}",
                    url.scheme()
                )));
            }
        }
        Err(UpstreamError::Invalid("too many redirects".to_owned()))
    }

    fn transport_error(&self, err: &reqwest::Error) -> UpstreamError {
        if let Some(refused) = std::error::Error::source(err).and_then(find_refusal) {
            return match refused {
                crate::OutboundError::Refused(why) => UpstreamError::Refused(why),
                other => UpstreamError::Unreachable(other.to_string()),
            };
        }
        if err.is_timeout() {
            UpstreamError::Timeout(self.timeout.as_secs())
        } else {
            UpstreamError::Unreachable(cause(err))
        }
    }

    /// Answers a `WWW-Authenticate` challenge: Basic credentials, or a bearer token from the
    /// realm for `scopes` (the realm's own `scope` when it names one).
    async fn answer(
        &self,
        challenge: &str,
        scopes: &[String],
    ) -> Result<HeaderValue, UpstreamError> {
        let (scheme, params) = parse_challenge(challenge);
        if scheme.eq_ignore_ascii_case("basic") {
            self.wants_basic
                .store(true, std::sync::atomic::Ordering::Relaxed);
            return self.basic.clone().ok_or(UpstreamError::Denied(401));
        }
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(UpstreamError::Invalid(format!(
                "unknown auth scheme {scheme}"
            )));
        }
        let realm = params
            .get("realm")
            .ok_or_else(|| UpstreamError::Invalid("bearer challenge without realm".to_owned()))?;
        let mut realm = Url::parse(realm)
            .map_err(|e| UpstreamError::Invalid(format!("token realm {realm:?}: {e}")))?;
        {
            let mut query = realm.query_pairs_mut();
            if let Some(service) = params.get("service") {
                query.append_pair("service", service);
            }
            for scope in scopes {
                query.append_pair("scope", scope);
            }
        }
        let client = self.client_for(&realm)?;
        let mut request = client.get(realm.clone());
        // The realm is where credentials are meant to go (auth.docker.io, ghcr.io/token).
        if let Some(basic) = &self.basic {
            request = request.header(AUTHORIZATION, basic.clone());
        }
        let response = tokio::time::timeout(self.timeout, request.send())
            .await
            .map_err(|_| UpstreamError::Timeout(self.timeout.as_secs()))?
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        if !status.is_success() {
            return Err(status_error(status));
        }
        let body = read_capped(response, 64 * 1024).await?;
        #[derive(serde::Deserialize)]
        struct TokenAnswer {
            token: Option<String>,
            access_token: Option<String>,
            expires_in: Option<u64>,
        }
        let answer: TokenAnswer = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Invalid(format!("token answer: {e}")))?;
        let token = answer
            .token
            .or(answer.access_token)
            .ok_or_else(|| UpstreamError::Invalid("token answer without a token".to_owned()))?;
        let mut header = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
            UpstreamError::Invalid("token holds characters a header cannot".to_owned())
        })?;
        header.set_sensitive(true);
        // Docker's default lifetime is 60 s; keep a margin for the clock and the trip.
        let lifetime = answer.expires_in.unwrap_or(60).max(30) - 20;
        let mut tokens = self.tokens.lock().unwrap_or_else(|p| p.into_inner());
        if tokens.len() >= MAX_TOKENS {
            tokens.clear();
        }
        tokens.insert(
            scopes.join(" "),
            CachedToken {
                header: header.clone(),
                until: Instant::now() + Duration::from_secs(lifetime),
            },
        );
        Ok(header)
    }

    fn pull_scope(repo: &str) -> Vec<String> {
        vec![format!("repository:{repo}:pull")]
    }

    fn push_scope(repo: &str) -> Vec<String> {
        vec![format!("repository:{repo}:pull,push")]
    }

    /// A manifest `HEAD` or `GET` under `scopes`: None when the remote says 404.
    async fn manifest_request(
        &self,
        method: Method,
        repo: &str,
        reference: &str,
        scopes: &[String],
    ) -> Result<Option<reqwest::Response>, UpstreamError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let response = self
            .send(method, url, scopes, manifest_headers(), None)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(response)),
            s => Err(status_error(s)),
        }
    }

    /// A blob `HEAD` or `GET` under `scopes`: None when the remote says 404.
    async fn blob_request(
        &self,
        method: Method,
        repo: &str,
        digest: &Digest,
        scopes: &[String],
    ) -> Result<Option<reqwest::Response>, UpstreamError> {
        let url = self.url(&format!("/v2/{repo}/blobs/{digest}"))?;
        let response = self
            .send(method, url, scopes, HeaderMap::new(), None)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(response)),
            s => Err(status_error(s)),
        }
    }

    /// The digest a `HEAD` of the manifest reports.
    async fn head_manifest_with(
        &self,
        repo: &str,
        reference: &str,
        scopes: &[String],
    ) -> Result<Option<Digest>, UpstreamError> {
        match self
            .manifest_request(Method::HEAD, repo, reference, scopes)
            .await?
        {
            None => Ok(None),
            Some(response) => digest_header(response.headers()).map(Some).ok_or_else(|| {
                UpstreamError::Invalid("HEAD without Docker-Content-Digest".to_owned())
            }),
        }
    }

    /// The manifest's exact bytes, its type and the digest the remote names.
    async fn get_manifest_with(
        &self,
        repo: &str,
        reference: &str,
        scopes: &[String],
    ) -> Result<Option<UpstreamManifest>, UpstreamError> {
        let Some(response) = self
            .manifest_request(Method::GET, repo, reference, scopes)
            .await?
        else {
            return Ok(None);
        };
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let digest = digest_header(response.headers());
        let body = read_capped(response, MAX_MANIFEST_BYTES).await?;
        Ok(Some(UpstreamManifest {
            media_type,
            body,
            digest,
        }))
    }

    async fn blob_size_with(
        &self,
        repo: &str,
        digest: &Digest,
        scopes: &[String],
    ) -> Result<Option<u64>, UpstreamError> {
        // The header itself: for a `HEAD`, reqwest's `content_length()` is the (empty)
        // body's length.
        Ok(self
            .blob_request(Method::HEAD, repo, digest, scopes)
            .await?
            .map(|r| {
                r.headers()
                    .get(CONTENT_LENGTH)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse().ok())
                    .unwrap_or_default()
            }))
    }

    /// Whether the remote has the blob; its size if so (a `HEAD`).
    pub async fn blob_size(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<u64>, UpstreamError> {
        self.blob_size_with(repo, digest, &Self::pull_scope(repo))
            .await
    }

    /// Links a blob the remote holds in `from` into `repo`; false when the remote did not
    /// mount it (then push it).
    pub async fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &Digest,
    ) -> Result<bool, UpstreamError> {
        let mut url = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        url.query_pairs_mut()
            .append_pair("mount", &digest.to_string())
            .append_pair("from", from);
        let mut scopes = Self::push_scope(repo);
        scopes.push(format!("repository:{from}:pull"));
        let response = self
            .send(
                Method::POST,
                url,
                &scopes,
                HeaderMap::new(),
                Some(bytes::Bytes::new()),
            )
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(true),
            StatusCode::ACCEPTED => {
                // The remote opened an upload session instead: end it rather than leave it
                // to expire.
                if let Some(session) = upload_location(&response) {
                    if let Ok(session) = self.upload_url(&session) {
                        let _ = self
                            .authorized(self.trusted.delete(session), &Self::push_scope(repo))
                            .send()
                            .await;
                    }
                }
                Ok(false)
            }
            s => Err(status_error(s)),
        }
    }

    /// Opens an upload session; where its bytes go.
    async fn start_upload(&self, repo: &str) -> Result<Url, UpstreamError> {
        let url = self.url(&format!("/v2/{repo}/blobs/uploads/"))?;
        let started = self
            .send(
                Method::POST,
                url,
                &Self::push_scope(repo),
                HeaderMap::new(),
                Some(bytes::Bytes::new()),
            )
            .await?;
        if started.status() != StatusCode::ACCEPTED {
            return Err(status_error(started.status()));
        }
        let location = upload_location(&started)
            .ok_or_else(|| UpstreamError::Invalid("upload without Location".to_owned()))?;
        self.upload_url(&location)
    }

    /// An upload `Location`, resolved against the registry; only ever on its own host, where
    /// the credentials may go.
    fn upload_url(&self, location: &str) -> Result<Url, UpstreamError> {
        let url = self
            .base
            .join(location)
            .map_err(|e| UpstreamError::Invalid(format!("upload Location: {e}")))?;
        if !self.is_home(&url) {
            return Err(UpstreamError::Refused(
                "upload location on another host".to_owned(),
            ));
        }
        Ok(url)
    }

    /// `request` with the credentials cached for `scopes`. Upload requests carry streamed
    /// bodies that cannot be sent twice, so they cannot answer a challenge themselves: the
    /// token comes from the session's start (or its renewal before each chunk).
    fn authorized(
        &self,
        request: reqwest::RequestBuilder,
        scopes: &[String],
    ) -> reqwest::RequestBuilder {
        match self.cached_auth(scopes) {
            Some(auth) => request.header(AUTHORIZATION, auth),
            None => request,
        }
    }

    /// Renews the token for `scopes` if the remote uses tokens and the cached one ran out
    /// (a long push outlives Docker's 60-second tokens): asks the session's status, which
    /// answers the challenge through [`RegistryClient::send`].
    async fn renew_auth(&self, session: &Url, scopes: &[String]) -> Result<(), UpstreamError> {
        let uses_tokens = !self
            .tokens
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_empty();
        if uses_tokens && self.cached_auth(scopes).is_none() {
            let status = self
                .send(Method::GET, session.clone(), scopes, HeaderMap::new(), None)
                .await?;
            if !status.status().is_success() {
                return Err(status_error(status.status()));
            }
        }
        Ok(())
    }

    /// Sends `len` bytes at `start` of the upload with a `PATCH`; the session's next URL.
    async fn push_chunk(
        &self,
        repo: &str,
        session: Url,
        start: u64,
        len: u64,
        body: ByteStream,
    ) -> Result<Url, UpstreamError> {
        let scopes = Self::push_scope(repo);
        self.renew_auth(&session, &scopes).await?;
        let request = self
            .trusted
            .patch(session)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, len)
            .header(
                "content-range",
                format!("{start}-{}", (start + len).saturating_sub(1)),
            )
            .body(reqwest::Body::wrap_stream(body));
        let response = self
            .authorized(request, &scopes)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        if response.status() != StatusCode::ACCEPTED {
            return Err(status_error(response.status()));
        }
        let location = upload_location(&response)
            .ok_or_else(|| UpstreamError::Invalid("chunk answer without Location".to_owned()))?;
        self.upload_url(&location)
    }

    /// Ends the upload with a `PUT` naming the digest, carrying `body` (the whole blob, or
    /// nothing after chunks).
    async fn finish_upload(
        &self,
        repo: &str,
        mut session: Url,
        digest: &Digest,
        size: u64,
        body: ByteStream,
    ) -> Result<(), UpstreamError> {
        let scopes = Self::push_scope(repo);
        self.renew_auth(&session, &scopes).await?;
        session
            .query_pairs_mut()
            .append_pair("digest", &digest.to_string());
        let request = self
            .trusted
            .put(session)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(body));
        let response = self
            .authorized(request, &scopes)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        match response.status() {
            StatusCode::CREATED => Ok(()),
            s => Err(status_error(s)),
        }
    }

    /// Uploads a blob: a session, then its bytes in one `PUT` (streamed).
    pub async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        blob: PushBlob,
    ) -> Result<(), UpstreamError> {
        let session = self.start_upload(repo).await?;
        self.finish_upload(repo, session, digest, blob.size, blob.body)
            .await
    }

    /// Pushes a manifest byte for byte.
    async fn put_manifest_with(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<ManifestPut, UpstreamError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .map_err(|_| UpstreamError::Invalid("bad media type".to_owned()))?,
        );
        let response = self
            .send(
                Method::PUT,
                url,
                &Self::push_scope(repo),
                headers,
                Some(body.into()),
            )
            .await?;
        match response.status() {
            StatusCode::CREATED => Ok(ManifestPut {
                digest: digest_header(response.headers()),
                subject_recorded: response.headers().contains_key("oci-subject"),
            }),
            s => Err(status_error(s)),
        }
    }

    /// Pushes a manifest byte for byte; returns the digest the remote reports.
    pub async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: Vec<u8>,
    ) -> Result<Option<Digest>, UpstreamError> {
        Ok(self
            .put_manifest_with(repo, reference, media_type, body)
            .await?
            .digest)
    }
}

/// The `Location` of an upload answer.
fn upload_location(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn manifest_headers() -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(ACCEPT, HeaderValue::from_static(MANIFEST_TYPES));
    headers
}

fn digest_header(headers: &HeaderMap) -> Option<Digest> {
    headers
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

/// What a status means for the cache.
fn status_error(status: StatusCode) -> UpstreamError {
    match status.as_u16() {
        401 | 403 => UpstreamError::Denied(status.as_u16()),
        429 => UpstreamError::Throttled,
        s @ 500..=599 => UpstreamError::Server(s),
        413 => {
            UpstreamError::Invalid("status 413: the remote refuses content this large".to_owned())
        }
        s => UpstreamError::Invalid(format!("unexpected status {s}")),
    }
}

/// The body, refusing one longer than `max` without reading the rest.
async fn read_capped(response: reqwest::Response, max: usize) -> Result<Vec<u8>, UpstreamError> {
    if response
        .content_length()
        .is_some_and(|len| len > max as u64)
    {
        return Err(UpstreamError::TooLarge(max));
    }
    let mut body = Vec::new();
    let mut stream = response.bytes_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk
            .map_err(|e| UpstreamError::Unreachable(format!("body broke off: {}", cause(&e))))?;
        if body.len() + chunk.len() > max {
            return Err(UpstreamError::TooLarge(max));
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// `Bearer realm="…",service="…",scope="…"` → the scheme and its parameters.
fn parse_challenge(header: &str) -> (String, HashMap<String, String>) {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    let mut params = HashMap::new();
    let mut rest = rest.trim();
    while !rest.is_empty() {
        let Some((key, after)) = rest.split_once('=') else {
            break;
        };
        let key = key
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        let after = after.trim_start();
        let (value, remaining) = if let Some(quoted) = after.strip_prefix('"') {
            match quoted.find('"') {
                Some(end) => (&quoted[..end], &quoted[end + 1..]),
                None => (quoted, ""),
            }
        } else {
            match after.find(',') {
                Some(end) => (&after[..end], &after[end..]),
                None => (after, ""),
            }
        };
        params.insert(key, value.to_owned());
        rest = remaining.trim_start().trim_start_matches(',').trim_start();
    }
    (scheme.to_owned(), params)
}

#[async_trait::async_trait]
impl Upstream for RegistryClient {
    async fn head_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, UpstreamError> {
        self.head_manifest_with(repo, reference, &Self::pull_scope(repo))
            .await
    }

    async fn get_manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<UpstreamManifest>, UpstreamError> {
        self.get_manifest_with(repo, reference, &Self::pull_scope(repo))
            .await
    }

    async fn head_blob(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, UpstreamError> {
        self.blob_size(repo, digest).await
    }

    async fn get_blob(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<UpstreamBlob>, UpstreamError> {
        let Some(response) = self
            .blob_request(Method::GET, repo, digest, &Self::pull_scope(repo))
            .await?
        else {
            return Ok(None);
        };
        if response.status() != StatusCode::OK {
            return Err(UpstreamError::Invalid(format!(
                "unexpected status {} for a blob",
                response.status()
            )));
        }
        let size = response.content_length();
        let body = response
            .bytes_stream()
            .map(|chunk| chunk.map_err(|e| std::io::Error::other(cause(&e))));
        Ok(Some(UpstreamBlob {
            size,
            body: Box::pin(body),
        }))
    }
}

/// As a replication destination every request asks for push access (a pull-only token
/// may not see a repository that does not exist yet).
#[async_trait::async_trait]
impl Destination for RegistryClient {
    async fn manifest_digest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<Digest>, UpstreamError> {
        self.head_manifest_with(repo, reference, &Self::push_scope(repo))
            .await
    }

    async fn manifest(
        &self,
        repo: &str,
        reference: &str,
    ) -> Result<Option<RemoteManifest>, UpstreamError> {
        Ok(self
            .get_manifest_with(repo, reference, &Self::push_scope(repo))
            .await?
            .map(|m| RemoteManifest {
                media_type: m.media_type,
                body: m.body,
            }))
    }

    async fn blob_size(&self, repo: &str, digest: &Digest) -> Result<Option<u64>, UpstreamError> {
        self.blob_size_with(repo, digest, &Self::push_scope(repo))
            .await
    }

    async fn mount_blob(
        &self,
        repo: &str,
        from: &str,
        digest: &Digest,
    ) -> Result<bool, UpstreamError> {
        RegistryClient::mount_blob(self, repo, from, digest).await
    }

    async fn push_blob(
        &self,
        repo: &str,
        digest: &Digest,
        size: u64,
        source: &(dyn BlobSource + '_),
    ) -> Result<(), UpstreamError> {
        let mut session = self.start_upload(repo).await?;
        if size <= self.chunk_size {
            let body = source.open(0, size).await?;
            return self.finish_upload(repo, session, digest, size, body).await;
        }
        let mut start = 0;
        while start < size {
            let len = self.chunk_size.min(size - start);
            let body = source.open(start, len).await?;
            session = self.push_chunk(repo, session, start, len, body).await?;
            start += len;
        }
        let empty: ByteStream = Box::pin(futures_util::stream::empty());
        self.finish_upload(repo, session, digest, 0, empty).await
    }

    async fn put_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        body: &[u8],
    ) -> Result<ManifestPut, UpstreamError> {
        self.put_manifest_with(repo, reference, media_type, body.to_vec())
            .await
    }

    async fn delete_manifest(&self, repo: &str, reference: &str) -> Result<bool, UpstreamError> {
        let url = self.url(&format!("/v2/{repo}/manifests/{reference}"))?;
        let response = self
            .send(
                Method::DELETE,
                url,
                &[format!("repository:{repo}:delete,pull,push")],
                HeaderMap::new(),
                None,
            )
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(false),
            s if s.is_success() => Ok(true),
            s => Err(status_error(s)),
        }
    }
}

/// Listings (`_catalog`, tags, referrers) are small JSON documents: capped like manifests.
const MAX_LISTING_BYTES: usize = MAX_MANIFEST_BYTES;

impl RegistryClient {
    /// A JSON listing at `path` with `n` and `last`: None when the remote says 404.
    async fn listing(
        &self,
        path: &str,
        scopes: &[String],
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<serde_json::Value>, UpstreamError> {
        let mut url = self.url(path)?;
        url.query_pairs_mut().append_pair("n", &limit.to_string());
        if let Some(last) = last {
            url.query_pairs_mut().append_pair("last", last);
        }
        let response = self
            .send(Method::GET, url, scopes, HeaderMap::new(), None)
            .await?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            StatusCode::OK => {
                let body = read_capped(response, MAX_LISTING_BYTES).await?;
                serde_json::from_slice(&body)
                    .map(Some)
                    .map_err(|e| UpstreamError::Invalid(format!("listing {path}: {e}")))
            }
            s => Err(status_error(s)),
        }
    }
}

/// The strings of `field` in a listing (`repositories`, `tags`); a null list is empty.
fn names_in(listing: &serde_json::Value, field: &str) -> Vec<String> {
    listing
        .get(field)
        .and_then(|v| v.as_array())
        .map(|names| {
            names
                .iter()
                .filter_map(|n| n.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// As an origin of pull rules every request asks for pull access only.
#[async_trait::async_trait]
impl Origin for RegistryClient {
    async fn catalog_page(
        &self,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Vec<String>, UpstreamError> {
        let scopes = ["registry:catalog:*".to_owned()];
        if self.basic.is_some() && self.cached_auth(&scopes).is_none() {
            // Registries that list public repositories to anyone (Berth, Docker Hub) never
            // challenge a catalog request: sign in first, through `/v2/`, which does.
            let probe = self
                .send(
                    Method::GET,
                    self.url("/v2/")?,
                    &scopes,
                    HeaderMap::new(),
                    None,
                )
                .await?;
            if probe.status() == StatusCode::UNAUTHORIZED || probe.status() == StatusCode::FORBIDDEN
            {
                return Err(status_error(probe.status()));
            }
        }
        match self.listing("/v2/_catalog", &scopes, last, limit).await? {
            Some(listing) => Ok(names_in(&listing, "repositories")),
            None => Err(UpstreamError::Invalid(
                "the remote serves no catalog (/v2/_catalog): name one repository in the source"
                    .to_owned(),
            )),
        }
    }

    async fn tags_page(
        &self,
        repo: &str,
        last: Option<&str>,
        limit: u32,
    ) -> Result<Option<Vec<String>>, UpstreamError> {
        Ok(self
            .listing(
                &format!("/v2/{repo}/tags/list"),
                &Self::pull_scope(repo),
                last,
                limit,
            )
            .await?
            .map(|listing| names_in(&listing, "tags")))
    }

    async fn referrers(
        &self,
        repo: &str,
        digest: &Digest,
    ) -> Result<Option<Vec<Digest>>, UpstreamError> {
        let url = self.url(&format!("/v2/{repo}/referrers/{digest}"))?;
        let response = self
            .send(
                Method::GET,
                url,
                &Self::pull_scope(repo),
                HeaderMap::new(),
                None,
            )
            .await?;
        // Registries without the API answer 404 (Distribution 2.x), or 400/405.
        if matches!(
            response.status(),
            StatusCode::NOT_FOUND | StatusCode::BAD_REQUEST | StatusCode::METHOD_NOT_ALLOWED
        ) {
            return Ok(None);
        }
        if response.status() != StatusCode::OK {
            return Err(status_error(response.status()));
        }
        let is_index = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|t| t.starts_with("application/vnd.oci.image.index.v1+json"));
        let body = read_capped(response, MAX_LISTING_BYTES).await?;
        if !is_index {
            return Ok(None);
        }
        let index: serde_json::Value = serde_json::from_slice(&body)
            .map_err(|e| UpstreamError::Invalid(format!("referrers of {digest}: {e}")))?;
        Ok(Some(
            index
                .get("manifests")
                .and_then(|m| m.as_array())
                .map(|manifests| {
                    manifests
                        .iter()
                        .filter_map(|m| m.get("digest")?.as_str()?.parse().ok())
                        .collect()
                })
                .unwrap_or_default(),
        ))
    }
}

/// Connects replication to remote registries over HTTP.
#[derive(Debug, Clone, Copy, Default)]
pub struct RegistryConnector;

impl Connector for RegistryConnector {
    fn connect(&self, remote: &RemoteSpec) -> Result<Arc<dyn Destination>, String> {
        let client = RegistryClient::new(&RemoteRegistry {
            url: remote.url.clone(),
            username: remote.username.clone(),
            password: remote.password.clone(),
            tls_verify: remote.tls_verify,
            timeout: Duration::from_secs(60),
            chunk_size: DEFAULT_CHUNK_SIZE,
        })?;
        Ok(Arc::new(client))
    }

    fn connect_origin(&self, remote: &RemoteSpec) -> Result<Arc<dyn Origin>, String> {
        let client = RegistryClient::new(&RemoteRegistry {
            url: remote.url.clone(),
            username: remote.username.clone(),
            password: remote.password.clone(),
            tls_verify: remote.tls_verify,
            timeout: Duration::from_secs(60),
            chunk_size: DEFAULT_CHUNK_SIZE,
        })?;
        Ok(Arc::new(client))
    }
}

/// A `[[mirror]]` entry with the client that reaches its upstream.
pub fn connect_mirror(
    config: berth_core::mirror::MirrorConfig,
) -> Result<berth_core::mirror::Mirror, String> {
    let client = RegistryClient::new(&RemoteRegistry {
        url: config.upstream.clone(),
        username: config.username.clone(),
        password: config.password.clone(),
        tls_verify: config.tls_verify,
        timeout: Duration::from_secs(30),
        chunk_size: DEFAULT_CHUNK_SIZE,
    })
    .map_err(|e| format!("mirror {}: {e}", config.prefix))?;
    Ok(berth_core::mirror::Mirror {
        config,
        upstream: Arc::new(client),
    })
}

#[cfg(test)]
mod tests {
    use super::parse_challenge;

    #[test]
    fn challenges_are_parsed() {
        let (scheme, params) = parse_challenge(
            r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/nginx:pull""#,
        );
        assert_eq!(scheme, "Bearer");
        assert_eq!(params["realm"], "https://auth.docker.io/token");
        assert_eq!(params["service"], "registry.docker.io");
        assert_eq!(params["scope"], "repository:library/nginx:pull");
        let (scheme, params) = parse_challenge(r#"Basic realm="Registry Realm""#);
        assert_eq!(scheme, "Basic");
        assert_eq!(params["realm"], "Registry Realm");
        let (_, params) = parse_challenge("Bearer realm=https://ghcr.io/token, service=ghcr.io");
        assert_eq!(params["realm"], "https://ghcr.io/token");
        assert_eq!(params["service"], "ghcr.io");
    }
}
