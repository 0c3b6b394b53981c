//! What a PM2 user types and what their Node apps expect: the IPC channel
//! (`process.send('ready')` with `wait_ready`, `shutdown_with_message`), and
//! PM2's verbs (`startOrReload`, `scale +N`, several targets, `jlist`,
//! `reset`, `init`, …).
#![allow(clippy::unwrap_used)]

mod helper;

use std::time::Duration;

use helper::{need, wait_file, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::{ExitReason, Status};

#[test]
fn a_node_app_that_sends_ready_with_wait_ready_is_ready_and_not_restarted() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("app.js"),
        "setTimeout(() => process.send('ready'), 200);\nsetInterval(() => {}, 1000);\n",
    )
    .unwrap();
    fx.start_json(
        r#"{"name": "ready-app", "script": "app.js", "wait_ready": true, "listen_timeout": 20000}"#,
    );
    let ready = fx.wait_for("ready-app-0", "ready", |p| p.ready);
    assert_eq!(ready.status, Status::Online);
    assert_eq!(ready.restarts, 0);
    // No other way to readiness exists with wait_ready: without the message
    // the instance stays unready.
    std::fs::write(
        fx.work().join("silent.js"),
        "setInterval(() => {}, 1000);\n",
    )
    .unwrap();
    fx.ok(&["start", "silent.js", "--sd-notify", "--name", "silent"]);
    let pid = fx.wait_status("silent-0", Status::Online).pid;
    fx.ok(&[
        "start",
        "app.js",
        "--sd-notify",
        "--name",
        "second",
        "--wait-ready",
    ]);
    let silent = fx.get("silent-0");
    assert!(!silent.ready, "{silent:?}");
    assert_eq!(silent.pid, pid);
    let again = fx.get("ready-app-0");
    assert_eq!((again.restarts, again.pid), (0, ready.pid));
}

#[test]
fn a_shared_port_node_cluster_has_both_its_socket_and_its_channel() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    let port = helper::free_ports(1);
    // fd 3 is the shared socket (LISTEN_FDS), the channel sits after it.
    std::fs::write(
        fx.work().join("web.js"),
        "require('http').createServer((q, r) => r.end('fds ' + process.env.LISTEN_FDS + ' ' + typeof process.send))\n\
         .listen(Number(process.env.PORT), () => process.send('ready'));\n",
    )
    .unwrap();
    let port_text = port.to_string();
    fx.ok(&[
        "start",
        "web.js",
        "--name",
        "web",
        "-i",
        "2",
        "--port",
        &port_text,
        "--sd-notify",
        "--wait-ready",
    ]);
    for name in ["web-0", "web-1"] {
        let instance = fx.get(name);
        assert!(instance.ready && instance.restarts == 0, "{instance:?}");
    }
    assert_eq!(helper::http_get(port).as_deref(), Some("fds 1 function"));
    // A rolling reload waits for each new process's 'ready'.
    fx.ok(&["reload", "web"]);
    assert!(fx
        .list()
        .iter()
        .all(|p| p.ready && p.status == Status::Online));
}

#[test]
fn shutdown_with_message_stops_a_node_app_with_the_shutdown_message() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    let said = fx.work().join("said.txt");
    std::fs::write(
        fx.work().join("app.js"),
        format!(
            "const fs = require('fs');\n\
             process.on('message', (m) => {{ if (m === 'shutdown') {{ fs.writeFileSync({path:?}, 'shutdown'); process.exit(0); }} }});\n\
             process.on('SIGTERM', () => {{ fs.writeFileSync({path:?}, 'SIGTERM'); process.exit(0); }});\n\
             fs.writeFileSync({path:?}, 'up');\n",
            path = said.display().to_string()
        ),
    )
    .unwrap();
    fx.start_json(
        r#"{"name": "polite", "script": "app.js", "shutdown_with_message": true, "kill_timeout": 20000}"#,
    );
    wait_file(&said, |s| s == "up");
    let began = std::time::Instant::now();
    fx.ok(&["stop", "polite"]);
    assert_eq!(std::fs::read_to_string(&said).unwrap(), "shutdown");
    assert!(began.elapsed() < Duration::from_secs(10));
    let stopped = fx.get("polite-0");
    assert_eq!(stopped.status, Status::Stopped);
    assert_eq!(stopped.last_exit, Some(ExitReason::Code(0)));
    // Without the field, the same app gets the stop signal.
    std::fs::write(&said, "").unwrap();
    fx.ok(&["start", "app.js", "--name", "plain"]);
    wait_file(&said, |s| s == "up");
    fx.ok(&["stop", "plain"]);
    assert_eq!(std::fs::read_to_string(&said).unwrap(), "SIGTERM");
}

