//! Ecosystem files, end to end: the seed's examples, idempotent apply,
//! restart of only what changed, prune, profiles, PM2's JavaScript files.

mod helper;

use helper::{free_ports, http_get, wait_file, wait_until, Fixture, DEADLINE};
use pmdaemon_core::api::Status;

fn have(program: &str) -> bool {
    std::process::Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A node server that answers with its instance id on $PORT.
const SERVER_JS: &str = "require('http').createServer((q, r) => r.end('instance ' + process.env.PM2_INSTANCE_ID + '\\n')).listen(+process.env.PORT || 0, '127.0.0.1');\n";

#[test]
fn the_seeds_examples_start_from_an_ecosystem_file() {
    if !have("node") {
        assert!(
            std::env::var_os("CI").is_none(),
            "node is part of the CI machine"
        );
        eprintln!("SKIPPED: node is not installed");
        return;
    }
    let fx = Fixture::new();
    std::fs::write(fx.work().join("server.js"), SERVER_JS).unwrap();
    std::fs::write(fx.work().join("api.js"), SERVER_JS).unwrap();
    std::fs::write(
        fx.work().join("worker.py"),
        "import time\nwhile True: time.sleep(60)\n",
    )
    .unwrap();
    let api = free_ports(3);
    let auto = free_ports(20);
    let file = format!(
        r#"{{
  "apps": [
    {{ "name": "web-app", "script": "node", "args": ["server.js"], "instances": 4, "exec_mode": "cluster" }},
    {{ "name": "api-cluster", "script": "node", "args": ["api.js"], "instances": 3, "port": "{api}-{api_end}" }},
    {{ "name": "worker-cluster", "script": "python3", "args": ["worker.py"], "instances": 5, "port": "auto:{auto}-{auto_end}" }}
  ]
}}"#,
        api_end = api + 2,
        auto_end = auto + 19
    );
    std::fs::write(fx.work().join("ecosystem.json"), file).unwrap();
    let out = fx.ok(&["start", "ecosystem.json"]);
    assert!(out.contains("web-app: started (4 instance(s))"), "{out}");
    let list = fx.list();
    let names: Vec<&str> = list.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "web-app-0",
            "web-app-1",
            "web-app-2",
            "web-app-3",
            "api-cluster-0",
            "api-cluster-1",
            "api-cluster-2",
            "worker-cluster-0",
            "worker-cluster-1",
            "worker-cluster-2",
            "worker-cluster-3",
            "worker-cluster-4"
        ]
    );
    let ports: Vec<Option<u16>> = list
        .iter()
        .filter(|p| p.app == "api-cluster")
        .map(|p| p.port)
        .collect();
    assert_eq!(ports, [Some(api), Some(api + 1), Some(api + 2)]);
    assert!(list
        .iter()
        .filter(|p| p.app == "worker-cluster")
        .all(|p| p.port.is_some_and(|port| (auto..auto + 20).contains(&port))));
    for i in 0..3u16 {
        assert!(
            wait_until(DEADLINE, || http_get(api + i)
                .is_some_and(|b| b == format!("instance {i}\n"))),
            "api-cluster-{i} does not answer on its port"
        );
    }
    // The seed's cluster-wide and per-instance control by name.
    fx.ok(&["stop", "web-app-1"]);
    fx.ok(&["restart", "web-app-2"]);
    assert_eq!(fx.get("web-app-1").status, Status::Stopped);
    fx.ok(&["stop", "web-app"]);
    fx.ok(&["restart", "web-app"]);
    assert!(fx
        .list()
        .iter()
        .filter(|p| p.app == "web-app")
        .all(|p| p.status == Status::Online));
    fx.ok(&["delete", "web-app"]);
    assert!(fx.list().iter().all(|p| p.app != "web-app"));
}

