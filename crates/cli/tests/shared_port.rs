//! Shared-port clusters: every instance serves one port, in socket mode (the
//! listening socket inherited as fd 3) and proxy mode (the daemon forwards
//! to private ports), and reloads drop no request.

#![allow(clippy::unwrap_used)]

mod helper;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use helper::{free_ports, http_get, kill, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::{ProcessInfo, ReloadOutcome, ReloadResult, Status};
use pmdaemon_core::config::SharedPort;

/// The demo of `examples/`: it serves fd 3 when it inherits it, else $PORT,
/// and answers with its pid.
fn shared_server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/shared.py")
}

/// The pid in an answer of the shared server (`pid 123 instance 0`).
fn answer_pid(body: &str) -> Option<u32> {
    body.split_whitespace().nth(1)?.parse().ok()
}

/// Requests `port` until every pid of `expected` has answered.
fn reaches_all(port: u16, expected: &BTreeSet<u32>) -> BTreeSet<u32> {
    let mut seen = BTreeSet::new();
    wait_until(DEADLINE, || {
        if let Some(pid) = http_get(port).as_deref().and_then(answer_pid) {
            seen.insert(pid);
        }
        expected.is_subset(&seen)
    });
    seen
}

fn pids(list: &[ProcessInfo], app: &str) -> BTreeSet<u32> {
    list.iter()
        .filter(|p| p.app == app)
        .filter_map(|p| p.pid)
        .collect()
}

/// Waits until every instance of `app` is online and ready.
fn wait_all_ready(fx: &Fixture, app: &str, count: usize) -> Vec<ProcessInfo> {
    let mut last = Vec::new();
    let ready = wait_until(DEADLINE, || {
        last = fx.list().into_iter().filter(|p| p.app == app).collect();
        last.len() == count
            && last
                .iter()
                .all(|p| p.status == Status::Online && p.ready && p.pid.is_some())
    });
    assert!(ready, "{app} never had {count} ready instances: {last:?}");
    last
}

fn start_cluster(fx: &Fixture, name: &str, port: u16, mode: &str) -> Vec<ProcessInfo> {
    let script = shared_server();
    fx.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        name,
        "-i",
        "4",
        "--port",
        &port.to_string(),
        "--shared-port",
        mode,
    ]);
    wait_all_ready(fx, name, 4)
}

#[test]
fn four_instances_share_one_port_in_socket_mode_and_each_is_reached() {
    let fx = Fixture::new();
    let port = free_ports(1);
    let list = start_cluster(&fx, "sock", port, "socket");
    for process in &list {
        assert_eq!(process.port, Some(port));
        assert_eq!(process.shared_port, Some(SharedPort::Socket));
        assert_eq!(process.private_port, None);
    }
    let expected = pids(&list, "sock");
    assert_eq!(reaches_all(port, &expected), expected);
    // The Python demo takes the socket only when LISTEN_PID is its own pid.
    let out = std::fs::read_to_string(fx.home().join("logs/sock-2-out.log")).unwrap();
    assert!(out.contains("serving the inherited socket"), "{out}");
    let table = fx.ok(&["list"]);
    assert!(table.contains(&format!("│ {port} ")), "{table}");
}

#[test]
fn four_instances_share_one_port_in_proxy_mode_each_on_its_private_port() {
    let fx = Fixture::new();
    let port = free_ports(1);
    let list = start_cluster(&fx, "prox", port, "proxy");
    let private: BTreeSet<u16> = list.iter().filter_map(|p| p.private_port).collect();
    assert_eq!(private.len(), 4, "{list:?}");
    assert!(!private.contains(&port));
    for process in &list {
        assert_eq!(process.port, Some(port));
        assert_eq!(process.shared_port, Some(SharedPort::Proxy));
        assert!(process.connections.is_some(), "{process:?}");
    }
    let expected = pids(&list, "prox");
    assert_eq!(reaches_all(port, &expected), expected);
    let table = fx.ok(&["list"]);
    let first = list[0].private_port.unwrap();
    assert!(table.contains(&format!("{port}→{first}")), "{table}");
    // The proxy sees a client's close a moment after the client.
    let mut info = String::new();
    let idle = wait_until(DEADLINE, || {
        info = fx.ok(&["info", "prox-0"]);
        info.contains("proxy mode, 0 open connections")
    });
    assert!(idle, "{info}");
    let metrics = helper::api_get(&fx, "/metrics");
    let line = format!(
        "pmdaemon_instance_shared_port{{app=\"prox\",instance=\"prox-0\",mode=\"proxy\",port=\"{port}\",private_port=\"{first}\"}} 1"
    );
    assert!(metrics.contains(&line), "{metrics}");
    assert!(
        metrics.contains("pmdaemon_instance_proxy_connections{app=\"prox\",instance=\"prox-0\"} 0"),
        "{metrics}"
    );
}

