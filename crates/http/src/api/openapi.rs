//! `GET /api/openapi.json`: the hand-written OpenAPI 3.1 description of every JSON endpoint,
//! kept in step with the endpoint table by the tests below.

use super::error::ApiResult;
use axum::body::Body;
use axum::http::{header, HeaderValue, Response};

/// The document, as served.
pub(crate) const DOCUMENT: &str = include_str!("openapi.json");

pub(super) fn document() -> ApiResult<Response<Body>> {
    let mut response = Response::new(Body::from(DOCUMENT));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::route::ENDPOINTS;
    use serde_json::Value;
    use std::collections::BTreeSet;

    /// The endpoints outside `/api/` that the document also describes, with their methods.
    const OUTSIDE_API: &[(&str, &[&str])] =
        &[("/v1/search", &["get"]), ("/token", &["get", "post"])];

    const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    fn documented() -> BTreeSet<(String, String)> {
        let doc = document();
        let paths = doc["paths"].as_object().expect("paths");
        let mut found = BTreeSet::new();
        for (path, item) in paths {
            for (key, _) in item.as_object().expect("a path item") {
                assert!(
                    METHODS.contains(&key.as_str()) || key == "parameters",
                    "{path}: unexpected key {key}"
                );
                if key != "parameters" {
                    found.insert((path.clone(), key.clone()));
                }
            }
        }
        found
    }

    #[test]
    fn every_endpoint_is_documented_and_every_documented_one_exists() {
        let mut served = BTreeSet::new();
        for endpoint in ENDPOINTS {
            for method in endpoint.methods {
                served.insert((
                    endpoint.template.to_owned(),
                    method.as_str().to_ascii_lowercase(),
                ));
            }
        }
        for (path, methods) in OUTSIDE_API {
            for method in *methods {
                served.insert(((*path).to_owned(), (*method).to_owned()));
            }
        }
        let documented = documented();
        let undocumented: Vec<_> = served.difference(&documented).collect();
        let missing: Vec<_> = documented.difference(&served).collect();
        assert!(
            undocumented.is_empty(),
            "not in openapi.json: {undocumented:?}"
        );
        assert!(missing.is_empty(), "documented but not served: {missing:?}");
    }

    #[test]
    fn the_document_is_openapi_3_1_and_every_reference_resolves() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
        let mut references = Vec::new();
        collect_references(&doc, &mut references);
        assert!(!references.is_empty());
        for reference in references {
            let pointer = reference
                .strip_prefix('#')
                .unwrap_or_else(|| panic!("{reference}: only local references"));
            assert!(
                doc.pointer(pointer).is_some(),
                "{reference} resolves to nothing"
            );
        }
    }

    #[test]
    fn every_operation_has_an_id_a_summary_and_responses() {
        let doc = document();
        let mut ids = BTreeSet::new();
        for (path, method) in documented() {
            let operation = &doc["paths"][&path][&method];
            let id = operation["operationId"].as_str().unwrap_or_default();
            assert!(!id.is_empty(), "{method} {path}: no operationId");
            assert!(ids.insert(id.to_owned()), "{id} is used twice");
            assert!(
                operation["summary"].is_string(),
                "{method} {path}: no summary"
            );
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path}: no success response"
            );
        }
    }

    fn collect_references(value: &Value, into: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                for (key, item) in map {
                    match (key.as_str(), item) {
                        ("$ref", Value::String(target)) => into.push(target.clone()),
                        _ => collect_references(item, into),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|item| collect_references(item, into)),
            _ => {}
        }
    }
}
