//! `pmdaemon logs [target] [--lines N] [--err|--out]`.

use anyhow::Result;
use pmdaemon_core::api::LogsResponse;
use pmdaemon_daemon::Home;

use super::target_path;
use crate::cli::LogsArgs;
use crate::client::Client;
use crate::render;

/// Prints the last lines of each log file, each under a header naming it.
pub async fn run(args: LogsArgs, home: Home) -> Result<()> {
    let base = match &args.target {
        Some(target) => format!("{}/logs", target_path(target)?),
        None => "/api/logs".to_string(),
    };
    let stream = if args.err {
        "&stream=err"
    } else if args.out {
        "&stream=out"
    } else {
        ""
    };
    let client = Client::connect(home).await?;
    let response: LogsResponse = client
        .get(&format!("{base}?lines={}{stream}", args.lines))
        .await?;
    if args.json {
        println!("{}", render::json(&response)?);
        return Ok(());
    }
    for tail in &response.tails {
        println!(
            "==> {} ({} {}, last {} lines) <==",
            tail.path.display(),
            tail.instance,
            tail.stream,
            args.lines
        );
        for line in &tail.lines {
            println!("{line}");
        }
    }
    Ok(())
}
