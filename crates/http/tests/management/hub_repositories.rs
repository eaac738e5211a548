//! A repository's Hub page through the API: descriptions and the sanitized README, stars,
//! and the tags view with sizes, platforms and attached artifacts.

use crate::support::{basic, Berth, Session, OCI_INDEX, OCI_MANIFEST, PASSWORD};
use berth_core::ports::{ManifestPlatform, Manifests as _, NewManifest};
use berth_core::registry::PlatformBackfill;
use reqwest::Method;
use serde_json::{json, Value};

/// The tags of an HTML fragment (`<h1>`, `<a href="...">`), not text that only looks like
/// one (`&lt;script&gt;`).
fn elements(html: &str) -> Vec<&str> {
    html.split('<')
        .skip(1)
        .filter_map(|rest| rest.split_once('>').map(|(tag, _)| tag))
        .collect()
}

async fn star(session: &Session<'_>, repo: &str, method: Method) -> u16 {
    session
        .berth
        .send(
            method,
            &format!("/api/v1/repositories/{repo}/-/star"),
            &session.credentials,
            None,
        )
        .await
        .status
}

#[tokio::test]
async fn descriptions_are_kept_and_the_readme_is_rendered_without_anything_that_runs() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    assert_eq!(
        berth
            .with(basic("alice", PASSWORD))
            .push_image("alice/app", "v1")
            .await,
        201
    );
    let readme = "# Alice's app\n\nRun it with `app --fast`.\n\n\
        <script>alert('readme')</script>\n\n\
        [click me](javascript:alert(1)) <img src=x onerror=\"alert(2)\">\n\n\
        <a href=\"https://example.com\" onclick=\"alert(3)\">site</a>\n";
    let changed = alice
        .patch(
            "/api/v1/repositories/alice/app",
            json!({ "description": "A tiny app.", "full_description": readme, "is_private": false }),
        )
        .await
        .expect(200);
    assert_eq!(changed.body["description"], "A tiny app.");
    assert_eq!(changed.body["full_description"], readme);
    assert_eq!(changed.body["is_private"], false);

    let shown = berth
        .anonymous()
        .get("/api/v1/repositories/alice/app")
        .await
        .expect(200);
    assert_eq!(shown.body["full_description"], readme);
    let html = shown.body["readme_html"].as_str().expect("readme_html");
    assert!(html.contains("<h1>") && html.contains("Alice"), "{html}");
    assert!(html.contains("<code>app --fast</code>"), "{html}");
    // Raw HTML may show as text, but no element the browser would build can run anything.
    for element in elements(html) {
        let lowered = element.to_ascii_lowercase();
        for hostile in ["script", "img", "javascript:", "onerror", "onclick"] {
            assert!(!lowered.contains(hostile), "{element} in {html}");
        }
    }
    assert!(html.contains("click me"), "the link's text stays: {html}");

    // The short description has a limit; a refused change changes nothing.
    let long = "x".repeat(101);
    let refused = alice
        .patch(
            "/api/v1/repositories/alice/app",
            json!({ "description": long, "is_private": true }),
        )
        .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let unchanged = alice
        .get("/api/v1/repositories/alice/app")
        .await
        .expect(200);
    assert_eq!(unchanged.body["description"], "A tiny app.");
    assert_eq!(unchanged.body["is_private"], false);
    alice
        .patch(
            "/api/v1/repositories/alice/app",
            json!({ "description": "y".repeat(100) }),
        )
        .await
        .expect(200);

    // Only the repository's admins describe it.
    bob.patch(
        "/api/v1/repositories/alice/app",
        json!({ "description": "mine now" }),
    )
    .await
    .expect_error(403, "DENIED");
    berth
        .anonymous()
        .patch(
            "/api/v1/repositories/alice/app",
            json!({ "full_description": "defaced" }),
        )
        .await
        .expect_error(401, "UNAUTHORIZED");
    let after = berth
        .anonymous()
        .get("/api/v1/repositories/alice/app")
        .await
        .expect(200);
    assert_eq!(after.body["full_description"], readme);
}

