//! The configuration of one app, as the daemon stores and runs it.
//!
//! Every field has PM2's meaning and default. Durations are milliseconds.

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ports::PortSpec;
use crate::Error;

/// How long a process must stay up for its exit to count as a normal crash
/// rather than an unstable one (PM2's `min_uptime`).
pub const DEFAULT_MIN_UPTIME_MS: u64 = 1000;
/// How many unstable restarts in a row are tolerated before the instance is
/// marked errored (PM2's `max_restarts`).
pub const DEFAULT_MAX_RESTARTS: u32 = 16;
/// More instances than this for one app is a typo, not a plan.
pub const MAX_INSTANCES: u32 = 1024;
/// Grace period between the stop signal and SIGKILL (PM2's `kill_timeout`).
pub const DEFAULT_KILL_TIMEOUT_MS: u64 = 1600;

/// One app: a command and how to supervise it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct AppConfig {
    /// The app's name; instances are named `<name>-<index>`.
    pub name: String,
    /// The program or script to run.
    pub script: String,
    /// Arguments given after the script.
    pub args: Vec<String>,
    /// The interpreter for `script`; `None` picks one from the extension
    /// (`.js` node, `.py` python3, `.sh` bash); `"none"` executes directly.
    pub interpreter: Option<String>,
    /// Arguments given to the interpreter before the script (PM2's
    /// `node_args` / `interpreter_args`); unused without an interpreter.
    pub interpreter_args: Vec<String>,
    /// Start the app when it is registered; false registers it stopped
    /// (`start <name>` starts it later).
    pub autostart: bool,
    /// Run the app as this user (name or number); the daemon must be root.
    pub uid: Option<String>,
    /// Run the app with this group (name or number); the daemon must be
    /// root.
    pub gid: Option<String>,
    /// Working directory; relative script paths are resolved against it.
    #[schema(value_type = Option<String>)]
    pub cwd: Option<PathBuf>,
    /// Environment variables set on top of the inherited environment.
    pub env: BTreeMap<String, String>,
    /// Number of instances.
    pub instances: u32,
    /// Ports for the instances: one, a range, or `auto:` a range.
    pub port: Option<PortSpec>,
    /// The variable that carries the instance index besides
    /// `PM2_INSTANCE_ID` (PM2's `instance_var`).
    pub instance_var: String,
    /// An environment variable (PM2's `increment_var`, e.g. `PORT`) that
    /// instance i gets as its value plus i.
    pub increment_var: Option<String>,
    /// Restart the process when it exits.
    pub autorestart: bool,
    /// Unstable restarts in a row before the instance is marked errored.
    pub max_restarts: u32,
    /// Uptime (ms) below which an exit counts as unstable.
    pub min_uptime: u64,
    /// Delay (ms) before a restart.
    pub restart_delay: u64,
    /// When set, the first delay (ms) of an exponential backoff between
    /// restarts (x1.5 per crash, at most 15 s, reset after 30 s of uptime).
    pub exp_backoff_restart_delay: Option<u64>,
    /// Grace period (ms) between the stop signal and SIGKILL.
    pub kill_timeout: u64,
    /// The signal that asks the process to stop.
    pub stop_signal: String,
    /// Exit codes that mean "done": no restart follows them.
    pub stop_exit_codes: Vec<i32>,
    /// `fork` or `cluster` (PM2's `exec_mode`; every instance is its own
    /// process either way). `cluster` with a single port makes a shared-port
    /// cluster even with one instance, so that it can be scaled.
    pub exec_mode: ExecMode,
    /// How the instances of a shared-port cluster share their port.
    pub shared_port: SharedPort,
    /// Restart an instance whose process tree uses more memory (bytes).
    pub max_memory_restart: Option<u64>,
    /// Health check run against every instance.
    pub health_check: Option<HealthCheck>,
    /// Wait for `READY=1` on `NOTIFY_SOCKET` (or, from a Node app,
    /// `process.send('ready')`) before calling an instance ready.
    pub wait_ready: bool,
    /// Stop a Node app by sending it the IPC message `'shutdown'` instead of
    /// the stop signal (SIGKILL still follows after `kill_timeout`).
    pub shutdown_with_message: bool,
    /// How long (ms) an instance may take to become ready.
    pub listen_timeout: Option<u64>,
    /// Paths whose changes restart the app (relative to `cwd`).
    pub watch: Vec<String>,
    /// Paths (or names) that never trigger a watch restart.
    pub ignore_watch: Vec<String>,
    /// Quiet time (ms) after a burst of changes before the watch restart.
    pub watch_delay: u64,
    /// Cron expression on which the app is restarted.
    pub cron_restart: Option<String>,
    /// stdout file instead of `logs/<instance>-out.log`.
    #[schema(value_type = Option<String>)]
    pub out_file: Option<PathBuf>,
    /// stderr file instead of `logs/<instance>-err.log`.
    #[schema(value_type = Option<String>)]
    pub error_file: Option<PathBuf>,
    /// A file that also gets both streams, besides the out and error logs
    /// (PM2's `log_file`); a relative path is under `$PMDAEMON_HOME`.
    /// `/dev/null` as any of the three means no such file.
    #[schema(value_type = Option<String>)]
    pub log_file: Option<PathBuf>,
    /// Timestamp format prefixed to every log line.
    pub log_date_format: Option<String>,
    /// All instances share one pair of log files.
    pub merge_logs: bool,
    /// Prefix lines with the time in the default format (PM2's `time`).
    pub time: bool,
    /// `json` writes one JSON object per line (time, app, instance,
    /// stream, message).
    pub log_type: LogType,
    /// Rotate a log file once it reaches this many bytes (default 10M).
    pub log_max_size: Option<u64>,
    /// Rotated log files kept (default 10).
    pub log_max_files: Option<u32>,
    /// Gzip rotated log files (default off).
    pub log_compress: Option<bool>,
    /// A label to group apps.
    pub namespace: Option<String>,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogType {
    /// As the app wrote them (with a timestamp when one is configured).
    #[default]
    Raw,
    /// One JSON object per line.
    Json,
}

