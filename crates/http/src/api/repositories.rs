//! Namespaces and repositories: creating, reading (with the Hub's numbers, descriptions and
//! README), visibility and descriptions, deleting, and who besides the owners may use a
//! repository (team grants and collaborators).

use super::error::{ApiError, ApiResult};
use super::hub::RepositorySummary;
use super::wire::{created, instant, no_content, ok, Page, PageRequest};
use super::Call;
use axum::body::Body;
use axum::http::Response;
use berth_core::ports::{NamespaceOwner, NamespaceRecord, Permission, RepositoryRecord};
use berth_oci::RepoName;
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize)]
struct NamespaceView {
    name: String,
    kind: &'static str,
    default_private: bool,
}

impl From<NamespaceRecord> for NamespaceView {
    fn from(record: NamespaceRecord) -> NamespaceView {
        NamespaceView {
            name: record.name,
            kind: match record.owner {
                NamespaceOwner::User(_) => "user",
                NamespaceOwner::Organization(_) => "organization",
            },
            default_private: record.default_private,
        }
    }
}

/// What the caller may do with one repository, as Docker Hub's repository answer says.
#[derive(Debug, Serialize)]
struct Permissions {
    read: bool,
    write: bool,
    admin: bool,
}

#[derive(Debug, Serialize)]
struct RepositoryView {
    /// Without the namespace, as on Docker Hub.
    name: String,
    namespace: String,
    full_name: String,
    is_private: bool,
    date_registered: String,
}

impl From<RepositoryRecord> for RepositoryView {
    fn from(record: RepositoryRecord) -> RepositoryView {
        let short = record
            .name
            .strip_prefix(&record.namespace)
            .and_then(|rest| rest.strip_prefix('/'))
            .unwrap_or(&record.name)
            .to_owned();
        RepositoryView {
            name: short,
            namespace: record.namespace,
            full_name: record.name,
            is_private: record.is_private,
            date_registered: instant(record.created_at),
        }
    }
}

#[derive(Debug, Serialize)]
struct GroupGrant {
    group_name: String,
    permission: &'static str,
}

#[derive(Debug, Serialize)]
struct Collaborator {
    user: String,
    permission: &'static str,
}

fn permission(text: &str) -> ApiResult<Permission> {
    text.parse().map_err(ApiError::BadRequest)
}

