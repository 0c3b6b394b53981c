//! `startup` / `unstartup`: the unit is verified by systemd itself, the
//! daemon speaks its readiness protocol, and where systemd is not running
//! the command says what to do instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helper;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use helper::{need, Fixture};

fn current_user() -> String {
    let out = std::process::Command::new("id")
        .arg("-un")
        .output()
        .unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn the_startup_unit_passes_systemd_analyze_verify() {
    let fx = Fixture::new();
    let user = current_user();
    let unit = fx.ok(&["startup", "--print", "--user", &user]);
    assert!(unit.contains(&format!("\nUser={user}\n")), "{unit}");
    assert!(unit.contains("\nKillMode=mixed\n"), "{unit}");
    assert!(unit.contains("\nType=notify\n"), "{unit}");
    assert!(
        unit.contains(&format!("PMDAEMON_HOME={}", fx.home().display())),
        "our own home keeps its PMDAEMON_HOME: {unit}"
    );
    let user_unit = fx.ok(&["startup", "--print", "--systemd-user"]);
    assert!(!user_unit.contains("User="), "{user_unit}");
    if !need("systemd-analyze", &["--version"]) {
        return;
    }
    for (name, text) in [
        ("pmdaemon-test.service", &unit),
        ("pmdaemon.service", &user_unit),
    ] {
        let path = fx.work().join(name);
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        assert!(
            out.status.success() && out.stderr.is_empty(),
            "{name}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn startup_without_systemd_says_what_to_do_instead() {
    if std::path::Path::new("/run/systemd/system").exists() {
        eprintln!("SKIPPED: systemd runs here; installing a unit is not for a test");
        return;
    }
    let fx = Fixture::new();
    let err = fx.fails(&["startup"]);
    assert!(err.contains("systemd is not the init system here"), "{err}");
    assert!(err.contains("pmdaemon startup --print"), "{err}");
    assert!(err.contains("pmdaemon run ecosystem.json"), "{err}");
    let out = fx.ok(&["unstartup", "--systemd-user"]);
    assert!(out.contains("nothing to remove"), "{out}");
}

#[test]
fn startup_refuses_a_user_that_does_not_exist() {
    let fx = Fixture::new();
    let err = fx.fails(&["startup", "--print", "--user", "no-such-user-pmd"]);
    assert!(
        err.contains("there is no user named 'no-such-user-pmd'"),
        "{err}"
    );
}

/// `pmdaemon daemon` as the unit runs it; returns once it sent READY=1.
fn daemon_as_systemd_runs_it(fx: &Fixture) -> helper::Guarded {
    let socket_path = fx.work().join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(helper::DEADLINE)).unwrap();
    let child = fx
        .process()
        .arg("daemon")
        .env("NOTIFY_SOCKET", &socket_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let daemon = helper::Guarded::new(child, Duration::from_secs(60));
    let mut buffer = [0u8; 64];
    let read = socket
        .recv(&mut buffer)
        .expect("READY=1 within the deadline");
    assert_eq!(&buffer[..read], b"READY=1");
    daemon
}

#[test]
fn stopping_the_unit_stops_the_apps_gracefully_and_the_next_boot_brings_them_back() {
    let fx = Fixture::new();
    let mut daemon = daemon_as_systemd_runs_it(&fx);
    let marker = fx.work().join("graceful");
    let script = fx.script(
        "app.sh",
        &format!(
            "trap 'echo graceful >> {}; exit 0' TERM\nsleep 300 &\nwait\n",
            marker.display()
        ),
    );
    fx.ok(&["start", script.to_str().unwrap(), "--name", "app"]);
    fx.ok(&["start", "sleep 300", "--name", "parked"]);
    fx.ok(&["stop", "parked"]);
    let pid = fx
        .wait_status("app-0", pmdaemon_core::api::Status::Online)
        .pid
        .unwrap();

    // `systemctl stop` with KillMode=mixed: SIGTERM to the daemon alone.
    helper::kill(daemon.child.id(), libc::SIGTERM);
    assert!(daemon.wait().success());
    assert_eq!(helper::wait_file(&marker, |t| !t.is_empty()), "graceful\n");
    assert!(!helper::alive(pid), "the app was stopped with the daemon");

    // The next boot: the daemon brings back what was running, and only that.
    let _daemon = daemon_as_systemd_runs_it(&fx);
    let app = fx.wait_status("app-0", pmdaemon_core::api::Status::Online);
    assert_ne!(app.pid, Some(pid));
    assert_eq!(
        fx.get("parked-0").status,
        pmdaemon_core::api::Status::Stopped
    );
    fx.ok(&["kill"]);
}

#[test]
fn a_daemon_started_on_demand_does_not_speak_for_the_callers_unit() {
    let fx = Fixture::new();
    let socket_path = fx.work().join("caller-notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let out = fx
        .command()
        .env("NOTIFY_SOCKET", &socket_path)
        .args(["list"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // The daemon was ready before `list` got its answer: had it sent
    // READY=1, it would be waiting in the socket now.
    let mut buffer = [0u8; 64];
    assert!(socket.recv(&mut buffer).is_err(), "nothing was sent");
}
