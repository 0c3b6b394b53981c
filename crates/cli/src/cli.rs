//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use pmdaemon_core::ports::PortSpec;

mod service;
pub mod values;

pub use service::*;

/// A process manager: keeps apps alive, clustered, logged and measured.
#[derive(Debug, Parser)]
#[command(name = "pmdaemon", version, about, propagate_version = true)]
pub struct Cli {
    /// An ecosystem file (JSON, YAML, TOML or PM2's ecosystem.config.js):
    /// what `start` starts, and the target of `stop`, `restart`, `reload`
    /// and `delete` when they are given none.
    #[arg(long, short = 'c', value_name = "FILE", value_parser = values::parse_config)]
    pub config: Option<std::path::PathBuf>,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// Every verb.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Start an app (a program, a script, or a quoted command line), an
    /// existing stopped app by name, or the ecosystem file of the current
    /// directory (`ecosystem.config.js`, …) when given nothing.
    Start(Box<StartArgs>),
    /// Apply an ecosystem file: start the apps that are missing, restart
    /// (with their new configuration) those that exist.
    #[command(name = "startOrRestart", alias = "start-or-restart")]
    StartOrRestart(Box<StartArgs>),
    /// Apply an ecosystem file: start the apps that are missing, reload
    /// (rolling, with their new configuration) those that exist.
    #[command(
        name = "startOrReload",
        visible_alias = "startOrGracefulReload",
        aliases = ["start-or-reload", "start-or-graceful-reload"]
    )]
    StartOrReload(Box<StartArgs>),
    /// Like start, but in the foreground (for containers; `start` does this
    /// by itself as PID 1): apps' logs on stdout, SIGTERM stops everything,
    /// and it ends when no app is left running.
    Run(Box<StartArgs>),
    /// Stop instances, apps, ids, or all (`stop web worker`).
    Stop(TargetArgs),
    /// Restart instances, apps, ids, or all (`restart web worker`).
    Restart(RestartArgs),
    /// Rolling restart: one instance (or --parallel K) at a time, each
    /// waited for until ready; stops at the first that does not become ready.
    Reload(ReloadArgs),
    /// Change the number of instances of an app: `4`, or `+2` / `-1`.
    Scale(ScaleArgs),
    /// Send a signal to the processes of targets (PM2's `sendSignal`).
    #[command(visible_alias = "sendSignal")]
    Signal(SignalArgs),
    /// Zero the restart counters of targets.
    Reset(TargetArgs),
    /// Stop and forget instances, apps, ids, or all.
    #[command(alias = "del")]
    Delete(TargetArgs),
    /// The process table.
    #[command(visible_aliases = ["ls", "status", "ps", "l"])]
    List(ListArgs),
    /// Every instance in PM2's JSON shape (`pm2 jlist`), for PM2 scripts.
    Jlist,
    /// `jlist`, indented.
    Prettylist,
    /// Everything about an instance or app.
    #[command(visible_aliases = ["show", "describe"])]
    Info(InfoArgs),
    /// The last lines of the logs.
    Logs(LogsArgs),
    /// Empty the log files of an app (or of all) and delete rotated ones.
    Flush(FlushArgs),
    /// A live terminal UI: processes with CPU and memory, the host, logs.
    Monit(MonitArgs),
    /// Check an ecosystem file without starting anything.
    Validate(ValidateArgs),
    /// Write a commented sample ecosystem.config.js in the current
    /// directory (never over an existing file).
    #[command(visible_alias = "ecosystem")]
    Init,
    /// Serve the API over HTTP on TCP (kept across daemon restarts), show
    /// where it is served, or stop serving it.
    Web(WebArgs),
    /// Stop every app gracefully, then the daemon. The apps stay stopped
    /// (`list` shows them) until `pmdaemon resurrect` or a start; a daemon
    /// that crashed instead brings its apps back by itself.
    Kill {
        /// Print what was stopped as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Write the running apps to $PMDAEMON_HOME/dump.json, which
    /// `resurrect` brings back (the table itself is saved on every change).
    #[command(visible_alias = "dump")]
    Save {
        /// Print the dump's path and apps as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Start again every app that `pmdaemon kill` stopped, and the apps of
    /// `save`'s dump that are no longer known (after `delete`).
    Resurrect {
        /// Print the started instances as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Run the daemon in the foreground (normally started on demand).
    Daemon(DaemonArgs),
    /// Start the daemon at boot with a systemd unit, which brings back the
    /// apps that were running.
    Startup(StartupArgs),
    /// Remove the unit `startup` installed.
    Unstartup(UnstartupArgs),
    /// Turn an ecosystem file into Kubernetes manifests, a Compose file or
    /// systemd units.
    Export(ExportArgs),
    /// A shell completion script, on stdout.
    Completions(CompletionsArgs),
    /// The man page (roff), on stdout: `pmdaemon man | man -l -`.
    Man,
}

/// `start`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// What to run: `app.py`, `./worker.sh`, `"python3 -m http.server 8000"`,
    /// an ecosystem file, or the name of an existing app.
    pub script: Option<String>,
    /// With an ecosystem file: only these apps (comma separated).
    #[arg(help_heading = "Ecosystem files", long, value_delimiter = ',')]
    pub only: Vec<String>,
    /// With an ecosystem file: delete apps that came from it but are no
    /// longer in it.
    #[arg(help_heading = "Ecosystem files", long)]
    pub prune: bool,
    /// With an ecosystem file: apps that already run take this command's
    /// environment (otherwise they keep the one they were started with).
    #[arg(help_heading = "Ecosystem files", long)]
    pub update_env: bool,
    /// Arguments passed to the script (after `--`).
    #[arg(last = true)]
    pub args: Vec<String>,
    /// App name (default: the script's name).
    #[arg(help_heading = "Process", long, short = 'n')]
    pub name: Option<String>,
    /// Number of instances: a number, `max` (usable CPUs) or `-1` (all but one).
    #[arg(
        help_heading = "Cluster and ports",
        long,
        short = 'i',
        allow_hyphen_values = true
    )]
    pub instances: Option<String>,
    /// Ports: `3000` (all instances share it), `3000-3003` (instance i gets
    /// the i-th), or `auto:3000-3100` (the first free ones).
    #[arg(
        help_heading = "Cluster and ports",
        long,
        short = 'p',
        value_name = "SPEC",
        value_parser = values::parse_port
    )]
    pub port: Option<PortSpec>,
    /// How the instances share a single port: `socket` (each inherits the
    /// listening socket as fd 3, LISTEN_FDS), `proxy` (each listens on a
    /// private PORT; the daemon forwards), or `auto` (socket for node apps,
    /// proxy otherwise). Also makes one instance a shared-port cluster.
    #[arg(help_heading = "Cluster and ports", long, value_name = "MODE")]
    pub shared_port: Option<pmdaemon_core::config::SharedPort>,
    /// The variable carrying the instance index besides PM2_INSTANCE_ID.
    #[arg(
        help_heading = "Cluster and ports",
        long,
        default_value = "NODE_APP_INSTANCE",
        value_name = "NAME"
    )]
    pub instance_var: String,
    /// `KEY=VALUE`: an environment variable for the app (repeatable); a
    /// bare word such as `production`: merge the file's `env_production`.
    #[arg(help_heading = "Process", long = "env", short = 'e', value_name = "KEY=VALUE|PROFILE", value_parser = values::parse_env)]
    pub env: Vec<EnvArg>,
    /// Working directory (default: the current one).
    #[arg(help_heading = "Process", long)]
    pub cwd: Option<PathBuf>,
    /// Interpreter for the script (`none` executes it directly).
    #[arg(help_heading = "Process", long)]
    pub interpreter: Option<String>,
    /// Grace period between the stop signal and SIGKILL (`1600`, `5s`).
    #[arg(help_heading = "Restarts and stopping", long, value_name = "DURATION")]
    pub kill_timeout: Option<String>,
    /// Delay before each restart (`0`, `500ms`, `2s`).
    #[arg(help_heading = "Restarts and stopping", long, value_name = "DURATION")]
    pub restart_delay: Option<String>,
    /// First delay of an exponential backoff between restarts.
    #[arg(help_heading = "Restarts and stopping", long, value_name = "DURATION")]
    pub exp_backoff_restart_delay: Option<String>,
    /// Unstable restarts in a row before giving up (status errored).
    #[arg(help_heading = "Restarts and stopping", long)]
    pub max_restarts: Option<u32>,
    /// Uptime below which an exit counts as unstable (`1s`).
    #[arg(help_heading = "Restarts and stopping", long, value_name = "DURATION")]
    pub min_uptime: Option<String>,
    /// Do not restart the app when it exits.
    #[arg(help_heading = "Restarts and stopping", long)]
    pub no_autorestart: bool,
    /// Signal that asks the app to stop (default SIGTERM).
    #[arg(help_heading = "Restarts and stopping", long)]
    pub stop_signal: Option<String>,
    /// Exit codes after which the app is not restarted (comma separated).
    #[arg(
        help_heading = "Restarts and stopping",
        long,
        value_delimiter = ',',
        allow_hyphen_values = true
    )]
    pub stop_exit_codes: Vec<i32>,
    /// HTTP health check of each instance; `{PORT}` is its port.
    #[arg(help_heading = "Health and readiness", long, value_name = "URL")]
    pub health_check_url: Option<String>,
    /// Script health check (exit status 0 passes); runs with the instance's
    /// environment.
    #[arg(help_heading = "Health and readiness", long, value_name = "COMMAND")]
    pub health_check_script: Option<String>,
    /// Time between checks (a bare number is seconds; default 30).
    #[arg(help_heading = "Health and readiness", long, value_name = "DURATION")]
    pub health_check_interval: Option<String>,
    /// Time allowed for one check (a bare number is seconds; default 5).
    #[arg(help_heading = "Health and readiness", long, value_name = "DURATION")]
    pub health_check_timeout: Option<String>,
    /// Consecutive failures that restart the instance (default 3).
    #[arg(help_heading = "Health and readiness", long, value_name = "N")]
    pub health_check_retries: Option<u32>,
    /// The app signals readiness with READY=1 on NOTIFY_SOCKET (sd_notify;
    /// `wait_ready` in files).
    #[arg(help_heading = "Health and readiness", long)]
    pub sd_notify: bool,
    /// How long an instance may take to become ready (default 30s).
    #[arg(help_heading = "Health and readiness", long, value_name = "DURATION")]
    pub listen_timeout: Option<String>,
    /// Return only once every instance is ready, showing progress.
    #[arg(help_heading = "Health and readiness", long)]
    pub wait_ready: bool,
    /// How long --wait-ready waits.
    #[arg(
        help_heading = "Health and readiness",
        long,
        value_name = "DURATION",
        default_value = "30s"
    )]
    pub wait_timeout: String,
    /// Prefix every log line with the time (ISO 8601).
    #[arg(help_heading = "Logs", long)]
    pub time: bool,
    /// Prefix every log line with the time in this format
    /// (`YYYY-MM-DD HH:mm:ss` or strftime).
    #[arg(help_heading = "Logs", long, value_name = "FORMAT")]
    pub log_date_format: Option<String>,
    /// `json`: one JSON object per log line.
    #[arg(help_heading = "Logs", long, value_name = "raw|json")]
    pub log_type: Option<String>,
    /// Rotate a log file once it reaches this size (default 10M; 0 never).
    #[arg(help_heading = "Logs", long, value_name = "SIZE")]
    pub log_max_size: Option<String>,
    /// Rotated log files kept (default 10).
    #[arg(help_heading = "Logs", long, value_name = "N")]
    pub log_max_files: Option<u32>,
    /// Gzip rotated log files (`<file>.1.gz`, …).
    #[arg(help_heading = "Logs", long)]
    pub log_compress: bool,
    /// Restart an instance whose process tree uses more memory (`256M`).
    #[arg(
        help_heading = "Restarts and stopping",
        long,
        value_name = "SIZE",
        alias = "max-memory-restart"
    )]
    pub max_memory: Option<String>,
    /// Restart when files change: the app's directory, or the paths given.
    #[arg(help_heading = "Watch and schedule", long, num_args = 0.., value_name = "PATH")]
    pub watch: Option<Vec<String>>,
    /// Names, paths or globs (`*.log`) that never trigger a watch restart
    /// (default node_modules and .git).
    #[arg(
        help_heading = "Watch and schedule",
        long,
        value_delimiter = ',',
        value_name = "PATH"
    )]
    pub ignore_watch: Vec<String>,
    /// Restart on a cron schedule (5 fields, or 6 with seconds).
    #[arg(help_heading = "Watch and schedule", long, value_name = "EXPRESSION")]
    pub cron_restart: Option<String>,
    /// stdout log file (`/dev/null` or `NULL`: none).
    #[arg(
        help_heading = "Logs",
        long = "output",
        short = 'o',
        value_name = "FILE"
    )]
    pub output: Option<String>,
    /// stderr log file (`/dev/null` or `NULL`: none).
    #[arg(help_heading = "Logs", long = "error", value_name = "FILE")]
    pub error: Option<String>,
    /// Also write both streams to this file (alone: `logs/<name>.log` in
    /// the home), besides the out and error logs.
    #[arg(help_heading = "Logs", long = "log", short = 'l', value_name = "FILE", num_args = 0..=1, default_missing_value = "")]
    pub log: Option<String>,
    /// All instances write one set of log files.
    #[arg(help_heading = "Logs", long)]
    pub merge_logs: bool,
    /// Register the app stopped; `pmdaemon start <name>` starts it later.
    #[arg(help_heading = "Process", long)]
    pub no_autostart: bool,
    /// A label to group apps; a namespace is also a target
    /// (`pmdaemon restart <namespace>`) when no app has that name.
    #[arg(help_heading = "Process", long, value_name = "NAME")]
    pub namespace: Option<String>,
    /// Arguments for the interpreter, before the script (`"-u"`,
    /// `"--max-old-space-size=512"`).
    #[arg(
        help_heading = "Process",
        long,
        alias = "interpreter-args",
        value_name = "ARGS",
        allow_hyphen_values = true
    )]
    pub node_args: Option<String>,
    /// Run as this user (name or number); the daemon must run as root.
    #[arg(help_heading = "Process", long, value_name = "USER")]
    pub uid: Option<String>,
    /// Run with this group (name or number); the daemon must run as root.
    #[arg(help_heading = "Process", long, value_name = "GROUP")]
    pub gid: Option<String>,
    /// Print the started instances as JSON.
    #[arg(help_heading = "Process", long)]
    pub json: bool,
}

