//! Automated builds in the browser: a repository's admin links a local git repository,
//! copies the webhook secret (shown once), adds a rule, triggers a build and watches its
//! log arrive live until the build succeeds.

use super::common::{SpawnOptions, TestServer, ADMIN_PASSWORD, ADMIN_USER};
use super::driver::{tools_or_skip, Browser};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn have(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test]
async fn a_source_linked_in_settings_builds_and_its_log_streams() {
    let Some(tools) = tools_or_skip("builds") else {
        return;
    };
    if !have("git") || !have("buildah") {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "CI=true: git and buildah are needed"
        );
        eprintln!("\n!!! SKIPPED builds browser test: git and buildah are needed !!!\n");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    git(tmp.path(), &["init", "-q", "--bare", "app.git"]);
    git(&work, &["init", "-q", "-b", "main"]);
    std::fs::write(work.join("hello.txt"), "Hello Hub\n").unwrap();
    std::fs::write(
        work.join("Dockerfile"),
        "FROM scratch\nCOPY hello.txt /hello.txt\n",
    )
    .unwrap();
    git(&work, &["add", "."]);
    git(&work, &["commit", "-q", "-m", "app"]);
    let url = format!("file://{}", tmp.path().join("app.git").display());
    git(&work, &["push", "-q", &url, "main"]);

    let options = SpawnOptions::default().env(
        "BERTH_BUILD_DIR",
        tmp.path().join("builds").to_str().unwrap(),
    );
    let server = TestServer::spawn_with(options).await;
    let browser = Browser::start(&tools, server.base()).await;
    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    browser.open("/u/admin").await;
    browser.fill("new-repo-name", "app").await;
    browser.press("Create repository").await;
    browser.expect_notice("Repository admin/app created.").await;

    browser.open("/r/admin/app/-/settings").await;
    browser
        .click("#automated-builds a[href='/r/admin/app/-/settings/builds']")
        .await;
    browser
        .expect_text("#build-source", "No git repository is linked.")
        .await;

    // A URL the service refuses is named, and nothing is linked.
    browser.fill("build-git", "ftp://example.com/app.git").await;
    browser.press("Link source").await;
    browser
        .expect_notice("must start with https://, ssh:// or file://")
        .await;

    browser.fill("build-git", &url).await;
    browser.press("Link source").await;
    browser.expect_text("main h1", "Source linked").await;
    let secret = browser.text("#build-hook-secret").await;
    assert_eq!(
        secret.len(),
        64,
        "the webhook secret is shown once: {secret:?}"
    );
    browser
        .click("main a[href='/r/admin/app/-/settings/builds']")
        .await;
    browser.expect_text("#build-source", &url).await;
    assert!(
        !browser.text("body").await.contains(&secret),
        "never shown again"
    );

    browser.choose("rule-type", "branch").await;
    browser.fill("rule-source", "main").await;
    browser.fill("rule-tag", "latest").await;
    browser.press("Add rule").await;
    browser.expect_notice("Rule 1 added.").await;
    browser.expect_text("#build-rules", "latest").await;

    browser.fill("trigger-ref", "main").await;
    browser.press("Trigger build").await;
    browser.expect_notice("Build queued.").await;
    // The log fills in while the page stays open, and ends with the status.
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let ended = browser
            .element("#build-log")
            .await
            .attr("data-log-ended")
            .await
            .unwrap_or_default();
        if let Some(ended) = ended {
            let log = browser.text("#build-log").await;
            assert_eq!(ended, "succeeded", "{log}\n{}", server.log());
            assert!(log.contains("[berth] pushed admin/app:latest"), "{log}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the build never ended: {}",
            browser.text("body").await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    browser
        .expect_text("[data-build-status]", "succeeded")
        .await;
    browser.screenshot("build-log").await;
    browser.close().await;
}
