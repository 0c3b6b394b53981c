//! The in-memory process table and the views the API serves from it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use pmdaemon_core::api::{Health, LogStream, ProcessDetail, ProcessInfo, Status};
use tokio::sync::mpsc;

use super::instance::Command;
use std::path::PathBuf;

use crate::journal::{Changes, Delta};
use crate::logs;
use crate::paths::Home;
use crate::ports::Holders;
use crate::store::{now_ms, AppRecord, InstanceRecord, State, STATE_VERSION};
use crate::Error;

/// Apps, instances and the channels to the instance tasks.
///
/// A record is changed through [`Table::instance_mut`] or [`Table::app_mut`],
/// which mark it for the journal (it writes only what is marked); adding or
/// removing one marks it with [`Table::touch`] or [`Table::touch_app`], and
/// a sweep of every record with [`Table::touch_all`]. Samples (CPU, memory)
/// are not saved and change records in place.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub next_id: u32,
    pub apps: Vec<AppRecord>,
    pub instances: BTreeMap<u32, InstanceRecord>,
    pub handles: HashMap<u32, mpsc::Sender<Command>>,
    dirty: Dirty,
}

/// What changed since the table was last written.
#[derive(Debug, Default)]
struct Dirty {
    /// Everything (a sweep over the table).
    all: bool,
    /// Apps, in the order they were first marked (new apps: the order
    /// they were added, which a replay keeps).
    apps: Vec<String>,
    instances: BTreeSet<u32>,
}

impl Table {
    pub fn from_state(state: State) -> Self {
        let instances: BTreeMap<u32, InstanceRecord> =
            state.instances.into_iter().map(|i| (i.id, i)).collect();
        let max_id = instances.keys().next_back().copied().unwrap_or(0);
        Self {
            next_id: state.next_id.max(max_id + 1).max(1),
            apps: state.apps,
            instances,
            handles: HashMap::new(),
            dirty: Dirty::default(),
        }
    }

    /// Marks instance `id` (changed, added or removed) for the next write.
    pub fn touch(&mut self, id: u32) {
        self.dirty.instances.insert(id);
    }

    /// Marks app `name` (changed, added or removed) for the next write.
    pub fn touch_app(&mut self, name: &str) {
        if !self.dirty.apps.iter().any(|a| a == name) {
            self.dirty.apps.push(name.to_string());
        }
    }

    /// Instance `id`, to change: marked for the next write.
    pub fn instance_mut(&mut self, id: u32) -> Option<&mut InstanceRecord> {
        self.touch(id);
        self.instances.get_mut(&id)
    }

    /// App `name`, to change: marked for the next write.
    pub fn app_mut(&mut self, name: &str) -> Option<&mut AppRecord> {
        self.touch_app(name);
        self.apps.iter_mut().find(|a| a.config.name == name)
    }

    /// Marks the whole table for the next write.
    pub fn touch_all(&mut self) {
        self.dirty.all = true;
    }

    /// What the next write holds: the whole table if `full` (or a sweep
    /// marked it all), else the marked records; the marks are cleared.
    pub fn changes(&mut self, full: bool) -> Changes {
        let dirty = std::mem::take(&mut self.dirty);
        if full || dirty.all {
            return Changes::Full(self.snapshot());
        }
        let mut delta = Delta {
            next_id: self.next_id,
            ..Delta::default()
        };
        for name in dirty.apps {
            match self.app(&name) {
                Some(app) => delta.apps.push(app.clone()),
                None => delta.removed_apps.push(name),
            }
        }
        for id in dirty.instances {
            match self.instances.get(&id) {
                Some(instance) => delta.instances.push(instance.clone()),
                None => delta.removed_instances.push(id),
            }
        }
        Changes::Delta(delta)
    }

    pub fn snapshot(&self) -> State {
        State {
            version: STATE_VERSION,
            journal_seq: 0,
            next_id: self.next_id,
            apps: self.apps.clone(),
            instances: self.instances.values().cloned().collect(),
        }
    }

    pub fn app(&self, name: &str) -> Option<&AppRecord> {
        self.apps.iter().find(|a| a.config.name == name)
    }

