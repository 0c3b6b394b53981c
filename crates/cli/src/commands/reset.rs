//! `pmdaemon reset <target>…`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Reset;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::TargetArgs;

/// Zeroes the restart counters of the targets (PM2's `reset`).
pub async fn run(args: TargetArgs, home: Home) -> Result<()> {
    act_on_target::<Reset>(home, &args.targets, &(), "reset", args.json).await
}
