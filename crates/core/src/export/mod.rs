//! `pmdaemon export`: the apps of an ecosystem file as the engine a user
//! moves to next: Kubernetes manifests ([`kubernetes`]), a Compose file
//! ([`compose`]) or systemd template units ([`systemd`]).
//!
//! Each exporter maps what its engine can say and lists everything else as
//! a comment at the top of its output ([`Notes`]), so that nothing from the
//! file is dropped without a word. They work on checked [`AppConfig`]s, so
//! `instances: max` is already the number of this machine's CPUs.

pub mod compose;
pub mod kubernetes;
pub mod systemd;

use std::path::Path;

use crate::config::{AppConfig, CheckType, HealthCheck, LogType};
use crate::ports::PortSpec;

/// What an export could not express, one line per thing.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Notes(pub Vec<String>);

impl Notes {
    /// Adds a note about `app`.
    pub fn add(&mut self, app: &str, what: impl std::fmt::Display) {
        self.0.push(format!("app '{app}': {what}"));
    }

    /// The notes as `#` comment lines under a `title` line.
    pub fn comment(&self, title: &str) -> String {
        let mut out = format!("# {title}\n");
        if self.0.is_empty() {
            out.push_str("# Everything in the file is expressed below.\n");
        } else {
            out.push_str("# Not expressed (pmdaemon would have done it; here it is up to you):\n");
            for note in &self.0 {
                out.push_str(&format!("#   - {}\n", note.replace('\n', " ")));
            }
        }
        out
    }
}

/// The port every replica or unit listens on, noting what a range or an
/// `auto:` spec loses.
pub(crate) fn first_port(app: &AppConfig, notes: &mut Notes, per_replica: &str) -> Option<u16> {
    match app.port? {
        PortSpec::Single(port) => Some(port),
        PortSpec::Range { start, end } => {
            notes.add(
                &app.name,
                format!("port {start}-{end} gives each instance its own port; {per_replica} listens on {start}"),
            );
            Some(start)
        }
        PortSpec::Auto { start, end } => {
            notes.add(
                &app.name,
                format!("port auto:{start}-{end} picks free ports at start; {per_replica} listens on {start}"),
            );
            Some(start)
        }
    }
}

/// The program and arguments the app runs (its interpreter first).
pub(crate) fn command_line(app: &AppConfig) -> Vec<String> {
    let invocation = app.invocation();
    std::iter::once(invocation.program)
        .chain(invocation.args)
        .collect()
}

/// Notes for the fields no container engine acts on the way pmdaemon does.
pub(crate) fn note_process_fields(app: &AppConfig, notes: &mut Notes) {
    let defaults = AppConfig::default();
    let name = &app.name;
    if !app.watch.is_empty() {
        notes.add(
            name,
            format!(
                "watch {:?}: restarts on file changes (rebuild and roll out the image instead)",
                app.watch
            ),
        );
    }
    if let Some(cron) = &app.cron_restart {
        notes.add(name, format!("cron_restart '{cron}': scheduled restarts"));
    }
    if app.max_restarts != defaults.max_restarts || app.min_uptime != defaults.min_uptime {
        notes.add(
            name,
            format!(
                "max_restarts {} / min_uptime {} ms: the engine's own restart backoff applies",
                app.max_restarts, app.min_uptime
            ),
        );
    }
    if app.restart_delay != 0 || app.exp_backoff_restart_delay.is_some() {
        notes.add(
            name,
            "restart_delay / exp_backoff_restart_delay: the engine's own restart backoff applies",
        );
    }
    if app.wait_ready {
        notes.add(
            name,
            "wait_ready: readiness by READY=1 on NOTIFY_SOCKET (use a health check)",
        );
    }
    if app.out_file.is_some() || app.error_file.is_some() || app.merge_logs {
        notes.add(name, "out_file / error_file / merge_logs: output goes to the engine's log of stdout and stderr");
    }
    if app.log_date_format.is_some() || app.time || app.log_type == LogType::Json {
        notes.add(
            name,
            "log_date_format / time / log_type: the engine timestamps log lines itself",
        );
    }
    if app.log_max_size.is_some() || app.log_max_files.is_some() || app.log_compress.is_some() {
        notes.add(
            name,
            "log_max_size / log_max_files / log_compress: log rotation is the engine's",
        );
    }
    if let Some(namespace) = &app.namespace {
        notes.add(name, format!("namespace '{namespace}': a pmdaemon label"));
    }
}

