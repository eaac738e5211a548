//! The pull-through cache: configured upstream registries served under a prefix (or as a
//! transparent mirror), with tag revalidation, single-flight fetches and stale serving.

mod access;
mod blobs;
mod flight;
mod manifests;
mod metrics;
mod upstream;

pub use access::MirrorAuthorizer;
pub use blobs::MirrorBlob;
pub use manifests::{Freshness, MirrorManifest};
pub use metrics::{MirrorCounters, MirrorTotals};
pub use upstream::{Upstream, UpstreamBlob, UpstreamError, UpstreamManifest};

use crate::access::Principal;
use crate::clock::Clock;
use crate::error::{Error, Result};
use crate::ports::{BlobStore, MetaStore};
use crate::Registry;
use berth_oci::RepoName;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Who may pull through a mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MirrorAccess {
    /// Anyone, signed in or not (the default).
    #[default]
    Public,
    /// Signed-in accounts only.
    SignedIn,
}

impl MirrorAccess {
    pub fn parse(value: &str) -> Option<MirrorAccess> {
        match value {
            "public" => Some(MirrorAccess::Public),
            "signed-in" | "signed_in" | "authenticated" => Some(MirrorAccess::SignedIn),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            MirrorAccess::Public => "public",
            MirrorAccess::SignedIn => "signed-in",
        }
    }

    pub fn allows(self, principal: &Principal) -> bool {
        self == MirrorAccess::Public || !principal.is_anonymous()
    }
}

/// Default of a mirror's `ttl`: how long a tag is served before it is checked again.
pub const DEFAULT_MIRROR_TTL: Duration = Duration::from_secs(3600);

/// Default of a mirror's `retention_days`: cached content not pulled for a week is dropped
/// (Harbor's proxy projects keep 7 days too).
pub const DEFAULT_MIRROR_RETENTION_DAYS: u32 = 7;

/// One `[[mirror]]` entry.
#[derive(Clone, PartialEq, Eq)]
pub struct MirrorConfig {
    /// The first name component it is served under (`dockerhub`).
    pub prefix: String,
    /// The upstream's base URL (`https://registry-1.docker.io`).
    pub upstream: String,
    pub username: Option<String>,
    /// A password or token for the upstream; never logged.
    pub password: Option<String>,
    pub ttl: Duration,
    pub tls_verify: bool,
    pub access: MirrorAccess,
    /// Cached content neither pulled nor fetched for this many days is dropped by the
    /// mirror namespace's retention policy (then collected); None keeps everything.
    pub retention_days: Option<u32>,
}

impl std::fmt::Debug for MirrorConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MirrorConfig")
            .field("prefix", &self.prefix)
            .field("upstream", &self.upstream)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "(set)"))
            .field("ttl", &self.ttl)
            .field("tls_verify", &self.tls_verify)
            .field("access", &self.access)
            .field("retention_days", &self.retention_days)
            .finish()
    }
}

impl MirrorConfig {
    /// A mirror of `upstream` under `prefix` with the defaults.
    pub fn new(prefix: &str, upstream: &str) -> MirrorConfig {
        MirrorConfig {
            prefix: prefix.to_owned(),
            upstream: upstream.trim_end_matches('/').to_owned(),
            username: None,
            password: None,
            ttl: DEFAULT_MIRROR_TTL,
            tls_verify: true,
            access: MirrorAccess::Public,
            retention_days: Some(DEFAULT_MIRROR_RETENTION_DAYS),
        }
    }

    /// The upstream's host (with its port when one is given), which containerd's `ns=` names.
    pub fn upstream_host(&self) -> String {
        url::Url::parse(&self.upstream)
            .ok()
            .and_then(|u| {
                let host = u.host_str()?.to_owned();
                Some(match u.port() {
                    Some(port) => format!("{host}:{port}"),
                    None => host,
                })
            })
            .unwrap_or_default()
    }

    /// The name at the upstream of `name` (what follows the prefix): Docker Hub keeps
    /// official images under `library/`, which docker adds by itself.
    pub fn remote_name(&self, name: &str) -> String {
        if self.is_docker_hub() && !name.contains('/') {
            format!("library/{name}")
        } else {
            name.to_owned()
        }
    }

    /// Whether the upstream is Docker Hub, whose official images live under `library/`.
    pub fn is_docker_hub(&self) -> bool {
        is_docker_hub_host(&self.upstream_host())
    }
}

/// The mirror `docker.io` names are pulled through (automated builds' base images): the
/// first whose upstream is Docker Hub, else `mirror_default`, which is where docker's
/// `registry-mirrors` send Docker Hub pulls.
pub fn docker_hub_mirror<'a>(
    mirrors: &'a [MirrorConfig],
    mirror_default: Option<&'a str>,
) -> Option<&'a str> {
    mirrors
        .iter()
        .find(|m| m.is_docker_hub())
        .map(|m| m.prefix.as_str())
        .or_else(|| mirror_default.filter(|d| mirrors.iter().any(|m| m.prefix == *d)))
}

fn is_docker_hub_host(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "registry-1.docker.io" | "index.docker.io" | "registry.hub.docker.com"
    )
}

