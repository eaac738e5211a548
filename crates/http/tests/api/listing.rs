//! Paginated listings: `/v2/<name>/tags/list` and `/v2/_catalog`, with `n`, `last` and `Link`.

use crate::support::{assert_error, header, json_body, maybe_header, TestApp};
use serde_json::Value;

/// The target of a `Link: <url>; rel="next"` header.
fn next_link(resp: &reqwest::Response) -> Option<String> {
    let link = maybe_header(resp, "link")?;
    let (target, params) = link.split_once(';').expect("Link has parameters");
    assert_eq!(params.trim(), "rel=\"next\"", "{link}");
    let target = target.trim();
    Some(
        target
            .strip_prefix('<')
            .and_then(|t| t.strip_suffix('>'))
            .unwrap_or_else(|| panic!("malformed Link {link}"))
            .to_owned(),
    )
}

fn strings(value: &Value) -> Vec<String> {
    serde_json::from_value(value.clone()).expect("a list of strings")
}

/// Follows `Link` headers from `first` and returns every page's items under `key`.
async fn walk(app: &TestApp, first: &str, key: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut next = Some(first.to_owned());
    while let Some(path) = next {
        let resp = app.send(app.get(&path)).await;
        assert_eq!(resp.status(), 200, "{path}");
        assert_eq!(header(&resp, "content-type"), "application/json");
        next = next_link(&resp);
        pages.push(strings(&json_body(resp).await[key]));
        assert!(pages.len() <= 20, "pagination does not end");
    }
    pages
}

/// A repository whose tags are pushed out of order, all pointing at one image.
async fn repo_with_tags(app: &TestApp, repo: &str, tags: &[&str]) {
    let image = app.push_image(repo, tags[0], 1).await;
    for tag in &tags[1..] {
        app.push_manifest_ok(repo, tag, &image).await;
    }
}

const TAGS: [&str; 7] = ["v2", "latest", "B", "v10", "a", "1.0", "_x"];

fn sorted_tags() -> Vec<String> {
    let mut tags: Vec<String> = TAGS.iter().map(|t| t.to_string()).collect();
    tags.sort();
    tags
}

