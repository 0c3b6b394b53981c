//! The daemon's errors. Each message is one sentence a user can act on; the
//! API turns them into an HTTP status and an [`pmdaemon_core::api::ErrorBody`].

use std::path::PathBuf;

/// Everything that can go wrong in the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file or directory operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write", …).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// Another daemon holds this home.
    #[error("a pmdaemon daemon is already running for {} (pid {pid})", home.display())]
    AlreadyRunning {
        /// The home.
        home: PathBuf,
        /// Its pid, when known.
        pid: String,
    },
    /// No instance, app or id matches.
    #[error("no process or app named '{target}' ({})", match nearest {
        Some(name) => format!("did you mean '{name}'?"),
        None => "see `pmdaemon list`".to_string(),
    })]
    UnknownTarget {
        /// What was asked for.
        target: String,
        /// The known name most like it.
        nearest: Option<String>,
    },
    /// An app with that name exists.
    #[error("an app named '{name}' already exists: choose another --name, or use `pmdaemon restart {name}`")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// A port is held by another app or program.
    #[error("port {port} is already used by {holder}")]
    PortInUse {
        /// The port.
        port: u16,
        /// Who holds it.
        holder: String,
    },
    /// A port spec has no room left.
    #[error("{0}")]
    NoPorts(String),
    /// The program to run does not exist or cannot be executed.
    #[error("{0}")]
    BadCommand(String),
    /// An app's `uid` or `gid` names no user or group of this system.
    #[error("no {kind} named '{name}' on this system")]
    UnknownUser {
        /// `user` or `group`.
        kind: &'static str,
        /// The name as written.
        name: String,
    },
    /// An app asks to run as another user or group, and the daemon is not
    /// root.
    #[error("cannot run as uid {uid} / gid {gid}: the daemon runs as uid {daemon_uid}, and only a daemon run as root can switch users; remove 'uid'/'gid' or run pmdaemon as root")]
    CannotSwitchUser {
        /// The uid asked for.
        uid: u32,
        /// The gid asked for.
        gid: u32,
        /// The daemon's own uid.
        daemon_uid: u32,
    },
    /// A rolling reload stopped at an instance that did not become ready;
    /// the instances not replaced run the previous version.
    #[error("reload stopped: {instance} did not become ready within {wait_ms} ms ({why}); {replaced} of {total} instances were replaced, {left} still run the previous version")]
    ReloadAborted {
        /// The instance that was not ready.
        instance: String,
        /// How long it was given.
        wait_ms: u128,
        /// Why it was not ready.
        why: String,
        /// Instances replaced before it.
        replaced: usize,
        /// Instances the reload covered.
        total: usize,
        /// Instances that still run the previous version.
        left: usize,
    },
    /// `scale <app> 0`.
    #[error(
        "scaling {app} to 0 would delete it; use `pmdaemon stop {app}` or `pmdaemon delete {app}`"
    )]
    ScaleToZero {
        /// The app.
        app: String,
    },
    /// Scaling would create an instance whose name another app or instance
    /// has.
    #[error("scaling {app} to {instances} would create an instance named {name}, which is already the name of an app or instance; rename one of them")]
    NameClash {
        /// The app scaled.
        app: String,
        /// The count asked for.
        instances: u32,
        /// The name that clashes.
        name: String,
    },
    /// Scaling an app that serves its single port alone.
    #[error("{app} serves port {port} alone; to share it among {instances} instances, start it as a cluster (--instances {instances}, or exec_mode \"cluster\" in its file)")]
    PortNotShared {
        /// The app.
        app: String,
        /// Its port.
        port: u16,
        /// The count asked for.
        instances: u32,
    },
    /// `restart --port` of a shared-port cluster.
    #[error("{app} is a shared-port cluster: all its instances serve port {port}, which --port cannot change for one run; delete it and start it on the new port")]
    SharedPortFixed {
        /// The app.
        app: String,
        /// Its shared port.
        port: u16,
    },
    /// `restart --port` across several apps.
    #[error("--port applies to the instances of one app; name that app or one of its instances")]
    PortsForOneApp,
    /// User input that does not make sense.
    #[error(transparent)]
    Invalid(#[from] pmdaemon_core::Error),
    /// fork/exec failed.
    #[error("could not start {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The web API cannot be served as asked.
    #[error("{0}")]
    Web(String),
    /// The daemon is shutting down and takes no new work.
    #[error("the daemon is shutting down")]
    ShuttingDown,
    /// A home or socket someone else could have planted or changed.
    #[error("refusing to use {}: {reason}", path.display())]
    Untrusted {
        /// The file or directory.
        path: PathBuf,
        /// Who owns it or who can write it, and what to do.
        reason: String,
    },
}

impl Error {
    /// Wraps an I/O error with what was being done to which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
