//! The main pages over a normal amount of data: search filters, namespace pages, accessibility and weight.

use super::common::{SpawnOptions, TestServer, ADMIN_PASSWORD, ADMIN_USER};
use super::driver::{tools_or_skip, Browser, Tools};
use super::image::{write_layout, Skopeo};
use super::{create_user, registry_host, ALICE_PASSWORD, BOB_PASSWORD};
use reqwest::Method;
use serde_json::{json, Value};

/// The organization's repositories: `service-01` … `service-30`, every tenth private.
const SERVICES: u32 = 30;

/// Extra tags pushed to `alice/hello` besides the `v1` skopeo pushes.
const EXTRA_TAGS: u32 = 29;

/// What a first visit may cost: a page's HTML, and the HTML with the stylesheet, script
/// and icon it loads (all cached for a year afterwards).
const MAX_HTML_BYTES: usize = 60 * 1024;
const MAX_FIRST_VISIT_BYTES: usize = 100 * 1024;

/// A README as people write them: a title, sections, code, a table and a relative link.
const README: &str = "# hello\n\nGreets whoever pulls it.\n\n## Usage\n\n```sh\ndocker run hello\n```\n\n\
| Variable | Meaning |\n|---|---|\n| `NAME` | who is greeted |\n\n### Tags\n\nSee [the tags](/r/alice/hello/-/tags).\n";

/// One JSON API call with Basic credentials; fails the test unless it answers 2xx.
async fn api(
    server: &TestServer,
    user: &str,
    password: &str,
    method: Method,
    path: &str,
    body: Value,
) -> Value {
    let response = reqwest::Client::new()
        .request(method.clone(), server.url(&format!("/api/v1{path}")))
        .basic_auth(user, Some(password))
        .json(&body)
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
    let status = response.status();
    let text = response.text().await.unwrap_or_default();
    assert!(
        status.is_success(),
        "{method} {path} as {user}: {status} {text}"
    );
    serde_json::from_str(&text).unwrap_or(Value::Null)
}

