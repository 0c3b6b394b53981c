//! `pmdaemon logs [target] [--lines N] [--err|--out]`.

use anyhow::Result;
use pmdaemon_core::api::{LogLine, LogStream, LogsResponse};
use pmdaemon_core::home::Home;

use super::target_path;
use crate::cli::LogsArgs;
use crate::client::Client;
use crate::render;

/// Prints the last lines of each log file, interleaved in the order they
/// were written as far as the daemon knows (lines written before it
/// started come first, file by file).
pub async fn run(args: LogsArgs, home: Home) -> Result<()> {
    let base = match &args.target {
        Some(target) => target_path(pmdaemon_core::api::routes::LOGS, target)?,
        None => pmdaemon_core::api::routes::ALL_LOGS.to_string(),
    };
    let stream = if args.err {
        "&stream=err"
    } else if args.out {
        "&stream=out"
    } else {
        ""
    };
    let client = Client::connect(home).await?;
    if args.follow {
        let path = format!("{base}?lines={}{stream}&follow=true", args.lines);
        return follow(&client, &path, args.raw, args.json).await;
    }
    let response: LogsResponse = client
        .get(&format!("{base}?lines={}{stream}", args.lines))
        .await?;
    if args.json {
        println!("{}", render::json(&response)?);
        return Ok(());
    }
    let colour = crate::render::colour_for(&std::io::stdout());
    let mut lines: Vec<(Option<i64>, &str, LogStream, &str)> = response
        .tails
        .iter()
        .flat_map(|tail| {
            tail.lines.iter().enumerate().map(|(index, line)| {
                let time = tail.times.get(index).copied().flatten();
                (time, tail.instance.as_str(), tail.stream, line.as_str())
            })
        })
        .collect();
    // Stable: lines of one time keep their file order.
    lines.sort_by_key(|(time, ..)| *time);
    for (_, instance, stream, line) in lines {
        print_line(instance, stream, line, args.raw, colour);
    }
    Ok(())
}

/// Streams lines until the daemon ends or Ctrl-C; each is prefixed with its
/// instance in a stable colour (plain when stdout is not a terminal), or
/// printed as one JSON object per line with `json`.
async fn follow(client: &Client, path: &str, raw: bool, json: bool) -> Result<()> {
    let colour = crate::render::colour_for(&std::io::stdout());
    let print = |bytes: &[u8]| -> Result<()> {
        let line: LogLine = serde_json::from_slice(bytes)?;
        if json {
            println!("{}", serde_json::to_string(&line)?);
            return Ok(());
        }
        print_line(&line.instance, line.stream, &line.line, raw, colour);
        Ok(())
    };
    tokio::select! {
        result = client.stream_lines(path, print) => result,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// `web-0 | text` (`web-0 err | text` for stderr), the prefix in a colour
/// that stays the same for an instance; the text alone with `raw`.
fn print_line(instance: &str, stream: LogStream, text: &str, raw: bool, colour: bool) {
    if raw {
        println!("{text}");
        return;
    }
    let marker = if stream == LogStream::Err { " err" } else { "" };
    if colour {
        let hash = instance
            .bytes()
            .fold(0u32, |h, b| h.wrapping_mul(31).wrapping_add(u32::from(b)));
        let hue = 31 + hash % 6;
        println!("\x1b[{hue}m{instance}{marker} |\x1b[0m {text}");
    } else {
        println!("{instance}{marker} | {text}");
    }
}
