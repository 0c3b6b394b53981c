//! Start, list, stop, restart and delete, by every kind of target.

mod helper;

use helper::{alive, kill, Fixture};
use pmdaemon_core::api::Status;

#[test]
fn start_list_stop_restart_delete_by_every_kind_of_target() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web", "--instances", "2"]);
    fx.ok(&["start", "sleep", "--name", "worker", "--", "300"]);
    let list = fx.list();
    let names: Vec<(u32, &str, Status)> = list
        .iter()
        .map(|p| (p.id, p.name.as_str(), p.status))
        .collect();
    assert_eq!(
        names,
        [
            (1, "web-0", Status::Online),
            (2, "web-1", Status::Online),
            (3, "worker-0", Status::Online)
        ]
    );
    assert!(list.iter().all(|p| p.pid.is_some_and(alive)));

    // An instance by name.
    let old = fx.get("web-1").pid.unwrap();
    fx.ok(&["stop", "web-1"]);
    let web1 = fx.get("web-1");
    assert_eq!(web1.status, Status::Stopped);
    assert_eq!(web1.pid, None);
    assert!(!alive(old), "stop returned with the process still alive");
    assert_eq!(
        fx.get("web-0").status,
        Status::Online,
        "only web-1 was stopped"
    );

    // A numeric id.
    fx.ok(&["restart", "2"]);
    let web1 = fx.get("web-1");
    assert_eq!(web1.status, Status::Online);
    assert_eq!(web1.restarts, 1);

    // An app: all its instances.
    let pids: Vec<u32> = fx
        .list()
        .iter()
        .filter(|p| p.app == "web")
        .map(|p| p.pid.unwrap())
        .collect();
    fx.ok(&["stop", "web"]);
    assert!(fx
        .list()
        .iter()
        .filter(|p| p.app == "web")
        .all(|p| p.status == Status::Stopped));
    assert!(pids.iter().all(|pid| !alive(*pid)));
    assert_eq!(fx.get("worker-0").status, Status::Online);

    // `start <name>` brings an existing app back.
    fx.ok(&["start", "web"]);
    assert!(fx.list().iter().all(|p| p.status == Status::Online));

    // all.
    let pids: Vec<u32> = fx.list().iter().map(|p| p.pid.unwrap()).collect();
    fx.ok(&["stop", "all"]);
    assert!(fx.list().iter().all(|p| p.status == Status::Stopped));
    assert!(pids.iter().all(|pid| !alive(*pid)));
    fx.ok(&["restart", "all"]);
    assert!(fx.list().iter().all(|p| p.status == Status::Online));

    // The other verbs by id, instance, app and all.
    let status = |name: &str| fx.get(name).status;
    fx.ok(&["stop", "3"]);
    assert_eq!(status("worker-0"), Status::Stopped);
    fx.ok(&["start", "3"]);
    assert_eq!(status("worker-0"), Status::Online);
    fx.ok(&["stop", "web-0"]);
    fx.ok(&["start", "web-0"]);
    assert_eq!(status("web-0"), Status::Online);
    let restarts = |name: &str| fx.get(name).restarts;
    let before = (restarts("web-0"), restarts("web-1"), restarts("worker-0"));
    fx.ok(&["restart", "web-0"]);
    fx.ok(&["restart", "web"]);
    assert_eq!(
        (restarts("web-0"), restarts("web-1"), restarts("worker-0")),
        (before.0 + 2, before.1 + 1, before.2)
    );
    fx.ok(&["stop", "all"]);
    fx.ok(&["start", "all"]);
    assert!(fx.list().iter().all(|p| p.status == Status::Online));

    // Delete an instance, an app, an id, then all.
    fx.ok(&["delete", "web-0"]);
    let names = fx.names();
    assert_eq!(names, ["web-1", "worker-0"]);
    let worker = fx.get("worker-0").pid.unwrap();
    fx.ok(&["delete", "worker"]);
    assert!(!alive(worker));
    assert_eq!(fx.list().len(), 1);
    let web1 = fx.get("web-1").pid.unwrap();
    fx.ok(&["delete", "2"]);
    assert!(!alive(web1));
    assert!(fx.list().is_empty());
    fx.ok(&["start", "sleep 300", "--name", "last"]);
    fx.ok(&["delete", "all"]);
    assert!(fx.list().is_empty());
    assert!(
        fx.processes().is_empty(),
        "processes left: {:?}",
        fx.processes()
    );

    // Ids are never reused.
    fx.ok(&["start", "sleep 300", "--name", "again"]);
    assert_eq!(fx.get("again-0").id, 5);
}

