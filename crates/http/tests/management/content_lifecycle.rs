//! Content lifecycle end to end: immutable tags refused on `/v2/` (OCI `DENIED` naming the
//! rule) and on the API, a same-digest push accepted, cosign's fallback tags exempt, the tag
//! list marking immutable tags; retention dry runs that a real run then matches exactly,
//! with its history, event and audit entry; bad input refused with nothing changed.

use crate::support::{
    basic, into_the_next_second, sha256, Berth, Session, ADMIN_PASSWORD, OCI_MANIFEST,
};
use serde_json::{json, Value};

const CONFIG: &str = "application/vnd.oci.image.config.v1+json";
const LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";

/// Uploads a config and one layer made from `seed` to `repo`; the image manifest for them.
async fn image_manifest(registry: &Session<'_>, repo: &str, seed: &str) -> Value {
    let config = registry
        .push_blob(
            repo,
            CONFIG,
            format!(r#"{{"os":"linux","architecture":"amd64","seed":"{seed}"}}"#).as_bytes(),
        )
        .await;
    let layer = registry
        .push_blob(repo, LAYER, format!("layer {seed}").as_bytes())
        .await;
    json!({ "schemaVersion": 2, "mediaType": OCI_MANIFEST, "config": config, "layers": [layer] })
}

fn tag_entry<'a>(tags: &'a Value, name: &str) -> &'a Value {
    tags["results"]
        .as_array()
        .expect("results")
        .iter()
        .find(|t| t["name"] == name)
        .unwrap_or_else(|| panic!("no tag {name} in {tags}"))
}

#[tokio::test]
async fn immutable_tags_refuse_moves_and_deletes_everywhere_but_take_the_same_digest_again() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    let repo = "admin/app";
    let first = image_manifest(&registry, repo, "one").await;
    let first_digest = registry
        .push_manifest(repo, "v1", OCI_MANIFEST, &first)
        .await;
    registry
        .push_manifest(repo, "v1-rc", OCI_MANIFEST, &first)
        .await;

    let rule = admin
        .put(
            "/api/v1/namespaces/admin/immutable",
            json!({ "tags": ["v*"], "excludes": ["*-rc"] }),
        )
        .await
        .expect(200);
    assert_eq!(rule.body["tags"], json!(["v*"]));
    assert_eq!(rule.body["exempt_cosign"], true);

    // A CI rerun pushing the same bytes is a no-op success.
    let again = registry
        .put_manifest_reply(repo, "v1", OCI_MANIFEST, &first)
        .await;
    assert_eq!(again.status, 201, "{}", again.text);

    // Another manifest under the tag: refused with the registry's error, naming the rule.
    let second = image_manifest(&registry, repo, "two").await;
    let moved = registry
        .put_manifest_reply(repo, "v1", OCI_MANIFEST, &second)
        .await
        .expect_error(403, "DENIED");
    let message = moved.message();
    assert!(
        message.contains("v1")
            && message.contains("immutable")
            && message.contains("namespace admin (tags v*, except *-rc)"),
        "{message}"
    );
    assert_eq!(
        registry.head_manifest(repo, "v1").await,
        200,
        "the tag still serves"
    );
    let pulled = admin
        .get("/api/v1/repositories/admin/app/-/tags")
        .await
        .expect(200);
    assert_eq!(
        tag_entry(&pulled.body, "v1")["digest"],
        first_digest.as_str()
    );

    // Deletes: by tag and by digest over /v2/, and through the JSON API.
    registry
        .delete_manifest_reply(repo, "v1")
        .await
        .expect_error(403, "DENIED");
    registry
        .delete_manifest_reply(repo, &first_digest)
        .await
        .expect_error(403, "DENIED");
    admin
        .delete("/api/v1/repositories/admin/app/-/tags/v1")
        .await
        .expect_error(403, "DENIED");

    // An excluded tag moves freely; the list marks only protected tags.
    let moved_rc = registry
        .put_manifest_reply(repo, "v1-rc", OCI_MANIFEST, &second)
        .await;
    assert_eq!(moved_rc.status, 201, "{}", moved_rc.text);
    let tags = admin
        .get("/api/v1/repositories/admin/app/-/tags")
        .await
        .expect(200);
    assert_eq!(tag_entry(&tags.body, "v1")["immutable"], true);
    assert_eq!(tag_entry(&tags.body, "v1-rc")["immutable"], false);

    // A repository rule of every tag still exempts cosign's fallback tags.
    admin
        .put("/api/v1/repositories/admin/app/-/immutable", json!({}))
        .await
        .expect(200);
    let sig_tag = format!("{}.sig", first_digest.replace(':', "-"));
    registry
        .push_manifest(repo, &sig_tag, OCI_MANIFEST, &first)
        .await;
    let resigned = registry
        .put_manifest_reply(repo, &sig_tag, OCI_MANIFEST, &second)
        .await;
    assert_eq!(
        resigned.status, 201,
        "cosign rewrites its tag: {}",
        resigned.text
    );
    let latest = registry
        .put_manifest_reply(repo, "v1-rc", OCI_MANIFEST, &first)
        .await;
    assert_eq!(
        latest.status, 403,
        "now every tag is immutable: {}",
        latest.text
    );
    assert!(
        latest
            .message()
            .contains("repository admin/app (every tag)"),
        "{}",
        latest.text
    );

    // Cleared, the tag can go again.
    admin
        .delete("/api/v1/repositories/admin/app/-/immutable")
        .await
        .expect(204);
    admin
        .delete("/api/v1/namespaces/admin/immutable")
        .await
        .expect(204);
    admin
        .get("/api/v1/namespaces/admin/immutable")
        .await
        .expect_error(404, "NOT_FOUND");
    admin
        .delete("/api/v1/repositories/admin/app/-/tags/v1")
        .await
        .expect(204);
}