/// Fills a fresh Berth through the UI, the API and the registry as its users would:
/// alice (with the private `alice/hello`: a README, 30 tags, a signature) owns the verified
/// organization `acme` with `service-01` … `service-30` (every tenth private, the readers
/// team with bob in it may pull `service-10`, two pushed, `service-07` starred twice), and
/// `library/alpine` is an official image. The browser ends signed out.
async fn populate(server: &TestServer, browser: &Browser, tools: &Tools) {
    browser.sign_in(ADMIN_USER, ADMIN_PASSWORD).await;
    create_user(browser, "alice", ALICE_PASSWORD).await;
    browser.sign_out().await;
    let admin = |method: Method, path: &'static str, body: Value| async move {
        api(server, ADMIN_USER, ADMIN_PASSWORD, method, path, body).await
    };
    let alice = |method: Method, path: String, body: Value| async move {
        api(server, "alice", ALICE_PASSWORD, method, &path, body).await
    };
    admin(
        Method::POST,
        "/users",
        json!({"username": "bob", "password": BOB_PASSWORD}),
    )
    .await;

    alice(Method::POST, "/orgs".into(), json!({"orgname": "acme"})).await;
    alice(
        Method::POST,
        "/orgs/acme/groups".into(),
        json!({"name": "readers", "description": "May pull service-10"}),
    )
    .await;
    alice(
        Method::POST,
        "/orgs/acme/groups/readers/members".into(),
        json!({"member": "bob"}),
    )
    .await;
    for i in 1..=SERVICES {
        let name = format!("service-{i:02}");
        alice(
            Method::POST,
            "/repositories".into(),
            json!({"namespace": "acme", "name": name, "is_private": i % 10 == 0}),
        )
        .await;
        alice(
            Method::PATCH,
            format!("/repositories/acme/{name}"),
            json!({"description": format!("Service {i} of the acme platform")}),
        )
        .await;
    }
    alice(
        Method::POST,
        "/repositories/acme/service-10/-/groups".into(),
        json!({"group_name": "readers", "permission": "read"}),
    )
    .await;
    admin(Method::PATCH, "/orgs/acme", json!({"is_verified": true})).await;

    let skopeo = Skopeo::new(&tools.skopeo);
    let layout = skopeo.dir().join("hello");
    write_layout(&layout, "v1", "hello from the accessibility test");
    let host = registry_host(server);
    skopeo.push_ok(
        &layout,
        "v1",
        &format!("{host}/alice/hello:v1"),
        "alice",
        ALICE_PASSWORD,
    );
    alice(
        Method::PATCH,
        "/repositories/alice/hello".into(),
        json!({"description": "Greets whoever pulls it", "full_description": README}),
    )
    .await;
    for i in 0..EXTRA_TAGS {
        server
            .push_random_image("alice/hello", Some(&format!("1.{i}")))
            .await;
    }
    let signed = server
        .push_random_image("alice/hello", Some("signed"))
        .await;
    server
        .push_artifact(
            "alice/hello",
            "application/vnd.dev.cosign.artifact.sig.v1+json",
            &signed.descriptor(),
            &[],
        )
        .await;
    // Pushed in this order, a second apart (pushes are recorded to the second), so
    // service-07 is the most recently pushed.
    server
        .push_random_image("acme/service-03", Some("latest"))
        .await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    server
        .push_random_image("acme/service-07", Some("latest"))
        .await;
    for (user, password) in [("alice", ALICE_PASSWORD), ("bob", BOB_PASSWORD)] {
        api(
            server,
            user,
            password,
            Method::PUT,
            "/repositories/acme/service-07/-/star",
            Value::Null,
        )
        .await;
    }
    alice(
        Method::PUT,
        "/repositories/alice/hello/-/star".into(),
        Value::Null,
    )
    .await;
    admin(
        Method::POST,
        "/repositories",
        json!({"namespace": "library", "name": "alpine"}),
    )
    .await;
    admin(
        Method::PATCH,
        "/repositories/library/alpine",
        json!({"description": "A minimal image"}),
    )
    .await;
    server.push_random_image("library/alpine", Some("3")).await;
}