#[tokio::test]
async fn tags_are_listed_sorted_with_the_repository_name() {
    let app = TestApp::spawn().await;
    repo_with_tags(&app, "team/app", &TAGS).await;
    let resp = app.send(app.get("/v2/team/app/tags/list")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(maybe_header(&resp, "link"), None);
    let body = json_body(resp).await;
    assert_eq!(body["name"], "team/app");
    assert_eq!(strings(&body["tags"]), sorted_tags());
}

#[tokio::test]
async fn tags_are_paginated_with_n_and_link() {
    let app = TestApp::spawn().await;
    repo_with_tags(&app, "ns/repo", &TAGS).await;
    let all = sorted_tags();

    let resp = app.send(app.get("/v2/ns/repo/tags/list?n=3")).await;
    assert_eq!(
        next_link(&resp).as_deref(),
        Some(format!("/v2/ns/repo/tags/list?n=3&last={}", all[2]).as_str())
    );

    let pages = walk(&app, "/v2/ns/repo/tags/list?n=3", "tags").await;
    assert_eq!(pages.len(), 3);
    assert_eq!(pages[0], all[..3]);
    assert_eq!(pages[1], all[3..6]);
    assert_eq!(pages[2], all[6..]);
}

#[tokio::test]
async fn last_starts_after_the_given_tag() {
    let app = TestApp::spawn().await;
    repo_with_tags(&app, "ns/repo", &TAGS).await;
    let all = sorted_tags();

    let resp = app.send(app.get("/v2/ns/repo/tags/list?last=B")).await;
    assert_eq!(maybe_header(&resp, "link"), None);
    let after_b: Vec<String> = all.iter().filter(|t| t.as_str() > "B").cloned().collect();
    assert_eq!(strings(&json_body(resp).await["tags"]), after_b);

    let resp = app.send(app.get("/v2/ns/repo/tags/list?n=2&last=a")).await;
    assert!(next_link(&resp).is_some());
    assert_eq!(strings(&json_body(resp).await["tags"]), ["latest", "v10"]);

    // A `last` that is not itself a tag still orders correctly.
    let resp = app.send(app.get("/v2/ns/repo/tags/list?last=u")).await;
    assert_eq!(strings(&json_body(resp).await["tags"]), ["v10", "v2"]);
    let resp = app.send(app.get("/v2/ns/repo/tags/list?last=zzz")).await;
    assert!(strings(&json_body(resp).await["tags"]).is_empty());
}

#[tokio::test]
async fn n_as_large_as_the_list_has_no_link() {
    let app = TestApp::spawn().await;
    repo_with_tags(&app, "ns/repo", &TAGS).await;
    for n in [7, 8, 100_000] {
        let resp = app
            .send(app.get(&format!("/v2/ns/repo/tags/list?n={n}")))
            .await;
        assert_eq!(resp.status(), 200);
        assert_eq!(maybe_header(&resp, "link"), None, "n={n}");
        assert_eq!(strings(&json_body(resp).await["tags"]), sorted_tags());
    }
}

#[tokio::test]
async fn n_zero_is_an_empty_page() {
    let app = TestApp::spawn().await;
    repo_with_tags(&app, "ns/repo", &TAGS).await;
    let resp = app.send(app.get("/v2/ns/repo/tags/list?n=0")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(maybe_header(&resp, "link"), None);
    let body = json_body(resp).await;
    assert_eq!(body["name"], "ns/repo");
    assert!(strings(&body["tags"]).is_empty());
}

#[tokio::test]
async fn an_invalid_n_is_pagination_number_invalid() {
    let app = TestApp::spawn().await;
    repo_with_tags(&app, "ns/repo", &TAGS).await;
    for n in ["-1", "abc", "1.5", "99999999999999999999", "0x10"] {
        let resp = app
            .send(app.get(&format!("/v2/ns/repo/tags/list?n={n}")))
            .await;
        assert_error(resp, 400, "PAGINATION_NUMBER_INVALID").await;
        let resp = app.send(app.get(&format!("/v2/_catalog?n={n}"))).await;
        assert_error(resp, 400, "PAGINATION_NUMBER_INVALID").await;
    }
}

#[tokio::test]
async fn tags_of_an_unknown_repository_are_name_unknown() {
    let app = TestApp::spawn().await;
    repo_with_tags(&app, "known", &["v1"]).await;
    for query in ["", "?n=0", "?n=5&last=a"] {
        let resp = app
            .send(app.get(&format!("/v2/unknown/tags/list{query}")))
            .await;
        assert_error(resp, 404, "NAME_UNKNOWN").await;
    }
}

#[tokio::test]
async fn a_repository_with_blobs_but_no_tags_lists_no_tags() {
    let app = TestApp::spawn().await;
    app.push_blob("blobs-only", b"x").await;
    let resp = app.send(app.get("/v2/blobs-only/tags/list")).await;
    assert_eq!(resp.status(), 200);
    assert!(strings(&json_body(resp).await["tags"]).is_empty());
}

#[tokio::test]
async fn head_on_a_listing_has_headers_and_no_body() {
    let app = TestApp::spawn().await;
    repo_with_tags(&app, "ns/repo", &TAGS).await;
    for path in ["/v2/ns/repo/tags/list?n=2", "/v2/_catalog"] {
        let resp = app.send(app.head(path)).await;
        assert_eq!(resp.status(), 200);
        assert_eq!(header(&resp, "content-type"), "application/json");
        assert!(resp.bytes().await.unwrap().is_empty());
    }
}

const REPOS: [&str; 6] = [
    "zeta/z",
    "alpha/one",
    "alpha/a",
    "beta/x/y",
    "alpha-two/a",
    "b/b",
];

fn sorted_repos() -> Vec<String> {
    let mut repos: Vec<String> = REPOS.iter().map(|r| r.to_string()).collect();
    repos.sort();
    repos
}

async fn registry_with_repos(app: &TestApp) {
    for (i, repo) in REPOS.iter().enumerate() {
        app.push_image(repo, "latest", i as u8).await;
    }
}

#[tokio::test]
async fn the_catalog_lists_repositories_sorted() {
    let app = TestApp::spawn().await;
    registry_with_repos(&app).await;
    let resp = app.send(app.get("/v2/_catalog")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(header(&resp, "content-type"), "application/json");
    assert_eq!(maybe_header(&resp, "link"), None);
    assert_eq!(
        strings(&json_body(resp).await["repositories"]),
        sorted_repos()
    );
}

#[tokio::test]
async fn the_catalog_is_paginated_with_n_and_link() {
    let app = TestApp::spawn().await;
    registry_with_repos(&app).await;
    let all = sorted_repos();

    let resp = app.send(app.get("/v2/_catalog?n=4")).await;
    let link = next_link(&resp).expect("a next page");
    assert!(link.starts_with("/v2/_catalog?n=4&last="), "{link}");

    let pages = walk(&app, "/v2/_catalog?n=4", "repositories").await;
    assert_eq!(pages.len(), 2);
    assert_eq!(pages[0], all[..4]);
    assert_eq!(pages[1], all[4..]);

    // Page boundaries on names with slashes survive the round trip through `last`.
    let pages = walk(&app, "/v2/_catalog?n=1", "repositories").await;
    let flat: Vec<String> = pages.into_iter().flatten().collect();
    assert_eq!(flat, all);
}

#[tokio::test]
async fn the_catalog_honours_last_and_n_zero() {
    let app = TestApp::spawn().await;
    registry_with_repos(&app).await;
    let resp = app.send(app.get("/v2/_catalog?last=alpha%2Fone")).await;
    let expected: Vec<String> = sorted_repos()
        .into_iter()
        .filter(|r| r.as_str() > "alpha/one")
        .collect();
    assert_eq!(strings(&json_body(resp).await["repositories"]), expected);

    let resp = app.send(app.get("/v2/_catalog?n=0")).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(maybe_header(&resp, "link"), None);
    assert!(strings(&json_body(resp).await["repositories"]).is_empty());
}

#[tokio::test]
async fn an_empty_registry_has_an_empty_catalog() {
    let app = TestApp::spawn().await;
    let resp = app.send(app.get("/v2/_catalog")).await;
    assert_eq!(resp.status(), 200);
    assert!(strings(&json_body(resp).await["repositories"]).is_empty());
}

#[tokio::test]
async fn listings_refuse_other_methods() {
    let app = TestApp::spawn().await;
    repo_with_tags(&app, "ns/repo", &["v1"]).await;
    for path in ["/v2/ns/repo/tags/list", "/v2/_catalog"] {
        for method in [
            reqwest::Method::POST,
            reqwest::Method::PUT,
            reqwest::Method::DELETE,
        ] {
            let resp = app.send(app.request(method, path)).await;
            assert_error(resp, 405, "UNSUPPORTED").await;
        }
    }
}
