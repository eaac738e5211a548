//! The Hub: what makes a repository findable and judgeable — search, the repository page
//! with its rendered README, stars, pull activity, the verified-publisher mark and the tags
//! view — each showing only what the caller may read.

mod pull_tally;
mod pulls;
mod readme;
mod repository;
mod search;
mod tags;

pub use pull_tally::{counts_as_pull, tally_pulls, PullBatch, PullTally};
pub use pulls::MAX_PENDING_PULLS;
pub use readme::{render_readme, render_readme_nested};
pub use repository::{RepositoryView, MAX_DESCRIPTION_CHARS, MAX_FULL_DESCRIPTION_CHARS};
pub use search::{
    popularity, SearchRequest, SearchTier, SearchWords, MAX_PAGE_SIZE, MAX_QUERY_WORDS,
    MAX_SEARCH_TEXT_CHARS,
};
pub use tags::{Platform, ReferrerView, TagPage, TagView};

use crate::access::{Authorizer, Principal};
use crate::audit::Audit;
use crate::error::{Error, Result};
use crate::ports::{MetaStore, Permission};
use berth_oci::RepoName;
use pulls::PullRecorder;
use std::sync::Arc;

/// The Hub service over the metadata store; cheap to clone (the pull queue is shared).
#[derive(Clone)]
pub struct Hub {
    store: Arc<dyn MetaStore>,
    authorizer: Arc<dyn Authorizer>,
    audit: Audit,
    pulls: Arc<PullRecorder>,
}

impl Hub {
    pub fn new(store: Arc<dyn MetaStore>, authorizer: Arc<dyn Authorizer>) -> Hub {
        Hub {
            audit: Audit::over(store.clone()),
            store,
            authorizer,
            pulls: Arc::default(),
        }
    }

    /// The caller's permission on an existing repository it may read; `NameUnknown` when
    /// it may not, exactly as when the repository does not exist.
    async fn readable(&self, principal: &Principal, repo: &RepoName) -> Result<Permission> {
        // Namespace owners hold everything on names that do not exist yet: check both.
        match self.authorizer.permission(principal, repo).await? {
            Some(permission) if self.store.repository_exists(repo).await? => Ok(permission),
            _ => Err(Error::NameUnknown(repo.clone())),
        }
    }
}
