//! Health checks, readiness, --wait-ready and rolling reload.

mod helper;

use std::time::Duration;

use helper::{free_ports, http_get, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::{Health, Status};

/// An HTTP server on $PORT answering "<version> <instance>"; /health answers
/// 200 for the first $HEALTHY_FOR requests, then 500.
const SERVER: &str = r#"import http.server, os
version = "old"
left = int(os.environ.get("HEALTHY_FOR", "1000000"))
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        global left
        code = 200
        if self.path == "/health":
            left -= 1
            code = 200 if left >= 0 else 500
        body = f"{version} {os.environ['PM2_INSTANCE_ID']}\n".encode()
        self.send_response(code); self.send_header("Content-Length", str(len(body))); self.end_headers(); self.wfile.write(body)
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"#;

#[test]
fn a_server_that_turns_unhealthy_is_restarted_by_its_check() {
    let fx = Fixture::new();
    std::fs::write(fx.work().join("server.py"), SERVER).unwrap();
    let port = free_ports(1).to_string();
    fx.command()
        .env("HEALTHY_FOR", "10")
        .args(["start", "server.py", "--name", "web", "--port", &port])
        .args(["--health-check-url", "http://127.0.0.1:{PORT}/health"])
        .args([
            "--health-check-interval",
            "0.3",
            "--health-check-timeout",
            "1",
            "--health-check-retries",
            "2",
        ])
        .assert()
        .success();
    let healthy = fx.wait_for("web-0", "healthy", |p| {
        p.health == Health::Healthy && p.ready
    });
    assert_eq!(healthy.restarts, 0);
    // /metrics says so too (within the healthy window of 10 checks).
    assert!(wait_until(DEADLINE, || helper::api_get(&fx, "/metrics")
        .contains(
            "pmdaemon_instance_health{app=\"web\",instance=\"web-0\",state=\"healthy\"} 1"
        )));
    let restarted = fx.wait_for("web-0", "restarted by its check", |p| p.restarts >= 1);
    assert_ne!(restarted.pid, healthy.pid);
    let detail = &fx.info("web-0")[0];
    assert!(
        detail.history.iter().any(|e| e
            .reason
            .starts_with("health check failed 2 times in a row: http://127.0.0.1:")
            && e.reason.ends_with("answered 500 Internal Server Error")),
        "{:?}",
        detail.history
    );
    let text = fx.ok(&["info", "web"]);
    assert!(text.contains("│ health"), "{text}");
    let table = fx.ok(&["list"]);
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .contains("│ Restarts │ Health"),
        "{table}"
    );
    let metrics = helper::api_get(&fx, "/metrics");
    assert!(
        metrics.contains("pmdaemon_instance_health{app=\"web\",instance=\"web-0\",state="),
        "{metrics}"
    );
}

