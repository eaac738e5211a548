//! Content discovery: tag listing with pagination, the catalog, and the
//! referrers API (distribution-spec v1.1).

use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};

use crate::common::*;

const SBOM_TYPE: &str = "application/vnd.berth.test.sbom.v1";
const SIG_TYPE: &str = "application/vnd.berth.test.signature.v1";
const CUSTOM_CONFIG_TYPE: &str = "application/vnd.berth.test.config.v1+json";

/// Tags deliberately pushed out of order; all lowercase so lexical order is unambiguous.
const TAGS_SHUFFLED: &[&str] = &[
    "v1.0", "alpha", "beta-2", "0.1", "zeta", "beta-10", "latest",
];

fn sorted_tags() -> Vec<String> {
    let mut t: Vec<String> = TAGS_SHUFFLED.iter().map(|s| s.to_string()).collect();
    t.sort();
    t
}

/// Push one image to `repo` and tag it with every tag in `TAGS_SHUFFLED`.
async fn push_tagged_repo(server: &TestServer, label: &str) -> String {
    let repo = unique_repo(label);
    let image = server.push_random_image(&repo, None).await;
    for tag in TAGS_SHUFFLED {
        server
            .push_manifest_ok(&repo, Some(tag), MT_OCI_MANIFEST, &image.bytes)
            .await;
    }
    repo
}

#[tokio::test]
async fn tags_list_sorted() {
    let server = TestServer::start().await;
    let repo = push_tagged_repo(&server, "tags-sorted").await;
    let resp = server.list_tags(&repo, "").await;
    let (headers, body) = expect_status(resp, 200, "GET tags/list").await;
    let v: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(v["name"], json!(repo), "tags/list `name`");
    assert_eq!(tags_from_body(&body), sorted_tags(), "tags/list order");
    assert!(
        next_link(&headers).is_none(),
        "complete tag list must not carry a rel=\"next\" Link"
    );
}

#[tokio::test]
async fn tags_list_paginated_with_link() {
    let server = TestServer::start().await;
    let repo = push_tagged_repo(&server, "tags-paged").await;
    let all = sorted_tags();

    let resp = server.list_tags(&repo, "n=3").await;
    let (headers, body) = expect_status(resp, 200, "GET tags/list?n=3").await;
    let first = tags_from_body(&body);
    assert_eq!(first, all[..3].to_vec(), "first page of n=3");
    let mut next = next_link(&headers).expect("tags/list?n=3 must carry Link rel=\"next\"");

    let mut collected = first;
    for page in 1..=10 {
        let resp = server
            .client()
            .get(server.resolve(&next))
            .send()
            .await
            .unwrap();
        let ctx = format!("tags/list page {page} via Link {next}");
        let (headers, body) = expect_status(resp, 200, &ctx).await;
        let tags = tags_from_body(&body);
        assert!(tags.len() <= 3, "{ctx}: more than n=3 tags");
        collected.extend(tags);
        match next_link(&headers) {
            Some(l) => next = l,
            None => break,
        }
        assert!(page < 10, "tags/list pagination does not terminate");
    }
    assert_eq!(
        collected, all,
        "pages joined via Link must give every tag once, in order"
    );
}

#[tokio::test]
async fn tags_list_last() {
    let server = TestServer::start().await;
    let repo = push_tagged_repo(&server, "tags-last").await;
    let all = sorted_tags();

    let query = format!("n=3&last={}", all[1]);
    let (_, body) = expect_status(server.list_tags(&repo, &query).await, 200, &query).await;
    assert_eq!(
        tags_from_body(&body),
        all[2..5].to_vec(),
        "tags after {}",
        all[1]
    );

    // `last` without `n`: everything after it.
    let query = format!("last={}", all[3]);
    let (_, body) = expect_status(server.list_tags(&repo, &query).await, 200, &query).await;
    assert_eq!(
        tags_from_body(&body),
        all[4..].to_vec(),
        "tags after {}",
        all[3]
    );

    // `last` at the final tag: empty.
    let query = format!("n=3&last={}", all[all.len() - 1]);
    let (headers, body) = expect_status(server.list_tags(&repo, &query).await, 200, &query).await;
    assert!(
        tags_from_body(&body).is_empty(),
        "{query}: expected no tags"
    );
    assert!(next_link(&headers).is_none(), "{query}: unexpected Link");
}

