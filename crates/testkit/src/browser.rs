//! Real headless Chromium for the console's browser tests, driven through WebDriver: Debian's
//! `chromedriver` (package `chromium-driver`) started per browser on a loopback port it picks
//! itself, spoken to with `fantoccini`.
//!
//! Each [`Browser`] is its own chromedriver and Chromium with a fresh profile folder, so a test
//! can hold several at once (one person proposes a change, another approves it) and none sees
//! another's cookies. A browser can have JavaScript switched off
//! ([`Browser::start_without_javascript`]) to show that a flow works without it.
//!
//! The helpers find things as a person does: a field by its label, a button or link by its
//! text. [`Browser::screenshot`] writes `target/console-screenshots/<test>-<page>.png`, and
//! [`Browser::axe`] runs axe-core (from `tests/browser/node_modules`, installed by
//! `npm ci --prefix tests/browser`) in the page for WCAG 2.2 AA.
//!
//! chromedriver and the Chromium processes it starts run in a process group of their own, and
//! dropping the [`Browser`] kills the group, so a failing test leaves no browser behind.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use fantoccini::elements::Element;
use fantoccini::wd::WebDriverCompatibleCommand;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

/// The accessibility standard [`Browser::axe`] checks: WCAG 2.0, 2.1 and 2.2, levels A and AA.
pub const WCAG_22_AA: &[&str] = &["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa"];

/// The window every browser opens with (CSS pixels).
const WINDOW: (u32, u32) = (1280, 900);
/// The tallest full-page screenshot taken (CSS pixels); a longer page is cut here.
const TALLEST_SCREENSHOT: u32 = 6000;

/// axe-core's browser build, from the npm package pinned in `tests/browser/package.json`.
const AXE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../tests/browser/node_modules/axe-core/axe.min.js"
);

/// One accessibility failure axe-core found: the rule (`id`, such as `label`), how bad
/// (`impact`), what it asks for (`help`), and the elements that break it (CSS selectors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub id: String,
    pub impact: Option<String>,
    pub help: String,
    pub targets: Vec<String>,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {} at {}",
            self.id,
            self.impact.as_deref().unwrap_or("no impact"),
            self.help,
            self.targets.join(", ")
        )
    }
}

/// What `fetch()` from the page got: the status after any redirects, the final URL, whether
/// it was redirected, and the body.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub status: u16,
    pub url: String,
    pub redirected: bool,
    pub body: String,
}

