//! Basic log capture: files per instance and stream, kept across restarts,
//! and a child that writes a lot is never blocked.
#![allow(clippy::unwrap_used)]

mod helper;

use helper::{wait_file, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::Status;

#[test]
fn stdout_and_stderr_are_appended_across_restarts_and_tailed() {
    let fx = Fixture::new();
    let out = fx.home().join("logs/talk-0-out.log");
    let err = fx.home().join("logs/talk-0-err.log");
    // The err line is written only once the out line is in its file (and a
    // moment later), so the order in which they were written is known.
    fx.script(
        "talk.sh",
        &format!(
            "#!/bin/sh\necho \"out $PM2_INSTANCE_ID\"\nuntil [ \"$(grep -c out '{out}')\" -gt \"$(cat '{err}' 2>/dev/null | grep -c err)\" ]; do sleep 0.01; done\nsleep 0.01\necho 'err line' >&2\nexec sleep 300\n",
            out = out.display(),
            err = err.display()
        ),
    );
    fx.ok(&["start", "./talk.sh", "--name", "talk"]);
    wait_file(&out, |s| s == "out 0\n");
    wait_file(&err, |s| s == "err line\n");
    fx.ok(&["restart", "talk"]);
    wait_file(&out, |s| s == "out 0\nout 0\n");
    wait_file(&err, |s| s == "err line\nerr line\n");
    let tail = fx.ok(&["logs", "talk", "--lines", "1", "--out"]);
    assert_eq!(tail, "talk-0 | out 0\n");
    assert_eq!(
        fx.ok(&["logs", "talk", "--lines", "1", "--out", "--raw"]),
        "out 0\n"
    );
    // stdout and stderr interleaved in the order they were written.
    let both = fx.ok(&["logs", "talk", "--lines", "50"]);
    assert_eq!(
        both,
        "talk-0 | out 0\ntalk-0 err | err line\ntalk-0 | out 0\ntalk-0 err | err line\n"
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
    // Rotated at the default 10M: count every file.
    assert!(
        wait_until(std::time::Duration::from_secs(60), || rotated_stream(&out)
            .0
            .len()
            == 67_108_864 + 14),
        "logs hold {} bytes",
        rotated_stream(&out).0.len()
    );
    assert!(rotated_stream(&out).0.ends_with(b"\ndone-writing\n"));
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
        tail.lines().count(),
        3,
        "a merged file is shown once: {tail}"
    );
    assert!(
        tail.lines().all(|l| l.starts_with("merged | out ")),
        "{tail}"
    );
    // flush empties the shared pair once, not once per instance.
    let flushed = fx.ok(&["flush", "merged"]);
    assert_eq!(flushed.lines().count(), 2, "{flushed}");
}

/// The bytes of `path`'s rotated files, oldest first, then of `path`
/// itself (`.N.gz` files decompressed), and how many rotated files there
/// were.
fn rotated_stream(path: &std::path::Path) -> (Vec<u8>, usize) {
    use std::io::Read;
    let mut all = Vec::new();
    let mut count = 0;
    for n in (1..1000).rev() {
        let plain = std::path::PathBuf::from(format!("{}.{n}", path.display()));
        let gz = std::path::PathBuf::from(format!("{}.{n}.gz", path.display()));
        if let Ok(file) = std::fs::File::open(&gz) {
            count += 1;
            let _ = flate2::read::GzDecoder::new(file).read_to_end(&mut all);
        }
        if let Ok(bytes) = std::fs::read(&plain) {
            count += 1;
            all.extend(bytes);
        }
    }
    all.extend(std::fs::read(path).unwrap_or_default());
    (all, count)
}

#[test]
fn rotation_under_continuous_writing_neither_loses_nor_duplicates_a_byte() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("writer.py"),
        "import sys\nfor i in range(200000):\n    sys.stdout.write(f'line {i}\\n')\nsys.stdout.flush()\nsys.stderr.write('done\\n')\nimport time\ntime.sleep(300)\n",
    )
    .unwrap();
    fx.start_json(r#"{"name": "writer", "script": "writer.py", "log_max_size": "100K", "log_max_files": 100}"#);
    let err = fx.home().join("logs/writer-0-err.log");
    assert!(wait_until(std::time::Duration::from_secs(60), || {
        std::fs::read_to_string(&err).is_ok_and(|s| s == "done\n")
    }));
    let out = fx.home().join("logs/writer-0-out.log");
    let expected: String = (0..200_000).map(|i| format!("line {i}\n")).collect();
    let mut stream = (Vec::new(), 0);
    assert!(
        wait_until(DEADLINE, || {
            stream = rotated_stream(&out);
            stream.0.len() == expected.len()
        }),
        "{} bytes captured, {} written",
        stream.0.len(),
        expected.len()
    );
    assert!(
        stream.0 == expected.as_bytes(),
        "the rotated files are not the exact stream"
    );
    assert!(stream.1 >= 15, "only {} rotations", stream.1);
    // Every rotated file is exactly log_max_size long.
    for n in 1..=stream.1 {
        assert_eq!(
            std::fs::metadata(out.with_extension(format!("log.{n}")))
                .unwrap()
                .len(),
            100 * 1024
        );
    }
}

