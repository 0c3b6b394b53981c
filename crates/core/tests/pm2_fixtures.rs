//! PM2-style ecosystem files (tests/fixtures/pm2): every shape, alias and
//! value form PM2 accepts loads here with PM2's meaning; every invalid one
//! fails with exactly the message in its `.expected` file (regenerate with
//! PMDAEMON_UPDATE_EXPECTED=1 after checking the change), and no message
//! shows serde's internals.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pmdaemon_core::config::{AppConfig, ExecMode};
use pmdaemon_core::ecosystem::{parse, ConfigError, Format, Loaded, Options};

mod common;

fn dir(kind: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pm2")
        .join(kind)
}

fn fixtures(kind: &str) -> Vec<PathBuf> {
    common::fixtures("pm2", kind)
}

fn load(path: &Path) -> Result<Loaded, ConfigError> {
    let text = std::fs::read_to_string(path).unwrap();
    let label = path.file_name().unwrap().to_str().unwrap();
    let options = Options {
        profile: None,
        cpus: 4,
        source: None,
        env: BTreeMap::from([("HOME".to_string(), "/home/deploy".to_string())]),
    };
    parse(
        label,
        Path::new("/srv"),
        &text,
        Format::of(path).unwrap(),
        &options,
    )
}

fn valid(file: &str) -> Loaded {
    load(&dir("valid").join(file)).unwrap_or_else(|err| panic!("{err}"))
}

fn app<'a>(loaded: &'a Loaded, name: &str) -> &'a AppConfig {
    loaded
        .apps
        .iter()
        .find(|a| a.name == name)
        .unwrap_or_else(|| panic!("no app {name}"))
}

#[test]
fn every_valid_pm2_fixture_loads() {
    for path in fixtures("valid") {
        let loaded = load(&path).unwrap_or_else(|err| panic!("{err}"));
        assert!(!loaded.apps.is_empty(), "{}", path.display());
    }
}

#[test]
fn every_invalid_pm2_fixture_fails_with_its_expected_message() {
    for path in fixtures("invalid") {
        let err = load(&path)
            .err()
            .unwrap_or_else(|| panic!("{} loaded", path.display()));
        let message = format!("{err}\n");
        for internal in ["untagged", "variant", "expected one of", "`"] {
            assert!(
                !message.contains(internal),
                "{} shows serde's internals ({internal}): {message}",
                path.display()
            );
        }
        common::assert_expected(&path, &message);
    }
}

#[test]
fn every_file_shape_pm2_accepts_lists_its_apps() {
    let names =
        |file: &str| -> Vec<String> { valid(file).apps.iter().map(|a| a.name.clone()).collect() };
    assert_eq!(names("top-level-array.json"), ["api", "worker"]);
    assert_eq!(names("apps-one-object.json"), ["solo"]);
    assert_eq!(names("pm2-key.json"), ["legacy"]);
    assert_eq!(names("object-literal.json"), ["literal"]);
    assert_eq!(names("ecosystem.json5"), ["five"]);
    let literal = valid("object-literal.json");
    assert_eq!(literal.apps[0].instances, 2);
    assert_eq!(literal.apps[0].env["NODE_ENV"], "production");
    let five = valid("ecosystem.json5");
    assert_eq!(five.apps[0].args, ["--port", "8080"]);
    assert_eq!(five.apps[0].max_memory_restart, Some(300 << 20));
    assert_eq!(five.apps[0].kill_timeout, 3000);
}

#[test]
fn every_alias_names_its_field() {
    let loaded = valid("aliases.json");
    let exec = app(&loaded, "by-exec");
    assert_eq!(exec.script, "app.js");
    assert_eq!(exec.out_file.as_deref(), Some(Path::new("/srv/logs/a.out")));
    assert_eq!(
        exec.error_file.as_deref(),
        Some(Path::new("/srv/logs/a.err"))
    );
    assert_eq!(exec.log_file.as_deref(), Some(Path::new("/srv/logs/a.log")));
    assert_eq!(exec.cron_restart.as_deref(), Some("0 3 * * *"));
    assert_eq!(exec.uid.as_deref(), Some("www-data"));
    assert!(exec.merge_logs, "combine_logs is merge_logs");
    // pid_file is PM2's alone: accepted with a warning.
    assert!(
        loaded.warnings.iter().any(|w| w.contains("'pid'")),
        "{:?}",
        loaded.warnings
    );
    let cmd = app(&loaded, "by-cmd");
    assert_eq!(cmd.script, "worker.py");
    assert_eq!(cmd.out_file.as_deref(), Some(Path::new("/srv/logs/b.out")));
    assert_eq!(
        cmd.error_file.as_deref(),
        Some(Path::new("/srv/logs/b.err"))
    );
    assert_eq!(cmd.interpreter.as_deref(), Some("python3"));
    assert_eq!(cmd.interpreter_args, ["-u"]);
    let command = app(&loaded, "by-command");
    assert_eq!(command.script, "run.sh");
    assert_eq!(
        command.out_file.as_deref(),
        Some(Path::new("/srv/logs/c.out"))
    );
    assert_eq!(
        command.error_file.as_deref(),
        Some(Path::new("/srv/logs/c.err"))
    );
    let err_log = app(&loaded, "by-err-log");
    assert_eq!(
        err_log.error_file.as_deref(),
        Some(Path::new("/srv/logs/d.err"))
    );
    assert_eq!(err_log.interpreter_args, ["-x"]);
}

