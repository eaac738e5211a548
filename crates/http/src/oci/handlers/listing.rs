//! Paginated listings: `/v2/<name>/tags/list` and `/v2/_catalog`, with `n`, `last` and `Link`.

use super::Req;
use crate::oci::headers::insert;
use crate::oci::method_not_allowed;
use crate::query::query_param;
use axum::body::Body;
use axum::http::{header, Method, Response};
use berth_core::access::Principal;
use berth_core::registry::Page;
use berth_core::Error;
use berth_oci::RepoName;

fn page_params(query: &str) -> Result<(Option<u32>, Option<String>), Error> {
    let n = query_param(query, "n")
        .filter(|raw| !raw.is_empty())
        .map(|raw| {
            raw.parse::<u32>().map_err(|_| {
                Error::PaginationInvalid(format!("n must be a non-negative integer, got {raw:?}"))
            })
        })
        .transpose()?;
    Ok((n, query_param(query, "last").filter(|l| !l.is_empty())))
}

fn encode(component: &str) -> String {
    component
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

fn json_page(
    method: &Method,
    body: serde_json::Value,
    page: &Page,
    path: &str,
    n: Option<u32>,
) -> Response<Body> {
    let text = body.to_string();
    let len = text.len();
    let mut response = Response::new(if method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(text)
    });
    let headers = response.headers_mut();
    insert(headers, "content-type", "application/json");
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    if let Some(next) = &page.next {
        let n = n.unwrap_or(page.items.len() as u32);
        insert(
            headers,
            "link",
            &format!("<{path}?n={n}&last={}>; rel=\"next\"", encode(next)),
        );
    }
    response
}

pub async fn tags(req: Req<'_>, name: &RepoName) -> Result<Response<Body>, Error> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return Err(method_not_allowed(&req.method));
    }
    let (n, last) = page_params(req.query)?;
    let page = req
        .state
        .registry
        .list_tags(name, last.as_deref(), n)
        .await?;
    let body = serde_json::json!({ "name": name.as_str(), "tags": page.items });
    Ok(json_page(
        &req.method,
        body,
        &page,
        &format!("/v2/{name}/tags/list"),
        n,
    ))
}

pub async fn catalog(req: Req<'_>) -> Result<Response<Body>, Error> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return Err(method_not_allowed(&req.method));
    }
    let (n, last) = page_params(req.query)?;
    let principal = req.principal.unwrap_or_else(Principal::anonymous);
    let viewer = req.state.auth.authorizer().viewer(&principal);
    let page = req
        .state
        .registry
        .catalog(viewer, principal.limits.as_ref(), last.as_deref(), n)
        .await?;
    let body = serde_json::json!({ "repositories": page.items });
    Ok(json_page(&req.method, body, &page, "/v2/_catalog", n))
}
