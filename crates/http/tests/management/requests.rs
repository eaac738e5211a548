//! What the API answers to requests it cannot take: malformed or oversized bodies, unknown
//! paths, wrong methods. Always a JSON error that says what is wrong, never a 500.

use crate::support::{Berth, Credentials};
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn malformed_bodies_are_refused_with_the_reason() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let cases: [(&str, &str); 8] = [
        ("{", "EOF"),
        ("not json", "JSON object"),
        ("", "JSON object"),
        ("[]", "JSON object"),
        ("null", "JSON object"),
        (
            r#"{"username":"eve","password":"long enough","colour":"red"}"#,
            "colour",
        ),
        (r#"{"username":"eve"}"#, "password"),
        (r#"{"username":7,"password":"long enough"}"#, "invalid type"),
    ];
    for (body, reason) in cases {
        let reply = berth
            .send_raw(Method::POST, "/api/v1/users", &admin.credentials, body)
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(reply.message().contains(reason), "{body:?}: {}", reply.text);
    }
    let deep = "[".repeat(10_000);
    berth
        .send_raw(Method::POST, "/api/v1/users", &admin.credentials, deep)
        .await
        .expect_error(400, "BAD_REQUEST");
    let not_utf8 = vec![b'{', 0xff, 0xfe, b'}'];
    berth
        .send_raw(Method::POST, "/api/v1/users", &admin.credentials, not_utf8)
        .await
        .expect_error(400, "BAD_REQUEST");
    let huge = format!(r#"{{"username":"{}","password":"x"}}"#, "a".repeat(70_000));
    berth
        .send_raw(Method::POST, "/api/v1/users", &admin.credentials, huge)
        .await
        .expect_error(413, "SIZE_INVALID");
    // The login endpoint reads bodies the same way.
    berth
        .send_raw(
            Method::POST,
            "/api/v1/users/login",
            &Credentials::Anonymous,
            "{\"username\":",
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert_eq!(
        admin.get("/api/v1/users").await.expect(200).body["count"],
        1
    );
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json_errors() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    for path in [
        "/api",
        "/api/",
        "/api/v1",
        "/api/v2/users",
        "/api/v1/stars",
        "/api/v1/users/admin/friends",
        "/api/v1/access-tokens/not-a-number",
        "/api/v1/repositories/library/nginx/-/stars",
    ] {
        let reply = admin.get(path).await.expect_error(404, "NOT_FOUND");
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{path}"
        );
    }
    let reply = berth
        .send(
            Method::PUT,
            "/api/v1/users",
            &admin.credentials,
            Some(json!({})),
        )
        .await
        .expect_error(405, "METHOD_NOT_ALLOWED");
    assert_eq!(reply.header("allow"), Some("GET, POST"));
    berth
        .send(Method::GET, "/api/v1/users/login", &admin.credentials, None)
        .await
        .expect_error(404, "NOT_FOUND");
    berth
        .send(
            Method::DELETE,
            "/api/v1/auditlogs",
            &admin.credentials,
            None,
        )
        .await
        .expect_error(405, "METHOD_NOT_ALLOWED");
    admin
        .get("/api/v1/repositories/UPPER/case")
        .await
        .expect_error(400, "NAME_INVALID");
    admin
        .get("/api/v1/users?page_size=1000")
        .await
        .expect_error(400, "BAD_REQUEST");
    admin
        .get("/api/v1/users?page=0")
        .await
        .expect_error(400, "BAD_REQUEST");
    // Credentials that cannot be read are refused, not ignored.
    for value in ["Basic !!!", "Digest abc", "Bearer", "garbage"] {
        let reply = berth
            .get_with_authorization("/api/v1/users/admin", value)
            .await
            .expect_error(401, "UNAUTHORIZED");
        assert!(reply.header("www-authenticate").is_some(), "{value}");
    }
}
