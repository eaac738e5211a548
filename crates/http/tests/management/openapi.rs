//! The OpenAPI document as served, and that each endpoint it documents answers. (Every API
//! answer in these tests is checked against it by the support code.)

use crate::schema::DOCUMENT;
use crate::support::{basic, Berth, ADMIN_PASSWORD};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn the_document_is_served_to_anyone() {
    let berth = Berth::start().await;
    let served = berth.anonymous().get("/api/openapi.json").await.expect(200);
    assert_eq!(served.header("content-type"), Some("application/json"));
    assert_eq!(served.body, *DOCUMENT);
    // Credentials that would be refused elsewhere do not stand in the way.
    let reply = berth
        .get_with_authorization("/api/openapi.json", "Basic !!!")
        .await
        .expect(200);
    assert_eq!(reply.body["openapi"], "3.1.0");
}

/// A concrete path for a documented template.
fn sample(template: &str) -> String {
    template
        .replace("{name}", "acme/app")
        .replace("{id}", "1")
        .replace("{username}", "nobody")
        .replace(['{', '}'], "")
}

#[tokio::test]
async fn every_documented_operation_is_served() {
    let berth = Berth::start().await;
    let admin = berth.with(basic("admin", ADMIN_PASSWORD));
    let paths = DOCUMENT["paths"].as_object().expect("paths");
    let mut operations = 0;
    for (template, item) in paths {
        for method in item.as_object().expect("path item").keys() {
            let method: Method = method.to_ascii_uppercase().parse().expect("a method");
            let body = [Method::POST, Method::PUT, Method::PATCH]
                .contains(&method)
                .then(|| json!({}));
            let path = sample(template);
            let reply = berth
                .send(method.clone(), &path, &admin.credentials, body)
                .await;
            // The API's "no such endpoint", or the registry's answer to a path nobody routes.
            let code = &reply.body["errors"][0]["code"];
            let unrouted = reply.status == 405
                || (reply.status == 404
                    && (code == "UNSUPPORTED"
                        || (code == "NOT_FOUND"
                            && reply.message().starts_with("no such endpoint"))));
            assert!(!unrouted, "{method} {path}: {}", reply.text);
            operations += 1;
        }
    }
    assert!(operations >= 50, "{operations} operations");
}
