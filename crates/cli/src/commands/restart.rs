//! `pmdaemon restart <target> [--port SPEC]`.

use anyhow::Result;
use hyper::Method;
use pmdaemon_core::api::RestartRequest;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::RestartArgs;

/// Restarts the target, on other ports for this run if asked.
pub async fn run(args: RestartArgs, home: Home) -> Result<()> {
    let body = RestartRequest { port: args.port };
    let request = (Method::POST, pmdaemon_core::api::routes::RESTART);
    let target = args.target.as_deref();
    act_on_target(home, target, request, Some(&body), "restarted", args.json).await
}
