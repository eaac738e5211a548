//! `GET /api/v1/search`: the Hub's search with filters and sort orders, as a page of
//! repositories with their numbers and badges.

use super::error::{ApiError, ApiResult};
use super::hub::{page_number, RepositorySummary};
use super::wire::{query_number, query_text, PageRequest};
use super::Call;
use crate::query::query_param;
use axum::body::Body;
use axum::http::Response;
use berth_core::hub::SearchRequest;
use berth_core::ports::SearchSort;

/// `?q=&official=&min_stars=&namespace=&sort=&page=&page_size=`.
pub(super) async fn search(call: &Call<'_>) -> ApiResult<Response<Body>> {
    let page = PageRequest::from_query(&call.query)?;
    let request = SearchRequest {
        text: query_text(&call.query, "q").unwrap_or_default(),
        official_only: flag(&call.query, "official")?,
        min_stars: query_number(&call.query, "min_stars")?.unwrap_or(0),
        namespace: query_param(&call.query, "namespace").filter(|n| !n.is_empty()),
        sort: sort(&call.query)?,
        page: page_number(page),
        page_size: page.size as u32,
    };
    let found = call.state.hub.search(&call.principal, &request).await?;
    let results: Vec<RepositorySummary> = found
        .results
        .into_iter()
        .map(|info| RepositorySummary::new(info, &call.state.mirrors))
        .collect();
    call.page_of_total(found.total, results, page)
}

/// A yes/no filter: absent or `false`/`0` is off, `true`/`1` on.
fn flag(query: &str, key: &str) -> ApiResult<bool> {
    match query_param(query, key).as_deref() {
        None | Some("" | "false" | "0") => Ok(false),
        Some("true" | "1") => Ok(true),
        Some(other) => Err(ApiError::BadRequest(format!(
            "query parameter {key} must be true or false, not {:?}",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

fn sort(query: &str) -> ApiResult<SearchSort> {
    match query_param(query, "sort").as_deref() {
        None | Some("" | "relevance") => Ok(SearchSort::Relevance),
        Some("stars") => Ok(SearchSort::Stars),
        Some("pulls") => Ok(SearchSort::Pulls),
        Some("last_updated") => Ok(SearchSort::LastUpdated),
        Some(other) => Err(ApiError::BadRequest(format!(
            "sort must be relevance, stars, pulls or last_updated, not {:?}",
            other.chars().take(40).collect::<String>()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_sorts_are_read_strictly() {
        assert!(!flag("", "official").unwrap());
        assert!(flag("official=true", "official").unwrap());
        assert!(flag("official=1", "official").unwrap());
        assert!(!flag("official=false", "official").unwrap());
        assert!(flag("official=yes", "official").is_err());
        assert_eq!(sort("").unwrap(), SearchSort::Relevance);
        assert_eq!(sort("sort=stars").unwrap(), SearchSort::Stars);
        assert_eq!(sort("sort=pulls").unwrap(), SearchSort::Pulls);
        assert_eq!(sort("sort=last_updated").unwrap(), SearchSort::LastUpdated);
        assert!(matches!(
            sort("sort=downloads"),
            Err(ApiError::BadRequest(m)) if m.contains("downloads")
        ));
    }
}