/// PM2's execution modes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExecMode {
    /// One process per instance.
    #[default]
    Fork,
    /// Also one process per instance; accepted for PM2 compatibility.
    Cluster,
}

/// How the instances of a shared-port cluster (one port, several
/// instances) share it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum SharedPort {
    /// `socket` for apps run by node (a preload maps their `listen(port)`
    /// to the inherited socket), `proxy` for everything else.
    #[default]
    Auto,
    /// The daemon binds the port once and every instance inherits the
    /// listening socket as fd 3 (systemd's `LISTEN_FDS` protocol); the
    /// kernel spreads connections.
    Socket,
    /// Each instance listens on a private port (its `PORT`); the daemon
    /// accepts on the public port and forwards to ready instances.
    Proxy,
}

impl fmt::Display for SharedPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SharedPort::Auto => "auto",
            SharedPort::Socket => "socket",
            SharedPort::Proxy => "proxy",
        })
    }
}

impl std::str::FromStr for SharedPort {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "auto" => Ok(SharedPort::Auto),
            "socket" => Ok(SharedPort::Socket),
            "proxy" => Ok(SharedPort::Proxy),
            other => Err(format!(
                "unknown shared-port mode '{other}': use auto, socket or proxy"
            )),
        }
    }
}

/// How an instance's health is checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckType {
    /// A 2xx answer to a GET of `url`.
    #[default]
    Http,
    /// A TCP connection to the instance's port.
    Tcp,
    /// `script` exits with status 0.
    Script,
}

/// The `health_check` block (durations in milliseconds here).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(default)]
pub struct HealthCheck {
    /// Kind of check.
    pub check_type: CheckType,
    /// URL for http checks; `{PORT}` is replaced by the instance's port.
    pub url: Option<String>,
    /// Command for script checks.
    pub script: Option<String>,
    /// Time allowed for one check (ms).
    pub timeout: u64,
    /// Time between checks (ms).
    pub interval: u64,
    /// Consecutive failures that restart the instance.
    pub retries: u32,
    /// Whether the check runs.
    pub enabled: bool,
}

impl HealthCheck {
    /// What makes this check impossible to run, if anything.
    pub fn validate(&self) -> Result<(), Error> {
        let invalid = |field, reason: &str| {
            Err(Error::InvalidHealthCheck {
                field,
                reason: reason.to_string(),
            })
        };
        if self.check_type == CheckType::Http && self.url.is_none() {
            return invalid("url", "an http check needs a 'url'");
        }
        if self.check_type == CheckType::Script && self.script.is_none() {
            return invalid("script", "a script check needs a 'script'");
        }
        if self.retries == 0 {
            return invalid("retries", "retries must be at least 1");
        }
        Ok(())
    }
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            check_type: CheckType::Http,
            url: None,
            script: None,
            timeout: 5_000,
            interval: 30_000,
            retries: 3,
            enabled: true,
        }
    }
}

