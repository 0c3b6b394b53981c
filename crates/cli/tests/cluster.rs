//! Clusters: instances, ports, their environment, scaling, and a real load
//! balancer in front (the seed's nginx example).

mod helper;

use std::collections::BTreeSet;
use std::time::Duration;

use helper::{free_ports, hello_server, http_get, kill, wait_file, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::Status;

fn ports_of(fx: &Fixture, app: &str) -> Vec<Option<u16>> {
    fx.list()
        .into_iter()
        .filter(|p| p.app == app)
        .map(|p| p.port)
        .collect()
}

#[test]
fn a_range_gives_instance_i_the_ith_port_kept_across_restarts_and_released_on_delete() {
    let fx = Fixture::new();
    let base = free_ports(3);
    let spec = format!("{base}-{}", base + 2);
    let server = hello_server();
    fx.ok(&[
        "start",
        server.to_str().unwrap(),
        "--name",
        "api-cluster",
        "--instances",
        "3",
        "--port",
        &spec,
    ]);
    let names = fx.names();
    assert_eq!(names, ["api-cluster-0", "api-cluster-1", "api-cluster-2"]);
    assert_eq!(
        ports_of(&fx, "api-cluster"),
        [Some(base), Some(base + 1), Some(base + 2)]
    );
    let info = fx.ok(&["info", "api-cluster-1"]);
    let port_row = info.lines().find(|l| l.contains(" port ")).unwrap_or("");
    assert!(port_row.contains(&(base + 1).to_string()), "{info}");
    for i in 0..3 {
        let port = base + i;
        assert!(
            wait_until(DEADLINE, || http_get(port)
                .is_some_and(|b| b == format!("hello from instance {i}\n"))),
            "instance {i} does not answer on {port}"
        );
    }
    let table = fx.ok(&["list"]);
    assert!(
        table.contains("│ api-cluster-1 │ online │") && table.contains(&(base + 1).to_string()),
        "{table}"
    );

    // A crash restart keeps the port.
    let pid = fx.get("api-cluster-1").pid.unwrap();
    kill(pid, libc::SIGKILL);
    let back = fx.wait_for("api-cluster-1", "restarted", |p| {
        p.restarts == 1 && p.status == Status::Online
    });
    assert_eq!(back.port, Some(base + 1));
    assert!(wait_until(DEADLINE, || http_get(base + 1).is_some()));

    // Another app cannot take them; after delete it can.
    let err = fx.fails(&[
        "start",
        "sleep 300",
        "--name",
        "other",
        "--port",
        &(base + 2).to_string(),
    ]);
    assert_eq!(
        err.trim(),
        format!(
            "error: port {} is already used by app 'api-cluster' (api-cluster-2)",
            base + 2
        )
    );
    fx.ok(&["delete", "api-cluster"]);
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "other",
        "--port",
        &(base + 2).to_string(),
    ]);
    assert_eq!(fx.get("other-0").port, Some(base + 2));
}

#[test]
fn bad_port_specs_are_clear_errors_and_change_nothing() {
    let fx = Fixture::new();
    for (spec, message) in [
        (
            "3003-3000",
            "the range runs backwards; did you mean 3000-3003?",
        ),
        ("auto:", "auto: needs a range"),
        ("70000", "70000 is above 65535"),
        ("abc", "'abc' is not a port number"),
        ("0", "port 0"),
    ] {
        let output = fx.output(&["start", "sleep 300", "--name", "x", "--port", spec]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{spec} was accepted");
        assert!(
            stderr.contains(&format!("invalid port '{spec}'")) && stderr.contains(message),
            "{spec}: {stderr}"
        );
    }
    // One port with several instances is a shared-port cluster now; what
    // cannot share is an app started alone on its port and scaled later.
    let alone = free_ports(1).to_string();
    fx.ok(&["start", "sleep 300", "--name", "x", "--port", &alone]);
    let err = fx.fails(&["scale", "x", "4"]);
    assert!(
        err.contains(&format!("x serves port {alone} alone")) && err.contains("--instances 4"),
        "{err}"
    );
    assert_eq!(fx.names(), ["x-0"]);
    fx.ok(&["delete", "x"]);
    let err = fx.fails(&[
        "start",
        "sleep 300",
        "--name",
        "x",
        "--port",
        "3000-3002",
        "--instances",
        "4",
    ]);
    assert!(
        err.contains("3000-3002 has 3 ports for 4 instances"),
        "{err}"
    );
    assert!(fx.list().is_empty());
}

#[test]
fn auto_picks_the_first_free_ports_skipping_outside_listeners_and_other_apps() {
    let fx = Fixture::new();
    let base = free_ports(10);
    let _outside = std::net::TcpListener::bind(("127.0.0.1", base + 1)).unwrap();
    let _outside_v6 = std::net::TcpListener::bind(("::", base + 3)).unwrap();
    let spec = format!("auto:{base}-{}", base + 9);
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "first",
        "--port",
        &base.to_string(),
    ]);
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "worker-cluster",
        "--instances",
        "3",
        "--port",
        &spec,
    ]);
    assert_eq!(
        ports_of(&fx, "worker-cluster"),
        [Some(base + 2), Some(base + 4), Some(base + 5)]
    );
    // Too few left: refused before anything starts.
    let err = fx.fails(&[
        "start",
        "sleep 300",
        "--name",
        "big",
        "--instances",
        "5",
        "--port",
        &spec,
    ]);
    assert!(
        err.contains("has only 4 free ports left for 5 instances"),
        "{err}"
    );
    assert!(fx.list().iter().all(|p| p.app != "big"));
}

