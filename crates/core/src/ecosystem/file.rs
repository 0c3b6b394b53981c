//! The app object as it is written in an ecosystem file: every field PM2 and
//! PMDaemon users write, with the loose types they write them in. The JSON
//! Schema in `schema/ecosystem.schema.json` is generated from these types.

use std::borrow::Cow;
use std::collections::BTreeMap;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::{Deserialize, Deserializer};

use crate::ports::PortSpec;
use crate::units::{parse_duration_ms, parse_seconds_ms, parse_size};

/// An ecosystem file: `{"apps": [...]}`, or a single app object.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
#[schemars(title = "pmdaemon ecosystem file")]
pub enum EcosystemFile {
    /// Several apps.
    Apps {
        /// The apps.
        apps: Vec<AppFile>,
    },
    /// One app.
    App(Box<AppFile>),
}

/// One app. Besides these fields, `env_<profile>` objects are merged over
/// `env` by `--env <profile>`.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
#[schemars(extend("patternProperties" = {
    "^env_.+$": { "type": "object", "additionalProperties": true }
}))]
pub struct AppFile {
    /// App name; instances are `<name>-0`, `<name>-1`, …
    pub name: Option<String>,
    /// Program or script to run.
    pub script: Option<String>,
    /// Arguments: a list, or one string split like a shell would.
    pub args: Option<Args>,
    /// Working directory, relative to the file's directory.
    pub cwd: Option<String>,
    /// Environment variables.
    pub env: Option<BTreeMap<String, EnvValue>>,
    /// A number, `"max"` (usable CPUs) or -1 (all but one); 0 means max.
    pub instances: Option<Instances>,
    /// `fork` or `cluster`.
    pub exec_mode: Option<ExecModeName>,
    /// `3000`, `"3000-3003"` or `"auto:3000-3100"`. A single port with
    /// several instances (or `exec_mode: cluster`) is shared by them all.
    pub port: Option<PortSpec>,
    /// How a shared port is shared: `auto` (socket for node apps, else
    /// proxy), `socket` (every instance inherits the listening socket as fd
    /// 3, `LISTEN_FDS`), or `proxy` (the daemon forwards to each instance's
    /// private `PORT`).
    pub shared_port: Option<SharedPortName>,
    /// Interpreter (`none` executes the script directly).
    pub interpreter: Option<String>,
    /// Arguments given to the interpreter before the script (PM2's
    /// `node_args`): a list, or one string split like a shell would.
    pub interpreter_args: Option<Args>,
    /// Start the app when the file is applied (false: registered, stopped).
    pub autostart: Option<bool>,
    /// Run as this user (a name or a number); needs a daemon run as root.
    pub uid: Option<Id>,
    /// Run with this group (a name or a number).
    pub gid: Option<Id>,
    /// Restart when the process exits.
    pub autorestart: Option<bool>,
    /// Unstable restarts in a row before the instance is errored.
    pub max_restarts: Option<u32>,
    /// Uptime below which an exit is unstable.
    pub min_uptime: Option<Millis>,
    /// Delay before a restart.
    pub restart_delay: Option<Millis>,
    /// First delay of an exponential backoff between restarts.
    pub exp_backoff_restart_delay: Option<Millis>,
    /// Grace period between the stop signal and SIGKILL.
    pub kill_timeout: Option<Millis>,
    /// How long an instance may take to become ready.
    pub listen_timeout: Option<Millis>,
    /// Signal that asks the app to stop.
    pub stop_signal: Option<String>,
    /// Exit codes after which the app is not restarted.
    pub stop_exit_codes: Option<ExitCodes>,
    /// Restart an instance whose process tree uses more memory (`512M`).
    pub max_memory_restart: Option<Size>,
    /// Health check of every instance.
    pub health_check: Option<HealthCheckFile>,
    /// Wait for `READY=1` on `NOTIFY_SOCKET` or `process.send('ready')`.
    pub wait_ready: Option<bool>,
    /// Stop a Node app with the IPC message `'shutdown'`.
    pub shutdown_with_message: Option<bool>,
    /// Restart on file changes: true, or the paths to watch.
    pub watch: Option<Watch>,
    /// Paths that never trigger a restart.
    pub ignore_watch: Option<Vec<String>>,
    /// Quiet time after a burst of changes.
    pub watch_delay: Option<Millis>,
    /// Cron expression on which to restart.
    pub cron_restart: Option<String>,
    /// stdout log file.
    pub out_file: Option<String>,
    /// stderr log file.
    pub error_file: Option<String>,
    /// A file that gets stdout and stderr too, besides `out_file` and
    /// `error_file`; `true` is `logs/<name>.log` in pmdaemon's home.
    pub log_file: Option<LogFileValue>,
    /// Timestamp format of log lines.
    pub log_date_format: Option<String>,
    /// All instances write one pair of log files.
    pub merge_logs: Option<bool>,
    /// Prefix log lines with the time.
    pub time: Option<bool>,
    /// `raw` or `json`.
    pub log_type: Option<LogTypeName>,
    /// Rotate a log file at this size (`10M`).
    pub log_max_size: Option<Size>,
    /// Rotated log files kept.
    pub log_max_files: Option<u32>,
    /// Gzip rotated log files (`<file>.1.gz`, …).
    pub log_compress: Option<bool>,
    /// A label to group apps.
    pub namespace: Option<String>,
    /// Variable carrying the instance index (default `NODE_APP_INSTANCE`).
    pub instance_var: Option<String>,
    /// An environment variable (e.g. `PORT`) that instance i gets as its
    /// value in `env` plus i (PM2's `increment_var`).
    pub increment_var: Option<String>,
}

