//! Hostile surroundings: stray signals, inherited descriptors and limits, a
//! daemon that hangs up, a home removed under a running daemon.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod helper;

use std::time::Duration;

use helper::{alive, kill, wait_file, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::Status;

fn daemon_log(fx: &Fixture) -> String {
    std::fs::read_to_string(fx.home().join("daemon.log")).unwrap_or_default()
}

#[test]
fn common_signals_do_not_kill_the_daemon() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "calm"]);
    let daemon = fx.daemon_pid().unwrap();
    let app = fx.get("calm-0").pid.unwrap();
    for (signal, name) in [
        (libc::SIGHUP, "SIGHUP"),
        (libc::SIGUSR1, "SIGUSR1"),
        (libc::SIGUSR2, "SIGUSR2"),
        (libc::SIGALRM, "SIGALRM"),
    ] {
        kill(daemon, signal);
        wait_file(&fx.home().join("daemon.log"), |log| log.contains(name));
    }
    assert!(daemon_log(&fx).contains("SIGUSR2: pmdaemon"));
    assert!(alive(daemon));
    assert_eq!(fx.daemon_pid(), Some(daemon));
    let calm = fx.get("calm-0");
    assert_eq!((calm.pid, calm.status), (Some(app), Status::Online));
}

#[test]
fn sigquit_stops_the_daemon_and_says_why() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "quit"]);
    let daemon = fx.daemon_pid().unwrap();
    let app = fx.get("quit-0").pid.unwrap();
    kill(daemon, libc::SIGQUIT);
    assert!(wait_until(DEADLINE, || !alive(daemon) && !alive(app)));
    let log = daemon_log(&fx);
    assert!(log.contains("SIGQUIT: stopping every app"), "{log}");
    assert!(!fx.home().join("pmdaemon.sock").exists());
}

#[test]
fn the_history_of_every_app_says_that_the_previous_daemon_died() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "survivor"]);
    let daemon = fx.daemon_pid().unwrap();
    kill(daemon, libc::SIGKILL);
    assert!(wait_until(DEADLINE, || !alive(daemon)));
    fx.wait_status("survivor-0", Status::Online);
    let detail = fx.info("survivor-0").remove(0);
    let died = detail
        .history
        .iter()
        .find(|e| e.event == "daemon died")
        .unwrap_or_else(|| panic!("no 'daemon died' in {:?}", detail.history));
    assert!(died.reason.contains(&format!("pid {daemon}")), "{died:?}");
}

#[test]
fn a_callers_pipe_is_not_held_by_the_daemon_or_its_apps() {
    let fx = Fixture::new();
    let binary = assert_cmd::cargo::cargo_bin("pmdaemon");
    // `cat` ends only when every holder of the pipe's write end is gone.
    let script = format!(
        "( '{}' start 'sleep 1000' --name z >/dev/null ) 3>&1 | cat",
        binary.display()
    );
    let output = std::process::Command::new("timeout")
        .args(["20", "sh", "-c", &script])
        .env("PMDAEMON_HOME", fx.home())
        .current_dir(fx.work())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "the pipeline hung or failed: {output:?}"
    );
    let app = fx.wait_status("z-0", Status::Online).pid.unwrap();
    assert_eq!(helper::descriptors(app), [0, 1, 2]);
    let daemon = fx.daemon_pid().unwrap();
    assert_eq!(
        std::fs::read_link(format!("/proc/{daemon}/cwd")).unwrap(),
        std::path::Path::new("/")
    );
}