#[tokio::test]
async fn each_user_stars_a_repository_once() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let bob = berth.user("bob").await;
    let carol = berth.user("carol").await;
    for name in ["alice/lib", "alice/private"] {
        alice
            .post(
                "/api/v1/repositories",
                json!({ "namespace": "alice", "name": name.trim_start_matches("alice/"), "is_private": name.ends_with("private") }),
            )
            .await
            .expect(201);
    }

    assert_eq!(star(&bob, "alice/lib", Method::PUT).await, 204);
    assert_eq!(star(&bob, "alice/lib", Method::PUT).await, 204);
    let seen = lib_as(&bob).await;
    assert_eq!(
        (&seen["star_count"], &seen["has_starred"]),
        (&json!(1), &json!(true))
    );
    assert_eq!(lib_as(&carol).await["has_starred"], false);
    assert_eq!(star(&carol, "alice/lib", Method::PUT).await, 204);
    assert_eq!(lib_as(&alice).await["star_count"], 2);

    // Stars show in listings.
    let listed = berth
        .anonymous()
        .get("/api/v1/namespaces/alice/repositories")
        .await
        .expect(200);
    let lib = listed.body["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|r| r["full_name"] == "alice/lib")
        .cloned()
        .expect("alice/lib listed");
    assert_eq!(lib["star_count"], 2);
    assert_eq!(listed.body["count"], 1, "the private one is not listed");

    assert_eq!(star(&bob, "alice/lib", Method::DELETE).await, 204);
    assert_eq!(star(&bob, "alice/lib", Method::DELETE).await, 204);
    let seen = lib_as(&bob).await;
    assert_eq!(
        (&seen["star_count"], &seen["has_starred"]),
        (&json!(1), &json!(false))
    );

    // Anonymous callers have no stars; a repository one cannot read is as missing.
    assert_eq!(
        star(&berth.anonymous(), "alice/lib", Method::PUT).await,
        401
    );
    let hidden = bob
        .berth
        .send(
            Method::PUT,
            "/api/v1/repositories/alice/private/-/star",
            &bob.credentials,
            None,
        )
        .await
        .expect_error(404, "NAME_UNKNOWN");
    let missing = bob
        .berth
        .send(
            Method::PUT,
            "/api/v1/repositories/alice/nothing/-/star",
            &bob.credentials,
            None,
        )
        .await
        .expect_error(404, "NAME_UNKNOWN");
    assert_eq!(
        hidden.message().replace("private", "nothing"),
        missing.message()
    );
    assert_eq!(star(&alice, "alice/private", Method::PUT).await, 204);
    assert_eq!(
        alice
            .get("/api/v1/repositories/alice/private")
            .await
            .expect(200)
            .body["star_count"],
        1
    );
}

/// `alice/lib` as `session` sees it.
async fn lib_as(session: &Session<'_>) -> Value {
    session
        .get("/api/v1/repositories/alice/lib")
        .await
        .expect(200)
        .body
}

/// The tag named `name` in a tags page.
fn tag<'a>(page: &'a Value, name: &str) -> &'a Value {
    page["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tag {name} in {page}"))
}

