//! `pmdaemon signal <SIGNAL> <target>…` (PM2's `sendSignal`).

use anyhow::Result;
use pmdaemon_core::api::endpoints::Signal;
use pmdaemon_core::api::SignalRequest;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::SignalArgs;

/// Sends the signal to the running process of each instance of the targets.
pub async fn run(args: SignalArgs, home: Home) -> Result<()> {
    let body = SignalRequest {
        signal: args.signal.clone(),
    };
    let done = format!("sent {}", args.signal);
    act_on_target::<Signal>(home, &args.targets, &body, &done, args.json).await
}