#[test]
fn applying_a_file_twice_changes_nothing_and_an_edit_restarts_only_that_app() {
    let fx = Fixture::new();
    let write = |worker_env: &str| {
        let file = format!(
            "apps:\n  - name: web\n    script: sleep\n    args: \"300\"\n    instances: 2\n  - name: worker\n    script: sleep\n    args: [\"300\"]\n    env:\n      MODE: {worker_env}\n"
        );
        std::fs::write(fx.work().join("ecosystem.yaml"), file).unwrap();
    };
    write("slow");
    fx.ok(&["start", "ecosystem.yaml"]);
    let pids = |app: &str| -> Vec<Option<u32>> {
        fx.list()
            .iter()
            .filter(|p| p.app == app)
            .map(|p| p.pid)
            .collect()
    };
    let (web, worker) = (pids("web"), pids("worker"));
    let again = fx.ok(&["start", "ecosystem.yaml"]);
    assert!(
        again.contains("web: unchanged") && again.contains("worker: unchanged"),
        "{again}"
    );
    assert_eq!((pids("web"), pids("worker")), (web.clone(), worker.clone()));

    write("fast");
    let edited = fx.ok(&["start", "ecosystem.yaml"]);
    assert!(edited.contains("web: unchanged"), "{edited}");
    assert!(
        edited.contains("worker: restarted (changed: env)"),
        "{edited}"
    );
    assert_eq!(pids("web"), web, "an unchanged app must not restart");
    assert_ne!(pids("worker"), worker);
    assert_eq!(fx.info("worker")[0].config.env["MODE"], "fast");

    // A stopped app is started again by the same file.
    fx.ok(&["stop", "web"]);
    let restarted = fx.ok(&["start", "ecosystem.yaml"]);
    assert!(
        restarted.contains("web: started (was stopped: web-0, web-1)"),
        "{restarted}"
    );
}

#[test]
fn instances_and_ports_follow_an_edited_file() {
    let fx = Fixture::new();
    let base = free_ports(4);
    let write = |instances: u32| {
        let file = format!("[[apps]]\nname = \"api\"\nscript = \"sleep\"\nargs = \"300\"\ninstances = {instances}\nport = \"{base}-{}\"\n", base + 3);
        std::fs::write(fx.work().join("ecosystem.toml"), file).unwrap();
    };
    write(2);
    fx.ok(&["start", "ecosystem.toml"]);
    write(4);
    fx.ok(&["start", "ecosystem.toml"]);
    let ports: Vec<Option<u16>> = fx.list().iter().map(|p| p.port).collect();
    assert_eq!(ports, (0..4).map(|i| Some(base + i)).collect::<Vec<_>>());
    write(1);
    fx.ok(&["start", "ecosystem.toml"]);
    let names = fx.names();
    assert_eq!(names, ["api-0"]);
}

