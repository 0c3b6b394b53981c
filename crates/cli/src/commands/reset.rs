//! `pmdaemon reset <target>…`.

use anyhow::Result;
use hyper::Method;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::TargetArgs;

/// Zeroes the restart counters of the targets (PM2's `reset`).
pub async fn run(args: TargetArgs, home: Home) -> Result<()> {
    let request = (Method::POST, pmdaemon_core::api::routes::RESET);
    act_on_target(home, &args.targets, request, Some(&()), "reset", args.json).await
}
