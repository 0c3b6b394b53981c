//! `pmdaemon stop <target>…`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Stop;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::TargetArgs;

/// Stops the target; returns once none of its processes is left.
pub async fn run(args: TargetArgs, home: Home) -> Result<()> {
    act_on_target::<Stop>(home, &args.targets, &(), "stopped", args.json).await
}
