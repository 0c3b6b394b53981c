//! Shell completions and the man page come from the clap definitions: each
//! is generated here and checked to know every verb, so they cannot drift.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helper;

use helper::{need, Fixture};

/// Every verb a user can type.
const VERBS: &[&str] = &[
    "start",
    "startOrRestart",
    "startOrReload",
    "run",
    "stop",
    "restart",
    "reload",
    "scale",
    "signal",
    "reset",
    "delete",
    "list",
    "jlist",
    "prettylist",
    "info",
    "logs",
    "flush",
    "monit",
    "validate",
    "web",
    "init",
    "kill",
    "save",
    "resurrect",
    "startup",
    "unstartup",
    "export",
    "completions",
    "man",
];

#[test]
fn completions_know_every_verb_in_every_shell() {
    let fx = Fixture::new();
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let script = fx.ok(&["completions", shell]);
        for verb in VERBS {
            assert!(script.contains(verb), "{shell} completions lack '{verb}'");
        }
        assert!(
            script.contains("health-check-url"),
            "{shell}: start's options"
        );
    }
    // The bash script is valid bash.
    let path = fx.work().join("pmdaemon.bash");
    std::fs::write(&path, fx.ok(&["completions", "bash"])).unwrap();
    let syntax = std::process::Command::new("bash")
        .arg("-n")
        .arg(&path)
        .output()
        .unwrap();
    assert!(syntax.status.success(), "{syntax:?}");
    assert!(fx.daemon_pid().is_none(), "no daemon for completions");
}

#[test]
fn the_man_page_documents_every_verb_and_renders() {
    let fx = Fixture::new();
    let page = fx.ok(&["man"]);
    assert!(page.starts_with(".ie") || page.starts_with(".TH"), "{page}");
    for verb in VERBS {
        assert!(
            page.contains(&format!("pmdaemon {verb}\"")),
            "the man page lacks '{verb}'"
        );
    }
    assert!(
        page.contains("health\\-check\\-url"),
        "start's options are in it"
    );
    if !need("groff", &["--version"]) {
        return;
    }
    let path = fx.work().join("pmdaemon.1");
    std::fs::write(&path, &page).unwrap();
    // -k: UTF-8 input (as man reads it); -ww: every warning; -z: no output.
    let render = std::process::Command::new("groff")
        .args(["-k", "-man", "-ww", "-z", "-Tutf8"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        render.status.success() && render.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&render.stderr)
    );
}

#[test]
fn start_help_is_grouped_and_config_shows_only_where_it_applies() {
    let fx = Fixture::new();
    let help = fx.ok(&["start", "--help"]);
    for heading in [
        "Cluster and ports:",
        "Restarts and stopping:",
        "Health and readiness:",
        "Logs:",
        "Watch and schedule:",
    ] {
        assert!(help.contains(heading), "{heading} missing:\n{help}");
    }
    assert!(!help.contains("--config"), "{help}");
    assert!(!fx.ok(&["list", "--help"]).contains("--config"));
    assert!(fx.ok(&["--help"]).contains("--config"));
}
