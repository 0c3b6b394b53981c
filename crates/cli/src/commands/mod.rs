//! One module per verb; each sends its request and renders the answer.

pub mod completions;
pub mod daemon;
pub mod delete;
pub mod ecosystem;
pub mod export;
pub mod flush;
pub mod info;
pub mod init;
pub mod jlist;
pub mod kill;
pub mod list;
pub mod logs;
pub mod monit;
pub mod reload;
pub mod reset;
pub mod restart;
pub mod resurrect;
pub mod run;
pub mod save;
pub mod scale;
pub mod signal;
pub mod start;
pub mod startup;
pub mod stop;
pub mod validate;
pub mod web;

use std::path::PathBuf;

use anyhow::{bail, Result};
use pmdaemon_core::api::{routes, ExistingApps, ProcessInfo};
use pmdaemon_core::home::Home;

use crate::cli::Command;
use crate::client::Client;
use crate::render;

/// Runs one verb (all but `daemon`).
pub async fn run(command: Command, config: Option<PathBuf>, home: Home) -> Result<()> {
    match command {
        Command::Start(args) if run::is_init() => run::run(*args, config, home).await,
        Command::Start(args) => start::run(*args, config, home).await,
        Command::StartOrRestart(args) => {
            start::start_or(*args, config, home, ExistingApps::Restart).await
        }
        Command::StartOrReload(args) => {
            start::start_or(*args, config, home, ExistingApps::Reload).await
        }
        Command::Run(args) => run::run(*args, config, home).await,
        Command::Stop(mut args) => {
            or_config(&mut args.targets, &config)?;
            stop::run(args, home).await
        }
        Command::Restart(mut args) => {
            or_config(&mut args.targets, &config)?;
            restart::run(args, home).await
        }
        Command::Validate(args) => validate::run(args),
        Command::Scale(args) => scale::run(args, home).await,
        Command::Signal(args) => signal::run(args, home).await,
        Command::Reset(args) => reset::run(args, home).await,
        Command::Reload(mut args) => {
            or_config(&mut args.targets, &config)?;
            reload::run(args, home).await
        }
        Command::Delete(mut args) => {
            or_config(&mut args.targets, &config)?;
            delete::run(args, home).await
        }
        Command::List(args) => list::run(args, home).await,
        Command::Jlist => jlist::run(home, false).await,
        Command::Prettylist => jlist::run(home, true).await,
        Command::Save { json } => save::run(home, json).await,
        Command::Init => init::run(),
        Command::Info(args) => info::run(args, home).await,
        Command::Logs(args) => logs::run(args, home).await,
        Command::Monit(args) => monit::run(args, home).await,
        Command::Flush(args) => flush::run(args, home).await,
        Command::Web(args) => web::run(args, home).await,
        Command::Kill { json } => kill::run(home, json).await,
        Command::Resurrect { json } => resurrect::run(home, json).await,
        Command::Daemon(args) => daemon::run(home, args.fresh),
        Command::Startup(args) => startup::install(args, &home),
        Command::Unstartup(args) => startup::remove(args),
        Command::Export(args) => export::run(args),
        Command::Completions(args) => completions::completions(args.shell),
        Command::Man => completions::man(),
    }
}

/// The path of `route` (one of [`routes`]) for a target. Names are
/// restricted to URL-safe characters, so anything else cannot name a
/// process.
pub fn target_path(route: &str, target: &str) -> Result<String> {
    let safe = !target.is_empty() && target.chars().all(pmdaemon_core::config::is_name_char);
    if !safe {
        bail!("no process or app named '{target}' (see `pmdaemon list`)");
    }
    Ok(routes::path(route, target))
}

/// What an action verb prints: a line saying what was done, then the whole
/// table (as PM2 does), or only the affected instances as JSON.
pub async fn report(
    client: &Client,
    done: &str,
    affected: &[ProcessInfo],
    json: bool,
) -> Result<()> {
    if json {
        println!("{}", render::json(&affected)?);
        return Ok(());
    }
    let names: Vec<&str> = affected.iter().map(|p| p.name.as_str()).collect();
    println!("[pmdaemon] {done}: {}", names.join(", "));
    let all: Vec<ProcessInfo> = client.get(routes::PROCESSES).await?;
    println!("{}", render::process_table(&all));
    Ok(())
}

/// A verb given no target acts on the `--config` file; with neither, it is
/// refused before anything (even the daemon) starts.
fn or_config(targets: &mut Vec<String>, config: &Option<PathBuf>) -> Result<()> {
    if targets.is_empty() {
        targets.extend(config.as_ref().map(|c| c.display().to_string()));
    }
    if targets.is_empty() {
        bail!("give a target: an instance (web-1), an app (web), an id (3), all, or an ecosystem file (or --config FILE)");
    }
    Ok(())
}

/// What stop, restart, reset, signal and delete share: `method` on each
/// target's `route` (for an ecosystem file, of each of its apps pmdaemon
/// knows), in the order given, then one report of what was `done`. Every
/// target is checked to exist before any is acted on.
pub async fn act_on_target<B: serde::Serialize>(
    home: Home,
    targets: &[String],
    (method, route): (hyper::Method, &str),
    body: Option<&B>,
    done: &str,
    json: bool,
) -> Result<()> {
    if targets.is_empty() {
        bail!("give a target (see `pmdaemon help`)");
    }
    let client = Client::connect(home).await?;
    let paths = expand_targets(&client, targets, route).await?;
    let mut affected: Vec<ProcessInfo> = Vec::new();
    for path in paths {
        let answer: Vec<ProcessInfo> = client.send(method.clone(), &path, body).await?;
        for info in answer {
            // `restart web web-1` acts twice on web-1; it is listed once.
            if !affected.iter().any(|a| a.id == info.id) {
                affected.push(info);
            }
        }
    }
    report(&client, done, &affected, json).await
}

/// The paths of `route` for several targets, once each known to the
/// daemon (so that `stop web typo` stops nothing).
pub(crate) async fn expand_targets(
    client: &Client,
    targets: &[String],
    route: &str,
) -> Result<Vec<String>> {
    let mut paths = Vec::new();
    for target in targets {
        let expanded = expand_target(client, target, route).await?;
        if targets.len() > 1 && !ecosystem::is_file(target) {
            let known = target_path(routes::PROCESS, target)?;
            if client
                .find::<Vec<pmdaemon_core::api::ProcessDetail>>(&known)
                .await?
                .is_none()
            {
                bail!("no process or app named '{target}' (see `pmdaemon list`); nothing was done");
            }
        }
        for path in expanded {
            if !paths.contains(&path) {
                paths.push(path);
            }
        }
    }
    Ok(paths)
}

/// The paths of `route` a target names: for the target itself, or, for an
/// ecosystem file, for each app of that file that pmdaemon knows.
pub(crate) async fn expand_target(
    client: &Client,
    target: &str,
    route: &str,
) -> Result<Vec<String>> {
    if !ecosystem::is_file(target) {
        return Ok(vec![target_path(route, target)?]);
    }
    let loaded = ecosystem::load(std::path::Path::new(target), None)?;
    let known: Vec<ProcessInfo> = client.get(routes::PROCESSES).await?;
    let names: Vec<String> = loaded
        .apps
        .into_iter()
        .map(|a| a.name)
        .filter(|name| known.iter().any(|p| &p.app == name))
        .collect();
    if names.is_empty() {
        bail!("none of the apps of {target} are known to pmdaemon (see `pmdaemon list`)");
    }
    names.iter().map(|name| target_path(route, name)).collect()
}
