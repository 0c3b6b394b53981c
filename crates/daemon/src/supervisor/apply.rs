//! Applying an ecosystem file: new apps start, unchanged apps are left
//! alone, changed apps are reconfigured and restarted, and (with prune) apps
//! that left the file are deleted.

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use futures_util::future::join_all;
use pmdaemon_core::api::{
    ApplyAction, ApplyOutcome, ApplyRequest, ApplyResponse, ExistingApps, Status,
};
use pmdaemon_core::config::AppConfig;

use super::{add_instances, Action, Supervisor};
use crate::ports;
use crate::Error;

impl Supervisor {
    /// Brings the apps of a file to their configuration. Every app's
    /// program is checked first: if one cannot run, nothing changes.
    pub async fn apply(self: &Arc<Self>, request: ApplyRequest) -> Result<ApplyResponse, Error> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let _batch = self.persister.batch();
        for config in &request.apps {
            config.validate()?;
            super::plan_first(config, &request.inherited_env).map_err(|err| {
                Error::AppCannotRun {
                    app: config.name.clone(),
                    source: Box::new(err),
                }
            })?;
        }
        let mut outcomes: Vec<Option<ApplyOutcome>> = request.apps.iter().map(|_| None).collect();
        // Apps new to the table start together: registered and spawned
        // without waiting on each other, and written once, below.
        let mut seen = HashSet::new();
        let new: Vec<usize> = (0..request.apps.len())
            .filter(|i| {
                let name = &request.apps[*i].name;
                seen.insert(name.clone()) && self.lock().app(name).is_none()
            })
            .collect();
        let starts = new.iter().map(|i| {
            let config = request.apps[*i].clone();
            self.register_batch(config, request.inherited_env.clone(), request.file.clone())
        });
        for (i, started) in new.iter().zip(join_all(starts).await) {
            outcomes[*i] = Some(outcome(
                &request.apps[*i].name,
                started.map(|s| {
                    (
                        ApplyAction::Started,
                        Some(started_detail(request.apps[*i].autostart, s.len())),
                    )
                }),
            ));
        }
        // The others (changed, stopped or unchanged), one by one.
        for (i, config) in request.apps.iter().enumerate() {
            if outcomes[i].is_none() {
                let result = self.apply_one(config.clone(), &request).await;
                outcomes[i] = Some(outcome(&config.name, result));
            }
        }
        // A memory limit may have been added or may run again.
        self.sampler.nudge();
        self.persist_now().await;
        let mut outcomes: Vec<ApplyOutcome> = outcomes.into_iter().flatten().collect();
        if request.prune {
            if let Some(file) = &request.file {
                let gone: Vec<String> = self
                    .lock()
                    .apps
                    .iter()
                    .filter(|a| a.source.as_ref() == Some(file))
                    .filter(|a| !request.apps.iter().any(|c| c.name == a.config.name))
                    .map(|a| a.config.name.clone())
                    .collect();
                for app in gone {
                    self.control(&app, Action::Delete, None).await?;
                    outcomes.push(ApplyOutcome {
                        app,
                        action: ApplyAction::Pruned,
                        detail: Some("no longer in the file".into()),
                    });
                }
            }
        }
        Ok(ApplyResponse { outcomes })
    }

    async fn apply_one(
        self: &Arc<Self>,
        config: AppConfig,
        request: &ApplyRequest,
    ) -> Result<(ApplyAction, Option<String>), Error> {
        let inherited_env = &request.inherited_env;
        let source = request.file.clone();
        let existing = self.lock().app(&config.name).map(|a| a.config.clone());
        let Some(existing) = existing else {
            let autostart = config.autostart;
            let started = self.register(config, inherited_env.clone(), source).await?;
            let detail = started_detail(autostart, started.len());
            return Ok((ApplyAction::Started, Some(detail)));
        };
        if existing == config && request.update_env {
            // From the next start on (now, with startOrRestart/-Reload).
            self.update_env(&config.name, inherited_env.clone())?;
        }
        if existing == config && request.existing != ExistingApps::Changed {
            return self
                .renew(&config.name, request.existing, "unchanged")
                .await;
        }
        if existing == config {
            let down: Vec<String> = {
                let table = self.lock();
                table
                    .instances
                    .values()
                    .filter(|i| i.app == config.name)
                    .filter(|i| matches!(i.status, Status::Stopped | Status::Errored))
                    .map(|i| i.name.clone())
                    .collect()
            };
            // autostart: false keeps it as the user left it.
            if down.is_empty() || !config.autostart {
                return Ok((ApplyAction::Unchanged, None));
            }
            for instance in &down {
                self.control(instance, Action::Start, None).await?;
            }
            return Ok((
                ApplyAction::Started,
                Some(format!("was stopped: {}", down.join(", "))),
            ));
        }
        let changed = changed_fields(&existing, &config);
        let app = config.name.clone();
        let detail = format!("changed: {}", changed.join(", "));
        if request.existing == ExistingApps::Reload {
            // The new configuration is taken by each instance as the
            // rollout reaches it.
            self.reconfigure(config, inherited_env.clone(), source, false)
                .await?;
            return self.renew(&app, ExistingApps::Reload, &detail).await;
        }
        self.reconfigure(config, inherited_env.clone(), source, true)
            .await?;
        Ok((ApplyAction::Restarted, Some(detail)))
    }

    /// Restarts or reloads every instance of an existing app.
    async fn renew(
        self: &Arc<Self>,
        app: &str,
        how: ExistingApps,
        detail: &str,
    ) -> Result<(ApplyAction, Option<String>), Error> {
        if how == ExistingApps::Reload {
            self.reload(app, 1, None).await?;
            return Ok((ApplyAction::Reloaded, Some(detail.to_string())));
        }
        self.control(app, Action::Restart, None).await?;
        Ok((ApplyAction::Restarted, Some(detail.to_string())))
    }

    /// Gives an existing app a new configuration: instances are added or
    /// removed to match, ports follow the new spec, and (with
    /// `restart_kept`) every instance restarts with the new settings.
    async fn reconfigure(
        self: &Arc<Self>,
        config: AppConfig,
        inherited_env: BTreeMap<String, String>,
        source: Option<std::path::PathBuf>,
        restart_kept: bool,
    ) -> Result<(), Error> {
        let app = config.name.clone();
        let old_logs = self.app_log_paths(&app);
        // A shared port that changes (or stops being shared) is held by the
        // running instances: they stop before it is bound anew.
        let old_sharing = self.lock().app(&app).and_then(|a| a.config.sharing());
        if old_sharing != config.sharing() {
            // Checked first, so that a refused port leaves the app running.
            if let Some(spec) = &config.port {
                let table = self.lock();
                let wanted: Vec<u32> = (0..config.instances).collect();
                ports::allocate(
                    spec,
                    &wanted,
                    &table.holders(&app),
                    &Default::default(),
                    false,
                )?;
            }
            let _ = self.control(&app, Action::Stop, None).await;
            self.balancer.close(&app);
        }
        let (surplus, added) = {
            let mut table = self.lock();
            let current = table.instances_of(&app);
            let wanted: Vec<u32> = (0..config.instances).collect();
            let ports: Vec<Option<u16>> = match &config.port {
                None => vec![None; wanted.len()],
                Some(spec) => {
                    // This app's own instances still hold the old ports, so
                    // only other apps' ports are checked.
                    let held = table.holders(&app);
                    ports::allocate(spec, &wanted, &held, &Default::default(), false)?
                        .into_iter()
                        .map(Some)
                        .collect()
                }
            };
            if let Some(record) = table.app_mut(&app) {
                record.config = config.clone();
                record.inherited_env = inherited_env;
                record.source = source;
            }
            let mut surplus = Vec::new();
            for (index, id) in &current {
                match table.instance_mut(*id) {
                    Some(record) if *index < config.instances => {
                        record.port = ports[*index as usize];
                        record.port_override = None;
                    }
                    _ => surplus.push(*id),
                }
            }
            let missing: Vec<u32> = wanted
                .iter()
                .copied()
                .filter(|i| !current.iter().any(|(index, _)| index == i))
                .collect();
            let missing_ports = missing.iter().map(|i| ports[*i as usize]).collect();
            let added = add_instances(
                &mut table,
                &config,
                &missing,
                missing_ports,
                "configuration applied",
            );
            (surplus, added)
        };
        self.remove(&surplus).await;
        let kept: Vec<String> = {
            let table = self.lock();
            table
                .instances
                .values()
                .filter(|i| i.app == app && !added.contains(&i.id))
                .map(|i| i.name.clone())
                .collect()
        };
        // New instances get their tasks first, so that a failed restart
        // below never leaves a record without one.
        let started = self.start_new(&added).await;
        let mut failure = started.err();
        for instance in kept.into_iter().filter(|_| restart_kept) {
            if let Err(err) = self.control(&instance, Action::Restart, None).await {
                failure.get_or_insert(err);
            }
        }
        self.arm_triggers_and_wait(&app).await;
        self.forget_unused_logs(&old_logs);
        self.persist_now().await;
        failure.map_or(Ok(()), Err)
    }
}

/// What applying one app came to, for the report.
fn outcome(app: &str, result: Result<(ApplyAction, Option<String>), Error>) -> ApplyOutcome {
    match result {
        Ok((action, detail)) => ApplyOutcome {
            app: app.to_string(),
            action,
            detail,
        },
        Err(err) => ApplyOutcome {
            app: app.to_string(),
            action: ApplyAction::Failed,
            detail: Some(err.to_string()),
        },
    }
}

/// The names of the fields that differ, for the report.
fn changed_fields(old: &AppConfig, new: &AppConfig) -> Vec<String> {
    let (Ok(serde_json::Value::Object(old)), Ok(serde_json::Value::Object(new))) =
        (serde_json::to_value(old), serde_json::to_value(new))
    else {
        return vec!["configuration".into()];
    };
    new.iter()
        .filter(|(key, value)| old.get(*key) != Some(value))
        .map(|(key, _)| key.clone())
        .collect()
}

/// What an apply says of an app it started: how many instances, and that
/// they were only registered when its `autostart` is off.
fn started_detail(autostart: bool, instances: usize) -> String {
    if autostart {
        format!("{instances} instance(s)")
    } else {
        format!("{instances} instance(s) registered, stopped (autostart is off)")
    }
}
