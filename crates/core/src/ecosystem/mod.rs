//! Ecosystem files: PM2's and PMDaemon's app lists in JSON (or a
//! JavaScript object literal, as PM2 reads `.json`), JSON5, YAML or TOML
//! (and PM2's `ecosystem.config.js`, evaluated by the CLI with node and
//! handed here as JSON). The list is `{"apps": [...]}` (or PM2's `pm2`
//! key, or `apps` holding one object), a top-level list, or one app.
//!
//! A file is checked as a whole before anything starts: every unknown field
//! (with the nearest valid name), wrong type, impossible value and duplicate
//! name is reported with the file, the app, the field, and its line and
//! column.

mod coerce;
mod convert;
mod duplicates;
pub mod file;
pub mod interpolate;
mod keys;
mod locate;
mod syntax;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use self::file::AppFile;
use crate::config::AppConfig;

/// The syntax of a config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `.json`: JSON, or a JavaScript object literal as PM2 reads it.
    Json,
    /// `.json5`.
    Json5,
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
            "json5" => Some(Format::Json5),
            "yaml" | "yml" => Some(Format::Yaml),
            "toml" => Some(Format::Toml),
            "js" | "cjs" | "mjs" => Some(Format::Js),
            _ => None,
        }
    }

    /// Whether `path` names an ecosystem file rather than a script: any
    /// `.json`, `.json5`, `.yaml`, `.yml` or `.toml`, and `*.config.js` / `.cjs`.
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
    "interpreter_args",
    "autostart",
    "uid",
    "gid",
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

fn plain(err: &serde_json::Error) -> String {
    coerce::plain_message(&err.to_string())
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
    let syntax::Read {
        mut root,
        written_as,
    } = syntax::read(text, format).map_err(|err| fail(err.line, err.column, err.message))?;
    if written_as == Format::Json {
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
    let objects = app_objects(root).map_err(|message| fail(None, None, message))?;
    if objects.is_empty() {
        return Err(fail(None, None, "the file lists no apps".to_string()));
    }
    let mut checker = Checker {
        text: options.source.as_deref().unwrap_or(text),
        format: written_as,
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

/// The app objects of a file, in each shape PM2 accepts.
fn app_objects(root: Value) -> Result<Vec<Value>, String> {
    match root {
        Value::Array(apps) => Ok(apps),
        Value::Object(mut map) => {
            // `pm2` is PM2's other name for `apps`.
            let key = ["apps", "pm2"].into_iter().find(|k| map.contains_key(*k));
            match key.and_then(|k| map.remove(k)) {
                None => Ok(vec![Value::Object(map)]),
                Some(Value::Array(apps)) => Ok(apps),
                Some(Value::Object(app)) => Ok(vec![Value::Object(app)]),
                Some(other) => Err(format!(
                    "'{}' must be a list of apps or one app, not {}",
                    key.unwrap_or("apps"),
                    file::kind(&other)
                )),
            }
        }
        other => Err(format!(
            "expected {{\"apps\": [...]}}, a list of apps or one app object, found {}",
            file::kind(&other)
        )),
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
                Err(err) => checker.problem(index, label, &[key], plain(&err)),
            }
            continue;
        }
        let canonical = match keys::classify(key, FIELDS) {
            keys::Key::Field(field) => field,
            keys::Key::Pm2Only(field) => {
                warnings.push(format!(
                    "app {label}: field '{key}' is a PM2 option pmdaemon does not use; ignored"
                ));
                given.push(field);
                continue;
            }
            keys::Key::Unknown => {
                let hint = suggestion(key, FIELDS);
                checker.problem(index, label, &[key], format!("unknown field{hint}"));
                continue;
            }
        };
        // As in PM2, a field's own name wins over its aliases, and the
        // first alias over later ones.
        if given.contains(&canonical) || (key != canonical && map.contains_key(canonical)) {
            warnings.push(format!(
                "app {label}: field '{key}' is another name for '{canonical}', which is already given; ignored"
            ));
            continue;
        }
        given.push(canonical);
        let mut value = coerce::coerce(canonical, value);
        if canonical == "name" {
            if let Some(plain) = value.as_str().and_then(coerce::plain_name) {
                warnings.push(format!(
                    "app {label}: a name cannot contain spaces here (it is a target and a file name); it runs as '{plain}'"
                ));
                value = Value::String(plain);
            }
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
                let mut known = Map::new();
                for (nested, nested_value) in block {
                    if !HEALTH_CHECK_FIELDS.contains(&nested.as_str()) {
                        continue;
                    }
                    let nested_value = coerce::coerce(nested, nested_value);
                    let probe = serde_json::json!({ nested: nested_value });
                    match serde_json::from_value::<file::HealthCheckFile>(probe) {
                        Ok(_) => {
                            known.insert(nested.clone(), nested_value);
                        }
                        Err(err) => {
                            checker.problem(index, label, &[key, nested], plain(&err));
                        }
                    }
                }
                fields.insert(canonical.to_string(), Value::Object(known));
                continue;
            }
        }
        let probe = serde_json::json!({ canonical: value });
        match serde_json::from_value::<AppFile>(probe) {
            Ok(_) => {
                fields.insert(canonical.to_string(), value);
            }
            Err(err) => checker.problem(index, label, &[key], plain(&err)),
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
            checker.problem(index, label, &[], plain(&err));
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