#[tokio::test]
async fn the_tags_view_shows_sizes_platforms_pulls_and_attached_artifacts() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));
    let single = registry
        .push_platform_image(
            "alice/app",
            Some("v1"),
            ("linux", "amd64"),
            &[&[1u8; 10], &[2u8; 20]],
        )
        .await;
    let amd64 = registry
        .push_platform_image("alice/app", None, ("linux", "amd64"), &[&[3u8; 100]])
        .await;
    let arm64 = registry
        .push_platform_image("alice/app", None, ("linux", "arm64"), &[&[4u8; 200]])
        .await;
    let index = registry
        .push_index("alice/app", "multi", &[amd64, arm64])
        .await;
    let signature = registry
        .push_referrer(
            "alice/app",
            &single,
            "application/vnd.dev.cosign.artifact.sig.v1+json",
        )
        .await;

    let page = alice
        .get("/api/v1/repositories/alice/app/-/tags")
        .await
        .expect(200);
    assert_eq!(page.body["count"], 2, "{}", page.text);
    let v1 = tag(&page.body, "v1");
    assert_eq!(v1["digest"], single["digest"]);
    assert_eq!(v1["media_type"], OCI_MANIFEST);
    assert_eq!(v1["full_size"], 30, "the sum of its layers");
    assert_eq!(
        v1["images"],
        json!([{ "os": "linux", "architecture": "amd64", "variant": null }]),
        "a single image's platform, from its configuration"
    );
    assert_eq!(
        v1["referrers"],
        json!([{
            "digest": signature,
            "media_type": OCI_MANIFEST,
            "artifact_type": "application/vnd.dev.cosign.artifact.sig.v1+json",
        }])
    );
    assert!(v1["tag_last_pushed"].is_string());
    assert_eq!(v1["tag_last_pushed"], v1["last_updated"]);
    assert_eq!(v1["tag_last_pulled"], Value::Null);

    let multi = tag(&page.body, "multi");
    assert_eq!(multi["digest"], index);
    assert_eq!(multi["media_type"], OCI_INDEX);
    assert_eq!(multi["full_size"], 300, "every platform's layers");
    let mut platforms: Vec<&str> = multi["images"]
        .as_array()
        .expect("images")
        .iter()
        .map(|image| image["architecture"].as_str().expect("architecture"))
        .collect();
    platforms.sort_unstable();
    assert_eq!(platforms, ["amd64", "arm64"]);
    assert_eq!(multi["referrers"], json!([]));

    // Sorted and paged as asked.
    let by_name = alice
        .get("/api/v1/repositories/alice/app/-/tags?ordering=name&page_size=1")
        .await
        .expect(200);
    assert_eq!(by_name.body["count"], 2);
    assert_eq!(by_name.body["results"][0]["name"], "multi");
    assert!(by_name.body["next"]
        .as_str()
        .expect("next")
        .contains("ordering=name"));
    let second = alice
        .get("/api/v1/repositories/alice/app/-/tags?ordering=name&page_size=1&page=2")
        .await
        .expect(200);
    assert_eq!(second.body["results"][0]["name"], "v1");

    assert_eq!(registry.pull_manifest("alice/app", "v1").await, 200);
    berth.flush_pulls().await;
    let by_pull = alice
        .get("/api/v1/repositories/alice/app/-/tags?ordering=last_pulled")
        .await
        .expect(200);
    assert_eq!(by_pull.body["results"][0]["name"], "v1");
    assert!(by_pull.body["results"][0]["tag_last_pulled"].is_string());
    assert_eq!(by_pull.body["results"][1]["tag_last_pulled"], Value::Null);

    alice
        .get("/api/v1/repositories/alice/app/-/tags?ordering=size")
        .await
        .expect_error(400, "BAD_REQUEST");
    // A private repository's tags are as missing to others as the repository.
    berth
        .anonymous()
        .get("/api/v1/repositories/alice/app/-/tags")
        .await
        .expect_error(404, "NAME_UNKNOWN");
    berth
        .user("bob")
        .await
        .get("/api/v1/repositories/alice/app/-/tags")
        .await
        .expect_error(404, "NAME_UNKNOWN");
}

const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// An image configuration as `docker buildx` writes one for 64-bit ARM.
const ARM64_CONFIG: &str = r#"{"architecture":"arm64","variant":"v8","os":"linux",
    "config":{"Cmd":["/bin/sh"]},"rootfs":{"type":"layers","diff_ids":[]}}"#;

/// A manifest (Docker schema 2 for a Docker configuration, OCI otherwise) of `config`
/// pushed as a blob of `config_type`, with one layer.
async fn image_manifest(
    registry: &Session<'_>,
    repo: &str,
    config_type: &str,
    config: &[u8],
) -> (&'static str, Value) {
    let config = registry.push_blob(repo, config_type, config).await;
    let layer = registry
        .push_blob(repo, LAYER, config_type.as_bytes())
        .await;
    let media_type = if config_type == DOCKER_CONFIG {
        DOCKER_MANIFEST
    } else {
        OCI_MANIFEST
    };
    let manifest = json!({
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config,
        "layers": [layer],
    });
    (media_type, manifest)
}

/// The `images` of tag `name` of `alice/app`, as its owner sees them.
async fn images(alice: &Session<'_>, name: &str) -> Value {
    let page = alice
        .get("/api/v1/repositories/alice/app/-/tags?page_size=100")
        .await
        .expect(200);
    tag(&page.body, name)["images"].clone()
}

