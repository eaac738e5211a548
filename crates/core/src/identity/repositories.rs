//! Repository settings: creating and deleting repositories, visibility, team grants,
//! collaborators and namespace defaults. Settings need Admin on the repository, as the
//! [`crate::access::Authorizer`] decides it for the registry too, and a repository the
//! caller cannot read answers exactly like a missing one.

use super::{Acting, Identity};
use crate::access::owns_namespace;
use crate::error::{Error, Result};
use crate::ports::{IdentityStore, NamespaceOwner, NamespaceRecord, Permission, RepositoryRecord};
use berth_oci::RepoName;
use serde_json::json;

/// A repository's settings, as its admins see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySettings {
    pub repository: RepositoryRecord,
    /// (team name, permission), by team name.
    pub team_grants: Vec<(String, Permission)>,
    /// (user name, permission), by user name.
    pub collaborators: Vec<(String, Permission)>,
}

impl<S: IdentityStore + ?Sized> Identity<S> {
    /// Creates an empty repository (namespace owners, organization owners, site admins);
    /// `private: None` takes the namespace's default.
    pub async fn create_repository(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        private: Option<bool>,
    ) -> Result<RepositoryRecord> {
        let Some(namespace) = repo.namespace() else {
            return Err(Error::NameInvalid(format!(
                "{repo}: a repository name starts with its namespace, as in {}",
                repo.clone().with_default_namespace()
            )));
        };
        // Refused alike whether or not the repository exists, so creating cannot probe for
        // private ones; only those who could see it learn that it already exists.
        let permission = self.authorizer.permission(acting.principal, repo).await?;
        if permission != Some(Permission::Admin) {
            return Err(acting.principal.refusal());
        }
        if self.store.namespace(namespace).await?.is_none() {
            return Err(Error::AccountUnknown(namespace.to_owned()));
        }
        let record = self
            .store
            .create_repository(repo, private, self.now_unix(), Some(&acting.actor_name()))
            .await?;
        self.audit
            .record_by(
                acting,
                "repository.create",
                repo.as_str(),
                json!({ "private": record.is_private }),
            )
            .await;
        Ok(record)
    }

    /// A repository the caller may read.
    pub async fn repository(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
    ) -> Result<RepositoryRecord> {
        self.repository_for(acting, repo, Permission::Read).await
    }

    /// A repository's settings (Admin on it).
    pub async fn repository_settings(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
    ) -> Result<RepositorySettings> {
        let repository = self.repository_for(acting, repo, Permission::Admin).await?;
        let team_grants = self.store.team_grants(repository.id).await?;
        let collaborators = self.store.collaborators(repository.id).await?;
        Ok(RepositorySettings {
            repository,
            team_grants,
            collaborators,
        })
    }

    /// Makes a repository private or public (Admin on it).
    pub async fn set_repository_visibility(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        private: bool,
    ) -> Result<()> {
        let record = self.repository_for(acting, repo, Permission::Admin).await?;
        if record.is_private == private {
            return Ok(());
        }
        if !self
            .store
            .set_repository_private(repo, private, Some(&acting.actor_name()))
            .await?
        {
            return Err(Error::NameUnknown(repo.clone()));
        }
        self.audit
            .record_by(
                acting,
                "repository.visibility",
                repo.as_str(),
                json!({ "private": private }),
            )
            .await;
        Ok(())
    }

    /// Deletes a repository with its tags, grants and collaborators (Admin on it); the
    /// stored bytes are left for garbage collection.
    pub async fn delete_repository(&self, acting: &Acting<'_>, repo: &RepoName) -> Result<()> {
        self.repository_for(acting, repo, Permission::Admin).await?;
        if !self
            .store
            .delete_repository(repo, Some(&acting.actor_name()))
            .await?
        {
            return Err(Error::NameUnknown(repo.clone()));
        }
        self.audit
            .record_by(
                acting,
                "repository.delete",
                repo.as_str(),
                serde_json::Value::Null,
            )
            .await;
        Ok(())
    }

