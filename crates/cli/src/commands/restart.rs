//! `pmdaemon restart <target> [--port SPEC]`.

use anyhow::Result;
use pmdaemon_core::api::{ProcessInfo, RestartRequest};
use pmdaemon_daemon::Home;

use super::{expand_target, report, target_path};
use crate::cli::RestartArgs;
use crate::client::Client;

/// Restarts the target, on other ports for this run if asked.
pub async fn run(args: RestartArgs, home: Home) -> Result<()> {
    let client = Client::connect(home).await?;
    let request = RestartRequest { port: args.port };
    let mut affected: Vec<ProcessInfo> = Vec::new();
    for target in expand_target(&client, args.target.as_deref()).await? {
        let path = format!("{}/restart", target_path(&target)?);
        let done: Vec<ProcessInfo> = client.post(&path, &request).await?;
        affected.extend(done);
    }
    report(&client, "restarted", &affected, args.json).await
}
