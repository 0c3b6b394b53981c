//! `pmdaemon reload <target> [--parallel K]`.

use anyhow::Result;
use pmdaemon_core::api::{ProcessInfo, ReloadRequest};
use pmdaemon_daemon::Home;

use super::{expand_target, report, target_path};
use crate::cli::ReloadArgs;
use crate::client::Client;

/// Replaces the target's instances a batch at a time, each only once the
/// previous batch is ready; fails (and stops) at the first that is not.
pub async fn run(args: ReloadArgs, home: Home) -> Result<()> {
    let client = Client::connect(home).await?;
    let request = ReloadRequest {
        parallel: args.parallel.max(1),
    };
    let mut affected: Vec<ProcessInfo> = Vec::new();
    for target in expand_target(&client, args.target.as_deref()).await? {
        let path = format!("{}/reload", target_path(&target)?);
        let done: Vec<ProcessInfo> = client.post(&path, &request).await?;
        affected.extend(done);
    }
    report(&client, "reloaded", &affected, args.json).await
}
