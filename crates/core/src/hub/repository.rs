//! One repository as the Hub shows it, and what its users change on it: descriptions,
//! stars, and (for site admins) the verified mark of an organization.

use super::{readme::render_readme, Hub};
use crate::access::{personal_change_allowed, Actor, Principal};
use crate::error::{Error, Result};
use crate::identity::Acting;
use crate::ports::{Permission, RepositoryInfo};
use crate::time::now_unix;
use berth_oci::RepoName;
use serde_json::{json, Value};

/// Longest short description (Docker Hub's limit).
pub const MAX_DESCRIPTION_CHARS: usize = 100;

/// Longest README (Docker Hub's limit).
pub const MAX_FULL_DESCRIPTION_CHARS: usize = 25_000;

/// A repository page: its details, the README rendered to safe HTML, and the caller's
/// relation to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryView {
    pub info: RepositoryInfo,
    pub readme_html: String,
    /// The caller has starred it.
    pub starred: bool,
    /// What the caller may do with it.
    pub permission: Option<Permission>,
}

fn check_descriptions(description: Option<&str>, full_description: Option<&str>) -> Result<()> {
    if let Some(description) = description {
        if description.chars().count() > MAX_DESCRIPTION_CHARS {
            return Err(Error::AccountInvalid(format!(
                "a short description has at most {MAX_DESCRIPTION_CHARS} characters"
            )));
        }
        // It is shown on one line, in `docker search` tables too.
        if description.chars().any(char::is_control) {
            return Err(Error::AccountInvalid(
                "a short description is one line without control characters".into(),
            ));
        }
    }
    if full_description.is_some_and(|full| full.chars().count() > MAX_FULL_DESCRIPTION_CHARS) {
        return Err(Error::AccountInvalid(format!(
            "a full description has at most {MAX_FULL_DESCRIPTION_CHARS} characters"
        )));
    }
    Ok(())
}

/// The user a star belongs to: stars are personal, so organizations (their tokens) have none.
fn starring_user(principal: &Principal) -> Result<i64> {
    match principal.actor {
        Actor::Anonymous => Err(Error::Unauthorized),
        Actor::Organization { .. } => Err(Error::Denied),
        Actor::User { id, .. } => Ok(id),
    }
}

impl Hub {
    /// The repository page; `NameUnknown` unless the principal may read it (so a private
    /// repository looks exactly like a missing one).
    pub async fn repository(
        &self,
        principal: &Principal,
        repo: &RepoName,
    ) -> Result<RepositoryView> {
        let permission = self.readable(principal, repo).await?;
        let info = self
            .store
            .repository_info(repo)
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.clone()))?;
        let starred = match principal.user_id() {
            Some(user_id) => self.store.has_starred(user_id, repo).await?,
            None => false,
        };
        Ok(RepositoryView {
            readme_html: render_readme(&info.full_description),
            info,
            starred,
            permission: Some(permission),
        })
    }

    /// Sets the short description (at most [`MAX_DESCRIPTION_CHARS`], one line) and/or the
    /// Markdown README; `None` leaves one as it is. Needs Admin on the repository: `Denied`
    /// (or `Unauthorized` for anonymous callers) when the caller only reads it, `NameUnknown`
    /// when it cannot even read it.
    pub async fn set_descriptions(
        &self,
        acting: &Acting<'_>,
        repo: &RepoName,
        description: Option<String>,
        full_description: Option<String>,
    ) -> Result<()> {
        if self.readable(acting.principal, repo).await? < Permission::Admin {
            return Err(acting.principal.refusal());
        }
        check_descriptions(description.as_deref(), full_description.as_deref())?;
        if description.is_none() && full_description.is_none() {
            return Ok(());
        }
        let updated = self
            .store
            .set_descriptions(repo, description.as_deref(), full_description.as_deref())
            .await?;
        if !updated {
            return Err(Error::NameUnknown(repo.clone()));
        }
        // The README can be long: the log says that it changed, not what it says.
        self.audit
            .record_by(
                acting,
                "repository.description",
                repo.as_str(),
                json!({
                    "description": description,
                    "full_description_changed": full_description.is_some(),
                }),
            )
            .await;
        Ok(())
    }

    /// Stars the repository for the signed-in user (not anonymous callers, not organization
    /// tokens) who may read it; starring twice is the same as once. A star is a write, so a
    /// read-only token (or one not covering the repository) may not make one.
    pub async fn star(&self, acting: &Acting<'_>, repo: &RepoName) -> Result<()> {
        let user_id = self.may_star(acting.principal, repo).await?;
        if self.store.star(user_id, repo, now_unix()).await? {
            self.audit
                .record_by(acting, "repository.star", repo.as_str(), Value::Null)
                .await;
        }
        Ok(())
    }

    /// Takes the user's star away; unstarring what was not starred is no error. Needs what
    /// starring needs.
    pub async fn unstar(&self, acting: &Acting<'_>, repo: &RepoName) -> Result<()> {
        let user_id = self.may_star(acting.principal, repo).await?;
        if self.store.unstar(user_id, repo).await? {
            self.audit
                .record_by(acting, "repository.unstar", repo.as_str(), Value::Null)
                .await;
        }
        Ok(())
    }

    /// The user whose star it is, when the principal may read the repository and its
    /// credentials allow a write; a repository it cannot read is `NameUnknown`.
    async fn may_star(&self, principal: &Principal, repo: &RepoName) -> Result<i64> {
        let user_id = starring_user(principal)?;
        self.readable(principal, repo).await?;
        if !personal_change_allowed(principal, repo) {
            return Err(Error::Denied);
        }
        Ok(user_id)
    }

    /// Whether an organization is a verified publisher; public, as its repositories show it.
    pub async fn org_verified(&self, org: &str) -> Result<bool> {
        Ok(self.store.org_verified(org).await?)
    }

    /// Marks an organization as a verified publisher, or not (site admins only).
    pub async fn set_verified(&self, acting: &Acting<'_>, org: &str, verified: bool) -> Result<()> {
        acting.require_site_admin()?;
        if self.store.org_by_name(org).await?.is_none() {
            return Err(Error::AccountUnknown(org.to_owned()));
        }
        if self.store.org_verified(org).await? == verified {
            return Ok(());
        }
        if !self.store.set_org_verified(org, verified).await? {
            return Err(Error::AccountUnknown(org.to_owned()));
        }
        self.audit
            .record_by(acting, "org.verified", org, json!({ "verified": verified }))
            .await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptions_are_bounded() {
        let exactly = "é".repeat(MAX_DESCRIPTION_CHARS);
        assert!(check_descriptions(Some(&exactly), None).is_ok());
        let over = format!("{exactly}x");
        assert!(matches!(
            check_descriptions(Some(&over), None),
            Err(Error::AccountInvalid(_))
        ));
        assert!(check_descriptions(Some("two\nlines"), None).is_err());
        let readme = "x".repeat(MAX_FULL_DESCRIPTION_CHARS + 1);
        assert!(check_descriptions(None, Some(&readme)).is_err());
        assert!(check_descriptions(None, Some(&readme[1..])).is_ok());
    }
}
