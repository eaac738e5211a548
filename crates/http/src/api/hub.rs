//! The Hub's side of a repository in the API: how it is shown in listings, stars, the tags
//! view, and the verified-publisher mark of organizations.

use super::error::{ApiError, ApiResult};
use super::orgs::OrgView;
use super::wire::{instant, no_content, ok, PageRequest};
use super::Call;
use crate::query::query_param;
use axum::body::Body;
use axum::http::Response;
use berth_core::hub::{Platform, ReferrerView, TagView};
use berth_core::mirror::Mirrors;
use berth_core::ports::{RepositoryInfo, TagSort, VulnerabilitySummary};
use berth_oci::{Reference, RepoName};
use serde::{Deserialize, Serialize};

/// A repository in a listing (search results, a namespace's repositories), with the Hub's
/// numbers and badges.
#[derive(Debug, Serialize)]
pub(super) struct RepositorySummary {
    /// Without the namespace, as on Docker Hub.
    pub name: String,
    pub namespace: String,
    pub full_name: String,
    pub description: String,
    pub is_private: bool,
    pub star_count: u64,
    pub pull_count: u64,
    /// In the `library` namespace.
    pub is_official: bool,
    /// Published by an organization a site admin verified.
    pub is_verified: bool,
    pub date_registered: String,
    /// Last push, as Docker Hub's `last_updated`; null before the first one.
    pub last_updated: Option<String>,
    pub last_pulled: Option<String>,
    /// Set when the repository is a pull-through cache of an upstream registry (read-only).
    pub mirror: Option<MirrorOrigin>,
}

/// Where a mirrored repository's content comes from, and who may pull it.
#[derive(Debug, Serialize)]
pub(super) struct MirrorOrigin {
    /// The `[[mirror]]` prefix, the namespace it is served under.
    pub prefix: String,
    /// The upstream registry's URL.
    pub upstream: String,
    /// The repository's name at the upstream (`library/nginx`).
    pub upstream_repository: String,
    /// `public` or `signed-in`.
    pub access: &'static str,
}