/// One headless Chromium with its own chromedriver and profile; killed when dropped.
pub struct Browser {
    client: Client,
    driver: Child,
    test: String,
    javascript: bool,
    /// The status of the last page loaded, as far as the performance log has been read.
    last_status: std::sync::Mutex<Option<(String, u16)>>,
    /// Chromium's `--user-data-dir`; removed after the browser is killed (field order).
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts Chromium for the test named `test` (the screenshots' prefix), JavaScript on.
    pub async fn start(test: &str) -> Self {
        Self::launch(test, true).await
    }

    /// Starts Chromium with JavaScript switched off for every site (the content setting a
    /// school's managed browser would use), to show that a flow needs no script. WebDriver's
    /// own commands still work, [`Self::execute`] included; [`Self::axe`] and [`Self::fetch`]
    /// do not (their promises never settle).
    pub async fn start_without_javascript(test: &str) -> Self {
        Self::launch(test, false).await
    }

    async fn launch(test: &str, javascript: bool) -> Self {
        let profile = tempfile::tempdir().unwrap();
        let (driver, port) = start_chromedriver();
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-default-apps".to_owned(),
            "--disable-extensions".to_owned(),
            "--disable-sync".to_owned(),
            "--no-first-run".to_owned(),
            "--no-default-browser-check".to_owned(),
            "--password-store=basic".to_owned(),
            // A browser in an English school (navigator.language, Accept-Language). Date
            // fields still read mm/dd/yyyy unless Debian's chromium-l10n is installed.
            "--lang=en-GB".to_owned(),
            format!("--window-size={},{}", WINDOW.0, WINDOW.1),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        // Chromium must not use a proxy from the environment: tests talk to loopback only.
        args.push("--no-proxy-server".to_owned());
        let mut prefs = json!({
            // No "save password?" bubble over the page in screenshots.
            "credentials_enable_service": false,
            "profile.password_manager_enabled": false,
            "intl.accept_languages": "en-GB,en",
        });
        if !javascript {
            prefs["profile.managed_default_content_settings.javascript"] = json!(2);
        }
        let mut chrome = json!({
            "args": args,
            "prefs": prefs,
            "perfLoggingPrefs": { "enableNetwork": true, "enablePage": false },
        });
        if let Some(binary) = chromium_binary() {
            chrome["binary"] = json!(binary);
        }
        let caps = json!({
            "browserName": "chrome",
            // DevTools' network events, read by `status()` for the HTTP status of each page.
            "goog:loggingPrefs": { "performance": "ALL" },
            // The console's certificate is self-signed (or from the school's CA): trusted
            // for this session only, as a person would after checking its fingerprint.
            "acceptInsecureCerts": true,
            "goog:chromeOptions": chrome,
        });
        let Value::Object(caps) = caps else {
            unreachable!("a JSON object literal")
        };
        let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(caps)
            .connect(&format!("http://127.0.0.1:{port}"))
            .await
            .unwrap_or_else(|e| panic!("chromedriver on port {port} did not start Chromium: {e}"));
        let browser = Self {
            client,
            driver,
            test: test.to_owned(),
            javascript,
            last_status: std::sync::Mutex::new(None),
            _profile: profile,
        };
        // `--window-size` sizes the window; headless Chromium takes its frame out of that,
        // so the page itself is made 1280x900 (what a screenshot shows).
        browser
            .cdp(
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": WINDOW.0, "height": WINDOW.1, "deviceScaleFactor": 1,
                        "mobile": false }),
            )
            .await;
        browser
    }

    /// Sends a Chrome DevTools Protocol command through chromedriver and returns its result.
    pub async fn cdp(&self, method: &str, params: Value) -> Value {
        self.client
            .issue_cmd(Cdp {
                method: method.to_owned(),
                params,
            })
            .await
            .unwrap_or_else(|e| panic!("DevTools {method}: {e}"))
    }

    /// The fantoccini client, for what the helpers do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Whether this browser runs the pages' JavaScript.
    pub fn javascript(&self) -> bool {
        self.javascript
    }

    /// Loads `url` and waits for it to finish loading.
    pub async fn goto(&self, url: &str) {
        self.forget_status().await;
        self.client
            .goto(url)
            .await
            .unwrap_or_else(|e| panic!("loading {url}: {e}"));
    }

    /// The HTTP status of the page shown now (the response to the last page load, a form's
    /// submission included, after any redirects), from Chromium's own network events: it
    /// works with JavaScript off and whatever the page's Content-Security-Policy. Waits (up
    /// to 5 s) for the event of a response from the page's own URL, since chromedriver may
    /// collect it after the page has loaded. A page loaded other than by [`Self::goto`],
    /// [`Self::click_button`] or [`Self::click_link`] (a form submitted by pressing Enter)
    /// may be reported with the status of the page before it if both have the same URL.
    pub async fn status(&self) -> u16 {
        let here = self.url().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            let entries = self
                .client
                .issue_cmd(PerformanceLog)
                .await
                .unwrap_or_else(|e| panic!("reading the performance log: {e}"));
            let found = {
                let mut last = self.last_status.lock().unwrap();
                for entry in entries.as_array().into_iter().flatten() {
                    if let Some(response) = document_response(entry) {
                        *last = Some(response);
                    }
                }
                let late = std::time::Instant::now() > deadline;
                match &*last {
                    Some((url, status))
                        if late || url.split('#').next() == here.split('#').next() =>
                    {
                        Some(*status)
                    }
                    None if late => panic!("no page has been loaded in {}'s browser", self.test),
                    _ => None,
                }
            };
            if let Some(status) = found {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Marks the document shown now, so that [`Self::settle`] can tell when another replaced
    /// it. (WebDriver's scripts run with the page's JavaScript off too.)
    async fn mark_document(&self) {
        let _ = self
            .client
            .execute("window.__hedgerowTestkitOld = true;", vec![])
            .await;
    }

    /// Waits (up to 30 s) until the page a click led to has loaded: a new document, fully
    /// parsed. chromedriver waits for the navigation itself, but with JavaScript off it can
    /// return while the new document is still loading. A click that loads nothing (a
    /// `type=button`) settles once the marked document has stayed for a second.
    async fn settle(&self) {
        let start = std::time::Instant::now();
        loop {
            let state = self
                .client
                .execute(
                    "return [document.readyState, window.__hedgerowTestkitOld === true];",
                    vec![],
                )
                .await
                .ok();
            let elapsed = start.elapsed();
            match state.as_ref().and_then(Value::as_array).map(Vec::as_slice) {
                Some([ready, old])
                    if ready == "complete"
                        && (*old == json!(false) || elapsed > Duration::from_secs(1)) =>
                {
                    return;
                }
                _ if elapsed > Duration::from_secs(30) => {
                    panic!("the page in {}'s browser did not finish loading", self.test)
                }
                _ => {}
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Drops the network events so far, so that [`Self::status`] waits for the next page's.
    async fn forget_status(&self) {
        let _ = self.client.issue_cmd(PerformanceLog).await;
        *self.last_status.lock().unwrap() = None;
    }

    /// Loads `url` and returns its HTTP status (see [`Self::status`]).
    pub async fn visit(&self, url: &str) -> u16 {
        self.goto(url).await;
        self.status().await
    }

    /// The address of the page shown now.
    pub async fn url(&self) -> String {
        self.client.current_url().await.unwrap().to_string()
    }

    /// The page's title.
    pub async fn title(&self) -> String {
        self.client.title().await.unwrap()
    }

    /// The text a person sees on the page (the body's rendered text).
    pub async fn text(&self) -> String {
        self.text_of("body").await
    }

    /// The rendered text of the first element matching the CSS selector `css`.
    pub async fn text_of(&self, css: &str) -> String {
        match self.client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap(),
            Err(e) => panic!("no element matches {css:?} on {}: {e}", self.url().await),
        }
    }

    /// The page's HTML as the browser holds it now.
    pub async fn source(&self) -> String {
        self.client.source().await.unwrap()
    }

    /// Types `value` into the field labelled `label` (a `<label>` whose text is `label`, or an
    /// element whose `aria-label` is), replacing what was there.
    pub async fn fill(&self, label: &str, value: &str) {
        let field = self.field(label).await;
        field.clear().await.unwrap();
        field
            .send_keys(value)
            .await
            .unwrap_or_else(|e| panic!("typing into the field labelled {label:?}: {e}"));
    }

    /// Picks the option whose text is `option` in the drop-down labelled `label`.
    pub async fn select(&self, label: &str, option: &str) {
        let field = self.field(label).await;
        field
            .select_by_label(option)
            .await
            .unwrap_or_else(|e| panic!("choosing {option:?} in {label:?}: {e}"));
    }

    /// Ticks (or unticks) the checkbox or radio button labelled `label`.
    pub async fn check(&self, label: &str, on: bool) {
        let field = self.field(label).await;
        if field.is_selected().await.unwrap() != on {
            field.click().await.unwrap();
        }
    }

    /// The form control labelled `label`.
    pub async fn field(&self, label: &str) -> Element {
        let lit = xpath_literal(label);
        let labels = self
            .client
            .find_all(Locator::XPath(&format!(
                "//label[normalize-space(.)={lit} or normalize-space(text()[1])={lit}]"
            )))
            .await
            .unwrap();
        for l in labels {
            if let Some(id) = l.attr("for").await.unwrap().filter(|id| !id.is_empty()) {
                if let Ok(field) = self.client.find(Locator::Id(&id)).await {
                    return field;
                }
                continue;
            }
            if let Ok(field) = l
                .find(Locator::XPath(".//input | .//select | .//textarea"))
                .await
            {
                return field;
            }
        }
        if let Ok(field) = self
            .client
            .find(Locator::XPath(&format!(
                "//*[(self::input or self::select or self::textarea) and @aria-label={lit}]"
            )))
            .await
        {
            return field;
        }
        panic!(
            "no form field labelled {label:?} on {}; the labels there: {:?}",
            self.url().await,
            self.all_text("label").await
        )
    }

    /// Clicks the button whose text (or, for `<input type=submit>`, value) is `text`, and
    /// waits for the page it leads to.
    pub async fn click_button(&self, text: &str) {
        let Some(button) = self.button(text).await else {
            panic!(
                "no button {text:?} on {}; the buttons there: {:?}",
                self.url().await,
                self.all_text("button").await
            )
        };
        self.forget_status().await;
        self.mark_document().await;
        button
            .click()
            .await
            .unwrap_or_else(|e| panic!("clicking the button {text:?}: {e}"));
        self.settle().await;
    }

    /// The first button whose text (or submit input's value) is `text`, if there is one.
    pub async fn button(&self, text: &str) -> Option<Element> {
        let lit = xpath_literal(text);
        self.client
            .find(Locator::XPath(&format!(
                "//button[normalize-space(.)={lit}] | \
                 //input[(@type='submit' or @type='button') and normalize-space(@value)={lit}]"
            )))
            .await
            .ok()
    }

    /// Follows the link whose text is `text`.
    pub async fn click_link(&self, text: &str) {
        let lit = xpath_literal(text);
        let found = self
            .client
            .find(Locator::XPath(&format!("//a[normalize-space(.)={lit}]")))
            .await;
        let Ok(link) = found else {
            panic!(
                "no link {text:?} on {}; the links there: {:?}",
                self.url().await,
                self.all_text("a").await
            )
        };
        self.forget_status().await;
        self.mark_document().await;
        link.click()
            .await
            .unwrap_or_else(|e| panic!("following the link {text:?}: {e}"));
        self.settle().await;
    }

    /// The rendered text of every element matching `css`.
    pub async fn all_text(&self, css: &str) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.client.find_all(Locator::Css(css)).await.unwrap() {
            out.push(e.text().await.unwrap_or_default());
        }
        out
    }

    /// Runs `script` in the page (a function body: `arguments` holds `args`, `return` gives the
    /// result).
    pub async fn execute(&self, script: &str, args: Vec<Value>) -> Value {
        match self.client.execute(script, args).await {
            Ok(v) => v,
            Err(e) => panic!("running script in {}: {e}", self.url().await),
        }
    }

    /// A cookie's value, if the page's site has set it (HttpOnly cookies included).
    pub async fn cookie(&self, name: &str) -> Option<String> {
        self.client
            .get_all_cookies()
            .await
            .unwrap()
            .into_iter()
            .find(|c| c.name() == name)
            .map(|c| c.value().to_owned())
    }

    /// Sets a cookie for the site of the page shown now (as an attacker planting a session
    /// id would).
    pub async fn set_cookie(&self, name: &str, value: &str) {
        let url = self.url().await;
        self.cdp(
            "Network.setCookie",
            json!({ "name": name, "value": value, "url": url, "path": "/",
                    "secure": url.starts_with("https:") }),
        )
        .await;
    }

    /// `fetch(url)` from the page, with the page's cookies (a same-origin request as the
    /// page's own script would make), following redirects. A page whose
    /// Content-Security-Policy has no `connect-src` for it (the console's) refuses it: use
    /// [`Self::visit`] and [`Self::status`] there.
    pub async fn fetch(&self, url: &str) -> Fetched {
        self.fetch_with(url, "GET", &[]).await
    }

    /// `fetch(url)` with `method` and, when `form` is not empty, an
    /// `application/x-www-form-urlencoded` body of `form`'s fields, as a form posts.
    pub async fn fetch_with(&self, url: &str, method: &str, form: &[(&str, &str)]) -> Fetched {
        let fields: Vec<Value> = form.iter().map(|(k, v)| json!([k, v])).collect();
        let v = self
            .client
            .execute_async(
                r#"const [url, method, fields, done] = arguments;
                const init = { method, credentials: 'same-origin', redirect: 'follow' };
                if (fields.length > 0) { init.body = new URLSearchParams(fields); }
                fetch(url, init)
                  .then(async r => done({ status: r.status, url: r.url, redirected: r.redirected,
                                          body: await r.text() }))
                  .catch(e => done({ error: String(e) }));"#,
                vec![json!(url), json!(method), Value::Array(fields)],
            )
            .await
            .unwrap_or_else(|e| panic!("fetch({url}) from the page: {e}"));
        if let Some(e) = v.get("error") {
            panic!("fetch({url}) from the page failed: {e}");
        }
        Fetched {
            status: v["status"].as_u64().unwrap_or(0) as u16,
            url: v["url"].as_str().unwrap_or_default().to_owned(),
            redirected: v["redirected"].as_bool().unwrap_or(false),
            body: v["body"].as_str().unwrap_or_default().to_owned(),
        }
    }

    /// Writes a screenshot of the whole page (up to 6000 pixels tall) to
    /// `target/console-screenshots/<test>-<page>.png` and returns the path.
    pub async fn screenshot(&self, page: &str) -> PathBuf {
        let dir = screenshot_dir();
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}-{page}.png", self.test));
        // The page's full height from DevTools (no page script, so JavaScript off too).
        let metrics = self.cdp("Page.getLayoutMetrics", json!({})).await;
        let height = metrics["cssContentSize"]["height"]
            .as_f64()
            .map(|h| (h.ceil() as u32).clamp(WINDOW.1, TALLEST_SCREENSHOT))
            .unwrap_or(WINDOW.1);
        let shot = self
            .cdp(
                "Page.captureScreenshot",
                json!({ "format": "png", "captureBeyondViewport": true,
                        "clip": { "x": 0, "y": 0, "width": WINDOW.0, "height": height,
                                  "scale": 1 } }),
            )
            .await;
        let png = shot["data"]
            .as_str()
            .and_then(|b64| BASE64.decode(b64).ok())
            .unwrap_or_else(|| panic!("DevTools sent no screenshot of {page}"));
        std::fs::write(&path, png).unwrap();
        path
    }

    /// Runs axe-core in the page for WCAG 2.2 AA ([`WCAG_22_AA`]) and returns what it found.
    pub async fn axe(&self) -> Vec<Violation> {
        self.axe_with(WCAG_22_AA).await
    }

    /// Runs axe-core in the page with the rules tagged with any of `tags`.
    pub async fn axe_with(&self, tags: &[&str]) -> Vec<Violation> {
        assert!(
            self.javascript,
            "axe-core runs as script in the page: use a browser with JavaScript on"
        );
        let loaded = self
            .execute("return typeof window.axe === 'object';", vec![])
            .await;
        if loaded != json!(true) {
            self.execute(&axe_source(), vec![]).await;
        }
        let v = self
            .client
            .execute_async(
                r#"const [tags, done] = arguments;
                axe.run(document, { runOnly: { type: 'tag', values: tags },
                                    resultTypes: ['violations'] })
                  .then(r => done({ violations: r.violations.map(v => ({
                      id: v.id, impact: v.impact, help: v.help,
                      targets: v.nodes.map(n => n.target.join(' ')) })) }))
                  .catch(e => done({ error: String(e) }));"#,
                vec![json!(tags)],
            )
            .await
            .unwrap_or_else(|e| panic!("running axe-core: {e}"));
        if let Some(e) = v.get("error") {
            panic!("axe-core failed in the page: {e}");
        }
        let str_of = |v: &Value| v.as_str().map(str::to_owned);
        v["violations"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|v| Violation {
                id: str_of(&v["id"]).unwrap_or_default(),
                impact: str_of(&v["impact"]),
                help: str_of(&v["help"]).unwrap_or_default(),
                targets: v["targets"]
                    .as_array()
                    .unwrap_or(&Vec::new())
                    .iter()
                    .filter_map(str_of)
                    .collect(),
            })
            .collect()
    }

    /// Ends the WebDriver session (Chromium quits), then chromedriver.
    pub async fn close(self) {
        let _ = self.client.clone().close().await;
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // chromedriver leads its own process group, which its Chromium processes share.
        let _ = Command::new("kill")
            .arg("-KILL")
            .arg("--")
            .arg(format!("-{}", self.driver.id()))
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// A Chrome DevTools Protocol command, sent through chromedriver's `goog/cdp/execute`.
#[derive(Debug)]
struct Cdp {
    method: String,
    params: Value,
}

impl WebDriverCompatibleCommand for Cdp {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!(
            "session/{}/goog/cdp/execute",
            session.unwrap_or_default()
        ))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        let body = json!({ "cmd": self.method, "params": self.params });
        (http::Method::POST, Some(body.to_string()))
    }
}

/// The URL and status of a page's response, from one performance log entry (a DevTools
/// `Network.responseReceived` event for a document).
fn document_response(entry: &Value) -> Option<(String, u16)> {
    let event: Value = serde_json::from_str(entry["message"].as_str()?).ok()?;
    let event = &event["message"];
    if event["method"] != "Network.responseReceived" || event["params"]["type"] != "Document" {
        return None;
    }
    let response = &event["params"]["response"];
    let status = u16::try_from(response["status"].as_u64()?).ok()?;
    Some((response["url"].as_str()?.to_owned(), status))
}

/// chromedriver's `se/log` for the `performance` log: the DevTools events since the last read.
#[derive(Debug)]
struct PerformanceLog;

impl WebDriverCompatibleCommand for PerformanceLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (
            http::Method::POST,
            Some(json!({ "type": "performance" }).to_string()),
        )
    }
}

