//! `pmdaemon restart <target>`.

use anyhow::Result;
use pmdaemon_core::api::ProcessInfo;
use pmdaemon_daemon::Home;

use super::{report, target_path};
use crate::cli::TargetArgs;
use crate::client::Client;

/// Restarts the target.
pub async fn run(args: TargetArgs, home: Home) -> Result<()> {
    let path = target_path(&args.target)?;
    let client = Client::connect(home).await?;
    let affected: Vec<ProcessInfo> = client.post(&format!("{path}/restart"), &()).await?;
    report(&client, "restarted", &affected, args.json).await
}