#[test]
fn log_max_files_bounds_the_rotated_files_and_flush_empties_them() {
    let fx = Fixture::new();
    fx.start_json(r#"{"name": "big", "script": "sh", "args": ["-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done >&2; exec sleep 300"], "log_max_size": "100K", "log_max_files": 2}"#);
    let err = fx.home().join("logs/big-0-err.log");
    assert!(wait_until(std::time::Duration::from_secs(60), || {
        std::fs::read_to_string(&err).is_ok_and(|s| s == "done\n")
    }));
    let out = fx.home().join("logs/big-0-out.log");
    // stdout may still be draining: its last byte is the echo's newline.
    assert!(wait_until(DEADLINE, || rotated_stream(&out)
        .0
        .ends_with(b"x\n")));
    assert!(out.with_extension("log.1").exists() && out.with_extension("log.2").exists());
    assert!(
        !out.with_extension("log.3").exists(),
        "more rotated files than log_max_files"
    );
    let flushed = fx.ok(&["flush", "big"]);
    assert!(flushed.contains("big-0-out.log"), "{flushed}");
    assert_eq!(std::fs::metadata(&out).unwrap().len(), 0);
    assert!(!out.with_extension("log.1").exists());
    assert_eq!(std::fs::read_to_string(&err).unwrap(), "");
    assert!(fx
        .fails(&["flush", "nope"])
        .contains("no process or app named 'nope'"));
}

#[test]
fn a_log_file_deleted_by_hand_is_recreated() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sh -c 'while :; do echo tick; sleep 0.1; done'",
        "--name",
        "ticker",
    ]);
    let out = fx.home().join("logs/ticker-0-out.log");
    wait_file(&out, |s| s.contains("tick"));
    std::fs::remove_file(&out).unwrap();
    assert!(
        wait_until(DEADLINE, || std::fs::read_to_string(&out)
            .is_ok_and(|s| s.contains("tick"))),
        "the deleted log was not recreated"
    );
}

/// Starts `app` (one app object), whose stdout cannot be
/// written, and waits until it says on stderr that it wrote everything:
/// its output was dropped, not left to block it.
fn start_until_written(fx: &Fixture, app: &str) {
    let name: serde_json::Value = serde_json::from_str(app).unwrap();
    let name = name["name"].as_str().unwrap();
    fx.start_json(app);
    let err = fx.home().join(format!("logs/{name}-0-err.log"));
    assert!(
        wait_until(std::time::Duration::from_secs(30), || {
            std::fs::read_to_string(&err).is_ok_and(|s| s.contains("wrote-it-all"))
        }),
        "{name} was blocked by its stdout"
    );
    assert_eq!(fx.get(&format!("{name}-0")).status, Status::Online);
}