/// Starts chromedriver on a loopback port it picks and returns it with that port.
fn start_chromedriver() -> (Child, u16) {
    use std::os::unix::process::CommandExt;
    let program = ["chromedriver", "/usr/bin/chromedriver"]
        .into_iter()
        .find(|p| Command::new(p).arg("--version").output().is_ok())
        .unwrap_or_else(|| {
            panic!("chromedriver (Debian package chromium-driver) must be installed; .ci/run installs it")
        });
    let mut child = Command::new(program)
        .arg("--port=0")
        .arg("--allowed-ips=127.0.0.1")
        .arg("--log-level=WARNING")
        // Chromium takes its locale from the environment.
        .env("LANG", "en_GB.UTF-8")
        .env("LANGUAGE", "en_GB:en")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        // Keeps reading to the end so chromedriver never blocks on a full pipe.
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if !sent && let Some(rest) = line.split("started successfully on port ").nth(1) {
                let port = rest.trim_end_matches('.').trim().parse::<u16>().ok();
                let _ = tx.send(port);
                sent = true;
            }
        }
    });
    match rx.recv_timeout(Duration::from_secs(30)) {
        Ok(Some(port)) => (child, port),
        other => {
            let _ = child.kill();
            panic!("chromedriver did not say which port it listens on: {other:?}")
        }
    }
}

