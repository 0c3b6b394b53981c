//! PM2 users' ecosystem files (examples/pm2), started through the real
//! daemon: what a user sees of `/dev/null` logs, `autostart: false`,
//! `node_args`, `combine_logs`, `log_file` with out and err, `~` in paths,
//! `uid`, and a namespace as a target.
#![allow(clippy::unwrap_used)]

mod helper;

use std::path::{Path, PathBuf};

use helper::{need, wait_file, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::Status;

/// Copies examples/pm2 into the work directory (the files' logs land
/// there, never in the repository) and returns the copy's path.
fn examples(fx: &Fixture) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pm2");
    let copy = fx.work().join("pm2");
    std::fs::create_dir_all(&copy).unwrap();
    for entry in std::fs::read_dir(source).unwrap() {
        let entry = entry.unwrap();
        let target = copy.join(entry.file_name());
        std::fs::copy(entry.path(), &target).unwrap();
        let mode = entry.metadata().unwrap().permissions().mode();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    copy
}

fn start(fx: &Fixture, file: &str) -> String {
    let dir = examples(fx);
    fx.ok(&["start", dir.join(file).to_str().unwrap()])
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}

#[test]
fn dev_null_and_null_log_paths_create_no_file() {
    use std::os::unix::fs::FileTypeExt;
    let fx = Fixture::new();
    start(&fx, "ecosystem.json");
    fx.wait_status("quiet-0", Status::Online);
    fx.wait_status("quiet-1", Status::Online);
    // The other app of the file writes its lines: by then quiet's would be
    // written too, if they went anywhere.
    wait_file(&fx.work().join("pm2/logs/logged.out"), |s| s == "out 0\n");
    assert!(
        !Path::new("/dev/null-0").exists() && !Path::new("/dev/null-1").exists(),
        "a /dev/null-<index> file was created"
    );
    assert!(std::fs::metadata("/dev/null")
        .unwrap()
        .file_type()
        .is_char_device());
    let stray: Vec<PathBuf> = files_under(fx.home())
        .into_iter()
        .chain(files_under(fx.work()))
        .filter(|p| {
            let name = p.file_name().unwrap().to_string_lossy().to_string();
            name.contains("quiet") || name == "NULL"
        })
        .collect();
    assert!(stray.is_empty(), "files for quiet: {stray:?}");
    let info = fx.info("quiet-1");
    assert_eq!(info[0].out_log, Path::new("/dev/null"));
    assert_eq!(info[0].err_log, Path::new("/dev/null"));
}

#[test]
fn log_file_gets_both_streams_besides_out_and_err() {
    let fx = Fixture::new();
    start(&fx, "ecosystem.json");
    let logs = fx.work().join("pm2/logs");
    wait_file(&logs.join("logged.out"), |s| s == "out 0\n");
    wait_file(&logs.join("logged.err"), |s| s == "err 0\n");
    let all = wait_file(&logs.join("logged.all"), |s| s.lines().count() == 2);
    let mut lines: Vec<&str> = all.lines().collect();
    lines.sort();
    assert_eq!(lines, ["err 0", "out 0"]);
    // `~` is the home directory of the command that applies the file.
    let home = fx.work().join("user-home");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::write(
        fx.work().join("tilde.json"),
        r#"{"name": "tilde", "script": "./pm2/say.sh", "out_file": "~/tilde.out", "log_file": true}"#,
    )
    .unwrap();
    let output = fx
        .command()
        .env("HOME", &home)
        .args(["start", "tilde.json"])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    wait_file(&home.join("tilde.out"), |s| s == "out 0\n");
    // `log_file: true`: the default combined log, in pmdaemon's home.
    let combined = wait_file(&fx.home().join("logs/tilde.log"), |s| {
        s.lines().count() == 2
    });
    assert!(combined.contains("err 0"), "{combined}");
}

#[test]
fn combine_logs_merges_the_instances_logs() {
    let fx = Fixture::new();
    start(&fx, "merged.json");
    let out = wait_file(&fx.home().join("logs/merged-out.log"), |s| {
        s.lines().count() == 2
    });
    let mut lines: Vec<&str> = out.lines().collect();
    lines.sort();
    assert_eq!(lines, ["out 0", "out 1"]);
    assert!(!fx.home().join("logs/merged-0-out.log").exists());
    assert_eq!(fx.info("merged-0")[0].config.max_restarts, 5);
}

#[test]
fn autostart_false_registers_the_app_stopped_until_started() {
    let fx = Fixture::new();
    let output = start(&fx, "ecosystem.json5");
    assert!(output.contains("autostart is off"), "{output}");
    fx.wait_status("api-0", Status::Online);
    let idle = fx.get("idle-0");
    assert_eq!((idle.status, idle.pid), (Status::Stopped, None));
    // Applying the file again leaves it as it is.
    start(&fx, "ecosystem.json5");
    assert_eq!(fx.get("idle-0").status, Status::Stopped);
    fx.ok(&["start", "idle"]);
    fx.wait_status("idle-0", Status::Online);
    // The same from the command line.
    fx.ok(&["start", "sleep 300", "--name", "later", "--no-autostart"]);
    assert_eq!(fx.get("later-0").status, Status::Stopped);
    assert!(fx.ok(&["info", "later"]).contains("autostart"));
}

#[test]
fn a_namespace_is_a_target_after_app_names() {
    let fx = Fixture::new();
    start(&fx, "ecosystem.json5");
    for name in ["api-0", "jobs-0", "front-0"] {
        fx.wait_status(name, Status::Online);
    }
    assert_eq!(fx.get("api-0").namespace.as_deref(), Some("backend"));
    assert!(fx.ok(&["info", "jobs"]).contains("backend"));
    fx.ok(&["stop", "backend"]);
    assert_eq!(fx.get("api-0").status, Status::Stopped);
    assert_eq!(fx.get("jobs-0").status, Status::Stopped);
    assert_eq!(fx.get("front-0").status, Status::Online);
    // An app named like a namespace wins over it.
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "web",
        "--namespace",
        "tools",
    ]);
    fx.ok(&["stop", "web"]);
    assert_eq!(fx.get("web-0").status, Status::Stopped);
    assert_eq!(fx.get("front-0").status, Status::Online);
    fx.ok(&["restart", "tools"]);
    fx.wait_status("web-0", Status::Online);
    assert_eq!(fx.get("web-0").namespace.as_deref(), Some("tools"));
}

