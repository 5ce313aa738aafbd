//! A minimal W3C WebDriver client: Debian's `chromedriver` driving headless Chromium.
//!
//! WebDriver is JSON over HTTP/1.1, and a test needs a dozen of its commands (open a URL,
//! find an element, type, click, read text, run a script, take a screenshot), so this client
//! is a few functions over `std::net::TcpStream` rather than an async WebDriver crate and its
//! dependency tree. Every failure panics with the driver's message.

#![allow(
    dead_code,
    unreachable_pub,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::{
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::{Value, json};

/// The key WebDriver's element reference is stored under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Enter key, for `type_text`.
pub const ENTER: &str = "\u{E007}";

/// The first of `candidates` that exists, or the program found on `PATH`.
fn find_program(env: &str, names: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    for dir in std::env::split_paths(&path).chain([PathBuf::from("/usr/bin")]) {
        for name in names {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    None
}

/// One HTTP/1.1 exchange with the driver; the status and the JSON body. The body is read by
/// its `Content-Length` (or chunk by chunk): chromedriver may keep the connection open.
fn http(port: u16, method: &str, path: &str, body: Option<&Value>) -> Option<(u16, Value)> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(120)))
        .ok()?;
    let body = body.map(Value::to_string).unwrap_or_default();
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).ok()?;
    stream.write_all(body.as_bytes()).ok()?;
    let mut response = Vec::new();
    let mut buffer = [0u8; 64 * 1024];
    loop {
        let complete = response
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .and_then(|split| {
                let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
                let payload = &response[split + 4..];
                if head.contains("transfer-encoding: chunked") {
                    payload.ends_with(b"0\r\n\r\n").then(|| dechunk(payload))
                } else {
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap_or(0));
                    (payload.len() >= length).then(|| payload[..length].to_vec())
                }
                .map(|payload| (head, payload))
            });
        if let Some((head, payload)) = complete {
            let status = head.split(' ').nth(1)?.parse().ok()?;
            return Some((
                status,
                serde_json::from_slice(&payload).unwrap_or(Value::Null),
            ));
        }
        let n = stream.read(&mut buffer).ok()?;
        if n == 0 {
            return None;
        }
        response.extend_from_slice(&buffer[..n]);
    }
}

/// The payload of a chunked body (complete, ending with the zero-length chunk).
fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let line = String::from_utf8_lossy(&data[..line_end]).into_owned();
        let size =
            usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16).unwrap_or(0);
        let start = line_end + 2;
        if size == 0 || data.len() < start + size + 2 {
            break;
        }
        out.extend_from_slice(&data[start..start + size]);
        data = &data[start + size + 2..];
    }
    out
}

/// A running chromedriver with one headless Chromium session; both end on drop.
pub struct Browser {
    port: u16,
    session: String,
    driver: Child,
    profile: tempfile::TempDir,
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session with a `width` x `height` window.
    ///
    /// # Panics
    /// When chromium or chromedriver is missing: the test fails (it never skips) and says
    /// what to install.
    pub fn start(width: u32, height: u32) -> Self {
        let hint = "install Debian's `chromium` and `chromium-driver` (scripts/deps does: \
                    `apt-get install -y chromium chromium-driver`), or set STS_CHROMIUM and \
                    STS_CHROMEDRIVER to their paths";
        let driver_path = find_program("STS_CHROMEDRIVER", &["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver not found: {hint}"));
        let chromium = find_program("STS_CHROMIUM", &["chromium", "chromium-browser"])
            .unwrap_or_else(|| panic!("chromium not found: {hint}"));
        let port = super::server::free_port();
        let driver = Command::new(&driver_path)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}; {hint}", driver_path.display()));
        let profile = tempfile::tempdir().unwrap();
        let mut browser = Self {
            port,
            session: String::new(),
            driver,
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some((200, status)) = http(port, "GET", "/status", None)
                && status["value"]["ready"] == true
            {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready on port {port}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let args = [
            "--headless=new".to_owned(),
            // Tests run as root in containers, where Chromium's sandbox cannot start.
            "--no-sandbox".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--disable-gpu".to_owned(),
            // Nothing but the server under test: no updates, sync or first-run calls home.
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--disable-default-apps".to_owned(),
            "--disable-extensions".to_owned(),
            "--no-first-run".to_owned(),
            "--hide-scrollbars".to_owned(),
            "--lang=en-US".to_owned(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", browser.profile.path().display()),
        ];
        let session = browser.raw(
            "POST",
            "/session",
            Some(&json!({"capabilities": {"alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {"binary": chromium, "args": args},
            }}})),
        );
        browser.session = session["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session from chromedriver: {session}"))
            .to_owned();
        browser.call(
            "POST",
            "/timeouts",
            Some(&json!({"implicit": 5000, "pageLoad": 30000})),
        );
        browser
    }

    fn raw(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (status, reply) = http(self.port, method, path, body)
            .unwrap_or_else(|| panic!("chromedriver did not answer {method} {path}"));
        assert!(
            status == 200,
            "WebDriver {method} {path}: {status} {}",
            reply["value"]
        );
        reply["value"].clone()
    }

    /// A command on this session.
    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.raw(method, &format!("/session/{}{path}", self.session), body)
    }

    pub fn goto(&self, url: &str) {
        self.call("POST", "/url", Some(&json!({"url": url})));
    }

    pub fn url(&self) -> String {
        self.call("GET", "/url", None).as_str().unwrap().to_owned()
    }

    pub fn title(&self) -> String {
        self.call("GET", "/title", None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The element matching a CSS selector (waiting up to the implicit timeout).
    pub fn find(&self, css: &str) -> String {
        let found = self.call(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT].as_str().unwrap().to_owned()
    }

    /// Every element matching a CSS selector.
    pub fn find_all(&self, css: &str) -> Vec<String> {
        let found = self.call(
            "POST",
            "/elements",
            Some(&json!({"using": "css selector", "value": css})),
        );
        found
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e[ELEMENT].as_str().unwrap().to_owned())
            .collect()
    }

    pub fn text(&self, element: &str) -> String {
        self.call("GET", &format!("/element/{element}/text"), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The element's computed CSS property.
    pub fn css(&self, element: &str, property: &str) -> String {
        self.call("GET", &format!("/element/{element}/css/{property}"), None)
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Types into an element, as keys (`ENTER` submits a form).
    pub fn type_text(&self, element: &str, text: &str) {
        self.call(
            "POST",
            &format!("/element/{element}/value"),
            Some(&json!({"text": text})),
        );
    }

    pub fn click(&self, element: &str) {
        self.call(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        );
    }

    /// Runs a script in the page; its return value.
    pub fn script(&self, script: &str) -> Value {
        self.call(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": []})),
        )
    }

    /// A PNG screenshot of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine as _;
        let encoded = self.call("GET", "/screenshot", None);
        base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap())
            .unwrap()
    }

    /// Waits until the page's `h1` reads `heading` (a navigation finished); panics with the
    /// page's text otherwise.
    pub fn wait_for_heading(&self, heading: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let h1 = self
                .script("const h = document.querySelector('h1'); return h ? h.textContent : '';");
            if h1.as_str() == Some(heading) {
                return;
            }
            if Instant::now() > deadline {
                let body = self.script("return document.body ? document.body.innerText : '';");
                panic!(
                    "expected the heading {heading:?} at {}, found {h1}; the page:\n{}",
                    self.url(),
                    body.as_str().unwrap_or("")
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = http(
                self.port,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Writes `png` to `path` (creating its directory).
pub fn save(path: &Path, png: &[u8]) {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).unwrap();
    }
    std::fs::write(path, png).unwrap();
}