/// Starts a 2-instance proxy-mode cluster `web` of the demo server whose
/// next version never listens (it only sleeps once the file `broken`
/// exists in the work directory); returns its port.
fn start_breakable(fx: &Fixture, listen_timeout: &str) -> u16 {
    let port = free_ports(1);
    let script = fx.script(
        "app.sh",
        &format!(
            "#!/bin/sh\n[ -e broken ] && exec sleep 1000\nexec python3 {}\n",
            shared_server().display()
        ),
    );
    fx.ok(&[
        "start",
        script.to_str().unwrap(),
        "--name",
        "web",
        "-i",
        "2",
        "--port",
        &port.to_string(),
        "--shared-port",
        "proxy",
        "--listen-timeout",
        listen_timeout,
    ]);
    port
}

/// Requests `port` on `threads` threads, each on a fresh connection, until
/// stopped; counts answers and failures.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(port: u16, threads: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let threads = (0..threads)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        if http_get(port).is_some() {
                            ok.fetch_add(1, Ordering::SeqCst);
                            // Steady, not flat out: the other tests share
                            // the CPUs (some measure CPU use).
                            std::thread::sleep(std::time::Duration::from_millis(3));
                        } else {
                            failed.fetch_add(1, Ordering::SeqCst);
                            // A test that fails here must not spin the CPUs.
                            std::thread::sleep(std::time::Duration::from_millis(20));
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn answered(&self) -> u64 {
        self.ok.load(Ordering::SeqCst)
    }

    /// Stops the load; (answered, failed).
    fn finish(mut self) -> (u64, u64) {
        self.stop_threads();
        (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
        )
    }

    fn stop_threads(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

impl Drop for Load {
    /// A test that fails mid-load leaves no thread requesting.
    fn drop(&mut self) {
        self.stop_threads();
    }
}

fn reload_under_load_drops_nothing(mode: &str) {
    let fx = Fixture::new();
    let port = free_ports(1);
    let before = pids(&start_cluster(&fx, "web", port, mode), "web");
    let load = Load::start(port, 4);
    assert!(wait_until(DEADLINE, || load.answered() > 20));
    let first = fx.output(&["reload", "web"]);
    let progress = String::from_utf8_lossy(&first.stderr);
    assert!(first.status.success(), "{progress}");
    for step in 1..=4 {
        let line = format!("[pmdaemon] reloading web-{} ({step} of 4)…", step - 1);
        assert!(progress.contains(&line), "{progress}");
    }
    let middle = load.answered();
    assert!(wait_until(DEADLINE, || load.answered() > middle + 20));
    fx.ok(&["reload", "web"]);
    let last = load.answered();
    assert!(wait_until(DEADLINE, || load.answered() > last + 20));
    let (answered, failed) = load.finish();
    assert_eq!(
        failed,
        0,
        "{failed} of {} requests failed",
        answered + failed
    );
    let after = pids(&wait_all_ready(&fx, "web", 4), "web");
    assert!(before.is_disjoint(&after), "{before:?} {after:?}");
    for pid in &before {
        assert!(!helper::alive(*pid), "old pid {pid} still runs");
    }
    let history = fx.ok(&["info", "web-0"]);
    assert!(history.contains("reloaded"), "{history}");
}

#[test]
fn a_reload_under_continuous_requests_drops_none_in_socket_mode() {
    reload_under_load_drops_nothing("socket");
}

#[test]
fn a_reload_under_continuous_requests_drops_none_in_proxy_mode() {
    reload_under_load_drops_nothing("proxy");
}

#[test]
fn a_reload_whose_new_version_never_becomes_ready_keeps_the_old_one_serving() {
    let fx = Fixture::new();
    let port = start_breakable(&fx, "3s");
    let before = pids(&wait_all_ready(&fx, "web", 2), "web");
    std::fs::write(fx.work().join("broken"), "").unwrap();
    let load = Load::start(port, 2);
    let json = fx.output(&["reload", "web", "--json"]);
    assert!(!json.status.success());
    let outcomes: Vec<ReloadOutcome> = serde_json::from_slice(&json.stdout).unwrap();
    let summary: Vec<(&str, ReloadResult)> = outcomes
        .iter()
        .map(|o| (o.instance.as_str(), o.outcome))
        .collect();
    assert_eq!(
        summary,
        [
            ("web-0", ReloadResult::Failed),
            ("web-1", ReloadResult::NotReached)
        ]
    );
    assert!(outcomes[0]
        .error
        .as_deref()
        .is_some_and(|e| e.contains("not ready")));
    let err = fx.fails(&["reload", "web"]);
    assert!(
        err.contains("web-0") && err.contains("not ready") && err.contains("0 of 2"),
        "{err}"
    );
    assert!(err.contains("2 still run the previous version"), "{err}");
    let served = load.answered();
    assert!(wait_until(DEADLINE, || load.answered() > served + 10));
    let (_, failed) = load.finish();
    assert_eq!(failed, 0);
    let after = pids(&wait_all_ready(&fx, "web", 2), "web");
    assert_eq!(before, after);
    let info = fx.ok(&["info", "web-0"]);
    assert!(info.contains("reload failed"), "{info}");
    // The abandoned processes are gone.
    let extra: Vec<(u32, String)> = fx
        .processes()
        .into_iter()
        .filter(|pid| !after.contains(pid))
        .map(|pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            (pid, String::from_utf8_lossy(&cmdline).replace('\0', " "))
        })
        .collect();
    assert!(
        extra.is_empty(),
        "left by the failed reload: {extra:?}; serving: {after:?}"
    );
}

#[test]
fn killing_one_instance_keeps_the_port_answering() {
    let fx = Fixture::new();
    let port = free_ports(1);
    let list = start_cluster(&fx, "web", port, "socket");
    let victim = list[1].pid.unwrap();
    kill(victim, libc::SIGKILL);
    // While it is dead and restarting, the others take every connection.
    let load = Load::start(port, 2);
    fx.wait_for("web-1", "restarted", |p| {
        p.status == Status::Online && p.pid != Some(victim)
    });
    let served = load.answered();
    assert!(wait_until(DEADLINE, || load.answered() > served + 10));
    let (_, failed) = load.finish();
    assert_eq!(failed, 0);
}

#[test]
fn a_shared_port_in_use_is_refused_before_anything_starts() {
    let fx = Fixture::new();
    let port = free_ports(1);
    let _holder = std::net::TcpListener::bind(("0.0.0.0", port)).unwrap();
    let script = shared_server();
    let err = fx.fails(&[
        "start",
        script.to_str().unwrap(),
        "-i",
        "3",
        "--port",
        &port.to_string(),
    ]);
    assert!(
        err.contains(&format!("port {port} is already used")),
        "{err}"
    );
    assert!(fx.list().is_empty());
}

#[test]
fn socket_mode_for_an_app_that_binds_the_port_itself_is_explained() {
    let fx = Fixture::new();
    let port = free_ports(1);
    let script = fx.script(
        "binds.py",
        "import os, socket\ns = socket.socket()\ns.bind(('0.0.0.0', int(os.environ['PORT'])))\n",
    );
    fx.ok(&[
        "start",
        "python3",
        "--name",
        "binds",
        "-i",
        "2",
        "--port",
        &port.to_string(),
        "--shared-port",
        "socket",
        "--max-restarts",
        "2",
        "--",
        script.to_str().unwrap(),
    ]);
    fx.wait_status("binds-0", Status::Errored);
    let err = std::fs::read_to_string(fx.home().join("logs/binds-0-err.log")).unwrap();
    assert!(err.contains("Address already in use"), "{err}");
    assert!(
        err.contains("[pmdaemon] exited before it was ready: in socket mode the app must accept on the inherited socket (fd 3"),
        "{err}"
    );
    assert_eq!(err.matches("[pmdaemon] exited before").count(), 1, "{err}");
    let info = fx.ok(&["info", "binds-0"]);
    assert!(info.contains("--shared-port proxy"), "{info}");
}

#[test]
fn an_ecosystem_cluster_on_one_port_is_a_shared_port_cluster_that_scales() {
    let fx = Fixture::new();
    let port = free_ports(1);
    fx.start_json(&format!(
        r#"{{"apps": [{{"name": "api", "script": "{}", "instances": 2, "port": {port}, "exec_mode": "cluster", "shared_port": "proxy"}}]}}"#,
        shared_server().display()
    ));
    let list = wait_all_ready(&fx, "api", 2);
    assert_eq!(reaches_all(port, &pids(&list, "api")), pids(&list, "api"));
    fx.ok(&["scale", "api", "3"]);
    let list = wait_all_ready(&fx, "api", 3);
    assert!(list.iter().all(|p| p.port == Some(port)));
    assert_eq!(reaches_all(port, &pids(&list, "api")), pids(&list, "api"));
    fx.ok(&["scale", "api", "1"]);
    let list = wait_all_ready(&fx, "api", 1);
    assert_eq!(list[0].shared_port, Some(SharedPort::Proxy));
    assert!(http_get(port).is_some());
    fx.ok(&["delete", "api"]);
    // Deleting the app releases the port.
    assert!(wait_until(DEADLINE, || std::net::TcpListener::bind((
        "0.0.0.0", port
    ))
    .is_ok()));
}

#[test]
fn a_node_app_with_a_hard_coded_listen_serves_the_shared_port_unchanged() {
    if std::process::Command::new("node")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: node is not installed");
        return;
    }
    let fx = Fixture::new();
    let port = free_ports(1);
    // As a PM2 cluster-mode app is written: it listens on the port itself.
    let app = fx.script(
        "server.js",
        &format!(
            "require('http').createServer((req, res) => res.end(`pid ${{process.pid}}\\n`)).listen({port});\n"
        ),
    );
    for mode in ["auto", "proxy"] {
        let name = format!("node-{mode}");
        fx.ok(&[
            "start",
            app.to_str().unwrap(),
            "--name",
            &name,
            "-i",
            "3",
            "--port",
            &port.to_string(),
            "--shared-port",
            mode,
        ]);
        let list = wait_all_ready(&fx, &name, 3);
        let expected = if mode == "auto" {
            SharedPort::Socket
        } else {
            SharedPort::Proxy
        };
        assert_eq!(list[0].shared_port, Some(expected));
        assert_eq!(reaches_all(port, &pids(&list, &name)), pids(&list, &name));
        // Its SIGTERM is graceful (the preload's doing): a reload drops nothing.
        let load = Load::start(port, 2);
        assert!(wait_until(DEADLINE, || load.answered() > 10));
        fx.ok(&["reload", &name]);
        let served = load.answered();
        assert!(wait_until(DEADLINE, || load.answered() > served + 10));
        let (_, failed) = load.finish();
        assert_eq!(failed, 0, "{mode}");
        fx.ok(&["delete", &name]);
    }
}

