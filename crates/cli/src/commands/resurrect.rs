//! `pmdaemon resurrect`: what `pmdaemon kill` stopped runs again.

use anyhow::Result;
use pmdaemon_core::api::endpoints::Resurrect;
use pmdaemon_core::api::ProcessInfo;
use pmdaemon_core::home::Home;

use super::report;
use crate::client::Client;

/// Starts every parked instance; says so when there is none.
pub async fn run(home: Home, json: bool) -> Result<()> {
    let client = Client::connect(home).await?;
    let started: Vec<ProcessInfo> = client.call::<Resurrect>("", &()).await?;
    if started.is_empty() && !json {
        println!("[pmdaemon] nothing to resurrect: no app was stopped by `pmdaemon kill`");
        return Ok(());
    }
    report(&client, "resurrected", &started, json).await
}
