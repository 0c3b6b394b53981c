//! `pmdaemon stop <target>`.

use anyhow::Result;
use pmdaemon_core::api::ProcessInfo;
use pmdaemon_daemon::Home;

use super::{report, target_path};
use crate::cli::TargetArgs;
use crate::client::Client;

/// Stops the target; returns once none of its processes is left.
pub async fn run(args: TargetArgs, home: Home) -> Result<()> {
    let path = target_path(&args.target)?;
    let client = Client::connect(home).await?;
    let affected: Vec<ProcessInfo> = client.post(&format!("{path}/stop"), &()).await?;
    report(&client, "stopped", &affected, args.json).await
}