#[test]
fn an_unwritable_log_file_never_blocks_the_child_and_writing_resumes_when_it_can() {
    let fx = Fixture::new();
    // A log path under a regular file can never be created (even by root).
    std::fs::write(fx.work().join("not-a-dir"), "").unwrap();
    start_until_written(
        &fx,
        r#"{"name": "blocked", "script": "sh", "args": ["-c", "head -c 5000000 /dev/zero; echo wrote-it-all >&2; while true; do echo tick; sleep 0.05; done"], "out_file": "not-a-dir/out.log"}"#,
    );
    let daemon_log = fx.home().join("daemon.log");
    let log = std::fs::read_to_string(&daemon_log).unwrap();
    assert!(log.contains("not-a-dir/out.log"), "{log}");
    // The path becomes writable: the next lines land there, and the daemon
    // says how much was dropped meanwhile.
    std::fs::remove_file(fx.work().join("not-a-dir")).unwrap();
    std::fs::create_dir(fx.work().join("not-a-dir")).unwrap();
    let out = fx.work().join("not-a-dir/out.log");
    wait_file(&out, |s| s.contains("tick\n"));
    assert!(wait_until(DEADLINE, || {
        std::fs::read_to_string(&daemon_log).is_ok_and(|log| {
            log.lines().any(|l| {
                l.contains("not-a-dir/out.log: writing again;")
                    && l.split_whitespace()
                        .find_map(|w| w.parse::<u64>().ok())
                        .is_some_and(|dropped| dropped >= 5_000_000)
            })
        })
    }));
}

#[test]
fn a_full_disk_drops_output_with_one_warning_and_never_blocks_the_child() {
    let fx = Fixture::new();
    // /dev/full fails every write with ENOSPC, as a full disk does.
    start_until_written(
        &fx,
        r#"{"name": "full", "script": "sh", "args": ["-c", "head -c 5000000 /dev/zero; i=0; while [ $i -lt 30 ]; do echo tick; sleep 0.1; i=$((i+1)); done; echo wrote-it-all >&2; exec sleep 300"], "out_file": "/dev/full"}"#,
    );
    // Three seconds of retries (the file is reopened once a second), one
    // warning.
    let log = std::fs::read_to_string(fx.home().join("daemon.log")).unwrap();
    let warnings: Vec<&str> = log.lines().filter(|l| l.contains("/dev/full")).collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("No space left on device"), "{log}");
}

