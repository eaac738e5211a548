//! `/v2/<name>/referrers/<digest>`: an image index of the manifests whose subject is the digest.

use super::Req;
use crate::oci::headers::insert;
use crate::oci::method_not_allowed;
use crate::query::query_param;
use axum::body::Body;
use axum::http::{header, Method, Response};
use berth_core::Error;
use berth_oci::manifest::OCI_INDEX;
use berth_oci::{Digest, RepoName};
use serde_json::{json, Map, Value};

pub async fn list(req: Req<'_>, name: &RepoName, digest: &Digest) -> Result<Response<Body>, Error> {
    if !matches!(req.method, Method::GET | Method::HEAD) {
        return Err(method_not_allowed(&req.method));
    }
    let filter = query_param(req.query, "artifactType").filter(|t| !t.is_empty());
    let referrers = req
        .state
        .registry
        .referrers(name, digest, filter.as_deref())
        .await?;
    let manifests: Vec<Value> = referrers
        .into_iter()
        .map(|r| {
            let mut d = Map::new();
            d.insert("mediaType".into(), json!(r.media_type));
            d.insert("digest".into(), json!(r.digest.to_string()));
            d.insert("size".into(), json!(r.size));
            if let Some(t) = r.artifact_type {
                d.insert("artifactType".into(), json!(t));
            }
            if let Some(a) = r.annotations {
                d.insert("annotations".into(), Value::Object(a));
            }
            Value::Object(d)
        })
        .collect();
    let text =
        json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests }).to_string();
    let len = text.len();
    let mut response = Response::new(if req.method == Method::HEAD {
        Body::empty()
    } else {
        Body::from(text)
    });
    let headers = response.headers_mut();
    insert(headers, "content-type", OCI_INDEX);
    headers.insert(header::CONTENT_LENGTH, header::HeaderValue::from(len));
    if filter.is_some() {
        insert(headers, "oci-filters-applied", "artifactType");
    }
    Ok(response)
}