#[test]
fn list_shows_the_seed_columns_and_json_goes_to_stdout_alone() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "web-app",
        "--instances",
        "2",
    ]);
    let table = fx.ok(&["list"]);
    for column in [
        "ID", "Name", "Status", "PID", "Port", "CPU (%)", "Memory", "Uptime", "Restarts",
    ] {
        assert!(table.contains(column), "{column} missing from\n{table}");
    }
    assert!(table.contains("│ web-app-0 │ online │"), "{table}");
    for alias in ["ls", "status"] {
        assert_eq!(fx.ok(&[alias]).lines().count(), table.lines().count());
    }
    let output = fx.output(&["list", "--json"]);
    assert!(
        output.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let first = &json[0];
    for field in [
        "id",
        "name",
        "app",
        "instance",
        "status",
        "pid",
        "port",
        "cpu_percent",
        "memory_bytes",
        "uptime_ms",
        "restarts",
    ] {
        assert!(first.get(field).is_some(), "{field} missing from {first}");
    }
}

#[test]
fn info_shows_command_logs_env_with_secrets_redacted_and_history() {
    let fx = Fixture::new();
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "web",
        "--env",
        "API_KEY=hunter2",
        "--env",
        "MODE=fast",
    ]);
    let detail = &fx.info("web")[0];
    assert_eq!(detail.command, ["sleep", "300"]);
    assert_eq!(detail.config.env["MODE"], "fast");
    assert_eq!(detail.config.env["API_KEY"], "[redacted]");
    assert!(detail.out_log.ends_with("logs/web-0-out.log"));
    assert!(detail.history.iter().any(|e| e.event == "started"));
    let text = fx.ok(&["info", "web"]);
    assert!(!text.contains("hunter2"), "{text}");
    assert!(text.contains("web-0"));
}

#[test]
fn environment_args_and_cwd_reach_the_child() {
    let fx = Fixture::new();
    let sub = fx.work().join("sub");
    std::fs::create_dir(&sub).unwrap();
    fx.script(
        "sub/show.sh",
        "#!/bin/sh\necho \"args=$* cwd=$(pwd) id=$PM2_INSTANCE_ID nai=$NODE_APP_INSTANCE app=$PMDAEMON_APP_NAME inst=$PMDAEMON_INSTANCE_NAME greeting=$GREETING inherited=$FROM_SHELL\"\nexec sleep 300\n",
    );
    fx.command()
        .env("FROM_SHELL", "yes")
        .args([
            "start",
            "./show.sh",
            "--cwd",
            "sub",
            "--name",
            "show",
            "--env",
            "GREETING=hello there",
            "--",
            "--verbose",
            "two words",
        ])
        .assert()
        .success();
    let log = fx.home().join("logs/show-0-out.log");
    assert!(helper::wait_until(helper::DEADLINE, || {
        std::fs::read_to_string(&log).is_ok_and(|s| s.contains("args="))
    }));
    let line = std::fs::read_to_string(&log).unwrap();
    let expected = format!(
        "args=--verbose two words cwd={} id=0 nai=0 app=show inst=show-0 greeting=hello there inherited=yes",
        sub.canonicalize().unwrap().display()
    );
    assert_eq!(line.trim(), expected);
}

#[test]
fn scripts_run_with_the_interpreter_their_extension_names() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("app.py"),
        "import sys, time\nprint('python', sys.version_info[0], flush=True)\ntime.sleep(300)\n",
    )
    .unwrap();
    std::fs::write(
        fx.work().join("job.sh"),
        "echo \"bash $BASH_VERSION\"\nexec sleep 300\n",
    )
    .unwrap();
    fx.ok(&["start", "app.py"]);
    fx.ok(&["start", "job.sh"]);
    let names = fx.names();
    assert_eq!(names, ["app-0", "job-0"]);
    assert_eq!(fx.info("app")[0].command, ["python3", "app.py"]);
    assert_eq!(fx.info("job")[0].command, ["bash", "job.sh"]);
    let out = fx.home().join("logs/app-0-out.log");
    assert!(helper::wait_until(helper::DEADLINE, || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.contains("python 3"))
    }));
    let out = fx.home().join("logs/job-0-out.log");
    assert!(helper::wait_until(helper::DEADLINE, || {
        std::fs::read_to_string(&out).is_ok_and(|s| s.starts_with("bash 5"))
    }));
}

