//! The files of one pmdaemon home (`$PMDAEMON_HOME`, default `~/.pmdaemon`).

use std::path::{Path, PathBuf};

/// Where everything of one daemon lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Home {
    root: PathBuf,
}

impl Home {
    /// The home at `root`, made absolute (a relative home would give two
    /// projects the same marks, and change meaning with the directory).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        let root = std::path::absolute(&root).unwrap_or(root);
        Self { root }
    }

    /// `$PMDAEMON_HOME`, else `~/.pmdaemon`, else `./.pmdaemon`.
    pub fn from_env() -> Self {
        if let Some(home) = std::env::var_os("PMDAEMON_HOME").filter(|v| !v.is_empty()) {
            return Self::new(home);
        }
        let base = std::env::var_os("HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from("."));
        Self::new(base.join(".pmdaemon"))
    }

    /// The home directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }
    /// The control socket (mode 0600).
    pub fn socket(&self) -> PathBuf {
        self.root.join("pmdaemon.sock")
    }
    /// The running daemon's pid.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("daemon.pid")
    }
    /// Held (flock) by the running daemon: one daemon per home.
    pub fn lock_file(&self) -> PathBuf {
        self.root.join("daemon.lock")
    }
    /// The daemon's own log.
    pub fn daemon_log(&self) -> PathBuf {
        self.root.join("daemon.log")
    }
    /// The process table.
    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }
    /// The apps `pmdaemon save` wrote, which `resurrect` brings back.
    pub fn dump_file(&self) -> PathBuf {
        self.root.join("dump.json")
    }
    /// The web API's setting (`pmdaemon web`), absent when it is off.
    pub fn web_file(&self) -> PathBuf {
        self.root.join("web.json")
    }
    /// The API key pmdaemon generated or was given (mode 0600).
    pub fn api_key_file(&self) -> PathBuf {
        self.root.join("api-key")
    }
    /// Directory of the apps' log files.
    pub fn logs_dir(&self) -> PathBuf {
        self.root.join("logs")
    }
    /// `logs/<instance>-out.log` or `-err.log`.
    pub fn log_file(&self, instance: &str, stream: crate::api::LogStream) -> PathBuf {
        self.logs_dir().join(format!("{instance}-{stream}.log"))
    }
}