#[test]
fn an_explicit_port_another_program_listens_on_is_refused() {
    let fx = Fixture::new();
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).unwrap();
    let port = listener.local_addr().unwrap().port().to_string();
    let err = fx.fails(&["start", "sleep 300", "--name", "web", "--port", &port]);
    assert_eq!(
        err.trim(),
        format!("error: port {port} is already used by another program on this machine")
    );
    assert!(fx.list().is_empty());
}

#[test]
fn a_failed_cluster_start_leaves_nothing_started_or_registered() {
    let fx = Fixture::new();
    let base = free_ports(4);
    // The third instance's port is taken: nothing may start.
    let _blocker = std::net::TcpListener::bind(("127.0.0.1", base + 2)).unwrap();
    let spec = format!("{base}-{}", base + 3);
    let err = fx.fails(&[
        "start",
        "sleep 300",
        "--name",
        "web",
        "--instances",
        "4",
        "--port",
        &spec,
    ]);
    assert!(
        err.contains(&format!("port {} is already used", base + 2)),
        "{err}"
    );
    // A program that is missing: nothing either.
    let err = fx.fails(&["start", "./nope.sh", "--name", "web", "--instances", "4"]);
    assert!(err.contains("does not exist"), "{err}");
    assert!(fx.list().is_empty());
    assert!(
        fx.processes().is_empty(),
        "left running: {:?}",
        fx.processes()
    );
    // And the name and ports are still free to use.
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "web",
        "--instances",
        "2",
        "--port",
        &format!("{base}-{}", base + 1),
    ]);
}

#[test]
fn the_environment_a_child_really_sees() {
    let fx = Fixture::new();
    let base = free_ports(2);
    fx.script("env.sh", "#!/bin/sh\nenv | grep -E '^(PORT|PM2_INSTANCE_ID|NODE_APP_INSTANCE|PMDAEMON_APP_NAME|PMDAEMON_INSTANCE_NAME|GREETING)=' | sort > env-$PM2_INSTANCE_ID.txt\nexec sleep 300\n");
    fx.ok(&[
        "start",
        "./env.sh",
        "--name",
        "envy",
        "-i",
        "2",
        "--port",
        &format!("{base}-{}", base + 1),
        "--env",
        "GREETING=hi",
    ]);
    let read = |i: u32| {
        let path = fx.work().join(format!("env-{i}.txt"));
        wait_file(&path, |s| s.contains("PORT"))
    };
    assert_eq!(
        read(1),
        format!("GREETING=hi\nNODE_APP_INSTANCE=1\nPM2_INSTANCE_ID=1\nPMDAEMON_APP_NAME=envy\nPMDAEMON_INSTANCE_NAME=envy-1\nPORT={}\n", base + 1)
    );
    assert!(read(0).contains(&format!("PORT={base}\n")));
}

#[test]
fn instance_var_renames_node_app_instance() {
    let fx = Fixture::new();
    fx.script("env.sh", "#!/bin/sh\nenv | grep -E '^(PORT|PM2_INSTANCE_ID|NODE_APP_INSTANCE|MY_INDEX)=' | sort > env.txt\nexec sleep 300\n");
    fx.ok(&[
        "start",
        "./env.sh",
        "--name",
        "renamed",
        "--instance-var",
        "MY_INDEX",
    ]);
    let path = fx.work().join("env.txt");
    wait_file(&path, |s| !s.is_empty());
    assert_eq!(
        std::fs::read_to_string(path).unwrap(),
        "MY_INDEX=0\nPM2_INSTANCE_ID=0\n"
    );
}