#[test]
fn restart_with_other_ports_is_refused_for_a_shared_port_cluster() {
    let fx = Fixture::new();
    let port = free_ports(1);
    start_cluster(&fx, "web", port, "proxy");
    let err = fx.fails(&["restart", "web", "--port", "4000-4003"]);
    assert!(err.contains("shared-port cluster"), "{err}");
}

#[test]
fn a_stop_during_a_reload_does_not_wait_for_the_new_process() {
    let fx = Fixture::new();
    start_breakable(&fx, "60s");
    wait_all_ready(&fx, "web", 2);
    std::fs::write(fx.work().join("broken"), "").unwrap();
    let reload = fx
        .process()
        .args(["reload", "web"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut reload = helper::Guarded::new(reload, DEADLINE);
    // The new process of web-0 runs beside the old one.
    assert!(wait_until(DEADLINE, || fx.info("web-0")[0]
        .history
        .iter()
        .any(|e| e.event == "reloading")));
    fx.ok(&["stop", "web"]);
    assert!(!reload.wait().success());
    let mut err = String::new();
    std::io::Read::read_to_string(reload.child.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(err.contains("interrupted by a stop"), "{err}");
    assert!(fx.list().iter().all(|p| p.status == Status::Stopped));
    assert!(fx.processes().is_empty(), "{:?}", fx.processes());
}

#[test]
fn socket_mode_is_the_same_when_the_daemon_spawns_by_itself() {
    let fx = Fixture::new();
    fx.ok(&["list"]);
    // Without its spawner the daemon forks itself: fd 3 and LISTEN_PID are
    // set up by the other path.
    kill(fx.spawner_pid().unwrap(), libc::SIGKILL);
    assert!(wait_until(DEADLINE, || fx.spawner_pid().is_none()));
    let port = free_ports(1);
    // Through a wrapper without a `#!` line, which /bin/sh runs (as
    // execvp would) and which execs the server in the same process.
    let wrapper = fx.script(
        "wrapped",
        &format!("exec python3 '{}'\n", shared_server().display()),
    );
    fx.ok(&[
        "start",
        wrapper.to_str().unwrap(),
        "--name",
        "direct",
        "-i",
        "4",
        "--port",
        &port.to_string(),
        "--shared-port",
        "socket",
    ]);
    let list = wait_all_ready(&fx, "direct", 4);
    let expected = pids(&list, "direct");
    assert_eq!(reaches_all(port, &expected), expected);
    let out = std::fs::read_to_string(fx.home().join("logs/direct-2-out.log")).unwrap();
    assert!(out.contains("serving the inherited socket"), "{out}");
    assert!(fx.daemon_log_tail().contains("spawns by itself"));
}
