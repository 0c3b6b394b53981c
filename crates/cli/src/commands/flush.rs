//! `pmdaemon flush [target]`.

use anyhow::Result;
use pmdaemon_core::api::FlushResponse;
use pmdaemon_core::home::Home;

use super::target_path;
use crate::cli::FlushArgs;
use crate::client::Client;

/// Empties the log files (and deletes rotated ones) of the target or of all.
pub async fn run(args: FlushArgs, home: Home) -> Result<()> {
    let path = match args.target.as_deref() {
        Some("all") | None => pmdaemon_core::api::routes::FLUSH_ALL.to_string(),
        Some(target) => target_path(pmdaemon_core::api::routes::FLUSH, target)?,
    };
    let client = Client::connect(home).await?;
    let response: FlushResponse = client.post(&path, &()).await?;
    if args.json {
        println!("{}", crate::render::json(&response)?);
        return Ok(());
    }
    for file in &response.files {
        println!("[pmdaemon] flushed {}", file.display());
    }
    Ok(())
}
