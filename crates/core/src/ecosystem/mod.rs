//! Ecosystem files: PM2's and PMDaemon's app lists in JSON, YAML or TOML
//! (and PM2's `ecosystem.config.js`, evaluated by the CLI with node and
//! handed here as JSON).
//!
//! A file is checked as a whole before anything starts: every unknown field
//! (with the nearest valid name), wrong type, impossible value and duplicate
//! name is reported with the file, the app, the field, and its line and
//! column.

mod convert;
mod duplicates;
pub mod file;
pub mod interpolate;
mod locate;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use self::file::AppFile;
use crate::config::AppConfig;

/// The syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`.
    Json,
    /// `.yaml`, `.yml`.
    Yaml,
    /// `.toml`.
    Toml,
    /// `.js`, `.cjs`, `.mjs`: PM2's `module.exports = {apps: [...]}`,
    /// evaluated with node into JSON.
    Js,
}

impl Format {
    /// The format a file name implies.
    pub fn of(path: &Path) -> Option<Format> {
        match path.extension()?.to_str()? {
            "json" => Some(Format::Json),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            "js" | "cjs" | "mjs" => Some(Format::Js),
            _ => None,
        }
    }

    /// Whether `path` names an ecosystem file rather than a script: any
    /// `.json`, `.yaml`, `.yml` or `.toml`, and `*.config.js` / `.cjs`.
    pub fn is_config_file(path: &Path) -> bool {
        match Format::of(path) {
            Some(Format::Js) => path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(".config.")),
            Some(_) => true,
            None => false,
        }
    }
}

/// Every field of an app object.
pub const FIELDS: &[&str] = &[
    "name",
    "script",
    "args",
    "cwd",
    "env",
    "instances",
    "exec_mode",
    "port",
    "shared_port",
    "interpreter",
    "autorestart",
    "max_restarts",
    "min_uptime",
    "restart_delay",
    "exp_backoff_restart_delay",
    "kill_timeout",
    "listen_timeout",
    "stop_signal",
    "stop_exit_codes",
    "max_memory_restart",
    "health_check",
    "wait_ready",
    "shutdown_with_message",
    "watch",
    "ignore_watch",
    "watch_delay",
    "cron_restart",
    "out_file",
    "error_file",
    "log_file",
    "log_date_format",
    "merge_logs",
    "log_max_size",
    "log_max_files",
    "log_compress",
    "time",
    "log_type",
    "namespace",
    "instance_var",
    "increment_var",
];

/// Every field of a `health_check` block.
pub const HEALTH_CHECK_FIELDS: &[&str] = &[
    "check_type",
    "url",
    "script",
    "timeout",
    "interval",
    "retries",
    "enabled",
];

/// PM2's other names for fields.
const ALIASES: &[(&str, &str)] = &[
    ("output", "out_file"),
    ("error", "error_file"),
    ("log", "log_file"),
    ("exec_interpreter", "interpreter"),
];

/// PM2 fields that have no meaning in pmdaemon: accepted with a warning so
/// that PM2 files start unchanged.
const PM2_ONLY: &[&str] = &[
    "node_args",
    "interpreter_args",
    "source_map_support",
    "vizion",
    "automation",
    "pmx",
    "treekill",
    "force",
    "combine_logs",
    "filter_env",
    "append_env_to_name",
    "post_update",
    "autostart",
    "disable_trace",
    "pid_file",
    "disable_logs",
    "watch_options",
    "kill_retry_time",
    "deep_monitoring",
    "trace",
    "versioning",
    "windowsHide",
    "uid",
    "gid",
    "max_memory_restart_interval",
];

/// One thing wrong in a config file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// 1-based column, when known.
    pub column: Option<usize>,
    /// The app it concerns (its name, or `#N`).
    pub app: Option<String>,
    /// The field it concerns (`health_check.url`).
    pub field: Option<String>,
    /// What is wrong.
    pub message: String,
}

/// Everything wrong with one config file.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConfigError {
    /// The file as the user named it.
    pub file: String,
    /// The problems, in the order they appear in the file.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let count = self.problems.len();
        write!(
            f,
            "{} has {count} problem{}; nothing was started or changed",
            self.file,
            if count == 1 { "" } else { "s" }
        )?;
        for problem in &self.problems {
            write!(f, "\n  {}", self.file)?;
            if let Some(line) = problem.line {
                write!(f, ":{line}")?;
                if let Some(column) = problem.column {
                    write!(f, ":{column}")?;
                }
            }
            f.write_str(": ")?;
            if let Some(app) = &problem.app {
                write!(f, "app {app}: ")?;
            }
            if let Some(field) = &problem.field {
                write!(f, "field '{field}': ")?;
            }
            f.write_str(&problem.message)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// How to read a file.
#[derive(Debug, Clone)]
pub struct Options {
    /// `--env <profile>`: merge `env_<profile>` over `env`.
    pub profile: Option<String>,
    /// CPUs this process may use, for `instances: "max"` and -1.
    pub cpus: u32,
    /// The file as the user wrote it, when `text` was made from it (the
    /// JSON node printed for an `ecosystem.config.js`): problems are
    /// located in it.
    pub source: Option<String>,
    /// The environment `${VAR}` placeholders are taken from: the one of the
    /// command applying the file. Not used for `ecosystem.config.js`, which
    /// reads `process.env` itself.
    pub env: BTreeMap<String, String>,
}

/// The apps of a file, and warnings about fields that were ignored.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The apps, in file order.
    pub apps: Vec<AppConfig>,
    /// One sentence each.
    pub warnings: Vec<String>,
}