#[tokio::test]
async fn tags_list_n_zero() {
    let server = TestServer::start().await;
    let repo = push_tagged_repo(&server, "tags-n0").await;
    let (headers, body) = expect_status(server.list_tags(&repo, "n=0").await, 200, "n=0").await;
    assert!(
        tags_from_body(&body).is_empty(),
        "n=0 must return an empty list"
    );
    assert!(
        next_link(&headers).is_none(),
        "n=0 must not include a Link header"
    );
}

#[tokio::test]
async fn tags_list_unknown_repository() {
    let server = TestServer::start().await;
    let repo = unique_repo("tags-no-such-repo");
    let resp = server.list_tags(&repo, "").await;
    expect_error(
        resp,
        &[404],
        &["NAME_UNKNOWN"],
        "tags/list of unknown repository",
    )
    .await;
}

fn repositories(body: &[u8]) -> Vec<String> {
    let v: Value = serde_json::from_slice(body).expect("catalog body is JSON");
    v["repositories"]
        .as_array()
        .unwrap_or_else(|| panic!("catalog lacks `repositories`: {v}"))
        .iter()
        .map(|r| r.as_str().expect("repository is a string").to_string())
        .collect()
}

fn assert_sorted(list: &[String], ctx: &str) {
    let mut sorted = list.to_vec();
    sorted.sort();
    assert_eq!(list, sorted.as_slice(), "{ctx}: not in lexical order");
}

#[tokio::test]
async fn catalog_lists_repositories_with_pagination() {
    let server = TestServer::start().await;
    let prefix = format!("berth-conformance/catalog-{}", unique_id());
    let repos: Vec<String> = ["c", "a", "b"]
        .iter()
        .map(|s| format!("{prefix}/{s}"))
        .collect();
    for repo in &repos {
        server.push_random_image(repo, Some("latest")).await;
    }
    let mut expected = repos.clone();
    expected.sort();

    // The first page of the whole catalog is sorted (and, on a private
    // server, is exactly our repositories).
    let resp = server
        .request(Method::GET, "/v2/_catalog")
        .send()
        .await
        .unwrap();
    let (_, body) = expect_status(resp, 200, "GET /v2/_catalog").await;
    let listed = repositories(&body);
    assert_sorted(&listed, "_catalog");
    if !server.is_external() {
        assert_eq!(listed, expected, "_catalog of a fresh registry");
    }

    // Paginate starting right before our prefix.
    let resp = server
        .request(Method::GET, &format!("/v2/_catalog?n=2&last={prefix}"))
        .send()
        .await
        .unwrap();
    let (headers, body) = expect_status(resp, 200, "_catalog?n=2&last=<prefix>").await;
    assert_eq!(
        repositories(&body),
        expected[..2].to_vec(),
        "first catalog page"
    );
    let next = next_link(&headers).expect("_catalog?n=2 with more entries must carry Link");
    let resp = server
        .client()
        .get(server.resolve(&next))
        .send()
        .await
        .unwrap();
    let (_, body) = expect_status(resp, 200, "_catalog via Link").await;
    let page = repositories(&body);
    assert_eq!(
        page.first(),
        Some(&expected[2]),
        "second catalog page via Link"
    );
    assert!(page.len() <= 2, "second catalog page exceeds n=2");

    // `last` is exclusive.
    let resp = server
        .request(
            Method::GET,
            &format!("/v2/_catalog?n=1&last={}", expected[0]),
        )
        .send()
        .await
        .unwrap();
    let (_, body) = expect_status(resp, 200, "_catalog?n=1&last=<a>").await;
    assert_eq!(
        repositories(&body),
        vec![expected[1].clone()],
        "entry after `last`"
    );
}

/// Parse a referrers response: 200, index Content-Type, index body; returns the descriptors.
async fn expect_referrers(
    resp: reqwest::Response,
    ctx: &str,
) -> (reqwest::header::HeaderMap, Vec<Value>) {
    let (headers, body) = expect_status(resp, 200, ctx).await;
    assert_eq!(
        bare_media_type(&require_header(&headers, "content-type", ctx)),
        MT_OCI_INDEX,
        "{ctx}: Content-Type"
    );
    let v: Value =
        serde_json::from_slice(&body).unwrap_or_else(|e| panic!("{ctx}: body is not JSON ({e})"));
    assert_eq!(v["schemaVersion"], json!(2), "{ctx}: schemaVersion");
    assert_eq!(v["mediaType"], json!(MT_OCI_INDEX), "{ctx}: mediaType");
    let manifests = v["manifests"]
        .as_array()
        .unwrap_or_else(|| panic!("{ctx}: `manifests` must be an array: {v}"))
        .clone();
    (headers, manifests)
}

