//! Self-service sign-up in a real browser: a visitor signs up, lands signed in, and pushes.

use crate::common::{SpawnOptions, TestServer};
use crate::driver::{tools_or_skip, Browser};
use crate::image::{write_layout, Skopeo};
use crate::registry_host;

const NEWCOMER_PASSWORD: &str = "newcomer-password-1";

#[tokio::test]
async fn a_visitor_signs_up_and_pushes_with_the_new_account() {
    let Some(tools) = tools_or_skip("signup") else {
        return;
    };
    let server =
        TestServer::spawn_with(SpawnOptions::default().env("BERTH_ALLOW_SIGNUP", "true")).await;
    let host = registry_host(&server);
    let browser = Browser::start(&tools, server.base()).await;

    // The header offers it to signed-out visitors.
    browser.open("/").await;
    browser.click("nav.site-nav a[href='/signup']").await;
    browser
        .expect_text("main h1", "Create your Berth account")
        .await;
    browser.fill("username", "newcomer").await;
    browser.screenshot("signup").await;

    // Passwords that differ are refused, and the username stays typed in.
    browser.fill("password", NEWCOMER_PASSWORD).await;
    browser
        .fill("password-confirm", "not-the-same-password")
        .await;
    browser.press("Create account").await;
    browser
        .expect_text("#sign-up-error", "The passwords do not match")
        .await;
    let kept = browser.element("#username").await.prop("value").await;
    assert_eq!(kept.unwrap().as_deref(), Some("newcomer"));

    browser.fill("password", NEWCOMER_PASSWORD).await;
    browser.fill("password-confirm", NEWCOMER_PASSWORD).await;
    browser.press("Create account").await;
    browser
        .expect_notice("Welcome to Berth, newcomer. Your account is ready.")
        .await;
    browser.expect_text("main h1", "Account settings").await;
    assert!(browser.url().await.ends_with("/settings"));
    let menu = browser.text("details.user-menu summary").await;
    assert_eq!(menu.lines().next(), Some("newcomer"), "signed in: {menu}");
    let admin_links = browser
        .client
        .find_all(fantoccini::Locator::Css("a[href='/admin/users']"))
        .await
        .unwrap();
    assert!(admin_links.is_empty(), "a new account is no site admin");

    // Registry clients sign in with the same name and password.
    let registry = reqwest::Client::new()
        .get(server.url("/v2/"))
        .basic_auth("newcomer", Some(NEWCOMER_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(registry.status(), 200);
    let skopeo = Skopeo::new(&tools.skopeo);
    let layout = skopeo.dir().join("hello");
    write_layout(&layout, "v1", "hello from a new account");
    skopeo.push_ok(
        &layout,
        "v1",
        &format!("{host}/newcomer/hello:v1"),
        "newcomer",
        NEWCOMER_PASSWORD,
    );
    browser.open("/r/newcomer/hello").await;
    browser.expect_text("#tags", "v1").await;

    // And the sign-in form takes them next time.
    browser.sign_out().await;
    browser.sign_in("newcomer", NEWCOMER_PASSWORD).await;
    browser.close().await;
}