#[test]
fn node_args_reach_process_exec_argv_and_python_runs_unbuffered() {
    if !need("node", &["--version"]) || !need("python3", &["--version"]) {
        return;
    }
    let fx = Fixture::new();
    start(&fx, "interpreters.json");
    wait_file(&fx.home().join("logs/node-flags-0-out.log"), |s| {
        s == "[\"--max-old-space-size=64\",\"--no-warnings\"]\n"
    });
    // Without -u python would hold the line in its buffer while it sleeps.
    wait_file(&fx.home().join("logs/py-unbuffered-0-out.log"), |s| {
        s == "unbuffered=1\n"
    });
    let info = fx.info("node-flags");
    assert_eq!(
        info[0].command[1..3],
        ["--max-old-space-size=64", "--no-warnings"]
    );
}

#[test]
fn uid_runs_the_app_as_that_user_or_is_refused_with_a_reason() {
    let fx = Fixture::new();
    let root = nix::unistd::Uid::effective().is_root();
    let file = r#"{"name": "as-nobody", "script": "sh", "args": ["-c", "id -u; id -g; echo $HOME $USER; exec sleep 300"], "cwd": "/", "user": "nobody"}"#;
    std::fs::write(fx.work().join("user.json"), file).unwrap();
    if !root {
        let err = fx.fails(&["start", "user.json"]);
        assert!(
            err.contains("only a daemon run as root can switch users"),
            "{err}"
        );
        assert!(fx.list().is_empty());
        return;
    }
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    fx.ok(&["start", "user.json"]);
    // It runs as that user, with that user's HOME and USER (not ours).
    wait_file(&fx.home().join("logs/as-nobody-0-out.log"), |s| {
        s == format!(
            "{}\n{}\n{} nobody\n",
            nobody.uid,
            nobody.gid,
            nobody.dir.display()
        )
    });
    let pid = fx.wait_status("as-nobody-0", Status::Online).pid.unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("Uid:") && l.contains(&nobody.uid.to_string())),
        "{status}"
    );
    // A user that does not exist is named.
    let err = fx.fails(&[
        "start",
        "sleep 300",
        "--name",
        "ghost",
        "--uid",
        "no-such-user-x",
    ]);
    assert!(err.contains("no user named 'no-such-user-x'"), "{err}");
    // What needs the daemon's private home is refused for another user,
    // with the reason, and leaves nothing behind.
    let err = fx.fails(&[
        "start",
        "sleep 300",
        "--name",
        "unready",
        "--uid",
        "nobody",
        "--sd-notify",
    ]);
    assert!(
        err.contains("runs as another user (uid/gid), which cannot use wait_ready"),
        "{err}"
    );
    assert!(wait_until(DEADLINE, || fx.list().len() == 1));
}

#[test]
fn pm2s_log_flags_on_the_command_line() {
    let fx = Fixture::new();
    let dir = examples(&fx);
    let say = dir.join("say.sh");
    let say = say.to_str().unwrap();
    fx.ok(&[
        "start",
        say,
        "--name",
        "flagged",
        "-o",
        "flagged.out",
        "--error",
        "NULL",
        "-l",
        "flagged.all",
    ]);
    wait_file(&fx.work().join("flagged.out"), |s| s == "out 0\n");
    let all = wait_file(&fx.work().join("flagged.all"), |s| s.lines().count() == 2);
    assert!(all.contains("err 0") && all.contains("out 0"), "{all}");
    assert!(!fx.home().join("logs/flagged-0-err.log").exists());
    assert!(!fx.work().join("NULL").exists());
    fx.ok(&["start", say, "--name", "both", "-i", "2", "--merge-logs"]);
    let out = wait_file(&fx.home().join("logs/both-out.log"), |s| {
        s.lines().count() == 2
    });
    assert!(out.contains("out 0") && out.contains("out 1"), "{out}");
}
