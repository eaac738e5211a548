//! The access seam: every request is checked here once, so no handler decides access itself.

use crate::Result;
use berth_oci::RepoName;

/// Who is asking. Identities (users, tokens) join this enum with the identity capability.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Principal {
    Anonymous,
}

/// What is being touched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    /// The `/v2/` version check.
    Registry,
    /// The repository listing (`_catalog`).
    Catalog,
    Repository(RepoName),
}

/// What is being done, in Docker token-scope terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Pull,
    Push,
    Delete,
}

/// One permission the caller needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Need {
    pub resource: Resource,
    pub action: Action,
}

impl Need {
    pub fn repo(name: &RepoName, action: Action) -> Need {
        Need {
            resource: Resource::Repository(name.clone()),
            action,
        }
    }
}

/// Decides whether a principal may do everything a request needs.
#[async_trait::async_trait]
pub trait Authorizer: Send + Sync {
    /// `Ok(())` when every need is granted; `Unauthorized` to ask for credentials; `Denied`
    /// when credentials cannot help.
    async fn authorize(&self, principal: &Principal, needs: &[Need]) -> Result<()>;
}

/// Anonymous read and write for everyone: the embedded default until identities exist.
#[derive(Debug, Default, Clone, Copy)]
pub struct OpenAccess;

#[async_trait::async_trait]
impl Authorizer for OpenAccess {
    async fn authorize(&self, _principal: &Principal, _needs: &[Need]) -> Result<()> {
        Ok(())
    }
}
