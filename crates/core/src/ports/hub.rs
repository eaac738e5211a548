//! The Hub ports: what makes a repository findable and judgeable — descriptions, stars,
//! pull activity, the verified-publisher mark, search, and the tags view.

use super::identity::Viewer;
use super::meta::MetaError;
use berth_oci::{Digest, Platform, RepoName};

type Result<T> = std::result::Result<T, MetaError>;

/// A repository as the Hub shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositoryInfo {
    pub name: String,
    pub namespace: String,
    pub is_private: bool,
    /// Short description, at most 100 characters.
    pub description: String,
    /// The README, in Markdown as written.
    pub full_description: String,
    pub star_count: u64,
    pub pull_count: u64,
    pub created_at: i64,
    pub last_pushed_at: Option<i64>,
    pub last_pulled_at: Option<i64>,
    /// In the `library` namespace.
    pub is_official: bool,
    /// Its namespace is an organization a site admin marked as a verified publisher.
    pub is_verified: bool,
}

/// Manifest GETs by clients, as the pull path hands them over (recorded in batches):
/// `pulls` identical ones (same repository, manifest and tag), the latest at `at`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullEvent {
    pub repo: RepoName,
    /// The tag asked for, when the pull was by tag.
    pub tag: Option<String>,
    pub digest: Digest,
    pub at: i64,
    /// How many pulls this stands for (1 from the pull path; more once collapsed).
    pub pulls: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchSort {
    /// Exact name, then name prefix, then words in name or description; ties broken by
    /// stars and pulls.
    #[default]
    Relevance,
    /// Most stars first, then most pulls (relevance plays no part).
    Stars,
    /// Most pulls first, then most stars.
    Pulls,
    /// Most recently pushed first; never pushed last.
    LastUpdated,
}

#[derive(Debug, Clone)]
pub struct SearchQuery {
    pub text: String,
    /// Only repositories this viewer may read appear.
    pub viewer: Viewer,
    /// An access token's repository patterns (`*` matches any run of characters), which
    /// narrow the viewer further; empty: no narrowing.
    pub name_patterns: Vec<String>,
    pub official_only: bool,
    pub min_stars: u64,
    pub namespace: Option<String>,
    pub sort: SearchSort,
    pub offset: u32,
    pub limit: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPage {
    /// Matches in total (for page counts).
    pub total: u64,
    pub results: Vec<RepositoryInfo>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TagSort {
    /// Most recently pushed first (Docker Hub's default).
    #[default]
    LastPushed,
    LastPulled,
    Name,
}

/// A tag with what the tags view needs from the store; sizes and an index's platforms are
/// read from the manifest body by the Hub service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagRecord {
    pub name: String,
    pub digest: Digest,
    pub media_type: String,
    pub body: Vec<u8>,
    /// An image's platform, as recorded when it was pushed (or by the backfill).
    pub platform: Option<Platform>,
    pub pushed_at: i64,
    pub last_pulled_at: Option<i64>,
}

#[async_trait::async_trait]
pub trait HubStore: Send + Sync {
    async fn repository_info(&self, repo: &RepoName) -> Result<Option<RepositoryInfo>>;
    /// Sets the short and/or full description; false if the repository does not exist.
    async fn set_descriptions(
        &self,
        repo: &RepoName,
        description: Option<&str>,
        full_description: Option<&str>,
    ) -> Result<bool>;
    /// True if the star was added (false: already starred).
    async fn star(&self, user_id: i64, repo: &RepoName, now: i64) -> Result<bool>;
    /// True if a star was removed.
    async fn unstar(&self, user_id: i64, repo: &RepoName) -> Result<bool>;
    async fn has_starred(&self, user_id: i64, repo: &RepoName) -> Result<bool>;
    /// Records a batch of pulls in one transaction: per repository the pull count (a
    /// manifest fetched by digest that is a child of an index in the repository is part of
    /// the index's pull and not counted again; a pull by tag always counts) and last pulled;
    /// per tag last pulled (a pull by digest touches the tags pointing at the manifest or at
    /// an index holding it).
    async fn record_pulls(&self, pulls: &[PullEvent]) -> Result<()>;
    async fn search(&self, query: &SearchQuery) -> Result<SearchPage>;
    /// Marks an organization as a verified publisher (or not); false if there is none.
    async fn set_org_verified(&self, org: &str, verified: bool) -> Result<bool>;
    async fn org_verified(&self, org: &str) -> Result<bool>;
    /// One page of a repository's tags and the total number of tags.
    async fn tag_records(
        &self,
        repo: &RepoName,
        sort: TagSort,
        offset: u32,
        limit: u32,
    ) -> Result<(u64, Vec<TagRecord>)>;
}