/// Checks a set of mirrors and `mirror_default`; the error is one line naming the entry.
pub fn validate_mirrors(mirrors: &[MirrorConfig], default: Option<&str>) -> Result<(), String> {
    let mut seen: Vec<&str> = Vec::new();
    for (i, m) in mirrors.iter().enumerate() {
        let which = format!("mirror #{} ({})", i + 1, m.prefix);
        let valid_prefix = !m.prefix.is_empty()
            && m.prefix.len() <= 64
            && m.prefix
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
            && m.prefix.as_bytes()[0].is_ascii_alphanumeric();
        if !valid_prefix {
            return Err(format!(
                "{which}: prefix must be one lowercase name component (letters, digits, - and _)"
            ));
        }
        if seen.contains(&m.prefix.as_str()) {
            return Err(format!("{which}: prefix {} is used twice", m.prefix));
        }
        seen.push(&m.prefix);
        let url = url::Url::parse(&m.upstream)
            .map_err(|e| format!("{which}: upstream {:?} is not a URL: {e}", m.upstream))?;
        if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
            return Err(format!(
                "{which}: upstream must be an http:// or https:// URL with a host"
            ));
        }
        if url.path() != "/" && !url.path().is_empty() {
            return Err(format!(
                "{which}: upstream must be the registry's root URL, without a path"
            ));
        }
        if url.query().is_some() || !url.username().is_empty() {
            return Err(format!(
                "{which}: upstream must not carry a query or credentials (use username and password)"
            ));
        }
        if m.password.is_some() && m.username.is_none() {
            return Err(format!("{which}: password is set without username"));
        }
        if m.ttl.is_zero() {
            return Err(format!("{which}: ttl must be more than 0"));
        }
        let max_days = crate::lifecycle::retention::MAX_DAYS;
        if m.retention_days.is_some_and(|d| d == 0 || d > max_days) {
            return Err(format!(
                "{which}: retention_days must be from 1 to {max_days}, or 0 to keep everything"
            ));
        }
    }
    if let Some(default) = default {
        if !mirrors.iter().any(|m| m.prefix == default) {
            return Err(format!(
                "mirror_default = {default:?} names no [[mirror]] prefix"
            ));
        }
    }
    Ok(())
}

/// A configured mirror with the client that reaches its upstream.
pub struct Mirror {
    pub config: MirrorConfig,
    pub upstream: Arc<dyn Upstream>,
}

/// Where a request to a mirrored name goes: which mirror, the repository that caches it
/// here and the repository's name at the upstream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MirrorTarget {
    pub mirror: usize,
    /// Where the copy is kept (`dockerhub/library/nginx`).
    pub local: RepoName,
    /// The name at the upstream (`library/nginx`).
    pub remote: String,
}

/// Tags checked against the upstream lately, keyed by (local repository, tag), with when.
type Validated = Mutex<HashMap<(String, String), i64>>;

/// The most tag check times kept in memory; past it the map starts again (costing one
/// `HEAD` per tag at most).
const MAX_VALIDATED: usize = 100_000;

/// The pull-through cache service.
#[derive(Clone)]
pub struct Mirrors {
    inner: Arc<Inner>,
}

struct Inner {
    mirrors: Vec<Mirror>,
    default: Option<usize>,
    registry: Registry,
    meta: Arc<dyn MetaStore>,
    blobs: Arc<dyn BlobStore>,
    clock: Arc<dyn Clock>,
    counters: Vec<MirrorCounters>,
    validated: Validated,
    manifest_flights: flight::Flights<(usize, String, String), manifests::Fetched>,
    blob_flights: blobs::BlobFlights,
    max_blob_size: Option<u64>,
}

impl Mirrors {
    /// `default`: the prefix of `mirror_default` (validated beforehand).
    pub fn new(
        mirrors: Vec<Mirror>,
        default: Option<&str>,
        registry: Registry,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
        max_blob_size: Option<u64>,
    ) -> Mirrors {
        let default = default.and_then(|d| mirrors.iter().position(|m| m.config.prefix == d));
        let counters = mirrors.iter().map(|_| MirrorCounters::default()).collect();
        Mirrors {
            inner: Arc::new(Inner {
                mirrors,
                default,
                registry,
                meta,
                blobs,
                clock,
                counters,
                validated: Mutex::new(HashMap::new()),
                manifest_flights: flight::Flights::default(),
                blob_flights: blobs::BlobFlights::default(),
                max_blob_size,
            }),
        }
    }

    /// No mirrors at all: what tests and servers without `[[mirror]]` get.
    pub fn none(
        registry: Registry,
        meta: Arc<dyn MetaStore>,
        blobs: Arc<dyn BlobStore>,
        clock: Arc<dyn Clock>,
    ) -> Mirrors {
        Mirrors::new(Vec::new(), None, registry, meta, blobs, clock, None)
    }

    pub fn is_empty(&self) -> bool {
        self.inner.mirrors.is_empty()
    }

    pub fn configs(&self) -> impl Iterator<Item = &MirrorConfig> {
        self.inner.mirrors.iter().map(|m| &m.config)
    }