#[test]
fn logs_follow_streams_new_lines_across_rotation_and_ends_cleanly_on_ctrl_c() {
    use std::io::BufRead;
    let fx = Fixture::new();
    // Writes forever; the follower reads 300 lines, during which the file
    // rotates several times, whenever it happened to connect.
    std::fs::write(
        fx.work().join("slow.py"),
        "import sys, time\ni = 0\nwhile True:\n    print(f'n {i:06}', flush=True)\n    i += 1\n    time.sleep(0.01)\n",
    )
    .unwrap();
    fx.start_json(
        r#"{"name": "slow", "script": "slow.py", "log_max_size": 512, "log_max_files": 1000}"#,
    );
    let logs = fx.home().join("logs");
    let rotated = || {
        std::fs::read_dir(&logs)
            .unwrap()
            .filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("slow-0-out.log.")
            })
            .count()
    };
    let follower = fx
        .process()
        .args(["logs", "slow", "--out", "--follow", "--raw", "--lines", "0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut follower = helper::Guarded::new(follower, DEADLINE * 2);
    let stdout = std::io::BufReader::new(follower.child.stdout.take().unwrap());
    let mut seen: Vec<u32> = Vec::new();
    let mut rotated_at_first = 0;
    for line in stdout.lines() {
        let line = line.unwrap();
        let number: u32 = line
            .strip_prefix("n ")
            .unwrap_or_else(|| panic!("unexpected line {line:?}"))
            .parse()
            .unwrap();
        if seen.is_empty() {
            rotated_at_first = rotated();
        }
        seen.push(number);
        if seen.len() == 300 {
            break;
        }
    }
    let first = seen[0];
    assert_eq!(
        seen,
        (first..first + 300).collect::<Vec<_>>(),
        "a gap or a duplicate across rotations"
    );
    let rotations = rotated() - rotated_at_first;
    assert!(rotations >= 3, "only {rotations} rotations while following");
    // Ctrl-C ends it cleanly.
    helper::kill(follower.child.id(), libc::SIGINT);
    let status = follower.wait();
    assert!(status.success(), "{status:?}");
}

#[test]
fn logs_follow_prefixes_lines_with_their_instance() {
    use std::io::BufRead;
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sh -c 'echo hello; echo oops >&2; exec sleep 300'",
        "--name",
        "pair",
        "-i",
        "2",
    ]);
    // Whether the lines come before the follower connects (the tail) or
    // after (the stream), each is printed once.
    let follower = fx
        .process()
        .args(["logs", "--follow", "--lines", "10"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut follower = helper::Guarded::new(follower, DEADLINE);
    let stdout = std::io::BufReader::new(follower.child.stdout.take().unwrap());
    let mut lines: Vec<String> = stdout.lines().take(4).map(|l| l.unwrap()).collect();
    lines.sort();
    assert_eq!(
        lines,
        [
            "pair-0 err | oops",
            "pair-0 | hello",
            "pair-1 err | oops",
            "pair-1 | hello"
        ]
    );
    helper::kill(follower.child.id(), libc::SIGINT);
    assert!(follower.wait().success());
}

#[test]
fn logs_follow_json_prints_one_object_per_line() {
    use std::io::BufRead;
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sh -c 'echo hello; exec sleep 300'",
        "--name",
        "js",
    ]);
    let follower = fx
        .process()
        .args(["logs", "js", "--out", "--follow", "--json", "--lines", "10"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut follower = helper::Guarded::new(follower, DEADLINE);
    let mut stdout = std::io::BufReader::new(follower.child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let line: pmdaemon_core::api::LogLine = serde_json::from_str(&first).unwrap();
    assert_eq!(
        (line.instance.as_str(), line.line.as_str()),
        ("js-0", "hello")
    );
    helper::kill(follower.child.id(), libc::SIGINT);
    assert!(follower.wait().success());
}

fn is_timestamp(text: &str) -> bool {
    let bytes = text.as_bytes();
    text.len() == 19
        && [4, 7].iter().all(|i| bytes[*i] == b'-')
        && bytes[10] == b' '
        && [13, 16].iter().all(|i| bytes[*i] == b':')
        && text.chars().filter(|c| c.is_ascii_digit()).count() == 14
}

#[test]
fn timestamps_prefix_every_line_and_partial_lines_wait_for_their_end() {
    let fx = Fixture::new();
    fx.script(
        "parts.sh",
        "#!/bin/sh\nprintf 'first half'\nsleep 0.05\nprintf ' and the rest\\nsecond\\n'\nsleep 0.05\nprintf 'no newline'\nexec sleep 300\n",
    );
    fx.ok(&[
        "start",
        "./parts.sh",
        "--name",
        "parts",
        "--log-date-format",
        "YYYY-MM-DD HH:mm:ss",
    ]);
    let out = fx.home().join("logs/parts-0-out.log");
    // The unterminated last line is written after a short wait.
    let text = wait_file(&out, |s| s.lines().count() == 3);
    let lines: Vec<(&str, &str)> = text.lines().map(|l| l.split_once(": ").unwrap()).collect();
    assert!(lines.iter().all(|(time, _)| is_timestamp(time)), "{text}");
    let messages: Vec<&str> = lines.iter().map(|(_, m)| *m).collect();
    assert_eq!(
        messages,
        ["first half and the rest", "second", "no newline"]
    );
    let err = fx.fails(&[
        "start",
        "sleep 1",
        "--name",
        "bad",
        "--log-date-format",
        "%Q",
    ]);
    assert!(err.contains("invalid log_date_format '%Q'"), "{err}");
}

#[test]
fn log_type_json_writes_one_object_per_line() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sh -c 'echo hello; echo \"quote \\\" and tab\t\" >&2; exec sleep 300'",
        "--name",
        "js",
        "--log-type",
        "json",
    ]);
    let out = fx.home().join("logs/js-0-out.log");
    let err = fx.home().join("logs/js-0-err.log");
    wait_file(&err, |s| s.ends_with('\n'));
    wait_file(&out, |s| s.ends_with('\n'));
    let record: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&out).unwrap().trim()).unwrap();
    assert_eq!(record["message"], "hello");
    assert_eq!(record["app"], "js");
    assert_eq!(record["instance"], "js-0");
    assert_eq!(record["stream"], "out");
    assert!(record["time"].as_str().unwrap().contains('T'));
    let record: serde_json::Value =
        serde_json::from_str(std::fs::read_to_string(&err).unwrap().trim()).unwrap();
    assert_eq!(record["message"], "quote \" and tab\t");
    assert_eq!(record["stream"], "err");
}

