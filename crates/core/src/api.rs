//! The requests and responses of the daemon's HTTP/JSON API.
//!
//! Each endpoint (method, route, request, reply) is defined once in
//! [`endpoints`]: the daemon registers its handlers through those types and
//! the CLI calls them through the same ones. Besides them, the daemon serves
//! `GET /metrics` (Prometheus text), `GET /ws` (a WebSocket of [`Event`]s,
//! steered by [`ClientMessage`]s), `GET /openapi.json` ([`crate::openapi`])
//! and, on TCP only, `GET /health` (see [`crate::web`]).
//!
//! Errors come back with a 4xx/5xx status and an [`ErrorBody`].

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::config::AppConfig;
use crate::ports::PortSpec;

pub mod endpoints;
mod events;
pub mod routes;
pub use events::*;

/// Header carrying the sender's [`crate::VERSION`] on requests and responses.
pub const VERSION_HEADER: &str = "x-pmdaemon-version";

/// The largest request body the daemon accepts on its Unix socket (16 MiB):
/// an apply carries every app of a file (at most
/// [`crate::limits::MAX_FILE_BYTES`]) with the environment of the
/// command that applies it. The CLI refuses a larger request itself, with
/// this number in the error. Over TCP the limit is 1 MiB.
pub const MAX_SOCKET_BODY: usize = 16 * 1024 * 1024;

/// `GET /api/version`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct VersionInfo {
    /// The daemon's version.
    pub version: String,
    /// The daemon's process id.
    pub pid: u32,
}

/// `POST /api/processes`: register and start a new app.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StartRequest {
    /// The app to start.
    pub config: AppConfig,
    /// The environment of the command that started it (PM2 passes the
    /// caller's environment to the app; `config.env` is set on top of it).
    #[serde(default)]
    pub inherited_env: BTreeMap<String, String>,
}

/// `POST /api/apply`: bring the apps of an ecosystem file to their
/// configuration. Unchanged apps are left alone; changed ones restart.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplyRequest {
    /// The apps, as the file describes them.
    pub apps: Vec<AppConfig>,
    /// The environment of the command that applies them.
    #[serde(default)]
    pub inherited_env: BTreeMap<String, String>,
    /// The file they come from (prune only touches apps from it).
    #[schema(value_type = Option<String>)]
    pub file: Option<PathBuf>,
    /// Delete apps that came from this file but are no longer in it.
    #[serde(default)]
    pub prune: bool,
    /// What happens to apps that already run (`startOrRestart`,
    /// `startOrReload`); by default only changed ones restart.
    #[serde(default)]
    pub existing: ExistingApps,
    /// Existing apps take `inherited_env` even when their configuration is
    /// unchanged (`--update-env`); otherwise they keep the environment they
    /// were started with.
    #[serde(default)]
    pub update_env: bool,
}

/// What an apply does to the apps of the file that pmdaemon already runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExistingApps {
    /// Unchanged apps are left alone; changed ones restart (`start`).
    #[default]
    Changed,
    /// Every one restarts, with its new configuration (`startOrRestart`).
    Restart,
    /// Every one is reloaded, one instance at a time, with its new
    /// configuration (`startOrReload`, `startOrGracefulReload`).
    Reload,
}

/// What apply did to one app.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ApplyAction {
    /// It was new and started.
    Started,
    /// Its configuration was the same; nothing was done.
    Unchanged,
    /// It was restarted (with its new configuration, if it changed).
    Restarted,
    /// It was reloaded instance by instance (`startOrReload`).
    Reloaded,
    /// It is no longer in the file and was deleted (`--prune`).
    Pruned,
    /// It could not be applied (see the detail).
    Failed,
}

/// One app's outcome.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplyOutcome {
    /// The app.
    pub app: String,
    /// What was done.
    pub action: ApplyAction,
    /// Why, or what failed.
    pub detail: Option<String>,
}

/// Response of `POST /api/apply`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ApplyResponse {
    /// Per app, in file order (pruned apps last).
    pub outcomes: Vec<ApplyOutcome>,
}

/// Body of `POST /api/processes/{target}/restart` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RestartRequest {
    /// Ports for this run only (the saved spec is kept).
    pub port: Option<PortSpec>,
    /// `--update-env`: the caller's environment, which replaces the one the
    /// app inherited when it was started. Without it the app keeps that one.
    pub env: Option<BTreeMap<String, String>>,
}

/// Body of `POST /api/processes/{app}/scale`: `instances` or `add`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ScaleRequest {
    /// The number of instances wanted.
    pub instances: Option<u32>,
    /// Instances to add to those there are (negative: to remove), as
    /// `scale web +2` / `scale web -1`.
    pub add: Option<i32>,
}

/// Body of `POST /api/processes/{target}/signal`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SignalRequest {
    /// `SIGUSR2`, `USR2` or a number.
    pub signal: String,
}

