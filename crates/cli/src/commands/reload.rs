//! `pmdaemon reload <target> [--parallel K]`.

use anyhow::Result;
use hyper::Method;
use pmdaemon_core::api::ReloadRequest;
use pmdaemon_daemon::Home;

use super::act_on_target;
use crate::cli::ReloadArgs;

/// Replaces the target's instances a batch at a time, each only once the
/// previous batch is ready; fails (and stops) at the first that is not.
pub async fn run(args: ReloadArgs, home: Home) -> Result<()> {
    let body = ReloadRequest {
        parallel: args.parallel.max(1),
    };
    let request = (Method::POST, "/reload");
    let target = args.target.as_deref();
    act_on_target(home, target, request, Some(&body), "reloaded", args.json).await
}