#[test]
fn twenty_concurrent_starts_give_twenty_apps_with_distinct_ids() {
    let fx = Fixture::new();
    let children: Vec<_> = (0..20)
        .map(|i| {
            let mut command = fx.process();
            command
                .args(["start", "sleep 300", "--name", &format!("app{i}"), "--json"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::piped());
            command.spawn().unwrap()
        })
        .collect();
    for child in children {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let list = fx.list();
    assert_eq!(list.len(), 20);
    let mut ids: Vec<u32> = list.iter().map(|p| p.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
    assert!(list.iter().all(|p| p.status == Status::Online));
    // One daemon served them all.
    let daemons = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
            cmdline.ends_with(b"daemon\0")
                && environ
                    .split(|b| *b == 0)
                    .any(|e| e == format!("PMDAEMON_HOME={}", fx.home().display()).as_bytes())
        })
        .count();
    assert_eq!(daemons, 1);
}

#[test]
fn kill_stops_every_app_and_the_daemon_and_they_stay_stopped_until_resurrect() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "a"]);
    fx.ok(&["start", "sleep 300", "--name", "b"]);
    fx.ok(&["stop", "b"]);
    let pid = fx.get("a-0").pid.unwrap();
    let daemon = fx.daemon_pid().unwrap();
    let out = fx.ok(&["kill"]);
    assert!(out.contains("stopped 2 instance(s)"), "{out}");
    assert!(!alive(pid));
    assert!(!alive(daemon));
    assert!(!fx.home().join("pmdaemon.sock").exists());
    assert!(fx.ok(&["kill"]).contains("no daemon is running"));
    // The table survives, and what kill stopped stays stopped (as PM2
    // users expect), though a new daemon answers.
    assert_eq!(fx.get("a-0").status, Status::Stopped);
    assert!(fx.processes().is_empty(), "{:?}", fx.processes());
    let info = fx.ok(&["info", "a-0"]);
    assert!(info.contains("pmdaemon resurrect"), "{info}");
    // A second daemon start (a crash of this one) changes nothing.
    kill(fx.daemon_pid().unwrap(), libc::SIGKILL);
    assert_eq!(fx.get("a-0").status, Status::Stopped);
    // resurrect brings back what ran: a, not b.
    let out = fx.ok(&["resurrect"]);
    assert!(out.contains("resurrected: a-0"), "{out}");
    fx.wait_for("a-0", "resurrected", |p| p.status == Status::Online);
    assert_eq!(fx.get("b-0").status, Status::Stopped);
    assert!(fx.ok(&["resurrect"]).contains("nothing to resurrect"));
}

#[test]
fn a_daemon_that_dies_without_kill_brings_its_apps_back() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "a"]);
    let pid = fx.get("a-0").pid;
    kill(fx.daemon_pid().unwrap(), libc::SIGKILL);
    fx.wait_for("a-0", "resumed", |p| {
        p.status == Status::Online && p.pid.is_some() && p.pid != pid
    });
}

#[test]
fn the_socket_is_private_and_a_second_daemon_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let fx = Fixture::new();
    fx.ok(&["list"]);
    let mode = std::fs::metadata(fx.home().join("pmdaemon.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let err = fx.fails(&["daemon"]);
    assert!(err.contains("already running"), "{err}");
    assert!(
        fx.daemon_pid().is_some(),
        "the first daemon must be unharmed"
    );
    fx.ok(&["list"]);
}

#[test]
fn when_stop_returns_the_port_is_free() {
    let fx = Fixture::new();
    let port = helper::free_ports(1);
    let command = format!("python3 -m http.server {port} --bind 127.0.0.1");
    fx.ok(&["start", &command, "--name", "web"]);
    assert!(helper::wait_until(helper::DEADLINE, || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    }));
    fx.ok(&["stop", "web"]);
    std::net::TcpListener::bind(("127.0.0.1", port)).expect("the port is still held after stop");
}

#[test]
fn a_cli_of_another_version_is_told_so() {
    let fx = Fixture::new();
    fx.ok(&["list"]);
    let ask =
        |path: &str| helper::raw_request(&fx, "GET", path, "x-pmdaemon-version: 0.0.1-old\r\n", "");
    let answer = ask("/api/processes");
    assert!(answer.starts_with("HTTP/1.1 409"), "{answer}");
    assert!(
        answer.contains("this CLI is 0.0.1-old") && answer.contains("pmdaemon kill"),
        "{answer}"
    );
    // The version route stays open, so that any CLI can find out.
    assert!(ask("/api/version").starts_with("HTTP/1.1 200"));
}

#[test]
fn two_scripts_of_one_interpreter_get_the_scripts_names() {
    let fx = Fixture::new();
    for script in ["cpu-heavy.py", "io-app.py"] {
        std::fs::write(fx.work().join(script), "import time\ntime.sleep(300)\n").unwrap();
    }
    // As in the seed's best practices: no --name.
    fx.ok(&["start", "python3 cpu-heavy.py", "--instances", "2"]);
    fx.ok(&["start", "python3 io-app.py"]);
    let names = fx.names();
    assert_eq!(names, ["cpu-heavy-0", "cpu-heavy-1", "io-app-0"]);
    // A module or inline code is not a script: the program names it.
    fx.ok(&["start", "python3 -c 'import time; time.sleep(300)'"]);
    assert!(fx.list().iter().any(|p| p.name == "python3-0"));
}

