//! The daemon itself dies: nothing is lost, nothing is duplicated.
#![allow(clippy::unwrap_used)]

mod helper;

use std::os::unix::process::CommandExt;

use helper::{alive, kill, Fixture};
use pmdaemon_core::api::Status;

#[test]
fn a_daemon_killed_with_sigkill_is_replaced_and_recovers_every_app_without_duplicates() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web", "--instances", "3"]);
    fx.ok(&["start", "sleep 300", "--name", "worker"]);
    fx.ok(&["start", "sleep 300", "--name", "parked"]);
    fx.ok(&["stop", "parked"]);
    let worker = fx.get("worker-0");
    kill(worker.pid.unwrap(), libc::SIGKILL);
    fx.wait_for("worker-0", "restarted", |p| {
        p.restarts == 1 && p.status == Status::Online
    });
    let before = fx.list();
    let old_pids: Vec<u32> = before.iter().filter_map(|p| p.pid).collect();
    assert_eq!(old_pids.len(), 4);

    let daemon = fx.daemon_pid().unwrap();
    kill(daemon, libc::SIGKILL);
    assert!(helper::wait_until(helper::DEADLINE, || !alive(daemon)));

    // The next command starts a new daemon, which cleans up and resumes
    // (in the background: wait until every instance it resumes runs).
    fx.list();
    assert!(fx.daemon_pid().is_some_and(|pid| pid != daemon));
    for name in ["web-0", "web-1", "web-2", "worker-0"] {
        fx.wait_for(name, "resumed", |p| {
            p.status == Status::Online && p.pid.is_some()
        });
    }
    let after = fx.list();
    let shape = |list: &[pmdaemon_core::api::ProcessInfo]| -> Vec<(u32, String, u32)> {
        list.iter()
            .map(|p| (p.id, p.name.clone(), p.restarts))
            .collect()
    };
    assert_eq!(
        shape(&after),
        shape(&before),
        "ids, names and restart counts are kept"
    );
    for p in &after {
        let expected = if p.app == "parked" {
            Status::Stopped
        } else {
            Status::Online
        };
        assert_eq!(p.status, expected, "{p:?}");
    }
    assert!(
        old_pids.iter().all(|pid| !alive(*pid)),
        "the old processes were left running"
    );
    let mut running = fx.processes();
    running.sort();
    let mut listed: Vec<u32> = after.iter().filter_map(|p| p.pid).collect();
    listed.sort();
    assert_eq!(running, listed, "exactly one process per running instance");

    // And it supervises them as before.
    let web = fx.get("web-1");
    kill(web.pid.unwrap(), libc::SIGKILL);
    fx.wait_for("web-1", "restarted", |p| {
        p.restarts == 1 && p.status == Status::Online
    });
}

#[test]
fn a_reused_pid_is_not_mistaken_for_a_leftover() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web"]);
    fx.ok(&["kill"]);
    // Pretend the recorded pid now belongs to an unrelated process. Its
    // start time does not match, so it must survive recovery.
    // A group leader, as the recorded one was: only its start time tells
    // it apart.
    let unrelated = std::process::Command::new("sleep")
        .arg("300")
        .process_group(0)
        .spawn()
        .unwrap();
    let mut unrelated = helper::Guarded::new(unrelated, helper::DEADLINE * 2);
    let pid = unrelated.child.id();
    let state_path = fx.home().join("state.json");
    let mut state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&state_path).unwrap()).unwrap();
    state["instances"][0]["pid"] = serde_json::json!(pid);
    state["instances"][0]["pid_start_time"] = serde_json::json!(1);
    std::fs::write(&state_path, serde_json::to_vec(&state).unwrap()).unwrap();
    // The next command starts a daemon (which cleans up what the previous
    // one left); resurrect brings web back.
    fx.ok(&["resurrect"]);
    fx.wait_for("web-0", "resumed", |p| p.status == Status::Online);
    assert!(alive(pid), "recovery killed an unrelated process");
    assert!(unrelated.child.try_wait().unwrap().is_none());
}

#[test]
fn a_corrupt_state_file_is_moved_aside_with_a_warning() {
    let fx = Fixture::new();
    // Apps ran, the daemon died, and its table was then corrupted: the old
    // processes must not be left running untracked.
    fx.ok(&["start", "sleep 300", "--name", "web", "-i", "2"]);
    let old: Vec<u32> = fx.list().iter().filter_map(|p| p.pid).collect();
    kill(fx.daemon_pid().unwrap(), libc::SIGKILL);
    std::fs::write(fx.home().join("state.json"), "{ not json").unwrap();
    let output = fx.output(&["list", "--json"]);
    assert!(output.status.success());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(
        said.contains("[pmdaemon] warning:") && said.contains("corrupt"),
        "the CLI must say it: {said}"
    );
    assert!(said.contains("stopped 2 processes left running"), "{said}");
    assert!(old.iter().all(|pid| !alive(*pid)));
    assert!(fx.list().is_empty());
    let aside = moved_aside(&fx);
    assert_eq!(std::fs::read_to_string(&aside).unwrap(), "{ not json");
    let log = std::fs::read_to_string(fx.home().join("daemon.log")).unwrap();
    assert!(log.contains("corrupt") && log.contains("WARN"), "{log}");
}

#[test]
fn an_unreadable_state_file_is_moved_aside_with_a_warning() {
    let fx = Fixture::new();
    // A directory where the file should be: reading it fails (EISDIR).
    std::fs::create_dir(fx.home().join("state.json")).unwrap();
    std::fs::write(fx.home().join("state.json/inside"), "kept").unwrap();
    assert!(fx.list().is_empty());
    let aside = moved_aside(&fx);
    assert_eq!(
        std::fs::read_to_string(aside.join("inside")).unwrap(),
        "kept"
    );
    let log = std::fs::read_to_string(fx.home().join("daemon.log")).unwrap();
    assert!(log.contains("unreadable") && log.contains("WARN"), "{log}");
    // And the daemon works: a new table is written where the old one was.
    fx.ok(&["start", "sleep 300", "--name", "web"]);
    assert!(fx.home().join("state.json").is_file());
}

/// The one state file the daemon moved aside.
fn moved_aside(fx: &Fixture) -> std::path::PathBuf {
    let aside: Vec<std::path::PathBuf> = std::fs::read_dir(fx.home())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("state.json.corrupt-"))
        })
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    aside.into_iter().next().unwrap()
}
