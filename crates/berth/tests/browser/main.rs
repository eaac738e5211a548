//! The web UI in a real browser: headless Chromium, driven over WebDriver, against the real
//! `berth` binary, with the real skopeo pushing images. Each test is one user's story and
//! saves screenshots of the pages it passes through under `target/ui-screenshots/`.
//!
//! Without chromium, chromedriver or skopeo the tests skip with a message, unless `CI` is
//! set; `scripts/test` installs all three.

mod accessibility;
mod builds;
#[path = "../common/mod.rs"]
mod common;
mod driver;
mod image;
mod lifecycle;
mod replication;
mod signup;
mod webhooks;

use common::{TestServer, ADMIN_PASSWORD, ADMIN_USER};
use driver::{tools_or_skip, Browser};
use image::{write_layout, Skopeo};

const ALICE_PASSWORD: &str = "alice-password-1";
const BOB_PASSWORD: &str = "bob-password-1";
const MALLORY_PASSWORD: &str = "mallory-password-1";

/// `host:port` of the server, as registry clients name it.
fn registry_host(server: &TestServer) -> String {
    server.base().trim_start_matches("http://").to_owned()
}

/// Creates a user on the admin page (the browser is signed in as a site admin).
async fn create_user(browser: &Browser, name: &str, password: &str) {
    browser.open("/admin/users").await;
    browser.fill("new-username", name).await;
    browser.fill("new-user-password", password).await;
    browser.press("Create user").await;
    browser
        .expect_notice(&format!("User {name} created."))
        .await;
}

