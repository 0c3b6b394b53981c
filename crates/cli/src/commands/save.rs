//! `pmdaemon save` (`dump`).

use anyhow::Result;
use pmdaemon_core::api::endpoints::Save;
use pmdaemon_core::api::SaveResponse;
use pmdaemon_core::home::Home;

use crate::client::Client;
use crate::render;

/// Writes the running apps to the dump `resurrect` reads, and says so.
pub async fn run(home: Home, json: bool) -> Result<()> {
    let client = Client::connect(home).await?;
    let saved: SaveResponse = client.call::<Save>("", &()).await?;
    if json {
        println!("{}", render::json(&saved)?);
        return Ok(());
    }
    let apps = if saved.apps.is_empty() {
        "no running app".to_string()
    } else {
        saved.apps.join(", ")
    };
    println!(
        "[pmdaemon] saved {apps} to {} (`pmdaemon resurrect` brings them back; the process table itself is saved on every change)",
        saved.file.display()
    );
    Ok(())
}
