//! Foreground mode, for containers: `pmdaemon run`, and `start` as PID 1.

#![allow(clippy::unwrap_used)]

mod helper;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use helper::{alive, kill, wait_until, Fixture, Guarded, DEADLINE};
use pmdaemon_core::api::Status;

/// Reads `child`'s stdout until a line contains `text`; returns the rest
/// of the stream, to keep it open (and read it) until the end.
fn read_until(
    child: &mut Guarded,
    text: &str,
) -> std::io::Lines<BufReader<std::process::ChildStdout>> {
    let mut lines = BufReader::new(child.child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    for line in lines.by_ref() {
        let line = line.unwrap();
        let done = line.contains(text);
        seen.push(line);
        if done {
            return lines;
        }
    }
    panic!("the output ended without {text:?}: {seen:?}");
}

#[test]
fn run_streams_the_logs_and_sigterm_stops_every_app_then_itself() {
    let fx = Fixture::new();
    fx.script(
        "web.sh",
        "#!/bin/sh\necho \"hello from $PMDAEMON_INSTANCE_NAME\"\nexec sleep 300\n",
    );
    let run = fx
        .process()
        .args(["run", "./web.sh", "--name", "web", "--instances", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut run = Guarded::new(run, DEADLINE * 2);
    // What the apps print is on the foreground process's stdout.
    let _rest = read_until(&mut run, "web-1 | hello from web-1");
    let pids: Vec<u32> = fx.list().iter().filter_map(|p| p.pid).collect();
    assert_eq!(pids.len(), 2);
    let daemon = fx.daemon_pid().unwrap();
    kill(run.child.id(), libc::SIGTERM);
    let status = run.wait();
    assert!(status.success(), "{status:?}");
    assert!(pids.iter().all(|pid| !alive(*pid)), "an app outlived run");
    assert!(
        wait_until(DEADLINE, || !alive(daemon)),
        "the daemon outlived run"
    );
    assert!(!fx.home().join("pmdaemon.sock").exists());
}

#[test]
fn run_ends_when_no_app_is_left_running_with_an_error_if_one_gave_up() {
    let fx = Fixture::new();
    // fx.output: a run that hung would be killed after a minute.
    let done = fx.output(&[
        "run",
        "sh -c 'echo working; exit 0'",
        "--name",
        "job",
        "--no-autorestart",
    ]);
    assert!(done.status.success(), "{done:?}");
    assert!(String::from_utf8_lossy(&done.stdout).contains("job-0 | working"));
    let failed = fx.output(&[
        "run",
        "sh -c 'exit 3'",
        "--name",
        "broken",
        "--max-restarts",
        "2",
        "--restart-delay",
        "10",
    ]);
    assert!(!failed.status.success());
    let err = String::from_utf8_lossy(&failed.stderr);
    assert!(err.contains("broken-0 gave up (errored)"), "{err}");
    assert!(fx.daemon_pid().is_none_or(|pid| !alive(pid)));
}

#[test]
fn run_refuses_when_a_daemon_already_runs_and_changes_nothing() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web"]);
    let err = fx.fails(&["run", "sleep 300", "--name", "other"]);
    assert!(err.contains("a daemon already runs"), "{err}");
    assert_eq!(fx.list().len(), 1);
    assert_eq!(fx.get("web-0").status, Status::Online);
}

#[test]
fn start_as_pid_1_runs_in_the_foreground_until_sigterm() {
    let fx = Fixture::new();
    // A new PID namespace makes pmdaemon PID 1, as a container's command.
    let can_unshare = std::process::Command::new("unshare")
        .args(["-fp", "--mount-proc", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !can_unshare {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must be able to run unshare -fp (it runs as root)"
        );
        eprintln!("SKIPPED: cannot create a PID namespace here (unshare -fp needs privileges)");
        return;
    }
    fx.script(
        "app.sh",
        "#!/bin/sh\necho ready-in-container\nexec sleep 300\n",
    );
    // --kill-child: the namespace ends with unshare, even if the test
    // fails and its guard kills unshare.
    let init = std::process::Command::new("unshare")
        .args(["-fp", "--mount-proc", "--kill-child"])
        .arg(assert_cmd::cargo::cargo_bin("pmdaemon"))
        .args(["start", "./app.sh", "--name", "app"])
        .env("PMDAEMON_HOME", fx.home())
        .current_dir(fx.work())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut init = Guarded::new(init, DEADLINE * 2);
    let _rest = read_until(&mut init, "app-0 | ready-in-container");
    // `start` did not return: it is the container's init.
    assert!(init.child.try_wait().unwrap().is_none());
    assert_eq!(fx.get("app-0").status, Status::Online);
    // `docker stop`: SIGTERM to the container's PID 1 (unshare's child).
    let unshare = init.child.id();
    let children =
        std::fs::read_to_string(format!("/proc/{unshare}/task/{unshare}/children")).unwrap();
    let pid1: u32 = children.split_whitespace().next().unwrap().parse().unwrap();
    kill(pid1, libc::SIGTERM);
    let status = init.wait();
    assert!(status.success(), "{status:?}");
    // The namespace, and every process in it, is gone with its PID 1.
    assert!(!alive(pid1));
    assert!(!fx.home().join("pmdaemon.sock").exists());
}

#[test]
fn run_again_on_the_same_home_starts_its_apps_afresh() {
    let fx = Fixture::new();
    fx.script("web.sh", "#!/bin/sh\necho up\nexec sleep 300\n");
    // As a container restarted with its volume: the same command twice.
    for _ in 0..2 {
        let run = fx
            .process()
            .args(["run", "./web.sh", "--name", "web"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut run = Guarded::new(run, DEADLINE * 2);
        let rest = read_until(&mut run, "web-0 | up");
        let list = fx.list();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].status, Status::Online);
        kill(run.child.id(), libc::SIGTERM);
        // Its output goes on until the end.
        rest.for_each(drop);
        assert!(run.wait().success());
    }
}
