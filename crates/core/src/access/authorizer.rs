//! The authorizer that enforces the permission rules with facts from the metadata store.

use super::{policy, ActionSet, Authorizer, Principal, Resource};
use crate::ports::RepositoryAccess;
use crate::Result;
use std::sync::Arc;

/// Accounts, organizations, teams and visibility decide: the embedded default.
pub struct PolicyAuthorizer<S: ?Sized> {
    store: Arc<S>,
}

impl<S: RepositoryAccess + ?Sized> PolicyAuthorizer<S> {
    pub fn new(store: Arc<S>) -> Self {
        PolicyAuthorizer { store }
    }
}

#[async_trait::async_trait]
impl<S: RepositoryAccess + ?Sized> Authorizer for PolicyAuthorizer<S> {
    async fn actions(&self, principal: &Principal, resource: &Resource) -> Result<ActionSet> {
        Ok(match resource {
            // The version check tells clients to authenticate; any credential passes it.
            Resource::Registry if principal.is_anonymous() => ActionSet::NONE,
            // Everyone may list; the listing shows only what the caller may read.
            Resource::Registry | Resource::Catalog => ActionSet::of(&[super::Action::Pull]),
            // Site admins hold everything; no need to read the repository's facts.
            Resource::Repository(_) if principal.is_site_admin() => ActionSet::ALL,
            Resource::Repository(repo) => {
                let facts = self.store.access_facts(principal.user_id(), repo).await?;
                policy::permission_actions(policy::repository_permission(principal, repo, &facts))
            }
        })
    }
}