    /// The ids a target names, in id order: `all`, a numeric id, an
    /// instance name, an app name (all its instances) or, when no app has
    /// that name, a namespace (all instances of its apps).
    pub fn resolve(&self, target: &str) -> Result<Vec<u32>, Error> {
        let unknown = || self.unknown(target);
        if target == "all" {
            return Ok(self.instances.keys().copied().collect());
        }
        if let Ok(id) = target.parse::<u32>() {
            return self
                .instances
                .contains_key(&id)
                .then(|| vec![id])
                .ok_or_else(unknown);
        }
        if let Some(instance) = self.instances.values().find(|i| i.name == target) {
            return Ok(vec![instance.id]);
        }
        let of_apps = |matches: &dyn Fn(&str) -> bool| -> Vec<u32> {
            self.instances
                .values()
                .filter(|i| matches(&i.app))
                .map(|i| i.id)
                .collect()
        };
        let ids = of_apps(&|app| app == target);
        if !ids.is_empty() {
            return Ok(ids);
        }
        // Last, a namespace: every instance of its apps (a name wins over
        // a namespace of the same name).
        let in_namespace: Vec<&str> = self
            .apps
            .iter()
            .filter(|a| a.config.namespace.as_deref() == Some(target))
            .map(|a| a.config.name.as_str())
            .collect();
        let ids = of_apps(&|app| in_namespace.contains(&app));
        if ids.is_empty() {
            Err(unknown())
        } else {
            Ok(ids)
        }
    }

    /// The error for a target nothing matches, with the known app or
    /// instance name most like it.
    pub fn unknown(&self, target: &str) -> Error {
        let names = self
            .apps
            .iter()
            .map(|a| a.config.name.as_str())
            .chain(self.instances.values().map(|i| i.name.as_str()));
        Error::UnknownTarget {
            target: target.to_string(),
            nearest: pmdaemon_core::config::nearest(target, names).map(str::to_string),
        }
    }

    /// `(index, id)` of every instance of `app`, by index.
    pub fn instances_of(&self, app: &str) -> Vec<(u32, u32)> {
        let mut current: Vec<(u32, u32)> = self
            .instances
            .values()
            .filter(|i| i.app == app)
            .map(|i| (i.index, i.id))
            .collect();
        current.sort();
        current
    }

    /// The apps the instances `ids` belong to, each once.
    pub fn apps_of(&self, ids: &[u32]) -> Vec<String> {
        let mut apps: Vec<String> = ids
            .iter()
            .filter_map(|id| self.instances.get(id).map(|i| i.app.clone()))
            .collect();
        apps.sort();
        apps.dedup();
        apps
    }

    /// Whether `name` (an app about to be added, with `instances`
    /// instances) would make some target ambiguous.
    pub fn name_taken(&self, name: &str, instances: u32) -> bool {
        let new_instance_names: Vec<String> =
            (0..instances).map(|i| format!("{name}-{i}")).collect();
        self.apps
            .iter()
            .any(|a| a.config.name == name || new_instance_names.contains(&a.config.name))
            || self.instances.values().any(|i| i.name == name)
    }

    /// Ports held by instances of apps other than `app`, with their holders.
    pub fn holders(&self, app: &str) -> Holders {
        self.instances
            .values()
            .filter(|i| i.app != app)
            .flat_map(|i| {
                [i.port, i.port_override]
                    .into_iter()
                    .flatten()
                    .map(|port| (port, (i.app.clone(), i.name.clone())))
            })
            .collect()
    }

    /// Ports held by instances of `app` other than `except`.
    pub fn own_ports(&self, app: &str, except: &[u32]) -> BTreeSet<u16> {
        self.instances
            .values()
            .filter(|i| i.app == app && !except.contains(&i.id))
            .flat_map(|i| [i.port, i.port_override].into_iter().flatten())
            .collect()
    }

    /// The file that also gets both streams of instance `id`, if any.
    pub fn combined_log_path(&self, id: u32, home: &Home) -> Option<PathBuf> {
        let record = self.instances.get(&id)?;
        let app = self.app(&record.app)?;
        logs::combined_log_path(home, &app.config, record.index)
    }

