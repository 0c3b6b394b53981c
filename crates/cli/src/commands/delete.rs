//! `pmdaemon delete <target>`.

use anyhow::Result;
use pmdaemon_core::api::ProcessInfo;
use pmdaemon_daemon::Home;

use super::{expand_target, report, target_path};
use crate::cli::TargetArgs;
use crate::client::Client;

/// Stops the target and forgets it.
pub async fn run(args: TargetArgs, home: Home) -> Result<()> {
    let client = Client::connect(home).await?;
    let mut affected: Vec<ProcessInfo> = Vec::new();
    for target in expand_target(&client, args.target.as_deref()).await? {
        let done: Vec<ProcessInfo> = client.delete(&target_path(&target)?).await?;
        affected.extend(done);
    }
    report(&client, "deleted", &affected, args.json).await
}