impl Default for AppConfig {
    fn default() -> Self {
        Self {
            name: String::new(),
            script: String::new(),
            args: Vec::new(),
            interpreter: None,
            interpreter_args: Vec::new(),
            autostart: true,
            uid: None,
            gid: None,
            cwd: None,
            env: BTreeMap::new(),
            instances: 1,
            port: None,
            instance_var: "NODE_APP_INSTANCE".to_string(),
            increment_var: None,
            autorestart: true,
            max_restarts: DEFAULT_MAX_RESTARTS,
            min_uptime: DEFAULT_MIN_UPTIME_MS,
            restart_delay: 0,
            exp_backoff_restart_delay: None,
            kill_timeout: DEFAULT_KILL_TIMEOUT_MS,
            stop_signal: "SIGTERM".to_string(),
            stop_exit_codes: Vec::new(),
            exec_mode: ExecMode::Fork,
            shared_port: SharedPort::Auto,
            max_memory_restart: None,
            health_check: None,
            wait_ready: false,
            shutdown_with_message: false,
            listen_timeout: None,
            watch: Vec::new(),
            ignore_watch: Vec::new(),
            watch_delay: 0,
            cron_restart: None,
            out_file: None,
            error_file: None,
            log_file: None,
            log_date_format: None,
            merge_logs: false,
            time: false,
            log_type: LogType::Raw,
            log_max_size: None,
            log_max_files: None,
            log_compress: None,
            namespace: None,
        }
    }
}

impl AppConfig {
    /// What runs: the program, then the interpreter's own arguments
    /// (`interpreter_args`, only when there is an interpreter), the script
    /// and its arguments.
    pub fn invocation(&self) -> crate::command::Invocation {
        let mut invocation =
            crate::command::invocation(&self.script, &self.args, self.interpreter.as_deref());
        if invocation.script_file.is_some() && !self.interpreter_args.is_empty() {
            invocation
                .args
                .splice(0..0, self.interpreter_args.iter().cloned());
        }
        invocation
    }

    /// The name of instance `index` of this app.
    pub fn instance_name(&self, index: u32) -> String {
        format!("{}-{index}", self.name)
    }

    /// The port all instances share and how (`socket` or `proxy`, never
    /// `auto`), when this app is a shared-port cluster: a single port with
    /// several instances, `exec_mode: cluster`, or an explicit mode.
    pub fn sharing(&self) -> Option<(u16, SharedPort)> {
        let Some(PortSpec::Single(port)) = self.port else {
            return None;
        };
        let shared = self.instances > 1
            || self.exec_mode == ExecMode::Cluster
            || self.shared_port != SharedPort::Auto;
        if !shared {
            return None;
        }
        let mode = match self.shared_port {
            SharedPort::Auto => {
                let program = crate::command::invocation(
                    &self.script,
                    &self.args,
                    self.interpreter.as_deref(),
                )
                .program;
                let base = program.rsplit('/').next().unwrap_or(&program);
                if base == "node" || base == "nodejs" {
                    SharedPort::Socket
                } else {
                    SharedPort::Proxy
                }
            }
            explicit => explicit,
        };
        Some((port, mode))
    }

    /// Checks what can be checked without touching the system.
    pub fn validate(&self) -> Result<(), Error> {
        validate_name(&self.name)?;
        if let Some(namespace) = &self.namespace {
            // A namespace is a target: it obeys the rules of names.
            if let Err(Error::InvalidName { reason, .. }) = validate_name(namespace) {
                return Err(Error::InvalidValue {
                    field: "namespace",
                    reason: format!("'{namespace}': {reason}"),
                });
            }
        }
        signal_number(&self.stop_signal)?;
        check_instances(self.instances)?;
        crate::limits::check_max_memory(self.max_memory_restart)?;
        crate::limits::check_env(&self.env)?;
        if let Some(spec) = &self.port {
            check_ports_fit(spec, self.instances)?;
        }
        if let Some(cron) = &self.cron_restart {
            parse_cron(cron)?;
        }
        if let Some(format) = &self.log_date_format {
            date_format(format)?;
        }
        if let Some(check) = &self.health_check {
            check.validate()?;
        }
        if self.script.trim().is_empty() {
            return Err(Error::InvalidCommand {
                input: self.script.clone(),
                reason: "nothing to run".to_string(),
            });
        }
        Ok(())
    }
}

