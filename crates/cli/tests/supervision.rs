//! Crashes, restart policies and stopping whole process trees.

mod helper;

use std::time::Instant;

use helper::{alive, kill, read_pid, Fixture};
use pmdaemon_core::api::{ExitReason, Status};

#[test]
fn a_killed_child_comes_back_with_a_new_pid_and_one_more_restart() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web"]);
    let before = fx.get("web-0");
    kill(before.pid.unwrap(), libc::SIGKILL);
    let after = fx.wait_for("web-0", "restarted", |p| {
        p.restarts == 1 && p.status == Status::Online
    });
    assert_ne!(after.pid, before.pid);
    assert!(alive(after.pid.unwrap()));
    assert_eq!(after.last_exit, Some(ExitReason::Signal(libc::SIGKILL)));
    let history = &fx.info("web-0")[0].history;
    assert!(
        history
            .iter()
            .any(|e| e.event == "exited" && e.reason.contains("signal 9")),
        "{history:?}"
    );
}

#[test]
fn a_crash_loop_ends_errored_after_max_restarts() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sh -c 'echo boom >&2; exit 3'",
        "--name",
        "crashy",
        "--max-restarts",
        "3",
    ]);
    let errored = fx.wait_status("crashy-0", Status::Errored);
    assert_eq!(errored.restarts, 3);
    assert_eq!(errored.unstable_restarts, 3);
    assert_eq!(errored.last_exit, Some(ExitReason::Code(3)));
    assert_eq!(errored.pid, None);
    // It stays errored: no more restarts happen.
    let history = fx.info("crashy")[0].history.clone();
    assert!(
        history.last().unwrap().reason.contains("unstable restarts"),
        "{history:?}"
    );
    // Every run's stderr reaches the log (the last one a moment after the
    // exit is seen).
    assert!(helper::wait_until(helper::DEADLINE, || {
        fx.ok(&["logs", "crashy", "--err", "--lines", "10"])
            .matches("boom")
            .count()
            == 4
    }));
    // A manual restart gives it a fresh budget.
    fx.ok(&["restart", "crashy"]);
    let again = fx.wait_for("crashy-0", "errored again", |p| {
        p.status == Status::Errored && p.restarts == 7
    });
    assert_eq!(again.unstable_restarts, 3);
}

#[test]
fn the_default_crash_budget_is_sixteen_unstable_restarts() {
    let fx = Fixture::new();
    fx.ok(&["start", "false", "--name", "f"]);
    let errored = fx.wait_status("f-0", Status::Errored);
    assert_eq!(errored.restarts, 16);
}

#[test]
fn stable_runs_reset_the_unstable_count() {
    let fx = Fixture::new();
    // Each run lives 300 ms, longer than min_uptime 100 ms: never unstable.
    fx.ok(&[
        "start",
        "sleep 0.3",
        "--name",
        "steady",
        "--min-uptime",
        "100ms",
        "--max-restarts",
        "1",
    ]);
    let p = fx.wait_for("steady-0", "restarted 3 times", |p| p.restarts >= 3);
    assert_ne!(p.status, Status::Errored);
    assert_eq!(p.unstable_restarts, 0);
}

#[test]
fn no_autorestart_and_stop_exit_codes_leave_the_process_down() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sh -c 'exit 0'",
        "--name",
        "once",
        "--no-autorestart",
    ]);
    fx.ok(&[
        "start",
        "sh -c 'exit 7'",
        "--name",
        "failed",
        "--no-autorestart",
    ]);
    fx.ok(&[
        "start",
        "sh -c 'sleep 0.2; exit 42'",
        "--name",
        "done",
        "--stop-exit-codes",
        "42,43",
    ]);
    assert_eq!(fx.wait_status("once-0", Status::Stopped).restarts, 0);
    assert_eq!(
        fx.wait_status("failed-0", Status::Errored).last_exit,
        Some(ExitReason::Code(7))
    );
    let done = fx.wait_status("done-0", Status::Stopped);
    assert_eq!(done.restarts, 0);
    assert_eq!(done.last_exit, Some(ExitReason::Code(42)));
}

#[test]
fn restart_delay_shows_waiting_restart_then_restarts() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "slow",
        "--restart-delay",
        "3s",
    ]);
    let pid = fx.get("slow-0").pid.unwrap();
    kill(pid, libc::SIGKILL);
    let waiting = fx.wait_status("slow-0", Status::WaitingRestart);
    assert_eq!(waiting.pid, None);
    let back = fx.wait_status("slow-0", Status::Online);
    assert_eq!(back.restarts, 1);
    // Stopping during the delay cancels the restart.
    kill(back.pid.unwrap(), libc::SIGKILL);
    fx.wait_status("slow-0", Status::WaitingRestart);
    fx.ok(&["stop", "slow"]);
    let stopped = fx.get("slow-0");
    assert_eq!(stopped.status, Status::Stopped);
    // Longer than the 3 s delay: a restart that was not cancelled would
    // have come by then.
    assert!(!helper::wait_until(
        std::time::Duration::from_secs(4),
        || fx.get("slow-0").status != Status::Stopped
    ));
}

