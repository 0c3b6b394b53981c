//! Every route of the API, written once: the daemon's router registers
//! these paths and the CLI builds its requests from them, so a route cannot
//! exist on one side only. `{target}` stands for an instance, an app, an id
//! or `all` ([`path`] fills it in).

/// `GET`: the daemon's version and pid.
pub const VERSION: &str = "/api/version";
/// `POST`: stop every app (parked), then the daemon.
pub const KILL: &str = "/api/daemon/kill";
/// `POST`: start again what `kill` parked, and the apps of the dump that
/// are not known.
pub const RESURRECT: &str = "/api/resurrect";
/// `POST`: write the apps to `dump.json` ([`super::SaveResponse`]).
pub const SAVE: &str = "/api/save";
/// `GET`: every instance; `POST`: start an app ([`super::StartRequest`]).
pub const PROCESSES: &str = "/api/processes";
/// `POST`: bring the apps of an ecosystem file to it ([`super::ApplyRequest`]).
pub const APPLY: &str = "/api/apply";
/// `GET`: the host and the daemon.
pub const SYSTEM: &str = "/api/system";
/// `GET`: Prometheus metrics.
pub const METRICS: &str = "/metrics";
/// `GET`: the target's instances in full; `DELETE`: delete them.
pub const PROCESS: &str = "/api/processes/{target}";
/// `POST`: start the target.
pub const START: &str = "/api/processes/{target}/start";
/// `POST`: stop the target.
pub const STOP: &str = "/api/processes/{target}/stop";
/// `POST`: restart the target ([`super::RestartRequest`]).
pub const RESTART: &str = "/api/processes/{target}/restart";
/// `POST`: scale an app ([`super::ScaleRequest`]).
pub const SCALE: &str = "/api/processes/{target}/scale";
/// `POST`: zero the restart counters of the target.
pub const RESET: &str = "/api/processes/{target}/reset";
/// `POST`: send a signal to the target's processes ([`super::SignalRequest`]).
pub const SIGNAL: &str = "/api/processes/{target}/signal";
/// `POST`: rolling reload ([`super::ReloadRequest`]).
pub const RELOAD: &str = "/api/processes/{target}/reload";
/// `GET`: the target's log tails, or with `follow=true` a stream.
pub const LOGS: &str = "/api/processes/{target}/logs";
/// `GET`: every instance's log tails, or a stream.
pub const ALL_LOGS: &str = "/api/logs";
/// `POST`: empty every log file.
pub const FLUSH_ALL: &str = "/api/flush";
/// `POST`: empty the target's log files.
pub const FLUSH: &str = "/api/processes/{target}/flush";

/// `route` with its `{target}` filled in.
pub fn path(route: &str, target: &str) -> String {
    route.replace("{target}", target)
}

#[cfg(test)]
mod tests {
    #[test]
    fn targets_are_filled_in() {
        assert_eq!(
            super::path(super::RELOAD, "web-1"),
            "/api/processes/web-1/reload"
        );
        assert_eq!(super::path(super::PROCESSES, "x"), "/api/processes");
    }
}
