//! Registering apps and sizing them: start (all instances or none), and
//! scale up or down.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pmdaemon_core::api::{ProcessInfo, ScaleRequest, StartRequest};
use pmdaemon_core::config::{check_ports_fit, AppConfig};
use pmdaemon_core::ports::PortSpec;
use tokio::sync::oneshot;

use super::instance::Command;
use super::table::Table;
use super::{first_failure, Supervisor};
use crate::spawn::{self, InstanceEnv};
use crate::store::{AppRecord, InstanceRecord};
use crate::{ports, Error};

impl Supervisor {
    /// Registers and starts a new app. Nothing is registered unless every
    /// instance started.
    pub async fn start_app(
        self: &Arc<Self>,
        request: StartRequest,
    ) -> Result<Vec<ProcessInfo>, Error> {
        self.register(request.config, request.inherited_env, None)
            .await
    }

    /// Registers and starts `config` (only registers it, stopped, when its
    /// `autostart` is off), remembering the file it came from.
    pub(super) async fn register(
        self: &Arc<Self>,
        config: AppConfig,
        inherited_env: BTreeMap<String, String>,
        source: Option<std::path::PathBuf>,
    ) -> Result<Vec<ProcessInfo>, Error> {
        config.validate()?;
        // Fail fast, before registering anything, on a bad program or cwd.
        plan_first(&config, &inherited_env)?;
        let _batch = self.persister.batch();
        let started = self.register_batch(config, inherited_env, source).await?;
        self.persist_now().await;
        Ok(started)
    }