#[test]
fn a_child_ignoring_sigterm_is_killed_after_kill_timeout_with_its_grandchild() {
    let fx = Fixture::new();
    fx.script(
        "stubborn.sh",
        "#!/bin/bash\ntrap '' TERM\n(trap '' TERM; echo $BASHPID > grandchild.pid; exec sleep 300) &\necho $$ > child.pid\nwhile true; do sleep 0.05; done\n",
    );
    fx.ok(&[
        "start",
        "./stubborn.sh",
        "--name",
        "stubborn",
        "--kill-timeout",
        "700ms",
    ]);
    let child = read_pid(&fx.work().join("child.pid"));
    let grandchild = read_pid(&fx.work().join("grandchild.pid"));
    assert!(alive(child) && alive(grandchild));
    let started = Instant::now();
    fx.ok(&["stop", "stubborn"]);
    let took = started.elapsed();
    assert!(!alive(child), "the child survived stop");
    assert!(!alive(grandchild), "the grandchild survived stop");
    assert!(
        took.as_millis() >= 700,
        "SIGKILL came before kill_timeout: {took:?}"
    );
    assert_eq!(
        fx.get("stubborn-0").last_exit,
        Some(ExitReason::Signal(libc::SIGKILL))
    );
}

#[test]
fn an_orphaned_grandchild_is_reaped_and_killed_with_its_group() {
    let fx = Fixture::new();
    // The middle process exits at once, so the grandchild is reparented to
    // the daemon (a subreaper); it must still die on stop and not linger as
    // a zombie.
    fx.script(
        "forker.sh",
        "#!/bin/sh\n(sleep 300 & echo $! > orphan.pid)\nexec sleep 300\n",
    );
    fx.ok(&["start", "./forker.sh", "--name", "forker"]);
    let orphan = read_pid(&fx.work().join("orphan.pid"));
    let daemon = fx.daemon_pid().unwrap();
    assert!(
        helper::wait_until(helper::DEADLINE, || {
            std::fs::read_to_string(format!("/proc/{orphan}/stat")).is_ok_and(|s| {
                s.rsplit_once(')').unwrap().1.split_whitespace().nth(1) == Some(&daemon.to_string())
            })
        }),
        "the orphan was not reparented to the daemon"
    );
    fx.ok(&["stop", "forker"]);
    assert!(!alive(orphan));
    assert!(
        !std::path::Path::new(&format!("/proc/{orphan}")).exists(),
        "the orphan was not reaped"
    );
}

#[test]
fn a_graceful_child_exits_on_the_stop_signal_without_waiting_for_kill_timeout() {
    let fx = Fixture::new();
    fx.script(
        "graceful.sh",
        "#!/bin/bash\ntrap 'echo bye; exit 0' TERM\ntouch ready\nwhile true; do sleep 0.05; done\n",
    );
    fx.ok(&[
        "start",
        "./graceful.sh",
        "--name",
        "g",
        "--kill-timeout",
        "10s",
    ]);
    // Stop only once the trap is set.
    assert!(helper::wait_until(helper::DEADLINE, || fx
        .work()
        .join("ready")
        .exists()));
    let started = Instant::now();
    fx.ok(&["stop", "g"]);
    assert!(
        started.elapsed().as_secs() < 5,
        "stop waited for kill_timeout"
    );
    assert_eq!(fx.get("g-0").last_exit, Some(ExitReason::Code(0)));
}

#[test]
fn stop_signal_is_configurable() {
    let fx = Fixture::new();
    fx.script("int.sh", "#!/bin/bash\ntrap '' TERM\ntrap 'echo got-int; exit 0' INT\ntouch ready\nwhile true; do sleep 0.05; done\n");
    fx.ok(&[
        "start",
        "./int.sh",
        "--name",
        "i",
        "--stop-signal",
        "SIGINT",
        "--kill-timeout",
        "10s",
    ]);
    assert!(helper::wait_until(helper::DEADLINE, || fx
        .work()
        .join("ready")
        .exists()));
    fx.ok(&["stop", "i"]);
    assert_eq!(fx.get("i-0").last_exit, Some(ExitReason::Code(0)));
    // Its last words may still be on their way from the pipe.
    assert!(helper::wait_until(helper::DEADLINE, || fx
        .ok(&["logs", "i", "--out"])
        .contains("got-int")));
}