/// The `health_check` block. A number for `timeout` or `interval` is
/// seconds, as in PMDaemon's documentation.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct HealthCheckFile {
    /// `http`, `tcp` or `script`.
    pub check_type: Option<CheckTypeName>,
    /// URL of http checks; `{PORT}` is the instance's port.
    pub url: Option<String>,
    /// Command of script checks.
    pub script: Option<String>,
    /// Time allowed for one check.
    pub timeout: Option<Seconds>,
    /// Time between checks.
    pub interval: Option<Seconds>,
    /// Consecutive failures that restart the instance.
    pub retries: Option<u32>,
    /// Whether the check runs.
    pub enabled: Option<bool>,
}

/// `fork` or `cluster` (PM2 also writes `fork_mode`, `cluster_mode`).
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
pub enum ExecModeName {
    /// One process per instance.
    #[serde(rename = "fork", alias = "fork_mode")]
    Fork,
    /// One process per instance, for PM2 compatibility.
    #[serde(rename = "cluster", alias = "cluster_mode")]
    Cluster,
}

/// How a shared port is shared.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SharedPortName {
    /// Socket for node apps, proxy otherwise.
    Auto,
    /// Every instance inherits the listening socket.
    Socket,
    /// The daemon forwards connections to each instance's private port.
    Proxy,
}

/// Log line formats.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogTypeName {
    /// As written.
    Raw,
    /// One JSON object per line.
    Json,
}

/// Kinds of health check.
#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum CheckTypeName {
    /// HTTP GET, 2xx passes.
    Http,
    /// TCP connect.
    Tcp,
    /// Script exit status 0.
    Script,
}

/// Arguments as a list or a command-line string.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum Args {
    /// `["--port", "3000"]` (numbers and booleans are written out).
    List(Vec<String>),
    /// `"--port 3000"`.
    Line(String),
}

/// `true`, or the paths to watch (one path may be a string).
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum Watch {
    /// Watch the app's directory, or nothing.
    Enabled(bool),
    /// Watch these paths.
    Paths(Vec<String>),
}

/// One exit code or a list.
#[derive(Debug, Clone, JsonSchema)]
#[serde(untagged)]
pub enum ExitCodes {
    /// `0`.
    One(i32),
    /// `[0, 42]`.
    Many(Vec<i32>),
}

