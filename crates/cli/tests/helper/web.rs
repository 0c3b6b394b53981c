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