#[test]
fn scale_up_takes_the_next_ports_and_scale_down_removes_the_highest() {
    let fx = Fixture::new();
    let base = free_ports(6);
    let spec = format!("{base}-{}", base + 5);
    fx.ok(&[
        "start",
        "sleep 300",
        "--name",
        "web-app",
        "-i",
        "2",
        "--port",
        &spec,
    ]);
    fx.ok(&["scale", "web-app", "6"]);
    let list = fx.list();
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "web-app-0",
            "web-app-1",
            "web-app-2",
            "web-app-3",
            "web-app-4",
            "web-app-5"
        ]
    );
    assert_eq!(
        ports_of(&fx, "web-app"),
        (0..6).map(|i| Some(base + i)).collect::<Vec<_>>()
    );
    assert!(list.iter().all(|p| p.status == Status::Online));
    let doomed: Vec<u32> = list[2..].iter().map(|p| p.pid.unwrap()).collect();
    fx.ok(&["scale", "web-app", "2"]);
    assert_eq!(ports_of(&fx, "web-app"), [Some(base), Some(base + 1)]);
    assert!(doomed.iter().all(|pid| !helper::alive(*pid)));
    assert_eq!(fx.info("web-app-0")[0].config.instances, 2);
    // Beyond the range: refused, nothing changes.
    let err = fx.fails(&["scale", "web-app", "7"]);
    assert!(err.contains("has 6 ports for 7 instances"), "{err}");
    assert_eq!(fx.list().len(), 2);
    assert!(fx
        .fails(&["scale", "nope", "3"])
        .contains("no process or app named 'nope'"));
}

#[test]
fn restart_with_port_uses_other_ports_for_that_run_only() {
    let fx = Fixture::new();
    let base = free_ports(4);
    let other = free_ports(4);
    let server = hello_server();
    fx.ok(&[
        "start",
        server.to_str().unwrap(),
        "--name",
        "web-app",
        "-i",
        "2",
        "--port",
        &format!("{base}-{}", base + 1),
    ]);
    fx.ok(&[
        "restart",
        "web-app",
        "--port",
        &format!("{other}-{}", other + 1),
    ]);
    assert_eq!(ports_of(&fx, "web-app"), [Some(other), Some(other + 1)]);
    assert!(wait_until(DEADLINE, || http_get(other + 1)
        .is_some_and(|b| b.contains("instance 1"))));
    assert_eq!(
        fx.info("web-app-0")[0].config.port.unwrap().to_string(),
        format!("{base}-{}", base + 1),
        "the saved configuration must be kept"
    );
    fx.ok(&["restart", "web-app"]);
    assert_eq!(ports_of(&fx, "web-app"), [Some(base), Some(base + 1)]);
    assert!(wait_until(DEADLINE, || http_get(base).is_some()));
}

#[test]
fn max_and_minus_one_count_the_cpus_this_process_may_use() {
    let fx = Fixture::new();
    if std::process::Command::new("taskset")
        .arg("--version")
        .output()
        .is_err()
    {
        panic!("taskset (util-linux) is needed for this test");
    }
    let start = |cpus: &str, name: &str, instances: &str| {
        let output = std::process::Command::new("taskset")
            .args(["-c", cpus])
            .arg(assert_cmd::cargo::cargo_bin("pmdaemon"))
            .args([
                "start",
                "sleep 300",
                "--name",
                name,
                "--instances",
                instances,
            ])
            .env("PMDAEMON_HOME", fx.home())
            .current_dir(fx.work())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        fx.list().iter().filter(|p| p.app == name).count()
    };
    assert_eq!(start("0", "one-max", "max"), 1);
    assert_eq!(start("0", "one-minus", "-1"), 1, "-1 is at least 1");
    let cpus = std::thread::available_parallelism().unwrap().get();
    if cpus >= 2 {
        assert_eq!(start("0,1", "two-max", "max"), 2);
        assert_eq!(start("0,1", "two-minus", "-1"), 1);
    }
}