#[test]
fn the_daemons_own_log_is_rotated() {
    let fx = Fixture::new();
    // The daemon inherits the environment of the command that starts it.
    fx.command()
        .env("PMDAEMON_LOG_MAX_SIZE", "2K")
        .arg("list")
        .assert()
        .success();
    for i in 0..30 {
        fx.ok(&[
            "start",
            "true",
            "--name",
            &format!("quick{i}"),
            "--no-autorestart",
        ]);
    }
    let log = fx.home().join("daemon.log");
    let rotated = fx.home().join("daemon.log.1");
    assert!(
        wait_until(DEADLINE, || rotated.exists()),
        "daemon.log was not rotated"
    );
    // The daemon goes on writing, into a fresh daemon.log: what it logs
    // next is there or (if another rotation came meanwhile) in a rotated
    // file, once.
    fx.ok(&["start", "true", "--name", "after", "--no-autorestart"]);
    let after_lines = || -> Vec<String> {
        let mut lines = Vec::new();
        for n in (1..=10).rev() {
            let rotated = fx.home().join(format!("daemon.log.{n}"));
            lines.extend(
                std::fs::read_to_string(rotated)
                    .unwrap_or_default()
                    .lines()
                    .map(String::from),
            );
        }
        lines.extend(
            std::fs::read_to_string(&log)
                .unwrap_or_default()
                .lines()
                .map(String::from),
        );
        lines.retain(|l| l.contains("after-0"));
        lines
    };
    assert!(wait_until(DEADLINE, || !after_lines().is_empty()));
    let mut unique = after_lines();
    unique.dedup();
    assert_eq!(unique, after_lines(), "a line was written twice");
    assert!(std::fs::metadata(&log).unwrap().len() > 0);
}

#[test]
fn rotated_files_are_gzipped_without_losing_a_byte_and_flush_removes_them() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("writer.py"),
        "import sys\nfor i in range(200000):\n    sys.stdout.write(f'line {i}\\n')\nsys.stdout.flush()\nsys.stderr.write('done\\n')\nimport time\ntime.sleep(300)\n",
    )
    .unwrap();
    fx.ok(&[
        "start",
        "writer.py",
        "--log-max-size",
        "100K",
        "--log-max-files",
        "100",
        "--log-compress",
    ]);
    let err = fx.home().join("logs/writer-0-err.log");
    assert!(wait_until(std::time::Duration::from_secs(60), || {
        std::fs::read_to_string(&err).is_ok_and(|s| s == "done\n")
    }));
    let out = fx.home().join("logs/writer-0-out.log");
    let logs = fx.home().join("logs");
    let names = || -> Vec<String> {
        std::fs::read_dir(&logs)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect()
    };
    let expected: String = (0..200_000).map(|i| format!("line {i}\n")).collect();
    let mut stream = (Vec::new(), 0);
    assert!(
        wait_until(DEADLINE, || {
            stream = rotated_stream(&out);
            // Every rotated file ends up compressed.
            stream.0.len() == expected.len()
                && names()
                    .iter()
                    .all(|n| !n.contains("-out.log.") || n.ends_with(".gz"))
        }),
        "{} bytes captured, {} written; files: {:?}",
        stream.0.len(),
        expected.len(),
        names()
    );
    assert!(
        stream.0 == expected.as_bytes(),
        "the rotated files are not the exact stream"
    );
    assert!(stream.1 >= 10, "only {} rotated files", stream.1);
    // Compressed files keep their content's time: older numbers are older.
    let modified = |n: usize| {
        std::fs::metadata(logs.join(format!("writer-0-out.log.{n}.gz")))
            .unwrap()
            .modified()
            .unwrap()
    };
    for n in 2..=stream.1 {
        assert!(
            modified(n) <= modified(n - 1),
            ".{n}.gz is newer than .{}.gz",
            n - 1
        );
    }
    let info = fx.ok(&["info", "writer"]);
    assert!(info.contains("100.0KB, 100 files, gzipped"), "{info}");
    fx.ok(&["flush", "writer"]);
    assert_eq!(
        names()
            .iter()
            .filter(|n| n.contains("-out.log."))
            .collect::<Vec<_>>(),
        Vec::<&String>::new()
    );
}

