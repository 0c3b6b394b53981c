//! `pmdaemon logs [target] [--lines N] [--err|--out]`.

use anyhow::Result;
use pmdaemon_core::api::endpoints::{AllLogs, Logs};
use pmdaemon_core::api::{LogLine, LogStream, LogsQuery, LogsResponse};
use pmdaemon_core::home::Home;

use crate::cli::LogsArgs;
use crate::client::Client;
use crate::render;

/// Prints the last lines of each log file, interleaved in the order they
/// were written as far as the daemon knows (lines written before it
/// started come first, file by file).
pub async fn run(args: LogsArgs, home: Home) -> Result<()> {
    let stream = if args.err {
        Some(LogStream::Err)
    } else if args.out {
        Some(LogStream::Out)
    } else {
        None
    };
    let mut query = LogsQuery {
        lines: Some(args.lines),
        stream,
        follow: false,
    };
    let client = Client::connect(home).await?;
    let target = args.target.as_deref();
    if args.follow {
        query.follow = true;
        return follow(&client, target, &query, args.raw, args.json).await;
    }
    let response: LogsResponse = match target {
        Some(target) => client.call::<Logs>(target, &query).await?,
        None => client.call::<AllLogs>("", &query).await?,
    };
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
async fn follow(
    client: &Client,
    target: Option<&str>,
    query: &LogsQuery,
    raw: bool,
    json: bool,
) -> Result<()> {
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
    let lines = async {
        match target {
            Some(target) => client.stream::<Logs>(target, query, print).await,
            None => client.stream::<AllLogs>("", query, print).await,
        }
    };
    tokio::select! {
        result = lines => result,
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