#[test]
fn the_ipc_channel_does_not_keep_a_finished_node_app_alive() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("once.js"),
        "console.log(typeof process.send, process.env.NODE_CHANNEL_FD);\n",
    )
    .unwrap();
    fx.ok(&["start", "once.js", "--no-autorestart"]);
    let done = fx.wait_for("once-0", "exited", |p| p.last_exit.is_some());
    assert_eq!(done.last_exit, Some(ExitReason::Code(0)));
    let logs = fx.ok(&["logs", "once", "--raw", "--out"]);
    // Node removes the variable once it has opened the channel.
    assert!(logs.contains("function undefined"), "{logs}");
    assert!(wait_until(DEADLINE, || fx.get("once-0").status == Status::Stopped));
}

#[test]
fn a_channel_variable_from_the_caller_never_reaches_a_non_node_app() {
    let fx = Fixture::new();
    let seen = fx.work().join("seen.txt");
    fx.script(
        "show.sh",
        "#!/bin/sh\necho \"fd=$NODE_CHANNEL_FD mode=$NODE_CHANNEL_SERIALIZATION_MODE\" > seen.txt\nexec sleep 300\n",
    );
    // As when a deploy script run by Node's child_process.fork calls pmdaemon.
    fx.command()
        .env("NODE_CHANNEL_FD", "3")
        .env("NODE_CHANNEL_SERIALIZATION_MODE", "json")
        .args(["start", "./show.sh"])
        .assert()
        .success();
    wait_file(&seen, |s| s == "fd= mode=\n");
}

#[test]
fn garbage_on_the_channel_and_a_closed_channel_harm_nothing() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    let said = fx.work().join("said.txt");
    // Raw bytes straight onto the channel's descriptor: not JSON, a line
    // longer than the daemon reads, then a real 'ready'; then the app
    // closes its end, so 'shutdown' cannot reach it any more.
    std::fs::write(
        fx.work().join("rude.js"),
        format!(
            "const fs = require('fs');\n\
             const fd = Number(process.channel && process.channel.fd);\n\
             fs.writeSync(fd > 0 ? fd : 4, 'not json\\n{{{{{{\\n' + 'x'.repeat(70000) + '\\n\\u00ff\\n');\n\
             process.send('ready');\n\
             process.on('SIGTERM', () => {{ fs.writeFileSync({path:?}, 'SIGTERM'); process.exit(0); }});\n\
             setTimeout(() => {{ process.disconnect(); fs.writeFileSync({path:?}, 'closed'); }}, 100);\n\
             setInterval(() => {{}}, 1000);\n",
            path = said.display().to_string()
        ),
    )
    .unwrap();
    fx.start_json(
        r#"{"name": "rude", "script": "rude.js", "wait_ready": true, "shutdown_with_message": true, "kill_timeout": 20000}"#,
    );
    let ready = fx.wait_for("rude-0", "ready", |p| p.ready);
    wait_file(&said, |s| s == "closed");
    let began = std::time::Instant::now();
    fx.ok(&["stop", "rude"]);
    // The message could not be sent: the stop signal went instead, at once.
    assert_eq!(std::fs::read_to_string(&said).unwrap(), "SIGTERM");
    assert!(began.elapsed() < Duration::from_secs(10));
    assert_eq!(fx.get("rude-0").restarts, 0);
    assert!(ready.pid.is_some());
    // The daemon is as well as before.
    fx.ok(&["start", "sleep 300", "--name", "after"]);
    fx.wait_status("after-0", Status::Online);
}

/// A command line clap refuses (exit status 2); its message.
fn usage_error(fx: &Fixture, args: &[&str]) -> String {
    let output = fx.output(args);
    assert_eq!(
        output.status.code(),
        Some(2),
        "pmdaemon {args:?} should be refused"
    );
    String::from_utf8(output.stderr).unwrap()
}

/// The instance names of `app`, in order.
fn instances_of(fx: &Fixture, app: &str) -> Vec<String> {
    fx.list()
        .into_iter()
        .filter(|p| p.app == app)
        .map(|p| p.name)
        .collect()
}

