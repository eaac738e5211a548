//! Search as callers ask for it: pages of a set size, over what the caller may read.

use super::Hub;
use crate::access::Principal;
use crate::error::{Error, Result};
use crate::ports::{SearchPage, SearchQuery, SearchSort};

/// Largest page a search returns (Docker Hub's limit for `n`).
pub const MAX_PAGE_SIZE: u32 = 100;

/// Search text beyond this is ignored: no repository name is longer.
pub const MAX_SEARCH_TEXT_CHARS: usize = 255;

/// Query words beyond this are ignored: they would only widen an already broad search.
pub const MAX_QUERY_WORDS: usize = 16;

/// The query as every backend reads it: lowercased and trimmed (names are lowercase), and
/// its words split on everything but letters and digits, as the full-text indexes split
/// names and descriptions, so each word is a plain token that needs no escaping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchWords {
    /// The whole text, lowercased and trimmed: what an exact name match compares with.
    pub text: String,
    /// At most [`MAX_QUERY_WORDS`].
    pub words: Vec<String>,
}

impl SearchWords {
    /// None when the text has no words (only separators): nothing can match it.
    pub fn parse(text: &str) -> Option<SearchWords> {
        let text = text.trim().to_lowercase();
        let words: Vec<String> = text
            .split(|c: char| !c.is_alphanumeric())
            .filter(|w| !w.is_empty())
            .take(MAX_QUERY_WORDS)
            .map(str::to_owned)
            .collect();
        if words.is_empty() {
            return None;
        }
        Some(SearchWords { text, words })
    }
}

/// The relevance tiers, best first. Under [`SearchSort::Relevance`] every result of a tier
/// comes before any of the next, and within a tier the most popular ([`popularity`]) come
/// first, then by name. The other sorts replace the tiers; every backend ranks alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SearchTier {
    /// The whole name, or the name after its namespace, is the query (`library/redis` or
    /// `alice/redis` for `redis`).
    ExactName,
    /// Not exact, and the name or the name after its namespace starts with the query's
    /// words in sequence, the last as a prefix (`redis-tools` for `redis`).
    NameStartsWithQuery,
    /// The query's words in sequence later in the name (`my-redis` for `redis`).
    QueryLaterInName,
    /// Any one query word in the name or the short description, and none of the above.
    AnyWord,
}

impl SearchTier {
    /// The tiers in the order results are given.
    pub const ALL: [SearchTier; 4] = [
        SearchTier::ExactName,
        SearchTier::NameStartsWithQuery,
        SearchTier::QueryLaterInName,
        SearchTier::AnyWord,
    ];
}

/// Stars and pulls as one number to order by: (1 + stars)² · (1 + pulls) orders exactly like
/// 2·ln(1 + stars) + ln(1 + pulls), a star weighing like a pull squared. Backends compute the
/// same expression in SQL (and index it).
pub fn popularity(stars: u64, pulls: u64) -> f64 {
    let (stars, pulls) = (stars as f64, pulls as f64);
    (1.0 + stars) * (1.0 + stars) * (1.0 + pulls)
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_lowercased_and_split_on_separators() {
        let words = SearchWords::parse("  Web-Server\") OR *x ").unwrap();
        assert_eq!(words.text, "web-server\") or *x");
        assert_eq!(words.words, ["web", "server", "or", "x"]);
        assert_eq!(SearchWords::parse(" /-/ "), None);
        let many = "w ".repeat(40);
        assert_eq!(
            SearchWords::parse(&many).unwrap().words.len(),
            MAX_QUERY_WORDS
        );
    }

    #[test]
    fn a_star_weighs_like_a_pull_squared() {
        assert!(popularity(1, 0) > popularity(0, 2));
        assert!(popularity(1, 0) < popularity(0, 4));
        assert_eq!(popularity(0, 0), 1.0);
    }
}