#[tokio::test]
async fn a_single_image_shows_its_platform_and_an_artifact_none() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));

    // docker buildx --platform linux/arm64 pushes a Docker schema 2 image.
    let (media_type, arm) = image_manifest(
        &registry,
        "alice/app",
        DOCKER_CONFIG,
        ARM64_CONFIG.as_bytes(),
    )
    .await;
    registry
        .push_manifest("alice/app", "arm", media_type, &arm)
        .await;
    assert_eq!(
        images(&alice, "arm").await,
        json!([{ "os": "linux", "architecture": "arm64", "variant": "v8" }])
    );

    // An artifact (oras, helm) has no platform, whatever its configuration says.
    let (_, mut chart) = image_manifest(
        &registry,
        "alice/app",
        "application/vnd.cncf.helm.config.v1+json",
        ARM64_CONFIG.as_bytes(),
    )
    .await;
    chart["artifactType"] = json!("application/vnd.cncf.helm.config.v1+json");
    registry
        .push_manifest("alice/app", "chart", OCI_MANIFEST, &chart)
        .await;
    assert_eq!(images(&alice, "chart").await, json!([]));

    // An image configuration that is not JSON, or names no platform, pushes fine and shows
    // none.
    let (media_type, broken) =
        image_manifest(&registry, "alice/app", OCI_CONFIG, b"\x00 not json {").await;
    registry
        .push_manifest("alice/app", "broken", media_type, &broken)
        .await;
    assert_eq!(images(&alice, "broken").await, json!([]));
    let (media_type, unnamed) = image_manifest(
        &registry,
        "alice/app",
        OCI_CONFIG,
        br#"{"os":"","architecture":""}"#,
    )
    .await;
    registry
        .push_manifest("alice/app", "unnamed", media_type, &unnamed)
        .await;
    assert_eq!(images(&alice, "unnamed").await, json!([]));

    // The same image pushed again under another tag shows the same platform.
    registry
        .push_manifest("alice/app", "arm-again", DOCKER_MANIFEST, &arm)
        .await;
    assert_eq!(
        images(&alice, "arm-again").await,
        images(&alice, "arm").await
    );
}

#[tokio::test]
async fn the_backfill_finds_the_platform_of_an_image_stored_without_one() {
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));
    // An image whose manifest an older Berth stored, with no platform recorded, and one
    // whose configuration is no longer in storage.
    let (media_type, arm) =
        image_manifest(&registry, "alice/app", OCI_CONFIG, ARM64_CONFIG.as_bytes()).await;
    let gone = json!({
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": { "mediaType": OCI_CONFIG, "digest": format!("sha256:{}", "0".repeat(64)), "size": 2 },
        "layers": [],
    });
    for (tag, manifest) in [("old", &arm), ("gone", &gone)] {
        let body = manifest.to_string().into_bytes();
        berth
            .meta
            .put_manifest(&NewManifest {
                repo: "alice/app".parse().unwrap(),
                digest: berth_oci::Digest::sha256_of(&body),
                media_type: media_type.to_owned(),
                body,
                blobs: vec![],
                children: vec![],
                subject: None,
                artifact_type: None,
                annotations_json: None,
                platform: ManifestPlatform::Unread,
                tags: vec![tag.to_owned()],
                now: 1_700_000_000,
                actor: None,
                events: Vec::new(),
            })
            .await
            .unwrap();
    }
    assert_eq!(images(&alice, "old").await, json!([]));

    let report = berth.registry.backfill_platforms().await.unwrap();
    assert_eq!(
        report,
        PlatformBackfill {
            recorded: 2,
            with_platform: 1,
            unread: 0
        }
    );
    assert_eq!(
        images(&alice, "old").await,
        json!([{ "os": "linux", "architecture": "arm64", "variant": "v8" }])
    );
    assert_eq!(images(&alice, "gone").await, json!([]));
    // Done once: a second run finds nothing left to read.
    assert_eq!(
        berth.registry.backfill_platforms().await.unwrap(),
        PlatformBackfill::default()
    );
}