#[test]
fn apps_removed_from_the_file_stay_unless_prune() {
    let fx = Fixture::new();
    let both = r#"{"apps": [{"name": "a", "script": "sleep", "args": "300"}, {"name": "b", "script": "sleep", "args": "300"}]}"#;
    std::fs::write(fx.work().join("eco.json"), both).unwrap();
    fx.ok(&["start", "eco.json"]);
    fx.ok(&["start", "sleep 300", "--name", "outsider"]);
    fx.start_json(r#"{"apps": [{"name": "a", "script": "sleep", "args": "300"}]}"#);
    assert_eq!(fx.list().len(), 3, "without --prune nothing is removed");
    let out = fx.ok(&["start", "eco.json", "--prune"]);
    assert!(out.contains("b: pruned"), "{out}");
    let apps: Vec<String> = fx.list().into_iter().map(|p| p.app).collect();
    assert_eq!(
        apps,
        ["a", "outsider"],
        "prune only touches apps from that file"
    );
}

#[test]
fn only_config_and_env_profiles_select_apps_and_variables() {
    let fx = Fixture::new();
    fx.script(
        "show.sh",
        "#!/bin/sh\necho \"MODE=$MODE\" > \"mode-$PMDAEMON_APP_NAME.txt\"\nexec sleep 300\n",
    );
    let file = r#"{"apps": [
        {"name": "a", "script": "./show.sh", "env": {"MODE": "dev"}, "env_production": {"MODE": "prod"}},
        {"name": "b", "script": "./show.sh"},
        {"name": "c", "script": "./show.sh"}
    ]}"#;
    std::fs::write(fx.work().join("eco.json"), file).unwrap();
    fx.ok(&["start", "eco.json", "--only", "a,b", "--env", "production"]);
    let apps: Vec<String> = fx.list().into_iter().map(|p| p.app).collect();
    assert_eq!(apps, ["a", "b"]);
    let mode = fx.work().join("mode-a.txt");
    wait_file(&mode, |s| s == "MODE=prod\n");
    fx.ok(&["--config", "eco.json", "start", "--name", "c"]);
    assert_eq!(fx.list().len(), 3);
    let err = fx.fails(&["start", "eco.json", "--only", "zzz"]);
    assert!(
        err.contains("has no app named 'zzz' (it has: a, b, c)"),
        "{err}"
    );
    // stop, restart and delete accept the file, as a target or --config.
    fx.ok(&["stop", "eco.json"]);
    assert!(fx.list().iter().all(|p| p.status == Status::Stopped));
    fx.ok(&["--config", "eco.json", "restart"]);
    assert!(fx.list().iter().all(|p| p.status == Status::Online));
    fx.ok(&["-c", "eco.json", "stop"]);
    assert!(fx.list().iter().all(|p| p.status == Status::Stopped));
    // Neither a target nor a file: refused, nothing changes.
    let err = fx.fails(&["delete"]);
    assert!(err.contains("give a target"), "{err}");
    assert_eq!(fx.list().len(), 3);
    fx.ok(&["delete", "eco.json"]);
    assert!(fx.list().is_empty());
}

#[test]
fn a_file_with_any_error_starts_nothing() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("eco.json"),
        "{\"apps\": [\n  {\"name\": \"ok\", \"script\": \"sleep\", \"args\": \"300\"},\n  {\"name\": \"bad\", \"script\": \"sleep\", \"max_restart\": 3}\n]}\n",
    )
    .unwrap();
    let err = fx.fails(&["start", "eco.json"]);
    assert_eq!(
        err,
        "error: eco.json has 1 problem; nothing was started or changed\n  eco.json:3:38: app 'bad': field 'max_restart': unknown field (did you mean 'max_restarts'?)\n"
    );
    let err = fx.fails(&["validate", "eco.json"]);
    assert!(err.contains("max_restart"));
    // A missing program in any app: nothing starts either.
    std::fs::write(
        fx.work().join("eco.json"),
        r#"{"apps": [{"name": "ok", "script": "sleep", "args": "300"}, {"name": "bad", "script": "./nope"}]}"#,
    )
    .unwrap();
    let err = fx.fails(&["start", "eco.json"]);
    assert!(
        err.contains("app 'bad'") && err.contains("does not exist"),
        "{err}"
    );
    assert!(fx.list().is_empty());
    let err = fx.fails(&["validate", "missing.json"]);
    assert!(err.contains("cannot read missing.json"), "{err}");
}

#[test]
fn a_pm2_ecosystem_config_js_starts_when_node_is_present() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("ecosystem.config.js"),
        "module.exports = {\n  apps: [{\n    name: 'js-app',\n    script: 'sleep',\n    args: '300',\n    instances: 2,\n    exec_mode: 'cluster',\n    env: { NODE_ENV: 'development' },\n    env_production: { NODE_ENV: 'production' },\n  }],\n};\n",
    )
    .unwrap();
    if !have("node") {
        let err = fx.fails(&["start", "ecosystem.config.js"]);
        assert!(err.contains("needs node"), "{err}");
        return;
    }
    fx.ok(&["start", "ecosystem.config.js", "--env", "production"]);
    let names = fx.names();
    assert_eq!(names, ["js-app-0", "js-app-1"]);
    assert_eq!(fx.info("js-app-0")[0].config.env["NODE_ENV"], "production");
    // A mistake is located in the JavaScript as written.
    std::fs::write(
        fx.work().join("bad.config.js"),
        "const base = { script: 'sleep', args: '300' };\nmodule.exports = {\n  apps: [\n    { ...base, name: 'a' },\n    { ...base, name: 'b', instance: 2 },\n  ],\n};\n",
    )
    .unwrap();
    let err = fx.fails(&["validate", "bad.config.js"]);
    assert!(
        err.contains("bad.config.js:5:27: app 'b': field 'instance': unknown field (did you mean 'instances'?)"),
        "{err}"
    );
}

