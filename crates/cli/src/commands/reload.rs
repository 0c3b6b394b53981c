//! `pmdaemon reload <target>… [--parallel K] [--update-env] [--json]`.

use anyhow::{bail, Result};
use pmdaemon_core::api::endpoints::{List, Reload};
use pmdaemon_core::api::{ReloadEvent, ReloadOutcome, ReloadRequest};
use pmdaemon_core::home::Home;

use super::{expand_targets, report};
use crate::cli::ReloadArgs;
use crate::client::Client;

/// Replaces the target's instances a batch at a time, each only once the
/// previous batch is ready; fails (and stops) at the first that is not.
/// Shows each step as it happens (`reloading web-2 (3 of 4)…`) on stderr;
/// with `--json`, prints every instance's outcome.
pub async fn run(args: ReloadArgs, home: Home) -> Result<()> {
    if args.targets.is_empty() {
        bail!("give a target (see `pmdaemon help`)");
    }
    let client = Client::connect(home).await?;
    let body = ReloadRequest {
        parallel: args.parallel.max(1),
        env: args.update_env.then(super::start::inherited_env),
        progress: true,
    };
    let mut outcomes: Vec<ReloadOutcome> = Vec::new();
    let mut failure = None;
    for target in expand_targets(&client, &args.targets).await? {
        let mut finished = false;
        client
            .stream::<Reload>(&target, &body, |line| {
                match serde_json::from_slice::<ReloadEvent>(line)? {
                    ReloadEvent::Reloading {
                        instance,
                        step,
                        total,
                    } if !args.json => {
                        eprintln!("[pmdaemon] reloading {instance} ({step} of {total})…");
                    }
                    ReloadEvent::Finished {
                        outcomes: these,
                        error,
                    } => {
                        outcomes.extend(these);
                        failure = failure.take().or(error);
                        finished = true;
                    }
                    _ => {}
                }
                Ok(())
            })
            .await?;
        if !finished {
            bail!("the daemon ended the reload without saying how it went (see `pmdaemon list`)");
        }
        if failure.is_some() {
            break;
        }
    }
    if args.json {
        println!("{}", crate::render::json(&outcomes)?);
    }
    if let Some(error) = failure {
        bail!(error);
    }
    if !args.json {
        let affected = client.call::<List>("", &()).await?;
        let affected: Vec<_> = affected
            .into_iter()
            .filter(|p: &pmdaemon_core::api::ProcessInfo| {
                outcomes.iter().any(|o| o.instance == p.name)
            })
            .collect();
        report(&client, "reloaded", &affected, false).await?;
    }
    Ok(())
}
