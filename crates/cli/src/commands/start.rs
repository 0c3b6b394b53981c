//! `pmdaemon start <script|"command line"|name> [options] [-- args]`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use pmdaemon_core::api::endpoints::{Apply, Info, List, Logs, Start, StartApp};
use pmdaemon_core::api::{
    ApplyAction, ApplyRequest, ApplyResponse, ExistingApps, ProcessInfo, StartRequest,
};
use pmdaemon_core::command::{default_name_for, resolve_path, split_command_line};
use pmdaemon_core::config::{AppConfig, CheckType, HealthCheck, LogType};
use pmdaemon_core::home::Home;
use pmdaemon_core::units::{parse_duration_ms, parse_seconds_ms, parse_size};

use super::{ecosystem, report};
use crate::cli::{EnvArg, StartArgs};
use crate::client::Client;
use crate::render;

/// Starts a new app, an existing one named by `script`, or the apps of an
/// ecosystem file.
pub async fn run(mut args: StartArgs, config_file: Option<PathBuf>, home: Home) -> Result<()> {
    // `start --watch app.js`: the last word after --watch is the script when
    // no other was given (as PM2 reads it).
    if args.script.is_none() {
        if let Some(paths) = args.watch.as_mut() {
            args.script = paths.pop();
        }
    }
    let profile = profile(&args);
    let file = match (&config_file, &args.script) {
        (Some(file), _) => Some(file.clone()),
        (None, Some(script)) if ecosystem::is_file(script) => Some(PathBuf::from(script)),
        // PM2: `pm2 start` alone starts the ecosystem file of the directory.
        (None, None) => ecosystem::default_file(),
        _ => None,
    };
    if let Some(file) = file {
        let via_config = config_file.is_some();
        let existing = ExistingApps::Changed;
        return apply_file(&args, &file, via_config, profile, home, existing).await;
    }
    if let Some(profile) = profile {
        bail!("--env {profile} names a profile of an ecosystem file, and none was given; use --env KEY=VALUE to set a variable");
    }
    let Some(script) = args.script.clone() else {
        bail!("start needs something to run: a script, a quoted command line, an ecosystem file or the name of an app (none of {} is in this directory)", ecosystem::DEFAULT_FILES.join(", "));
    };
    let here = std::env::current_dir().context("cannot read the current directory")?;
    let cwd = match &args.cwd {
        Some(cwd) => pmdaemon_core::command::clean_path(&here.join(cwd)),
        None => here,
    };
    let is_file = cwd.join(&script).exists();
    // Checked before anything starts: a bad flag does not start a daemon.
    let request = StartRequest {
        config: config(&script, &args, cwd, is_file)?,
        inherited_env: inherited_env(),
    };
    let client = Client::connect(home).await?;
    if !is_file
        && looks_like_a_target(&script, &args)
        && client.find::<Info>(&script, &()).await?.is_some()
    {
        let started = client.call::<Start>(&script, &()).await?;
        return report(&client, "started", &started, args.json).await;
    }
    let started = client.call::<StartApp>("", &request).await?;
    report(&client, "started", &started, args.json).await?;
    if args.wait_ready {
        let ids: Vec<u32> = started.iter().map(|p| p.id).collect();
        wait_ready(&client, &ids, &args.wait_timeout).await?;
    }
    Ok(())
}

/// `pmdaemon start web` starts the existing app `web` when no file of that
/// name exists and nothing else was asked for.
fn looks_like_a_target(script: &str, args: &StartArgs) -> bool {
    !script.contains(char::is_whitespace)
        && !script.contains('/')
        && args.args.is_empty()
        && args.name.is_none()
        && args.port.is_none()
        && args.instances.is_none()
}