pub(super) async fn namespace(call: &Call<'_>, namespace: &str) -> ApiResult<Response<Body>> {
    let record = call
        .state
        .identity
        .namespace_settings(&call.acting(), namespace)
        .await?;
    ok(&NamespaceView::from(record))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NamespaceChange {
    #[serde(default)]
    default_private: Option<bool>,
}

/// Changes whether repositories a push creates in the namespace start private.
pub(super) async fn update_namespace(
    call: &Call<'_>,
    namespace: &str,
) -> ApiResult<Response<Body>> {
    let change: NamespaceChange = call.json()?;
    let acting = call.acting();
    let identity = &call.state.identity;
    if let Some(private) = change.default_private {
        identity
            .set_default_visibility(&acting, namespace, private)
            .await?;
    }
    ok(&NamespaceView::from(
        identity.namespace_settings(&acting, namespace).await?,
    ))
}

/// The namespace's repositories the caller may see, each with its stars, pulls and badges.
pub(super) async fn in_namespace(call: &Call<'_>, namespace: &str) -> ApiResult<Response<Body>> {
    let request = PageRequest::from_query(&call.query)?;
    let records = call
        .state
        .identity
        .namespace_repositories(&call.acting(), namespace)
        .await?;
    let count = records.len();
    let mut results = Vec::new();
    for record in records
        .into_iter()
        .skip(request.offset())
        .take(request.size)
    {
        let Ok(repo) = record.name.parse::<RepoName>() else {
            continue;
        };
        match call.state.hub.repository(&call.principal, &repo).await {
            Ok(view) => results.push(RepositorySummary::new(view.info, &call.state.mirrors)),
            // Deleted since it was listed.
            Err(berth_core::Error::NameUnknown(_)) => {}
            Err(other) => return Err(other.into()),
        }
    }
    ok(&Page::slice(
        count,
        results,
        request,
        &call.link,
        &call.query,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewRepository {
    namespace: String,
    /// May contain slashes (`app/api`).
    name: String,
    /// Leave out for the namespace's default.
    #[serde(default)]
    is_private: Option<bool>,
}

pub(super) async fn create(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let request: NewRepository = call.json()?;
    if request.namespace.contains('/') {
        return Err(ApiError::BadRequest(
            "namespace is one name, without '/'; the rest belongs in name".to_owned(),
        ));
    }
    let repo: RepoName = format!("{}/{}", request.namespace, request.name)
        .parse()
        .map_err(|e: berth_oci::name::NameError| berth_core::Error::NameInvalid(e.to_string()))?;
    let record = call
        .state
        .identity
        .create_repository(&call.acting(), &repo, request.is_private)
        .await?;
    created(&RepositoryView::from(record))
}

/// A repository as its page shows it: the Hub's numbers and badges, both descriptions, the
/// README rendered to safe HTML, and what the caller may do with it.
#[derive(Debug, Serialize)]
struct RepositoryDetail {
    #[serde(flatten)]
    summary: RepositorySummary,
    /// The README in Markdown, as written.
    full_description: String,
    /// The README rendered and sanitized, ready to show.
    readme_html: String,
    has_starred: bool,
    permissions: Permissions,
}

async fn detail(call: &Call<'_>, repo: &RepoName) -> ApiResult<RepositoryDetail> {
    let view = call.state.hub.repository(&call.principal, repo).await?;
    // The authorizer's answer, so an access token's limits narrow it.
    let level = view.permission;
    let full_description = view.info.full_description.clone();
    Ok(RepositoryDetail {
        summary: RepositorySummary::new(view.info, &call.state.mirrors),
        full_description,
        readme_html: view.readme_html,
        has_starred: view.starred,
        permissions: Permissions {
            read: level.is_some(),
            write: level >= Some(Permission::Write),
            admin: level >= Some(Permission::Admin),
        },
    })
}

/// The repository with what the caller may do with it; one the caller cannot read answers
/// exactly as a missing one.
pub(super) async fn show(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    ok(&detail(call, repo).await?)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryChange {
    #[serde(default)]
    is_private: Option<bool>,
    /// At most 100 characters.
    #[serde(default)]
    description: Option<String>,
    /// The README, in Markdown.
    #[serde(default)]
    full_description: Option<String>,
}

/// Changes visibility and descriptions. Descriptions go first: a description the Hub refuses
/// (too long) then leaves the visibility as it was.
pub(super) async fn update(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let change: RepositoryChange = call.json()?;
    let acting = call.acting();
    if change.description.is_some() || change.full_description.is_some() {
        call.state
            .hub
            .set_descriptions(&acting, repo, change.description, change.full_description)
            .await?;
    }
    if let Some(private) = change.is_private {
        call.state
            .identity
            .set_repository_visibility(&acting, repo, private)
            .await?;
    }
    ok(&detail(call, repo).await?)
}

/// Deletes the repository with its tags and settings; its bytes wait for garbage collection.
pub(super) async fn delete(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    call.state
        .identity
        .delete_repository(&call.acting(), repo)
        .await?;
    no_content()
}

pub(super) async fn groups(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let settings = call
        .state
        .identity
        .repository_settings(&call.acting(), repo)
        .await?;
    call.page(
        settings
            .team_grants
            .into_iter()
            .map(|(group_name, level)| GroupGrant {
                group_name,
                permission: level.as_str(),
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewGroupGrant {
    group_name: String,
    permission: String,
}

/// Gives a team of the repository's organization `read`, `write` or `admin` on it,
/// replacing any earlier grant.
pub(super) async fn grant_group(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let request: NewGroupGrant = call.json()?;
    let level = permission(&request.permission)?;
    // Teams belong to the organization that is the repository's namespace.
    let org = repo.namespace().unwrap_or_default();
    call.state
        .identity
        .grant_team(&call.acting(), org, &request.group_name, repo, level)
        .await?;
    created(&GroupGrant {
        group_name: request.group_name,
        permission: level.as_str(),
    })
}

pub(super) async fn revoke_group(
    call: &Call<'_>,
    repo: &RepoName,
    team: &str,
) -> ApiResult<Response<Body>> {
    let org = repo.namespace().unwrap_or_default();
    call.state
        .identity
        .revoke_team(&call.acting(), org, team, repo)
        .await?;
    no_content()
}

pub(super) async fn collaborators(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let settings = call
        .state
        .identity
        .repository_settings(&call.acting(), repo)
        .await?;
    call.page(
        settings
            .collaborators
            .into_iter()
            .map(|(user, level)| Collaborator {
                user,
                permission: level.as_str(),
            })
            .collect(),
    )
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewCollaborator {
    user: String,
    permission: String,
}

/// Makes a user a collaborator on a personal repository, or changes their permission.
pub(super) async fn add_collaborator(
    call: &Call<'_>,
    repo: &RepoName,
) -> ApiResult<Response<Body>> {
    let request: NewCollaborator = call.json()?;
    let level = permission(&request.permission)?;
    call.state
        .identity
        .set_collaborator(&call.acting(), repo, &request.user, level)
        .await?;
    created(&Collaborator {
        user: request.user,
        permission: level.as_str(),
    })
}

pub(super) async fn remove_collaborator(
    call: &Call<'_>,
    repo: &RepoName,
    user: &str,
) -> ApiResult<Response<Body>> {
    call.state
        .identity
        .remove_collaborator(&call.acting(), repo, user)
        .await?;
    no_content()
}
