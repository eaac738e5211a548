//! `GET /v1/search`: Docker Hub's registry search, which `docker search` and `podman search`
//! call, answered from the Hub's search with the caller's registry credentials.

use crate::api::error::{render, ApiError};
use crate::api::wire::{json_response, query_number, query_text, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE};
use crate::auth::{identify, peer_address, refuse};
use crate::oci::error_response;
use crate::AppState;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, Response, StatusCode};
use berth_core::hub::SearchRequest;
use berth_core::ports::{RepositoryInfo, SearchSort};
use berth_core::Error;
use serde::Serialize;

/// The answer, field for field as Docker Hub gives it.
#[derive(Debug, Serialize)]
struct SearchAnswer {
    num_pages: u64,
    num_results: u64,
    page_size: u32,
    page: u32,
    query: String,
    results: Vec<SearchResult>,
}

#[derive(Debug, Serialize)]
struct SearchResult {
    /// The full name; official images without their `library/`, as Docker Hub shows them.
    name: String,
    description: String,
    star_count: u64,
    is_official: bool,
    /// Docker Hub's automated builds; Berth has none.
    is_automated: bool,
}

impl From<RepositoryInfo> for SearchResult {
    fn from(info: RepositoryInfo) -> SearchResult {
        SearchResult {
            name: match info.name.strip_prefix("library/") {
                Some(official) => official.to_owned(),
                None => info.name,
            },
            description: info.description,
            star_count: info.star_count,
            is_official: info.is_official,
            is_automated: false,
        }
    }
}

/// `n` (1 to 100, default 25) and `page` (from 1, default 1).
fn paging(query: &str) -> Result<(u32, u32), ApiError> {
    let size = query_number::<usize>(query, "n")?.unwrap_or(DEFAULT_PAGE_SIZE);
    if !(1..=MAX_PAGE_SIZE).contains(&size) {
        return Err(ApiError::BadRequest(format!(
            "query parameter n must be between 1 and {MAX_PAGE_SIZE}"
        )));
    }
    let page = query_number::<u32>(query, "page")?.unwrap_or(1);
    if page == 0 {
        return Err(ApiError::BadRequest(
            "query parameter page counts from 1".to_owned(),
        ));
    }
    Ok((size as u32, page))
}

pub(crate) async fn search(
    State(state): State<AppState>,
    request: Request<Body>,
) -> Response<Body> {
    let method = request.method().clone();
    let (parts, _) = request.into_parts();
    let query = parts.uri.query().unwrap_or_default();
    let (page_size, page) = match paging(query) {
        Ok(paging) => paging,
        Err(err) => return render(&err, &method),
    };
    let peer = peer_address(&parts.extensions);
    let principal = match identify(&state, &parts.headers, peer).await {
        Ok(caller) => caller.principal(&state).await,
        Err(err) => Err(err),
    };
    let principal = match principal {
        Ok(principal) => principal,
        Err(err) => return refuse(&state, &parts.extensions, &method, &err, &[], false),
    };
    let text = query_text(query, "q").unwrap_or_default();
    let request = SearchRequest {
        text: text.clone(),
        official_only: false,
        min_stars: 0,
        namespace: None,
        sort: SearchSort::Relevance,
        page,
        page_size,
    };
    match state.hub.search(&principal, &request).await {
        Ok(found) => json_response(
            StatusCode::OK,
            &SearchAnswer {
                num_pages: found.total.div_ceil(u64::from(page_size)),
                num_results: found.total,
                page_size,
                page,
                query: text,
                results: found.results.into_iter().map(SearchResult::from).collect(),
            },
        ),
        Err(err) => error_response(&err, &method),
    }
}

/// Anything but GET (and HEAD) on `/v1/search`.
pub(crate) async fn other_method(request: Request<Body>) -> Response<Body> {
    let method = request.method().clone();
    error_response(&Error::MethodNotAllowed(method.to_string()), &method)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_defaults_and_bounds_name_the_parameter() {
        assert_eq!(paging("q=x").unwrap(), (25, 1));
        assert_eq!(paging("n=100&page=3").unwrap(), (100, 3));
        for (query, named) in [
            ("n=0", "n"),
            ("n=101", "n"),
            ("n=ten", "n"),
            ("page=0", "page"),
            ("page=-2", "page"),
        ] {
            match paging(query) {
                Err(ApiError::BadRequest(message)) => {
                    assert!(message.contains(named), "{query}: {message}")
                }
                other => panic!("{query}: {other:?}"),
            }
        }
    }

    #[test]
    fn official_images_are_named_without_library() {
        let info = |name: &str, namespace: &str| RepositoryInfo {
            name: name.into(),
            namespace: namespace.into(),
            is_private: false,
            description: "d".into(),
            full_description: String::new(),
            star_count: 3,
            pull_count: 0,
            created_at: 0,
            last_pushed_at: None,
            last_pulled_at: None,
            is_official: namespace == "library",
            is_verified: false,
        };
        assert_eq!(
            SearchResult::from(info("library/nginx", "library")).name,
            "nginx"
        );
        assert_eq!(
            SearchResult::from(info("acme/app/api", "acme")).name,
            "acme/app/api"
        );
        let result = SearchResult::from(info("library/nginx", "library"));
        assert!(result.is_official && !result.is_automated);
    }
}
