use super::*;
use crate::config::{CheckType, ExecMode};

fn options() -> Options {
    Options {
        profile: None,
        cpus: 4,
        source: None,
        env: BTreeMap::new(),
    }
}

fn load(text: &str, format: Format) -> Result<Loaded, ConfigError> {
    parse("ecosystem", Path::new("/srv/app"), text, format, &options())
}

#[test]
fn the_seeds_json_examples_mean_what_they_say() {
    let web = load(r#"{"name": "web-app", "script": "node", "args": ["server.js"], "instances": 4, "exec_mode": "cluster"}"#, Format::Json).unwrap();
    let app = &web.apps[0];
    assert_eq!(
        (app.name.as_str(), app.script.as_str()),
        ("web-app", "node")
    );
    assert_eq!(app.args, ["server.js"]);
    assert_eq!(app.instances, 4);
    assert_eq!(app.exec_mode, ExecMode::Cluster);
    assert_eq!(app.cwd.as_deref(), Some(Path::new("/srv/app/")));

    let api = load(r#"{"name": "api-cluster", "script": "node", "args": ["api.js"], "instances": 3, "port": "3000-3002"}"#, Format::Json).unwrap();
    assert_eq!(api.apps[0].port.unwrap().to_string(), "3000-3002");

    let workers = load(r#"{"name": "worker-cluster", "script": "python", "args": ["worker.py"], "instances": 5, "port": "auto:8000-8100"}"#, Format::Json).unwrap();
    assert_eq!(workers.apps[0].port.unwrap().to_string(), "auto:8000-8100");
    assert_eq!(workers.apps[0].instances, 5);

    let limited = load(r#"{"name": "memory-limited-cluster", "script": "node", "args": ["app.js"], "instances": 4, "max_memory_restart": "512M", "port": "auto:4000-4100"}"#, Format::Json).unwrap();
    assert_eq!(limited.apps[0].max_memory_restart, Some(512 * 1024 * 1024));

    let checked = load(r#"{
      "name": "health-checked-cluster", "script": "node", "args": ["server.js"], "instances": 3, "port": "5000-5002",
      "health_check": {"check_type": "http", "url": "http://localhost:{PORT}/health", "timeout": 5, "interval": 30, "retries": 3, "enabled": true}
    }"#, Format::Json).unwrap();
    let check = checked.apps[0].health_check.clone().unwrap();
    assert_eq!(check.check_type, CheckType::Http);
    assert_eq!(check.url.as_deref(), Some("http://localhost:{PORT}/health"));
    assert_eq!(
        (check.timeout, check.interval, check.retries, check.enabled),
        (5_000, 30_000, 3, true)
    );
    // A number in a string is seconds too, as on the command line.
    let quoted = load(r#"{"name": "q", "script": "node", "health_check": {"url": "http://x", "interval": "30", "timeout": "1.5"}}"#, Format::Json).unwrap();
    let check = quoted.apps[0].health_check.clone().unwrap();
    assert_eq!((check.interval, check.timeout), (30_000, 1_500));

    let graceful = load(r#"{"name": "graceful-cluster", "script": "node", "args": ["app.js"], "instances": 4, "kill_timeout": 5000, "restart_delay": 1000}"#, Format::Json).unwrap();
    assert_eq!(
        (
            graceful.apps[0].kill_timeout,
            graceful.apps[0].restart_delay
        ),
        (5000, 1000)
    );
}

#[test]
fn the_same_apps_in_yaml_and_toml() {
    let yaml = "apps:\n  - name: web\n    script: node\n    args: server.js --fast\n    instances: max\n    kill_timeout: 5s\n    env:\n      NODE_ENV: development\n      WORKERS: 2\n    env_production:\n      NODE_ENV: production\n";
    let toml = "[[apps]]\nname = \"web\"\nscript = \"node\"\nargs = \"server.js --fast\"\ninstances = \"max\"\nkill_timeout = \"5s\"\n[apps.env]\nNODE_ENV = \"development\"\nWORKERS = 2\n[apps.env_production]\nNODE_ENV = \"production\"\n";
    for (text, format) in [(yaml, Format::Yaml), (toml, Format::Toml)] {
        let app = load(text, format).unwrap().apps.remove(0);
        assert_eq!(app.args, ["server.js", "--fast"], "{format:?}");
        assert_eq!(app.instances, 4);
        assert_eq!(app.kill_timeout, 5000);
        assert_eq!(app.env["NODE_ENV"], "development");
        assert_eq!(app.env["WORKERS"], "2");
        let production = Options {
            profile: Some("production".into()),
            cpus: 4,
            source: None,
            env: BTreeMap::new(),
        };
        let app = parse("f", Path::new("."), text, format, &production)
            .unwrap()
            .apps
            .remove(0);
        assert_eq!(app.env["NODE_ENV"], "production");
        assert_eq!(app.env["WORKERS"], "2");
    }
}

#[test]
fn instances_minus_one_and_zero_follow_the_cpus() {
    let count = |value: &str| {
        load(
            &format!(r#"{{"script": "x", "instances": {value}}}"#),
            Format::Json,
        )
        .unwrap()
        .apps[0]
            .instances
    };
    assert_eq!(count("-1"), 3);
    assert_eq!(count("0"), 4);
    assert_eq!(count("\"max\""), 4);
    assert_eq!(count("\"2\""), 2);
}

#[test]
fn every_problem_is_listed_with_app_field_line_and_suggestion() {
    let text = "{\n  \"apps\": [\n    {\n      \"name\": \"web\",\n      \"script\": \"node\",\n      \"instnaces\": 4,\n      \"kill_timeout\": \"soon\"\n    },\n    {\n      \"name\": \"web\",\n      \"script\": \"node\",\n      \"port\": \"3003-3000\"\n    }\n  ]\n}\n";
    let err = load(text, Format::Json).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ecosystem has 4 problems; nothing was started or changed\n  ecosystem:6:7: app 'web': field 'instnaces': unknown field (did you mean 'instances'?)\n  ecosystem:7:7: app 'web': field 'kill_timeout': invalid duration 'soon': use milliseconds (1500) or a number with a unit (500ms, 5s, 2m, 1h)\n  ecosystem:10:7: app 'web': field 'name': the name is already used by app #1\n  ecosystem:12:7: app 'web': field 'port': invalid port '3003-3000': the range runs backwards; did you mean 3000-3003?"
    );
}

#[test]
fn pm2_only_fields_are_ignored_with_a_warning_and_aliases_work() {
    let loaded = load(r#"{"script": "app.js", "vizion": false, "node_args": "--harmony", "output": "out.log", "error": "err.log"}"#, Format::Json).unwrap();
    assert_eq!(loaded.warnings.len(), 1);
    assert!(loaded.warnings[0].contains("vizion"));
    assert_eq!(loaded.apps[0].interpreter_args, ["--harmony"]);
    assert_eq!(
        loaded.apps[0].out_file.as_deref(),
        Some(Path::new("/srv/app/out.log"))
    );
    assert_eq!(
        loaded.apps[0].error_file.as_deref(),
        Some(Path::new("/srv/app/err.log"))
    );
    assert_eq!(loaded.apps[0].name, "app");
}

#[test]
fn the_committed_schema_is_up_to_date() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schema/ecosystem.schema.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    if std::env::var_os("PMDAEMON_UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, json_schema()).unwrap();
        return;
    }
    assert!(
        committed == json_schema(),
        "{} is out of date: run `PMDAEMON_UPDATE_SCHEMA=1 cargo test -p pmdaemon-core schema`",
        path.display()
    );
}

#[test]
fn the_schema_lists_exactly_the_fields_the_loader_knows() {
    let schema: Value = serde_json::from_str(&json_schema()).unwrap();
    let mut properties: Vec<String> = schema["$defs"]["AppFile"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    properties.sort();
    let mut fields: Vec<String> = FIELDS.iter().map(|f| f.to_string()).collect();
    fields.sort();
    assert_eq!(properties, fields);
    let mut health: Vec<String> = schema["$defs"]["HealthCheckFile"]["properties"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    health.sort();
    let mut known: Vec<String> = HEALTH_CHECK_FIELDS.iter().map(|f| f.to_string()).collect();
    known.sort();
    assert_eq!(health, known);
}

#[test]
fn a_cluster_on_one_port_shares_it_and_increment_var_is_read() {
    let loaded = load(
        r#"{"name": "api", "script": "server.js", "instances": 4, "port": 3000, "shared_port": "proxy", "increment_var": "WS_PORT", "env": {"WS_PORT": 4000}}"#,
        Format::Json,
    )
    .unwrap();
    let app = &loaded.apps[0];
    assert_eq!(app.increment_var.as_deref(), Some("WS_PORT"));
    assert_eq!(
        app.sharing(),
        Some((3000, crate::config::SharedPort::Proxy))
    );
    let bad = load(
        r#"{"name": "api", "script": "server.js", "port": 3000, "shared_port": "sockets"}"#,
        Format::Json,
    )
    .unwrap_err()
    .to_string();
    assert!(bad.contains("shared_port"), "{bad}");
}
