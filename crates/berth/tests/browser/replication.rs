//! Replication in the browser: a site admin creates a pull rule on the form (a rule without
//! its namespace is refused with the reason), runs it from the rule's page and reads its
//! history, and the imported repository is there, digest for digest.

use super::common::{TestServer, ADMIN_PASSWORD, ADMIN_USER};
use super::driver::{tools_or_skip, Browser};
use std::time::{Duration, Instant};

#[tokio::test]
async fn a_pull_rule_made_on_the_form_imports_from_another_berth_and_shows_its_run() {
    let Some(tools) = tools_or_skip("replication") else {
        return;
    };
    let origin = TestServer::spawn().await;
    let pushed = origin.push_random_image("admin/app", Some("v1")).await;
    let server = TestServer::spawn().await;
    let browser = Browser::start(&tools, server.base()).await;
    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    browser.open("/admin/replication").await;

    // A pull rule must say where its imports go.
    browser.fill("rule-name", "from-origin").await;
    browser.choose("rule-direction", "pull").await;
    browser.fill("rule-source", "admin/*").await;
    browser.fill("rule-to", origin.base()).await;
    browser.fill("rule-user", ADMIN_USER).await;
    browser.fill("rule-password", ADMIN_PASSWORD).await;
    browser.press("Create rule").await;
    browser
        .expect_notice("pull rule needs the namespace its imports go under here")
        .await;

    browser.fill("rule-name", "from-origin").await;
    browser.choose("rule-direction", "pull").await;
    browser.fill("rule-source", "admin/*").await;
    browser.fill("rule-to", origin.base()).await;
    browser.fill("rule-ns", "admin").await;
    browser.fill("rule-user", ADMIN_USER).await;
    browser.fill("rule-password", ADMIN_PASSWORD).await;
    browser.fill("rule-bandwidth", "100MiB/s").await;
    browser.press("Create rule").await;
    browser.expect_notice("Rule from-origin created.").await;
    let listed = browser.text("main table").await;
    assert!(listed.contains("pull"), "{listed}");
    assert!(
        listed.contains(&format!("from {} into admin", origin.base())),
        "{listed}"
    );
    browser.screenshot("replication-rules").await;

    browser
        .click("main table a[href='/admin/replication/from-origin']")
        .await;
    browser.expect_text("main dl", "100MiB/s").await;
    browser.press("Run now").await;
    browser
        .expect_notice("A run of from-origin is queued.")
        .await;
    // The server's jobs runner carries the run out: reload until the history shows it.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        browser.open("/admin/replication/from-origin").await;
        let history = browser.text("#history").await;
        if history.contains("1 copied") {
            assert!(history.contains("succeeded"), "{history}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no finished run in the history:\n{history}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    browser.screenshot("replication-history").await;

    let imported = server.get_manifest("admin/admin/app", "v1").await;
    assert_eq!(imported.status(), 200);
    let digest = imported
        .headers()
        .get("docker-content-digest")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    assert_eq!(digest.as_deref(), Some(pushed.digest.as_str()));
    browser.close().await;
}
