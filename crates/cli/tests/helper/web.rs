//! The TCP door in tests: a port from the OS, `pmdaemon web` on it, its key.

use std::net::{Ipv4Addr, TcpListener};

use super::Fixture;

/// A port nothing listens on now, from the OS.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    listener.local_addr().unwrap().port()
}

/// Serves the API of `fx`'s daemon on a fresh loopback port with a
/// generated key; the port and the key.
pub fn serve(fx: &Fixture) -> (u16, String) {
    let port = free_port();
    fx.ok(&["web", "--port", &port.to_string()]);
    let key = std::fs::read_to_string(fx.home().join("api-key"))
        .unwrap()
        .trim()
        .to_string();
    (port, key)
}

/// Whether a test that needs `tool` should be skipped: a message and true
/// when it is missing outside CI; a failure when it is missing in CI
/// (`CI=true`), where `.ci/run` installs it.
pub fn skip_without(tool: &str, found: bool) -> bool {
    if found {
        return false;
    }
    if std::env::var("CI").is_ok_and(|ci| ci == "true") {
        panic!("{tool} is missing in CI: .ci/run installs it");
    }
    eprintln!("SKIPPED: {tool} is not installed (CI installs it; see .ci/run)");
    true
}

/// `GET path` on 127.0.0.1:port with `headers` (each ending in CRLF); the
/// status, the head and the body.
pub fn tcp_get(port: u16, path: &str, headers: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    stream.set_read_timeout(Some(super::DEADLINE)).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: localhost\r\n{headers}\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head.to_string(), body.to_string())
}