#[test]
fn start_wait_ready_succeeds_for_a_ready_cluster_and_fails_naming_the_instance_that_is_not() {
    let fx = Fixture::new();
    std::fs::write(fx.work().join("server.py"), SERVER).unwrap();
    let base = free_ports(2);
    let output = fx.output(&[
        "start",
        "server.py",
        "--name",
        "web",
        "-i",
        "2",
        "--port",
        &format!("{base}-{}", base + 1),
        "--health-check-url",
        "http://127.0.0.1:{PORT}/",
        "--wait-ready",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(String::from_utf8_lossy(&output.stderr).contains("[pmdaemon] ready 2 of 2"));
    assert!(fx
        .list()
        .iter()
        .all(|p| p.ready && p.health == Health::Healthy));

    // Nothing ever listens on this port.
    let port = free_ports(1).to_string();
    let err = fx.fails(&[
        "start",
        "sleep 300",
        "--name",
        "mute",
        "--port",
        &port,
        "--health-check-url",
        "http://127.0.0.1:{PORT}/",
        "--wait-ready",
        "--wait-timeout",
        "2s",
    ]);
    assert!(err.contains("[pmdaemon] ready 0 of 1"), "{err}");
    assert!(err.contains(&format!("error: 0 of 1 instances ready after 2s; mute-0 is not: cannot connect to 127.0.0.1:{port}")), "{err}");
}

#[test]
fn an_app_using_sd_notify_is_ready_only_once_it_sends_ready() {
    let fx = Fixture::new();
    fx.script(
        "notify.sh",
        "#!/bin/sh\nwhile [ ! -e go ]; do sleep 0.05; done\npython3 -c 'import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); s.sendto(b\"STATUS=warming\\nREADY=1\", os.environ[\"NOTIFY_SOCKET\"])'\nexec sleep 300\n",
    );
    fx.ok(&["start", "./notify.sh", "--name", "svc", "--sd-notify"]);
    let before = fx.get("svc-0");
    assert_eq!(before.status, Status::Online);
    assert!(!before.ready, "ready before READY=1");
    assert!(!wait_until(Duration::from_millis(500), || fx
        .get("svc-0")
        .ready));
    std::fs::write(fx.work().join("go"), "").unwrap();
    fx.wait_for("svc-0", "ready", |p| p.ready);
}

#[test]
fn a_reload_whose_new_version_cannot_start_stops_after_the_first_instance() {
    let fx = Fixture::new();
    std::fs::write(fx.work().join("server.py"), SERVER).unwrap();
    let base = free_ports(3);
    std::fs::write(
        fx.work().join("eco.json"),
        format!(
            r#"{{"name": "web", "script": "server.py", "instances": 3, "port": "{base}-{}", "listen_timeout": 10000,
                "health_check": {{"url": "http://127.0.0.1:{{PORT}}/", "interval": 1, "timeout": 1, "retries": 3}}}}"#,
            base + 2
        ),
    )
    .unwrap();
    fx.ok(&["start", "eco.json", "--wait-ready"]);
    let before: Vec<Option<u32>> = fx.list().iter().map(|p| p.pid).collect();
    // A good reload replaces every instance and keeps serving.
    std::fs::write(
        fx.work().join("server.py"),
        SERVER.replace("\"old\"", "\"new\""),
    )
    .unwrap();
    fx.ok(&["reload", "web"]);
    let after: Vec<Option<u32>> = fx.list().iter().map(|p| p.pid).collect();
    assert_eq!(after.len(), 3);
    assert!(after.iter().all(Option::is_some), "{after:?}");
    assert!(before.iter().zip(&after).all(|(b, a)| b != a));
    for i in 0..3 {
        assert_eq!(
            http_get(base + i).as_deref(),
            Some(format!("new {i}\n").as_str())
        );
    }
    // A broken version: the first instance never becomes ready, so the
    // rollout stops there and the other two keep serving.
    std::fs::write(
        fx.work().join("server.py"),
        "import sys\nsys.exit('broken build')\n",
    )
    .unwrap();
    let err = fx.fails(&["reload", "web"]);
    assert!(
        err.contains("reload stopped: web-0 did not become ready within 10000 ms")
            && err.contains("0 of 3 instances were replaced, 2 still run the previous version"),
        "{err}"
    );
    assert_eq!(http_get(base + 1).as_deref(), Some("new 1\n"));
    assert_eq!(http_get(base + 2).as_deref(), Some("new 2\n"));
    let list = fx.list();
    assert_eq!(list[1].pid, after[1]);
    assert_eq!(list[2].pid, after[2]);
}

#[test]
fn overlapping_reloads_of_one_app_run_one_after_the_other() {
    let fx = Fixture::new();
    // Each process takes ~0.4 s to become ready.
    fx.script(
        "slow.sh",
        "#!/bin/sh\nsleep 0.4\npython3 -c 'import os, socket; socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM).sendto(b\"READY=1\", os.environ[\"NOTIFY_SOCKET\"])'\nexec sleep 300\n",
    );
    fx.ok(&[
        "start",
        "./slow.sh",
        "--name",
        "web",
        "-i",
        "2",
        "--sd-notify",
        "--wait-ready",
    ]);
    let spawn = || {
        fx.process()
            .args(["reload", "web", "--json"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    for child in [first, second] {
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    // The restarts of both instances, in time order: one whole rollout
    // after the other, never web-0, web-0, web-1, web-1.
    let mut events: Vec<(u64, String)> = fx
        .info("web")
        .into_iter()
        .flat_map(|d| {
            let name = d.info.name.clone();
            d.history
                .into_iter()
                .filter(|e| e.event == "restarting")
                .map(move |e| (e.at_ms, name.clone()))
        })
        .collect();
    events.sort();
    let order: Vec<&str> = events.iter().map(|(_, n)| n.as_str()).collect();
    assert_eq!(order, ["web-0", "web-1", "web-0", "web-1"]);
    assert!(fx.list().iter().all(|p| p.ready && p.restarts == 2));
}

#[test]
fn wait_ready_fails_on_a_crash_loop_with_its_last_exit_and_error_log() {
    let fx = Fixture::new();
    fx.script(
        "crash.sh",
        "#!/bin/sh\necho 'boom: cannot open config' >&2\nexit 3\n",
    );
    let output = fx
        .command()
        .args([
            "start",
            "./crash.sh",
            "--wait-ready",
            "--wait-timeout",
            "20s",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(!err.contains("ready 1 of 1"), "{err}");
    assert!(
        err.contains("crash-0 ")
            && err.contains("before it was ready; last exit: exit code 3")
            && err.contains("boom: cannot open config"),
        "{err}"
    );
}

#[test]
fn an_instance_without_checks_is_ready_once_it_stayed_up() {
    let fx = Fixture::new();
    let output = fx
        .command()
        .args(["start", "sleep 300", "--name", "s", "--wait-ready"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("ready 1 of 1"));
    assert!(fx.get("s-0").ready);
}