/// A webhook on `alice/hello` whose receiver is a closed loopback port, pinged once and
/// waited for until its failed attempt is in the history; returns its id.
async fn failing_webhook(server: &TestServer) -> String {
    let created = api(
        server,
        "alice",
        ALICE_PASSWORD,
        Method::POST,
        "/repositories/alice/hello/-/webhooks",
        json!({"name": "deploy", "hook_url": "http://127.0.0.1:9/hook", "events": ["push", "tag_delete"], "tags": ["v*"]}),
    )
    .await;
    let id = created["id"].as_str().expect("a webhook id").to_owned();
    let path = format!("/webhooks/{id}");
    api(
        server,
        "alice",
        ALICE_PASSWORD,
        Method::POST,
        &format!("{path}/ping"),
        Value::Null,
    )
    .await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let deliveries = api(
            server,
            "alice",
            ALICE_PASSWORD,
            Method::GET,
            &format!("{path}/deliveries"),
            Value::Null,
        )
        .await;
        if deliveries["results"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            return id;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no attempt recorded: {deliveries}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The value of the form field with this id.
async fn field_value(browser: &Browser, id: &str) -> String {
    browser
        .element(&format!("#{id}"))
        .await
        .prop("value")
        .await
        .unwrap()
        .unwrap_or_default()
}

/// The names of the repositories listed on the page, in order.
async fn listed(browser: &Browser) -> Vec<String> {
    let names = browser
        .client
        .execute(
            "return Array.from(document.querySelectorAll('.results a.name'), a => a.textContent);",
            vec![],
        )
        .await
        .unwrap();
    serde_json::from_value(names).unwrap()
}

/// Search with the API's filters, kept in the form and in page links, a readable message
/// for a value that is not a number; namespace pages listing what search would show the
/// same visitor, with the same summaries, most recently pushed first, 25 a page.
#[tokio::test]
async fn search_filters_and_namespace_pages_show_what_search_shows() {
    let Some(tools) = tools_or_skip("search filters") else {
        return;
    };
    let server = TestServer::spawn().await;
    let browser = Browser::start(&tools, server.base()).await;
    populate(&server, &browser, &tools).await;
    browser.sign_in("bob", BOB_PASSWORD).await;

    // Bob finds the 27 public services and the one his team may pull, 25 a page.
    browser.open("/search?q=service").await;
    browser
        .expect_text("#result-count", "28 repositories")
        .await;
    assert_eq!(listed(&browser).await.len(), 25);

    // Filters go in with the API's parameter names, stay in the form, and narrow the results.
    browser.fill("min-stars", "1").await;
    browser.fill("search-namespace", "acme").await;
    browser.press("Apply").await;
    browser.expect_text("#result-count", "1 repository").await;
    let url = browser.url().await;
    assert!(
        url.contains("min_stars=1") && url.contains("namespace=acme"),
        "{url}"
    );
    assert_eq!(listed(&browser).await, ["acme/service-07"]);
    let entry = browser.text("#results .results > li").await;
    for shown in [
        "Verified publisher",
        "Service 7 of the acme platform",
        "2 stars",
        "0 pulls",
        "Updated",
    ] {
        assert!(entry.contains(shown), "{shown:?} in {entry}");
    }
    assert_eq!(field_value(&browser, "min-stars").await, "1");
    assert_eq!(field_value(&browser, "search-namespace").await, "acme");
    browser.screenshot("search-filters").await;

    // The same address asks the API the same question.
    let api_answer: Value = reqwest::Client::new()
        .get(server.url("/api/v1/search?q=service&min_stars=1&namespace=acme"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(api_answer["results"][0]["full_name"], "acme/service-07");

    // Page links keep the filters and the order.
    browser
        .open("/search?q=service&namespace=acme&sort=last_updated")
        .await;
    browser.expect_text(".pagination", "Page 1 of 2").await;
    assert_eq!(
        &listed(&browser).await[..2],
        ["acme/service-07", "acme/service-03"]
    );
    browser.click(".pagination a[rel=next]").await;
    browser.expect_text(".pagination", "Page 2 of 2").await;
    let url = browser.url().await;
    assert!(
        url.contains("namespace=acme") && url.contains("sort=last_updated"),
        "{url}"
    );
    assert_eq!(listed(&browser).await.len(), 3);
    assert_eq!(field_value(&browser, "search-namespace").await, "acme");
    assert_eq!(field_value(&browser, "search-sort").await, "last_updated");

    // Official images only.
    browser.open("/search").await;
    browser.click("#official-only").await;
    browser.press("Apply").await;
    browser.expect_text("#result-count", "1 repository").await;
    assert_eq!(listed(&browser).await, ["library/alpine"]);
    browser
        .expect_text("#results .badge.official", "Official")
        .await;
    assert!(browser
        .element("#official-only")
        .await
        .is_selected()
        .await
        .unwrap());

    // A value that is not a number is named on the page, as a 400, not a failure.
    browser.open("/search?q=service&min_stars=abc").await;
    browser
        .expect_text(
            "#search-problems",
            "Minimum stars must be a whole number, 0 or more, not “abc”.",
        )
        .await;
    let field = browser.element("#min-stars").await;
    assert_eq!(
        field.attr("aria-invalid").await.unwrap().as_deref(),
        Some("true")
    );
    assert_eq!(
        browser.text("#results").await,
        "",
        "no results for a search that cannot run"
    );
    browser.screenshot("search-invalid").await;
    let answer = reqwest::get(server.url("/search?q=service&min_stars=abc"))
        .await
        .unwrap();
    assert_eq!(answer.status(), 400);

    // The organization's page lists what bob may see as search shows it, last pushed
    // first, 25 a page.
    browser.open("/orgs/acme").await;
    browser
        .expect_text("#repository-count", "28 repositories")
        .await;
    let names = listed(&browser).await;
    assert_eq!(names.len(), 25);
    assert_eq!(
        &names[..3],
        ["acme/service-07", "acme/service-03", "acme/service-01"]
    );
    assert!(names.contains(&"acme/service-10".to_owned()), "{names:?}");
    assert!(!names.contains(&"acme/service-20".to_owned()), "{names:?}");
    let first = browser.text("#repositories .results > li").await;
    for shown in [
        "Verified publisher",
        "Service 7 of the acme platform",
        "2 stars",
        "0 pulls",
        "Updated",
    ] {
        assert!(first.contains(shown), "{shown:?} in {first}");
    }
    browser.screenshot("organization-repositories").await;
    browser.click("#repositories .pagination a[rel=next]").await;
    browser
        .expect_text("#repositories .pagination", "Page 2 of 2")
        .await;
    assert_eq!(listed(&browser).await.len(), 3);
    browser.sign_out().await;

    // Signed out: public repositories only, on the organization's and alice's pages.
    browser.open("/orgs/acme").await;
    browser
        .expect_text("#repository-count", "27 repositories")
        .await;
    browser.open("/u/alice").await;
    browser
        .expect_text("#repositories", "No repositories to show.")
        .await;

    // Alice sees her private repository, marked, with its numbers.
    browser.sign_in("alice", ALICE_PASSWORD).await;
    browser.open("/u/alice").await;
    browser
        .expect_text("#repository-count", "1 repository")
        .await;
    let hello = browser.text("#repositories .results > li").await;
    for shown in [
        "alice/hello",
        "Private",
        "Greets whoever pulls it",
        "1 star",
        "Updated",
    ] {
        assert!(hello.contains(shown), "{shown:?} in {hello}");
    }
    browser.screenshot("user-repositories").await;
    browser.open("/orgs/acme").await;
    browser
        .expect_text("#repository-count", "30 repositories")
        .await;
    browser.close().await;
}

/// The check run in each page (`accessibility.js`); it answers with the problems found,
/// the lowest contrast of text and of links, and the resources the page loads from
/// elsewhere (`external`) and from here (`resources`).
const PAGE_CHECK: &str = include_str!("accessibility.js");

/// The size of what `url` answers, asked with the browser's session cookie.
async fn bytes(browser: &Browser, url: &str) -> usize {
    let mut request = reqwest::Client::new().get(url);
    if let Ok(cookie) = browser.client.get_named_cookie("berth_session").await {
        request = request.header("cookie", format!("berth_session={}", cookie.value()));
    }
    let response = request
        .send()
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    response.bytes().await.unwrap().len()
}

/// `http://host:port` of the page the browser shows.
async fn browser_base(browser: &Browser) -> String {
    let url = browser.client.current_url().await.unwrap();
    url.origin().ascii_serialization()
}

/// A user name and password to sign in with.
type Account = (&'static str, &'static str);

/// What one page costs a first visit, and its lowest contrasts.
struct Weight {
    page: String,
    html: usize,
    assets: usize,
    text_contrast: f64,
    link_contrast: f64,
}

/// Runs the checks on the page open in the browser; returns its problems (each naming the
/// page) and its weight.
async fn check_page(browser: &Browser, path: &str) -> (Vec<String>, Weight) {
    browser.open(path).await;
    browser.element("main").await;
    let found = browser.client.execute(PAGE_CHECK, vec![]).await.unwrap();
    let mut problems: Vec<String> = serde_json::from_value(found["problems"].clone()).unwrap();
    for what in ["text", "link"] {
        let lowest = found["lowest"][what].as_f64().unwrap_or(21.0);
        if lowest < 4.5 {
            problems.push(format!(
                "lowest {what} contrast {lowest:.2}:1 is under 4.5:1"
            ));
        }
    }
    let external: Vec<String> = serde_json::from_value(found["external"].clone()).unwrap();
    problems.extend(
        external
            .into_iter()
            .map(|url| format!("loads {url} from elsewhere")),
    );

    // The page's scripts may not fetch (the policy allows no connections): weigh it and
    // what it loads from here, with the browser's session.
    let resources: Vec<String> = serde_json::from_value(found["resources"].clone()).unwrap();
    let html = bytes(browser, &format!("{}{path}", browser_base(browser).await)).await;
    let mut assets = 0;
    for url in &resources {
        assets += bytes(browser, url).await;
    }
    if html > MAX_HTML_BYTES {
        problems.push(format!("HTML of {html} bytes is over {MAX_HTML_BYTES}"));
    }
    if html + assets > MAX_FIRST_VISIT_BYTES {
        problems.push(format!(
            "a first visit loads {} bytes, over {MAX_FIRST_VISIT_BYTES}",
            html + assets
        ));
    }
    let problems = problems
        .into_iter()
        .map(|p| format!("{path}: {p}"))
        .collect();
    let weight = Weight {
        page: path.to_owned(),
        html,
        assets,
        text_contrast: found["lowest"]["text"].as_f64().unwrap_or(21.0),
        link_contrast: found["lowest"]["link"].as_f64().unwrap_or(21.0),
    };
    (problems, weight)
}

/// Every main page, as the people who use it see it: each form field, image, link and
/// button has an accessible name, there is one h1, a language, unique ids and references
/// that resolve; every visible text has a contrast of at least 4.5:1 against what is behind
/// it; nothing comes from another origin; and the HTML stays under 60 KiB. All problems of
/// all pages are reported together, with the page sizes.
#[tokio::test]
async fn main_pages_are_accessible_light_and_self_contained() {
    let Some(tools) = tools_or_skip("accessibility") else {
        return;
    };
    // The webhook below calls a closed port on loopback, so its history has failures.
    let options = SpawnOptions::default().env("BERTH_WEBHOOK_ALLOW_PRIVATE", "true");
    let server = TestServer::spawn_with(options).await;
    let browser = Browser::start(&tools, server.base()).await;
    populate(&server, &browser, &tools).await;
    let webhook = failing_webhook(&server).await;
    let webhook_page = format!("/webhooks/{webhook}");

    let visits: [(Option<Account>, &[&str]); 3] = [
        (
            Some(("alice", ALICE_PASSWORD)),
            &[
                "/",
                "/search?q=service",
                "/search?q=service&min_stars=abc",
                "/r/alice/hello",
                "/r/alice/hello/-/tags",
                "/r/alice/hello/-/tags/v1",
                "/r/alice/hello/-/settings",
                "/r/alice/hello/-/settings/webhooks",
                "/r/alice/hello/-/settings/builds",
                &webhook_page,
                &format!("{webhook_page}/delete"),
                "/settings",
                "/settings/webhooks",
                "/orgs",
                "/orgs/acme",
                "/orgs/acme/webhooks",
                "/u/alice",
            ],
        ),
        (
            Some((ADMIN_USER, ADMIN_PASSWORD)),
            &[
                "/admin/users",
                "/admin/publishers",
                "/admin/audit",
                "/admin/webhooks",
            ],
        ),
        (
            None,
            &[
                "/login",
                "/",
                "/search",
                "/r/library/alpine",
                "/r/acme/no-such-repository",
            ],
        ),
    ];
    let mut problems = Vec::new();
    let mut weights = Vec::new();
    for (account, paths) in visits {
        if let Some((user, password)) = account {
            browser.sign_in(user, password).await;
        }
        for path in paths {
            let (found, weight) = check_page(&browser, path).await;
            problems.extend(found);
            weights.push(weight);
        }
        if account.is_some() {
            browser.sign_out().await;
        }
    }

    // Bytes; a first visit also loads the stylesheet, script and icon, cached afterwards.
    eprintln!(
        "{:<34} {:>7} {:>12} {:>14} {:>9} {:>9}",
        "page", "HTML", "first visit", "at 400 kbit/s", "min text", "min link"
    );
    for weight in &weights {
        let first = weight.html + weight.assets;
        eprintln!(
            "{:<34} {:>7} {:>12} {:>13.2}s {:>7.2}:1 {:>7.2}:1",
            weight.page,
            weight.html,
            first,
            first as f64 * 8.0 / 400_000.0,
            weight.text_contrast,
            weight.link_contrast
        );
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    browser.close().await;
}
