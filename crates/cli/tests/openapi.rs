//! `GET /openapi.json` checked against the live API by schemathesis: every
//! generated request to every route (but the few that would stop the
//! daemon or start arbitrary programs) must get an answer that is not a
//! server error.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helper;

use std::process::{Command, Stdio};

use helper::web::{serve, skip_without};
use helper::Fixture;

/// Operations not fuzzed: killing the daemon ends the run, and starting
/// or applying generated configurations would run generated programs with
/// generated paths (their validation is tested in ecosystem.rs and
/// errors.rs).
/// By operation id (the name of its function in core's `openapi` module).
const EXCLUDED: &[&str] = &["kill", "start_app", "apply", "ws"];

/// Operations aimed at the real app (else every generated name is a 404);
/// scale and delete keep generated names, so that a run cannot scale the
/// app to a thousand processes or delete it from under the others.
const ON_THE_APP: &[&str] = &[
    "info",
    "target_logs",
    "flush_target",
    "start",
    "stop",
    "restart",
    "reload",
];

/// The run's configuration: log routes never follow (a followed log is an
/// endless answer, not an error), and some operations target the app.
fn config() -> String {
    let mut toml = String::new();
    for operation in ["target_logs", "all_logs"] {
        toml.push_str(&format!(
            "[[operations]]\ninclude-operation-id = \"{operation}\"\nparameters = {{ \"query.follow\" = false }}\n\n"
        ));
    }
    for operation in ON_THE_APP {
        toml.push_str(&format!(
            "[[operations]]\ninclude-operation-id = \"{operation}\"\nparameters = {{ \"path.target\" = \"fuzzed\" }}\n\n"
        ));
    }
    toml
}

#[test]
fn schemathesis_finds_no_server_error() {
    let found = Command::new("schemathesis")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if skip_without("schemathesis", found) {
        return;
    }
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "fuzzed", "--instances", "2"]);
    let (port, key) = serve(&fx);
    let url = format!("http://127.0.0.1:{port}");
    std::fs::write(fx.work().join("schemathesis.toml"), config()).unwrap();
    let mut command = Command::new("schemathesis");
    command
        .current_dir(fx.work())
        .args(["run", &format!("{url}/openapi.json")])
        .args(["--url", &url])
        .args(["--header", &format!("Authorization: Bearer {key}")])
        .args(["--checks", "not_a_server_error"])
        .args(["--max-examples", "30", "--workers", "1"])
        .args(["--request-timeout", "20", "--no-color"]);
    for operation in EXCLUDED {
        command.args(["--exclude-operation-id", operation]);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "schemathesis found failures:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
    // The daemon still serves after the run.
    fx.ok(&["list"]);
}
