//! The daemon's errors. Each message is one sentence a user can act on; the
//! API turns them into an HTTP status and an [`pmdaemon_core::api::ErrorBody`].

use std::path::PathBuf;

use pmdaemon_core::files::FileError;

/// Everything that can go wrong in the daemon.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
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
    /// A working directory, script or program that cannot be used.
    #[error("{role} {} {problem}", path.display())]
    Unusable {
        /// What the path was meant to be.
        role: PathRole,
        /// The path.
        path: PathBuf,
        /// What is wrong with it.
        problem: PathProblem,
    },
    /// A program name that is neither a file in the working directory nor
    /// on `PATH`.
    #[error("program '{program}' not found: it is not a file in {} and not on PATH", cwd.display())]
    ProgramNotFound {
        /// The name given.
        program: String,
        /// The working directory.
        cwd: PathBuf,
    },
    /// An app of an ecosystem file cannot run (nothing was changed).
    #[error("app '{app}': {source}")]
    AppCannotRun {
        /// The app.
        app: String,
        /// Why.
        #[source]
        source: Box<Error>,
    },
    /// `dump.json` cannot be read as a dump.
    #[error("{} is not a dump pmdaemon can read ({why}); run `pmdaemon save` again", path.display())]
    BadDump {
        /// The dump file.
        path: PathBuf,
        /// What the parser said.
        why: String,
    },
    /// A scale request with both or neither of a count and a change.
    #[error("scale takes either a number of instances or a change (+N/-N)")]
    ScaleAmbiguous,
    /// A signal this system does not have.
    #[error("no signal {signal} on this system")]
    NoSuchSignal {
        /// As given.
        signal: String,
    },
    /// `signal` to a target none of whose instances runs.
    #[error("{target} has no running process to send {signal} to")]
    NothingToSignal {
        /// The target.
        target: String,
        /// The signal.
        signal: String,
    },
    /// Sending a signal failed.
    #[error("cannot send {signal}: {source}")]
    SignalFailed {
        /// The signal.
        signal: String,
        /// Why.
        #[source]
        source: nix::Error,
    },
    /// The instance has no process (it stopped meanwhile).
    #[error("it is not running")]
    NotRunning,
    /// An instance was deleted while it was being acted on.
    #[error("it was deleted")]
    Deleted,
    /// An instance's task ended before it answered (a bug: the daemon
    /// logs it).
    #[error("the task of instance {id} ended unexpectedly")]
    InstanceGone {
        /// The instance.
        id: u32,
    },
    /// A reload's new process did not become ready.
    #[error(transparent)]
    NotReady(#[from] NotReady),
    /// An app's `uid` or `gid` names no user or group of this system.
    #[error("no {kind} named '{name}' on this system")]
    UnknownUser {
        /// `user` or `group`.
        kind: &'static str,
        /// The name as written.
        name: String,
    },
    /// An app run as another user cannot use a feature that needs the
    /// daemon's private home.
    #[error("app '{app}' runs as another user (uid/gid), which cannot use {what}; remove 'uid'/'gid' or that setting")]
    UserCannotReach {
        /// The app.
        app: String,
        /// The feature.
        what: &'static str,
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
    /// A file of the home that cannot be used (or trusted).
    #[error(transparent)]
    File(#[from] FileError),
}

impl Error {
    /// Wraps an I/O error with what was being done to which path (one
    /// definition for both crates: [`FileError::Io`]).
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::File(FileError::io(action, path, source))
    }
}

/// What a path given to run an app was meant to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRole {
    /// `cwd`.
    WorkingDirectory,
    /// The script an interpreter runs.
    Script,
    /// The executable.
    Program,
}

impl std::fmt::Display for PathRole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::WorkingDirectory => "working directory",
            Self::Script => "script",
            Self::Program => "program",
        })
    }
}

/// What is wrong with a [`PathRole`]'s path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathProblem {
    /// Nothing is there.
    Missing,
    /// A file where a directory is needed.
    NotADirectory,
    /// A directory where a file is needed (`what`: "a file", "an
    /// executable").
    IsADirectory {
        /// What was needed.
        needed: &'static str,
    },
    /// No execute permission; `hint` says what to do.
    NotExecutable {
        /// " (chmod +x it)" or the like.
        hint: &'static str,
    },
}

impl std::fmt::Display for PathProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Missing => f.write_str("does not exist"),
            Self::NotADirectory => f.write_str("is not a directory"),
            Self::IsADirectory { needed } => write!(f, "is a directory, not {needed}"),
            Self::NotExecutable { hint } => write!(f, "is not executable{hint}"),
        }
    }
}

/// Why a reload's new process was not put in service.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum NotReady {
    /// It exited first.
    #[error("the new process exited ({reason}) before it was ready")]
    Exited {
        /// How it ended.
        reason: pmdaemon_core::api::ExitReason,
    },
    /// A stop, delete or shutdown came first.
    #[error("interrupted by a stop")]
    Interrupted,
    /// Its time was up.
    #[error("the new process was not ready within {wait_ms} ms{}", match health_error {
        Some(error) => format!(" ({error})"),
        None => String::new(),
    })]
    Timeout {
        /// The time it had.
        wait_ms: u128,
        /// Its last failed health check, if any.
        health_error: Option<String>,
    },
}
