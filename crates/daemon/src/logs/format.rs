//! Line formats: how lines are rewritten on their way to the file when an
//! app asks for timestamps or JSON, and how what a pipe gives is cut into
//! lines.

/// How lines are rewritten on their way to the file.
#[derive(Debug, Clone)]
pub enum LineFormat {
    /// Whole lines as written (merged logs: lines of several instances
    /// must not mix).
    Lines,
    /// `<time>: <line>`, with a strftime format.
    Timestamp(String),
    /// One JSON object per line.
    Json {
        /// strftime format of the time.
        time: String,
        /// App name.
        app: String,
        /// Instance name.
        instance: String,
        /// Which stream.
        stream: pmdaemon_core::api::LogStream,
    },
}

/// The default time format: ISO 8601 with milliseconds and offset.
const ISO: &str = "%Y-%m-%dT%H:%M:%S%.3f%:z";

impl LineFormat {
    /// The format an app asks for, if any (`log_type: json`,
    /// `log_date_format`, or `time: true`).
    pub fn of(
        config: &pmdaemon_core::config::AppConfig,
        instance: &str,
        stream: pmdaemon_core::api::LogStream,
    ) -> Option<Self> {
        let date = config
            .log_date_format
            .as_deref()
            .and_then(|f| pmdaemon_core::config::date_format(f).ok());
        match config.log_type {
            pmdaemon_core::config::LogType::Json => Some(LineFormat::Json {
                time: date.unwrap_or_else(|| ISO.to_string()),
                app: config.name.clone(),
                instance: instance.to_string(),
                stream,
            }),
            pmdaemon_core::config::LogType::Raw => {
                // Several writers of one file write whole lines, so that
                // none splits another's: the instances of a merged app, or
                // stdout and stderr sharing one file (`log_file`, or the
                // same `out_file` and `error_file`).
                let shared = config.merge_logs
                    || config.log_file.is_some()
                    || (config.out_file.is_some() && config.out_file == config.error_file);
                date.or_else(|| config.time.then(|| ISO.to_string()))
                    .map(LineFormat::Timestamp)
                    .or_else(|| shared.then_some(LineFormat::Lines))
            }
        }
    }

    /// The time as this format writes it; lines read together share it.
    pub(super) fn stamp(&self) -> String {
        let now = chrono::Local::now();
        let format = match self {
            LineFormat::Lines => return String::new(),
            LineFormat::Timestamp(format) => format,
            LineFormat::Json { time, .. } => time,
        };
        let mut text = String::new();
        let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{}", now.format(format)));
        text
    }

    pub(super) fn line(&self, stamp: &str, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self {
            LineFormat::Lines => out.extend_from_slice(line),
            LineFormat::Timestamp(_) => {
                out.extend_from_slice(stamp.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(line);
            }
            LineFormat::Json {
                app,
                instance,
                stream,
                ..
            } => {
                let record = serde_json::json!({
                    "time": stamp,
                    "app": app,
                    "instance": instance,
                    "stream": stream,
                    "message": String::from_utf8_lossy(line),
                });
                let _ = serde_json::to_writer(&mut *out, &record);
            }
        }
        out.push(b'\n');
    }
}

/// A line longer than this is written in pieces (memory stays bounded).
const MAX_LINE: usize = 64 * 1024;

/// Formats every whole line of `chunk` (the first one continuing
/// `partial`) into `out`; keeps the unfinished end in `partial`, written as
/// is once it reaches [`MAX_LINE`].
pub(super) fn format_lines(
    format: &LineFormat,
    chunk: &[u8],
    partial: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    let stamp = format.stamp();
    let mut begin = 0;
    for end in memchr::memchr_iter(b'\n', chunk) {
        if partial.is_empty() {
            format.line(&stamp, &chunk[begin..end], out);
        } else {
            partial.extend_from_slice(&chunk[begin..end]);
            format.line(&stamp, partial, out);
            partial.clear();
        }
        begin = end + 1;
    }
    partial.extend_from_slice(&chunk[begin..]);
    if partial.len() >= MAX_LINE {
        format.line(&stamp, partial, out);
        partial.clear();
    }
}