/// The strftime format of `log_date_format`: PM2's moment.js tokens
/// (`YYYY-MM-DD HH:mm:ss.SSS Z`) are translated; a format containing `%` is
/// taken as strftime already. Errors name what chrono cannot format.
pub fn date_format(format: &str) -> Result<String, Error> {
    let strftime = if format.contains('%') {
        format.to_string()
    } else {
        const TOKENS: [(&str, &str); 13] = [
            ("YYYY", "%Y"),
            ("SSS", "%3f"),
            ("YY", "%y"),
            ("MM", "%m"),
            ("DD", "%d"),
            ("HH", "%H"),
            ("hh", "%I"),
            ("mm", "%M"),
            ("ss", "%S"),
            ("ZZ", "%z"),
            ("Z", "%:z"),
            ("A", "%p"),
            ("a", "%P"),
        ];
        let mut out = String::new();
        let mut rest = format;
        'scan: while let Some(c) = rest.chars().next() {
            for (token, replacement) in TOKENS {
                if let Some(after) = rest.strip_prefix(token) {
                    out.push_str(replacement);
                    rest = after;
                    continue 'scan;
                }
            }
            out.push(c);
            rest = &rest[c.len_utf8()..];
        }
        out
    };
    let invalid = chrono::format::StrftimeItems::new(&strftime)
        .any(|item| matches!(item, chrono::format::Item::Error));
    if invalid {
        return Err(Error::InvalidDateFormat {
            input: format.to_string(),
        });
    }
    Ok(strftime)
}

/// Parses a `cron_restart` expression: five fields, or six with seconds.
pub fn parse_cron(expression: &str) -> Result<croner::Cron, Error> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expression)
        .map_err(|err| Error::InvalidCron {
            input: expression.to_string(),
            reason: err.to_string(),
        })
}

/// Refuses a port range that cannot give `instances` instances a port each
/// (a single port is shared by all instances).
pub fn check_ports_fit(spec: &PortSpec, instances: u32) -> Result<(), Error> {
    match spec {
        PortSpec::Range { start, end } if spec.capacity() < instances => Err(Error::InvalidInstances {
            reason: format!(
                "port range {start}-{end} has {} ports for {instances} instances; widen it or use auto:{start}-{}",
                spec.capacity(),
                (u32::from(*start) + 100).min(65535)
            ),
        }),
        PortSpec::Auto { start, end } if spec.capacity() < instances => Err(Error::InvalidInstances {
            reason: format!(
                "auto:{start}-{end} has {} ports for {instances} instances",
                spec.capacity()
            ),
        }),
        _ => Ok(()),
    }
}

/// The candidate most like `typed` (a misspelt field, app or instance),
/// if one is close enough to be what was meant.
pub fn nearest<'a>(typed: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(typed, candidate), candidate))
        // Alike, or one slip away (`wbe` for `web`).
        .filter(|(score, candidate)| {
            *score > 0.8 || (typed.len() > 2 && strsim::damerau_levenshtein(typed, candidate) == 1)
        })
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

/// Names end up in file names and targets, so they are kept plain.
/// The characters an app or instance name may have (URL-safe, so that a
/// name is a path segment of the API as it is).
pub fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@')
}

/// Paths `watch` ignores unless the app says otherwise, as in PM2.
pub const DEFAULT_IGNORE_WATCH: [&str; 2] = ["node_modules", ".git"];

/// An instance count pmdaemon can run.
pub fn check_instances(instances: u32) -> Result<(), Error> {
    let reason = match instances {
        0 => "an app needs at least 1 instance".to_string(),
        n if n > MAX_INSTANCES => {
            format!("{n} instances is more than pmdaemon runs for one app ({MAX_INSTANCES})")
        }
        _ => return Ok(()),
    };
    Err(Error::InvalidInstances { reason })
}

pub fn validate_name(name: &str) -> Result<(), Error> {
    let invalid = |reason| {
        Err(Error::InvalidName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return invalid("it is empty");
    }
    if name.len() > 64 {
        return invalid("it is longer than 64 characters");
    }
    if name == "all" {
        return invalid("'all' is the target that means every process");
    }
    if name.chars().all(|c| c.is_ascii_digit()) {
        return invalid("a number would be read as a process id");
    }
    if !name.chars().all(is_name_char) {
        return invalid("use letters, digits, '-', '_', '.' and '@' only");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return invalid("it must not start with '.' or '-'");
    }
    Ok(())
}

/// The number of a signal given by name (`SIGTERM`, `TERM`, `sigterm`) or
/// number (`15`), as this system numbers them (nix knows every signal of
/// every architecture).
pub fn signal_number(name: &str) -> Result<i32, Error> {
    use nix::sys::signal::Signal;
    use std::str::FromStr;
    let unknown = || Error::UnknownSignal {
        name: name.to_string(),
    };
    if let Ok(number) = name.trim().parse::<i32>() {
        return Signal::try_from(number)
            .map(|signal| signal as i32)
            .map_err(|_| unknown());
    }
    let upper = name.trim().to_ascii_uppercase();
    let full = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    Signal::from_str(&full)
        .map(|signal| signal as i32)
        .map_err(|_| unknown())
}

#[cfg(test)]
mod tests;
