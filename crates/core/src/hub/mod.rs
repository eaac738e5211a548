//! The Hub: what makes a repository findable and judgeable — search, the repository page
//! with its rendered README, stars, pull activity, the verified-publisher mark and the tags
//! view — each showing only what the caller may read.

mod pulls;
mod readme;
mod repository;
mod search;
mod tags;

pub use pulls::MAX_PENDING_PULLS;
pub use readme::{render_readme, render_readme_nested};
pub use repository::{RepositoryView, MAX_DESCRIPTION_CHARS, MAX_FULL_DESCRIPTION_CHARS};
pub use search::{SearchRequest, MAX_PAGE_SIZE, MAX_SEARCH_TEXT_CHARS};
pub use tags::{Platform, ReferrerView, TagPage, TagView};

use crate::access::{Action, ActionSet, Authorizer, Principal, Resource};
use crate::error::{Error, Result};
use crate::identity::Acting;
use crate::ports::{AuditEvent, MetaStore, Permission};
use crate::time::now_unix;
use berth_oci::RepoName;
use pulls::PullRecorder;
use std::sync::Arc;

/// The Hub service over the metadata store; cheap to clone (the pull queue is shared).
#[derive(Clone)]
pub struct Hub {
    store: Arc<dyn MetaStore>,
    authorizer: Arc<dyn Authorizer>,
    pulls: Arc<PullRecorder>,
}

impl Hub {
    pub fn new(store: Arc<dyn MetaStore>, authorizer: Arc<dyn Authorizer>) -> Hub {
        Hub {
            store,
            authorizer,
            pulls: Arc::default(),
        }
    }

    /// The caller's permission on an existing repository it may read; `NameUnknown` when
    /// it may not, exactly as when the repository does not exist.
    async fn readable(&self, principal: &Principal, repo: &RepoName) -> Result<Permission> {
        let actions = self
            .authorizer
            .actions(principal, &Resource::Repository(repo.clone()))
            .await?;
        // Namespace owners hold everything on names that do not exist yet: check both.
        match permission_of(actions) {
            Some(permission) if self.store.repository_exists(repo).await? => Ok(permission),
            _ => Err(Error::NameUnknown(repo.clone())),
        }
    }

    /// Records a change that already happened; a failure is logged, not returned, as the
    /// management service does.
    async fn audit(
        &self,
        acting: &Acting<'_>,
        action: &str,
        target: &str,
        detail: serde_json::Value,
    ) {
        let event = AuditEvent {
            at: now_unix(),
            actor: acting.actor_name(),
            action: action.to_owned(),
            target: target.to_owned(),
            detail: Some(detail.to_string()),
            address: acting.address.clone(),
        };
        if let Err(err) = self.store.record_audit(&event.capped()).await {
            tracing::warn!(%err, action, target, "could not write the audit log");
        }
    }
}

/// The permission level an authorizer's answer amounts to (the inverse of
/// [`crate::access::permission_actions`]).
fn permission_of(actions: ActionSet) -> Option<Permission> {
    if !actions.contains(Action::Pull) {
        None
    } else if actions.contains(Action::Delete) {
        Some(Permission::Admin)
    } else if actions.contains(Action::Push) {
        Some(Permission::Write)
    } else {
        Some(Permission::Read)
    }
}

/// Not enough permission on something the caller may see: an anonymous caller is asked to
/// sign in, anyone else is refused.
fn refusal(principal: &Principal) -> Error {
    if principal.is_anonymous() {
        Error::Unauthorized
    } else {
        Error::Denied
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access::permission_actions;

    #[test]
    fn permissions_round_trip_through_actions() {
        for permission in [
            None,
            Some(Permission::Read),
            Some(Permission::Write),
            Some(Permission::Admin),
        ] {
            assert_eq!(permission_of(permission_actions(permission)), permission);
        }
        assert_eq!(permission_of(ActionSet::of(&[Action::Push])), None);
    }
}
