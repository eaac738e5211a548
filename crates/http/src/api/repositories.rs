//! Namespaces and repositories: creating, reading, visibility, deleting, and who besides
//! the owners may use a repository (team grants and collaborators).

use super::error::{ApiError, ApiResult};
use super::wire::{created, instant, no_content, ok};
use super::Call;
use axum::body::Body;
use axum::http::Response;
use berth_core::access::{Action, Resource};
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
    #[serde(skip_serializing_if = "Option::is_none")]
    permissions: Option<Permissions>,
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
            permissions: None,
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

/// The namespace's repositories the caller may see.
pub(super) async fn in_namespace(call: &Call<'_>, namespace: &str) -> ApiResult<Response<Body>> {
    let records = call
        .state
        .identity
        .namespace_repositories(&call.acting(), namespace)
        .await?;
    call.page(records.into_iter().map(RepositoryView::from).collect())
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

/// The repository with what the caller may do with it; one the caller cannot read answers
/// exactly as a missing one.
pub(super) async fn show(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let record = call.state.identity.repository(&call.acting(), repo).await?;
    let actions = call
        .state
        .auth
        .authorizer()
        .actions(&call.principal, &Resource::Repository(repo.clone()))
        .await?;
    let mut view = RepositoryView::from(record);
    view.permissions = Some(Permissions {
        read: actions.contains(Action::Pull),
        write: actions.contains(Action::Push),
        admin: actions.contains(Action::Delete),
    });
    ok(&view)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RepositoryChange {
    #[serde(default)]
    is_private: Option<bool>,
}

pub(super) async fn update(call: &Call<'_>, repo: &RepoName) -> ApiResult<Response<Body>> {
    let change: RepositoryChange = call.json()?;
    let acting = call.acting();
    let identity = &call.state.identity;
    if let Some(private) = change.is_private {
        identity
            .set_repository_visibility(&acting, repo, private)
            .await?;
    }
    ok(&RepositoryView::from(
        identity.repository(&acting, repo).await?,
    ))
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
