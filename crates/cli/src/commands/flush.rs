//! `pmdaemon flush [target]`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::{Flush, FlushAll};
use pmdaemon_core::api::FlushResponse;
use pmdaemon_core::home::Home;

use crate::cli::FlushArgs;
use crate::client::Client;

/// Empties the log files (and deletes rotated ones) of the target or of all.
pub async fn run(args: FlushArgs, home: Home) -> Result<()> {
    let client = Client::connect(home).await?;
    let response: FlushResponse = match args.target.as_deref() {
        Some("all") | None => client.call::<FlushAll>("", &()).await?,
        Some(target) => client.call::<Flush>(target, &()).await?,
    };
    if args.json {
        println!("{}", crate::render::json(&response)?);
        return Ok(());
    }
    for file in &response.files {
        println!("[pmdaemon] flushed {}", file.display());
    }
    Ok(())
}
