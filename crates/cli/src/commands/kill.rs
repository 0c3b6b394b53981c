//! `pmdaemon kill`.

use std::time::{Duration, Instant};

use anyhow::{bail, Result};
use pmdaemon_core::api::endpoints::Kill;
use pmdaemon_core::api::KillResponse;
use pmdaemon_core::home::Home;

use crate::client::Client;

/// Stops every app, then the daemon; returns once the daemon has exited.
pub async fn run(home: Home, json: bool) -> Result<()> {
    let Some(client) = Client::existing(home.clone()).await else {
        if json {
            println!("{}", serde_json::json!({ "running": false, "stopped": [] }));
        } else {
            println!(
                "[pmdaemon] no daemon is running for {}",
                home.root().display()
            );
        }
        return Ok(());
    };
    let response: KillResponse = client.call::<Kill>("", &()).await?;
    // The daemon exits right after answering; wait for it, so that a script
    // can rely on it being gone.
    let deadline = Instant::now() + Duration::from_secs(10);
    let pid = nix::unistd::Pid::from_raw(response.pid as i32);
    while nix::sys::signal::kill(pid, None).is_ok() && !is_zombie(response.pid) {
        if Instant::now() > deadline {
            bail!(
                "the daemon (pid {}) did not exit after stopping the apps",
                response.pid
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    if json {
        println!("{}", crate::render::json(&response)?);
    } else {
        println!(
            "[pmdaemon] stopped {} instance(s) and the daemon (pid {})",
            response.stopped.len(),
            response.pid
        );
    }
    Ok(())
}

fn is_zombie(pid: u32) -> bool {
    pmdaemon_core::procinfo::stat(pid).is_some_and(|stat| stat.zombie)
}