#[test]
fn a_chatty_childs_pipe_grows_and_a_quiet_ones_does_not() {
    let fx = Fixture::new();
    // F_GETPIPE_SZ is 1032 on Linux.
    let script = "import fcntl, os, sys, time\nif sys.argv[1] == 'chatty':\n    block = b'x' * (1 << 20)\n    for _ in range(64):\n        os.write(1, block)\nif sys.argv[1] == 'burst':\n    os.write(1, b'x' * (256 << 10))\nsys.stderr.write(f'pipe {fcntl.fcntl(1, 1032)}\\n')\nsys.stderr.flush()\ntime.sleep(300)\n";
    std::fs::write(fx.work().join("pipe.py"), script).unwrap();
    fx.ok(&["start", "pipe.py", "--name", "chatty", "--", "chatty"]);
    fx.ok(&["start", "pipe.py", "--name", "quiet", "--", "quiet"]);
    // One burst (a banner, a stack trace) is not chattiness.
    fx.ok(&["start", "pipe.py", "--name", "burst", "--", "burst"]);
    let size = |name: &str| -> Option<u64> {
        let text =
            std::fs::read_to_string(fx.home().join(format!("logs/{name}-0-err.log"))).ok()?;
        text.strip_prefix("pipe ")?.trim().parse().ok()
    };
    assert!(wait_until(DEADLINE, || ["chatty", "quiet", "burst"]
        .iter()
        .all(|name| size(name).is_some())));
    assert_eq!(size("chatty"), Some(1 << 20));
    assert_eq!(size("quiet"), Some(64 << 10));
    assert_eq!(size("burst"), Some(64 << 10));
}

#[test]
fn logs_of_all_apps_are_interleaved_in_the_order_they_were_written() {
    let fx = Fixture::new();
    let a_out = fx.home().join("logs/a-0-out.log");
    let b_out = fx.home().join("logs/b-0-out.log");
    // Each waits until the other's line is in its log file, so the order
    // of the lines is known; the pauses keep their times apart.
    let wait = |file: &std::path::Path, text: &str| {
        format!(
            "until grep -q {text} '{}' 2>/dev/null; do sleep 0.01; done; sleep 0.05",
            file.display()
        )
    };
    fx.script(
        "a.sh",
        &format!(
            "#!/bin/sh\necho a1\n{}\necho a2\n{}\necho a3\nexec sleep 300\n",
            wait(&b_out, "b1"),
            wait(&b_out, "b2")
        ),
    );
    fx.script(
        "b.sh",
        &format!(
            "#!/bin/sh\n{}\necho b1\n{}\necho b2\nexec sleep 300\n",
            wait(&a_out, "a1"),
            wait(&a_out, "a2")
        ),
    );
    fx.ok(&["start", "./a.sh", "--name", "a"]);
    fx.ok(&["start", "./b.sh", "--name", "b"]);
    wait_file(&a_out, |s| s.contains("a3"));
    assert_eq!(
        fx.ok(&["logs", "--out"]),
        "a-0 | a1\nb-0 | b1\na-0 | a2\nb-0 | b2\na-0 | a3\n"
    );
}