#[tokio::test]
async fn a_token_made_in_settings_pushes_until_it_is_revoked() {
    let Some(tools) = tools_or_skip("tokens") else {
        return;
    };
    let server = TestServer::spawn().await;
    let host = registry_host(&server);
    let browser = Browser::start(&tools, server.base()).await;

    // A wrong password is refused with a message, and the username stays filled in.
    browser.open("/login").await;
    browser.screenshot("sign-in").await;
    browser.fill("username", ADMIN_USER).await;
    browser.fill("password", "not the password").await;
    browser.press("Sign in").await;
    browser
        .expect_text("#sign-in-error", "Incorrect username or password.")
        .await;
    let kept = browser.element("#username").await.prop("value").await;
    assert_eq!(kept.unwrap().as_deref(), Some(ADMIN_USER));
    browser.screenshot("sign-in-error").await;

    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    create_user(&browser, "alice", ALICE_PASSWORD).await;
    browser.screenshot("admin-users").await;
    browser.sign_out().await;

    browser.sign_in("alice", ALICE_PASSWORD).await;
    browser.screenshot("home").await;
    browser.open("/settings").await;
    browser.fill("token-label", "laptop").await;
    browser.choose("token-scope", "repo:write").await;
    browser.press("Create token").await;
    let secret = browser.expect_text("#new-token-secret", "berth_pat_").await;
    assert_eq!(
        browser.text("#new-token-login").await,
        format!("docker login {host} -u alice")
    );
    browser.screenshot("settings-new-token").await;
    browser.open("/settings").await;
    assert!(
        !browser.text("body").await.contains(&secret),
        "a token's secret is shown only once"
    );

    let skopeo = Skopeo::new(&tools.skopeo);
    let layout = skopeo.dir().join("hello");
    write_layout(&layout, "v1", "hello from the browser test");
    let destination = format!("{host}/alice/hello:v1");
    let pushed_digest = skopeo.push_ok(&layout, "v1", &destination, "alice", &secret);

    browser.open("/r/alice/hello").await;
    browser.expect_text("#tags", "v1").await;
    assert_eq!(
        browser.text("#pull-command").await,
        format!("docker pull {host}/alice/hello:v1")
    );
    // The copy button, hidden without scripts, is shown by ours.
    let copy = browser.element("button[data-copy=pull-command]").await;
    assert!(copy.is_displayed().await.unwrap(), "the copy button shows");

    // The Tags tab shows the tag with the digest that was pushed, ready to copy, and the
    // platform its configuration names (nothing attached yet).
    browser.click(".tabs a[href='/r/alice/hello/-/tags']").await;
    let row = browser.expect_text("#tags tbody tr", "v1").await;
    assert!(row.contains("linux/amd64") && row.contains("None"), "{row}");
    assert_eq!(browser.text("#digest-0").await, pushed_digest);
    let copy_digest = browser.element("button[data-copy=digest-0]").await;
    assert!(
        copy_digest.is_displayed().await.unwrap(),
        "digests copy too"
    );
    browser.screenshot("repository-tags").await;

    // The tag's page shows what the image is: its layers and its configuration.
    browser
        .click("#tags a[href='/r/alice/hello/-/tags/v1']")
        .await;
    browser
        .expect_text("#manifest-digest", &pushed_digest)
        .await;
    let layers = browser.expect_text("#layers tbody", "sha256:").await;
    assert!(
        layers.contains("application/vnd.oci.image.layer"),
        "{layers}"
    );
    let config = browser.expect_text("#config", "cat /hello.txt").await;
    assert!(config.contains("linux/amd64"), "{config}");
    browser.expect_text("#manifest pre", "\"layers\"").await;
    browser.screenshot("tag-detail").await;

    // A star counts once and can be taken back.
    browser.open("/r/alice/hello").await;
    assert_eq!(browser.text("#star-count").await, "0");
    browser.press("Star").await;
    browser.expect_notice("You starred alice/hello.").await;
    assert_eq!(browser.text("#star-count").await, "1");
    browser.press("Unstar").await;
    browser
        .expect_notice("You no longer star alice/hello.")
        .await;
    assert_eq!(browser.text("#star-count").await, "0");
    browser.press("Star").await;
    browser.expect_notice("You starred alice/hello.").await;

    // The owner writes a description and a README; the README's markup renders, its
    // script does not.
    browser
        .click(".tabs a[href='/r/alice/hello/-/settings']")
        .await;
    browser
        .fill("short-description-field", "Greets whoever pulls it")
        .await;
    browser
        .fill(
            "readme-field",
            "## Usage\n\nRun **hello**.\n\n<script>document.title = 'scripted'</script>",
        )
        .await;
    browser.press("Save description").await;
    browser
        .expect_notice("The description of alice/hello is saved.")
        .await;
    browser.open("/r/alice/hello").await;
    // "## Usage" sits under the page's README heading (h2).
    browser.expect_text("#readme-body h4", "Usage").await;
    assert_eq!(browser.text("#readme-body strong").await, "hello");
    assert_eq!(
        browser.text("#short-description").await,
        "Greets whoever pulls it"
    );
    let scripts = browser
        .client
        .find_all(fantoccini::Locator::Css("#readme script"))
        .await
        .unwrap();
    assert!(scripts.is_empty(), "a README cannot add scripts");
    assert!(!browser.client.title().await.unwrap().contains("scripted"));
    browser.screenshot("repository").await;

    // The search box finds it, with its description and star.
    browser.fill("site-search", "hello").await;
    browser.click("form.search button").await;
    let result = browser.expect_text("#results", "alice/hello").await;
    assert!(result.contains("Greets whoever pulls it"), "{result}");
    assert!(result.contains("1 star"), "{result}");
    browser.screenshot("search").await;
    browser.click("#results a.name").await;
    browser.expect_text("main h1", "hello").await;
    assert!(browser.url().await.ends_with("/r/alice/hello"));

    browser.open("/settings").await;
    let tokens = browser.expect_text("#tokens table", "laptop").await;
    assert!(tokens.contains("Active"), "{tokens}");
    browser.press("Revoke laptop").await;
    browser.expect_notice("Token revoked").await;
    browser.expect_text("#tokens table", "Revoked").await;
    browser.screenshot("settings-revoked").await;

    write_layout(&layout, "v2", "pushed with a revoked token");
    let refused = skopeo.push(
        &layout,
        "v2",
        &format!("{host}/alice/hello:v2"),
        "alice",
        &secret,
    );
    assert!(
        !refused.status.success(),
        "a revoked token must not push; skopeo said: {}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let stderr = String::from_utf8_lossy(&refused.stderr).to_lowercase();
    assert!(
        stderr.contains("unauthorized") || stderr.contains("authentication required"),
        "the refusal is about credentials: {stderr}"
    );
    browser.open("/r/alice/hello").await;
    let tags = browser.expect_text("#tags", "v1").await;
    assert!(!tags.contains("v2"), "nothing was pushed: {tags}");

    // The owner deletes the tag from the Tags tab, after typing its name again.
    browser.open("/r/alice/hello/-/tags").await;
    browser.click("#tags a[aria-label='Delete tag v1']").await;
    browser.expect_text("main h2", "Delete the tag v1").await;
    browser.fill("confirm-tag", "v2").await;
    browser.press("Delete tag").await;
    browser
        .expect_notice("Type v1 exactly to delete it; nothing was deleted.")
        .await;
    browser.screenshot("tag-delete").await;
    browser.fill("confirm-tag", "v1").await;
    browser.press("Delete tag").await;
    browser
        .expect_notice("The tag alice/hello:v1 is deleted.")
        .await;
    browser.expect_text("#tags", "No tags yet.").await;
    let pull = reqwest::Client::new()
        .get(server.url("/v2/alice/hello/manifests/v1"))
        .basic_auth("alice", Some(ALICE_PASSWORD))
        .send()
        .await
        .unwrap();
    assert_eq!(pull.status(), 404, "the registry no longer has the tag");
    browser.close().await;
}

#[tokio::test]
async fn organizations_grant_teams_and_hide_private_repositories() {
    let Some(tools) = tools_or_skip("organizations") else {
        return;
    };
    let server = TestServer::spawn().await;
    let host = registry_host(&server);
    let browser = Browser::start(&tools, server.base()).await;

    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    for (name, password) in [
        ("alice", ALICE_PASSWORD),
        ("bob", BOB_PASSWORD),
        ("mallory", MALLORY_PASSWORD),
    ] {
        create_user(&browser, name, password).await;
    }
    browser.sign_out().await;

    // Alice founds an organization with a team that may pull its private repository.
    browser.sign_in("alice", ALICE_PASSWORD).await;
    browser.open("/orgs").await;
    browser.fill("org-name", "acme").await;
    browser.press("Create organization").await;
    browser.expect_notice("Organization acme created.").await;
    browser.fill("team-name", "readers").await;
    browser.fill("team-description", "May pull the app").await;
    browser.press("Create team").await;
    browser.expect_notice("Team readers created.").await;
    browser.fill("add-readers", "bob").await;
    browser.press("Add to readers").await;
    browser.expect_notice("bob added to readers.").await;
    browser.fill("new-repo-name", "app").await;
    browser.click("input[name=visibility][value=private]").await;
    browser.press("Create repository").await;
    browser.expect_notice("Repository acme/app created.").await;
    browser.expect_text(".heading-row", "Private").await;

    let skopeo = Skopeo::new(&tools.skopeo);
    let layout = skopeo.dir().join("app");
    write_layout(&layout, "1.0", "the acme app");
    skopeo.push_ok(
        &layout,
        "1.0",
        &format!("{host}/acme/app:1.0"),
        "alice",
        ALICE_PASSWORD,
    );

    browser.open("/orgs/acme").await;
    browser.choose("grant-team", "readers").await;
    browser.choose("grant-repository", "acme/app").await;
    browser.choose("grant-permission", "read").await;
    browser.press("Grant").await;
    browser
        .expect_notice("readers now has Read-only on acme/app.")
        .await;
    let grants = browser.expect_text("#permissions table", "acme/app").await;
    assert!(
        grants.contains("readers") && grants.contains("Read-only"),
        "{grants}"
    );
    browser.screenshot("organization").await;
    browser.open("/orgs").await;
    browser.screenshot("organizations").await;
    browser.open("/r/acme/app/-/settings").await;
    browser.expect_text("#teams", "readers").await;
    browser.screenshot("repository-settings").await;
    browser.sign_out().await;

    // Bob, in the team, sees the repository and its tag.
    browser.sign_in("bob", BOB_PASSWORD).await;
    browser.open("/r/acme/app").await;
    browser.expect_text("#tags", "1.0").await;
    assert!(
        !browser.text("main nav").await.contains("Settings"),
        "a reader gets no settings tab"
    );
    browser.sign_out().await;

    // Mallory, an outsider, gets the same page as for a repository that does not exist.
    browser.sign_in("mallory", MALLORY_PASSWORD).await;
    browser.open("/r/acme/app").await;
    browser.expect_text("main h1", "Page not found").await;
    let hidden = browser.text("main").await;
    browser.screenshot("not-found").await;
    browser.open("/r/acme/no-such-repository").await;
    browser.expect_text("main h1", "Page not found").await;
    assert_eq!(browser.text("main").await, hidden);
    browser.open("/orgs/acme").await;
    browser
        .expect_text("#repositories", "No repositories to show.")
        .await;
    assert_eq!(browser.text("#teams").await, "", "outsiders see no teams");
    browser.sign_out().await;

    // Signed out, byte for byte the same answer, with a 404.
    let anonymous = reqwest::Client::new();
    let private = anonymous
        .get(server.url("/r/acme/app"))
        .send()
        .await
        .unwrap();
    let missing = anonymous
        .get(server.url("/r/acme/no-such-repository"))
        .send()
        .await
        .unwrap();
    assert_eq!(private.status(), 404);
    assert_eq!(missing.status(), 404);
    let hidden_page = missing.text().await.unwrap();
    assert_eq!(private.text().await.unwrap(), hidden_page);
    let private_tag = anonymous
        .get(server.url("/r/acme/app/-/tags/1.0"))
        .send()
        .await
        .unwrap();
    assert_eq!(
        private_tag.status(),
        404,
        "a private tag's page is hidden too"
    );
    assert_eq!(private_tag.text().await.unwrap(), hidden_page);

    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    browser.open("/admin/audit").await;
    browser
        .expect_text("main table", "repository.team.grant")
        .await;
    browser.screenshot("admin-audit").await;

    // A site admin marks the organization a verified publisher; its repositories show it.
    browser.open("/admin/publishers").await;
    browser.expect_text("main table", "Not verified").await;
    browser.press("Mark acme verified").await;
    browser.expect_notice("acme is a verified publisher.").await;
    browser
        .expect_text("main table", "Verified publisher")
        .await;
    browser.screenshot("admin-publishers").await;
    browser.open("/r/acme/app").await;
    browser
        .expect_text("main .badge.verified", "Verified publisher")
        .await;
    browser.close().await;
}

#[tokio::test]
async fn two_factor_sign_in_and_forged_forms_are_refused() {
    let Some(tools) = tools_or_skip("two-factor") else {
        return;
    };
    let server = TestServer::spawn().await;
    let browser = Browser::start(&tools, server.base()).await;
    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;

    // Forms need the session's CSRF token and, when the browser names one, our origin.
    browser.open("/settings").await;
    let csrf = browser
        .element("input[name=_csrf]")
        .await
        .attr("value")
        .await
        .unwrap()
        .expect("forms carry a CSRF token");
    let cookie = format!("berth_session={}", browser.session_cookie().await);
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let create_token = |body: String, origin: &str| {
        client
            .post(server.url("/settings/tokens"))
            .header("cookie", &cookie)
            .header("origin", origin)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
    };
    let fields = |label: &str| format!("label={label}&scope=repo%3Aadmin&expires=never");
    let without_token = create_token(fields("forged"), server.base()).await.unwrap();
    assert_eq!(without_token.status(), 403);
    assert!(without_token.text().await.unwrap().contains("Form refused"));
    let other_site = create_token(
        format!("_csrf={csrf}&{}", fields("forged")),
        "http://evil.example",
    )
    .await
    .unwrap();
    assert_eq!(other_site.status(), 403);
    let ours = create_token(format!("_csrf={csrf}&{}", fields("script")), server.base())
        .await
        .unwrap();
    assert_eq!(ours.status(), 201, "the same form from our page works");
    browser.open("/settings").await;
    let tokens = browser.expect_text("#tokens table", "script").await;
    assert!(!tokens.contains("forged"), "{tokens}");

    // Two-factor setup shows the secret and the otpauth URL, and takes a code to finish.
    browser.press("Set up two-factor authentication").await;
    let secret = browser.element("#totp-secret").await.text().await.unwrap();
    let url = browser.text("#totp-url").await;
    assert!(url.starts_with("otpauth://totp/"), "{url}");
    assert!(url.contains(&secret), "{url}");
    browser.screenshot("two-factor-setup").await;
    browser.fill("confirm-code", &current_code(&secret)).await;
    browser.press("Turn on").await;
    // Turned on, the page shows the recovery codes, this once.
    browser
        .expect_text("#recovery-title", "Two-factor authentication is on")
        .await;
    let codes: Vec<String> = browser
        .text("#recovery-codes")
        .await
        .split_whitespace()
        .map(str::to_owned)
        .collect();
    assert_eq!(codes.len(), 10, "{codes:?}");
    browser.screenshot("two-factor-recovery-codes").await;
    browser.expect_text("#two-factor", "On.").await;
    browser.open("/settings").await;
    let settings = browser.text("main").await;
    assert!(!settings.contains(&codes[0]), "shown once");
    browser
        .expect_text("#recovery-codes-left", "Recovery codes left: 10 of 10.")
        .await;
    browser.sign_out().await;

    // Signing in now asks for the code after the password, and refuses a wrong one.
    browser.open("/login").await;
    browser.fill("username", ADMIN_USER).await;
    browser.fill("password", ADMIN_PASSWORD).await;
    browser.press("Sign in").await;
    browser
        .expect_text("main h1", "Two-factor authentication")
        .await;
    browser.screenshot("two-factor-sign-in").await;
    browser.fill("otp", &wrong_code(&secret)).await;
    browser.press("Verify and sign in").await;
    browser
        .expect_text("main .notice", "That code is not valid.")
        .await;
    // Each code works once: the one that turned two-factor on is used, the next step's is
    // current too.
    browser.fill("otp", &next_code(&secret)).await;
    browser.press("Verify and sign in").await;
    browser.expect_text("main h1", "Welcome, admin").await;

    // Signing out ends the session on the server: the cookie, replayed, signs nobody in.
    let cookie = format!("berth_session={}", browser.session_cookie().await);
    browser.sign_out().await;
    let replayed = client
        .get(server.url("/settings"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(replayed.status(), 303, "sent to sign in");

    // A recovery code stands in for the app's code, once.
    for attempt in 0..2 {
        browser.open("/login").await;
        browser.fill("username", ADMIN_USER).await;
        browser.fill("password", ADMIN_PASSWORD).await;
        browser.press("Sign in").await;
        browser.fill("otp", &codes[0]).await;
        browser.press("Verify and sign in").await;
        if attempt == 0 {
            browser.expect_text("main h1", "Welcome, admin").await;
            browser.sign_out().await;
        } else {
            browser
                .expect_text("main .notice", "That code is not valid.")
                .await;
        }
    }
    browser.close().await;
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn current_code(secret: &str) -> String {
    berth_core::identity::totp::totp_code(secret, now(), 6).expect("a valid setup key")
}

/// The code of the step after the current one (accepted as well, for clocks running late).
fn next_code(secret: &str) -> String {
    berth_core::identity::totp::totp_code(secret, now() + 30, 6).expect("a valid setup key")
}

/// A code no nearby time step produces.
fn wrong_code(secret: &str) -> String {
    let near: Vec<String> = (-3..=3)
        .filter_map(|step| berth_core::identity::totp::totp_code(secret, now() + step * 30, 6))
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|code| !near.contains(code))
        .expect("a code outside the window")
}
