//! Webhooks in the browser: a repository's admin creates one pointing at a receiver on
//! loopback, copies its secret (shown once), pushes, sees the delivery in the history and
//! redelivers it; refusals name what was wrong and create nothing.

use super::common::{SpawnOptions, TestServer, ADMIN_PASSWORD, ADMIN_USER};
use super::driver::{tools_or_skip, Browser};
use super::{create_user, ALICE_PASSWORD, BOB_PASSWORD};
use berth_testkit::receiver::Receiver;
use std::time::{Duration, Instant};

/// Reloads the page until `css` shows `expected` (deliveries arrive in the background).
async fn reload_until(browser: &Browser, path: &str, css: &str, expected: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        browser.open(path).await;
        let text = browser.text(css).await;
        if text.contains(expected) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` on {path} never showed {expected:?}; it shows:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_webhook_made_in_settings_hears_a_push_and_redelivers_it() {
    let Some(tools) = tools_or_skip("webhooks") else {
        return;
    };
    // The receiver is on loopback, which Berth refuses unless told otherwise.
    let options = SpawnOptions::default().env("BERTH_WEBHOOK_ALLOW_PRIVATE", "true");
    let server = TestServer::spawn_with(options).await;
    let receiver = Receiver::start().await;
    let browser = Browser::start(&tools, server.base()).await;

    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    create_user(&browser, "alice", ALICE_PASSWORD).await;
    create_user(&browser, "bob", BOB_PASSWORD).await;
    browser.sign_out().await;
    browser.sign_in("alice", ALICE_PASSWORD).await;
    browser.open("/u/alice").await;
    browser.fill("new-repo-name", "app").await;
    browser.press("Create repository").await;
    browser.expect_notice("Repository alice/app created.").await;

    // From the repository's settings to its webhooks.
    browser.open("/r/alice/app/-/settings").await;
    browser.expect_text("#webhooks", "0 webhooks").await;
    browser
        .click("#webhooks a[href='/r/alice/app/-/settings/webhooks']")
        .await;
    browser.expect_text("#webhooks", "No webhooks yet.").await;
    let list = browser.url().await;
    assert!(list.ends_with("/r/alice/app/-/settings/webhooks"), "{list}");

    // What the service refuses is named on the page, and nothing is created.
    browser
        .fill("webhook-url", "ftp://files.example/hook")
        .await;
    browser.press("Create webhook").await;
    browser
        .expect_notice("Not created: webhooks are sent over http or https, not \"ftp\".")
        .await;
    browser.fill("webhook-url", &receiver.url).await;
    browser.fill("webhook-tags", "v* a/b").await;
    browser.press("Create webhook").await;
    browser
        .expect_notice("Not created: invalid tag pattern \"a/b\"")
        .await;
    browser.expect_text("#webhooks", "No webhooks yet.").await;

    // A webhook for pushes and tag deletions of v* tags, with an Authorization header.
    browser.fill("webhook-name", "deploy").await;
    browser.fill("webhook-url", &receiver.url).await;
    browser.click("input[name=events][value=tag_delete]").await;
    browser.fill("webhook-tags", "v*").await;
    browser.choose("webhook-format", "dockerhub").await;
    browser.fill("webhook-header-name", "Authorization").await;
    browser
        .fill("webhook-header-value", "Bearer deploy-token")
        .await;
    browser.press("Create webhook").await;
    let secret = browser.expect_text("#new-webhook-secret", "whsec_").await;
    browser
        .expect_text("#new-webhook-created", "it is not shown again")
        .await;
    let row = browser.expect_text("#webhooks tbody tr", "deploy").await;
    for shown in [
        receiver.url.as_str(),
        "push, tag_delete",
        "v*",
        "dockerhub",
        "Active",
    ] {
        assert!(row.contains(shown), "{shown:?} in {row}");
    }
    browser.screenshot("webhooks").await;
    browser.open("/r/alice/app/-/settings/webhooks").await;
    assert!(
        !browser.text("body").await.contains(&secret),
        "a webhook's secret is shown only once"
    );

    // A push of a v* tag is delivered, signed with the secret, with the custom header; a
    // tag outside the filter is not.
    server.push_random_image("alice/app", Some("latest")).await;
    let pushed = server.push_random_image("alice/app", Some("v2")).await;
    let first = receiver.wait_for(1).await.remove(0);
    assert!(
        first.signed_with(&secret),
        "signed with the secret the page showed: {first:?}"
    );
    assert_eq!(first.header("authorization"), "Bearer deploy-token");
    let payload = first.json();
    assert_eq!(payload["push_data"]["tag"], "v2");
    assert_eq!(payload["push_data"]["digest"], pushed.digest);
    assert_eq!(payload["repository"]["repo_name"], "alice/app");

    // The delivery shows in the webhook's history with the receiver's answer.
    browser.click("#webhooks tbody a").await;
    let page = browser.url().await;
    let page = &page[page.find("/webhooks/").unwrap()..];
    let history = reload_until(&browser, page, "#deliveries tbody", "200").await;
    for shown in ["push", "thanks", " ms"] {
        assert!(history.contains(shown), "{shown:?} in {history}");
    }
    assert_eq!(
        receiver.wait_for(1).await.len(),
        1,
        "latest is not a v* tag"
    );
    browser.screenshot("webhook-deliveries").await;

    // Redelivering sends the same message again, with the same webhook-id.
    browser.press("Redeliver").await;
    browser
        .expect_notice("The delivery is sent again with the same webhook-id")
        .await;
    let again = receiver.wait_for(2).await.remove(1);
    assert_eq!(again.header("webhook-id"), first.header("webhook-id"));
    assert_eq!(again.body, first.body);
    let rows = reload_until(&browser, page, "#deliveries tbody tr:nth-child(2)", "200").await;
    assert!(rows.contains("push"), "{rows}");

    // A test ping reaches the receiver and the history.
    browser.press("Send a test ping").await;
    browser.expect_notice("A test ping is on its way").await;
    let ping = receiver.wait_for(3).await.remove(2);
    assert_eq!(ping.json()["event"], "ping");
    reload_until(&browser, page, "#deliveries tbody tr:first-child", "ping").await;

    // Disabled, it says by whom; enabled again, it is active.
    browser.press("Disable").await;
    browser
        .expect_notice("The webhook deploy is disabled; nothing is sent to it.")
        .await;
    browser
        .expect_text(".heading-row", "disabled by alice")
        .await;
    browser.open("/r/alice/app/-/settings/webhooks").await;
    browser
        .expect_text("#webhooks tbody tr", "disabled by alice")
        .await;
    browser.click("#webhooks tbody a").await;
    browser.press("Enable").await;
    browser
        .expect_notice("The webhook deploy is enabled.")
        .await;
    browser.expect_text(".heading-row", "Active").await;

    // Deleting asks for the name first.
    browser.click("a.button.danger").await;
    browser
        .expect_text("main h1", "Delete the webhook deploy")
        .await;
    browser.fill("confirm-webhook", "deplo").await;
    browser.press("Delete webhook").await;
    browser
        .expect_notice("Type deploy exactly to delete the webhook; nothing was deleted.")
        .await;
    browser.fill("confirm-webhook", "deploy").await;
    browser.press("Delete webhook").await;
    browser
        .expect_notice("The webhook deploy is deleted.")
        .await;
    browser.expect_text("#webhooks", "No webhooks yet.").await;
    assert!(browser
        .url()
        .await
        .ends_with("/r/alice/app/-/settings/webhooks"));
    browser.open(page).await;
    browser.expect_text("main h1", "Page not found").await;

    // Alice's own namespace has webhooks too, from her account settings.
    browser.open("/settings").await;
    browser
        .click("#webhooks a[href='/settings/webhooks']")
        .await;
    browser.fill("webhook-url", &receiver.url).await;
    browser.press("Create webhook").await;
    browser.expect_text("#new-webhook-secret", "whsec_").await;
    browser
        .expect_text("#webhooks tbody tr", &receiver.url)
        .await;

    // A receiver that answers 410 Gone disables the webhook, and its pages say so.
    receiver.answer(410);
    browser.click("#webhooks tbody a").await;
    let own = browser.url().await;
    let own = &own[own.find("/webhooks/").unwrap()..];
    browser.press("Send a test ping").await;
    browser.expect_notice("A test ping is on its way").await;
    let gone = "the receiver answered 410 Gone";
    reload_until(&browser, own, ".heading-row", gone).await;
    let attempt = browser.text("#deliveries tbody tr").await;
    assert!(
        attempt.contains("ping") && attempt.contains("410"),
        "{attempt}"
    );
    browser.screenshot("webhook-gone").await;
    browser.open("/settings/webhooks").await;
    let row = browser.expect_text("#webhooks tbody tr", "Disabled").await;
    assert!(row.contains(gone), "{row}");
    browser.sign_out().await;

    // Bob, who may only pull alice/app, is refused its webhooks as he is its settings, and
    // alice's own webhook does not exist for him.
    browser.sign_in("bob", BOB_PASSWORD).await;
    browser.open("/r/alice/app/-/settings").await;
    browser.expect_text("main h1", "Not allowed").await;
    browser.open("/r/alice/app/-/settings/webhooks").await;
    browser.expect_text("main h1", "Not allowed").await;
    browser.open(own).await;
    browser.expect_text("main h1", "Page not found").await;
    browser.open("/settings/webhooks").await;
    browser.expect_text("#webhooks", "No webhooks yet.").await;
    browser.sign_out().await;

    // Someone without Admin on the repository gets what they get for its other settings.
    let anonymous = reqwest::Client::new()
        .get(server.url("/r/alice/app/-/settings/webhooks"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.url().path(), "/login", "signing in comes first");
    browser.close().await;
}