/// Debian's Chromium itself, not its `/usr/bin/chromium` wrapper script; `None`: chromedriver's
/// own search.
fn chromium_binary() -> Option<&'static str> {
    ["/usr/lib/chromium/chromium", "/usr/bin/chromium"]
        .into_iter()
        .find(|p| Path::new(p).exists())
}

/// axe-core's script, or a panic saying how to install it.
fn axe_source() -> String {
    std::fs::read_to_string(AXE).unwrap_or_else(|e| {
        panic!(
            "axe-core is not installed ({}: {e}): run `npm ci --prefix tests/browser` \
             in the repository (.ci/run does)",
            Path::new(AXE).display()
        )
    })
}

/// `target/console-screenshots`: in the `target` folder the test binary was built in (the
/// nearest folder above it that holds cargo's `CACHEDIR.TAG` or is named `target`), or in the
/// system's temporary folder when there is none.
pub fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .find(|d| d.join("CACHEDIR.TAG").is_file() || d.file_name() == Some("target".as_ref()))
        .map(|target| target.join("console-screenshots"))
        .unwrap_or_else(|| std::env::temp_dir().join("console-screenshots"))
}

/// `s` as an XPath 1.0 string literal (which has no escapes: a string holding both quote
/// marks is built with `concat()`).
fn xpath_literal(s: &str) -> String {
    if !s.contains('\'') {
        format!("'{s}'")
    } else if !s.contains('"') {
        format!("\"{s}\"")
    } else {
        let parts: Vec<String> = s.split('\'').map(|p| format!("'{p}'")).collect();
        format!("concat({})", parts.join(", \"'\", "))
    }
}

#[cfg(test)]
mod tests {
    use super::xpath_literal;

    #[test]
    fn xpath_literals_quote_either_mark() {
        assert_eq!(xpath_literal("Sign in"), "'Sign in'");
        assert_eq!(xpath_literal("Pupil's name"), "\"Pupil's name\"");
        assert_eq!(xpath_literal(r#"a'b"c"#), r#"concat('a', "'", 'b"c')"#);
    }
}