#[test]
fn scale_plus_and_minus_count_from_the_instances_there_are() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "w"]);
    fx.ok(&["scale", "w", "+2"]);
    assert_eq!(instances_of(&fx, "w"), ["w-0", "w-1", "w-2"]);
    fx.ok(&["scale", "w", "-1"]);
    assert_eq!(instances_of(&fx, "w"), ["w-0", "w-1"]);
    fx.ok(&["scale", "w", "3"]);
    assert_eq!(instances_of(&fx, "w").len(), 3);
    let err = fx.fails(&["scale", "w", "-3"]);
    assert!(err.contains("would delete it"), "{err}");
    assert_eq!(instances_of(&fx, "w").len(), 3);
    let err = usage_error(&fx, &["scale", "w", "+x"]);
    assert!(err.contains("+2, -1"), "{err}");
}

#[test]
fn several_targets_at_once_and_none_acted_on_when_one_is_unknown() {
    let fx = Fixture::new();
    for name in ["a", "b", "c"] {
        fx.ok(&["start", "sleep 300", "--name", name]);
    }
    let err = fx.fails(&["stop", "a", "nope"]);
    assert!(err.contains("nope"), "{err}");
    assert_eq!(fx.get("a-0").status, Status::Online);
    fx.ok(&["stop", "a", "b"]);
    assert_eq!(fx.get("a-0").status, Status::Stopped);
    assert_eq!(fx.get("b-0").status, Status::Stopped);
    assert_eq!(fx.get("c-0").status, Status::Online);
    let out = fx.ok(&["restart", "a", "b-0", "--json"]);
    let restarted: Vec<pmdaemon_core::api::ProcessInfo> = serde_json::from_str(&out).unwrap();
    assert_eq!(restarted.len(), 2);
    assert!(restarted.iter().all(|p| p.status == Status::Online));
    fx.ok(&["delete", "a", "b"]);
    assert_eq!(fx.names(), ["c-0"]);
}

/// An app (a shell script) that writes `$COLOR` and its pid to
/// `<name>.txt`, then sleeps.
fn color_app(fx: &Fixture, name: &str) -> std::path::PathBuf {
    fx.script(
        &format!("{name}.sh"),
        &format!("#!/bin/sh\necho \"$COLOR $$\" > {name}.txt\nexec sleep 300\n"),
    );
    fx.work().join(format!("{name}.txt"))
}