#[tokio::test]
async fn only_admins_of_the_target_manage_its_rules_and_bad_ones_change_nothing() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let bob = berth.user("bob").await;
    berth
        .with(basic("admin", ADMIN_PASSWORD))
        .push_image("admin/app", "latest")
        .await;
    bob.put("/api/v1/namespaces/admin/immutable", json!({}))
        .await
        .expect_error(403, "DENIED");
    bob.put(
        "/api/v1/repositories/admin/app/-/retention",
        json!({"keep_last_pushed": 1}),
    )
    .await
    .expect_error(404, "NAME_UNKNOWN");

    admin
        .put(
            "/api/v1/namespaces/admin/immutable",
            json!({ "tags": ["v*"] }),
        )
        .await
        .expect(200);
    let refused = admin
        .put(
            "/api/v1/namespaces/admin/immutable",
            json!({ "tags": ["v/*"] }),
        )
        .await
        .expect_error(400, "BAD_REQUEST");
    assert!(refused.message().contains("\"v/*\""), "{}", refused.text);
    let kept = admin
        .get("/api/v1/namespaces/admin/immutable")
        .await
        .expect(200);
    assert_eq!(
        kept.body["tags"],
        json!(["v*"]),
        "the refused change changed nothing"
    );

    let path = "/api/v1/repositories/admin/app/-/retention";
    admin
        .put(
            path,
            json!({ "keep_last_pushed": 5, "schedule": "0 3 * * *" }),
        )
        .await
        .expect(200);
    for (body, says) in [
        (
            json!({ "keep_last_pushed": -1 }),
            "keep_last_pushed must be from 1",
        ),
        (
            json!({ "keep_last_pushed": 10_000_000 }),
            "keep_last_pushed must be from 1",
        ),
        (json!({ "keep_pushed_days": 0 }), "keep_pushed_days"),
        (
            json!({ "keep_last_pushed": 1, "tags": ["a b"] }),
            "tag pattern",
        ),
        (
            json!({ "keep_last_pushed": 1, "schedule": "61 * * * *" }),
            "schedule",
        ),
        (json!({ "tags": ["v*"] }), "at least one rule"),
        // Nothing was ever pulled: keeping the last pulled keeps nothing.
        (json!({ "keep_last_pulled": 1 }), "allow_empty"),
    ] {
        let refused = admin
            .put(path, body.clone())
            .await
            .expect_error(400, "BAD_REQUEST");
        assert!(refused.message().contains(says), "{body}: {}", refused.text);
    }
    let policy = admin.get(path).await.expect(200);
    assert_eq!(policy.body["keep_last_pushed"], 5, "nothing changed");
    assert_eq!(policy.body["schedule"], "0 3 * * *");
    assert!(policy.body["next_run"].is_string());
    admin
        .put(path, json!({ "keep_last_pulled": 1, "allow_empty": true }))
        .await
        .expect(200);
    admin
        .post("/api/v1/repositories/admin/app/-/retention/run", json!({}))
        .await
        .expect_error(400, "BAD_REQUEST");
}

