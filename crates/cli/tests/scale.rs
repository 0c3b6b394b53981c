//! What keeps the daemon cheap as the table grows and while nobody looks:
//! a batch is written once, a crash right after it loses nothing, `list`
//! samples on demand, and a memory limit is enforced while nobody looks.

#![allow(clippy::unwrap_used)]

mod helper;

use helper::{api_get, kill, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::{routes, Status, SystemInfo};

/// An ecosystem file of `apps` one-instance `sleep` apps.
fn ecosystem(fx: &Fixture, apps: usize) -> String {
    let apps: Vec<String> = (0..apps)
        .map(|i| format!(r#"{{"name": "e{i}", "script": "sleep", "args": "1000"}}"#))
        .collect();
    std::fs::write(
        fx.work().join("eco.json"),
        format!(r#"{{"apps": [{}]}}"#, apps.join(",")),
    )
    .unwrap();
    "eco.json".into()
}

/// Writes of the table since the last whole-table write: one line each.
fn journal_lines(fx: &Fixture) -> usize {
    std::fs::read_to_string(fx.home().join("state.journal"))
        .unwrap_or_default()
        .lines()
        .count()
}

/// Writes of the table since the daemon started (journal lines and
/// snapshots, one fsync each), as `/api/system` reports them.
fn state_writes(fx: &Fixture) -> u64 {
    let system: SystemInfo = serde_json::from_str(&api_get(fx, routes::SYSTEM)).unwrap();
    system.state_writes
}

#[test]
fn a_100_app_file_is_written_a_bounded_number_of_times() {
    let fx = Fixture::new();
    fx.ok(&["list"]);
    let file = ecosystem(&fx, 100);
    let before = state_writes(&fx);
    fx.ok(&["start", &file]);
    // The apps and their instances' status changes were written together,
    // once (a second write may hold what came after the answer).
    let writes = state_writes(&fx) - before;
    assert!((1..=3).contains(&writes), "{writes} writes for 100 apps");
    assert_eq!(fx.list().len(), 100);
    // As many for restarting them all, and for deleting them all.
    for verb in [["restart", "all"], ["delete", "all"]] {
        let before = state_writes(&fx);
        fx.ok(&verb);
        let writes = state_writes(&fx) - before;
        assert!((1..=3).contains(&writes), "{writes} writes for {verb:?}");
    }
    // A start of one app is one or two writes, whatever the table's size.
    let before = state_writes(&fx);
    fx.ok(&["start", "sleep 1000", "--name", "one"]);
    let writes = state_writes(&fx) - before;
    assert!((1..=2).contains(&writes), "{writes} writes for one start");
}

#[test]
fn a_daemon_killed_right_after_a_batch_keeps_every_app() {
    let fx = Fixture::new();
    fx.ok(&["list"]);
    let file = ecosystem(&fx, 20);
    fx.ok(&["start", &file]);
    fx.ok(&["scale", "e0", "3"]);
    fx.ok(&["stop", "e1"]);
    fx.ok(&["delete", "e2"]);
    kill(fx.daemon_pid().unwrap(), libc::SIGKILL);
    // The next command starts a new daemon from state.json and the journal.
    let mut names = Vec::new();
    let settled = wait_until(DEADLINE, || {
        let list = fx.list();
        names = list.iter().map(|p| p.name.clone()).collect();
        list.len() == 21
            && list.iter().all(|p| {
                let want = if p.app == "e1" {
                    Status::Stopped
                } else {
                    Status::Online
                };
                p.status == want
            })
    });
    assert!(settled, "after the crash: {names:?}");
    assert!(!names.contains(&"e2-0".to_string()), "{names:?}");
    for name in ["e0-0", "e0-1", "e0-2", "e19-0"] {
        assert!(names.contains(&name.to_string()), "{name} lost: {names:?}");
    }
    // A clean stop leaves one file: the journal is folded into state.json.
    fx.ok(&["kill"]);
    assert_eq!(journal_lines(&fx), 0);
    let state: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fx.home().join("state.json")).unwrap()).unwrap();
    assert_eq!(state["apps"].as_array().unwrap().len(), 19);
}

#[test]
fn list_shows_cpu_and_memory_of_a_just_started_app_while_nobody_watched() {
    let fx = Fixture::new();
    // The background sampler takes one sample at boot and the next in ten
    // minutes: what `list` shows must come from `list` itself.
    fx.command()
        .env("PMDAEMON_SAMPLE_INTERVAL_MS", "600000")
        .arg("list")
        .assert()
        .success();
    let started: Vec<pmdaemon_core::api::ProcessInfo> = serde_json::from_str(&fx.ok(&[
        "start",
        "sh -c 'while :; do :; done'",
        "--name",
        "busy",
        "--json",
    ]))
    .unwrap();
    let pid = started[0].pid.unwrap();
    // It has used the CPU before anyone looks.
    assert!(wait_until(DEADLINE, || {
        pmdaemon_core::procinfo::stat(pid).is_some_and(|stat| stat.cpu_ticks >= 5)
    }));
    let busy = fx.get("busy-0");
    assert_eq!(busy.status, Status::Online);
    assert!(busy.memory_bytes.is_some_and(|m| m > 0), "{busy:?}");
    // Its first reading: its average since it started (no second reading
    // needed), which for a busy loop is well above nothing.
    assert!(
        busy.cpu_percent.is_some_and(|c| c > 1.0 && c < 150.0),
        "{busy:?}"
    );
}

#[test]
fn a_memory_limit_is_enforced_while_nobody_looks() {
    let fx = Fixture::new();
    // It grows past its limit only after the 5 s a look keeps the sampler
    // at full rate: only the memory limit itself can keep it there.
    std::fs::write(
        fx.work().join("hog.py"),
        "import time\ntime.sleep(6)\nhog = bytearray(80 << 20)\nfor i in range(0, len(hog), 4096): hog[i] = 1\ntime.sleep(300)\n",
    )
    .unwrap();
    // --json: no table printed, so not even the start looks.
    fx.ok(&["start", "hog.py", "--max-memory", "50M", "--json"]);
    // No list, no describe, no /metrics: only the daemon's log is read.
    // Twice: the limit is still checked after the restart it caused.
    let exceeded = |log: &str| log.matches("exceeded max_memory_restart").count();
    let mut last = String::new();
    let twice = wait_until(std::time::Duration::from_secs(40), || {
        last = std::fs::read_to_string(fx.home().join("daemon.log")).unwrap_or_default();
        exceeded(&last) >= 2
    });
    assert!(twice, "{last}");
    assert!(last.contains("hog"), "{last}");
}

#[test]
fn more_logged_instances_than_the_open_file_limit_allows_open_log_files_keep_logging() {
    let fx = Fixture::new();
    // 100 instances quiet until `go` + 2 more: 204 log files and 204 pipe
    // ends, more than a hard limit of 400 holds at once.
    fx.script(
        "chorus.sh",
        "#!/bin/sh\nwhile [ ! -f go ]; do sleep 1; done\nfor i in 1 2 3 4 5; do echo chorus-$i; echo chorus-$i >&2; sleep 0.1; done\nexec sleep 1000\n",
    );
    fx.script(
        "late.sh",
        "#!/bin/sh\nwhile [ ! -f go ]; do sleep 0.05; done\necho late-hello\nexec sleep 1000\n",
    );
    fx.script(
        "talker.sh",
        "#!/bin/sh\ni=0\nwhile :; do i=$((i+1)); echo tick-$i; sleep 0.02; done\n",
    );
    let mut apps = vec![
        serde_json::json!({"name": "late", "script": "./late.sh"}),
        serde_json::json!({"name": "talker", "script": "./talker.sh"}),
    ];
    apps.push(serde_json::json!({"name": "chorus", "script": "./chorus.sh", "instances": 100}));
    std::fs::write(
        fx.work().join("eco.json"),
        serde_json::json!({ "apps": apps }).to_string(),
    )
    .unwrap();
    fx.start_under_open_file_limits("eco.json", 400, 400);
    let all_online = wait_until(DEADLINE, || {
        let list = fx.list();
        list.len() == 102 && list.iter().all(|p| p.status == Status::Online)
    });
    assert!(all_online, "{}", fx.daemon_log_tail());
    let logs = fx.home().join("logs").canonicalize().unwrap();
    let daemon = fx.daemon_pid().unwrap();
    let held = |name: &str| {
        std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .any(|target| target == logs.join(name))
    };
    // Where the daemon could raise its limit (CAP_SYS_RESOURCE), nothing
    // needs closing: only what a user sees is checked then.
    let limits = std::fs::read_to_string(format!("/proc/{daemon}/limits")).unwrap();
    let constrained = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .and_then(|line| line.split_whitespace().nth(3)?.parse::<u64>().ok())
        .is_some_and(|soft| soft <= 400);
    if !constrained {
        eprintln!("the daemon raised its open-file limit: closing idle log files is not exercised");
    }
    // The talker's file keeps growing, and the late app's file, idle since
    // it was created (and so among the first closed), takes its line.
    helper::wait_file(&logs.join("talker-0-out.log"), |text| {
        text.contains("tick-50\n")
    });
    if constrained {
        assert!(held("talker-0-out.log"), "the talker's file is not open");
        assert!(
            !held("late-0-out.log"),
            "the idle late-0-out.log is still open"
        );
    }
    std::fs::write(fx.work().join("go"), "").unwrap();
    helper::wait_file(&logs.join("late-0-out.log"), |text| text == "late-hello\n");
    // Then every closed file of the chorus reopens at once: all their
    // lines arrive, and the daemon stays under its limit.
    for n in 0..100 {
        for stream in ["out", "err"] {
            let log = logs.join(format!("chorus-{n}-{stream}.log"));
            helper::wait_file(&log, |text| text.ends_with("chorus-5\n"));
            let text = std::fs::read_to_string(&log).unwrap();
            assert_eq!(text, "chorus-1\nchorus-2\nchorus-3\nchorus-4\nchorus-5\n");
        }
    }
    let tail = fx.ok(&["logs", "talker", "--lines", "3", "--out"]);
    assert!(tail.contains("tick-"), "{tail}");
    // Every line in order, none lost while files were closed and reopened.
    let text = std::fs::read_to_string(logs.join("talker-0-out.log")).unwrap();
    // The last line may be half written as it is read.
    let whole = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
    for (n, line) in whole.lines().enumerate() {
        assert_eq!(line, format!("tick-{}", n + 1));
    }
    let open = std::fs::read_dir(format!("/proc/{daemon}/fd"))
        .unwrap()
        .count();
    if constrained {
        assert!(open < 400, "{open} descriptors open");
    }
    assert!(!fx.daemon_log_tail().contains("Too many open files"));
}