#[test]
fn start_or_reload_starts_what_is_missing_and_reloads_what_exists_with_its_changes() {
    let fx = Fixture::new();
    let a = color_app(&fx, "a");
    let b = color_app(&fx, "b");
    let app = |name: &str, color: &str| {
        format!(r#"{{"name": "{name}", "script": "{name}.sh", "env": {{"COLOR": "{color}"}}}}"#)
    };
    let file = fx.work().join("eco.json");
    std::fs::write(&file, format!(r#"{{"apps": [{}]}}"#, app("a", "red"))).unwrap();
    fx.ok(&["startOrReload", "eco.json"]);
    wait_file(&a, |s| s.starts_with("red "));
    let first = fx.get("a-0");
    std::fs::write(
        &file,
        format!(
            r#"{{"apps": [{}, {}]}}"#,
            app("a", "blue"),
            app("b", "green")
        ),
    )
    .unwrap();
    let out = fx.ok(&["startOrGracefulReload", "eco.json"]);
    assert!(out.contains("a: reloaded (changed: env)"), "{out}");
    assert!(out.contains("b: started"), "{out}");
    wait_file(&a, |s| s.starts_with("blue "));
    wait_file(&b, |s| s.starts_with("green "));
    let reloaded = fx.get("a-0");
    assert_ne!(reloaded.pid, first.pid);
    // Unchanged apps restart too with startOrRestart (deploy hooks rely on it).
    let out = fx.ok(&["startOrRestart", "eco.json", "--json"]);
    let response: serde_json::Value = serde_json::from_str(&out).unwrap();
    let actions: Vec<&str> = response["outcomes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["action"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["restarted", "restarted"]);
    assert_ne!(fx.get("b-0").restarts, 0);
    // Plain start leaves unchanged apps alone.
    let out = fx.ok(&["start", "eco.json"]);
    assert!(out.contains("a: unchanged"), "{out}");
}

#[test]
fn restart_keeps_the_saved_environment_unless_update_env() {
    let fx = Fixture::new();
    let out = color_app(&fx, "env");
    fx.command()
        .env("COLOR", "first")
        .args(["start", "env.sh"])
        .assert()
        .success();
    wait_file(&out, |s| s.starts_with("first "));
    fx.command()
        .env("COLOR", "second")
        .args(["restart", "env"])
        .assert()
        .success();
    let pid = fx.wait_status("env-0", Status::Online).pid.unwrap();
    wait_file(&out, |s| s.ends_with(&format!(" {pid}\n")));
    assert!(std::fs::read_to_string(&out).unwrap().starts_with("first "));
    fx.command()
        .env("COLOR", "third")
        .args(["restart", "env", "--update-env"])
        .assert()
        .success();
    wait_file(&out, |s| s.starts_with("third "));
    fx.command()
        .env("COLOR", "fourth")
        .args(["reload", "env", "--update-env"])
        .assert()
        .success();
    wait_file(&out, |s| s.starts_with("fourth "));
}

#[test]
fn jlist_has_the_shape_pm2_scripts_read() {
    let fx = Fixture::new();
    assert_eq!(fx.ok(&["jlist"]).trim(), "[]");
    fx.ok(&["start", "sleep 300", "--name", "web", "-i", "2"]);
    fx.wait_status("web-1", Status::Online);
    let list: serde_json::Value = serde_json::from_str(&fx.ok(&["jlist"])).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2);
    let ids: Vec<u32> = fx.list().iter().map(|p| p.id).collect();
    for (process, id) in list.iter().zip(ids) {
        assert_eq!(process["name"], "web");
        assert_eq!(process["pm_id"], id);
        assert!(process["pid"].as_u64().unwrap() > 0);
        assert!(process["monit"]["memory"].is_u64());
        assert!(process["monit"]["cpu"].is_number());
        let env = &process["pm2_env"];
        assert_eq!(env["status"], "online");
        assert_eq!(env["restart_time"], 0);
        assert_eq!(env["unstable_restarts"], 0);
        assert_eq!(env["exec_mode"], "fork_mode");
        assert_eq!(env["instances"], 2);
        assert!(env["pm_uptime"].as_u64().unwrap() > 1_600_000_000_000);
        assert!(env["pm_exec_path"].as_str().unwrap().ends_with("sleep"));
        assert_eq!(env["pm_cwd"], fx.work().display().to_string());
    }
    // node_args are the interpreter's arguments, as PM2 shows them.
    std::fs::write(fx.work().join("app.py"), "import time\ntime.sleep(300)\n").unwrap();
    fx.ok(&[
        "start",
        "app.py",
        "--name",
        "py",
        "--interpreter",
        "python3",
        "--node-args=-u -B",
    ]);
    let list: serde_json::Value = serde_json::from_str(&fx.ok(&["jlist"])).unwrap();
    let py = list
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "py")
        .unwrap();
    assert_eq!(py["pm2_env"]["node_args"], serde_json::json!(["-u", "-B"]));
    let pretty = fx.ok(&["prettylist"]);
    assert!(pretty.contains("\n  {"), "{pretty}");
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&pretty).unwrap()[1]["pm2_env"]
            ["NODE_APP_INSTANCE"],
        1
    );
}

#[test]
fn reset_zeroes_the_restart_counters() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "r"]);
    fx.ok(&["restart", "r"]);
    fx.ok(&["restart", "r"]);
    assert_eq!(fx.get("r-0").restarts, 2);
    let pid = fx.get("r-0").pid;
    fx.ok(&["reset", "r"]);
    let after = fx.get("r-0");
    assert_eq!((after.restarts, after.unstable_restarts), (0, 0));
    assert_eq!(after.pid, pid, "reset must not touch the process");
}

#[test]
fn send_signal_reaches_the_app() {
    let fx = Fixture::new();
    let got = fx.work().join("got.txt");
    fx.script(
        "trap.sh",
        "#!/bin/sh\ntrap 'echo usr2 > got.txt' USR2\necho up > got.txt\nwhile true; do sleep 0.1; done\n",
    );
    fx.ok(&["start", "./trap.sh", "--name", "t"]);
    wait_file(&got, |s| s == "up\n");
    fx.ok(&["sendSignal", "SIGUSR2", "t"]);
    wait_file(&got, |s| s == "usr2\n");
    fx.ok(&["stop", "t"]);
    let err = fx.fails(&["signal", "USR2", "t"]);
    assert!(err.contains("no running process"), "{err}");
}

