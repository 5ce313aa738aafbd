//! The web console end to end: the real `sts serve` binary, driven by headless Chromium
//! through chromedriver (Debian's `chromium` and `chromium-driver`; the test fails, never
//! skips, without them). An operator signs in, finds the meter, vends credit, reads the token
//! in groups of four, reprints it, decodes it and signs out - by keyboard where a person
//! could.
//!
//! `STS_CONSOLE_SCREENSHOT=docs/console.png` also saves the vend result page as a PNG (what
//! `scripts/console-screenshot` does for the README).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test helpers fail loudly

#[path = "support/server.rs"]
mod server;
#[path = "support/webdriver.rs"]
mod webdriver;

use std::time::Instant;

use serde_json::json;
use server::{Dir, Server, api_key, keys, request};
use webdriver::{Browser, ENTER};

const PAN: &str = "600727000000000009";

/// True for `dddd dddd dddd dddd dddd`.
fn five_groups_of_four(text: &str) -> bool {
    let groups: Vec<&str> = text.split(' ').collect();
    groups.len() == 5
        && groups
            .iter()
            .all(|g| g.len() == 4 && g.bytes().all(|b| b.is_ascii_digit()))
}

#[test]
fn an_operator_signs_in_vends_reprints_decodes_and_signs_out_in_chromium() {
    let started = Instant::now();
    let dir = Dir::new("sts-console");
    let sgc = keys(&dir.0);
    let admin = api_key(&dir.0, "admin");
    let vendor = api_key(&dir.0, "vendor");
    let server = Server::start(&dir.0);
    let port = server.port;
    let base = format!("http://127.0.0.1:{port}");
    let meter = json!({"pan": PAN, "sgc": sgc, "ti": "01", "krn": "1", "kt": "2", "ea": "07", "dkga": "04", "base_date": "2014"});
    let (status, body) = request(port, "POST", "/v1/meters", Some(&admin), Some(&meter)).unwrap();
    assert_eq!(status, 201, "{body}");

    let browser = Browser::start(1000, 740);
    let setup = started.elapsed();

    // The server's root leads to the sign-in form.
    browser.goto(&format!("{base}/"));
    browser.wait_for_heading("Sign in");
    assert_eq!(browser.url(), format!("{base}/console/sign-in"));
    assert_eq!(browser.title(), "Sign in - STS console");

    // Sign in by keyboard: type the key, press Enter.
    let key_field = browser.find("#api_key");
    assert_eq!(
        browser.css(&key_field, "display"),
        "inline-block",
        "the stylesheet did not load"
    );
    browser.type_text(&key_field, &format!("{vendor}{ENTER}"));
    browser.wait_for_heading("Find a meter");
    assert!(browser.text(&browser.find(".who")).contains("(vendor)"));

    // Find the meter by its PAN.
    browser.type_text(&browser.find("#pan"), &format!("{PAN}{ENTER}"));
    browser.wait_for_heading(&format!("Meter {PAN}"));
    assert_eq!(browser.url(), format!("{base}/console/meters/{PAN}"));

    // Every field has a label, and Tab first reaches the skip link.
    let unlabelled = browser.script(
        "return [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]\
         .filter(e => e.labels.length === 0).map(e => e.name)",
    );
    assert_eq!(unlabelled, json!([]), "fields without a label");
    let body = browser.find("body");
    browser.type_text(&body, "\u{E004}");
    let focused = browser.script("return document.activeElement.textContent");
    assert_eq!(focused, json!("Skip to content"));

    // Vend 25 kWh: the token in five groups of four, large and monospaced.
    browser.type_text(&browser.find("#amount"), &format!("25{ENTER}"));
    browser.wait_for_heading("Token issued");
    let tokens = browser.find_all("p.token");
    assert_eq!(tokens.len(), 1);
    let shown = browser.text(&tokens[0]);
    assert!(five_groups_of_four(&shown), "token shown as {shown:?}");
    let size: f64 = browser
        .css(&tokens[0], "font-size")
        .trim_end_matches("px")
        .parse()
        .unwrap();
    assert!(size >= 32.0, "token font size {size}px");
    let family = browser.css(&tokens[0], "font-family");
    assert!(family.contains("monospace"), "token font {family}");
    let page = browser.text(&browser.find("main"));
    assert!(page.contains("25.0 kWh"), "{page}");

    // The page shows what the service stored.
    let url = browser.url();
    let request_id = url
        .strip_prefix(&format!("{base}/console/vends/"))
        .and_then(|rest| rest.strip_suffix("?issued=new"))
        .unwrap_or_else(|| panic!("result page at {url}"))
        .to_owned();
    let (status, stored) = request(
        port,
        "GET",
        &format!("/v1/vends/{request_id}"),
        Some(&admin),
        None,
    )
    .unwrap();
    assert_eq!(status, 200, "{stored}");
    let number = stored["tokens"][0]["number"].as_str().unwrap().to_owned();
    assert_eq!(shown.replace(' ', ""), number);
    let tid = stored["tid"].as_u64().unwrap();

    // Nothing came from another host: every resource is the server's own.
    let resources =
        browser.script("return performance.getEntriesByType('resource').map(e => e.name)");
    let resources = resources.as_array().unwrap();
    assert!(!resources.is_empty(), "no stylesheet or script loaded");
    for r in resources {
        assert!(
            r.as_str()
                .unwrap()
                .starts_with(&format!("{base}/console/static/")),
            "resource from elsewhere: {r}"
        );
    }

    let png = browser.screenshot();
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "not a screenshot"
    );
    if let Some(path) = std::env::var_os("STS_CONSOLE_SCREENSHOT") {
        let path = std::path::PathBuf::from(path);
        let path = if path.is_relative() {
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../..")
                .join(path)
        } else {
            path
        };
        webdriver::save(&path, &png);
    }

    // Reprint from the meter's history: the same token.
    browser.click(&browser.find(".actions a[href^='/console/meters/']"));
    browser.wait_for_heading(&format!("Meter {PAN}"));
    browser.click(&browser.find(&format!("a[href='/console/vends/{request_id}']")));
    browser.wait_for_heading("Reprint");
    let reprinted: Vec<String> = browser
        .find_all("p.token")
        .iter()
        .map(|t| browser.text(t))
        .collect();
    assert_eq!(reprinted, vec![shown.clone()]);

    // Decode what the customer reads out.
    browser.click(&browser.find("nav a[href='/console/decode']"));
    browser.wait_for_heading("Decode a token");
    browser.type_text(&browser.find("#pan"), PAN);
    browser.type_text(&browser.find("#token"), &format!("{shown}{ENTER}"));
    let deadline = Instant::now() + std::time::Duration::from_secs(20);
    while browser.find_all("#finding-heading").is_empty() {
        assert!(Instant::now() < deadline, "no decode result");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        browser.text(&browser.find("#finding-heading")),
        format!("Valid for meter {PAN}")
    );
    let explanation = browser.text(&browser.find(".explanation"));
    assert!(
        explanation.starts_with("transfer credit: 25.0 kWh of electricity")
            && explanation.contains(&format!("TID {tid} ")),
        "{explanation}"
    );
    let page = browser.text(&browser.find("main"));
    assert!(page.contains(&format!("yes: {request_id}")), "{page}");

    // Sign out: back at the sign-in form, and the console is closed.
    browser.click(&browser.find(".who button"));
    browser.wait_for_heading("Sign in");
    assert!(browser.text(&browser.find("main")).contains("Signed out."));
    browser.goto(&format!("{base}/console/meters/{PAN}"));
    browser.wait_for_heading("Sign in");

    // The server logged the vend at info, but never the token or the key.
    let logs = server.logs();
    assert!(
        logs.contains("console sign-in") && logs.contains(&request_id),
        "{logs}"
    );
    assert!(
        !logs.contains(&number) && !logs.contains(&shown),
        "token in the logs"
    );
    assert!(!logs.contains(&vendor[21..]), "API key secret in the logs");
    drop(browser);
    eprintln!(
        "console browser test: {:.1}s (setup {:.1}s)",
        started.elapsed().as_secs_f64(),
        setup.as_secs_f64()
    );
}