#[test]
fn apps_get_the_callers_open_file_limit_while_the_daemon_runs_300_of_them() {
    let fx = Fixture::new();
    let limit_file = fx.work().join("limit");
    let mut apps: Vec<serde_json::Value> = (0..300)
        .map(|i| serde_json::json!({"name": format!("s{i}"), "script": "sleep", "args": ["1000"]}))
        .collect();
    apps.push(serde_json::json!({
        "name": "limit",
        "script": "sh",
        "args": ["-c", format!("(ulimit -Sn; ulimit -Hn) > '{}'; exec sleep 1000", limit_file.display())],
    }));
    std::fs::write(
        fx.work().join("eco.json"),
        serde_json::json!({ "apps": apps }).to_string(),
    )
    .unwrap();
    // A lower hard limit than ours (which only root could raise again).
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    assert_eq!(
        unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) },
        0
    );
    let hard = limit.rlim_max.min(4096);
    assert!(
        hard >= 512,
        "this test needs a hard open-file limit of 512 or more"
    );
    fx.start_under_open_file_limits("eco.json", 256, hard);
    let online = wait_until(Duration::from_secs(60), || {
        let list = fx.list();
        list.len() == 301 && list.iter().all(|p| p.status == Status::Online)
    });
    let troubled: Vec<_> = fx
        .list()
        .into_iter()
        .filter(|p| p.status != Status::Online)
        .map(|p| (p.name, p.status))
        .collect();
    assert!(online, "not online: {troubled:?}\n{}", fx.daemon_log_tail());
    // Both of the caller's limits, though the daemon raised its own (the
    // hard one too where it may: running as root).
    assert_eq!(
        wait_file(&limit_file, |s| s.lines().count() == 2).trim(),
        format!("256\n{hard}")
    );
    let daemon = fx.daemon_pid().unwrap();
    let limits = std::fs::read_to_string(format!("/proc/{daemon}/limits")).unwrap();
    let open_files: Vec<u64> = limits
        .lines()
        .find(|line| line.starts_with("Max open files"))
        .unwrap()
        .split_whitespace()
        .filter_map(|word| word.parse().ok())
        .collect();
    assert!(open_files[0] >= hard, "{open_files:?}");
    // Raising a hard limit takes CAP_SYS_RESOURCE, which some containers
    // drop even for root.
    let capabilities = std::fs::read_to_string("/proc/self/status").unwrap();
    let effective = capabilities
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))
        .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        .unwrap_or(0);
    const CAP_SYS_RESOURCE: u32 = 24;
    if effective & (1 << CAP_SYS_RESOURCE) != 0 {
        assert!(open_files[1] > hard, "{open_files:?}");
    } else {
        eprintln!("no CAP_SYS_RESOURCE here: the raise of the daemon's hard limit is not checked");
    }
}

#[test]
fn a_daemon_that_hangs_up_is_an_error_not_a_silent_sigpipe() {
    use std::os::unix::net::UnixListener;
    let fx = Fixture::new();
    // A "daemon" that stops reading each connection at once (as one that
    // refuses a request does) but keeps it open a moment: the client's next
    // write is a broken pipe, not a reset it would read first.
    let listener = UnixListener::bind(fx.home().join("pmdaemon.sock")).unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().map_while(Result::ok) {
            let _ = stream.shutdown(std::net::Shutdown::Read);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_secs(2));
                drop(stream);
            });
        }
    });
    // A request larger than the socket's buffers: the write is still going
    // on when the other end closes.
    let big = "x".repeat(200_000);
    let apps: Vec<serde_json::Value> = (0..4)
        .map(|i| serde_json::json!({"name": format!("a{i}"), "script": "sleep", "args": ["1"], "env": {"BIG": big}}))
        .collect();
    std::fs::write(
        fx.work().join("eco.json"),
        serde_json::json!({ "apps": apps }).to_string(),
    )
    .unwrap();
    let output = fx.output(&["start", "eco.json"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(stderr.contains("daemon"), "{stderr}");
}

#[test]
fn a_daemon_whose_home_is_removed_stops_its_apps_and_exits() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "orphan"]);
    let daemon = fx.daemon_pid().unwrap();
    let app = fx.get("orphan-0").pid.unwrap();
    std::fs::remove_dir_all(fx.home()).unwrap();
    assert!(
        wait_until(DEADLINE, || !alive(daemon) && !alive(app)),
        "daemon alive: {}, app alive: {}",
        alive(daemon),
        alive(app)
    );
}

#[test]
fn a_daemon_whose_home_is_replaced_exits_without_touching_the_new_one() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "moved"]);
    let daemon = fx.daemon_pid().unwrap();
    let app = fx.get("moved-0").pid.unwrap();
    let aside = fx.work().join("old-home");
    std::fs::rename(fx.home(), &aside).unwrap();
    std::fs::create_dir(fx.home()).unwrap();
    assert!(wait_until(DEADLINE, || !alive(daemon) && !alive(app)));
    let log = std::fs::read_to_string(aside.join("daemon.log")).unwrap();
    assert!(log.contains("was replaced"), "{log}");
    let left: Vec<_> = std::fs::read_dir(fx.home())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the new home got {left:?}");
}