#[test]
fn instances_come_from_the_environment_of_the_command_applying_the_file() {
    // The KromoSynth setup: one file, the count from the environment, max
    // by default.
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("ecosystem.json"),
        r#"{"apps": [{"name": "render", "script": "sleep", "args": ["${PMDAEMON_TEST_SLEEP:-300}"],
  "instances": "${PMDAEMON_INSTANCES:-max}"}]}"#,
    )
    .unwrap();
    let out = fx
        .command()
        .env("PMDAEMON_INSTANCES", "2")
        .args(["start", "ecosystem.json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let list = fx.list();
    assert_eq!(list.len(), 2, "{list:?}");
    let detail = fx.info("render-1");
    assert_eq!(detail[0].config.args, ["300"], "the default fills in");

    let out = fx
        .command()
        .env_remove("PMDAEMON_INSTANCES")
        .args(["validate", "ecosystem.json"])
        .output()
        .unwrap();
    let cpus = std::thread::available_parallelism().unwrap().get();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains(&format!("render ({cpus} instance")), "{said}");
}

#[test]
fn an_unset_variable_without_a_default_is_refused_with_its_line() {
    let fx = Fixture::new();
    std::fs::write(
        fx.work().join("eco.yaml"),
        "name: api\nscript: sleep\nargs: [\"300\"]\nenv:\n  TOKEN: ${PMDAEMON_TEST_UNSET_TOKEN:?the API token}\n",
    )
    .unwrap();
    let err = fx.fails(&["start", "eco.yaml"]);
    assert!(
        err.contains("eco.yaml:5:10: app 'api': field 'env.TOKEN': environment variable PMDAEMON_TEST_UNSET_TOKEN is not set: the API token"),
        "{err}"
    );
    assert!(
        fx.daemon_pid().is_none(),
        "nothing started, not even the daemon"
    );
}

#[test]
fn an_apply_whose_client_goes_away_still_changes_every_instance() {
    let fx = Fixture::new();
    // Slow to stop: each instance takes a second after SIGTERM.
    fx.script(
        "slow.sh",
        "#!/bin/sh\necho \"$VERSION\" > v-$PM2_INSTANCE_ID.txt\ntrap 'sleep 1; exit 0' TERM\nwhile :; do sleep 0.1; done\n",
    );
    let eco = |version: &str| {
        std::fs::write(
            fx.work().join("eco.json"),
            format!(r#"{{"name": "slow", "script": "./slow.sh", "instances": 3, "env": {{"VERSION": "{version}"}}}}"#),
        )
        .unwrap();
    };
    eco("one");
    fx.ok(&["start", "eco.json"]);
    for i in 0..3 {
        helper::wait_file(&fx.work().join(format!("v-{i}.txt")), |t| t == "one\n");
    }
    eco("two");
    let mut client = fx.process().args(["start", "eco.json"]).spawn().unwrap();
    // The client goes away while the first instance is still stopping.
    assert!(helper::wait_until(helper::DEADLINE, || {
        fx.info("slow-0")[0]
            .history
            .iter()
            .any(|e| e.event == "restarting")
    }));
    client.kill().unwrap();
    client.wait().unwrap();
    for i in 0..3 {
        helper::wait_file(&fx.work().join(format!("v-{i}.txt")), |t| t == "two\n");
    }
    assert!(fx.ok(&["start", "eco.json"]).contains("unchanged"));
}