struct Checker<'a> {
    text: &'a str,
    format: Format,
    problems: Vec<Problem>,
    /// For each app, its raw object, to count earlier occurrences of keys.
    objects: Vec<Map<String, Value>>,
}

impl Checker<'_> {
    fn problem(&mut self, app: usize, label: &str, path: &[&str], message: String) {
        let occurrence = path.first().map_or(0, |first| {
            self.objects[..app]
                .iter()
                .filter(|o| o.contains_key(*first))
                .count()
        });
        let position = locate::locate(self.text, self.format, path, occurrence);
        self.problems.push(Problem {
            line: position.map(|p| p.0),
            column: position.map(|p| p.1),
            app: Some(label.to_string()),
            field: (!path.is_empty()).then(|| path.join(".")),
            message,
        });
    }
}

fn suggestion(key: &str, known: &[&str]) -> String {
    crate::config::nearest(key, known.iter().copied())
        .map(|candidate| format!(" (did you mean '{candidate}'?)"))
        .unwrap_or_default()
}

/// Reads the text of a config file into apps. `dir` is the file's directory
/// (relative `cwd`s are resolved against it) and `label` its name in
/// messages.
pub fn parse(
    label: &str,
    dir: &Path,
    text: &str,
    format: Format,
    options: &Options,
) -> Result<Loaded, ConfigError> {
    let fail = |line: Option<usize>, column: Option<usize>, message: String| ConfigError {
        file: label.to_string(),
        problems: vec![Problem {
            line,
            column,
            app: None,
            field: None,
            message,
        }],
    };
    if text.len() > crate::limits::MAX_FILE_BYTES {
        return Err(fail(
            None,
            None,
            format!(
                "the file is {} bytes; ecosystem files may be at most {} bytes (1 MiB)",
                text.len(),
                crate::limits::MAX_FILE_BYTES
            ),
        ));
    }
    // Editors on Windows write one; it is not part of the content.
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut root: Value = match format {
        Format::Json | Format::Js => serde_json::from_str(text).map_err(|err| {
            let message = err.to_string();
            let message = message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_string();
            fail(
                Some(err.line()),
                Some(err.column()),
                format!("not valid JSON: {message}"),
            )
        })?,
        Format::Yaml => serde_saphyr::from_str(text).map_err(|err| {
            let location = err.location();
            let message = err.to_string();
            let first = message.lines().next().unwrap_or(&message).to_string();
            fail(
                location.map(|l| l.line() as usize),
                location.map(|l| l.column() as usize),
                format!("not valid YAML: {first}"),
            )
        })?,
        Format::Toml => toml::from_str(text).map_err(|err| {
            let position = err.span().map(|span| locate::line_col(text, span.start));
            fail(
                position.map(|p| p.0),
                position.map(|p| p.1),
                format!("not valid TOML: {}", err.message().trim()),
            )
        })?,
    };
    if format == Format::Json {
        let problems = duplicates::duplicate_keys(text);
        if !problems.is_empty() {
            return Err(ConfigError {
                file: label.to_string(),
                problems,
            });
        }
    }
    if format != Format::Js {
        interpolate::interpolate(&mut root, &options.env, text).map_err(|mut problems| {
            problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
            ConfigError {
                file: label.to_string(),
                problems,
            }
        })?;
    }
    let objects: Vec<Value> = match root {
        Value::Object(mut map) if map.contains_key("apps") => match map.remove("apps") {
            Some(Value::Array(apps)) => apps,
            Some(other) => {
                return Err(fail(
                    None,
                    None,
                    format!("'apps' must be a list of apps, not {}", file::kind(&other)),
                ))
            }
            None => Vec::new(),
        },
        Value::Object(map) => vec![Value::Object(map)],
        other => {
            return Err(fail(
                None,
                None,
                format!(
                    "expected {{\"apps\": [...]}} or one app object, found {}",
                    file::kind(&other)
                ),
            ))
        }
    };
    if objects.is_empty() {
        return Err(fail(None, None, "the file lists no apps".to_string()));
    }
    let mut checker = Checker {
        text: options.source.as_deref().unwrap_or(text),
        format,
        problems: Vec::new(),
        objects: objects
            .iter()
            .map(|o| o.as_object().cloned().unwrap_or_default())
            .collect(),
    };
    let mut warnings = Vec::new();
    let mut apps = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (index, object) in objects.iter().enumerate() {
        let Some(map) = object.as_object() else {
            checker.problems.push(Problem {
                line: None,
                column: None,
                app: Some(format!("#{}", index + 1)),
                field: None,
                message: format!("an app must be an object, not {}", file::kind(object)),
            });
            continue;
        };
        let label = match map.get("name").and_then(Value::as_str) {
            Some(name) => format!("'{name}'"),
            None => format!("#{}", index + 1),
        };
        if let Some(name) = map.get("name").and_then(Value::as_str) {
            if let Some(first) = seen.insert(name.to_string(), index) {
                checker.problem(
                    index,
                    &label,
                    &["name"],
                    format!("the name is already used by app #{}", first + 1),
                );
            }
        }
        if let Some(app) = check_app(
            &mut checker,
            index,
            &label,
            map,
            dir,
            options,
            &mut warnings,
        ) {
            apps.push(app);
        }
    }
    if checker.problems.is_empty() {
        Ok(Loaded { apps, warnings })
    } else {
        let mut problems = checker.problems;
        problems.sort_by_key(|p| (p.line.unwrap_or(usize::MAX), p.column.unwrap_or(0)));
        Err(ConfigError {
            file: label.to_string(),
            problems,
        })
    }
}