impl<'de> Deserialize<'de> for Args {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(line) => Ok(Args::Line(line)),
            serde_json::Value::Array(items) => items
                .into_iter()
                .map(|item| scalar_text(&item))
                .collect::<Option<Vec<_>>>()
                .map(Args::List)
                .ok_or_else(|| {
                    serde::de::Error::custom(
                        "arguments must be strings or numbers, not lists or objects",
                    )
                }),
            other => Err(serde::de::Error::custom(format!(
                "expected a list of arguments or one string of them, not {}",
                kind(&other)
            ))),
        }
    }
}

impl<'de> Deserialize<'de> for Watch {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let invalid = |found: &serde_json::Value| {
            serde::de::Error::custom(format!(
                "expected true, false, a path or a list of paths, not {}",
                kind(found)
            ))
        };
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Bool(flag) => Ok(Watch::Enabled(flag)),
            serde_json::Value::String(path) => Ok(Watch::Paths(vec![path])),
            serde_json::Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| invalid(item))
                })
                .collect::<Result<_, _>>()
                .map(Watch::Paths),
            other => Err(invalid(&other)),
        }
    }
}

impl<'de> Deserialize<'de> for ExitCodes {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let code = |value: &serde_json::Value| {
            value
                .as_i64()
                .or_else(|| value.as_str().and_then(|s| s.trim().parse().ok()))
                .and_then(|n| i32::try_from(n).ok())
                .ok_or_else(|| {
                    serde::de::Error::custom(format!(
                        "expected an exit code or a list of them, not {value}"
                    ))
                })
        };
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Array(items) => items
                .iter()
                .map(code)
                .collect::<Result<_, _>>()
                .map(ExitCodes::Many),
            one => code(&one).map(ExitCodes::One),
        }
    }
}

/// A string, number or boolean as text; `None` for lists and objects.
fn scalar_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        serde_json::Value::Bool(flag) => Some(flag.to_string()),
        _ => None,
    }
}

/// A user or group: a name, or a number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Id(pub String);

impl<'de> Deserialize<'de> for Id {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::String(name) if !name.trim().is_empty() => {
                Ok(Id(name.trim().to_string()))
            }
            serde_json::Value::Number(number) if number.is_u64() => Ok(Id(number.to_string())),
            other => Err(serde::de::Error::custom(format!(
                "expected a user or group name or number, not {other}"
            ))),
        }
    }
}

impl JsonSchema for Id {
    fn schema_name() -> Cow<'static, str> {
        "Id".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "integer"] })
    }
}

/// `log_file`: a path, or `true` for the default combined log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogFileValue {
    /// `logs/<name>.log` in pmdaemon's home.
    Default,
    /// No combined log (`false`).
    Off,
    /// This file.
    Path(String),
}

impl<'de> Deserialize<'de> for LogFileValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match serde_json::Value::deserialize(deserializer)? {
            serde_json::Value::Bool(true) => Ok(LogFileValue::Default),
            serde_json::Value::Bool(false) => Ok(LogFileValue::Off),
            serde_json::Value::String(path) => Ok(LogFileValue::Path(path)),
            other => Err(serde::de::Error::custom(format!(
                "expected a file path or true, not {}",
                kind(&other)
            ))),
        }
    }
}

impl JsonSchema for LogFileValue {
    fn schema_name() -> Cow<'static, str> {
        "LogFile".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "boolean"] })
    }
}

/// An environment value; numbers and booleans become strings, lists and
/// objects their JSON (as PM2 passes them), null `"null"` (as node does).
#[derive(Debug, Clone)]
pub struct EnvValue(pub String);

impl<'de> Deserialize<'de> for EnvValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        Ok(Self(
            scalar_text(&value).unwrap_or_else(|| value.to_string()),
        ))
    }
}

impl JsonSchema for EnvValue {
    fn schema_name() -> Cow<'static, str> {
        "EnvValue".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": ["string", "number", "boolean", "object", "array", "null"] })
    }
}

/// Instance count: a number, `"max"`, or -1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    /// Exactly this many.
    Count(u32),
    /// As many as usable CPUs (also written 0).
    Max,
    /// Usable CPUs minus one, at least one (written -1).
    AllButOne,
}

