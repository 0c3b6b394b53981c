//! Basic log capture: files per instance and stream, kept across restarts,
//! and a child that writes a lot is never blocked.

mod helper;

use helper::{wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::Status;

#[test]
fn stdout_and_stderr_are_appended_across_restarts_and_tailed() {
    let fx = Fixture::new();
    fx.script(
        "talk.sh",
        "#!/bin/sh\necho \"out $PM2_INSTANCE_ID\"\necho 'err line' >&2\nexec sleep 300\n",
    );
    fx.ok(&["start", "./talk.sh", "--name", "talk"]);
    let out = fx.home().join("logs/talk-0-out.log");
    let err = fx.home().join("logs/talk-0-err.log");
    assert!(wait_until(DEADLINE, || std::fs::read_to_string(&out)
        .is_ok_and(|s| s == "out 0\n")));
    fx.ok(&["restart", "talk"]);
    assert!(wait_until(DEADLINE, || std::fs::read_to_string(&out)
        .is_ok_and(|s| s == "out 0\nout 0\n")));
    assert!(wait_until(DEADLINE, || std::fs::read_to_string(&err)
        .is_ok_and(|s| s == "err line\nerr line\n")));
    let tail = fx.ok(&["logs", "talk", "--lines", "1", "--out"]);
    assert_eq!(
        tail.lines()
            .filter(|l| !l.starts_with("==>"))
            .collect::<Vec<_>>(),
        ["out 0"]
    );
    let both = fx.ok(&["logs", "talk", "--lines", "50"]);
    assert!(
        both.contains("talk-0-out.log") && both.contains("talk-0-err.log"),
        "{both}"
    );
    let all = fx.ok(&["logs"]);
    assert!(all.contains("err line"), "{all}");
}

#[test]
fn a_child_writing_a_lot_is_never_blocked_and_nothing_is_lost() {
    let fx = Fixture::new();
    // 64 MiB as fast as possible, then a marker; a blocked pipe would stall
    // it forever.
    fx.ok(&[
        "start",
        "sh -c 'head -c 67108864 /dev/zero; echo; echo done-writing; exec sleep 300'",
        "--name",
        "chatty",
    ]);
    let out = fx.home().join("logs/chatty-0-out.log");
    assert!(
        wait_until(std::time::Duration::from_secs(60), || std::fs::metadata(
            &out
        )
        .is_ok_and(|m| m.len() == 67_108_864 + 14)),
        "log has {:?} bytes",
        std::fs::metadata(&out).map(|m| m.len())
    );
    assert_eq!(fx.get("chatty-0").status, Status::Online);
    assert_eq!(fx.get("chatty-0").restarts, 0);
}

#[test]
fn output_of_quickly_restarting_processes_is_never_overwritten() {
    let fx = Fixture::new();
    // 11 runs in quick succession, each writing 50 numbered lines to both
    // streams: the pump of one run still drains while the next one starts.
    fx.script(
        "burst.sh",
        "#!/bin/sh\ni=0\nwhile [ $i -lt 50 ]; do echo \"out $$ $i\"; echo \"err $$ $i\" >&2; i=$((i+1)); done\nexit 1\n",
    );
    fx.ok(&[
        "start",
        "./burst.sh",
        "--name",
        "burst",
        "--max-restarts",
        "10",
    ]);
    fx.wait_status("burst-0", Status::Errored);
    for stream in ["out", "err"] {
        let path = fx.home().join(format!("logs/burst-0-{stream}.log"));
        let complete = wait_until(DEADLINE, || {
            std::fs::read_to_string(&path).is_ok_and(|s| s.lines().count() == 11 * 50)
        });
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            complete,
            "{stream}: {} lines, expected 550",
            text.lines().count()
        );
        assert!(
            text.lines()
                .all(|l| l.starts_with(stream) && l.split(' ').count() == 3),
            "{text}"
        );
    }
}

#[test]
fn out_file_error_file_and_merge_logs_choose_where_output_goes() {
    let fx = Fixture::new();
    fx.script("say.sh", "#!/bin/sh\necho \"out $PM2_INSTANCE_ID\"\necho \"err $PM2_INSTANCE_ID\" >&2\nexec sleep 300\n");
    std::fs::write(
        fx.work().join("eco.json"),
        r#"{"apps": [
            {"name": "own", "script": "./say.sh", "out_file": "logs/own.out", "error_file": "logs/own.err"},
            {"name": "split", "script": "./say.sh", "instances": 2, "log_file": "logs/split.log"},
            {"name": "merged", "script": "./say.sh", "instances": 3, "merge_logs": true}
        ]}"#,
    )
    .unwrap();
    fx.ok(&["start", "eco.json"]);
    let read = |path: std::path::PathBuf, lines: usize| {
        assert!(
            wait_until(DEADLINE, || std::fs::read_to_string(&path)
                .is_ok_and(|s| s.lines().count() == lines)),
            "{}: {:?}",
            path.display(),
            std::fs::read_to_string(&path)
        );
        let mut lines: Vec<String> = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .map(String::from)
            .collect();
        lines.sort();
        lines
    };
    assert_eq!(read(fx.work().join("logs/own.out"), 1), ["out 0"]);
    assert_eq!(read(fx.work().join("logs/own.err"), 1), ["err 0"]);
    // One log_file for both streams, one per instance.
    assert_eq!(
        read(fx.work().join("logs/split-1.log"), 2),
        ["err 1", "out 1"]
    );
    // merge_logs: all instances in one pair of files.
    assert_eq!(
        read(fx.home().join("logs/merged-out.log"), 3),
        ["out 0", "out 1", "out 2"]
    );
    assert_eq!(fx.info("own")[0].out_log, fx.work().join("logs/own.out"));
    let tail = fx.ok(&["logs", "merged", "--out"]);
    assert_eq!(
        tail.matches("merged-out.log").count(),
        1,
        "a merged file is shown once: {tail}"
    );
}
