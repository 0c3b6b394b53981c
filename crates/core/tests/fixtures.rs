//! Every file under tests/fixtures/ecosystem/valid loads; every file under
//! invalid/ fails with exactly the message in its `.expected` file
//! (regenerate with PMDAEMON_UPDATE_EXPECTED=1 after checking the change).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use pmdaemon_core::ecosystem::{parse, Format, Options};

mod common;

fn fixtures(kind: &str) -> Vec<PathBuf> {
    common::fixtures("ecosystem", kind)
}

/// The environment fixtures with `${VAR}` placeholders see; the variables
/// they leave unset stay unset.
fn fixture_env() -> BTreeMap<String, String> {
    [
        ("PMDAEMON_TEST_WORKERS", "3"),
        ("PMDAEMON_TEST_PROFILE", "staging"),
        ("PMDAEMON_TEST_EMPTY", ""),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn load(
    path: &Path,
) -> Result<pmdaemon_core::ecosystem::Loaded, pmdaemon_core::ecosystem::ConfigError> {
    let text = std::fs::read_to_string(path).unwrap();
    let label = path.file_name().unwrap().to_str().unwrap();
    let options = Options {
        profile: Some("production".into()),
        cpus: 4,
        source: None,
        env: fixture_env(),
    };
    parse(
        label,
        Path::new("/srv"),
        &text,
        Format::of(path).unwrap(),
        &options,
    )
}

#[test]
fn every_valid_fixture_loads() {
    for path in fixtures("valid") {
        let loaded = load(&path).unwrap_or_else(|err| panic!("{err}"));
        assert!(!loaded.apps.is_empty(), "{}", path.display());
    }
}

#[test]
fn every_invalid_fixture_fails_with_its_expected_message() {
    for path in fixtures("invalid") {
        let err = load(&path)
            .err()
            .unwrap_or_else(|| panic!("{} loaded", path.display()));
        common::assert_expected(&path, &format!("{err}\n"));
    }
}

#[test]
fn valid_fixtures_mean_what_they_say() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecosystem/valid");
    let yaml = load(&dir.join("pm2-style.yaml")).unwrap();
    assert_eq!(yaml.warnings.len(), 0, "{:?}", yaml.warnings);
    let api = &yaml.apps[0];
    assert_eq!(api.interpreter_args, ["--max-old-space-size=512"]);
    assert_eq!(api.instances, 4);
    assert_eq!(
        api.env["NODE_ENV"], "production",
        "--env production merges env_production"
    );
    assert_eq!(api.env["PORT"], "3000");
    assert_eq!(api.max_memory_restart, Some(300 << 20));
    assert_eq!(
        api.out_file.as_deref(),
        Some(Path::new("/srv/./logs/api.out.log"))
    );
    assert_eq!(api.watch, ["src"]);
    assert_eq!(api.cron_restart.as_deref(), Some("0 3 * * *"));
    let jobs = &yaml.apps[1];
    assert_eq!(jobs.args, ["-m", "jobs", "--queue", "default"]);
    assert_eq!(jobs.instances, 3);
    assert!(!jobs.autorestart);
    assert_eq!(jobs.stop_exit_codes, [0, 3]);

    let toml = load(&dir.join("everything.toml")).unwrap();
    let web = &toml.apps[0];
    assert_eq!(web.port.unwrap().to_string(), "auto:9000-9100");
    assert_eq!(
        (
            web.min_uptime,
            web.exp_backoff_restart_delay,
            web.kill_timeout,
            web.listen_timeout
        ),
        (2000, Some(100), 5000, Some(8000))
    );
    let check = web.health_check.as_ref().unwrap();
    assert_eq!(
        (check.interval, check.timeout, check.retries),
        (10_000, 2_000, 5)
    );
    assert!(web.merge_logs && web.wait_ready);
    assert_eq!(web.instance_var, "INSTANCE_ID");
}

#[test]
fn placeholders_take_the_environment_in_every_format() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecosystem/valid");
    for file in [
        "interpolated.json",
        "interpolated.yaml",
        "interpolated.toml",
    ] {
        let loaded = load(&dir.join(file)).unwrap_or_else(|err| panic!("{err}"));
        let app = &loaded.apps[0];
        // Set: taken from the environment.
        assert_eq!(app.args, ["render.js", "--profile", "staging"], "{file}");
        assert_eq!(app.env["WORKERS"], "3", "{file}");
        // Unset: the default, also for typed fields.
        assert_eq!(app.instances, 4, "{file}: max is the 4 CPUs given");
        assert_eq!(app.port.unwrap().to_string(), "3000", "{file}");
        assert!(!app.autorestart, "{file}");
        assert_eq!(app.kill_timeout, 5000, "{file}");
        // Empty: `:-` takes the default.
        assert_eq!(app.env["LABEL"], "unnamed", "{file}");
        // `$$` escapes, a bare `$NAME` is left alone.
        assert_eq!(app.env["PRICE"], "$5 and $HOME", "{file}");
    }
}

#[test]
fn an_instance_count_from_the_environment_wins_over_the_default() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/ecosystem/valid");
    for file in [
        "interpolated.json",
        "interpolated.yaml",
        "interpolated.toml",
    ] {
        let path = dir.join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        let mut env = fixture_env();
        env.insert("PMDAEMON_INSTANCES".into(), "8".into());
        let options = Options {
            profile: None,
            cpus: 4,
            source: None,
            env,
        };
        let loaded = parse(
            file,
            Path::new("/srv"),
            &text,
            Format::of(&path).unwrap(),
            &options,
        )
        .unwrap_or_else(|err| panic!("{err}"));
        assert_eq!(loaded.apps[0].instances, 8, "{file}");
    }
}
