//! `pmdaemon scale <app> <N|+N|-N>`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Scale as ScaleApp;
use pmdaemon_core::api::{ProcessInfo, ScaleRequest};
use pmdaemon_core::home::Home;

use super::report;
use crate::cli::values::Scale;
use crate::cli::ScaleArgs;
use crate::client::Client;

/// Adds instances (on the next ports of the app's spec) or removes the
/// highest-numbered ones; `+N`/`-N` count from the instances there are
/// (the daemon counts, so two scripts scaling at once both count).
pub async fn run(args: ScaleArgs, home: Home) -> Result<()> {
    let client = Client::connect(home).await?;
    let request = match args.instances {
        Scale::To(count) => ScaleRequest {
            instances: Some(count),
            add: None,
        },
        Scale::By(change) => ScaleRequest {
            instances: None,
            add: Some(change),
        },
    };
    let instances: Vec<ProcessInfo> = client.call::<ScaleApp>(&args.app, &request).await?;
    let done = format!("scaled {} to {}", args.app, instances.len());
    report(&client, &done, &instances, args.json).await
}