fn config(script: &str, args: &StartArgs, cwd: PathBuf, is_file: bool) -> Result<AppConfig> {
    // A path that exists is taken whole (it may contain spaces); anything
    // else is a command line, split as a shell would.
    let (script, mut script_args) = if is_file {
        (script.to_string(), Vec::new())
    } else {
        let mut words = split_command_line(script)?;
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
    let name = args
        .name
        .clone()
        .unwrap_or_else(|| default_name_for(&script, &script_args, &cwd));
    let home = std::env::var("HOME").ok();
    let home = home.as_deref();
    Ok(AppConfig {
        instances: instances(args.instances.as_deref())?,
        port: args.port,
        shared_port: args.shared_port.unwrap_or_default(),
        instance_var: args.instance_var.clone(),
        args: script_args,
        interpreter: args.interpreter.clone(),
        env: env_vars(args),
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
        watch: match &args.watch {
            Some(paths) if paths.is_empty() => vec![".".to_string()],
            Some(paths) => paths.clone(),
            None => Vec::new(),
        },
        ignore_watch: args.ignore_watch.clone(),
        cron_restart: args.cron_restart.clone(),
        health_check: health_check(args)?,
        time: args.time,
        log_date_format: args.log_date_format.clone(),
        log_type: match args.log_type.as_deref() {
            None | Some("raw") => LogType::Raw,
            Some("json") => LogType::Json,
            Some(other) => bail!("--log-type takes raw or json, not '{other}'"),
        },
        log_max_size: args
            .log_max_size
            .as_deref()
            .map(parse_size)
            .transpose()
            .context("--log-max-size")?,
        log_max_files: args.log_max_files,
        log_compress: args.log_compress.then_some(true),
        wait_ready: args.sd_notify,
        listen_timeout: duration(&args.listen_timeout, "listen-timeout")?,
        max_memory_restart: args
            .max_memory
            .as_deref()
            .map(parse_size)
            .transpose()
            .context("--max-memory")?,
        interpreter_args: match &args.node_args {
            Some(line) => split_command_line(line).context("--node-args")?,
            None => Vec::new(),
        },
        autostart: !args.no_autostart,
        uid: args.uid.clone(),
        gid: args.gid.clone(),
        namespace: args.namespace.clone(),
        merge_logs: args.merge_logs,
        out_file: args.output.as_deref().map(|f| resolve_path(f, &cwd, home)),
        error_file: args.error.as_deref().map(|f| resolve_path(f, &cwd, home)),
        log_file: args.log.as_deref().map(|f| match f {
            // Under the home, as PM2's default combined log is under its own.
            "" => PathBuf::from(format!("logs/{name}.log")),
            f => resolve_path(f, &cwd, home),
        }),
        name,
        cwd: Some(cwd),
        script,
        ..defaults
    })
}

/// A duration where a bare number is seconds, as inside `health_check`.
fn seconds(value: &Option<String>, flag: &str) -> Result<Option<u64>> {
    value
        .as_deref()
        .map(parse_seconds_ms)
        .transpose()
        .with_context(|| format!("--{flag}"))
}

fn health_check(args: &StartArgs) -> Result<Option<HealthCheck>> {
    let check_type = match (&args.health_check_url, &args.health_check_script) {
        (Some(_), Some(_)) => {
            bail!("give either --health-check-url or --health-check-script, not both")
        }
        (Some(_), None) => CheckType::Http,
        (None, Some(_)) => CheckType::Script,
        (None, None) => return Ok(None),
    };
    let defaults = HealthCheck::default();
    Ok(Some(HealthCheck {
        check_type,
        url: args.health_check_url.clone(),
        script: args.health_check_script.clone(),
        interval: seconds(&args.health_check_interval, "health-check-interval")?
            .unwrap_or(defaults.interval),
        timeout: seconds(&args.health_check_timeout, "health-check-timeout")?
            .unwrap_or(defaults.timeout),
        retries: args.health_check_retries.unwrap_or(defaults.retries),
        enabled: true,
    }))
}

fn env_vars(args: &StartArgs) -> BTreeMap<String, String> {
    args.env
        .iter()
        .filter_map(|e| match e {
            EnvArg::Var(key, value) => Some((key.clone(), value.clone())),
            EnvArg::Profile(_) => None,
        })
        .collect()
}

/// `startOrRestart` / `startOrReload FILE`: the apps of the file that are
/// missing start, the others restart or reload with their configuration.
pub async fn start_or(
    args: StartArgs,
    config_file: Option<PathBuf>,
    home: Home,
    existing: ExistingApps,
) -> Result<()> {
    let file = match (&config_file, &args.script) {
        (Some(file), _) => file.clone(),
        (None, Some(script)) if ecosystem::is_file(script) => PathBuf::from(script),
        (None, Some(script)) => {
            bail!("'{script}' is not an ecosystem file (.json, .yaml, .yml, .toml or *.config.js)")
        }
        (None, None) => ecosystem::default_file().with_context(|| {
            format!(
                "give an ecosystem file (none of {} is in this directory)",
                ecosystem::DEFAULT_FILES.join(", ")
            )
        })?,
    };
    let profile = profile(&args);
    apply_file(&args, &file, config_file.is_some(), profile, home, existing).await
}

/// The profile `--env NAME` picks, if any.
fn profile(args: &StartArgs) -> Option<String> {
    args.env.iter().find_map(|e| match e {
        EnvArg::Profile(name) => Some(name.clone()),
        EnvArg::Var(..) => None,
    })
}

/// Applies an ecosystem file: new apps start; existing ones are left alone
/// unless changed (or restarted or reloaded, as `existing` says); prints
/// what happened to each.
async fn apply_file(
    args: &StartArgs,
    file: &std::path::Path,
    via_config: bool,
    profile: Option<String>,
    home: Home,
    existing: ExistingApps,
) -> Result<()> {
    let mut loaded = ecosystem::load(file, profile)?;
    let mut only = args.only.clone();
    if via_config {
        only.extend(args.name.clone());
        only.extend(args.script.clone().filter(|s| !ecosystem::is_file(s)));
    }
    if !only.is_empty() {
        let names: Vec<String> = loaded.apps.iter().map(|a| a.name.clone()).collect();
        if let Some(missing) = only.iter().find(|o| !names.contains(o)) {
            bail!(
                "{} has no app named '{missing}' (it has: {})",
                file.display(),
                names.join(", ")
            );
        }
        loaded.apps.retain(|a| only.contains(&a.name));
    }
    let extra = env_vars(args);
    for app in &mut loaded.apps {
        app.env.extend(extra.clone());
        // PM2's flags that apply to every app of the file.
        if args.no_autostart {
            app.autostart = false;
        }
        if let Some(namespace) = &args.namespace {
            app.namespace = Some(namespace.clone());
        }
    }
    let client = Client::connect(home).await?;
    let request = ApplyRequest {
        apps: loaded.apps,
        inherited_env: inherited_env(),
        file: Some(std::path::absolute(file).context("cannot resolve the file's path")?),
        prune: args.prune,
        existing,
        update_env: args.update_env,
    };
    let response: ApplyResponse = client.call::<Apply>("", &request).await?;
    // One look at the table serves the report and the readiness wait.
    let all: Vec<ProcessInfo> = if !args.json || args.wait_ready {
        client.call::<List>("", &()).await?
    } else {
        Vec::new()
    };
    if args.json {
        println!("{}", render::json(&response)?);
    } else {
        for outcome in &response.outcomes {
            let detail = outcome
                .detail
                .as_deref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default();
            let action = serde_json::to_value(outcome.action)?;
            println!(
                "[pmdaemon] {}: {}{detail}",
                outcome.app,
                action.as_str().unwrap_or("?")
            );
        }
        println!("{}", render::process_table(&all));
    }
    if args.wait_ready {
        let names: Vec<String> = response.outcomes.iter().map(|o| o.app.clone()).collect();
        let ids: Vec<u32> = all
            .iter()
            .filter(|p| names.contains(&p.app))
            .map(|p| p.id)
            .collect();
        wait_ready(&client, &ids, &args.wait_timeout).await?;
    }
    let failed = response
        .outcomes
        .iter()
        .filter(|o| o.action == ApplyAction::Failed)
        .count();
    if failed > 0 {
        bail!("{failed} app(s) of {} could not be applied", file.display());
    }
    Ok(())
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
pub(crate) fn inherited_env() -> BTreeMap<String, String> {
    std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .filter(|(k, _)| k != "PMDAEMON_HOME")
        .collect()
}

/// Waits until every instance in `ids` is ready, showing `ready x of N` on
/// stderr; on timeout names the first instance that is not and why.
async fn wait_ready(client: &Client, ids: &[u32], wait_timeout: &str) -> Result<()> {
    use std::io::Write;
    let limit = std::time::Duration::from_millis(
        parse_duration_ms(wait_timeout).context("--wait-timeout")?,
    );
    let deadline = std::time::Instant::now() + limit;
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut shown = usize::MAX;
    // Unstable restarts each instance had when the wait began: one more is
    // a crash.
    let mut restarts_before: BTreeMap<u32, u32> = BTreeMap::new();
    loop {
        let all: Vec<ProcessInfo> = client.call::<List>("", &()).await?;
        let mine: Vec<&ProcessInfo> = all.iter().filter(|p| ids.contains(&p.id)).collect();
        for process in &mine {
            // Unstable restarts only: a watch, cron or memory restart
            // during the wait is no crash.
            let before = *restarts_before
                .entry(process.id)
                .or_insert(process.unstable_restarts);
            let gave_up = matches!(
                process.status,
                pmdaemon_core::api::Status::Errored | pmdaemon_core::api::Status::Stopped
            );
            if gave_up || (process.unstable_restarts > before && process.last_exit.is_some()) {
                if terminal {
                    eprintln!();
                }
                return Err(crashed(client, process).await);
            }
        }
        let ready = mine
            .iter()
            .filter(|p| p.ready && p.status == pmdaemon_core::api::Status::Online)
            .count();
        if ready != shown {
            shown = ready;
            if terminal {
                eprint!("\r[pmdaemon] ready {ready} of {}", mine.len());
            } else {
                eprintln!("[pmdaemon] ready {ready} of {}", mine.len());
            }
            let _ = std::io::stderr().flush();
        }
        if ready == mine.len() {
            if terminal {
                eprintln!();
            }
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            if terminal {
                eprintln!();
            }
            let waiting = mine
                .iter()
                .find(|p| !(p.ready && p.status == pmdaemon_core::api::Status::Online));
            let (name, why) = waiting.map_or(("?".to_string(), String::new()), |p| {
                let why = p
                    .health_error
                    .clone()
                    .or_else(|| p.last_exit.map(|e| format!("{} after {e}", p.status)))
                    .unwrap_or_else(|| format!("still {}", p.status));
                (p.name.clone(), why)
            });
            bail!(
                "{ready} of {} instances ready after {}; {name} is not: {why}",
                mine.len(),
                wait_timeout
            );
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
}

/// The error for an instance that exited while `--wait-ready` waited: its
/// last exit and the tail of its error log.
async fn crashed(client: &Client, process: &ProcessInfo) -> anyhow::Error {
    let exit = process
        .last_exit
        .map_or_else(|| process.status.to_string(), |e| e.to_string());
    let what = match process.status {
        pmdaemon_core::api::Status::Errored => "gave up (errored)",
        pmdaemon_core::api::Status::Stopped => "stopped",
        _ => "is crash-looping",
    };
    let mut message = format!(
        "{} {what} before it was ready; last exit: {exit}",
        process.name
    );
    let query = pmdaemon_core::api::LogsQuery {
        lines: Some(5),
        stream: Some(pmdaemon_core::api::LogStream::Err),
        follow: false,
    };
    let tail = client.call::<Logs>(&process.name, &query).await.ok();
    let lines: Vec<String> = tail
        .into_iter()
        .flat_map(|t| t.tails)
        .flat_map(|t| t.lines)
        .collect();
    if !lines.is_empty() {
        message.push_str("; its error log ends with:\n  ");
        message.push_str(&lines.join("\n  "));
    }
    anyhow::anyhow!(message)
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
