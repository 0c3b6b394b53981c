//! `pmdaemon delete <target>…`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Delete;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::TargetArgs;

/// Stops the target and forgets it.
pub async fn run(args: TargetArgs, home: Home) -> Result<()> {
    act_on_target::<Delete>(home, &args.targets, &(), "deleted", args.json).await
}
