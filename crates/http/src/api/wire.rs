//! The API's wire conventions: JSON bodies in (bounded, strictly parsed) and out, Docker Hub's
//! `{count, next, previous, results}` pages, and instants as RFC 3339.

use super::error::{ApiError, ApiResult};
use crate::query::{form_pairs, query_param};
use axum::body::Body;
use axum::http::{header, HeaderValue, Response, StatusCode};
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Largest request body read; management requests are a few fields.
pub(crate) const MAX_BODY_BYTES: usize = 64 * 1024;

/// Page size when the query names none, as on Docker Hub.
pub(crate) const DEFAULT_PAGE_SIZE: usize = 25;

/// Largest page a query may ask for.
pub(crate) const MAX_PAGE_SIZE: usize = 100;

/// A JSON response.
pub(crate) fn json_response(status: StatusCode, body: &impl Serialize) -> Response<Body> {
    // Serializing plain structs and `Value`s cannot fail; an empty object beats a panic.
    let bytes = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

pub(crate) fn ok(body: &impl Serialize) -> ApiResult<Response<Body>> {
    Ok(json_response(StatusCode::OK, body))
}

pub(crate) fn created(body: &impl Serialize) -> ApiResult<Response<Body>> {
    Ok(json_response(StatusCode::CREATED, body))
}

pub(crate) fn no_content() -> ApiResult<Response<Body>> {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

/// The body as `T`; an empty body is refused, since `T` has required fields.
pub(crate) fn parse_json<T: DeserializeOwned>(body: &[u8]) -> ApiResult<T> {
    // serde would also read a struct from an array of its fields; only objects are documented.
    match body.iter().find(|b| !b.is_ascii_whitespace()) {
        None => {
            return Err(ApiError::BadRequest(
                "this request needs a JSON object body".to_owned(),
            ))
        }
        Some(b'{') => {}
        Some(_) => {
            return Err(ApiError::BadRequest(
                "the request body must be a JSON object".to_owned(),
            ))
        }
    }
    serde_json::from_slice(body)
        .map_err(|e| ApiError::BadRequest(format!("the request body is not valid: {e}")))
}

/// The body as `T`, or `T::default()` when there is none (all of `T`'s fields are optional).
pub(crate) fn parse_optional_json<T: DeserializeOwned + Default>(body: &[u8]) -> ApiResult<T> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    parse_json(body)
}

/// An instant as the API shows it.
pub(crate) fn instant(unix: i64) -> String {
    berth_core::time::rfc3339(unix)
}

/// A number from the query string, if present.
pub(crate) fn query_number<T: std::str::FromStr>(query: &str, key: &str) -> ApiResult<Option<T>> {
    match query_param(query, key) {
        None => Ok(None),
        Some(raw) => raw.parse().map(Some).map_err(|_| {
            ApiError::BadRequest(format!(
                "query parameter {key} must be a positive whole number, not {:?}",
                raw.chars().take(40).collect::<String>()
            ))
        }),
    }
}

/// Text from the query string, where a `+` is a space as in an HTML form (`q=web+server`);
/// None if absent or broken.
pub(crate) fn query_text(query: &str, key: &str) -> Option<String> {
    form_pairs(query).find(|(k, _)| k == key).map(|(_, v)| v)
}

/// Which slice of a listing the query asks for: `page` (from 1) and `page_size` (1 to 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PageRequest {
    pub number: usize,
    pub size: usize,
}

impl PageRequest {
    pub(crate) fn from_query(query: &str) -> ApiResult<PageRequest> {
        let number = query_number::<usize>(query, "page")?.unwrap_or(1);
        let size = query_number::<usize>(query, "page_size")?.unwrap_or(DEFAULT_PAGE_SIZE);
        if number == 0 {
            return Err(ApiError::BadRequest("page counts from 1".to_owned()));
        }
        if !(1..=MAX_PAGE_SIZE).contains(&size) {
            return Err(ApiError::BadRequest(format!(
                "page_size must be between 1 and {MAX_PAGE_SIZE}"
            )));
        }
        Ok(PageRequest { number, size })
    }

    /// How many items come before this page.
    pub(crate) fn offset(&self) -> usize {
        (self.number - 1).saturating_mul(self.size)
    }
}

/// One page of a listing in Docker Hub's shape, with absolute `next`/`previous` links that
/// keep the rest of the query.
#[derive(Debug, Serialize)]
pub(crate) struct Page<T> {
    pub count: usize,
    pub next: Option<String>,
    pub previous: Option<String>,
    pub results: Vec<T>,
}

impl<T> Page<T> {
    /// The requested page of `items`; `link` is the listing's URL without a query.
    pub(crate) fn of(items: Vec<T>, request: PageRequest, link: &str, query: &str) -> Page<T> {
        let count = items.len();
        let results: Vec<T> = items
            .into_iter()
            .skip(request.offset())
            .take(request.size)
            .collect();
        Page::slice(count, results, request, link, query)
    }