impl<'de> Deserialize<'de> for Instances {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let text = match &value {
            serde_json::Value::Number(number) => number.to_string(),
            serde_json::Value::String(text) => text.trim().to_string(),
            other => {
                return Err(serde::de::Error::custom(format!(
                    "instances must be a number, \"max\" or -1, not {}",
                    kind(other)
                )))
            }
        };
        match text.as_str() {
            "max" | "0" => Ok(Instances::Max),
            "-1" => Ok(Instances::AllButOne),
            _ => text.parse::<u32>().map(Instances::Count).map_err(|_| {
                serde::de::Error::custom(format!(
                    "instances must be a number, \"max\" or -1, not {value}"
                ))
            }),
        }
    }
}

impl JsonSchema for Instances {
    fn schema_name() -> Cow<'static, str> {
        "Instances".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "anyOf": [
            { "type": "integer", "minimum": -1 },
            { "type": "string", "pattern": "^(max|-1|[0-9]+)$|\\$\\{" }
        ] })
    }
}

/// A duration: a number of milliseconds, or a string with a unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Millis(pub u64);

/// A duration where a bare number is seconds (inside `health_check`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seconds(pub u64);

/// A size: bytes, or a string such as `512M`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

fn number_or_text<'de, D: Deserializer<'de>>(
    deserializer: D,
    what: &str,
) -> Result<Result<f64, String>, D::Error> {
    match serde_json::Value::deserialize(deserializer)? {
        serde_json::Value::Number(number) => match number.as_f64() {
            Some(value) if value >= 0.0 => Ok(Ok(value)),
            _ => Err(serde::de::Error::custom(format!(
                "{what} must not be negative, got {number}"
            ))),
        },
        serde_json::Value::String(text) => Ok(Err(text)),
        other => Err(serde::de::Error::custom(format!(
            "{what} must be a number or a string such as \"5s\", not {}",
            kind(&other)
        ))),
    }
}

impl<'de> Deserialize<'de> for Millis {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match number_or_text(deserializer, "a duration")? {
            Ok(millis) => Ok(Millis(millis.round() as u64)),
            Err(text) => parse_duration_ms(&text)
                .map(Millis)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Seconds {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match number_or_text(deserializer, "a duration")? {
            Ok(seconds) => Ok(Seconds((seconds * 1000.0).round() as u64)),
            Err(text) => parse_seconds_ms(&text)
                .map(Seconds)
                .map_err(serde::de::Error::custom),
        }
    }
}

impl<'de> Deserialize<'de> for Size {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        match number_or_text(deserializer, "a size")? {
            Ok(bytes) => Ok(Size(bytes.round() as u64)),
            Err(text) => parse_size(&text)
                .map(Size)
                .map_err(serde::de::Error::custom),
        }
    }
}

macro_rules! string_or_number_schema {
    ($type:ty, $name:literal, $pattern:literal) => {
        impl JsonSchema for $type {
            fn schema_name() -> Cow<'static, str> {
                $name.into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                json_schema!({ "anyOf": [
                    { "type": "number", "minimum": 0 },
                    { "type": "string", "pattern": $pattern }
                ] })
            }
        }
    };
}

// A string holding `${` is a placeholder, checked once it is replaced.
string_or_number_schema!(Millis, "Duration", "^[0-9.]+\\s*(ms|s|m|min|h)?$|\\$\\{");
string_or_number_schema!(
    Seconds,
    "DurationSeconds",
    "^[0-9.]+\\s*(ms|s|m|min|h)?$|\\$\\{"
);
string_or_number_schema!(Size, "Size", "^[0-9.]+\\s*([kKmMgG][bB]?)?$|\\$\\{");

impl JsonSchema for PortSpec {
    fn schema_name() -> Cow<'static, str> {
        "PortSpec".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "anyOf": [
            { "type": "integer", "minimum": 1, "maximum": 65535 },
            { "type": "string", "pattern": "^(auto:)?[0-9]+(-[0-9]+)?$|\\$\\{" }
        ] })
    }
}

/// What kind of JSON value this is, for messages.
pub fn kind(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "a list",
        serde_json::Value::Object(_) => "an object",
    }
}