#[test]
fn the_log_budget_deletes_the_oldest_rotated_logs_and_nothing_else() {
    let fx = Fixture::new();
    // The daemon inherits the environment of the command that starts it.
    fx.command()
        .env("PMDAEMON_LOG_BUDGET", "300K")
        .arg("list")
        .assert()
        .success();
    // Another program's rotated log beside ours.
    std::fs::write(fx.work().join("syslog.1"), vec![b'x'; 1 << 20]).unwrap();
    fx.start_json(r#"{"name": "big", "script": "sh", "args": ["-c", "head -c 3000000 /dev/zero | tr '\\0' x; echo; echo done >&2; exec sleep 300"], "out_file": "app.log", "log_max_size": "100K", "log_max_files": 100}"#);
    let app_log = fx.work().join("app.log");
    let ours = || -> (u64, usize) {
        let mut total = 0;
        let mut files = 0;
        for entry in std::fs::read_dir(fx.work()).unwrap() {
            let entry = entry.unwrap();
            // A file the budget deletes between the listing and its
            // metadata is gone: it does not count.
            if entry.file_name().to_string_lossy().starts_with("app.log") {
                if let Ok(meta) = entry.metadata() {
                    total += meta.len();
                    files += 1;
                }
            }
        }
        (total, files)
    };
    assert!(
        wait_until(DEADLINE, || rotated_stream(&app_log).0.ends_with(b"x\n")
            && ours().0 <= 300 * 1024),
        "our logs hold {:?}",
        ours()
    );
    assert!(ours().1 >= 2, "the newest rotated files are kept");
    assert_eq!(
        std::fs::metadata(fx.work().join("syslog.1")).unwrap().len(),
        1 << 20,
        "a file that is not ours was touched"
    );
    let log = std::fs::read_to_string(fx.home().join("daemon.log")).unwrap();
    assert!(log.contains("log budget: deleted"), "{log}");
}

#[test]
fn stdout_and_stderr_sharing_one_file_never_split_each_others_lines() {
    let fx = Fixture::new();
    // Half a stdout line, a whole stderr line once that is on disk, then
    // the rest of the stdout line.
    std::fs::write(
        fx.work().join("mix.py"),
        "import os, sys, time\nfor i in range(5):\n    sys.stdout.write(f'out-{i}-start '); sys.stdout.flush()\n    sys.stderr.write(f'err-{i}\\n'); sys.stderr.flush()\n    while f'err-{i}' not in open('both.log').read(): time.sleep(0.01)\n    sys.stdout.write('end\\n'); sys.stdout.flush()\nprint('done', flush=True)\ntime.sleep(300)\n",
    )
    .unwrap();
    fx.start_json(r#"{"name": "mix", "script": "mix.py", "log_file": "both.log"}"#);
    let both = fx.work().join("both.log");
    let text = wait_file(&both, |s| s.contains("done\n"));
    for line in text.lines() {
        assert!(
            !(line.contains("out-") && line.contains("err-")),
            "a line mixes both streams: {line:?} in\n{text}"
        );
    }
    for i in 0..5 {
        assert!(text.contains(&format!("err-{i}\n")), "{text}");
    }
}

#[test]
fn a_log_that_is_not_a_regular_file_is_never_rotated() {
    use std::os::unix::fs::FileTypeExt;
    let fx = Fixture::new();
    start_until_written(
        &fx,
        r#"{"name": "quiet", "script": "sh", "args": ["-c", "head -c 5000000 /dev/zero; echo wrote-it-all >&2; exec sleep 300"], "out_file": "/dev/null", "log_max_size": "1K"}"#,
    );
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    assert!(!std::path::Path::new("/dev/null.1").exists());
    let log = std::fs::read_to_string(fx.home().join("daemon.log")).unwrap();
    assert!(!log.contains("rotate"), "{log}");
}

#[test]
fn a_follower_of_many_files_uses_one_inotify_instance() {
    use std::io::BufRead;
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sh -c 'echo up; exec sleep 300'",
        "--name",
        "many",
        "-i",
        "4",
    ]);
    let daemon = fx.daemon_pid().unwrap();
    let inotify = || {
        std::fs::read_dir(format!("/proc/{daemon}/fd"))
            .unwrap()
            .filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
            .filter(|target| target.to_string_lossy().contains("inotify"))
            .count()
    };
    let before = inotify();
    // Eight files: stdout and stderr of four instances.
    let follower = fx
        .process()
        .args(["logs", "many", "--follow", "--lines", "1"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut follower = helper::Guarded::new(follower, DEADLINE);
    let mut stdout = std::io::BufReader::new(follower.child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("| up"), "{line}");
    assert_eq!(inotify(), before + 1);
}

#[test]
fn colours_follow_no_color_and_clicolor_force() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sh",
        "--name",
        "c",
        "--",
        "-c",
        "echo hello; exec sleep 300",
    ]);
    helper::wait_file(&fx.home().join("logs/c-0-out.log"), |t| t.contains("hello"));
    let logs = |vars: &[(&str, &str)]| {
        let mut command = fx.command();
        command.args(["logs", "c", "--lines", "5"]);
        for (key, value) in vars {
            command.env(key, value);
        }
        String::from_utf8(command.output().unwrap().stdout).unwrap()
    };
    assert!(!logs(&[]).contains('\x1b'), "a pipe gets no colour");
    assert!(logs(&[("CLICOLOR_FORCE", "1")]).contains("\x1b["));
    assert!(!logs(&[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")]).contains('\x1b'));
    let error = fx
        .command()
        .args(["stop", "nope"])
        .env("CLICOLOR_FORCE", "1")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&error.stderr).starts_with("\x1b[1;31merror:\x1b[0m no process")
    );
}