    /// A page whose `results` the store already cut out of `count` items in all.
    pub(crate) fn slice(
        count: usize,
        results: Vec<T>,
        request: PageRequest,
        link: &str,
        query: &str,
    ) -> Page<T> {
        let more = request.offset().saturating_add(request.size) < count;
        let url = |number: usize| page_url(link, query, number, request.size);
        Page {
            count,
            next: more.then(|| url(request.number.saturating_add(1))),
            previous: (request.number > 1).then(|| url(request.number - 1)),
            results,
        }
    }
}

fn page_url(link: &str, query: &str, number: usize, size: usize) -> String {
    let mut pairs: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let key = pair.split_once('=').map_or(*pair, |(k, _)| k);
            !pair.is_empty() && key != "page" && key != "page_size"
        })
        .collect();
    let page = format!("page={number}");
    let page_size = format!("page_size={size}");
    pairs.push(&page);
    pairs.push(&page_size);
    format!("{link}?{}", pairs.join("&"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_default_and_are_bounded() {
        assert_eq!(
            PageRequest::from_query("").unwrap(),
            PageRequest {
                number: 1,
                size: 25
            }
        );
        assert_eq!(
            PageRequest::from_query("page=3&page_size=100").unwrap(),
            PageRequest {
                number: 3,
                size: 100
            }
        );
        for bad in [
            "page=0",
            "page=-1",
            "page=x",
            "page_size=0",
            "page_size=101",
        ] {
            assert!(PageRequest::from_query(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pages_link_to_their_neighbours_keeping_the_query() {
        let items: Vec<u32> = (1..=5).collect();
        let request = PageRequest { number: 2, size: 2 };
        let page = Page::of(
            items,
            request,
            "http://h/api/v1/users",
            "page=2&x=1&page_size=2",
        );
        assert_eq!(page.count, 5);
        assert_eq!(page.results, [3, 4]);
        assert_eq!(
            page.next.as_deref(),
            Some("http://h/api/v1/users?x=1&page=3&page_size=2")
        );
        assert_eq!(
            page.previous.as_deref(),
            Some("http://h/api/v1/users?x=1&page=1&page_size=2")
        );
        let last = Page::of(
            (1..=5).collect::<Vec<u32>>(),
            PageRequest { number: 3, size: 2 },
            "/l",
            "",
        );
        assert_eq!(last.results, [5]);
        assert!(last.next.is_none());
        let beyond = Page::of(
            (1..=5).collect::<Vec<u32>>(),
            PageRequest {
                number: usize::MAX,
                size: 100,
            },
            "/l",
            "",
        );
        assert!(beyond.results.is_empty() && beyond.next.is_none());
    }

    #[test]
    fn query_text_reads_plus_as_space() {
        assert_eq!(
            query_text("n=3&q=web+server%2B1", "q").as_deref(),
            Some("web server+1")
        );
        assert_eq!(query_text("n=3", "q"), None);
        assert_eq!(query_text("q", "q").as_deref(), Some(""));
    }

    mod never_panic {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]

            /// Any page query: a page or a 400, and any page slices any listing.
            #[test]
            fn page_queries_take_anything(
                page in "(|[0-9]{1,22}|-1|x|\\PC{0,6})",
                size in "(|[0-9]{1,22}|0|\\PC{0,6})",
                items in 0usize..50,
            ) {
                let query = format!("page={page}&page_size={size}&q=a+b");
                if let Ok(request) = PageRequest::from_query(&query) {
                    let listed = Page::of((0..items).collect::<Vec<_>>(), request, "/l", &query);
                    prop_assert!(listed.results.len() <= request.size);
                }
                let _ = query_text(&query, "q");
                let _ = query_number::<u32>(&query, "page");
            }

            #[test]
            fn json_bodies_are_parsed_or_refused(body in proptest::collection::vec(any::<u8>(), 0..64)) {
                let _ = parse_json::<serde_json::Value>(&body);
                let _ = parse_optional_json::<Option<serde_json::Value>>(&body);
            }
        }
    }

    #[test]
    fn bodies_are_parsed_strictly() {
        #[derive(Debug, serde::Deserialize, Default)]
        #[serde(deny_unknown_fields)]
        struct Body {
            #[allow(dead_code)]
            name: Option<String>,
        }
        assert!(parse_json::<Body>(b"").is_err());
        assert!(parse_optional_json::<Body>(b" ").is_ok());
        let err = parse_json::<Body>(br#"{"nmae":"x"}"#).unwrap_err();
        assert!(matches!(err, ApiError::BadRequest(m) if m.contains("nmae")));
        assert!(parse_json::<Body>(b"{").is_err());
        assert!(parse_json::<Body>(b"[null]").is_err());
    }
}
