//! `/v2/`: the version check every client starts with.

use crate::support::{assert_error, header, TestApp};

#[tokio::test]
async fn get_v2_answers_200_with_the_api_version() {
    let app = TestApp::spawn().await;
    let resp = app.send(app.get("/v2/")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(header(&resp, "content-length"), "2");
    assert_eq!(resp.text().await.unwrap(), "{}");
}

#[tokio::test]
async fn head_v2_answers_200_without_a_body() {
    let app = TestApp::spawn().await;
    let resp = app.send(app.head("/v2/")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
    assert!(resp.bytes().await.unwrap().is_empty());
}

#[tokio::test]
async fn v2_without_the_trailing_slash_is_the_same_endpoint() {
    let app = TestApp::spawn().await;
    let resp = app.send(app.get("/v2")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        header(&resp, "docker-distribution-api-version"),
        "registry/2.0"
    );
}

#[tokio::test]
async fn v2_refuses_other_methods() {
    let app = TestApp::spawn().await;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = app.send(app.request(method, "/v2/")).await;
        assert_error(resp, 405, "UNSUPPORTED").await;
    }
}