#[test]
fn save_then_resurrect_brings_back_deleted_apps() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "kept"]);
    let out = fx.ok(&["save"]);
    assert!(out.contains("saved kept"), "{out}");
    assert!(fx.home().join("dump.json").is_file());
    fx.ok(&["delete", "kept"]);
    assert!(fx.names().is_empty());
    fx.ok(&["resurrect"]);
    fx.wait_status("kept-0", Status::Online);
    // Known apps are not started twice.
    fx.ok(&["resurrect"]);
    assert_eq!(fx.names(), ["kept-0"]);
    fx.ok(&["dump"]);
}

#[test]
fn resurrect_starts_every_app_it_can_and_names_the_one_it_cannot() {
    let fx = Fixture::new();
    let gone = fx.work().join("gone");
    std::fs::create_dir(&gone).unwrap();
    // The app that will fail comes first in the dump.
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "broken",
        "--cwd",
        gone.to_str().unwrap(),
    ]);
    fx.ok(&["start", "sleep 300", "--name", "fine"]);
    fx.ok(&["save"]);
    fx.ok(&["delete", "all"]);
    std::fs::remove_dir(&gone).unwrap();
    let err = fx.fails(&["resurrect"]);
    assert!(err.contains("app 'broken'"), "{err}");
    assert!(err.contains("does not exist"), "{err}");
    // The one after it was still brought back.
    fx.wait_status("fine-0", Status::Online);
    assert_eq!(fx.names(), ["fine-0"]);
}

#[test]
fn init_writes_a_sample_that_start_then_starts() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    let out = fx.ok(&["init"]);
    assert!(out.contains("ecosystem.config.js"), "{out}");
    let err = fx.fails(&["ecosystem"]);
    assert!(err.contains("already exists"), "{err}");
    std::fs::write(fx.work().join("app.js"), "setInterval(() => {}, 1000);\n").unwrap();
    // `start` alone picks the directory's ecosystem file, as PM2 does.
    fx.ok(&["start"]);
    fx.wait_status("app-0", Status::Online);
}

#[test]
fn start_alone_without_an_ecosystem_file_names_the_files_it_looked_for() {
    let fx = Fixture::new();
    let err = fx.fails(&["start"]);
    assert!(err.contains("ecosystem.config.js"), "{err}");
    std::fs::write(
        fx.work().join("ecosystem.json"),
        r#"{"apps": [{"name": "from-json", "script": "sleep", "args": ["300"]}]}"#,
    )
    .unwrap();
    fx.ok(&["start"]);
    fx.wait_status("from-json-0", Status::Online);
}

#[test]
fn pm2_short_flags_that_mean_something_else_here_get_a_hint() {
    let fx = Fixture::new();
    let err = usage_error(&fx, &["start", "app.js", "-e", "/var/log/app-err.log"]);
    assert!(
        err.contains("-e is --env here") && err.contains("error_file"),
        "{err}"
    );
    let err = usage_error(&fx, &["start", "app.js", "-p", "/run/app.pid"]);
    assert!(
        err.contains("-p is --port here") && err.contains("pid_file"),
        "{err}"
    );
    let err = usage_error(&fx, &["-c", "0 */2 * * *", "start", "app.js"]);
    assert!(err.contains("--cron-restart"), "{err}");
    // Nothing was started, not even the daemon.
    assert!(fx.daemon_pid().is_none());
}

#[test]
fn a_node_apps_health_check_script_gets_no_ipc_channel_variables() {
    if !need("node", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    std::fs::write(fx.work().join("app.js"), "setInterval(() => {}, 1000);\n").unwrap();
    let seen = fx.work().join("check-env.txt");
    fx.start_json(&format!(
        r#"{{"name": "checked", "script": "app.js", "health_check": {{"check_type": "script", "script": "env > {}.tmp && mv {}.tmp {}", "interval": 200, "timeout": 5}}}}"#,
        seen.display(),
        seen.display(),
        seen.display()
    ));
    // The app itself has its channel; its check script does not.
    let env = wait_file(&seen, |text| {
        text.contains("PMDAEMON_INSTANCE_NAME=checked-0")
    });
    assert!(!env.contains("NODE_CHANNEL_FD"), "{env}");
    let pid = fx.wait_status("checked-0", Status::Online).pid.unwrap();
    let own = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    assert!(String::from_utf8_lossy(&own).contains("NODE_CHANNEL_FD=4"));
}
