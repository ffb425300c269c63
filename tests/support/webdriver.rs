//! A minimal W3C WebDriver client (https://www.w3.org/TR/webdriver2/) over
//! curl, driving Debian's headless Chromium through its chromedriver: just
//! what the lookup tests need, without a WebDriver crate to build.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// W3C WebDriver §12.1 web element identifier.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a free port and one headless Chromium session; both end
/// when dropped.
pub struct Browser {
    driver: Child,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// None when chromium or chromedriver is missing (a failure under CI).
    pub fn start() -> Option<Self> {
        if !(super::tools::require("chromium") && super::tools::require("chromedriver")) {
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while call("GET", &format!("{base}/status"), None).is_none() {
            assert!(Instant::now() < deadline, "chromedriver did not come up");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            &format!("--user-data-dir={}", profile.path().display()),
        ];
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}
        }}});
        let created = call("POST", &format!("{base}/session"), Some(capabilities))
            .expect("a WebDriver session");
        let id = created["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {created}"));
        Some(Self {
            driver,
            session: format!("{base}/session/{id}"),
            _profile: profile,
        })
    }

    fn command(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.session);
        let answer = call(method, &url, body).unwrap_or_else(|| panic!("{method} {path} failed"));
        assert!(
            answer["value"].get("error").is_none(),
            "{method} {path}: {answer}"
        );
        answer["value"].clone()
    }

    pub fn go(&self, url: &str) {
        self.command("POST", "/url", Some(json!({ "url": url })));
    }

    /// The first element matching the CSS `selector`.
    pub fn find(&self, selector: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            Some(json!({"using": "css selector", "value": selector})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("{selector}: {found}"))
            .to_owned()
    }

    pub fn text(&self, selector: &str) -> String {
        let element = self.find(selector);
        let text = self.command("GET", &format!("/element/{element}/text"), None);
        text.as_str().unwrap_or_default().to_owned()
    }

    /// The element's DOM property, e.g. a link's absolute `href`.
    pub fn property(&self, selector: &str, name: &str) -> String {
        let element = self.find(selector);
        let value = self.command("GET", &format!("/element/{element}/property/{name}"), None);
        value.as_str().unwrap_or_default().to_owned()
    }

    pub fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector);
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(json!({ "text": text })),
        );
    }

    pub fn click(&self, selector: &str) {
        let element = self.find(selector);
        self.command(
            "POST",
            &format!("/element/{element}/click"),
            Some(json!({})),
        );
    }

    pub fn url(&self) -> String {
        self.command("GET", "/url", None)
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }

    /// Resizes the window and saves a PNG of the viewport to `path`.
    pub fn screenshot(&self, width: u32, height: u32, path: &std::path::Path) {
        use base64::Engine;
        self.command(
            "POST",
            "/window/rect",
            Some(json!({"width": width, "height": height})),
        );
        let png = self.command("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(png.as_str().unwrap())
            .unwrap();
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, png).unwrap();
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = call("DELETE", &self.session, None);
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// One WebDriver call with curl: the JSON answer, None when unreachable.
fn call(method: &str, url: &str, body: Option<Value>) -> Option<Value> {
    let mut command = Command::new("curl");
    command.args(["-s", "--max-time", "60", "-X", method, url]);
    if let Some(body) = body {
        command.args([
            "-H",
            "Content-Type: application/json",
            "-d",
            &body.to_string(),
        ]);
    }
    let out = command.output().ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}
