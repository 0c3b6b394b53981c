//! `pmdaemon signal <SIGNAL> <target>…` (PM2's `sendSignal`).

use anyhow::Result;
use hyper::Method;
use pmdaemon_core::api::SignalRequest;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::SignalArgs;

/// Sends the signal to the running process of each instance of the targets.
pub async fn run(args: SignalArgs, home: Home) -> Result<()> {
    let body = SignalRequest {
        signal: args.signal.clone(),
    };
    let request = (Method::POST, pmdaemon_core::api::routes::SIGNAL);
    let done = format!("sent {}", args.signal);
    act_on_target(home, &args.targets, request, Some(&body), &done, args.json).await
}
