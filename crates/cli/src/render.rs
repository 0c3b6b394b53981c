//! Tables and text for people; JSON for scripts.

use comfy_table::{Cell, ContentArrangement, Table};
use pmdaemon_core::api::{ProcessDetail, ProcessInfo};
use pmdaemon_core::units::{format_bytes, format_duration, format_uptime};
use serde::Serialize;

/// Light box drawing, as in the seed's table (no lines between rows).
const PRESET: &str = "││──├─┼┤│    ┬┴┌┐└┘";

fn table() -> Table {
    let mut table = Table::new();
    table
        .load_preset(PRESET)
        .set_content_arrangement(ContentArrangement::Disabled);
    table
}

fn dash<T: ToString>(value: Option<T>) -> String {
    value.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// The process table with the seed's columns, and a Health column when any
/// instance is health-checked.
pub fn process_table(processes: &[ProcessInfo]) -> String {
    let mut table = table();
    let checked = processes.iter().any(|p| p.health_checked);
    let mut header = vec![
        "ID", "Name", "Status", "PID", "Port", "CPU (%)", "Memory", "Uptime", "Restarts",
    ];
    if checked {
        header.push("Health");
    }
    table.set_header(header);
    for process in processes {
        let mut row = vec![
            Cell::new(process.id),
            Cell::new(&process.name),
            Cell::new(process.status),
            Cell::new(dash(process.pid)),
            Cell::new(port_cell(process)),
            Cell::new(dash(process.cpu_percent.map(|c| format!("{c:.1}")))),
            Cell::new(dash(process.memory_bytes.map(format_bytes))),
            Cell::new(dash(process.uptime_ms.map(format_uptime))),
            Cell::new(process.restarts),
        ];
        if checked {
            // Only apps with a check have a health to show.
            row.push(Cell::new(if process.health_checked {
                process.health.to_string()
            } else {
                "-".to_string()
            }));
        }
        table.add_row(row);
    }
    table.to_string()
}

/// Whether output to `stream` may be coloured: a terminal, unless
/// `NO_COLOR` says otherwise; `CLICOLOR_FORCE` colours even a pipe.
pub fn colour_for(stream: &impl anstream::stream::RawStream) -> bool {
    anstream::AutoStream::choice(stream) != anstream::ColorChoice::Never
}

/// The Port column: the port, and in proxy mode the private port the
/// daemon forwards it to (`3000→41234`).
fn port_cell(process: &ProcessInfo) -> String {
    match (process.port, process.private_port) {
        (Some(port), Some(private)) => format!("{port}→{private}"),
        (port, _) => dash(port),
    }
}

/// One instance in full, as a two-column table.
pub fn detail(detail: &ProcessDetail) -> String {
    let info = &detail.info;
    let config = &detail.config;
    let mut table = table();
    let mut row = |key: &str, value: String| {
        table.add_row([Cell::new(key), Cell::new(value)]);
    };
    row("name", info.name.clone());
    row("app", format!("{} (instance {})", info.app, info.instance));
    if let Some(namespace) = &config.namespace {
        row("namespace", namespace.clone());
    }
    if config.uid.is_some() || config.gid.is_some() {
        row(
            "user",
            format!(
                "uid {} / gid {}",
                config.uid.as_deref().unwrap_or("-"),
                config.gid.as_deref().unwrap_or("-")
            ),
        );
    }
    if !config.autostart {
        row("autostart", "off".to_string());
    }
    row("id", info.id.to_string());
    row("status", info.status.to_string());
    row("pid", dash(info.pid));
    row("port", port_cell(info));
    if let Some(mode) = info.shared_port {
        let mut shared = format!("{mode} mode");
        if let Some(open) = info.connections {
            shared.push_str(&format!(", {open} open connections"));
        }
        row("shared port", shared);
    }
    row("uptime", dash(info.uptime_ms.map(format_uptime)));
    row(
        "restarts",
        format!(
            "{} ({} unstable in a row)",
            info.restarts, info.unstable_restarts
        ),
    );
    row("last exit", dash(info.last_exit));
    if let Some(check) = &config.health_check {
        let target = check
            .url
            .clone()
            .or(check.script.clone())
            .unwrap_or_default();
        let kind = match check.check_type {
            pmdaemon_core::config::CheckType::Http => "http",
            pmdaemon_core::config::CheckType::Tcp => "tcp",
            pmdaemon_core::config::CheckType::Script => "script",
        };
        row(
            "health",
            format!(
                "{} ({kind} {target}, every {}, timeout {}, {} retries){}",
                info.health,
                format_duration(check.interval),
                format_duration(check.timeout),
                check.retries,
                info.health_error
                    .as_ref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ),
        );
    }
    row("ready", info.ready.to_string());
    row("command", shell_join(&detail.command));
    row("cwd", detail.cwd.display().to_string());
    row("out log", detail.out_log.display().to_string());
    row("err log", detail.err_log.display().to_string());
    if let Some(log) = &config.log_file {
        // A relative one is under the home.
        row("combined log", log.display().to_string());
    }
    row(
        "log rotation",
        match config.log_max_size {
            Some(0) => "never".to_string(),
            size => format!(
                "{}, {} files{}",
                size.map_or("the daemon's default size".to_string(), format_bytes),
                config
                    .log_max_files
                    .map_or("the daemon's default count of".to_string(), |n| n
                        .to_string()),
                if config.log_compress == Some(true) {
                    ", gzipped"
                } else {
                    ""
                }
            ),
        },
    );
    row(
        "autorestart",
        format!(
            "{} (max_restarts {}, min_uptime {}, restart_delay {}{})",
            config.autorestart,
            config.max_restarts,
            format_duration(config.min_uptime),
            format_duration(config.restart_delay),
            config
                .exp_backoff_restart_delay
                .map(|d| format!(", exp_backoff_restart_delay {}", format_duration(d)))
                .unwrap_or_default()
        ),
    );
    row(
        "stop",
        format!(
            "{} then SIGKILL after {}",
            config.stop_signal,
            format_duration(config.kill_timeout)
        ),
    );
    if !config.watch.is_empty() {
        let ignored = if config.ignore_watch.is_empty() {
            pmdaemon_core::config::DEFAULT_IGNORE_WATCH.join(", ")
        } else {
            config.ignore_watch.join(", ")
        };
        row(
            "watch",
            format!("{} (ignoring {ignored})", config.watch.join(", ")),
        );
    }
    if let Some(cron) = &config.cron_restart {
        row("cron_restart", cron.clone());
    }
    if let Some(port) = &config.port {
        row("port spec", port.to_string());
    }
    if !config.stop_exit_codes.is_empty() {
        row("stop_exit_codes", format!("{:?}", config.stop_exit_codes));
    }
    // What the process really gets; an older daemon sends only the app's.
    let environment = if detail.environment.is_empty() {
        &config.env
    } else {
        &detail.environment
    };
    for (key, value) in environment {
        row("env", format!("{key}={value}"));
    }
    let mut out = table.to_string();
    if !detail.history.is_empty() {
        let mut history = self::table();
        history.set_header(["When", "Event", "Detail"]);
        for event in &detail.history {
            history.add_row([
                Cell::new(format_time(event.at_ms)),
                Cell::new(&event.event),
                Cell::new(&event.reason),
            ]);
        }
        out.push_str("\nHistory\n");
        out.push_str(&history.to_string());
    }
    out
}

fn shell_join(words: &[String]) -> String {
    words
        .iter()
        .map(|w| {
            if !w.is_empty()
                && w.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./=:@%+,".contains(c))
            {
                w.clone()
            } else {
                format!("'{}'", w.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// `HH:MM:SS` in local time (as log timestamps are) of a Unix time in
/// milliseconds, with the date when it is not today.
fn format_time(at_ms: u64) -> String {
    use chrono::TimeZone;
    let Some(at) = chrono::Local
        .timestamp_millis_opt(i64::try_from(at_ms).unwrap_or(i64::MAX))
        .single()
    else {
        return "-".to_string();
    };
    if at.date_naive() == chrono::Local::now().date_naive() {
        at.format("%H:%M:%S").to_string()
    } else {
        at.format("%Y-%m-%d %H:%M:%S").to_string()
    }
}

/// Pretty JSON on stdout.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<String> {
    Ok(serde_json::to_string_pretty(value)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmdaemon_core::api::Status;

    #[test]
    fn the_list_has_the_seed_columns_and_formats() {
        let row = ProcessInfo {
            id: 1,
            name: "web-app-0".into(),
            app: "web-app".into(),
            instance: 0,
            status: Status::Online,
            pid: Some(1234),
            port: Some(3000),
            cpu_percent: Some(15.2),
            memory_bytes: Some(131_491_430),
            uptime_ms: Some(8_100_000),
            restarts: 0,
            unstable_restarts: 0,
            last_exit: None,
            health_checked: false,
            health: Default::default(),
            health_error: None,
            ready: true,
            shared_port: None,
            private_port: None,
            connections: None,
            namespace: None,
        };
        let proxied = ProcessInfo {
            shared_port: Some(pmdaemon_core::config::SharedPort::Proxy),
            private_port: Some(41234),
            ..row.clone()
        };
        assert!(process_table(&[proxied]).contains("│ 3000→41234 │"));
        // Apps without a check show no health beside one that has one.
        let checked = ProcessInfo {
            id: 2,
            health_checked: true,
            health: pmdaemon_core::api::Health::Healthy,
            ..row.clone()
        };
        let mixed = process_table(&[row.clone(), checked]);
        let health: Vec<&str> = mixed
            .lines()
            .filter(|l| l.contains("web-app-0"))
            .map(|l| {
                l.trim_end_matches('│')
                    .rsplit('│')
                    .next()
                    .unwrap_or("")
                    .trim()
            })
            .collect();
        assert_eq!(health, ["-", "healthy"], "{mixed}");
        let text = process_table(&[row]);
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[1].contains(
                "│ ID │ Name      │ Status │ PID  │ Port │ CPU (%) │ Memory  │ Uptime │ Restarts │"
            ),
            "{text}"
        );
        assert!(lines[2].starts_with("├────┼"), "{text}");
        assert!(
            lines[3].contains(
                "│ 1  │ web-app-0 │ online │ 1234 │ 3000 │ 15.2    │ 125.4MB │ 2h 15m │ 0        │"
            ),
            "{text}"
        );
    }

    #[test]
    fn commands_are_shown_quoted_like_a_shell_would_need() {
        assert_eq!(
            shell_join(&["sh".into(), "-c".into(), "echo 'hi' there".into()]),
            r"sh -c 'echo '\''hi'\'' there'"
        );
    }
}