    /// The stdout and stderr files of instance `id`.
    pub fn log_paths(&self, id: u32, home: &Home) -> (PathBuf, PathBuf) {
        let record = self.instances.get(&id);
        let app = record.and_then(|r| self.app(&r.app));
        match (record, app) {
            (Some(record), Some(app)) => (
                logs::log_path(
                    home,
                    &app.config,
                    record.index,
                    &record.name,
                    LogStream::Out,
                ),
                logs::log_path(
                    home,
                    &app.config,
                    record.index,
                    &record.name,
                    LogStream::Err,
                ),
            ),
            _ => {
                let name = record.map_or_else(|| id.to_string(), |r| r.name.clone());
                (
                    home.log_file(&name, LogStream::Out),
                    home.log_file(&name, LogStream::Err),
                )
            }
        }
    }

    pub fn info(&self, id: u32) -> Option<ProcessInfo> {
        let record = self.instances.get(&id)?;
        self.info_of(record, self.app(&record.app))
    }

    /// Every instance's info, in id order; each app is looked up once.
    pub fn infos(&self) -> Vec<ProcessInfo> {
        let apps: HashMap<&str, &AppRecord> = self
            .apps
            .iter()
            .map(|a| (a.config.name.as_str(), a))
            .collect();
        self.instances
            .values()
            .filter_map(|r| self.info_of(r, apps.get(r.app.as_str()).copied()))
            .collect()
    }

    fn info_of(&self, record: &InstanceRecord, app: Option<&AppRecord>) -> Option<ProcessInfo> {
        let id = record.id;
        let running = matches!(record.status, Status::Online | Status::Stopping);
        Some(ProcessInfo {
            id,
            name: record.name.clone(),
            app: record.app.clone(),
            instance: record.index,
            status: record.status,
            pid: record
                .pid
                .filter(|_| running || record.status == Status::Launching),
            port: record.effective_port(),
            cpu_percent: record.cpu_percent.filter(|_| running),
            memory_bytes: record.memory_bytes.filter(|_| running),
            uptime_ms: record
                .started_at_ms
                .filter(|_| running)
                .map(|started| now_ms().saturating_sub(started)),
            restarts: record.restarts,
            unstable_restarts: record.unstable_restarts,
            last_exit: record.last_exit,
            health_checked: app
                .and_then(|a| a.config.health_check.as_ref())
                .is_some_and(|c| c.enabled),
            health: if running {
                record.health
            } else {
                Health::Unknown
            },
            health_error: record.health_error.clone().filter(|_| running),
            ready: running && record.ready,
            namespace: app.and_then(|a| a.config.namespace.clone()),
            shared_port: app.and_then(|a| a.config.sharing()).map(|(_, mode)| mode),
            private_port: record.private_port.filter(|_| running),
            connections: None,
        })
    }

    pub fn detail(&self, id: u32, home: &Home) -> Option<ProcessDetail> {
        let info = self.info(id)?;
        let record = self.instances.get(&id)?;
        let app = self.app(&record.app)?;
        let mut config = app.config.clone();
        redact(&mut config.env);
        if let Some(url) = config.health_check.as_mut().and_then(|c| c.url.as_mut()) {
            *url = redact_url_password(url);
        }
        // What the log files really rotate at (the daemon's defaults filled
        // in).
        let rotation = logs::Rotation::of(&app.config);
        config.log_max_size = Some(rotation.max_size);
        config.log_max_files = Some(rotation.max_files);
        config.log_compress = Some(rotation.compress);
        let invocation = config.invocation();
        let mut environment = crate::spawn::environment(
            &app.config,
            &app.inherited_env,
            &crate::spawn::InstanceEnv {
                index: record.index,
                name: &record.name,
                port: record.effective_port(),
            },
        );
        environment.insert("PMDAEMON_HOME".into(), home.root().display().to_string());
        if let Some(private) = record.private_port {
            environment.insert("PORT".into(), private.to_string());
        }
        redact(&mut environment);
        Some(ProcessDetail {
            environment,
            config,
            command: std::iter::once(invocation.program)
                .chain(invocation.args)
                .collect(),
            cwd: app.config.cwd.clone().unwrap_or_default(),
            out_log: logs::log_path(
                home,
                &app.config,
                record.index,
                &record.name,
                LogStream::Out,
            ),
            err_log: logs::log_path(
                home,
                &app.config,
                record.index,
                &record.name,
                LogStream::Err,
            ),
            history: record.history.iter().cloned().collect(),
            info,
        })
    }
}