fn by_digest(manifests: &[Value]) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for m in manifests {
        let d = m["digest"].as_str().expect("descriptor digest").to_string();
        assert!(
            map.insert(d.clone(), m.clone()).is_none(),
            "duplicate referrer {d}"
        );
    }
    map
}

#[tokio::test]
async fn referrers_empty() {
    let server = TestServer::start().await;
    let repo = unique_repo("referrers-empty");
    let image = server.push_random_image(&repo, Some("base")).await;

    let resp = server.referrers(&repo, &image.digest, "").await;
    let (_, manifests) = expect_referrers(resp, "referrers of a manifest without referrers").await;
    assert!(
        manifests.is_empty(),
        "expected no referrers, got {manifests:?}"
    );

    // Unknown digests in an existing repository are not a 404 either.
    let resp = server.referrers(&repo, &random_digest(), "").await;
    let (_, manifests) = expect_referrers(resp, "referrers of an unknown digest").await;
    assert!(
        manifests.is_empty(),
        "expected no referrers, got {manifests:?}"
    );
}

/// Set up a subject with a variety of referrers and some non-referrers.
struct ReferrersFixture {
    repo: String,
    subject: PushedManifest,
    sbom: PushedManifest,
    sbom2: PushedManifest,
    sig: PushedManifest,
    /// Image manifest with a subject but no artifactType (falls back to config type).
    plain: PushedManifest,
    /// Index with a subject and no artifactType.
    index: PushedManifest,
}

async fn referrers_fixture(server: &TestServer, label: &str) -> ReferrersFixture {
    let repo = unique_repo(label);
    let subject = server.push_random_image(&repo, Some("base")).await;
    let sd = subject.descriptor();

    let sbom = server
        .push_artifact(
            &repo,
            SBOM_TYPE,
            &sd,
            &[("org.example.sbom.format", "json")],
        )
        .await;
    let sbom2 = server
        .push_artifact(
            &repo,
            SBOM_TYPE,
            &sd,
            &[("org.example.sbom.format", "spdx")],
        )
        .await;
    let sig = server
        .push_artifact(
            &repo,
            SIG_TYPE,
            &sd,
            &[("org.example.signature.fingerprint", "abcd")],
        )
        .await;

    // Image manifest without artifactType: the referrer's artifactType is the config mediaType.
    let config = pretty(&json!({"id": unique_id()}));
    server.push_blob(&repo, &config).await;
    let layer = random_bytes(40);
    server.push_blob(&repo, &layer).await;
    let mut v = image_manifest_json(
        &Descriptor::of(CUSTOM_CONFIG_TYPE, &config),
        &[Descriptor::of(MT_OCI_LAYER, &layer)],
    );
    v["subject"] = sd.json();
    let bytes = pretty(&v);
    server
        .push_manifest_ok(&repo, None, MT_OCI_MANIFEST, &bytes)
        .await;
    let plain = PushedManifest::new(&repo, bytes, MT_OCI_MANIFEST, Vec::new());

    // Index with a subject and no artifactType.
    let child = server.push_random_image(&repo, None).await;
    let mut iv: Value = serde_json::from_slice(&image_index(&[child.descriptor()])).unwrap();
    iv["subject"] = sd.json();
    iv["annotations"] = json!({"org.example.kind": "index-referrer"});
    let bytes = pretty(&iv);
    server
        .push_manifest_ok(&repo, None, MT_OCI_INDEX, &bytes)
        .await;
    let index = PushedManifest::new(&repo, bytes, MT_OCI_INDEX, Vec::new());

    // Noise that must not show up: an artifact for another subject in the same
    // repository, and an artifact for the same subject digest in another repository.
    let other_subject = server.push_random_image(&repo, Some("other")).await;
    server
        .push_artifact(&repo, SBOM_TYPE, &other_subject.descriptor(), &[])
        .await;
    let elsewhere = unique_repo(&format!("{label}-elsewhere"));
    server.push_artifact(&elsewhere, SBOM_TYPE, &sd, &[]).await;

    ReferrersFixture {
        repo,
        subject,
        sbom,
        sbom2,
        sig,
        plain,
        index,
    }
}

