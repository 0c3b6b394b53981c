//! The names a field may be written under: its own, PM2's aliases (from
//! PM2's `lib/API/schema.json`), and the camelCase form PM2 derives from
//! every field name (`maxRestarts`, `outFile`, `nodeArgs`).

/// PM2's other names for fields, and the names pmdaemon's own fields have
/// in PM2.
pub(super) const ALIASES: &[(&str, &str)] = &[
    ("exec", "script"),
    ("cmd", "script"),
    ("command", "script"),
    ("out", "out_file"),
    ("output", "out_file"),
    ("out_log", "out_file"),
    ("error", "error_file"),
    ("err", "error_file"),
    ("err_file", "error_file"),
    ("err_log", "error_file"),
    ("log", "log_file"),
    ("exec_interpreter", "interpreter"),
    ("node_args", "interpreter_args"),
    ("cron", "cron_restart"),
    ("pid", "pid_file"),
    ("user", "uid"),
    ("combine_logs", "merge_logs"),
];

/// PM2 fields that have no meaning in pmdaemon: accepted with a warning so
/// that PM2 files start unchanged.
pub(super) const PM2_ONLY: &[&str] = &[
    "source_map_support",
    "disable_source_map_support",
    "vizion",
    "automation",
    "pmx",
    "treekill",
    "force",
    "filter_env",
    "append_env_to_name",
    "post_update",
    "disable_trace",
    "pid_file",
    "disable_logs",
    "watch_options",
    "kill_retry_time",
    "deep_monitoring",
    "trace",
    "versioning",
    "windows_hide",
    "max_memory_restart_interval",
    "name_prefix",
    "install_url",
    "execute_command",
    "username",
    "v8",
    "event_loop_inspector",
    "write",
    "io",
];

/// What a key of an app object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Key {
    /// A field pmdaemon reads, by its own name.
    Field(&'static str),
    /// A PM2 field pmdaemon ignores, by its snake_case name.
    Pm2Only(&'static str),
    /// Nothing known.
    Unknown,
}

/// `maxRestarts` → `max_restarts`; a key without capitals is unchanged.
fn snake_case(key: &str) -> String {
    let mut out = String::with_capacity(key.len() + 4);
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            out.push('_');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// What `key` names, among `fields`.
pub(super) fn classify(key: &str, fields: &[&'static str]) -> Key {
    let by_name = |name: &str| {
        let name = ALIASES
            .iter()
            .find(|(alias, _)| *alias == name)
            .map_or(name, |(_, field)| field);
        if let Some(field) = fields.iter().find(|f| **f == name) {
            return Key::Field(field);
        }
        match PM2_ONLY.iter().find(|f| **f == name) {
            Some(field) => Key::Pm2Only(field),
            None => Key::Unknown,
        }
    };
    match by_name(key) {
        Key::Unknown if key.chars().any(|c| c.is_ascii_uppercase()) => by_name(&snake_case(key)),
        known => known,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_and_camel_case_name_their_field() {
        let fields = &[
            "script",
            "out_file",
            "max_restarts",
            "interpreter_args",
            "merge_logs",
        ];
        assert_eq!(classify("cmd", fields), Key::Field("script"));
        assert_eq!(classify("maxRestarts", fields), Key::Field("max_restarts"));
        assert_eq!(classify("outFile", fields), Key::Field("out_file"));
        assert_eq!(classify("nodeArgs", fields), Key::Field("interpreter_args"));
        assert_eq!(
            classify("interpreterArgs", fields),
            Key::Field("interpreter_args")
        );
        assert_eq!(classify("combineLogs", fields), Key::Field("merge_logs"));
        assert_eq!(
            classify("windowsHide", fields),
            Key::Pm2Only("windows_hide")
        );
        assert_eq!(classify("pid", fields), Key::Pm2Only("pid_file"));
        assert_eq!(classify("maxRestart", fields), Key::Unknown);
    }
}
