//! `pmdaemon restart <target> [--port SPEC]`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Restart;
use pmdaemon_core::api::RestartRequest;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::RestartArgs;

/// Restarts the target, on other ports for this run if asked.
pub async fn run(args: RestartArgs, home: Home) -> Result<()> {
    let body = RestartRequest { port: args.port };
    let target = args.target.as_deref();
    act_on_target::<Restart>(home, target, &body, "restarted", args.json).await
}