    /// Registers and starts an app of a batch whose configurations and
    /// programs were checked: the caller writes the table once for all.
    pub(super) async fn register_batch(
        self: &Arc<Self>,
        config: AppConfig,
        inherited_env: BTreeMap<String, String>,
        source: Option<std::path::PathBuf>,
    ) -> Result<Vec<ProcessInfo>, Error> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let ids: Vec<u32> = {
            let mut table = self.lock();
            if table.name_taken(&config.name, config.instances) {
                return Err(Error::DuplicateName {
                    name: config.name.clone(),
                });
            }
            let indices: Vec<u32> = (0..config.instances).collect();
            let ports = self.allocate_ports(&table, &config, &indices)?;
            if let Some((port, mode)) = config.sharing() {
                self.balancer.open(&config.name, port, mode)?;
            }
            table.touch_app(&config.name);
            table.apps.push(AppRecord {
                config: config.clone(),
                inherited_env,
                source,
            });
            let ids = add_instances(&mut table, &config, &indices, ports, "pmdaemon start");
            if !config.autostart {
                for id in &ids {
                    if let Some(record) = table.instances.get_mut(id) {
                        record.desired = crate::store::Desired::Stopped;
                        record.status = pmdaemon_core::api::Status::Stopped;
                        record.record("stopped", "autostart is off: `pmdaemon start` starts it");
                    }
                }
            }
            ids
        };
        if config.autostart {
            self.start_new(&ids).await?;
        } else {
            // Registered, stopped: its tasks wait for a start.
            for id in &ids {
                self.spawn_task(*id, false);
            }
        }
        if config.max_memory_restart.is_some() {
            // Its limit is checked at the full rate from now on.
            self.sampler.nudge();
        }
        self.arm_triggers_and_wait(&config.name).await;
        let table = self.lock();
        Ok(ids.iter().filter_map(|id| table.info(*id)).collect())
    }

    /// Ports for new instances `indices` of `config`'s app, or None each
    /// when it has no port spec.
    pub(super) fn allocate_ports(
        &self,
        table: &Table,
        config: &AppConfig,
        indices: &[u32],
    ) -> Result<Vec<Option<u16>>, Error> {
        match &config.port {
            None => Ok(vec![None; indices.len()]),
            Some(spec) => {
                let held = table.holders(&config.name);
                let own = table.own_ports(&config.name, &[]);
                let ports = ports::allocate(spec, indices, &held, &own, true)?;
                Ok(ports.into_iter().map(Some).collect())
            }
        }
    }

    /// Starts the tasks of freshly added instances; if any fails to start,
    /// all of them are removed again (all or nothing).
    pub(super) async fn start_new(self: &Arc<Self>, ids: &[u32]) -> Result<(), Error> {
        let mut replies = Vec::new();
        for id in ids {
            let (reply, receiver) = oneshot::channel();
            let _ = self
                .spawn_task(*id, false)
                .send(Command::Start(reply))
                .await;
            replies.push((*id, receiver));
        }
        if let Some(err) = first_failure(replies).await {
            self.remove(ids).await;
            self.persist_now().await;
            return Err(err);
        }
        Ok(())
    }

    /// Changes the number of instances of `app` (to `request.instances`, or
    /// by `request.add`): new ones take the next ports of its spec; the
    /// highest-numbered ones are removed first.
    pub async fn scale(
        self: &Arc<Self>,
        app: &str,
        request: &ScaleRequest,
    ) -> Result<Vec<ProcessInfo>, Error> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let _batch = self.persister.batch();
        let (added, removed, instances) = {
            let mut table = self.lock();
            let config = table
                .app(app)
                .map(|a| a.config.clone())
                .ok_or_else(|| table.unknown(app))?;
            let current = table.instances_of(app);
            // Relative to the instances there are now, under the lock.
            let instances = match (request.instances, request.add) {
                (Some(instances), None) => i64::from(instances),
                (None, Some(add)) => current.len() as i64 + i64::from(add),
                _ => return Err(Error::ScaleAmbiguous),
            };
            if instances <= 0 {
                return Err(Error::ScaleToZero {
                    app: app.to_string(),
                });
            }
            let instances = u32::try_from(instances).unwrap_or(u32::MAX);
            pmdaemon_core::config::check_instances(instances)?;
            if let Some(spec) = &config.port {
                check_ports_fit(spec, instances)?;
            }
            if let (Some(PortSpec::Single(port)), None) = (&config.port, config.sharing()) {
                if instances > 1 {
                    return Err(Error::PortNotShared {
                        app: app.to_string(),
                        port: *port,
                        instances,
                    });
                }
            }
            let have = current.len() as u32;
            let next_index = current.last().map_or(0, |(index, _)| index + 1);
            let (added, removed) = if instances > have {
                let indices: Vec<u32> = (next_index..next_index + instances - have).collect();
                // A new instance must not take the name of another app or
                // instance (`web` scaled to 2 would shadow app web-1).
                for index in &indices {
                    let name = config.instance_name(*index);
                    if table.apps.iter().any(|a| a.config.name == name)
                        || table.instances.values().any(|i| i.name == name)
                    {
                        return Err(Error::NameClash {
                            app: app.to_string(),
                            instances,
                            name,
                        });
                    }
                }
                let ports = self.allocate_ports(&table, &config, &indices)?;
                let reason = match request.add {
                    Some(add) => format!("pmdaemon scale {app} {add:+}"),
                    None => format!("pmdaemon scale {app} {instances}"),
                };
                let added = add_instances(&mut table, &config, &indices, ports, &reason);
                (added, Vec::new())
            } else {
                let surplus = current[instances as usize..].iter().map(|(_, id)| *id);
                (Vec::new(), surplus.collect())
            };
            if let Some(record) = table.app_mut(app) {
                // A shared-port cluster stays one when scaled down to 1.
                if record.config.sharing().is_some() {
                    record.config.exec_mode = pmdaemon_core::config::ExecMode::Cluster;
                }
                record.config.instances = instances;
            }
            (added, removed, instances)
        };
        tracing::info!("{app} scaled to {instances} instance(s)");
        if let Err(err) = self.start_new(&added).await {
            self.set_instance_count(app);
            self.persist_now().await;
            return Err(err);
        }
        // At least one instance remains, so remove() keeps the app.
        self.remove(&removed).await;
        // Watch ignores the log files of the instances there are now.
        self.arm_triggers_and_wait(app).await;
        self.persist_now().await;
        let table = self.lock();
        Ok(table
            .instances
            .values()
            .filter(|i| i.app == app)
            .filter_map(|i| table.info(i.id))
            .collect())
    }

    /// Brings an app's configured instance count back in line with its
    /// instances (after a failed scale-up).
    pub(super) fn set_instance_count(&self, app: &str) {
        let mut table = self.lock();
        let count = table.instances.values().filter(|i| i.app == app).count() as u32;
        if let Some(record) = table.app_mut(app) {
            record.config.instances = count;
        }
    }
}

/// The launch plan of `config`'s first instance: whether its program and
/// cwd can run, checked before anything is registered.
pub(crate) fn plan_first(
    config: &AppConfig,
    inherited_env: &BTreeMap<String, String>,
) -> Result<spawn::Plan, Error> {
    // The caller's environment is saved with the app: one execve cannot
    // pass would fail every start after this one.
    pmdaemon_core::limits::check_env_entries(inherited_env)?;
    let first = InstanceEnv {
        index: 0,
        name: &config.instance_name(0),
        port: None,
    };
    spawn::plan(config, inherited_env, &first)
}

/// Adds records for new instances `indices` of `config`'s app with their
/// ports; returns their ids.
pub(super) fn add_instances(
    table: &mut Table,
    config: &AppConfig,
    indices: &[u32],
    ports: Vec<Option<u16>>,
    reason: &str,
) -> Vec<u32> {
    let mut ids = Vec::new();
    for (index, port) in indices.iter().zip(ports) {
        let id = table.next_id;
        table.next_id += 1;
        let mut record =
            InstanceRecord::new(id, &config.name, *index, config.instance_name(*index), port);
        record.record("created", reason);
        table.instances.insert(id, record);
        table.touch(id);
        ids.push(id);
    }
    ids
}
