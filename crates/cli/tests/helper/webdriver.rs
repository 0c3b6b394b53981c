//! Headless Chromium driven over WebDriver (Debian's `chromium` and
//! `chromium-driver`): chromedriver on a port the OS gives, a fresh
//! profile, and cleanup that leaves no browser behind.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::{wait_until, DEADLINE};

/// The key of an element reference in W3C WebDriver answers.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Whether chromium and chromedriver are installed.
pub fn available() -> bool {
    ["chromium", "chromedriver"].iter().all(|tool| {
        Command::new(tool)
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

/// One browser session.
pub struct Browser {
    driver: Child,
    port: u16,
    session: String,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width`x`height`.
    pub fn open(width: u32, height: u32) -> Self {
        let mut driver = Command::new("chromedriver")
            .arg("--port=0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .process_group(0)
            .spawn()
            .unwrap();
        let stdout = driver.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + DEADLINE;
        let port = loop {
            assert!(
                Instant::now() < deadline,
                "chromedriver never said its port"
            );
            let line = lines.next().expect("chromedriver exited").unwrap();
            if let Some(rest) = line.split("started successfully on port ").nth(1) {
                break rest.trim_end_matches('.').trim().parse().unwrap();
            }
        };
        // Keep draining its output so that it never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        let profile = tempfile::Builder::new()
            .prefix("pmd-chromium-")
            .tempdir()
            .unwrap();
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-dev-shm-usage".into(),
            format!("--user-data-dir={}", profile.path().display()),
            format!("--window-size={width},{height}"),
        ];
        let mut browser = Browser {
            driver,
            port,
            session: String::new(),
            _profile: profile,
        };
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args},
        }}});
        let created = browser.call("POST", "/session", &capabilities);
        browser.session = created["sessionId"].as_str().unwrap().to_string();
        browser
    }

    /// One WebDriver command; its `value`.
    fn call(&self, method: &str, path: &str, body: &Value) -> Value {
        let body = if method == "GET" || method == "DELETE" {
            String::new()
        } else {
            body.to_string()
        };
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        // chromedriver may keep the connection open: read the head, then
        // exactly Content-Length bytes.
        let mut reader = BufReader::new(stream);
        let mut length = 0;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body = String::from_utf8_lossy(&body);
        let value: Value = serde_json::from_str(&body)
            .unwrap_or_else(|err| panic!("chromedriver said ({err}): {body}"));
        if let Some(error) = value["value"].get("error") {
            panic!(
                "WebDriver {method} {path}: {error}: {}",
                value["value"]["message"]
            );
        }
        value["value"].clone()
    }

    fn command(&self, method: &str, path: &str, body: Value) -> Value {
        self.call(method, &format!("/session/{}{path}", self.session), &body)
    }

    /// Navigates to `url`.
    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", json!({ "url": url }));
    }

    /// Sets the window size.
    pub fn resize(&self, width: u32, height: u32) {
        self.command(
            "POST",
            "/window/rect",
            json!({"width": width, "height": height}),
        );
    }

    /// Runs `script` (a function body) in the page; its return value.
    pub fn script(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Waits until `selector` matches a visible element; its reference.
    pub fn find(&self, selector: &str) -> String {
        let check = format!(
            "const e = document.querySelector({}); return !!e && e.offsetParent !== null;",
            json!(selector)
        );
        assert!(
            wait_until(DEADLINE, || self.script(&check) == json!(true)),
            "no visible {selector}"
        );
        let found = self.command(
            "POST",
            "/element",
            json!({"using": "css selector", "value": selector}),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element in {found}"))
            .to_string()
    }

    /// Clicks the element `selector` matches.
    pub fn click(&self, selector: &str) {
        let element = self.find(selector);
        self.command("POST", &format!("/element/{element}/click"), json!({}));
    }

    /// Types `text` into the element `selector` matches.
    pub fn type_into(&self, selector: &str, text: &str) {
        let element = self.find(selector);
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            json!({ "text": text }),
        );
    }

    /// The text of the element `selector` matches ("" when none).
    pub fn text(&self, selector: &str) -> String {
        let script = format!(
            "const e = document.querySelector({}); return e ? e.textContent : '';",
            json!(selector)
        );
        self.script(&script)
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// A PNG of the viewport.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let data = self.command("GET", "/screenshot", Value::Null);
        base64::engine::general_purpose::STANDARD
            .decode(data.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let path = format!("/session/{}", self.session);
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.call("DELETE", &path, &Value::Null)
            }));
        }
        // chromedriver leads its group; whatever it started goes with it.
        super::kill(self.driver.id(), libc::SIGTERM);
        // SAFETY: kill(2) has no memory-safety requirements.
        unsafe {
            libc::kill(-(self.driver.id() as i32), libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}
