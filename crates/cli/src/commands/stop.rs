//! `pmdaemon stop <target>…`.

use anyhow::Result;
use hyper::Method;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::TargetArgs;

/// Stops the target; returns once none of its processes is left.
pub async fn run(args: TargetArgs, home: Home) -> Result<()> {
    let request = (Method::POST, pmdaemon_core::api::routes::STOP);
    act_on_target(
        home,
        &args.targets,
        request,
        Some(&()),
        "stopped",
        args.json,
    )
    .await
}
