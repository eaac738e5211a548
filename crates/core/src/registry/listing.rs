//! Paginated listings: a repository's tags and the catalog of repositories.

use super::Registry;
use crate::access::TokenLimits;
use crate::error::{Error, Result};
use crate::ports::Viewer;
use berth_oci::RepoName;

/// Largest page served, whatever `n` asks for.
pub const MAX_PAGE: u32 = 10_000;

/// One page of a sorted listing; `next` is the `last` to ask for the following page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub items: Vec<String>,
    pub next: Option<String>,
}

fn page(mut items: Vec<String>, limit: u32) -> Page {
    let more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if more { items.last().cloned() } else { None };
    Page { items, next }
}

impl Registry {
    /// Tags of `repo`, sorted, after `last`, at most `n` (default: all up to the page cap).
    pub async fn list_tags(
        &self,
        repo: &RepoName,
        last: Option<&str>,
        n: Option<u32>,
    ) -> Result<Page> {
        let limit = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
        if limit == 0 {
            if !self.meta.repository_exists(repo).await? {
                return Err(Error::NameUnknown(repo.clone()));
            }
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let items = self
            .meta
            .list_tags(repo, last, limit + 1)
            .await?
            .ok_or_else(|| Error::NameUnknown(repo.clone()))?;
        Ok(page(items, limit))
    }

    /// Repository names `viewer` may see, sorted, after `last`, at most `n`, narrowed to
    /// a token's repository patterns.
    pub async fn catalog(
        &self,
        viewer: Viewer,
        limits: Option<&TokenLimits>,
        last: Option<&str>,
        n: Option<u32>,
    ) -> Result<Page> {
        let limit = n.unwrap_or(MAX_PAGE).min(MAX_PAGE);
        if limit == 0 {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        if viewer == Viewer::Everything && limits.is_none() {
            let items = self.meta.list_repositories(last, limit + 1).await?;
            return Ok(page(items, limit));
        }
        // Token patterns are applied here, reading on until the page is full.
        let mut items = Vec::new();
        let mut after = last.map(str::to_owned);
        loop {
            let batch = self
                .meta
                .visible_repositories(viewer, after.as_deref(), limit + 1)
                .await?;
            let exhausted = batch.len() <= limit as usize;
            after = batch.last().cloned();
            items.extend(batch.into_iter().filter(|name| {
                limits.is_none_or(|l| name.parse::<RepoName>().is_ok_and(|repo| l.covers(&repo)))
            }));
            if exhausted || items.len() > limit as usize {
                break;
            }
        }
        items.truncate(limit as usize + 1);
        Ok(page(items, limit))
    }
}