/// The descriptor must match the pushed manifest and carry `artifact_type` and
/// the manifest's annotations.
fn check_descriptor(d: &Value, pushed: &PushedManifest, artifact_type: Option<&str>) {
    let ctx = format!("referrer {}", pushed.digest);
    assert_eq!(d["mediaType"], json!(pushed.media_type), "{ctx}: mediaType");
    assert_eq!(d["size"], json!(pushed.bytes.len()), "{ctx}: size");
    match artifact_type {
        Some(at) => assert_eq!(d["artifactType"], json!(at), "{ctx}: artifactType"),
        None => assert!(
            d.get("artifactType").is_none_or(|v| v.is_null() || v == ""),
            "{ctx}: artifactType must be omitted for an index without one: {d}"
        ),
    }
    let manifest: Value = serde_json::from_slice(&pushed.bytes).unwrap();
    let expected = manifest.get("annotations").cloned().unwrap_or(Value::Null);
    let got = d.get("annotations").cloned().unwrap_or(Value::Null);
    let empty = |v: &Value| v.is_null() || v.as_object().is_some_and(|m| m.is_empty());
    if !(empty(&expected) && empty(&got)) {
        assert_eq!(got, expected, "{ctx}: annotations");
    }
}

#[tokio::test]
async fn referrers_lists_artifacts() {
    let server = TestServer::start().await;
    let fx = referrers_fixture(&server, "referrers-list").await;

    let resp = server.referrers(&fx.repo, &fx.subject.digest, "").await;
    let (headers, manifests) = expect_referrers(resp, "GET referrers").await;
    assert!(
        next_link(&headers).is_none(),
        "small referrers list should fit in one response"
    );
    let got = by_digest(&manifests);
    let want = [
        (&fx.sbom, Some(SBOM_TYPE)),
        (&fx.sbom2, Some(SBOM_TYPE)),
        (&fx.sig, Some(SIG_TYPE)),
        (&fx.plain, Some(CUSTOM_CONFIG_TYPE)),
        (&fx.index, None),
    ];
    let mut want_digests: Vec<&str> = want.iter().map(|(p, _)| p.digest.as_str()).collect();
    want_digests.sort();
    let got_digests: Vec<&str> = got.keys().map(String::as_str).collect();
    assert_eq!(got_digests, want_digests, "referrers of the subject");
    for (pushed, at) in want {
        check_descriptor(&got[&pushed.digest], pushed, at);
    }
}

#[tokio::test]
async fn referrers_artifact_type_filter() {
    let server = TestServer::start().await;
    let fx = referrers_fixture(&server, "referrers-filter").await;

    let query = format!("artifactType={SBOM_TYPE}");
    let resp = server.referrers(&fx.repo, &fx.subject.digest, &query).await;
    let (headers, manifests) = expect_referrers(resp, "GET referrers?artifactType=sbom").await;
    let applied = require_header(&headers, "oci-filters-applied", "filtered referrers");
    assert!(
        applied.split(',').any(|f| f.trim() == "artifactType"),
        "OCI-Filters-Applied must name artifactType, got {applied:?}"
    );
    let got = by_digest(&manifests);
    let mut want = vec![fx.sbom.digest.clone(), fx.sbom2.digest.clone()];
    want.sort();
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        want,
        "filtered referrers"
    );
    check_descriptor(&got[&fx.sbom.digest], &fx.sbom, Some(SBOM_TYPE));

    // The config-type fallback is filterable as well.
    let query = format!("artifactType={CUSTOM_CONFIG_TYPE}").replace('+', "%2B");
    let resp = server.referrers(&fx.repo, &fx.subject.digest, &query).await;
    let (_, manifests) = expect_referrers(resp, "GET referrers?artifactType=<config type>").await;
    let got = by_digest(&manifests);
    assert_eq!(
        got.keys().cloned().collect::<Vec<_>>(),
        vec![fx.plain.digest.clone()]
    );

    // A filter matching nothing gives an empty list, still flagged as filtered.
    let resp = server
        .referrers(
            &fx.repo,
            &fx.subject.digest,
            "artifactType=application/vnd.berth.none",
        )
        .await;
    let (headers, manifests) = expect_referrers(resp, "GET referrers?artifactType=<none>").await;
    assert!(
        manifests.is_empty(),
        "no referrer has that type: {manifests:?}"
    );
    require_header(
        &headers,
        "oci-filters-applied",
        "filtered referrers (no match)",
    );
}

#[tokio::test]
async fn referrers_invalid_digest() {
    let server = TestServer::start().await;
    let repo = unique_repo("referrers-bad-digest");
    server.push_random_image(&repo, Some("base")).await;
    let resp = server.referrers(&repo, "sha256:baddigeststring", "").await;
    expect_error(
        resp,
        &[400],
        &["DIGEST_INVALID"],
        "referrers of an invalid digest",
    )
    .await;
}
