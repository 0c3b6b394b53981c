//! Every endpoint of the API, defined once: its method, its route (from
//! [`super::routes`]), the request it takes and the reply it gives. The
//! daemon registers its handlers through these types (a handler whose body
//! or reply does not match its endpoint does not compile) and the CLI calls
//! them through the same types, so neither side can drift from the other.
//!
//! A `GET` endpoint's request travels as the query string; any other's as a
//! JSON body. `()` means none. A few answers are streams (the logs with
//! `follow`, a reload with `progress`): their endpoint names the reply of
//! the ordinary answer, and the stream's items are documented on it.

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::routes;
use super::{
    ApplyRequest, ApplyResponse, FlushResponse, KillResponse, LogsQuery, LogsResponse,
    ProcessDetail, ProcessInfo, ReloadRequest, RestartRequest, SaveResponse, ScaleRequest,
    SignalRequest, StartRequest, SystemInfo, VersionInfo,
};
use crate::web::{WebSettings, WebStatus, WEB_ROUTE};

/// The HTTP methods the API uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// Reads; the request is the query string.
    Get,
    /// Changes; the request is a JSON body.
    Post,
    /// Removes.
    Delete,
}

impl Method {
    /// The method as HTTP spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
            Self::Delete => "DELETE",
        }
    }
}

/// Where a `GET` endpoint's request travels: the query string.
#[derive(Debug, Clone, Copy)]
pub struct InQuery;

/// Where any other endpoint's request travels: a JSON body.
#[derive(Debug, Clone, Copy)]
pub struct InBody;

/// One endpoint of the API.
pub trait Endpoint {
    /// Its method.
    const METHOD: Method;
    /// Where its request travels ([`InQuery`] for `GET`, else [`InBody`]),
    /// as a type, so that a handler reading it from the wrong place does
    /// not compile.
    type Wire;
    /// Its route; `{target}` stands for an instance, an app, an id or `all`.
    const ROUTE: &'static str;
    /// What it takes: the query string of a `GET`, else the JSON body.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// What it answers (JSON).
    type Reply: Serialize + DeserializeOwned + Send + 'static;

    /// Whether its route names a target.
    fn takes_target() -> bool {
        Self::ROUTE.contains("{target}")
    }
}

macro_rules! wire {
    (Get) => {
        InQuery
    };
    (Post) => {
        InBody
    };
    (Delete) => {
        InBody
    };
}

macro_rules! endpoints {
    ($(
        $(#[$doc:meta])*
        $name:ident: $method:ident $route:expr, $request:ty => $reply:ty;
    )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy)]
        pub struct $name;

        impl Endpoint for $name {
            const METHOD: Method = Method::$method;
            type Wire = wire!($method);
            const ROUTE: &'static str = $route;
            type Request = $request;
            type Reply = $reply;
        }
    )*
        /// Every endpoint: its name, method and route.
        pub const ALL: &[(&str, Method, &str)] = &[$((stringify!($name), Method::$method, $route)),*];
    };
}

endpoints! {
    /// The daemon's version and pid.
    Version: Get routes::VERSION, () => VersionInfo;
    /// Stops every app (parked), then the daemon.
    Kill: Post routes::KILL, () => KillResponse;
    /// Starts again what `kill` parked.
    Resurrect: Post routes::RESURRECT, () => Vec<ProcessInfo>;
    /// Every instance.
    List: Get routes::PROCESSES, () => Vec<ProcessInfo>;
    /// Registers and starts a new app.
    StartApp: Post routes::PROCESSES, StartRequest => Vec<ProcessInfo>;
    /// Brings the apps of an ecosystem file to it.
    Apply: Post routes::APPLY, ApplyRequest => ApplyResponse;
    /// The host and the daemon.
    System: Get routes::SYSTEM, () => SystemInfo;
    /// The target's instances in full.
    Info: Get routes::PROCESS, () => Vec<ProcessDetail>;
    /// Deletes the target.
    Delete: Delete routes::PROCESS, () => Vec<ProcessInfo>;
    /// Starts the target (an app pmdaemon knows).
    Start: Post routes::START, () => Vec<ProcessInfo>;
    /// Stops the target.
    Stop: Post routes::STOP, () => Vec<ProcessInfo>;
    /// Restarts the target; the body may be left out.
    Restart: Post routes::RESTART, RestartRequest => Vec<ProcessInfo>;
    /// Changes an app's number of instances.
    Scale: Post routes::SCALE, ScaleRequest => Vec<ProcessInfo>;
    /// Zeroes the target's restart counters.
    Reset: Post routes::RESET, () => Vec<ProcessInfo>;
    /// Sends a signal to each running process of the target.
    Signal: Post routes::SIGNAL, SignalRequest => Vec<ProcessInfo>;
    /// Writes the running apps to the dump `resurrect` reads.
    Save: Post routes::SAVE, () => SaveResponse;
    /// Rolling reload; the body may be left out. With `progress`, the answer
    /// is a stream of [`super::ReloadEvent`] lines ending with `finished`.
    Reload: Post routes::RELOAD, ReloadRequest => Vec<ProcessInfo>;
    /// The target's log tails; with `follow`, a stream of [`super::LogLine`]s.
    Logs: Get routes::LOGS, LogsQuery => LogsResponse;
    /// Every instance's log tails; with `follow`, a stream of
    /// [`super::LogLine`]s.
    AllLogs: Get routes::ALL_LOGS, LogsQuery => LogsResponse;
    /// Empties every log file.
    FlushAll: Post routes::FLUSH_ALL, () => FlushResponse;
    /// Empties the target's log files.
    Flush: Post routes::FLUSH, () => FlushResponse;
    /// What the TCP door serves (Unix socket only).
    WebStatusOf: Get WEB_ROUTE, () => WebStatus;
    /// Serves the TCP door with these settings (Unix socket only).
    WebSet: Post WEB_ROUTE, WebSettings => WebStatus;
    /// Closes the TCP door and forgets its setting (Unix socket only).
    WebUnset: Delete WEB_ROUTE, () => WebStatus;
}

/// `E`'s path for `target` (ignored when its route names none).
pub fn path<E: Endpoint>(target: &str) -> String {
    routes::path(E::ROUTE, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endpoint_knows_whether_it_names_a_target() {
        assert!(Stop::takes_target());
        assert!(!List::takes_target());
        assert_eq!(path::<Reload>("web-1"), "/api/processes/web-1/reload");
        assert_eq!(path::<List>("ignored"), "/api/processes");
        assert_eq!(Delete::METHOD.as_str(), "DELETE");
        assert!(ALL.contains(&("Scale", Method::Post, routes::SCALE)));
    }
}
