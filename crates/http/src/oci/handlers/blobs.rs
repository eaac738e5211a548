//! `/v2/<name>/blobs/<digest>`: GET (with `Range`), HEAD and DELETE.

use super::{empty, Req};
use crate::oci::headers::{header_str, insert};
use crate::oci::method_not_allowed;
use axum::body::Body;
use axum::http::{header, Method, Response, StatusCode};
use berth_core::registry::BlobContent;
use berth_core::Error;
use berth_oci::{Digest, RangeRequest, RepoName};

/// A blob's answer: all of it, or the range asked for (206).
pub(super) fn serve(digest: &Digest, blob: BlobContent) -> Response<Body> {
    let sent = blob.range.map_or(blob.size, |r| r.len());
    let mut response = Response::new(match blob.body {
        Some(stream) => Body::from_stream(stream),
        None => Body::empty(),
    });
    let headers = response.headers_mut();
    insert(headers, "content-type", "application/octet-stream");
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(sent));
    insert(headers, "docker-content-digest", &digest.to_string());
    insert(headers, "etag", &format!("\"{digest}\""));
    insert(headers, "accept-ranges", "bytes");
    if let Some(r) = blob.range {
        insert(
            headers,
            "content-range",
            &format!("bytes {}-{}/{}", r.start, r.end, blob.size),
        );
        *response.status_mut() = StatusCode::PARTIAL_CONTENT;
    }
    response
}

/// The `Range` a client asked for; a malformed one is ignored and the whole blob served,
/// as RFC 9110 says.
pub(super) fn range_of(req: &Req<'_>) -> Option<RangeRequest> {
    header_str(req.headers, "range").and_then(|raw| RangeRequest::parse(raw).ok().flatten())
}

pub async fn handle(
    req: Req<'_>,
    name: &RepoName,
    digest: &Digest,
) -> Result<Response<Body>, Error> {
    let registry = &req.state.registry;
    match req.method {
        Method::GET | Method::HEAD => {
            if req.method == Method::GET {
                if let Some(location) = registry.blob_location(name, digest).await? {
                    // The client fetches the bytes (and any Range of them) from the store.
                    let mut response = empty(StatusCode::TEMPORARY_REDIRECT);
                    let headers = response.headers_mut();
                    insert(headers, "location", &location);
                    insert(headers, "docker-content-digest", &digest.to_string());
                    return Ok(response);
                }
            }
            let with_body = req.method == Method::GET;
            let range = range_of(&req);
            let blob = registry.read_blob(name, digest, range, with_body).await?;
            Ok(serve(digest, blob))
        }
        Method::DELETE => {
            registry.delete_blob(name, digest, req.changed_by()).await?;
            Ok(empty(StatusCode::ACCEPTED))
        }
        ref other => Err(method_not_allowed(other)),
    }
}
