//! `pmdaemon delete <target>…`.

use anyhow::Result;
use hyper::Method;
use pmdaemon_core::home::Home;

use super::act_on_target;
use crate::cli::TargetArgs;

/// Stops the target and forgets it.
pub async fn run(args: TargetArgs, home: Home) -> Result<()> {
    let request = (Method::DELETE, pmdaemon_core::api::routes::PROCESS);
    act_on_target(
        home,
        &args.targets,
        request,
        None::<&()>,
        "deleted",
        args.json,
    )
    .await
}