    /// A namespace's repositories the caller may see, by name.
    pub async fn namespace_repositories(
        &self,
        acting: &Acting<'_>,
        namespace: &str,
    ) -> Result<Vec<RepositoryRecord>> {
        if self.store.namespace(namespace).await?.is_none() {
            return Err(Error::AccountUnknown(namespace.to_owned()));
        }
        let mut repositories = self
            .store
            .repositories_in_namespace(namespace, acting.principal.viewer())
            .await?;
        if let Some(limits) = &acting.principal.limits {
            repositories.retain(|r| {
                r.name
                    .parse::<RepoName>()
                    .is_ok_and(|name| limits.covers(&name))
            });
        }
        Ok(repositories)
    }

    /// Gives a team of the repository's organization a permission on it (Admin on the
    /// repository), replacing any earlier grant.
    pub async fn grant_team(
        &self,
        acting: &Acting<'_>,
        org: &str,
        team: &str,
        repo: &RepoName,
        permission: Permission,
    ) -> Result<()> {
        let (record, team) = self.team_on_repository(acting, org, team, repo).await?;
        self.store
            .grant_team(team.id, record.id, permission, Some(&acting.actor_name()))
            .await?;
        self.audit
            .record_by(
                acting,
                "repository.team.grant",
                repo.as_str(),
                json!({ "team": team.name, "permission": permission.as_str() }),
            )
            .await;
        Ok(())
    }

    /// Takes a team's grant on the repository away; false if it had none.
    pub async fn revoke_team(
        &self,
        acting: &Acting<'_>,
        org: &str,
        team: &str,
        repo: &RepoName,
    ) -> Result<bool> {
        let (record, team) = self.team_on_repository(acting, org, team, repo).await?;
        let revoked = self
            .store
            .revoke_team(team.id, record.id, Some(&acting.actor_name()))
            .await?;
        if revoked {
            self.audit
                .record_by(
                    acting,
                    "repository.team.revoke",
                    repo.as_str(),
                    json!({ "team": team.name }),
                )
                .await;
        }
        Ok(revoked)
    }

    /// Makes a user a collaborator on a personal repository (Admin on it), or changes their
    /// permission.
    pub async fn set_collaborator(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        user: &str,
        permission: Permission,
    ) -> Result<()> {
        let (record, collaborator) = self.collaborator_on(acting, repo, user).await?;
        self.store
            .set_collaborator(
                record.id,
                collaborator,
                permission,
                Some(&acting.actor_name()),
            )
            .await?;
        self.audit
            .record_by(
                acting,
                "repository.collaborator.set",
                repo.as_str(),
                json!({ "user": user, "permission": permission.as_str() }),
            )
            .await;
        Ok(())
    }

    /// Removes a collaborator from a personal repository; false if they were none.
    pub async fn remove_collaborator(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        user: &str,
    ) -> Result<bool> {
        let (record, collaborator) = self.collaborator_on(acting, repo, user).await?;
        let removed = self
            .store
            .remove_collaborator(record.id, collaborator, Some(&acting.actor_name()))
            .await?;
        if removed {
            self.audit
                .record_by(
                    acting,
                    "repository.collaborator.remove",
                    repo.as_str(),
                    json!({ "user": user }),
                )
                .await;
        }
        Ok(removed)
    }

    /// A namespace's settings (its owner, the organization's owners, site admins).
    pub async fn namespace_settings(
        &self,
        acting: &Acting<'_>,
        namespace: &str,
    ) -> Result<NamespaceRecord> {
        self.namespace_for_admin(acting, namespace).await
    }

