//! What a PM2 user types and what their Node apps expect: the IPC channel
//! (`process.send('ready')` with `wait_ready`, `shutdown_with_message`), and
//! PM2's verbs (`startOrReload`, `scale +N`, several targets, `jlist`,
//! `reset`, `init`, …).
#![allow(clippy::unwrap_used)]

mod helper;

use std::time::Duration;

use helper::{need, wait_file, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::{ExitReason, Status};

#[test]
fn a_node_app_that_sends_ready_with_wait_ready_is_ready_and_not_restarted() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("app.js"),
        "setTimeout(() => process.send('ready'), 200);\nsetInterval(() => {}, 1000);\n",
    )
    .unwrap();
    fx.start_json(
        r#"{"name": "ready-app", "script": "app.js", "wait_ready": true, "listen_timeout": 20000}"#,
    );
    let ready = fx.wait_for("ready-app-0", "ready", |p| p.ready);
    assert_eq!(ready.status, Status::Online);
    assert_eq!(ready.restarts, 0);
    // No other way to readiness exists with wait_ready: without the message
    // the instance stays unready.
    std::fs::write(
        fx.work().join("silent.js"),
        "setInterval(() => {}, 1000);\n",
    )
    .unwrap();
    fx.ok(&["start", "silent.js", "--sd-notify", "--name", "silent"]);
    let pid = fx.wait_status("silent-0", Status::Online).pid;
    fx.ok(&[
        "start",
        "app.js",
        "--sd-notify",
        "--name",
        "second",
        "--wait-ready",
    ]);
    let silent = fx.get("silent-0");
    assert!(!silent.ready, "{silent:?}");
    assert_eq!(silent.pid, pid);
    let again = fx.get("ready-app-0");
    assert_eq!((again.restarts, again.pid), (0, ready.pid));
}

#[test]
fn shutdown_with_message_stops_a_node_app_with_the_shutdown_message() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    let said = fx.work().join("said.txt");
    std::fs::write(
        fx.work().join("app.js"),
        format!(
            "const fs = require('fs');\n\
             process.on('message', (m) => {{ if (m === 'shutdown') {{ fs.writeFileSync({path:?}, 'shutdown'); process.exit(0); }} }});\n\
             process.on('SIGTERM', () => {{ fs.writeFileSync({path:?}, 'SIGTERM'); process.exit(0); }});\n\
             fs.writeFileSync({path:?}, 'up');\n",
            path = said.display().to_string()
        ),
    )
    .unwrap();
    fx.start_json(
        r#"{"name": "polite", "script": "app.js", "shutdown_with_message": true, "kill_timeout": 20000}"#,
    );
    wait_file(&said, |s| s == "up");
    let began = std::time::Instant::now();
    fx.ok(&["stop", "polite"]);
    assert_eq!(std::fs::read_to_string(&said).unwrap(), "shutdown");
    assert!(began.elapsed() < Duration::from_secs(10));
    let stopped = fx.get("polite-0");
    assert_eq!(stopped.status, Status::Stopped);
    assert_eq!(stopped.last_exit, Some(ExitReason::Code(0)));
    // Without the field, the same app gets the stop signal.
    std::fs::write(&said, "").unwrap();
    fx.ok(&["start", "app.js", "--name", "plain"]);
    wait_file(&said, |s| s == "up");
    fx.ok(&["stop", "plain"]);
    assert_eq!(std::fs::read_to_string(&said).unwrap(), "SIGTERM");
}

#[test]
fn the_ipc_channel_does_not_keep_a_finished_node_app_alive() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("once.js"),
        "console.log(typeof process.send, process.env.NODE_CHANNEL_FD);\n",
    )
    .unwrap();
    fx.ok(&["start", "once.js", "--no-autorestart"]);
    let done = fx.wait_for("once-0", "exited", |p| p.last_exit.is_some());
    assert_eq!(done.last_exit, Some(ExitReason::Code(0)));
    let logs = fx.ok(&["logs", "once", "--raw", "--out"]);
    // Node removes the variable once it has opened the channel.
    assert!(logs.contains("function undefined"), "{logs}");
    assert!(wait_until(DEADLINE, || fx.get("once-0").status == Status::Stopped));
}