/// An http health check's URL taken apart: scheme, port (when the URL names
/// one that is not `{PORT}`), path with query.
pub(crate) struct HttpTarget {
    /// `HTTP` or `HTTPS`.
    pub scheme: &'static str,
    /// An explicit port in the URL.
    pub port: Option<u16>,
    /// `/health?x=1`.
    pub path: String,
    /// Whether the URL names a host other than the instance itself.
    pub other_host: bool,
}

pub(crate) fn http_target(url: &str) -> Option<HttpTarget> {
    let (scheme, rest) = match url.split_once("://") {
        Some(("http", rest)) => ("HTTP", rest),
        Some(("https", rest)) => ("HTTPS", rest),
        _ => return None,
    };
    let (authority, path) = match rest.find('/') {
        Some(slash) => (&rest[..slash], rest[slash..].to_string()),
        None => (rest, "/".to_string()),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((host, port)) if !host.ends_with(']') || authority.starts_with('[') => {
            (host, Some(port))
        }
        _ => (authority, None),
    };
    let port = match port {
        None | Some("{PORT}") => None,
        Some(port) => Some(port.parse().ok()?),
    };
    let host = host.trim_matches(['[', ']']);
    Some(HttpTarget {
        scheme,
        port,
        path,
        other_host: !matches!(host, "localhost" | "127.0.0.1" | "::1" | "0.0.0.0"),
    })
}

/// The check's command line for engines that run a command (`{PORT}`
/// replaced), when there is one.
pub(crate) fn check_command(check: &HealthCheck, port: Option<u16>) -> Option<String> {
    let port_text = port.map(|p| p.to_string()).unwrap_or_default();
    match check.check_type {
        CheckType::Http => {
            let url = check.url.as_deref()?.replace("{PORT}", &port_text);
            Some(format!(
                "curl -fsS -o /dev/null --max-time {} '{url}'",
                seconds(check.timeout)
            ))
        }
        CheckType::Tcp => port.map(|p| format!("bash -c '</dev/tcp/127.0.0.1/{p}'")),
        CheckType::Script => check.script.clone(),
    }
}

/// Milliseconds as whole seconds, at least one.
pub(crate) fn seconds(millis: u64) -> u64 {
    millis.div_ceil(1000).max(1)
}

/// A name an engine accepts as a DNS label: lower case, digits and `-`.
pub(crate) fn dns_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| match c {
            'a'..='z' | '0'..='9' => c,
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => '-',
        })
        .collect();
    out.truncate(63);
    let out = out.trim_matches('-').to_string();
    if out.is_empty() {
        "app".to_string()
    } else {
        out
    }
}

/// The app's working directory relative to the ecosystem file's, when it is
/// not that directory.
pub(crate) fn relative_cwd(app: &AppConfig, base: &Path) -> Option<String> {
    let cwd = app.cwd.as_deref()?;
    let clean = |p: &Path| p.components().collect::<std::path::PathBuf>();
    let (cwd, base) = (clean(cwd), clean(base));
    if cwd == base {
        return None;
    }
    Some(
        cwd.strip_prefix(&base)
            .map_or_else(|_| cwd.display().to_string(), |r| r.display().to_string()),
    )
}

/// A YAML document from a JSON value.
pub(crate) fn yaml(value: &serde_json::Value) -> Result<String, crate::Error> {
    serde_saphyr::to_string(value).map_err(|err| crate::Error::Export {
        reason: format!("cannot write YAML: {err}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_urls_come_apart() {
        let target = http_target("http://localhost:{PORT}/health?deep=1").unwrap();
        assert_eq!((target.scheme, target.port), ("HTTP", None));
        assert_eq!(target.path, "/health?deep=1");
        assert!(!target.other_host);
        let target = http_target("https://example.com:8443").unwrap();
        assert_eq!((target.scheme, target.port), ("HTTPS", Some(8443)));
        assert_eq!(target.path, "/");
        assert!(target.other_host);
        assert!(http_target("ftp://x").is_none());
    }

    #[test]
    fn names_become_dns_labels() {
        assert_eq!(dns_name("Web_App.v2"), "web-app-v2");
        assert_eq!(dns_name("__"), "app");
    }
}
