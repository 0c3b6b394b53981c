//! watch and cron_restart.

mod helper;

use std::time::Duration;

use helper::{wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::Status;

#[test]
fn a_burst_of_twenty_writes_restarts_a_watched_app_once() {
    let fx = Fixture::new();
    let src = fx.work().join("src");
    std::fs::create_dir_all(src.join("node_modules")).unwrap();
    fx.start_json(r#"{"name": "watched", "script": "sleep", "args": "300", "watch": ["src"], "watch_delay": 1000}"#);
    let pid = fx.get("watched-0").pid;
    // Let the watch be set up: a change in an ignored directory first must
    // not restart anything.
    std::fs::write(src.join("node_modules/dep.js"), "x").unwrap();
    assert!(!wait_until(Duration::from_secs(1), || fx
        .get("watched-0")
        .restarts
        > 0));
    for i in 0..20 {
        std::fs::write(src.join(format!("file{i}.js")), format!("// {i}")).unwrap();
    }
    let restarted = fx.wait_for("watched-0", "restarted", |p| {
        p.restarts >= 1 && p.status == Status::Online
    });
    assert_ne!(restarted.pid, pid);
    // Nothing more follows the burst.
    assert!(!wait_until(Duration::from_secs(2), || fx
        .get("watched-0")
        .restarts
        > 1));
    let history = &fx.info("watched")[0].history;
    assert!(
        history
            .iter()
            .any(|e| e.reason.starts_with("watch: src/file")),
        "{history:?}"
    );
    assert!(fx
        .ok(&["info", "watched"])
        .contains("src (ignoring node_modules, .git)"));
}

#[test]
fn cron_restart_fires_on_a_one_second_schedule() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "ticking",
        "--cron-restart",
        "* * * * * *",
    ]);
    fx.wait_for("ticking-0", "restarted twice by cron", |p| p.restarts >= 2);
    let history = &fx.info("ticking")[0].history;
    assert!(
        history
            .iter()
            .any(|e| e.reason.starts_with("cron_restart at")),
        "{history:?}"
    );
    // Deleting the app stops its schedule (the tasks' release is shown by
    // deleting_an_app_releases_its_log_files_and_its_watch).
    fx.ok(&["delete", "ticking"]);
    assert!(fx.list().is_empty());
}

#[test]
fn a_bad_cron_expression_is_refused() {
    let fx = Fixture::new();
    let err = fx.fails(&[
        "start",
        "sleep 300",
        "--name",
        "x",
        "--cron-restart",
        "every day",
    ]);
    assert!(err.contains("invalid cron_restart 'every day'"), "{err}");
    // One truth with the help: 5 fields, or 6 with seconds, and an example.
    assert!(
        err.contains("use 5 fields")
            && err.contains("or 6 with seconds")
            && err.contains("\"0 3 * * *\""),
        "{err}"
    );
    assert!(fx.list().is_empty());
}

#[test]
fn the_word_after_a_bare_watch_is_the_script() {
    let fx = Fixture::new();
    fx.script(
        "w.sh",
        "#!/bin/sh
exec sleep 300
",
    );
    fx.ok(&["start", "--watch", "w.sh"]);
    let detail = &fx.info("w")[0];
    assert_eq!(detail.config.watch, ["."]);
    assert_eq!(detail.info.status, Status::Online);
}

#[test]
fn a_stopped_app_is_not_started_again_by_its_schedule() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "ticking",
        "--cron-restart",
        "* * * * * *",
    ]);
    fx.wait_for("ticking-0", "restarted by cron", |p| p.restarts >= 1);
    fx.ok(&["stop", "ticking"]);
    assert!(
        !wait_until(Duration::from_millis(2500), || fx.get("ticking-0").status
            != Status::Stopped),
        "cron started a stopped app"
    );
}

#[test]
fn a_watched_cluster_is_not_restarted_by_its_own_log_files() {
    let fx = Fixture::new();
    fx.script(
        "chatty.sh",
        "#!/bin/sh\nwhile :; do echo tick; sleep 0.1; done\n",
    );
    fx.start_json(r#"{"name": "chatty", "script": "./chatty.sh", "instances": 2, "watch": true, "watch_delay": 200, "out_file": "out.log"}"#);
    let log = fx.work().join("out-1.log");
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.lines().count() > 5)
    }));
    assert!(
        !wait_until(Duration::from_secs(2), || fx
            .list()
            .iter()
            .any(|p| p.restarts > 0)),
        "its own logs restarted it"
    );
    // Nor do the log files of instances added later.
    fx.ok(&["scale", "chatty", "3"]);
    let added = fx.work().join("out-2.log");
    assert!(wait_until(Duration::from_secs(10), || {
        std::fs::read_to_string(&added).is_ok_and(|s| s.lines().count() > 5)
    }));
    assert!(
        !wait_until(Duration::from_secs(2), || fx
            .list()
            .iter()
            .any(|p| p.restarts > 0)),
        "a scaled-up instance's log restarted the app"
    );
    // A real change still does.
    std::fs::write(fx.work().join("config.txt"), "changed").unwrap();
    fx.wait_for("chatty-0", "restarted by a change", |p| p.restarts >= 1);
}

#[test]
fn deleting_an_app_releases_its_log_files_and_its_watch() {
    let fx = Fixture::new();
    std::fs::create_dir(fx.work().join("src")).unwrap();
    fx.ok(&["list"]);
    let daemon = fx.daemon_pid().unwrap();
    // What the daemon holds open, by target (files, inotify instances).
    let open = || -> Vec<String> {
        std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .map(|target| target.display().to_string())
            .collect()
    };
    let inotify = |fds: &[String]| fds.iter().filter(|t| t.contains("inotify")).count();
    let before = inotify(&open());
    fx.ok(&["start", "sleep 300", "--name", "w", "--watch", "src"]);
    assert!(wait_until(DEADLINE, || inotify(&open()) > before));
    assert!(open().iter().any(|t| t.ends_with("logs/w-0-out.log")));
    fx.ok(&["delete", "w"]);
    assert!(
        wait_until(DEADLINE, || inotify(&open()) == before),
        "the watch outlived its app: {:?}",
        open()
    );
    let left = open();
    assert!(
        !left.iter().any(|t| t.contains("logs/w-0-")),
        "log files of a deleted app are still open: {left:?}"
    );
}
