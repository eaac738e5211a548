//! Retention in the browser: a repository's admin finds the lifecycle page from the
//! repository's settings, has a bad schedule refused with nothing saved, sets a policy, reads
//! the dry run's list and deletes exactly that, then sees the run in the history.

use super::common::{TestServer, ADMIN_PASSWORD, ADMIN_USER};
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
