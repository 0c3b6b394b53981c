//! Errors raised while interpreting user input.

/// Something a user typed (or wrote in a config) that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// An export that cannot be written.
    #[error("{reason}")]
    Export {
        /// Why.
        reason: String,
    },
    /// A duration such as `5s` that does not parse.
    #[error("invalid duration '{input}': use milliseconds (1500) or a number with a unit (500ms, 5s, 2m, 1h)")]
    InvalidDuration {
        /// What the user wrote.
        input: String,
    },
    /// A size such as `256M` that does not parse.
    #[error(
        "invalid size '{input}': use bytes (1048576) or a number with a unit (512K, 256M, 1G)"
    )]
    InvalidSize {
        /// What the user wrote.
        input: String,
    },
    /// A command line with unbalanced quotes or nothing in it.
    #[error("invalid command line '{input}': {reason}")]
    InvalidCommand {
        /// What the user wrote.
        input: String,
        /// Why it cannot be split.
        reason: String,
    },
    /// An app name that cannot be used as a name.
    #[error("invalid app name '{name}': {reason}")]
    InvalidName {
        /// The rejected name.
        name: String,
        /// Why it is rejected.
        reason: &'static str,
    },
    /// A port specification that does not parse.
    #[error("invalid port '{input}': {reason}")]
    InvalidPort {
        /// What the user wrote.
        input: String,
        /// What is wrong with it.
        reason: String,
    },
    /// An instance count that cannot work (with its ports).
    #[error("{reason}")]
    InvalidInstances {
        /// Why.
        reason: String,
    },
    /// A cron expression that does not parse.
    #[error("invalid cron_restart '{input}': {reason}; use 5 fields (minute hour day-of-month month day-of-week), or 6 with seconds first, e.g. \"0 3 * * *\" for 03:00 every day")]
    InvalidCron {
        /// What the user wrote.
        input: String,
        /// Why it does not parse.
        reason: String,
    },
    /// A `log_date_format` that cannot be used.
    #[error("invalid log_date_format '{input}': use moment tokens (YYYY-MM-DD HH:mm:ss.SSS Z) or strftime (%Y-%m-%d %H:%M:%S)")]
    InvalidDateFormat {
        /// What the user wrote.
        input: String,
    },
    /// A health check that cannot run.
    #[error("invalid health_check: {reason}")]
    InvalidHealthCheck {
        /// The field at fault (`url`, `script`, `retries`).
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A signal name that is not known.
    #[error(
        "unknown signal '{name}': use a name such as SIGTERM, SIGINT, SIGHUP, SIGQUIT or SIGUSR2"
    )]
    UnknownSignal {
        /// The rejected name.
        name: String,
    },
    /// A value outside what pmdaemon accepts for a field.
    #[error("invalid {field}: {reason}")]
    InvalidValue {
        /// The field (`max_memory_restart`, `env`).
        field: &'static str,
        /// Why, and what is accepted.
        reason: String,
    },
}
