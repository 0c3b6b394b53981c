//! The arguments of the verbs around the daemon rather than its apps:
//! `startup`, `unstartup`, `export`, `completions` and `web`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

/// `startup`.
#[derive(Debug, Args)]
pub struct StartupArgs {
    /// Print the unit instead of installing it (to review it, or install it
    /// by hand where systemd is not running here).
    #[arg(long)]
    pub print: bool,
    /// The user the daemon runs as (default: the one who invoked the
    /// command, also through sudo).
    #[arg(long, value_name = "NAME", conflicts_with = "systemd_user")]
    pub user: Option<String>,
    /// A unit of the user's own systemd instance (`systemctl --user`),
    /// which needs no root; with `loginctl enable-linger` it starts at boot.
    #[arg(long)]
    pub systemd_user: bool,
}

/// `unstartup`.
#[derive(Debug, Args)]
pub struct UnstartupArgs {
    /// The user whose unit to remove (default: the invoking one).
    #[arg(long, value_name = "NAME", conflicts_with = "systemd_user")]
    pub user: Option<String>,
    /// Remove the unit of the user's own systemd instance.
    #[arg(long)]
    pub systemd_user: bool,
}

/// `export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// The target.
    #[command(subcommand)]
    pub target: ExportTarget,
}

/// What `export` writes.
#[derive(Debug, Subcommand)]
pub enum ExportTarget {
    /// A Deployment per app (and a Service per app with a port), as YAML on
    /// stdout.
    Kubernetes {
        /// The ecosystem file.
        file: PathBuf,
        /// The container image that holds the apps.
        #[arg(long, value_name = "IMAGE", default_value = "app:latest")]
        image: String,
        /// `--env <profile>`: merge the file's `env_<profile>`.
        #[arg(long, value_name = "PROFILE")]
        env: Option<String>,
    },
    /// A Compose file with a service per app, on stdout.
    Compose {
        /// The ecosystem file.
        file: PathBuf,
        /// The container image that holds the apps.
        #[arg(long, value_name = "IMAGE", default_value = "app:latest")]
        image: String,
        /// `--env <profile>`: merge the file's `env_<profile>`.
        #[arg(long, value_name = "PROFILE")]
        env: Option<String>,
    },
    /// A systemd template unit per app (`<app>@.service`, `%i` = instance),
    /// written to a directory.
    Systemd {
        /// The ecosystem file.
        file: PathBuf,
        /// Where to write the units.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// `--env <profile>`: merge the file's `env_<profile>`.
        #[arg(long, value_name = "PROFILE")]
        env: Option<String>,
    },
}

/// `completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// bash, zsh, fish, elvish or powershell.
    pub shell: clap_complete::Shell,
}

/// `web`.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// The address to listen on (an IP address, or localhost). Any but a
    /// loopback address needs --api-key or --api-key-file.
    #[arg(long, value_name = "ADDRESS", default_value = "127.0.0.1")]
    pub host: String,
    /// The port.
    #[arg(long, default_value_t = pmdaemon_core::web::DEFAULT_PORT)]
    pub port: u16,
    /// The key every client must send (`Authorization: Bearer KEY` or
    /// `X-API-Key: KEY`); kept in $PMDAEMON_HOME/api-key. Without a key,
    /// one is generated and printed once.
    #[arg(long, value_name = "KEY", conflicts_with = "api_key_file")]
    pub api_key: Option<String>,
    /// A file holding the key (read whenever the daemon starts serving).
    #[arg(long, value_name = "PATH")]
    pub api_key_file: Option<PathBuf>,
    /// Show where the API is served.
    #[arg(long, conflicts_with_all = ["stop", "host", "port", "api_key", "api_key_file"])]
    pub status: bool,
    /// Stop serving the API on TCP (the Unix socket stays).
    #[arg(long, conflicts_with_all = ["host", "port", "api_key", "api_key_file"])]
    pub stop: bool,
    /// With --status: as JSON.
    #[arg(long, requires = "status")]
    pub json: bool,
}
