//! `pmdaemon start <script|"command line"|name> [options] [-- args]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pmdaemon_core::api::{ProcessDetail, ProcessInfo, StartRequest};
use pmdaemon_core::command::{default_name, split_command_line};
use pmdaemon_core::config::AppConfig;
use pmdaemon_core::units::parse_duration_ms;
use pmdaemon_daemon::Home;

use super::{report, target_path};
use crate::cli::StartArgs;
use crate::client::Client;

/// Starts a new app, or an existing one named by `script`.
pub async fn run(args: StartArgs, home: Home) -> Result<()> {
    let here = std::env::current_dir().context("cannot read the current directory")?;
    let cwd = match &args.cwd {
        Some(cwd) => here.join(cwd),
        None => here,
    };
    let is_file = cwd.join(&args.script).exists();
    let client = Client::connect(home).await?;
    if !is_file && looks_like_a_target(&args) {
        let path = target_path(&args.script)?;
        if client.find::<Vec<ProcessDetail>>(&path).await?.is_some() {
            let started: Vec<ProcessInfo> = client.post(&format!("{path}/start"), &()).await?;
            return report(&client, "started", &started, args.json).await;
        }
    }
    let request = StartRequest {
        config: config(&args, cwd, is_file)?,
        inherited_env: inherited_env(),
    };
    let started: Vec<ProcessInfo> = client.post("/api/processes", &request).await?;
    report(&client, "started", &started, args.json).await
}

/// `pmdaemon start web` starts the existing app `web` when no file of that
/// name exists and nothing else was asked for.
fn looks_like_a_target(args: &StartArgs) -> bool {
    !args.script.contains(char::is_whitespace)
        && !args.script.contains('/')
        && args.args.is_empty()
        && args.name.is_none()
        && args.port.is_none()
        && args.instances.is_none()
}

fn config(args: &StartArgs, cwd: PathBuf, is_file: bool) -> Result<AppConfig> {
    // A path that exists is taken whole (it may contain spaces); anything
    // else is a command line, split as a shell would.
    let (script, mut script_args) = if is_file {
        (args.script.clone(), Vec::new())
    } else {
        let mut words = split_command_line(&args.script)?;
        let first = words.remove(0);
        (first, words)
    };
    script_args.extend(args.args.iter().cloned());
    let duration = |value: &Option<String>, flag: &str| -> Result<Option<u64>> {
        value
            .as_deref()
            .map(parse_duration_ms)
            .transpose()
            .with_context(|| format!("--{flag}"))
    };
    let defaults = AppConfig::default();
    Ok(AppConfig {
        name: args.name.clone().unwrap_or_else(|| default_name(&script)),
        instances: instances(args.instances.as_deref())?,
        port: args.port,
        instance_var: args.instance_var.clone(),
        args: script_args,
        interpreter: args.interpreter.clone(),
        cwd: Some(cwd),
        env: args.env.iter().cloned().collect(),
        autorestart: !args.no_autorestart,
        max_restarts: args.max_restarts.unwrap_or(defaults.max_restarts),
        min_uptime: duration(&args.min_uptime, "min-uptime")?.unwrap_or(defaults.min_uptime),
        restart_delay: duration(&args.restart_delay, "restart-delay")?.unwrap_or(0),
        exp_backoff_restart_delay: duration(
            &args.exp_backoff_restart_delay,
            "exp-backoff-restart-delay",
        )?,
        kill_timeout: duration(&args.kill_timeout, "kill-timeout")?
            .unwrap_or(defaults.kill_timeout),
        stop_signal: args
            .stop_signal
            .clone()
            .unwrap_or_else(|| defaults.stop_signal.clone()),
        stop_exit_codes: args.stop_exit_codes.clone(),
        script,
        ..defaults
    })
}

/// `N`, `max` (CPUs this process may use: affinity mask and cgroup quota)
/// or `-1` (all but one); `0` means `max`, as in PM2.
fn instances(value: Option<&str>) -> Result<u32> {
    let usable = || {
        std::thread::available_parallelism()
            .map(|n| n.get() as u32)
            .unwrap_or(1)
    };
    match value {
        None => Ok(1),
        Some("max") | Some("0") => Ok(usable()),
        Some("-1") => Ok(usable().saturating_sub(1).max(1)),
        Some(text) => match text.parse::<u32>() {
            Ok(n) => Ok(n),
            Err(_) => bail!("--instances takes a number, 'max' or -1, not '{text}'"),
        },
    }
}

/// PM2 hands the caller's environment to the app (`NODE_ENV=production
/// pm2 start app.js` works); so does pmdaemon.
fn inherited_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k != "PMDAEMON_HOME")
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instance_counts() {
        assert_eq!(instances(None).unwrap(), 1);
        assert_eq!(instances(Some("4")).unwrap(), 4);
        let max = instances(Some("max")).unwrap();
        assert!(max >= 1);
        assert_eq!(instances(Some("-1")).unwrap(), (max - 1).max(1));
        assert!(instances(Some("lots")).is_err());
    }
}