/// `daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Start with an empty process table (what `run` uses).
    #[arg(long, hide = true)]
    pub fresh: bool,
}

/// A verb acting on targets.
#[derive(Debug, Args)]
pub struct TargetArgs {
    /// Instances (`web-1`), apps (`web`), ids (`3`), `all`, or an
    /// ecosystem file (default: the file given with --config).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Print the affected instances as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `restart`.
#[derive(Debug, Args)]
pub struct RestartArgs {
    /// Instances (`web-1`), apps (`web`), ids (`3`), `all`, or an
    /// ecosystem file (default: the file given with --config).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Other ports for this run only (the saved configuration is kept):
    /// `4000-4003`, `auto:4000-4100`, or `4000` for one instance.
    #[arg(long, short = 'p', value_name = "SPEC", value_parser = values::parse_port)]
    pub port: Option<PortSpec>,
    /// The apps take this command's environment from now on (otherwise
    /// they keep the one they were started with).
    #[arg(long)]
    pub update_env: bool,
    /// Print the affected instances as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `reload`.
#[derive(Debug, Args)]
pub struct ReloadArgs {
    /// Instances, apps, ids, `all`, or an ecosystem file (default: the
    /// file given with --config).
    #[arg(value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Instances replaced at a time.
    #[arg(long, default_value_t = 1)]
    pub parallel: u32,
    /// The apps take this command's environment from now on (otherwise
    /// they keep the one they were started with).
    #[arg(long)]
    pub update_env: bool,
    /// Print each instance's outcome as JSON (`replaced`, `failed`,
    /// `not_reached`, with its pid and error).
    #[arg(long)]
    pub json: bool,
}

/// `scale`.
#[derive(Debug, Args)]
pub struct ScaleArgs {
    /// The app.
    pub app: String,
    /// How many instances it should have (`4`), or how many to add or
    /// remove (`+2`, `-1`).
    #[arg(allow_hyphen_values = true, value_parser = values::parse_scale)]
    pub instances: values::Scale,
    /// Print the app's instances as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `signal`.
#[derive(Debug, Args)]
pub struct SignalArgs {
    /// `SIGUSR2`, `USR2` or a number.
    pub signal: String,
    /// Instances, apps, ids or `all`.
    #[arg(required = true, value_name = "TARGET")]
    pub targets: Vec<String>,
    /// Print the signalled instances as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `flush`.
#[derive(Debug, Args)]
pub struct FlushArgs {
    /// An instance, an app, an id or `all` (default: all).
    pub target: Option<String>,
    /// Print the emptied files as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `monit`.
#[derive(Debug, Args)]
pub struct MonitArgs {
    /// Seconds between refreshes.
    #[arg(long, default_value_t = 2.0)]
    pub interval: f64,
}

/// `validate`.
#[derive(Debug, Args)]
pub struct ValidateArgs {
    /// The ecosystem file.
    pub file: std::path::PathBuf,
    /// Print the apps as pmdaemon reads them (or the problems) as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `list`.
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Every field of every instance, as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// An instance, an app, an id or `all`.
    pub target: String,
    /// As JSON.
    #[arg(long)]
    pub json: bool,
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// An instance, an app, an id or `all` (default: all).
    pub target: Option<String>,
    /// Lines from the end of each file.
    #[arg(long, default_value_t = 15)]
    pub lines: usize,
    /// Only standard error.
    #[arg(long, conflicts_with = "out")]
    pub err: bool,
    /// Only standard output.
    #[arg(long)]
    pub out: bool,
    /// Keep printing new lines as they are written (Ctrl-C ends).
    #[arg(long, short = 'f')]
    pub follow: bool,
    /// The lines alone, without the instance prefix.
    #[arg(long)]
    pub raw: bool,
    /// As JSON: the tails, or with --follow one object per line.
    #[arg(long)]
    pub json: bool,
}

/// A `--env` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvArg {
    /// `KEY=VALUE`.
    Var(String, String),
    /// A profile name.
    Profile(String),
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