/// Response of `POST /api/save`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SaveResponse {
    /// The dump written.
    #[schema(value_type = String)]
    pub file: PathBuf,
    /// The apps in it.
    pub apps: Vec<String>,
}

/// The life-cycle state of one instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    /// Being spawned.
    Launching,
    /// Running.
    Online,
    /// The stop signal was sent; waiting for the process group to exit.
    Stopping,
    /// Not running, by request or because it exited with no restart due.
    Stopped,
    /// Gave up: too many unstable restarts, or it could not be spawned.
    Errored,
    /// Exited; a restart is scheduled after a delay.
    WaitingRestart,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Launching => "launching",
            Status::Online => "online",
            Status::Stopping => "stopping",
            Status::Stopped => "stopped",
            Status::Errored => "errored",
            Status::WaitingRestart => "waiting-restart",
        })
    }
}

/// How a process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ExitReason {
    /// It exited with this code.
    Code(i32),
    /// It was killed by this signal.
    Signal(i32),
}

impl fmt::Display for ExitReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExitReason::Code(code) => write!(f, "exit code {code}"),
            ExitReason::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// One line of an instance's history (kept short: the most recent events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct HistoryEvent {
    /// Unix time in milliseconds.
    pub at_ms: u64,
    /// What happened: `started`, `exited`, `restarting`, `stopped`, `errored`, …
    pub event: String,
    /// Why, in words.
    pub reason: String,
}

/// A row of `list`: one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProcessInfo {
    /// Stable numeric id, never reused.
    pub id: u32,
    /// Instance name (`web-0`).
    pub name: String,
    /// App name (`web`).
    pub app: String,
    /// Index within the app (the value of `PM2_INSTANCE_ID`).
    pub instance: u32,
    /// Life-cycle state.
    pub status: Status,
    /// Process id of the running process.
    pub pid: Option<u32>,
    /// The port the instance was given.
    pub port: Option<u16>,
    /// CPU use in percent of one core, once sampled.
    pub cpu_percent: Option<f32>,
    /// Resident memory of the process tree in bytes, once sampled.
    pub memory_bytes: Option<u64>,
    /// Milliseconds since the current process started.
    pub uptime_ms: Option<u64>,
    /// Restarts since the app was started (crashes and requested restarts).
    pub restarts: u32,
    /// Unstable restarts in a row (exits before `min_uptime`).
    pub unstable_restarts: u32,
    /// How the last process ended.
    pub last_exit: Option<ExitReason>,
    /// Whether the app has an enabled health check.
    #[serde(default)]
    pub health_checked: bool,
    /// What the health check says.
    #[serde(default)]
    pub health: Health,
    /// The last failed check's error.
    #[serde(default)]
    pub health_error: Option<String>,
    /// Whether the running process is ready (its first health check passed,
    /// it sent `READY=1`, or, with neither configured, it is online).
    #[serde(default)]
    pub ready: bool,
    /// How its app shares `port` between instances (`socket` or `proxy`),
    /// when it is a shared-port cluster.
    #[serde(default)]
    pub shared_port: Option<crate::config::SharedPort>,
    /// In proxy mode, the private port the running process listens on (its
    /// `PORT`); the daemon forwards `port` to it.
    #[serde(default)]
    pub private_port: Option<u16>,
    /// In proxy mode, the connections forwarded to it that are open now.
    #[serde(default)]
    pub connections: Option<u64>,
    /// Its app's namespace, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// An instance's health.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Health {
    /// No check has run (or none is configured).
    #[default]
    Unknown,
    /// The last check passed.
    Healthy,
    /// The last check failed.
    Unhealthy,
}

impl fmt::Display for Health {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Health::Unknown => "unknown",
            Health::Healthy => "healthy",
            Health::Unhealthy => "unhealthy",
        })
    }
}

/// Body of `POST /api/processes/{target}/reload`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ReloadRequest {
    /// Instances replaced at a time.
    pub parallel: u32,
    /// `--update-env`, as in [`RestartRequest::env`].
    pub env: Option<BTreeMap<String, String>>,
    /// Answer with a stream of [`ReloadEvent`]s, one JSON object per line,
    /// instead of the affected instances at the end.
    pub progress: bool,
}

impl Default for ReloadRequest {
    fn default() -> Self {
        Self {
            parallel: 1,
            env: None,
            progress: false,
        }
    }
}