fn check_app(
    checker: &mut Checker<'_>,
    index: usize,
    label: &str,
    map: &Map<String, Value>,
    dir: &Path,
    options: &Options,
    warnings: &mut Vec<String>,
) -> Option<AppConfig> {
    let before = checker.problems.len();
    let mut fields = Map::new();
    // Fields given, good or bad (canonical names).
    let mut given: Vec<&str> = Vec::new();
    let mut profiles: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (key, value) in map {
        if let Some(profile) = key.strip_prefix("env_").filter(|p| !p.is_empty()) {
            match serde_json::from_value::<BTreeMap<String, file::EnvValue>>(value.clone()) {
                Ok(env) => {
                    profiles.insert(
                        profile.to_string(),
                        env.into_iter().map(|(k, v)| (k, v.0)).collect(),
                    );
                }
                Err(err) => checker.problem(index, label, &[key], err.to_string()),
            }
            continue;
        }
        let canonical = ALIASES
            .iter()
            .find(|(alias, _)| alias == key)
            .map_or(key.as_str(), |(_, field)| field);
        given.push(canonical);
        if PM2_ONLY.contains(&key.as_str()) {
            warnings.push(format!(
                "app {label}: field '{key}' is a PM2 option pmdaemon does not use; ignored"
            ));
            continue;
        }
        if !FIELDS.contains(&canonical) {
            let hint = suggestion(key, FIELDS);
            checker.problem(index, label, &[key], format!("unknown field{hint}"));
            continue;
        }
        if canonical == "health_check" {
            if let Some(block) = value.as_object() {
                for nested in block.keys() {
                    if !HEALTH_CHECK_FIELDS.contains(&nested.as_str()) {
                        let hint = suggestion(nested, HEALTH_CHECK_FIELDS);
                        checker.problem(
                            index,
                            label,
                            &[key, nested],
                            format!("unknown field{hint}"),
                        );
                    }
                }
                for (nested, nested_value) in block {
                    if !HEALTH_CHECK_FIELDS.contains(&nested.as_str()) {
                        continue;
                    }
                    let probe = serde_json::json!({ nested: nested_value });
                    if let Err(err) = serde_json::from_value::<file::HealthCheckFile>(probe) {
                        checker.problem(index, label, &[key, nested], err.to_string());
                    }
                }
                fields.insert(canonical.to_string(), value.clone());
                continue;
            }
        }
        let probe = serde_json::json!({ canonical: value });
        match serde_json::from_value::<AppFile>(probe) {
            Ok(_) => {
                fields.insert(canonical.to_string(), value.clone());
            }
            Err(err) => checker.problem(index, label, &[key], err.to_string()),
        }
    }
    // Go on with the fields that are fine, so that the app's other problems
    // (a missing script, ports that do not fit, …) are reported too; a bad
    // script is not also reported as missing.
    if checker.problems.len() > before
        && given.contains(&"script")
        && !fields.contains_key("script")
    {
        fields.insert("script".to_string(), Value::String("script".to_string()));
    }
    let parsed: AppFile = match serde_json::from_value(Value::Object(fields)) {
        Ok(parsed) => parsed,
        Err(err) => {
            checker.problem(index, label, &[], err.to_string());
            return None;
        }
    };
    let config = convert::convert(checker, index, label, parsed, profiles, dir, options);
    (checker.problems.len() == before)
        .then_some(config)
        .flatten()
}

/// Where a relative path in a config file points.
pub fn base_dir(path: &Path) -> PathBuf {
    path.parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// The JSON Schema of ecosystem files, as committed in
/// `schema/ecosystem.schema.json`.
pub fn json_schema() -> String {
    let schema = schemars::schema_for!(file::EcosystemFile);
    serde_json::to_string_pretty(&schema).unwrap_or_default() + "\n"
}

#[cfg(test)]
mod tests;