#[tokio::test]
async fn a_real_run_deletes_exactly_what_the_dry_run_listed() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    let repo = "admin/app";
    let old = image_manifest(&registry, repo, "old").await;
    let old_digest = registry
        .push_manifest(repo, "old", OCI_MANIFEST, &old)
        .await;
    let old_descriptor =
        json!({ "mediaType": OCI_MANIFEST, "digest": old_digest, "size": old.to_string().len() });
    let signature = registry
        .push_referrer(
            repo,
            &old_descriptor,
            "application/vnd.dev.cosign.simplesigning.v1+json",
        )
        .await;
    into_the_next_second().await;
    let middle = image_manifest(&registry, repo, "middle").await;
    registry
        .push_manifest(repo, "middle", OCI_MANIFEST, &middle)
        .await;
    into_the_next_second().await;
    let new = image_manifest(&registry, repo, "new").await;
    registry
        .push_manifest(repo, "new", OCI_MANIFEST, &new)
        .await;

    admin
        .put(
            "/api/v1/repositories/admin/app/-/retention",
            json!({ "keep_last_pushed": 2 }),
        )
        .await
        .expect(200);
    let run = "/api/v1/repositories/admin/app/-/retention/run";
    let dry = admin
        .post(run, json!({ "dry_run": true }))
        .await
        .expect(200);
    assert_eq!(dry.body["tags"], json!(["admin/app:old"]));
    assert_eq!(
        dry.body["manifests"],
        json!([
            format!("admin/app@{signature}"),
            format!("admin/app@{old_digest}")
        ]),
        "the signature goes with its subject, and first"
    );
    let bytes = dry.body["bytes"].as_u64().expect("bytes");
    // Both manifests, the old image's config and layer, and the signature's payload (its
    // empty config is shared with nothing else either).
    assert!(bytes > old.to_string().len() as u64, "{}", dry.text);
    assert_eq!(
        registry.head_manifest(repo, "old").await,
        200,
        "a dry run deletes nothing"
    );

    let real = admin
        .post(run, json!({ "dry_run": false }))
        .await
        .expect(200);
    assert_eq!(real.body["tags"], dry.body["tags"]);
    assert_eq!(real.body["manifests"], dry.body["manifests"]);
    assert_eq!(real.body["bytes"], dry.body["bytes"]);
    assert_eq!(real.body["skipped"], 0);
    assert_eq!(registry.head_manifest(repo, "old").await, 404);
    assert_eq!(registry.head_manifest(repo, &signature).await, 404);
    assert_eq!(registry.head_manifest(repo, "middle").await, 200);
    assert_eq!(registry.head_manifest(repo, "new").await, 200);

    let again = admin
        .post(run, json!({ "dry_run": true }))
        .await
        .expect(200);
    assert_eq!(again.body["tags"], json!([]), "nothing left to delete");

    let runs = admin
        .get("/api/v1/repositories/admin/app/-/retention/runs")
        .await
        .expect(200);
    let recorded = &runs.body["results"][0];
    assert_eq!(recorded["id"], real.body["run_id"]);
    assert_eq!(recorded["tags"], dry.body["tags"]);
    assert_eq!(recorded["bytes"], dry.body["bytes"]);
    assert_eq!(recorded["trigger"], "manual");

    let events = admin.get("/api/v1/events").await.expect(200);
    let completed = events.body["events"]
        .as_array()
        .expect("events")
        .iter()
        .find(|e| e["type"] == "retention.completed")
        .unwrap_or_else(|| panic!("no retention.completed in {}", events.text));
    assert_eq!(completed["data"]["run_id"], real.body["run_id"]);
    assert_eq!(completed["data"]["tags"], dry.body["tags"]);
    let audit = admin
        .get("/api/v1/auditlogs?action=retention.run")
        .await
        .expect(200);
    assert!(audit.text.contains("retention.run"), "{}", audit.text);
}

#[tokio::test]
async fn a_pull_by_digest_keeps_the_tags_pointing_at_it() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    let repo = "admin/pulled";
    for tag in ["a", "b", "c"] {
        assert_eq!(registry.push_image(repo, tag).await, 201);
    }
    let tags = admin
        .get("/api/v1/repositories/admin/pulled/-/tags")
        .await
        .expect(200);
    let b_digest = tag_entry(&tags.body, "b")["digest"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(registry.pull_manifest(repo, &b_digest).await, 200);
    berth.flush_pulls().await;
    admin
        .put(
            "/api/v1/repositories/admin/pulled/-/retention",
            json!({ "keep_last_pulled": 1 }),
        )
        .await
        .expect(200);
    let dry = admin
        .post(
            "/api/v1/repositories/admin/pulled/-/retention/run",
            json!({ "dry_run": true }),
        )
        .await
        .expect(200);
    assert_eq!(
        dry.body["tags"],
        json!(["admin/pulled:a", "admin/pulled:c"])
    );
    assert!(!dry.text.contains(&b_digest), "{}", dry.text);
}

