//! Who may reach mirrored names: the mirror's own rule (public, or signed-in accounts),
//! pulls only, wrapped around the authorizer that decides everything else.

use super::Mirrors;
use crate::access::{Action, ActionSet, Authorizer, Principal, Resource};
use crate::Result;
use std::sync::Arc;

/// Mirrored repositories are read-only caches: pull as the mirror's access says, never
/// push or delete (site admins included). A name that is no local repository is pullable
/// as the transparent mirror says, since `ns=` or `mirror_default` may serve it.
pub struct MirrorAuthorizer {
    inner: Arc<dyn Authorizer>,
    mirrors: Mirrors,
}

impl MirrorAuthorizer {
    pub fn new(inner: Arc<dyn Authorizer>, mirrors: Mirrors) -> MirrorAuthorizer {
        MirrorAuthorizer { inner, mirrors }
    }
}

const PULL: &[Action] = &[Action::Pull];

#[async_trait::async_trait]
impl Authorizer for MirrorAuthorizer {
    async fn actions(&self, principal: &Principal, resource: &Resource) -> Result<ActionSet> {
        let Resource::Repository(repo) = resource else {
            return self.inner.actions(principal, resource).await;
        };
        if let Some(mirror) = self.mirrors.prefixed(repo) {
            return Ok(match mirror.access.allows(principal) {
                true => ActionSet::of(PULL),
                false => ActionSet::NONE,
            });
        }
        let decided = self.inner.actions(principal, resource).await?;
        if decided.contains(Action::Pull) {
            return Ok(decided);
        }
        match self.mirrors.transparent_access() {
            Some(access)
                if access.allows(principal)
                    && !self.mirrors.inner.meta.repository_exists(repo).await? =>
            {
                Ok(decided.union(ActionSet::of(PULL)))
            }
            _ => Ok(decided),
        }
    }

    fn viewer(&self, principal: &Principal) -> crate::ports::Viewer {
        self.inner.viewer(principal)
    }
}