#[test]
fn kill_ends_the_daemon_even_while_a_log_follower_is_connected() {
    let fx = Fixture::new();
    fx.ok(&["start", "sh -c 'echo up; exec sleep 300'", "--name", "web"]);
    let follower = fx
        .process()
        .args(["logs", "--follow", "--raw"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut follower = helper::Guarded::new(follower, helper::DEADLINE);
    let daemon = fx.daemon_pid().unwrap();
    // The follower's stream is live.
    let mut stdout = std::io::BufReader::new(follower.child.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stdout, &mut line).unwrap();
    assert_eq!(line, "up\n");
    fx.ok(&["kill"]);
    assert!(!alive(daemon));
    // The stream ends with the daemon.
    assert!(follower.wait().success(), "the stream did not end cleanly");
}

#[test]
fn two_kills_at_once_still_stop_an_app_that_ignores_sigterm() {
    let fx = Fixture::new();
    fx.script(
        "stubborn.sh",
        "#!/bin/sh\ntrap '' TERM\ntouch ready\nwhile :; do sleep 0.1; done\n",
    );
    fx.ok(&[
        "start",
        "./stubborn.sh",
        "--name",
        "s",
        "--kill-timeout",
        "2s",
    ]);
    assert!(helper::wait_until(helper::DEADLINE, || fx
        .work()
        .join("ready")
        .exists()));
    let pid = fx.get("s-0").pid.unwrap();
    let kills: Vec<std::process::Child> = (0..2)
        .map(|_| fx.process().arg("kill").spawn().unwrap())
        .collect();
    for kill in kills {
        assert!(helper::Guarded::new(kill, helper::DEADLINE)
            .wait()
            .success());
    }
    // The second kill waited for the first: the app got its SIGKILL.
    assert!(
        helper::wait_until(helper::DEADLINE, || !alive(pid)),
        "the app outlived the daemon"
    );
}

#[test]
fn a_grandchild_that_calls_setsid_does_not_survive_stop_or_a_crash() {
    let fx = Fixture::new();
    fx.script(
        "escape.sh",
        "#!/bin/sh\nsetsid sleep 1001 &\nsleep 1002 &\ntouch started\nexec sleep 1003\n",
    );
    fx.ok(&["start", "./escape.sh", "--name", "ss"]);
    helper::wait_file(&fx.work().join("started"), |_| true);
    assert!(helper::wait_until(helper::DEADLINE, || fx
        .processes()
        .len()
        == 3));
    fx.ok(&["stop", "ss"]);
    assert!(fx.processes().is_empty(), "{:?}", fx.processes());
    // A crash: the main process dies; what it left, in its group or not,
    // dies with it before the replacement starts.
    std::fs::remove_file(fx.work().join("started")).unwrap();
    fx.ok(&["start", "ss"]);
    helper::wait_file(&fx.work().join("started"), |_| true);
    assert!(helper::wait_until(helper::DEADLINE, || fx
        .processes()
        .len()
        == 3));
    let before = fx.processes();
    let leader = fx.get("ss-0").pid.unwrap();
    kill(leader, libc::SIGKILL);
    fx.wait_for("ss-0", "restarted", |p| {
        p.restarts == 1 && p.status == Status::Online
    });
    // Three processes again, all of the new run: none of the old survived.
    assert!(helper::wait_until(helper::DEADLINE, || {
        let now = fx.processes();
        now.len() == 3 && now.iter().all(|pid| !before.contains(pid))
    }));
    fx.ok(&["delete", "ss"]);
    assert!(fx.processes().is_empty(), "{:?}", fx.processes());
}

#[test]
fn restart_all_kills_what_escaped_every_instance_and_keeps_the_new_ones() {
    let fx = Fixture::new();
    // Each instance leaves a process outside its group (setsid); the
    // stops of `restart all` ask for their escapees all at once.
    fx.script(
        "escape.sh",
        "#!/bin/sh\nsetsid sleep 1001 &\ntouch \"started-$PM2_INSTANCE_ID-$$\"\nexec sleep 1003\n",
    );
    fx.ok(&["start", "./escape.sh", "--name", "many", "-i", "6"]);
    fx.ok(&["start", "./escape.sh", "--name", "more", "-i", "4"]);
    assert!(helper::wait_until(helper::DEADLINE, || fx
        .processes()
        .len()
        == 20));
    let before = fx.processes();
    fx.ok(&["restart", "all"]);
    assert!(
        helper::wait_until(helper::DEADLINE, || {
            let now = fx.processes();
            now.len() == 20 && now.iter().all(|pid| !before.contains(pid))
        }),
        "{:?} (before: {before:?})",
        fx.processes()
    );
    assert!(fx.list().iter().all(|p| p.status == Status::Online));
    fx.ok(&["delete", "all"]);
    assert!(fx.processes().is_empty(), "{:?}", fx.processes());
}