    /// The mirror whose prefix starts `repo`'s name, if any: such names are read-only.
    pub fn prefixed(&self, repo: &RepoName) -> Option<&MirrorConfig> {
        self.mirroring(repo.as_str())
    }

    /// As [`Mirrors::prefixed`], for a repository name as stored (listings, pages).
    pub fn mirroring(&self, name: &str) -> Option<&MirrorConfig> {
        let (first, _) = name.split_once('/')?;
        self.configs().find(|m| m.prefix == first)
    }

    /// Whether names that are not local may be served by a mirror chosen by `ns=` or by
    /// `mirror_default`, and whom to let through for them.
    pub(crate) fn transparent_access(&self) -> Option<MirrorAccess> {
        match self.inner.default {
            Some(i) => Some(self.inner.mirrors[i].config.access),
            None if self.is_empty() => None,
            None => Some(
                if self.configs().any(|m| m.access == MirrorAccess::Public) {
                    MirrorAccess::Public
                } else {
                    MirrorAccess::SignedIn
                },
            ),
        }
    }

    /// Where a pull of `repo` goes, if a mirror serves it: a name under a mirror's prefix;
    /// else, when `repo` is no local repository, the mirror whose upstream host `ns` names
    /// (containerd), or the `mirror_default` (docker's `registry-mirrors`).
    pub async fn resolve(&self, repo: &RepoName, ns: Option<&str>) -> Result<Option<MirrorTarget>> {
        if self.is_empty() {
            return Ok(None);
        }
        let name = repo.as_str();
        if let Some((first, rest)) = name.split_once('/') {
            if let Some(i) = self
                .inner
                .mirrors
                .iter()
                .position(|m| m.config.prefix == first)
            {
                return Ok(Some(self.target(i, repo.clone(), rest)));
            }
        }
        let chosen = match ns {
            Some(ns) => self.inner.mirrors.iter().position(|m| {
                let host = m.config.upstream_host();
                host == ns || (is_docker_hub_host(ns) && m.config.is_docker_hub())
            }),
            None => self.inner.default,
        };
        let Some(i) = chosen else { return Ok(None) };
        if self.inner.meta.repository_exists(repo).await? {
            return Ok(None);
        }
        let local: RepoName = format!("{}/{name}", self.inner.mirrors[i].config.prefix)
            .parse()
            .map_err(|e: berth_oci::name::NameError| Error::NameInvalid(e.to_string()))?;
        Ok(Some(self.target(i, local, name)))
    }

    fn target(&self, mirror: usize, local: RepoName, remote: &str) -> MirrorTarget {
        MirrorTarget {
            mirror,
            local,
            remote: self.inner.mirrors[mirror].config.remote_name(remote),
        }
    }

    pub fn config(&self, target: &MirrorTarget) -> &MirrorConfig {
        &self.inner.mirrors[target.mirror].config
    }

    fn upstream(&self, target: &MirrorTarget) -> &dyn Upstream {
        &*self.inner.mirrors[target.mirror].upstream
    }

    fn counters(&self, target: &MirrorTarget) -> &MirrorCounters {
        &self.inner.counters[target.mirror]
    }

    /// Every mirror's figures, for `/metrics`.
    pub fn totals(&self) -> Vec<(String, MirrorTotals)> {
        self.inner
            .mirrors
            .iter()
            .zip(&self.inner.counters)
            .map(|(m, c)| (m.config.prefix.clone(), c.read()))
            .collect()
    }

    /// Times an upstream call and counts its failures.
    async fn timed<T>(
        &self,
        target: &MirrorTarget,
        call: impl std::future::Future<Output = Result<T, UpstreamError>>,
    ) -> Result<T, UpstreamError> {
        let started = std::time::Instant::now();
        let result = call.await;
        self.counters(target)
            .upstream_call(started.elapsed(), result.as_ref().err());
        result
    }
}

/// A fresh 32-hex-digit upload id, the shape startup recovery knows.
fn scratch_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// The error a client sees for an upstream failure when nothing is cached.
fn upstream_failure(err: &UpstreamError, what: &str) -> Error {
    match err {
        UpstreamError::Throttled => Error::TooManyRequests {
            retry_after_secs: 60,
        },
        UpstreamError::Denied(_) => Error::Denied,
        other => Error::Upstream(format!("{what}: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_hub_names_go_to_the_hub_mirror_else_to_the_default() {
        let hub = MirrorConfig::new("dockerhub", "https://registry-1.docker.io");
        let ghcr = MirrorConfig::new("ghcr", "https://ghcr.io");
        let local = MirrorConfig::new("upstream", "http://127.0.0.1:5000");
        let both = [ghcr.clone(), hub];
        assert_eq!(docker_hub_mirror(&both, Some("ghcr")), Some("dockerhub"));
        let others = [ghcr, local];
        assert_eq!(
            docker_hub_mirror(&others, Some("upstream")),
            Some("upstream")
        );
        assert_eq!(docker_hub_mirror(&others, None), None);
        assert_eq!(docker_hub_mirror(&others, Some("gone")), None);
        assert_eq!(docker_hub_mirror(&[], None), None);
    }
}
