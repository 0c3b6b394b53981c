//! What happens after an instance's process exits: a pure function of the
//! exit, the uptime, what the user asked for and the app's configuration,
//! so that every branch of the restart policy is tested on its own.

use std::time::Duration;

use pmdaemon_core::api::{ExitReason, Status};
use pmdaemon_core::config::AppConfig;

use crate::store::Desired;

/// The decision after an exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum AfterExit {
    /// The instance stays down with this status; `why` goes to its history
    /// (as `event`, `reason`) when there is something to say.
    Stay {
        status: Status,
        why: Option<(&'static str, String)>,
    },
    /// It is restarted; `unstable` when it ran shorter than `min_uptime`
    /// (one more unstable restart in a row), else the count starts over.
    Restart { unstable: bool },
}

/// PM2's policy: what the user stopped stays stopped; `autorestart: false`
/// leaves it down (stopped after exit code 0, errored otherwise); an exit
/// code in `stop_exit_codes` means done; `max_restarts` unstable restarts in
/// a row (each up less than `min_uptime`) make it errored.
pub(super) fn after_exit(
    reason: ExitReason,
    uptime: Duration,
    desired: Desired,
    unstable_restarts: u32,
    config: &AppConfig,
) -> AfterExit {
    let stay = |status, why| AfterExit::Stay { status, why };
    if desired != Desired::Running {
        return stay(Status::Stopped, None);
    }
    if !config.autorestart {
        let status = match reason {
            ExitReason::Code(0) => Status::Stopped,
            _ => Status::Errored,
        };
        return stay(status, Some(("not restarted", "autorestart is off".into())));
    }
    if let ExitReason::Code(code) = reason {
        if config.stop_exit_codes.contains(&code) {
            return stay(
                Status::Stopped,
                Some((
                    "not restarted",
                    format!("exit code {code} is in stop_exit_codes"),
                )),
            );
        }
    }
    let unstable = uptime < Duration::from_millis(config.min_uptime);
    if unstable && unstable_restarts >= config.max_restarts {
        return stay(
            Status::Errored,
            Some((
                "errored",
                format!(
                    "{unstable_restarts} unstable restarts (each up less than min_uptime {} ms); not restarting",
                    config.min_uptime
                ),
            )),
        );
    }
    AfterExit::Restart { unstable }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> AppConfig {
        AppConfig {
            min_uptime: 1000,
            max_restarts: 3,
            stop_exit_codes: vec![42],
            ..AppConfig::default()
        }
    }

    const LONG: Duration = Duration::from_secs(60);
    const SHORT: Duration = Duration::from_millis(10);

    fn status(decision: AfterExit) -> Option<Status> {
        match decision {
            AfterExit::Stay { status, .. } => Some(status),
            AfterExit::Restart { .. } => None,
        }
    }

    #[test]
    fn what_the_user_stopped_or_parked_stays_down_whatever_the_exit() {
        for desired in [Desired::Stopped, Desired::Parked] {
            let decision = after_exit(ExitReason::Code(1), SHORT, desired, 0, &config());
            assert_eq!(
                decision,
                AfterExit::Stay {
                    status: Status::Stopped,
                    why: None
                }
            );
        }
    }

    #[test]
    fn without_autorestart_a_clean_exit_is_stopped_and_a_failure_errored() {
        let off = AppConfig {
            autorestart: false,
            ..config()
        };
        let run = |reason| status(after_exit(reason, LONG, Desired::Running, 0, &off));
        assert_eq!(run(ExitReason::Code(0)), Some(Status::Stopped));
        assert_eq!(run(ExitReason::Code(3)), Some(Status::Errored));
        assert_eq!(run(ExitReason::Signal(9)), Some(Status::Errored));
    }

    #[test]
    fn an_exit_code_in_stop_exit_codes_means_done() {
        let decision = after_exit(ExitReason::Code(42), SHORT, Desired::Running, 0, &config());
        assert_eq!(status(decision), Some(Status::Stopped));
        // A signal is never an exit code.
        let decision = after_exit(ExitReason::Signal(42), LONG, Desired::Running, 0, &config());
        assert_eq!(decision, AfterExit::Restart { unstable: false });
    }

    #[test]
    fn short_runs_count_as_unstable_until_max_restarts_then_errored() {
        for count in 0..3 {
            let decision = after_exit(
                ExitReason::Code(1),
                SHORT,
                Desired::Running,
                count,
                &config(),
            );
            assert_eq!(decision, AfterExit::Restart { unstable: true });
        }
        let decision = after_exit(ExitReason::Code(1), SHORT, Desired::Running, 3, &config());
        assert_eq!(status(decision), Some(Status::Errored));
    }

    #[test]
    fn a_long_run_restarts_and_starts_the_count_over() {
        let decision = after_exit(ExitReason::Code(1), LONG, Desired::Running, 3, &config());
        assert_eq!(decision, AfterExit::Restart { unstable: false });
    }
}
