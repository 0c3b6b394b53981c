//! `pmdaemon web`: the API on TCP, its key, and errors as JSON on both doors.
//! Each test serves on a loopback port the OS gave out a moment before.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helper;

use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};

use helper::{wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::{ProcessDetail, ProcessInfo};
use pmdaemon_core::web::WebStatus;

/// A port nothing listens on now, from the OS.
fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// A request of a table: method, path, headers, body, expected status.
type Case<'a> = (&'a str, &'a str, Vec<(&'a str, &'a str)>, &'a str, u16);

/// An HTTP answer: status and body.
struct Answer {
    status: u16,
    body: String,
}

impl Answer {
    /// The `error` of a JSON error body (fails when the body is not one).
    fn error(&self) -> String {
        let value: serde_json::Value = serde_json::from_str(&self.body)
            .unwrap_or_else(|err| panic!("not JSON ({err}): {:?}", self.body));
        value["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no error in {}", self.body))
            .to_string()
    }
}

/// `method path` to `host:port` with `headers` and `body`, as curl would.
fn request(
    addr: impl std::net::ToSocketAddrs,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Option<Answer> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(DEADLINE)).ok()?;
    let mut head = format!("{method} {path} HTTP/1.0\r\nHost: localhost\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
    stream.write_all(head.as_bytes()).ok()?;
    // A server that refuses a body (too large) may answer and close before
    // all of it is written: the answer is what counts.
    let _ = stream.write_all(body);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = answer.split_once("\r\n\r\n")?;
    Some(Answer {
        status: head.split_whitespace().nth(1)?.parse().ok()?,
        body: body.to_string(),
    })
}

/// Like [`request`] to `localhost:port`, which must answer.
fn send(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Answer {
    request(("localhost", port), method, path, headers, body.as_bytes())
        .unwrap_or_else(|| panic!("no answer to {method} {path} on port {port}"))
}

/// `GET path` on localhost:port, as the seed's `curl` lines do.
fn get(port: u16, path: &str) -> Answer {
    send(port, "GET", path, &[], "")
}

/// Whether anything accepts connections on 127.0.0.1:port.
fn listening(port: u16) -> bool {
    TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_ok()
}

fn web_status(fx: &Fixture) -> WebStatus {
    serde_json::from_str(&fx.ok(&["web", "--status", "--json"])).unwrap()
}

/// A daemon with `web-app-0` and `web-app-1` (with a plain and a secret
/// env value) serving the API on a fresh port; the port and the key.
fn serving(fx: &Fixture) -> (u16, String) {
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "web-app",
        "--instances",
        "2",
        "--env",
        "GREETING=hello",
        "--env",
        "DB_PASSWORD=hunter2",
    ]);
    let port = free_port();
    let out = fx.ok(&["web", "--port", &port.to_string()]);
    let key = std::fs::read_to_string(fx.home().join("api-key"))
        .unwrap()
        .trim()
        .to_string();
    assert!(out.contains(&key), "the generated key is printed: {out}");
    (port, key)
}

