//! `pmdaemon scale <app> <N>`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Scale;
use pmdaemon_core::api::{ProcessInfo, ScaleRequest};
use pmdaemon_core::home::Home;

use super::report;
use crate::cli::ScaleArgs;
use crate::client::Client;

/// Adds instances (on the next ports of the app's spec) or removes the
/// highest-numbered ones.
pub async fn run(args: ScaleArgs, home: Home) -> Result<()> {
    let client = Client::connect(home).await?;
    let request = ScaleRequest {
        instances: args.instances,
    };
    let instances: Vec<ProcessInfo> = client.call::<Scale>(&args.app, &request).await?;
    let done = format!("scaled {} to {}", args.app, args.instances);
    report(&client, &done, &instances, args.json).await
}