impl MirrorOrigin {
    pub fn of(mirrors: &Mirrors, name: &str) -> Option<MirrorOrigin> {
        let config = mirrors.mirroring(name)?;
        let remote = name
            .strip_prefix(config.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(name);
        Some(MirrorOrigin {
            prefix: config.prefix.clone(),
            upstream: config.upstream.clone(),
            upstream_repository: config.remote_name(remote),
            access: config.access.as_str(),
        })
    }
}

/// A repository's name without its namespace (`app/api` of `acme/app/api`).
fn short_name(info: &RepositoryInfo) -> String {
    info.name
        .strip_prefix(info.namespace.as_str())
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or(&info.name)
        .to_owned()
}

impl RepositorySummary {
    /// A repository's summary, marked as a mirror when one of `mirrors` serves it.
    pub fn new(info: RepositoryInfo, mirrors: &Mirrors) -> RepositorySummary {
        RepositorySummary {
            mirror: MirrorOrigin::of(mirrors, &info.name),
            name: short_name(&info),
            full_name: info.name,
            namespace: info.namespace,
            description: info.description,
            is_private: info.is_private,
            star_count: info.star_count,
            pull_count: info.pull_count,
            is_official: info.is_official,
            is_verified: info.is_verified,
            date_registered: instant(info.created_at),
            last_updated: info.last_pushed_at.map(instant),
            last_pulled: info.last_pulled_at.map(instant),
        }
    }
}

/// `PUT /repositories/{name}/-/star`: idempotent, like the button.
pub(super) async fn star(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    call.state.hub.star(&call.acting(), repo).await?;
    no_content()
}

/// `DELETE /repositories/{name}/-/star`: also 204 when there was no star.
pub(super) async fn unstar(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    call.state.hub.unstar(&call.acting(), repo).await?;
    no_content()
}

/// A tag as Docker Hub's tags tab shows it.
#[derive(Debug, Serialize)]
struct TagEntry {
    name: String,
    digest: String,
    media_type: String,
    /// The manifest's layers (for an index, every platform's), in bytes: what a pull downloads.
    full_size: u64,
    /// The platforms of an index, or the one platform of a single image; empty for an
    /// artifact or an image whose configuration names none.
    images: Vec<Image>,
    /// Docker Hub's name for the last push.
    last_updated: String,
    tag_last_pushed: String,
    tag_last_pulled: Option<String>,
    /// Signatures, SBOMs and other artifacts attached to the tag's manifest.
    referrers: Vec<Referrer>,
    /// An immutable-tag rule protects the tag: it can be neither moved nor deleted.
    immutable: bool,
    /// `{"state": "unsigned|signed|verified", "keys": [names of the trusted keys]}`.
    signature: berth_core::signatures::ImageSignature,
    /// Findings of the latest scan by severity; null until the image was scanned.
    vulnerabilities: Option<Vulnerabilities>,
}

/// Counts by severity as the API shows them beside a tag.
#[derive(Debug, Serialize)]
struct Vulnerabilities {
    critical: u64,
    high: u64,
    medium: u64,
    low: u64,
    unknown: u64,
    scanned_at: String,
}

impl From<VulnerabilitySummary> for Vulnerabilities {
    fn from(s: VulnerabilitySummary) -> Vulnerabilities {
        Vulnerabilities {
            critical: s.critical,
            high: s.high,
            medium: s.medium,
            low: s.low,
            unknown: s.unknown,
            scanned_at: instant(s.scanned_at),
        }
    }
}

#[derive(Debug, Serialize)]
struct Image {
    os: String,
    architecture: String,
    variant: Option<String>,
}

#[derive(Debug, Serialize)]
struct Referrer {
    digest: String,
    media_type: String,
    artifact_type: Option<String>,
}

impl From<TagView> for TagEntry {
    fn from(tag: TagView) -> TagEntry {
        let pushed = instant(tag.last_pushed_at);
        TagEntry {
            name: tag.name,
            digest: tag.digest.to_string(),
            media_type: tag.media_type,
            full_size: tag.size,
            images: tag.platforms.into_iter().map(Image::from).collect(),
            last_updated: pushed.clone(),
            tag_last_pushed: pushed,
            tag_last_pulled: tag.last_pulled_at.map(instant),
            referrers: tag.referrers.into_iter().map(Referrer::from).collect(),
            immutable: tag.immutable,
            signature: tag.signature,
            vulnerabilities: tag.vulnerabilities.map(Vulnerabilities::from),
        }
    }
}

impl From<Platform> for Image {
    fn from(platform: Platform) -> Image {
        Image {
            os: platform.os,
            architecture: platform.architecture,
            variant: platform.variant,
        }
    }
}

impl From<ReferrerView> for Referrer {
    fn from(referrer: ReferrerView) -> Referrer {
        Referrer {
            digest: referrer.digest.to_string(),
            media_type: referrer.media_type,
            artifact_type: referrer.artifact_type,
        }
    }
}

/// `?ordering=` as Docker Hub spells it; both `last_updated` and `-last_updated` mean
/// newest first, as on Docker Hub's tags tab.
fn tag_ordering(query: &str) -> ApiResult<TagSort> {
    match query_param(query, "ordering").as_deref() {
        None | Some("" | "last_updated" | "-last_updated") => Ok(TagSort::LastPushed),
        Some("last_pulled" | "-last_pulled") => Ok(TagSort::LastPulled),
        Some("name") => Ok(TagSort::Name),
        Some(other) => Err(ApiError::BadRequest(format!(
            "ordering must be last_updated, -last_updated, last_pulled or name, not {:?}",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

/// `GET /repositories/{name}/-/tags?page=&page_size=&ordering=`.
pub(super) async fn tags(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let request = PageRequest::from_query(&call.query)?;
    let sort = tag_ordering(&call.query)?;
    let found = call
        .state
        .hub
        .tags(
            &call.principal,
            repo,
            sort,
            page_number(request),
            request.size as u32,
        )
        .await?;
    let entries: Vec<TagEntry> = found.tags.into_iter().map(TagEntry::from).collect();
    call.page_of_total(found.total, entries, request)
}

/// `GET /repositories/{name}/-/tags/{reference}/vulnerabilities`: the latest scan of the
/// tag's (or digest's) image, or of each scanned image of an index: counts, the findings
/// (package, installed version, advisory, severity, fixed version) and what could not be read.
pub(super) async fn tag_vulnerabilities(
    call: &Call<'_>,
    repo: &RepoName,
    reference: &str,
) -> ApiResult<Response<Body>> {
    let reference = if reference.contains(':') {
        Reference::Digest(
            reference
                .parse()
                .map_err(|e| ApiError::BadRequest(format!("{reference:?} is not a digest: {e}")))?,
        )
    } else {
        Reference::Tag(
            reference
                .parse()
                .map_err(|e| ApiError::BadRequest(format!("{reference:?} is not a tag: {e}")))?,
        )
    };
    let scans = call
        .state
        .hub
        .scans(&call.principal, repo, &reference)
        .await?;
    let images: Vec<serde_json::Value> = scans
        .into_iter()
        .map(|scan| {
            serde_json::json!({
                "digest": scan.digest,
                "os": scan.os,
                "packages": scan.packages,
                "vulnerabilities": Vulnerabilities::from(VulnerabilitySummary::of(scan.counts, scan.scanned_at)),
                "findings": scan.findings.iter().map(|f| serde_json::json!({
                    "package": f.package,
                    "ecosystem": f.ecosystem,
                    "installed_version": f.installed_version,
                    "advisory": f.advisory,
                    "aliases": f.aliases,
                    "severity": f.severity,
                    "score": f.score,
                    "fixed_version": f.fixed_version,
                    "summary": f.summary,
                })).collect::<Vec<_>>(),
                "warnings": scan.warnings,
                "sbom": scan.sbom_digest,
            })
        })
        .collect();
    ok(&serde_json::json!({ "reference": reference.to_string(), "images": images }))
}

/// The page number as the Hub service takes it; beyond `u32` no page has results anyway.
pub(super) fn page_number(request: PageRequest) -> u32 {
    u32::try_from(request.number).unwrap_or(u32::MAX)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OrgChange {
    is_verified: bool,
}

/// `PATCH /orgs/{org}` `{is_verified}`: site admins mark verified publishers.
pub(super) async fn update_org(call: &Call<'_>, org: &str) -> ApiResult<Response<Body>> {
    let change: OrgChange = call.json()?;
    let acting = call.acting();
    call.state
        .hub
        .set_verified(&acting, org, change.is_verified)
        .await?;
    let record = call.state.identity.org(&acting, org).await?;
    let mut view = OrgView::from(record);
    view.is_verified = Some(change.is_verified);
    ok(&view)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tag_orderings_docker_hub_sends_are_understood() {
        let cases = [
            ("", TagSort::LastPushed),
            ("ordering=last_updated", TagSort::LastPushed),
            ("ordering=-last_updated", TagSort::LastPushed),
            ("ordering=last_pulled", TagSort::LastPulled),
            ("ordering=name", TagSort::Name),
        ];
        for (query, sort) in cases {
            assert_eq!(tag_ordering(query).unwrap(), sort, "{query}");
        }
        assert!(matches!(
            tag_ordering("ordering=size"),
            Err(ApiError::BadRequest(m)) if m.contains("size")
        ));
    }

    #[test]
    fn short_names_drop_the_namespace_only() {
        let info = |name: &str, namespace: &str| RepositoryInfo {
            name: name.into(),
            namespace: namespace.into(),
            is_private: false,
            description: String::new(),
            full_description: String::new(),
            star_count: 0,
            pull_count: 0,
            created_at: 0,
            last_pushed_at: None,
            last_pulled_at: None,
            is_official: false,
            is_verified: false,
        };
        assert_eq!(short_name(&info("acme/app/api", "acme")), "app/api");
        assert_eq!(short_name(&info("acmeco/app", "acme")), "acmeco/app");
    }
}
