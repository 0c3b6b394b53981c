//! The spawner: the small process that creates the apps' processes for the
//! daemon. What a user must not notice: the apps are the daemon's children
//! as before, get exactly 0, 1 and 2, fail to exec with the same errors,
//! and a spawner that is killed changes nothing but speed.

#![allow(clippy::unwrap_used)]

mod helper;

use helper::{alive, descriptors, kill, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::Status;

fn parent_of(pid: u32) -> u32 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("PPid:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// How often the spawner has waited for the daemon (it blocks reading
/// each request): it grows when the spawner does the work.
fn waits_of(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|line| line.strip_prefix("voluntary_ctxt_switches:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn apps_started_by_the_spawner_are_the_daemons_children_with_only_stdio() {
    let fx = Fixture::new();
    fx.ok(&["list"]);
    let daemon = fx.daemon_pid().unwrap();
    let spawner = fx.spawner_pid().expect("the daemon has a spawner");
    let before = waits_of(spawner);
    fx.ok(&["start", "sleep 300", "--name", "s"]);
    assert!(waits_of(spawner) > before, "the spawner did not spawn it");
    assert!(!fx.daemon_log_tail().contains("spawns by itself"));
    let app = fx.wait_status("s-0", Status::Online).pid.unwrap();
    assert_eq!(parent_of(app), daemon);
    assert_eq!(parent_of(spawner), daemon);
    assert_eq!(descriptors(app), [0, 1, 2]);
    // Restarting it goes through the spawner again, and the daemon sees
    // the exit of a process it did not fork itself.
    kill(app, libc::SIGKILL);
    let again = fx.wait_for("s-0", "online again", |p| {
        p.status == Status::Online && p.pid != Some(app)
    });
    assert_eq!(parent_of(again.pid.unwrap()), daemon);
    assert_eq!(again.restarts, 1);
}

#[test]
fn an_exec_failure_in_the_spawners_child_is_the_starts_error_and_leaves_nothing() {
    let fx = Fixture::new();
    // An interpreter that does not exist: exec fails with ENOENT.
    fx.script("orphan", "#!/nonexistent/interpreter\n");
    let err = fx.fails(&["start", "./orphan", "--name", "o"]);
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(fx.list().is_empty());
    assert!(fx.processes().is_empty(), "{:?}", fx.processes());
    // The failed children were reaped: the daemon has no zombie.
    let daemon = fx.daemon_pid().unwrap();
    let zombies: Vec<u32> = pmdaemon_core::procinfo::children(daemon)
        .into_iter()
        .filter(|pid| pmdaemon_core::procinfo::stat(*pid).is_some_and(|stat| stat.zombie))
        .collect();
    assert!(zombies.is_empty(), "zombies: {zombies:?}");
    // The spawner is still there for the next start.
    assert!(fx.spawner_pid().is_some());
    fx.ok(&["start", "sleep 300", "--name", "s"]);
    fx.wait_status("s-0", Status::Online);
}

/// An executable file without a `#!` line runs under `/bin/sh`, as a
/// shell (and `execvp`, the daemon's own path) would run it.
fn a_file_without_a_format_runs_under_sh(fx: &Fixture, name: &str) {
    let marker = fx.work().join(format!("{name}.ran"));
    fx.script(
        name,
        &format!("echo \"$0 $1\" > {}\nexec sleep 300\n", marker.display()),
    );
    fx.ok(&["start", &format!("./{name}"), "--name", name, "--", "first"]);
    let ran = helper::wait_file(&marker, |text| !text.is_empty());
    assert!(ran.trim().ends_with(&format!("{name} first")), "{ran}");
    fx.wait_status(&format!("{name}-0"), Status::Online);
}

#[test]
fn a_file_without_a_format_runs_under_sh_with_or_without_the_spawner() {
    let fx = Fixture::new();
    a_file_without_a_format_runs_under_sh(&fx, "plain");
    kill(fx.spawner_pid().unwrap(), libc::SIGKILL);
    assert!(wait_until(DEADLINE, || fx.spawner_pid().is_none()));
    a_file_without_a_format_runs_under_sh(&fx, "direct");
}

#[test]
fn a_killed_spawner_only_costs_speed_the_daemon_spawns_by_itself() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "before"]);
    let spawner = fx.spawner_pid().unwrap();
    kill(spawner, libc::SIGKILL);
    assert!(wait_until(DEADLINE, || !alive(spawner) || fx.spawner_pid().is_none()));
    fx.ok(&["start", "sleep 300", "--name", "after", "--instances", "2"]);
    for name in ["after-0", "after-1"] {
        let pid = fx.wait_status(name, Status::Online).pid.unwrap();
        assert_eq!(parent_of(pid), fx.daemon_pid().unwrap());
        assert_eq!(descriptors(pid), [0, 1, 2]);
    }
    let log = fx.daemon_log_tail();
    assert!(log.contains("spawns by itself"), "{log}");
    // Exec failures read the same on this path.
    fx.script("orphan", "#!/nonexistent/interpreter\n");
    let err = fx.fails(&["start", "./orphan", "--name", "o"]);
    assert!(err.contains("No such file or directory"), "{err}");
    fx.ok(&["restart", "before"]);
    fx.wait_status("before-0", Status::Online);
    assert_eq!(fx.list().len(), 3);
}