#[test]
fn the_seed_curl_lines_work_as_written() {
    let fx = Fixture::new();
    let (port, key) = serving(&fx);
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(fx.home().join("api-key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);

    let list = get(port, "/api/processes");
    assert_eq!(list.status, 200, "{}", list.body);
    let list: Vec<ProcessInfo> = serde_json::from_str(&list.body).unwrap();
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["web-app-0", "web-app-1"]);

    let one = get(port, "/api/processes/web-app-1");
    assert_eq!(one.status, 200, "{}", one.body);
    let one: Vec<ProcessDetail> = serde_json::from_str(&one.body).unwrap();
    assert_eq!(one[0].info.name, "web-app-1");
    // Without the key the environment is hidden; with it, only secrets are.
    assert_eq!(one[0].config.env["GREETING"], "[redacted]");
    let keyed = send(
        port,
        "GET",
        "/api/processes/web-app-1",
        &[("X-API-Key", &key)],
        "",
    );
    let keyed: Vec<ProcessDetail> = serde_json::from_str(&keyed.body).unwrap();
    assert_eq!(keyed[0].config.env["GREETING"], "hello");
    assert_eq!(keyed[0].config.env["DB_PASSWORD"], "[redacted]");

    // `localhost` may resolve to ::1 first: both answer.
    let v4 = request((Ipv4Addr::LOCALHOST, port), "GET", "/health", &[], b"").unwrap();
    assert_eq!((v4.status, v4.body.as_str()), (200, r#"{"status":"ok"}"#));
    if TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok() {
        let v6 = request(
            (Ipv6Addr::LOCALHOST, port),
            "GET",
            "/api/processes",
            &[],
            b"",
        );
        assert_eq!(v6.map(|a| a.status), Some(200));
    }

    // A second `web` keeps the key and does not print it again.
    let again = fx.ok(&["web", "--port", &port.to_string()]);
    assert!(!again.contains(&key), "{again}");
    assert_eq!(get(port, "/api/processes").status, 200);
}

#[test]
fn every_mutation_needs_the_key_and_nothing_changes_without_it() {
    let fx = Fixture::new();
    let (port, key) = serving(&fx);
    let before: Vec<_> = fx.list().into_iter().map(|p| (p.name, p.pid)).collect();
    let start = r#"{"config": {"name": "intruder", "script": "sleep", "args": ["300"]}}"#;
    let apply = r#"{"apps": [{"name": "intruder", "script": "sleep", "args": ["300"]}]}"#;
    let guarded: [(&str, &str, &str); 14] = [
        ("POST", "/api/processes", start),
        ("POST", "/api/apply", apply),
        ("POST", "/api/processes/web-app/start", ""),
        ("POST", "/api/processes/web-app/stop", ""),
        ("POST", "/api/processes/web-app/restart", ""),
        ("POST", "/api/processes/web-app/reload", ""),
        (
            "POST",
            "/api/processes/web-app/scale",
            r#"{"instances": 1}"#,
        ),
        ("DELETE", "/api/processes/web-app", ""),
        ("POST", "/api/processes/web-app/flush", ""),
        ("POST", "/api/flush", ""),
        ("POST", "/api/daemon/kill", ""),
        ("GET", "/api/logs", ""),
        ("GET", "/api/processes/web-app/logs", ""),
        ("GET", "/api/web", ""),
    ];
    let json = ("Content-Type", "application/json");
    let wrong = "0".repeat(key.len());
    let bearer_wrong = format!("Bearer {wrong}");
    for (method, path, body) in guarded {
        for headers in [
            vec![json],
            vec![json, ("X-API-Key", wrong.as_str())],
            vec![json, ("Authorization", bearer_wrong.as_str())],
        ] {
            let answer = send(port, method, path, &headers, body);
            assert_eq!(
                answer.status, 401,
                "{method} {path} {headers:?}: {}",
                answer.body
            );
            assert!(answer.error().contains("key"), "{}", answer.body);
        }
    }
    let after: Vec<_> = fx.list().into_iter().map(|p| (p.name, p.pid)).collect();
    assert_eq!(after, before);
    assert!(fx.daemon_pid().is_some());

    // With the key, in either header, the same requests work.
    let bearer = format!("Bearer {key}");
    let restarted = send(
        port,
        "POST",
        "/api/processes/web-app-0/restart",
        &[("Authorization", &bearer)],
        "",
    );
    assert_eq!(restarted.status, 200, "{}", restarted.body);
    let logs = send(port, "GET", "/api/logs", &[("X-API-Key", &key)], "");
    assert_eq!(logs.status, 200, "{}", logs.body);
    assert_eq!(fx.get("web-app-0").restarts, 1);
}

#[test]
fn a_given_key_guards_reads_too() {
    let fx = Fixture::new();
    let port = free_port();
    let key = "a-key-given-by-the-user-0123";
    let out = fx.ok(&["web", "--port", &port.to_string(), "--api-key", key]);
    assert!(!out.contains(key), "a given key is not echoed: {out}");
    assert_eq!(get(port, "/api/processes").status, 401);
    let keyed = send(port, "GET", "/api/processes", &[("X-API-Key", key)], "");
    assert_eq!((keyed.status, keyed.body.as_str()), (200, "[]"));
    assert_eq!(get(port, "/health").status, 200);

    let file = fx.work().join("key");
    std::fs::write(&file, "another-key-from-a-file-456\n").unwrap();
    fx.ok(&["web", "--port", &port.to_string(), "--api-key-file", "key"]);
    let old = send(port, "GET", "/api/processes", &[("X-API-Key", key)], "");
    assert_eq!(old.status, 401);
    let new = send(
        port,
        "GET",
        "/api/processes",
        &[("Authorization", "Bearer another-key-from-a-file-456")],
        "",
    );
    assert_eq!(new.status, 200, "{}", new.body);
}

#[test]
fn a_non_loopback_host_without_a_key_is_refused() {
    let fx = Fixture::new();
    for host in ["0.0.0.0", "::", "192.0.2.1"] {
        let err = fx.fails(&["web", "--host", host]);
        assert!(
            err.contains("refusing") && err.contains("--api-key"),
            "{err}"
        );
    }
    let err = fx.fails(&["web", "--api-key", "short"]);
    assert!(err.contains("too short"), "{err}");
    assert!(fx.daemon_pid().is_none(), "refused before anything starts");
    assert!(!fx.home().join("web.json").exists());
    assert!(!fx.home().join("api-key").exists());
}

#[test]
fn framework_rejections_are_json_on_both_doors() {
    let fx = Fixture::new();
    let (port, key) = serving(&fx);
    let auth = ("X-API-Key", key.as_str());
    let json = ("Content-Type", "application/json");
    let cases: [Case; 6] = [
        ("GET", "/no/such/route", vec![auth], "", 404),
        ("PUT", "/api/processes", vec![auth], "", 405),
        ("GET", "/api/flush", vec![auth], "", 405),
        ("POST", "/api/processes", vec![auth, json], "{not json", 400),
        (
            "POST",
            "/api/processes/web-app/scale",
            vec![auth, json],
            r#"{"instances": "x"}"#,
            422,
        ),
        (
            "POST",
            "/api/processes",
            vec![auth, ("Content-Type", "text/plain")],
            "{}",
            415,
        ),
    ];
    for (method, path, headers, body, status) in &cases {
        let answer = send(port, method, path, headers, body);
        assert_eq!(answer.status, *status, "{method} {path}: {}", answer.body);
        assert!(!answer.error().is_empty());
        // The Unix socket answers the same way.
        let head: String = headers
            .iter()
            .map(|(name, value)| format!("{name}: {value}\r\n"))
            .collect();
        let raw = helper::raw_request(&fx, method, path, &head, body);
        assert!(raw.starts_with(&format!("HTTP/1.1 {status}")), "{raw}");
        assert!(raw.contains(r#"{"error":"#), "{raw}");
    }
    // One byte over the limit.
    let big = vec![b' '; 1024 * 1024 + 1];
    let answer = request(
        ("localhost", port),
        "POST",
        "/api/processes",
        &[auth, json],
        &big,
    )
    .expect("an answer to a body too large");
    assert_eq!(answer.status, 413, "{}", answer.body);
    assert!(!answer.error().is_empty());
    assert_eq!(fx.list().len(), 2);
}

#[test]
fn status_and_stop() {
    let fx = Fixture::new();
    let status = web_status(&fx);
    assert!(status.settings.is_none() && status.listening.is_empty());
    let (port, _) = serving(&fx);
    let text = fx.ok(&["web", "--status"]);
    assert!(text.contains(&format!("http://127.0.0.1:{port}")), "{text}");
    let status = web_status(&fx);
    assert_eq!(status.settings.unwrap().port, port);
    assert!(status
        .listening
        .contains(&SocketAddr::from((Ipv4Addr::LOCALHOST, port))));

    let text = fx.ok(&["web", "--stop"]);
    assert!(text.contains("off"), "{text}");
    assert!(
        !listening(port),
        "the port is released by the time --stop returns"
    );
    assert!(!fx.home().join("web.json").exists());
    assert!(web_status(&fx).settings.is_none());
    // The socket works on, and the next `web` serves again on the same port.
    assert_eq!(fx.list().len(), 2);
    fx.ok(&["web", "--port", &port.to_string()]);
    assert_eq!(get(port, "/api/processes").status, 200);
}

#[test]
fn the_setting_survives_the_daemon() {
    let fx = Fixture::new();
    let (port, _) = serving(&fx);
    fx.ok(&["kill"]);
    assert!(!listening(port), "the port closes with the daemon");
    let status = web_status(&fx);
    assert_eq!(status.settings.map(|s| s.port), Some(port));
    // The next command starts a daemon, which serves the setting again.
    fx.ok(&["list"]);
    assert!(
        wait_until(DEADLINE, || request(
            ("localhost", port),
            "GET",
            "/health",
            &[],
            b""
        )
        .is_some_and(|a| a.status == 200)),
        "the web API did not come back on {port}"
    );
    let list: Vec<ProcessInfo> = serde_json::from_str(&get(port, "/api/processes").body).unwrap();
    assert_eq!(list.len(), 2);
}

#[test]
fn a_port_in_use_is_refused_and_the_previous_setting_kept() {
    let fx = Fixture::new();
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let busy = taken.local_addr().unwrap().port();
    let err = fx.fails(&["web", "--port", &busy.to_string()]);
    assert!(err.contains(&format!("port {busy}")), "{err}");
    assert!(!fx.home().join("web.json").exists());
    assert!(
        !fx.home().join("api-key").exists(),
        "a generated key nobody saw is not kept"
    );

    let (port, _) = serving(&fx);
    fx.fails(&["web", "--port", &busy.to_string()]);
    let status = web_status(&fx);
    assert_eq!(status.settings.map(|s| s.port), Some(port));
    assert_eq!(get(port, "/api/processes").status, 200);
}