/// A manifest no tag points at, pulled by digest (a deployment pinned to it), is kept by
/// "pulled within D days" while an untagged one nobody pulls goes; a HEAD and Berth's own
/// reads (the API's tag list) are not pulls.
#[tokio::test]
async fn an_untagged_manifest_pulled_by_digest_is_kept_by_the_pull_rule() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    let repo = "admin/pinned";
    assert_eq!(registry.push_image(repo, "latest").await, 201);
    let mut untagged = Vec::new();
    for seed in ["pinned", "forgotten"] {
        let manifest = image_manifest(&registry, repo, seed).await;
        let digest = sha256(manifest.to_string().as_bytes());
        registry
            .push_manifest(repo, &digest, OCI_MANIFEST, &manifest)
            .await;
        untagged.push(digest);
    }
    let (pinned, forgotten) = (&untagged[0], &untagged[1]);
    assert_eq!(registry.pull_manifest(repo, pinned).await, 200);
    assert_eq!(registry.head_manifest(repo, forgotten).await, 200);
    admin
        .get("/api/v1/repositories/admin/pinned/-/tags")
        .await
        .expect(200);
    berth.flush_pulls().await;
    // Untagged for "0 days" means pushed before this second.
    into_the_next_second().await;
    admin
        .put(
            "/api/v1/repositories/admin/pinned/-/retention",
            json!({ "keep_last_pushed": 1, "keep_pulled_days": 30, "untagged_days": 0 }),
        )
        .await
        .expect(200);
    let dry = admin
        .post(
            "/api/v1/repositories/admin/pinned/-/retention/run",
            json!({ "dry_run": true }),
        )
        .await
        .expect(200);
    assert_eq!(dry.body["tags"], json!([]), "{}", dry.text);
    assert_eq!(
        dry.body["manifests"],
        json!([format!("{repo}@{forgotten}")]),
        "the pinned manifest stays: {}",
        dry.text
    );
    let real = admin
        .post(
            "/api/v1/repositories/admin/pinned/-/retention/run",
            json!({ "dry_run": false }),
        )
        .await
        .expect(200);
    assert_eq!(real.body["manifests"], dry.body["manifests"]);
    assert_eq!(registry.pull_manifest(repo, pinned).await, 200);
    assert_eq!(registry.head_manifest(repo, forgotten).await, 404);
}

/// The repository's lifecycle page as alice's browser uses it: a refused policy names what
/// was wrong and changes nothing; a saved one is shown; the dry run lists what would go and
/// "Delete them now" deletes exactly that; the tag list marks an immutable tag.
#[tokio::test]
async fn the_lifecycle_page_sets_a_policy_and_shows_its_dry_run() {
    use crate::browser::{get_page, post_signed_in_form, sign_in};
    use crate::support::PASSWORD;
    let berth = Berth::start().await;
    berth.user("alice").await;
    let registry = berth.with(basic("alice", PASSWORD));
    assert_eq!(registry.push_image("alice/app", "old").await, 201);
    into_the_next_second().await;
    assert_eq!(registry.push_image("alice/app", "new").await, 201);
    let cookies = sign_in(&berth, "alice", PASSWORD).await;
    let page = "/r/alice/app/-/settings/lifecycle";
    let submit = |action: &'static str, fields: Vec<(&'static str, &'static str)>| {
        let cookies = cookies.clone();
        let berth = &berth;
        async move {
            post_signed_in_form(berth, &cookies, page, &format!("{page}/{action}"), &fields).await
        }
    };
    let follow = |answer: crate::browser::Page| {
        let cookies = format!("{cookies}; {}", answer.cookies());
        let berth = &berth;
        async move { get_page(berth, page, &cookies).await.expect(200).text }
    };

    let refused = submit("retention", vec![("keep_last_pushed", "-2")])
        .await
        .expect(303);
    let text = follow(refused).await;
    assert!(text.contains("keep_last_pushed must be from 1"), "{text}");
    assert!(text.contains("No policy: nothing is deleted."), "{text}");

    let saved = submit(
        "retention",
        vec![("keep_last_pushed", "1"), ("schedule", "daily")],
    )
    .await
    .expect(303);
    let text = follow(saved).await;
    assert!(
        text.contains("keep tags: the 1 last pushed; runs daily"),
        "{text}"
    );

    let dry = submit("dry-run", vec![]).await.expect(200);
    assert!(
        dry.text.contains("<li><code>alice/app:old</code></li>"),
        "{}",
        dry.text
    );
    assert!(
        dry.text.contains("would delete 1 tags and 1 images"),
        "{}",
        dry.text
    );
    assert_eq!(registry.head_manifest("alice/app", "old").await, 200);

    let ran = submit("run", vec![]).await.expect(303);
    let text = follow(ran).await;
    assert!(text.contains("Deleted 1 tags and 1 images"), "{text}");
    assert_eq!(registry.head_manifest("alice/app", "old").await, 404);
    assert!(
        text.contains("manual by alice"),
        "the run is in the history: {text}"
    );

    let rule = submit("immutable", vec![("tags", "new")]).await.expect(303);
    follow(rule).await;
    let tags = get_page(&berth, "/r/alice/app/-/tags", &cookies)
        .await
        .expect(200)
        .text;
    assert!(tags.contains("badge immutable"), "{tags}");
}

