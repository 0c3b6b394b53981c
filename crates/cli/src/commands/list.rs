//! `pmdaemon list` (`ls`, `status`).

use anyhow::Result;
use pmdaemon_core::api::endpoints::List;
use pmdaemon_core::api::ProcessInfo;
use pmdaemon_core::home::Home;

use crate::cli::ListArgs;
use crate::client::Client;
use crate::render;

/// Prints the process table, or every field as JSON.
pub async fn run(args: ListArgs, home: Home) -> Result<()> {
    let client = Client::connect(home).await?;
    let processes: Vec<ProcessInfo> = client.call::<List>("", &()).await?;
    if args.json {
        println!("{}", render::json(&processes)?);
    } else {
        println!("{}", render::process_table(&processes));
    }
    Ok(())
}