/// The seed's nginx example, for real: nginx balances over a 4-instance
/// cluster on a range of ports, and the service keeps answering while one
/// instance is stopped and restarted.
#[test]
fn nginx_in_front_of_a_four_instance_cluster_reaches_all_and_survives_a_restart() {
    let nginx = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| std::path::Path::new(p).exists());
    let Some(nginx) = nginx else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must install nginx (.ci/run does)"
        );
        eprintln!("SKIPPED: nginx is not installed here (apt-get install nginx-light)");
        return;
    };
    let fx = Fixture::new();
    let base = free_ports(4);
    let front = free_ports(1);
    let server = hello_server();
    fx.ok(&[
        "start",
        server.to_str().unwrap(),
        "--name",
        "web-app",
        "-i",
        "4",
        "--port",
        &format!("{base}-{}", base + 3),
    ]);
    for i in 0..4 {
        assert!(
            wait_until(DEADLINE, || http_get(base + i).is_some()),
            "instance {i} never answered"
        );
    }
    let prefix = fx.work().join("nginx");
    std::fs::create_dir_all(prefix.join("logs")).unwrap();
    let upstreams: String = (0..4)
        .map(|i| format!("        server 127.0.0.1:{};\n", base + i))
        .collect();
    let conf = format!(
        "pid {p}/nginx.pid;\nerror_log {p}/logs/error.log;\nworker_processes 1;\nevents {{ worker_connections 64; }}\nhttp {{\n    access_log off;\n    client_body_temp_path {p}/body;\n    proxy_temp_path {p}/proxy;\n    fastcgi_temp_path {p}/fastcgi;\n    uwsgi_temp_path {p}/uwsgi;\n    scgi_temp_path {p}/scgi;\n    upstream app_backend {{\n{upstreams}    }}\n    server {{\n        listen 127.0.0.1:{front};\n        location / {{\n            proxy_pass http://app_backend;\n            proxy_set_header Host $host;\n            proxy_set_header X-Real-IP $remote_addr;\n        }}\n    }}\n}}\n",
        p = prefix.display()
    );
    std::fs::write(prefix.join("nginx.conf"), conf).unwrap();
    let nginx_process = std::process::Command::new(nginx)
        .args([
            "-p",
            prefix.to_str().unwrap(),
            "-c",
            prefix.join("nginx.conf").to_str().unwrap(),
            "-g",
            "daemon off; master_process off;",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Without a master process, killing this one process stops nginx whole.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _nginx = Reap(nginx_process);
    assert!(
        wait_until(DEADLINE, || http_get(front).is_some()),
        "nginx never answered"
    );

    let seen = |requests: usize| -> BTreeSet<String> {
        (0..requests)
            .map(|_| http_get(front).expect("the balanced service stopped answering"))
            .collect()
    };
    let all: BTreeSet<String> = (0..4)
        .map(|i| format!("hello from instance {i}\n"))
        .collect();
    assert_eq!(seen(40), all, "nginx did not reach all 4 instances");

    // One instance stopped: every request still gets an answer.
    fx.ok(&["stop", "web-app-1"]);
    let during = seen(40);
    assert!(!during.contains("hello from instance 1\n"));
    assert_eq!(during.len(), 3);
    fx.ok(&["restart", "web-app-1"]);
    assert!(wait_until(DEADLINE, || http_get(base + 1).is_some()));
    assert!(
        wait_until(Duration::from_secs(30), || seen(8).len() == 4),
        "instance 1 never came back behind nginx"
    );
}

#[test]
fn info_shows_the_environment_the_process_gets_and_settings_as_written() {
    let fx = Fixture::new();
    let base = free_ports(2);
    fx.command()
        .args([
            "start",
            "sleep 300",
            "--name",
            "api",
            "-i",
            "2",
            "--port",
            &format!("{base}-{}", base + 1),
            "--env",
            "DATABASE_URL=postgres://app:s3cret@db/app",
            "--health-check-url",
            "http://u:pw@127.0.0.1:{PORT}/health",
            "--kill-timeout",
            "5s",
        ])
        .env("FROM_SHELL", "yes")
        .env("MY_TOKEN", "hidden")
        .assert()
        .success();
    let info = fx.ok(&["info", "api-1"]);
    for expected in [
        "FROM_SHELL=yes".to_string(),
        format!("PORT={}", base + 1),
        "PM2_INSTANCE_ID=1".to_string(),
        "MY_TOKEN=[redacted]".to_string(),
        "DATABASE_URL=postgres://app:[redacted]@db/app".to_string(),
        "(http http://u:[redacted]@127.0.0.1:{PORT}/health, every 30s, timeout 5s, 3 retries)"
            .to_string(),
        "SIGTERM then SIGKILL after 5s".to_string(),
        "10.0MB, 10 files".to_string(),
    ] {
        assert!(info.contains(&expected), "{expected} not in\n{info}");
    }
    assert!(!info.contains("s3cret") && !info.contains(":pw@") && !info.contains("hidden"));
}

#[test]
fn history_times_are_local_like_log_timestamps() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "t"]);
    let created = fx.info("t-0")[0].history[0].at_ms;
    // Three hours east of UTC, in POSIX TZ notation.
    let output = fx
        .command()
        .args(["info", "t-0"])
        .env("TZ", "XYZ-3")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    let secs = created / 1000 + 3 * 3600;
    let clock = format!(
        "{:02}:{:02}:{:02}",
        (secs / 3600) % 24,
        (secs / 60) % 60,
        secs % 60
    );
    let row = text.lines().find(|l| l.contains("created")).unwrap_or("");
    assert!(row.contains(&clock), "{clock} not in {row}");
}

#[test]
fn scale_refuses_to_create_an_instance_named_like_another_app() {
    let fx = Fixture::new();
    fx.ok(&["start", "sleep 300", "--name", "web"]);
    fx.ok(&["start", "sleep 300", "--name", "web-1"]);
    let err = fx.fails(&["scale", "web", "2"]);
    assert!(
        err.contains("would create an instance named web-1"),
        "{err}"
    );
    assert_eq!(fx.names(), ["web-0", "web-1-0"]);
}