#[test]
fn the_spawner_dies_with_a_killed_daemon() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "s"]);
    let daemon = fx.daemon_pid().unwrap();
    let spawner = fx.spawner_pid().unwrap();
    kill(daemon, libc::SIGKILL);
    assert!(
        wait_until(DEADLINE, || !alive(spawner)),
        "the spawner outlived its daemon"
    );
    // The next daemon cleans up the app and has a spawner of its own.
    fx.ok(&["list"]);
    assert!(fx.spawner_pid().is_some_and(|pid| pid != spawner));
}

#[test]
fn a_spawner_killed_in_the_middle_of_starts_loses_no_instance_and_leaves_no_stray() {
    for delay_ms in [0, 1, 3, 6, 10] {
        let fx = Fixture::new();
        fx.ok(&["list"]);
        let spawner = fx.spawner_pid().unwrap();
        let mut start = helper::Guarded::new(
            fx.process()
                .args(["start", "sleep 300", "--name", "c", "-i", "12"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
            DEADLINE,
        );
        std::thread::sleep(std::time::Duration::from_millis(delay_ms));
        kill(spawner, libc::SIGKILL);
        assert!(
            start.wait().success(),
            "start failed (killed after {delay_ms} ms)"
        );
        let list = fx.list();
        assert_eq!(list.len(), 12);
        let owned: std::collections::BTreeSet<u32> = list.iter().filter_map(|p| p.pid).collect();
        assert_eq!(owned.len(), 12, "after {delay_ms} ms: {list:?}");
        assert!(list
            .iter()
            .all(|p| p.status == Status::Online && p.restarts == 0));
        let mut running = std::collections::BTreeSet::new();
        let settled = wait_until(DEADLINE, || {
            running = fx.processes().into_iter().collect();
            running == owned
        });
        assert!(
            settled,
            "killed after {delay_ms} ms: processes {running:?}, table {owned:?}"
        );
    }
}

#[test]
fn signals_the_daemons_caller_ignored_are_at_their_default_in_the_apps() {
    let fx = Fixture::new();
    // As `nohup`, or a script's background job, would start the daemon.
    let binary = assert_cmd::cargo::cargo_bin("pmdaemon");
    let output = std::process::Command::new("sh")
        .args([
            "-c",
            "trap '' HUP INT QUIT USR1 TERM; exec \"$PMDAEMON_BIN\" start 'sleep 300' --name s",
        ])
        .env("PMDAEMON_BIN", &binary)
        .env("PMDAEMON_HOME", fx.home())
        .current_dir(fx.work())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let app = fx.wait_status("s-0", Status::Online).pid.unwrap();
    assert_default_dispositions(app);
    // The same through the daemon's own fork.
    kill(fx.spawner_pid().unwrap(), libc::SIGKILL);
    assert!(wait_until(DEADLINE, || fx.spawner_pid().is_none()));
    fx.ok(&["start", "sleep 300", "--name", "direct"]);
    let app = fx.wait_status("direct-0", Status::Online).pid.unwrap();
    assert_default_dispositions(app);
}

fn assert_default_dispositions(app: u32) {
    let status = std::fs::read_to_string(format!("/proc/{app}/status")).unwrap();
    let ignored = status
        .lines()
        .find_map(|line| line.strip_prefix("SigIgn:"))
        .unwrap()
        .trim()
        .to_string();
    let ignored = u64::from_str_radix(&ignored, 16).unwrap();
    for signal in [
        libc::SIGHUP,
        libc::SIGINT,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGTERM,
    ] {
        assert_eq!(
            ignored & (1 << (signal - 1)),
            0,
            "signal {signal} is ignored in the app: {status}"
        );
    }
}

#[test]
fn a_stuck_spawner_is_killed_and_the_start_still_gives_one_process() {
    let fx = Fixture::new();
    // The daemon gives a spawn 500 ms instead of 30 s.
    let started = fx
        .process()
        .env("PMDAEMON_SPAWN_TIMEOUT_MS", "500")
        .arg("list")
        .output()
        .unwrap();
    assert!(started.status.success(), "{started:?}");
    let spawner = fx.spawner_pid().unwrap();
    kill(spawner, libc::SIGSTOP);
    fx.ok(&["start", "sleep 300", "--name", "s", "-i", "2"]);
    for name in ["s-0", "s-1"] {
        let pid = fx.wait_status(name, Status::Online).pid.unwrap();
        assert_eq!(parent_of(pid), fx.daemon_pid().unwrap());
    }
    assert!(
        wait_until(DEADLINE, || !alive(spawner)),
        "the stuck spawner lives on"
    );
    let owned: std::collections::BTreeSet<u32> = fx.list().iter().filter_map(|p| p.pid).collect();
    let running: std::collections::BTreeSet<u32> = fx.processes().into_iter().collect();
    assert_eq!(running, owned);
    let log = fx.daemon_log_tail();
    assert!(log.contains("spawns by itself"), "{log}");
}
