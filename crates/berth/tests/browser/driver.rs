//! A headless Chromium driven through chromedriver (WebDriver), pointed at one Berth, with
//! the few moves the tests make: open a page, fill a field, press a button, read text, and
//! save a screenshot.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use std::net::TcpListener;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a page may take to show what a test waits for.
const PAGE_TIMEOUT: Duration = Duration::from_secs(15);

/// The programs these tests run; `None` when one is missing.
pub struct Tools {
    pub chromium: PathBuf,
    pub chromedriver: PathBuf,
    pub skopeo: PathBuf,
}

/// The first of `names` on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// The browser, its driver and skopeo; without them the tests skip on a developer machine
/// (saying how to install them) and fail in CI, where `scripts/test` installs them.
pub fn tools_or_skip(test: &str) -> Option<Tools> {
    let chromium = on_path(&["chromium", "chromium-browser", "google-chrome"]);
    let chromedriver = on_path(&["chromedriver"]);
    let skopeo = on_path(&["skopeo"]);
    match (chromium, chromedriver, skopeo) {
        (Some(chromium), Some(chromedriver), Some(skopeo)) => Some(Tools {
            chromium,
            chromedriver,
            skopeo,
        }),
        missing => {
            let message = format!(
                "browser test {test} needs chromium, chromedriver and skopeo (found: {missing:?}); \
                 install them with `apt-get install -y chromium chromium-driver skopeo` or run scripts/test"
            );
            if std::env::var_os("CI").is_some() {
                panic!("{message}");
            }
            eprintln!("SKIPPED: {message}");
            None
        }
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free loopback port")
}

/// Where screenshots go: `target/ui-screenshots/` (or under `CARGO_TARGET_DIR`).
pub fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("ui-screenshots")
}

/// One browser session on one Berth.
pub struct Browser {
    pub client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    base: String,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium with a fresh profile, kept off the
    /// network: only loopback pages, no background fetches.
    pub async fn start(tools: &Tools, base: &str) -> Browser {
        let profile = tempfile::Builder::new()
            .prefix("berth-chromium-")
            .tempdir()
            .expect("a profile directory");
        let port = free_port();
        let driver = Command::new(&tools.chromedriver)
            .arg(format!("--port={port}"))
            // Its own process group, so the browser it starts can be ended with it.
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", tools.chromedriver.display()));
        let webdriver = format!("http://127.0.0.1:{port}");
        wait_for_driver(&webdriver).await;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": tools.chromium,
                "args": [
                    "--headless",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--disable-quic",
                    "--no-first-run",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--disable-sync",
                    "--window-size=1280,900",
                    format!("--user-data-dir={}", profile.path().display()),
                ],
            },
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&webdriver)
            .await
            .expect("a Chromium session through chromedriver");
        Browser {
            client,
            driver,
            _profile: profile,
            base: base.to_owned(),
        }
    }

    pub async fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.client
            .goto(&url)
            .await
            .unwrap_or_else(|e| panic!("open {url}: {e}"));
    }

    /// The element a CSS selector names, once it is on the page.
    pub async fn element(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(element) => element,
            Err(e) => panic!(
                "no `{css}` on {}: {e}\npage text:\n{}",
                self.url().await,
                self.text("body").await
            ),
        }
    }

    pub async fn url(&self) -> String {
        self.client
            .current_url()
            .await
            .map(|url| url.to_string())
            .unwrap_or_default()
    }

    /// The visible text of the first element matching `css` (empty when there is none).
    pub async fn text(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Replaces the value of the input with this id.
    pub async fn fill(&self, id: &str, value: &str) {
        let field = self.element(&format!("#{id}")).await;
        field.clear().await.expect("clear a field");
        field.send_keys(value).await.expect("type into a field");
    }

    /// Chooses an option of the `<select>` with this id.
    pub async fn choose(&self, id: &str, value: &str) {
        let select = self.element(&format!("#{id}")).await;
        select
            .select_by_value(value)
            .await
            .unwrap_or_else(|e| panic!("choose {value} in #{id}: {e}"));
    }

    /// Clicks the button in the page's main content whose text is exactly `label`.
    pub async fn press(&self, label: &str) {
        let xpath = format!("//main//button[normalize-space()=\"{label}\"]");
        let button = match self
            .client
            .wait()
            .at_most(PAGE_TIMEOUT)
            .for_element(Locator::XPath(&xpath))
            .await
        {
            Ok(button) => button,
            Err(e) => panic!(
                "no button \"{label}\" on {}: {e}\npage text:\n{}",
                self.url().await,
                self.text("body").await
            ),
        };
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("press \"{label}\": {e}"));
    }

    pub async fn click(&self, css: &str) {
        self.element(css)
            .await
            .click()
            .await
            .unwrap_or_else(|e| panic!("click {css}: {e}"));
    }

    /// Waits until the element matching `css` shows `expected` somewhere in its text.
    pub async fn expect_text(&self, css: &str, expected: &str) -> String {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let text = self.text(css).await;
            if text.contains(expected) {
                return text;
            }
            if Instant::now() >= deadline {
                panic!(
                    "`{css}` on {} does not show {expected:?}; it shows:\n{text}\npage text:\n{}",
                    self.url().await,
                    self.text("body").await
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The one-time notice at the top of the page.
    pub async fn expect_notice(&self, expected: &str) {
        self.expect_text("main .notice", expected).await;
    }

    /// Signs in through the form and lands on the start page.
    pub async fn sign_in(&self, user: &str, password: &str) {
        self.open("/login").await;
        self.fill("username", user).await;
        self.fill("password", password).await;
        self.press("Sign in").await;
        self.expect_text("main h1", &format!("Welcome, {user}"))
            .await;
    }

    /// Signs out through the account menu in the header.
    pub async fn sign_out(&self) {
        self.click("details.user-menu summary").await;
        self.click("details.user-menu button[type=submit]").await;
        self.expect_notice("You are signed out.").await;
    }

    /// The session cookie the browser holds.
    pub async fn session_cookie(&self) -> String {
        self.client
            .get_named_cookie("berth_session")
            .await
            .expect("a session cookie")
            .value()
            .to_owned()
    }

    /// Saves the whole page (not just the window) as `target/ui-screenshots/{name}.png`.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        let height = self
            .client
            .execute(
                "window.scrollTo(0, 0); return Math.ceil(document.documentElement.scrollHeight);",
                vec![],
            )
            .await
            .ok()
            .and_then(|value| value.as_u64())
            .unwrap_or(900)
            .clamp(600, 4000) as u32;
        let _ = self.client.set_window_size(1280, height).await;
        let png = self.client.screenshot().await.expect("a screenshot");
        let _ = self.client.set_window_size(1280, 900).await;
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).expect("the screenshot directory");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write the screenshot");
        eprintln!("screenshot: {}", path.display());
        path
    }

    /// Ends the WebDriver session (which quits the browser); dropping ends the rest.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // A failed test never ends its session, and the browser outlives a killed
        // chromedriver: end the whole process group.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

async fn wait_for_driver(webdriver: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let client = reqwest::Client::new();
    loop {
        let ready = client
            .get(format!("{webdriver}/status"))
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .is_ok_and(|response| response.status().is_success());
        if ready {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "chromedriver did not answer at {webdriver}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
