//! The dashboard at `/` in headless Chromium over WebDriver: it asks for
//! the key, shows the live table, and a confirmed restart shows the new pid.
//! With `PMDAEMON_SCREENSHOT=path.png` it also saves a screenshot of a
//! 4-instance cluster (how `docs/dashboard.png` is made).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helper;

use helper::web::{serve, skip_without, tcp_get};
use helper::webdriver::{self, Browser};
use helper::{wait_until, Fixture, DEADLINE};

/// A cluster member that does a little work and says so in its log, so
/// that the sparklines and the log tail have something to show.
const BUSY_APP: &str = r#"
import os, random, sys, time
keep = []
routes = ["/api/users", "/api/orders", "/health", "/api/cart", "/login"]
while True:
    start, budget = time.time(), random.random() * 0.08
    while time.time() - start < budget:
        pass
    keep.append(bytearray(random.randint(1, 400) * 1024))
    keep = keep[-random.randint(10, 60):]
    status = random.choice([200, 200, 200, 201, 304, 404])
    print(f'{random.choice(["GET", "POST"])} {random.choice(routes)} {status} {random.randint(2, 80)}ms pid={os.getpid()}', flush=True)
    time.sleep(0.15)
"#;

#[test]
fn the_page_is_served_without_the_key_and_the_data_is_not() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web"]);
    let port = helper::web::free_port();
    // A key the user gave: every route but the page's files needs it.
    std::fs::write(fx.work().join("key"), "k-given-by-the-user\n").unwrap();
    fx.ok(&["web", "--port", &port.to_string(), "--api-key-file", "key"]);
    for (path, kind) in [
        ("/", "text/html"),
        ("/dashboard.js", "text/javascript"),
        ("/dashboard.css", "text/css"),
        ("/favicon.svg", "image/svg+xml"),
    ] {
        let (status, head, body) = tcp_get(port, path, "");
        assert_eq!(status, 200, "{path}: {head}");
        assert!(head.to_lowercase().contains(kind), "{path}: {head}");
        assert!(!body.is_empty());
    }
    let (_, _, page) = tcp_get(port, "/", "");
    // Nothing is fetched from elsewhere.
    assert!(
        !page.contains("http://") && !page.contains("https://"),
        "{page}"
    );
    // (`/ws` takes its key in its first message: tested in events.rs.)
    for guarded in ["/api/processes", "/openapi.json"] {
        let (status, _, body) = tcp_get(port, guarded, "");
        assert_eq!(status, 401, "{guarded}: {body}");
    }
    let (status, _, document) =
        tcp_get(port, "/openapi.json", "X-API-Key: k-given-by-the-user\r\n");
    assert_eq!(status, 200);
    let document: serde_json::Value = serde_json::from_str(&document).unwrap();
    assert_eq!(document["openapi"], "3.1.0");
    assert!(document["paths"]["/api/processes/{target}/restart"]["post"].is_object());
}

/// The pid the page shows for `name` ("" until it shows one).
fn shown_pid(browser: &Browser, name: &str) -> String {
    browser.text(&format!("tr.instance[data-name=\"{name}\"] td.pid"))
}

#[test]
fn a_confirmed_restart_shows_the_new_pid() {
    if skip_without("chromium and chromedriver", webdriver::available()) {
        return;
    }
    let fx = Fixture::new();
    let script = fx.work().join("busy.py");
    std::fs::write(&script, BUSY_APP).unwrap();
    let ports = helper::free_ports(4);
    let ports = format!("{ports}-{}", ports + 3);
    fx.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "api",
        "--instances",
        "4",
        "--port",
        &ports,
    ]);
    let (port, key) = serve(&fx);
    let browser = Browser::open(1280, 800);
    browser.goto(&format!("http://127.0.0.1:{port}/"));

    // The key is asked for, then the table fills and goes live.
    browser.type_into("#key-input", &key);
    browser.click("#key-save");
    let old = fx
        .wait_for("api-1", "online", |p| p.pid.is_some())
        .pid
        .unwrap();
    assert!(
        wait_until(DEADLINE, || shown_pid(&browser, "api-1") == old.to_string()),
        "the page never showed pid {old}: {:?}",
        shown_pid(&browser, "api-1")
    );
    assert!(wait_until(DEADLINE, || browser.text("#conn-text") == "live"));

    // Restart, confirm: the page shows the new pid, the daemon's.
    browser.click("tr.instance[data-name=\"api-1\"] button.restart");
    browser.click("#confirm-yes");
    let mut shown = String::new();
    assert!(
        wait_until(DEADLINE, || {
            shown = shown_pid(&browser, "api-1");
            !shown.is_empty() && shown != "–" && shown != old.to_string()
        }),
        "the page still shows {shown:?} after the restart"
    );
    let new = fx.get("api-1").pid.unwrap();
    assert_ne!(new, old);
    assert!(
        wait_until(DEADLINE, || shown_pid(&browser, "api-1") == new.to_string()),
        "the page shows {:?}, the daemon says {new}",
        shown_pid(&browser, "api-1")
    );

    if let Ok(path) = std::env::var("PMDAEMON_SCREENSHOT") {
        screenshot(&browser, &path);
    }
}

/// Selects an instance, lets the sparklines fill, and saves the viewport.
fn screenshot(browser: &Browser, path: &str) {
    browser.click("tr.instance[data-name=\"api-2\"] td.name");
    let filled = "return [...document.querySelectorAll('.metric.cpu polyline')]\
        .every(p => p.getAttribute('points').split(' ').length >= 40);";
    assert!(wait_until(std::time::Duration::from_secs(90), || {
        browser.script(filled) == serde_json::json!(true)
    }));
    std::fs::write(path, browser.screenshot()).unwrap();
    browser.resize(390, 844);
    let phone = path.replace(".png", "-phone.png");
    std::fs::write(phone, browser.screenshot()).unwrap();
    browser.resize(1280, 800);
}