/// Hides values of variables whose names look secret.
pub fn redact(env: &mut BTreeMap<String, String>) {
    for (key, value) in env.iter_mut() {
        let upper = key.to_ascii_uppercase();
        if [
            "KEY",
            "SECRET",
            "TOKEN",
            "PASS",
            "CREDENTIAL",
            "AUTH",
            "PRIVATE",
            "COOKIE",
            "SESSION",
        ]
        .iter()
        .any(|word| upper.contains(word))
        {
            *value = "[redacted]".to_string();
        } else {
            *value = redact_url_password(value);
        }
    }
}

/// `scheme://user:secret@host/...` with the secret hidden (a database URL
/// or a health-check URL carries its password in plain sight).
pub fn redact_url_password(value: &str) -> String {
    let Some(scheme_end) = value.find("://") else {
        return value.to_string();
    };
    let rest = &value[scheme_end + 3..];
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    let Some(at) = authority.rfind('@') else {
        return value.to_string();
    };
    let Some(colon) = authority[..at].find(':') else {
        return value.to_string();
    };
    format!(
        "{}{}:[redacted]{}",
        &value[..scheme_end + 3],
        &authority[..colon],
        &rest[at..]
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmdaemon_core::config::AppConfig;

    fn table() -> Table {
        let mut table = Table::default();
        for (id, app, index) in [(1, "web", 0), (2, "web", 1), (3, "worker", 0)] {
            table.instances.insert(
                id,
                InstanceRecord::new(id, app, index, format!("{app}-{index}"), None),
            );
        }
        for name in ["web", "worker"] {
            table.apps.push(AppRecord {
                config: AppConfig {
                    name: name.into(),
                    ..AppConfig::default()
                },
                inherited_env: BTreeMap::new(),
                source: None,
            });
        }
        table
    }

    #[test]
    fn targets_resolve_by_every_kind() {
        let table = table();
        assert_eq!(table.resolve("all").unwrap(), [1, 2, 3]);
        assert_eq!(table.resolve("2").unwrap(), [2]);
        assert_eq!(table.resolve("web-1").unwrap(), [2]);
        assert_eq!(table.resolve("web").unwrap(), [1, 2]);
        for unknown in ["9", "web-7", "nope", ""] {
            assert!(matches!(
                table.resolve(unknown),
                Err(Error::UnknownTarget { .. })
            ));
        }
    }

    #[test]
    fn names_that_would_make_targets_ambiguous_are_taken() {
        let table = table();
        assert!(table.name_taken("web", 1));
        assert!(
            table.name_taken("web-1", 1),
            "an instance is already called web-1"
        );
        assert!(!table.name_taken("api", 3));
    }

    #[test]
    fn secret_looking_values_are_redacted() {
        let mut env: BTreeMap<String, String> = [
            ("API_KEY", "k"),
            ("db_password", "p"),
            ("GITHUB_TOKEN", "t"),
            ("NODE_ENV", "production"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        redact(&mut env);
        assert_eq!(env["API_KEY"], "[redacted]");
        assert_eq!(env["db_password"], "[redacted]");
        assert_eq!(env["GITHUB_TOKEN"], "[redacted]");
        assert_eq!(env["NODE_ENV"], "production");
        let mut more: BTreeMap<String, String> = [
            ("DB_PASS", "p"),
            ("PASSPHRASE", "p"),
            ("AUTH_HEADER", "Bearer x"),
            ("DATABASE_URL", "postgres://app:s3cret@db:5432/app"),
            ("HOME_PAGE", "https://example.com/a@b"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        redact(&mut more);
        assert_eq!(more["DB_PASS"], "[redacted]");
        assert_eq!(more["PASSPHRASE"], "[redacted]");
        assert_eq!(more["AUTH_HEADER"], "[redacted]");
        assert_eq!(
            more["DATABASE_URL"],
            "postgres://app:[redacted]@db:5432/app"
        );
        assert_eq!(more["HOME_PAGE"], "https://example.com/a@b");
    }
}
