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
use pmdaemon_core::api::endpoints::{Endpoint, Info, List};
use pmdaemon_core::api::{ExistingApps, ProcessInfo};
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
    let all = client.call::<List>("", &()).await?;
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

/// What stop, restart, reset, signal and delete share: endpoint `E` on
/// each target (for an ecosystem file, on each of its apps pmdaemon knows),
/// in the order given, then one report of what was `done`. Every target is
/// checked to exist before any is acted on.
pub async fn act_on_target<E>(
    home: Home,
    targets: &[String],
    request: &E::Request,
    done: &str,
    json: bool,
) -> Result<()>
where
    E: Endpoint<Reply = Vec<ProcessInfo>>,
{
    if targets.is_empty() {
        bail!("give a target (see `pmdaemon help`)");
    }
    let client = Client::connect(home).await?;
    let mut affected: Vec<ProcessInfo> = Vec::new();
    for target in expand_targets(&client, targets).await? {
        for info in client.call::<E>(&target, request).await? {
            // `restart web web-1` acts twice on web-1; it is listed once.
            if !affected.iter().any(|a| a.id == info.id) {
                affected.push(info);
            }
        }
    }
    report(&client, done, &affected, json).await
}

/// Several targets, each once and each known to the daemon (so that
/// `stop web typo` stops nothing).
pub(crate) async fn expand_targets(client: &Client, targets: &[String]) -> Result<Vec<String>> {
    let mut all = Vec::new();
    for target in targets {
        let expanded = expand_target(client, target).await?;
        if targets.len() > 1
            && !ecosystem::is_file(target)
            && client.find::<Info>(target, &()).await?.is_none()
        {
            bail!("no process or app named '{target}' (see `pmdaemon list`); nothing was done");
        }
        for name in expanded {
            if !all.contains(&name) {
                all.push(name);
            }
        }
    }
    Ok(all)
}

/// The targets a target names: itself, or, for an ecosystem file, each app
/// of that file that pmdaemon knows.
pub(crate) async fn expand_target(client: &Client, target: &str) -> Result<Vec<String>> {
    if !ecosystem::is_file(target) {
        return Ok(vec![target.to_string()]);
    }
    let loaded = ecosystem::load(std::path::Path::new(target), None)?;
    let known = client.call::<List>("", &()).await?;
    let names: Vec<String> = loaded
        .apps
        .into_iter()
        .map(|a| a.name)
        .filter(|name| known.iter().any(|p| &p.app == name))
        .collect();
    if names.is_empty() {
        bail!("none of the apps of {target} are known to pmdaemon (see `pmdaemon list`)");
    }
    Ok(names)
}
