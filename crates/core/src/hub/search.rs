//! Search as callers ask for it: pages of a set size, over what the caller may read.

use super::Hub;
use crate::access::Principal;
use crate::error::{Error, Result};
use crate::ports::{SearchPage, SearchQuery, SearchSort};

/// Largest page a search returns (Docker Hub's limit for `n`).
pub const MAX_PAGE_SIZE: u32 = 100;

/// Search text beyond this is ignored: no repository name is longer.
pub const MAX_SEARCH_TEXT_CHARS: usize = 255;

/// A search as the API and `/v1/search` ask for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchRequest {
    pub text: String,
    pub official_only: bool,
    pub min_stars: u64,
    pub namespace: Option<String>,
    pub sort: SearchSort,
    /// 1-based; 0 is taken as 1.
    pub page: u32,
    /// 1..=[`MAX_PAGE_SIZE`]; out-of-range values are brought into it.
    pub page_size: u32,
}

impl Hub {
    /// Docker-style and API search; only what the principal may read appears, in the
    /// results and in the total (its token's repository patterns applied too).
    pub async fn search(
        &self,
        principal: &Principal,
        request: &SearchRequest,
    ) -> Result<SearchPage> {
        let limit = request.page_size.clamp(1, MAX_PAGE_SIZE);
        let offset = request.page.max(1).saturating_sub(1).saturating_mul(limit);
        let query = SearchQuery {
            text: request.text.chars().take(MAX_SEARCH_TEXT_CHARS).collect(),
            viewer: self.authorizer.viewer(principal),
            name_patterns: principal
                .limits
                .as_ref()
                .map(|limits| limits.repositories.clone())
                .unwrap_or_default(),
            official_only: request.official_only,
            min_stars: request.min_stars,
            namespace: request.namespace.clone(),
            sort: request.sort,
            offset,
            limit,
        };
        Ok(self.store.search(&query).await?)
    }

    /// A namespace's repositories as its page lists them: the search with only a namespace
    /// filter, so exactly what the principal may find there, most recently pushed first
    /// (never pushed last, by name). `AccountUnknown` when there is no such namespace.
    pub async fn in_namespace(
        &self,
        principal: &Principal,
        namespace: &str,
        page: u32,
        page_size: u32,
    ) -> Result<SearchPage> {
        if self.store.namespace(namespace).await?.is_none() {
            return Err(Error::AccountUnknown(namespace.to_owned()));
        }
        let request = SearchRequest {
            text: String::new(),
            official_only: false,
            min_stars: 0,
            namespace: Some(namespace.to_owned()),
            sort: SearchSort::LastUpdated,
            page,
            page_size,
        };
        self.search(principal, &request).await
    }
}
