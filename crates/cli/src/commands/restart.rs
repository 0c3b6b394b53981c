//! `pmdaemon restart <target> [--port SPEC]`.

use anyhow::Result;
use pmdaemon_core::api::{ProcessInfo, RestartRequest};
use pmdaemon_daemon::Home;

use super::{report, target_path};
use crate::cli::RestartArgs;
use crate::client::Client;

/// Restarts the target, on other ports for this run if asked.
pub async fn run(args: RestartArgs, home: Home) -> Result<()> {
    let path = target_path(&args.target)?;
    let client = Client::connect(home).await?;
    let request = RestartRequest { port: args.port };
    let affected: Vec<ProcessInfo> = client.post(&format!("{path}/restart"), &request).await?;
    report(&client, "restarted", &affected, args.json).await
}
