//! `pmdaemon info <target>`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Info;
use pmdaemon_core::api::ProcessDetail;
use pmdaemon_core::home::Home;

use crate::cli::InfoArgs;
use crate::client::Client;
use crate::render;

/// Prints everything about each instance of the target.
pub async fn run(args: InfoArgs, home: Home) -> Result<()> {
    let client = Client::connect(home).await?;
    let details: Vec<ProcessDetail> = client.call::<Info>(&args.target, &()).await?;
    if args.json {
        println!("{}", render::json(&details)?);
        return Ok(());
    }
    let blocks: Vec<String> = details.iter().map(render::detail).collect();
    println!("{}", blocks.join("\n"));
    Ok(())
}
