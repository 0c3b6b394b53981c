//! Turning one checked app object of a file into an [`AppConfig`]: PM2's
//! field forms and aliases resolved, paths made relative to the file, and
//! each remaining problem reported at its field.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::file::{
    self, AppFile, Args, CheckTypeName, ExecModeName, ExitCodes, Instances, LogFileValue, Watch,
};
use super::{Checker, Options};
use crate::command::{default_name_for, resolve_path, split_command_line};
use crate::config::{
    check_ports_fit, signal_number, validate_name, AppConfig, CheckType, ExecMode, HealthCheck,
    SharedPort,
};

pub(super) fn convert(
    checker: &mut Checker<'_>,
    index: usize,
    label: &str,
    app: AppFile,
    profiles: BTreeMap<String, BTreeMap<String, String>>,
    dir: &Path,
    options: &Options,
) -> Option<AppConfig> {
    let defaults = AppConfig::default();
    let Some(script) = app.script.filter(|s| !s.trim().is_empty()) else {
        let at: &[&str] = if app.name.is_some() { &["name"] } else { &[] };
        checker.problem(
            index,
            label,
            at,
            "the app has no 'script': say what to run".to_string(),
        );
        return None;
    };
    let mut words = |field: &str, args: Option<Args>| match args {
        None => Some(Vec::new()),
        Some(Args::List(list)) => Some(list),
        Some(Args::Line(line)) if line.trim().is_empty() => Some(Vec::new()),
        Some(Args::Line(line)) => match split_command_line(&line) {
            Ok(words) => Some(words),
            Err(err) => {
                checker.problem(index, label, &[field], err.to_string());
                None
            }
        },
    };
    let args = words("args", app.args)?;
    let interpreter_args = words("interpreter_args", app.interpreter_args)?;
    let home = options.env.get("HOME").map(String::as_str);
    let cwd = resolve_path(app.cwd.as_deref().unwrap_or(""), dir, home);
    let resolve = |file: Option<String>| file.map(|f| resolve_path(&f, &cwd, home));
    let mut env: BTreeMap<String, String> = app
        .env
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, v.0))
        .collect();
    if let Some(profile) = options.profile.as_ref().and_then(|p| profiles.get(p)) {
        env.extend(profile.clone());
    }
    let cpus = options.cpus.max(1);
    let instances = match app.instances.unwrap_or(Instances::Count(1)) {
        Instances::Count(n) => n,
        Instances::Max => cpus,
        Instances::AllButOne => (cpus - 1).max(1),
    };
    if let Err(err) = crate::config::check_instances(instances) {
        checker.problem(index, label, &["instances"], err.to_string());
    }
    if let Err(err) = crate::limits::check_env(&env) {
        checker.problem(index, label, &["env"], err.to_string());
    }
    if let Err(err) = crate::limits::check_max_memory(app.max_memory_restart.map(|s| s.0)) {
        checker.problem(index, label, &["max_memory_restart"], err.to_string());
    }
    if let Some(port) = &app.port {
        if let Err(err) = check_ports_fit(port, instances) {
            checker.problem(index, label, &["port"], err.to_string());
        }
    }
    if let Some(format) = &app.log_date_format {
        if let Err(err) = crate::config::date_format(format) {
            checker.problem(index, label, &["log_date_format"], err.to_string());
        }
    }
    if let Some(cron) = &app.cron_restart {
        if let Err(err) = crate::config::parse_cron(cron) {
            checker.problem(index, label, &["cron_restart"], err.to_string());
        }
    }
    if let Some(signal) = &app.stop_signal {
        if let Err(err) = signal_number(signal) {
            checker.problem(index, label, &["stop_signal"], err.to_string());
        }
    }
    let health_check = app.health_check.map(|h| {
        let defaults = HealthCheck::default();
        let check = HealthCheck {
            check_type: match h.check_type.unwrap_or(CheckTypeName::Http) {
                CheckTypeName::Http => CheckType::Http,
                CheckTypeName::Tcp => CheckType::Tcp,
                CheckTypeName::Script => CheckType::Script,
            },
            url: h.url,
            script: h.script,
            timeout: h.timeout.map_or(defaults.timeout, |s| s.0),
            interval: h.interval.map_or(defaults.interval, |s| s.0),
            retries: h.retries.unwrap_or(defaults.retries),
            enabled: h.enabled.unwrap_or(defaults.enabled),
        };
        if let Err(crate::Error::InvalidHealthCheck { field, reason }) = check.validate() {
            // A missing field is pointed at the block; a bad one at itself.
            let at: &[&str] = if field == "retries" {
                &["health_check", "retries"]
            } else {
                &["health_check"]
            };
            checker.problem(index, label, at, reason);
        }
        check
    });
    let default_log_file = app.log_file == Some(LogFileValue::Default);
    let log_file = match app.log_file {
        Some(LogFileValue::Path(path)) => resolve(Some(path)),
        _ => None,
    };
    let mut config = AppConfig {
        name: app
            .name
            .unwrap_or_else(|| default_name_for(&script, &args, &cwd)),
        script,
        args,
        interpreter: app.interpreter,
        interpreter_args,
        autostart: app.autostart.unwrap_or(true),
        uid: app.uid.map(|id| id.0),
        gid: app.gid.map(|id| id.0),
        cwd: Some(cwd.clone()),
        env,
        instances,
        port: app.port,
        instance_var: app.instance_var.unwrap_or(defaults.instance_var.clone()),
        increment_var: app.increment_var,
        autorestart: app.autorestart.unwrap_or(true),
        max_restarts: app.max_restarts.unwrap_or(defaults.max_restarts),
        min_uptime: app.min_uptime.map_or(defaults.min_uptime, |d| d.0),
        restart_delay: app.restart_delay.map_or(0, |d| d.0),
        exp_backoff_restart_delay: app.exp_backoff_restart_delay.map(|d| d.0),
        kill_timeout: app.kill_timeout.map_or(defaults.kill_timeout, |d| d.0),
        stop_signal: app.stop_signal.unwrap_or(defaults.stop_signal.clone()),
        stop_exit_codes: match app.stop_exit_codes {
            None => Vec::new(),
            Some(ExitCodes::One(code)) => vec![code],
            Some(ExitCodes::Many(codes)) => codes,
        },
        exec_mode: match app.exec_mode {
            Some(ExecModeName::Cluster) => ExecMode::Cluster,
            _ => ExecMode::Fork,
        },
        shared_port: match app.shared_port {
            Some(file::SharedPortName::Socket) => SharedPort::Socket,
            Some(file::SharedPortName::Proxy) => SharedPort::Proxy,
            _ => SharedPort::Auto,
        },
        max_memory_restart: app.max_memory_restart.map(|s| s.0),
        health_check,
        wait_ready: app.wait_ready.unwrap_or(false),
        shutdown_with_message: app.shutdown_with_message.unwrap_or(false),
        listen_timeout: app.listen_timeout.map(|d| d.0),
        watch: match app.watch {
            Some(Watch::Enabled(true)) => vec![".".to_string()],
            Some(Watch::Paths(paths)) => paths,
            _ => Vec::new(),
        },
        ignore_watch: app.ignore_watch.unwrap_or_default(),
        watch_delay: app.watch_delay.map_or(0, |d| d.0),
        cron_restart: app.cron_restart,
        out_file: resolve(app.out_file),
        error_file: resolve(app.error_file),
        log_file,
        log_date_format: app.log_date_format,
        merge_logs: app.merge_logs.unwrap_or(false),
        time: app.time.unwrap_or(false),
        log_type: match app.log_type {
            Some(file::LogTypeName::Json) => crate::config::LogType::Json,
            _ => crate::config::LogType::Raw,
        },
        log_max_size: app.log_max_size.map(|s| s.0),
        log_max_files: app.log_max_files,
        log_compress: app.log_compress,
        namespace: app.namespace,
    };
    if default_log_file {
        // Relative: under pmdaemon's home, as PM2 puts it under its own.
        config.log_file = Some(PathBuf::from(format!("logs/{}.log", config.name)));
    }
    // Ports and the stop signal were checked above, each at its field.
    if let Err(err) = validate_name(&config.name) {
        checker.problem(index, label, &["name"], err.to_string());
    }
    Some(config)
}