/// One line of a reload's progress stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum ReloadEvent {
    /// The instances to replace, in order.
    Planned {
        /// Their names.
        instances: Vec<String>,
    },
    /// An instance is being replaced.
    Reloading {
        /// Its name.
        instance: String,
        /// Its place in the rollout, from 1.
        step: usize,
        /// How many instances the rollout replaces.
        total: usize,
    },
    /// An instance was replaced and is ready.
    Replaced {
        /// Its name.
        instance: String,
        /// Its new process.
        pid: Option<u32>,
    },
    /// An instance was not replaced; the rollout stops.
    Failed {
        /// Its name.
        instance: String,
        /// Why.
        error: String,
    },
    /// The rollout is over: each instance's outcome, and the error if it
    /// stopped early.
    Finished {
        /// One per planned instance.
        outcomes: Vec<ReloadOutcome>,
        /// Why the rollout stopped, if it did.
        error: Option<String>,
    },
}

/// What a reload did to one instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReloadOutcome {
    /// The instance.
    pub instance: String,
    /// `replaced`, `failed` or `not_reached`.
    pub outcome: ReloadResult,
    /// Its process now.
    pub pid: Option<u32>,
    /// Why it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The outcome of one instance's reload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReloadResult {
    /// A new process serves.
    Replaced,
    /// The new process was not ready; the previous one (if it could keep
    /// running) serves on.
    Failed,
    /// The rollout stopped before this instance; it runs the previous
    /// version.
    NotReached,
}

/// `info`: one instance in full.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProcessDetail {
    /// The list row.
    #[serde(flatten)]
    pub info: ProcessInfo,
    /// The app's configuration (secret-looking env values redacted).
    pub config: AppConfig,
    /// The program actually executed and its arguments.
    pub command: Vec<String>,
    /// Working directory of the process.
    #[schema(value_type = String)]
    pub cwd: PathBuf,
    /// Where stdout goes.
    #[schema(value_type = String)]
    pub out_log: PathBuf,
    /// Where stderr goes.
    #[schema(value_type = String)]
    pub err_log: PathBuf,
    /// Recent events, oldest first.
    pub history: Vec<HistoryEvent>,
    /// The environment the process gets (inherited, the app's `env`,
    /// pmdaemon's variables), secret-looking values redacted.
    #[serde(default)]
    pub environment: std::collections::BTreeMap<String, String>,
}

/// Which log stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogStream {
    /// Standard output.
    Out,
    /// Standard error.
    Err,
}

impl fmt::Display for LogStream {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogStream::Out => "out",
            LogStream::Err => "err",
        })
    }
}

/// Query of the log routes.
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
pub struct LogsQuery {
    /// How many lines from the end of each file (default 15).
    pub lines: Option<usize>,
    /// Only this stream (default both).
    pub stream: Option<LogStream>,
    /// Keep the response open and stream new lines as [`LogLine`]s, one
    /// JSON object per line.
    #[serde(default)]
    pub follow: bool,
}

/// One line of a followed log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogLine {
    /// Instance name.
    pub instance: String,
    /// Which stream.
    pub stream: LogStream,
    /// The line, without its ending.
    pub line: String,
}

/// The tail of one log file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct LogTail {
    /// Instance name.
    pub instance: String,
    /// Which stream.
    pub stream: LogStream,
    /// The file.
    #[schema(value_type = String)]
    pub path: PathBuf,
    /// The last lines, oldest first, without their line endings.
    pub lines: Vec<String>,
    /// When each line was written (milliseconds since the Unix epoch), as
    /// far as this daemon knows: None for lines written before it opened
    /// the file. Empty when unknown for all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub times: Vec<Option<i64>>,
}

/// Response of the log routes.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct LogsResponse {
    /// One entry per file, in id order, `out` before `err`.
    pub tails: Vec<LogTail>,
}

/// `GET /api/system`: the host and the daemon.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SystemInfo {
    /// CPUs this daemon may use.
    pub cpus: u32,
    /// Host CPU use in percent of all CPUs, once sampled.
    pub cpu_percent: Option<f32>,
    /// Load averages over 1, 5 and 15 minutes.
    pub load: [f64; 3],
    /// Total memory in bytes.
    pub memory_total: u64,
    /// Available memory in bytes.
    pub memory_available: u64,
    /// The daemon's pid.
    pub daemon_pid: u32,
    /// The daemon's resident memory in bytes.
    pub daemon_memory: u64,
    /// Writes of the process table to disk since the daemon started (lines
    /// of `state.journal` and whole-table snapshots; one fsync each).
    #[serde(default)]
    pub state_writes: u64,
}

/// Response of `POST /api/flush` and `POST /api/processes/{target}/flush`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct FlushResponse {
    /// The log files emptied (their rotated siblings were deleted).
    #[schema(value_type = Vec<String>)]
    pub files: Vec<PathBuf>,
}

/// Response of `POST /api/daemon/kill`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct KillResponse {
    /// Instances that were stopped.
    pub stopped: Vec<String>,
    /// The daemon's pid, which exits right after answering.
    pub pid: u32,
}

/// The body of every error response.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    /// One sentence a user can act on.
    pub error: String,
}