#[test]
fn camel_case_names_are_pm2s_fields() {
    let loaded = valid("camel-case.json");
    let camel = &loaded.apps[0];
    assert_eq!(camel.exec_mode, ExecMode::Cluster);
    assert_eq!(
        (
            camel.max_restarts,
            camel.min_uptime,
            camel.restart_delay,
            camel.kill_timeout
        ),
        (7, 5000, 250, 4000)
    );
    assert_eq!(camel.listen_timeout, Some(9000));
    assert_eq!(camel.max_memory_restart, Some(200 << 20));
    assert_eq!(
        camel.out_file.as_deref(),
        Some(Path::new("/srv/logs/camel.out"))
    );
    assert_eq!(
        camel.error_file.as_deref(),
        Some(Path::new("/srv/logs/camel.err"))
    );
    assert_eq!(camel.log_date_format.as_deref(), Some("YYYY-MM-DD HH:mm Z"));
    assert!(camel.merge_logs);
    assert_eq!(camel.cron_restart.as_deref(), Some("0 4 * * *"));
    assert_eq!(camel.ignore_watch, ["node_modules"]);
    assert_eq!(camel.watch_delay, 500);
    assert_eq!(camel.instance_var, "INSTANCE_ID");
    assert_eq!(camel.increment_var.as_deref(), Some("WS_PORT"));
    assert_eq!(camel.interpreter_args, ["--max-old-space-size=128"]);
    assert_eq!(camel.stop_exit_codes, [0]);
    assert_eq!(camel.exp_backoff_restart_delay, Some(100));
    assert_eq!(
        loaded.warnings.len(),
        1,
        "windowsHide: {:?}",
        loaded.warnings
    );
}

#[test]
fn pm2s_value_forms_mean_what_pm2_makes_of_them() {
    let loaded = valid("value-forms.json");
    let api = &loaded.apps[0];
    assert_eq!(api.name, "my-api-v2", "spaces become dashes");
    assert!(
        loaded.warnings.iter().any(|w| w.contains("'my-api-v2'")),
        "{:?}",
        loaded.warnings
    );
    assert_eq!(api.max_restarts, 50);
    assert_eq!(api.instances, 2);
    assert_eq!(api.kill_timeout, 3000);
    assert_eq!(api.min_uptime, 10_000);
    assert_eq!(api.watch, ["src"]);
    assert_eq!(api.ignore_watch, ["node_modules", "logs"]);
    assert_eq!(api.args, ["--port", "3000", "--verbose", "true"]);
    assert_eq!(
        api.env["CONFIG"],
        r#"{"db":{"host":"localhost","port":5432}}"#
    );
    assert_eq!(api.env["LIST"], "[1,2]");
    assert_eq!(api.env["WORKERS"], "4");
    assert_eq!(api.env["DEBUG"], "false");
    assert_eq!(
        api.log_file.as_deref(),
        Some(Path::new("logs/my-api-v2.log")),
        "true: the default combined log, under pmdaemon's home"
    );
    assert_eq!(api.cron_restart, None, "cron_restart: 0 is off");
    assert_eq!(api.stop_exit_codes, [3]);
    let quiet = &loaded.apps[1];
    assert_eq!(quiet.cron_restart, None);
    assert_eq!(quiet.log_max_files, Some(3));
    assert_eq!(quiet.health_check.as_ref().unwrap().retries, 5);
}

#[test]
fn fields_that_take_effect_are_carried_to_the_daemon() {
    let loaded = valid("taking-effect.yaml");
    let effects = app(&loaded, "effects");
    assert_eq!(
        effects.interpreter_args,
        ["--max-old-space-size=64", "--trace-warnings"]
    );
    assert!(!effects.autostart);
    assert_eq!(
        (effects.uid.as_deref(), effects.gid.as_deref()),
        (Some("1000"), Some("1000"))
    );
    assert_eq!(effects.namespace.as_deref(), Some("backend"));
    assert_eq!(
        effects.cwd.as_deref(),
        Some(Path::new("/home/deploy/apps/effects"))
    );
    assert_eq!(
        effects.out_file.as_deref(),
        Some(Path::new("/home/deploy/logs/effects.out")),
        "~ is the home directory"
    );
    // "NULL" and "/dev/null": no file.
    assert_eq!(effects.error_file.as_deref(), Some(Path::new("/dev/null")));
    assert_eq!(effects.log_file.as_deref(), Some(Path::new("/dev/null")));
    let py = app(&loaded, "py");
    assert_eq!(py.interpreter_args, ["-u"]);
    assert!(py.autostart);
    assert_eq!(py.out_file.as_deref(), Some(Path::new("/dev/null")));
}

#[test]
fn the_pm2_examples_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pm2");
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !Format::is_config_file(&path) {
            continue;
        }
        let loaded = load(&path).unwrap_or_else(|err| panic!("{err}"));
        assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
        count += 1;
    }
    assert_eq!(count, 4);
}