    /// Whether repositories created in the namespace by a push start private.
    pub async fn set_default_visibility(
        &self,
        acting: &Acting<'_>,
        namespace: &str,
        private: bool,
    ) -> Result<()> {
        let record = self.namespace_for_admin(acting, namespace).await?;
        if record.default_private == private {
            return Ok(());
        }
        if !self.store.set_default_private(namespace, private).await? {
            return Err(Error::AccountUnknown(namespace.to_owned()));
        }
        self.audit
            .record_by(
                acting,
                "namespace.default_visibility",
                namespace,
                json!({ "private": private }),
            )
            .await;
        Ok(())
    }

    /// The repository, when the caller holds at least `needed` on it. Without read access
    /// it is `NameUnknown`, exactly as if it did not exist.
    async fn repository_for(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        needed: Permission,
    ) -> Result<RepositoryRecord> {
        let held = self.authorizer.permission(acting.principal, repo).await?;
        // Namespace owners hold Admin even on a repository that does not exist yet, so
        // existence is checked before the level: a missing one is missing to everyone.
        let Some(held) = held else {
            return Err(Error::NameUnknown(repo.clone()));
        };
        let record = self
            .store
            .repository(repo)
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.clone()))?;
        if held < needed {
            return Err(acting.principal.refusal());
        }
        Ok(record)
    }

    /// The repository and the team, when the caller is an admin of the repository and the
    /// team belongs to the organization that owns it.
    async fn team_on_repository(
        &self,
        acting: &Acting<'_>,
        org: &str,
        team: &str,
        repo: &RepoName,
    ) -> Result<(RepositoryRecord, crate::ports::TeamRecord)> {
        let record = self.repository_for(acting, repo, Permission::Admin).await?;
        let org_record = match self.store.org_by_name(org).await? {
            Some(record) => record,
            // The repository's own namespace, and not an organization: a user's.
            None if record.namespace == org => {
                return Err(Error::AccountInvalid(format!(
                    "{repo} is a personal repository: give collaborators access instead of teams"
                )))
            }
            None => return Err(Error::AccountUnknown(org.to_owned())),
        };
        if record.namespace != org_record.name {
            return Err(Error::AccountInvalid(format!(
                "{repo} is not in the organization {org}: teams are granted their own organization's repositories"
            )));
        }
        let team = self.team_record(&org_record, team).await?;
        Ok((record, team))
    }

    /// The repository and the user's id, when the caller is an admin of the repository and
    /// it is a personal one (organizations use teams).
    async fn collaborator_on(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        user: &str,
    ) -> Result<(RepositoryRecord, i64)> {
        let record = self.repository_for(acting, repo, Permission::Admin).await?;
        let namespace = self
            .store
            .namespace(&record.namespace)
            .await?
            .ok_or_else(|| Error::AccountUnknown(record.namespace.clone()))?;
        let NamespaceOwner::User(owner_id) = namespace.owner else {
            return Err(Error::AccountInvalid(format!(
                "{repo} belongs to an organization: give its teams access instead of collaborators"
            )));
        };
        let collaborator = self.user_record(user).await?;
        if collaborator.id == owner_id {
            return Err(Error::AccountInvalid(format!(
                "{user} owns {repo} and needs no collaboration"
            )));
        }
        Ok((record, collaborator.id))
    }

    async fn namespace_for_admin(
        &self,
        acting: &Acting<'_>,
        name: &str,
    ) -> Result<NamespaceRecord> {
        let (user_id, _) = acting.user_with_full_authority()?;
        let namespace = self
            .store
            .namespace(name)
            .await?
            .ok_or_else(|| Error::AccountUnknown(name.to_owned()))?;
        if acting.principal.is_site_admin() {
            return Ok(namespace);
        }
        // Only an organization's namespace needs the fact of who owns the organization.
        let owns_org = match namespace.owner {
            NamespaceOwner::Organization(id) => self.store.is_org_owner(id, user_id).await?,
            NamespaceOwner::User(_) => false,
        };
        let allowed = owns_namespace(&acting.principal.actor, Some(namespace.owner), owns_org);
        if allowed {
            Ok(namespace)
        } else {
            Err(Error::Denied)
        }
    }
}
