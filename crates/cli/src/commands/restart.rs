//! `pmdaemon restart <target>… [--port SPEC] [--update-env]`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Restart;
use pmdaemon_core::api::RestartRequest;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::RestartArgs;

/// Restarts the targets, on other ports for this run if asked; with
/// `--update-env` they take this command's environment, otherwise they keep
/// the one they were started with.
pub async fn run(args: RestartArgs, home: Home) -> Result<()> {
    let body = RestartRequest {
        port: args.port,
        env: args.update_env.then(super::start::inherited_env),
    };
    let done = "restarted";
    act_on_target::<Restart>(home, &args.targets, &body, done, args.json).await
}