#[tokio::test]
async fn a_namespace_policy_governs_its_repositories_unless_one_has_its_own() {
    let berth = Berth::start().await;
    let admin = berth.admin().await;
    let registry = berth.with(basic("admin", ADMIN_PASSWORD));
    for repo in ["admin/one", "admin/two"] {
        assert_eq!(registry.push_image(repo, "old").await, 201);
    }
    into_the_next_second().await;
    for repo in ["admin/one", "admin/two"] {
        assert_eq!(registry.push_image(repo, "new").await, 201);
    }
    admin
        .put(
            "/api/v1/namespaces/admin/retention",
            json!({ "keep_last_pushed": 1 }),
        )
        .await
        .expect(200);
    admin
        .put(
            "/api/v1/repositories/admin/two/-/retention",
            json!({ "keep_last_pushed": 2 }),
        )
        .await
        .expect(200);
    let dry = admin
        .post(
            "/api/v1/namespaces/admin/retention/run",
            json!({ "dry_run": true }),
        )
        .await
        .expect(200);
    assert_eq!(
        dry.body["tags"],
        json!(["admin/one:old"]),
        "admin/two keeps two"
    );
    let real = admin
        .post(
            "/api/v1/namespaces/admin/retention/run",
            json!({ "dry_run": false }),
        )
        .await
        .expect(200);
    assert_eq!(real.body["tags"], dry.body["tags"]);
    assert_eq!(real.body["manifests"], dry.body["manifests"]);
    let runs = admin
        .get("/api/v1/namespaces/admin/retention/runs")
        .await
        .expect(200);
    assert_eq!(runs.body["count"], 1);
}

/// The namespace pages: a user manages their own namespace's rule at `/settings/lifecycle`;
/// an organization's page is its owners', and a member who is not an owner is refused.
#[tokio::test]
async fn namespace_lifecycle_pages_belong_to_the_namespace_owners() {
    use crate::browser::{get_page, post_signed_in_form, sign_in};
    use crate::support::PASSWORD;
    let berth = Berth::start().await;
    let alice = berth.user("alice").await;
    berth.user("bob").await;
    alice
        .post("/api/v1/orgs", json!({ "orgname": "acme" }))
        .await
        .expect(201);
    alice
        .post("/api/v1/orgs/acme/groups", json!({ "name": "devs" }))
        .await
        .expect(201);
    alice
        .post(
            "/api/v1/orgs/acme/groups/devs/members",
            json!({ "member": "bob" }),
        )
        .await
        .expect(201);

    let cookies = sign_in(&berth, "alice", PASSWORD).await;
    let own = "/settings/lifecycle";
    let saved = post_signed_in_form(
        &berth,
        &cookies,
        own,
        "/settings/lifecycle/immutable",
        &[("tags", "v* release-*")],
    )
    .await
    .expect(303);
    let with_notice = format!("{cookies}; {}", saved.cookies());
    let page = get_page(&berth, own, &with_notice).await.expect(200).text;
    assert!(
        page.contains("the immutable-tag rule of namespace alice (tags v*, release-*)"),
        "{page}"
    );
    let rule = alice
        .get("/api/v1/namespaces/alice/immutable")
        .await
        .expect(200);
    assert_eq!(rule.body["tags"], json!(["v*", "release-*"]));

    let org_page = get_page(&berth, "/orgs/acme/lifecycle", &cookies)
        .await
        .expect(200)
        .text;
    assert!(org_page.contains("Lifecycle of acme"), "{org_page}");
    let bob = sign_in(&berth, "bob", PASSWORD).await;
    let refused = get_page(&berth, "/orgs/acme/lifecycle", &bob).await;
    assert_eq!(refused.status, 403, "{}", refused.text);
}
