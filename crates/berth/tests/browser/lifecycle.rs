//! The content lifecycle in the browser: a repository's admin finds the lifecycle page from
//! the repository's settings, has a bad schedule refused with nothing saved, sets a policy,
//! reads the dry run's list and deletes exactly that, then sees the run in the history; an
//! immutable-tag rule marks the tags it protects in the tag list; the space a repository and
//! a namespace use is shown, and a site admin sets a quota that pushes then meet.

use super::common::{random_bytes, sha256, TestServer, ADMIN_PASSWORD, ADMIN_USER};
use super::driver::{tools_or_skip, Browser};

#[tokio::test]
async fn a_policy_set_in_settings_shows_its_dry_run_and_deletes_what_it_listed() {
    let Some(tools) = tools_or_skip("lifecycle") else {
        return;
    };
    let server = TestServer::spawn().await;
    for tag in ["t1", "t2", "t3"] {
        server.push_random_image("admin/app", Some(tag)).await;
    }
    let browser = Browser::start(&tools, server.base()).await;
    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    browser.open("/r/admin/app/-/settings").await;
    browser
        .click("#lifecycle a[href='/r/admin/app/-/settings/lifecycle']")
        .await;
    browser
        .expect_text("#retention-current", "No policy: nothing is deleted.")
        .await;

    browser.fill("keep-last-pushed", "1").await;
    browser.fill("retention-schedule", "every day").await;
    browser.press("Save the policy").await;
    browser
        .expect_notice("Nothing was changed: invalid schedule \"every day\"")
        .await;
    browser
        .expect_text("#retention-current", "No policy: nothing is deleted.")
        .await;

    browser.fill("keep-last-pushed", "1").await;
    browser.fill("retention-schedule", "daily").await;
    browser.press("Save the policy").await;
    browser
        .expect_notice("Saved: keep tags: the 1 last pushed; runs daily.")
        .await;
    browser.screenshot("lifecycle-policy").await;

    browser.press("Dry run: what would go?").await;
    browser
        .expect_text("#dry-run-summary", "would delete 2 tags and 2 images")
        .await;
    // The newest push stays (pushes in the same second: the first name).
    let listed = browser.text("#dry-run-tags").await;
    let (gone, kept): (Vec<&str>, Vec<&str>) = ["t1", "t2", "t3"]
        .into_iter()
        .partition(|tag| listed.contains(&format!("admin/app:{tag}")));
    assert_eq!((gone.len(), kept.len()), (2, 1), "{listed}");
    browser.screenshot("lifecycle-dry-run").await;
    for tag in ["t1", "t2", "t3"] {
        assert_eq!(server.get_manifest("admin/app", tag).await.status(), 200);
    }

    browser.press("Delete them now").await;
    browser.expect_notice("Deleted 2 tags and 2 images").await;
    browser.expect_text("#runs", "manual by admin").await;
    for tag in gone {
        assert_eq!(server.get_manifest("admin/app", tag).await.status(), 404);
    }
    assert_eq!(
        server.get_manifest("admin/app", kept[0]).await.status(),
        200
    );
    browser.close().await;
}

#[tokio::test]
async fn immutable_tags_are_marked_and_usage_and_quota_are_shown_and_set() {
    let Some(tools) = tools_or_skip("lifecycle-usage") else {
        return;
    };
    let server = TestServer::spawn().await;
    for tag in ["v1.0", "dev"] {
        server.push_random_image("admin/app", Some(tag)).await;
    }
    let browser = Browser::start(&tools, server.base()).await;
    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;

    // An immutable rule for v* marks v1.0, and only it, in the tag list.
    browser.open("/r/admin/app/-/settings/lifecycle").await;
    browser.fill("immutable-tags", "v*").await;
    browser.press("Save the rule").await;
    browser
        .expect_notice("Saved: the immutable-tag rule of repository admin/app (tags v*)")
        .await;
    browser.open("/r/admin/app/-/tags").await;
    let rows = browser
        .client
        .find_all(fantoccini::Locator::Css("#tags tbody tr"))
        .await
        .expect("tag rows");
    assert_eq!(rows.len(), 2);
    for row in rows {
        let text = row.text().await.expect("row text");
        assert_eq!(
            text.contains("Immutable"),
            text.starts_with("v1.0"),
            "only v1.0 is marked: {text}"
        );
    }
    browser.screenshot("tags-immutable").await;

    // The repository page shows what it stores; the namespace page what the namespace uses.
    browser.open("/r/admin/app").await;
    let stored = browser.expect_text("#usage", "KiB").await;
    browser.open("/u/admin").await;
    let usage = browser.expect_text("#usage-text", "Uses ").await;
    assert!(usage.contains(&stored), "{usage} (repository: {stored})");
    assert!(usage.contains("no quota"), "{usage}");

    // A site admin sets a quota on the namespace page: a bad size changes nothing, one below
    // the usage is taken and refuses the next push, and `none` lifts it.
    browser.fill("quota-field", "10 parsecs").await;
    browser.press("Set the quota").await;
    browser
        .expect_notice("Nothing was changed: invalid size \"10 parsecs\"")
        .await;
    browser.expect_text("#usage-text", "no quota").await;
    browser.fill("quota-field", "1KiB").await;
    browser.press("Set the quota").await;
    browser.expect_notice("The quota of admin is 1 KiB").await;
    let usage = browser
        .expect_text("#usage-text", "of its 1 KiB quota")
        .await;
    assert!(
        usage.contains("Pushes that add content are refused"),
        "{usage}"
    );
    browser.screenshot("namespace-quota").await;
    let content = random_bytes(256);
    let refused = server
        .request(
            reqwest::Method::POST,
            &format!("/v2/admin/app/blobs/uploads/?digest={}", sha256(&content)),
        )
        .header("content-type", "application/octet-stream")
        .body(content.clone())
        .send()
        .await
        .expect("push");
    assert_eq!(refused.status(), 403);
    let body = refused.text().await.unwrap_or_default();
    assert!(
        body.contains("DENIED") && body.contains("quota exceeded: namespace uses"),
        "{body}"
    );
    browser.fill("quota-field", "none").await;
    browser.press("Set the quota").await;
    browser.expect_notice("admin has no quota now.").await;
    browser.expect_text("#usage-text", "no quota").await;
    server.push_blob("admin/app", &content).await;
    browser.close().await;
}
