//! What probes and samplers report to the table: health, readiness,
//! measured samples, and restarts they ask for (memory limit, watch, cron);
//! and the registry of each app's watch and cron tasks.

use std::sync::Arc;

use pmdaemon_core::api::{Health, Status, SystemInfo};
use tokio::sync::oneshot;

use super::instance::Command;
use super::Supervisor;

impl Supervisor {
    /// Records a health check's verdict, if `pid` still runs as `id`.
    pub(crate) fn set_health(
        &self,
        id: u32,
        pid: u32,
        health: Health,
        error: Option<String>,
        ready: bool,
    ) {
        let app = self.update_instance(id, |record| {
            if record.pid == Some(pid) {
                record.health = health;
                if error.is_some() || health == Health::Healthy {
                    record.health_error = error;
                }
                record.ready |= ready;
                Some((record.app.clone(), record.ready))
            } else {
                None
            }
        });
        if let Some((app, ready)) = app.flatten() {
            self.balancer
                .set_healthy(&app, pid, health != Health::Unhealthy);
            if ready {
                self.balancer.set_ready(&app, pid);
            }
        }
    }

    /// Marks `id` ready, if `pid` still runs as `id`.
    pub(crate) fn set_ready(&self, id: u32, pid: u32) {
        let app = self.update_instance(id, |record| {
            if record.pid == Some(pid) {
                record.ready = true;
                Some(record.app.clone())
            } else {
                None
            }
        });
        if let Some(app) = app.flatten() {
            self.balancer.set_ready(&app, pid);
        }
    }

    /// (Re)starts the watch and cron tasks of `app` from its configuration,
    /// or stops them when the app is gone.
    pub(crate) fn arm_triggers(self: &Arc<Self>, app: &str) -> Option<oneshot::Receiver<()>> {
        let config = self.lock().app(app).map(|a| a.config.clone());
        let (tasks, watching) = config
            .map(|c| crate::triggers::arm(self, &c))
            .unwrap_or_default();
        let mut triggers = self.triggers.lock().unwrap_or_else(|e| e.into_inner());
        for old in triggers.remove(app).unwrap_or_default() {
            old.abort();
        }
        if !tasks.is_empty() {
            triggers.insert(app.to_string(), tasks);
        }
        watching
    }

    /// [`arm_triggers`](Self::arm_triggers), for a request: it answers once
    /// the app's files are watched (a change made right after `start` is
    /// seen), or after 2 s for a tree too big to wait for.
    pub(crate) async fn arm_triggers_and_wait(self: &Arc<Self>, app: &str) {
        if let Some(watching) = self.arm_triggers(app) {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(2), watching).await;
        }
    }

    /// Running instances to sample: id, pid, memory limit.
    pub(crate) fn sampling_targets(&self) -> Vec<crate::metrics::Target> {
        let table = self.lock();
        // By name, once: a lookup per instance would cost apps × instances.
        let limits: std::collections::HashMap<&str, u64> = table
            .apps
            .iter()
            .filter_map(|a| Some((a.config.name.as_str(), a.config.max_memory_restart?)))
            .collect();
        table
            .instances
            .values()
            .filter(|i| i.status == Status::Online)
            .filter_map(|i| Some((i.id, i.pid?, limits.get(i.app.as_str()).copied())))
            .collect()
    }

    /// Someone looks at the figures (`list`, `describe`, `/metrics`,
    /// `/api/system`): the sampler keeps its full rate for a while, and
    /// samples now if its last sample is stale. Instances that run but were
    /// never sampled (just started) get a first figure of their own.
    pub(crate) fn look(&self) {
        if !self.sampler.enabled() {
            return;
        }
        if self.sampler.looked() {
            let measured = self.sampler.measure(self.sampling_targets());
            self.store_samples(
                &measured.samples,
                crate::metrics::system_info(measured.host_percent),
            );
            return;
        }
        let unsampled: Vec<crate::metrics::Target> = self
            .lock()
            .instances
            .values()
            .filter(|i| i.status == Status::Online && i.memory_bytes.is_none())
            .filter_map(|i| Some((i.id, i.pid?, None)))
            .collect();
        if !unsampled.is_empty() {
            let samples = self.sampler.measure_leaders(&unsampled);
            let mut table = self.lock();
            for (id, sample) in samples {
                if let Some(record) = table.instances.get_mut(&id) {
                    record.cpu_percent = Some(sample.cpu_percent);
                    record.memory_bytes = Some(sample.memory_bytes);
                }
            }
        }
    }

    /// Records what the sampler measured.
    pub(crate) fn store_samples(
        &self,
        samples: &[(u32, crate::metrics::Sample)],
        system: SystemInfo,
    ) {
        let mut measured = Vec::new();
        {
            let mut table = self.lock();
            for (id, sample) in samples {
                if let Some(record) = table.instances.get_mut(id) {
                    record.cpu_percent = Some(sample.cpu_percent);
                    record.memory_bytes = Some(sample.memory_bytes);
                    if self.events.listened() {
                        measured.push(pmdaemon_core::api::MetricSample {
                            id: *id,
                            instance: record.name.clone(),
                            app: record.app.clone(),
                            cpu_percent: sample.cpu_percent,
                            memory_bytes: sample.memory_bytes,
                        });
                    }
                }
            }
        }
        if !measured.is_empty() {
            self.events.send(pmdaemon_core::api::Event::Metrics {
                at_ms: crate::store::now_ms(),
                samples: measured,
            });
        }
        *self.system.lock().unwrap_or_else(|e| e.into_inner()) = Some(system);
    }

    /// The host and the daemon, as last sampled (or now, if sampling is off).
    pub fn system(&self) -> SystemInfo {
        self.look();
        let mut system = self
            .system
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| crate::metrics::system_info(None));
        system.state_writes = self.persister.writes();
        system
    }

    /// Restarts the instances `target` names because of `reason` (memory
    /// limit, watch, cron, health): each instance's task says why and
    /// restarts if the user wants it running; ports given by
    /// `restart --port` are kept.
    pub(crate) async fn restart_for(self: &Arc<Self>, target: impl ToString, reason: String) {
        let target = target.to_string();
        let ids = match self.lock().resolve(&target) {
            Ok(ids) => ids,
            Err(_) => return,
        };
        let failure = self
            .command_all(&ids, |reply| Command::RestartFor {
                reason: reason.clone(),
                reply,
            })
            .await;
        if let Some(err) = failure {
            tracing::warn!("{target}: restart after '{reason}' failed: {err}");
        }
        self.persist_now().await;
    }
}

impl crate::health::Reporter for Supervisor {
    fn set_health(&self, id: u32, pid: u32, health: Health, error: Option<String>, ready: bool) {
        Supervisor::set_health(self, id, pid, health, error, ready);
    }

    fn set_ready(&self, id: u32, pid: u32) {
        Supervisor::set_ready(self, id, pid);
    }

    fn request_restart(self: Arc<Self>, id: u32, reason: String) {
        tokio::spawn(async move { self.restart_for(id, reason).await });
    }

    fn reaper(&self) -> &crate::reaper::Reaper {
        &self.reaper
    }

    fn spawner(&self) -> &std::sync::Mutex<Option<crate::spawn::spawner::Spawner>> {
        &self.spawner
    }
}

impl crate::metrics::Sampled for Supervisor {
    fn sampling_targets(&self) -> Vec<crate::metrics::Target> {
        Supervisor::sampling_targets(self)
    }

    fn store_samples(&self, samples: &[(u32, crate::metrics::Sample)], system: SystemInfo) {
        Supervisor::store_samples(self, samples, system);
    }

    fn request_restart(self: Arc<Self>, id: u32, reason: String) {
        tokio::spawn(async move { self.restart_for(id, reason).await });
    }

    fn memory_limited(&self) -> bool {
        let table = self.lock();
        let limited: std::collections::HashSet<&str> = table
            .apps
            .iter()
            .filter(|a| a.config.max_memory_restart.is_some())
            .map(|a| a.config.name.as_str())
            .collect();
        !limited.is_empty()
            && table.instances.values().any(|i| {
                i.desired == crate::store::Desired::Running && limited.contains(i.app.as_str())
            })
    }

    fn sampler(&self) -> &crate::metrics::Sampler {
        &self.sampler
    }

    fn streaming(&self) -> bool {
        self.events.listened()
    }
}

impl crate::triggers::Restarts for Supervisor {
    async fn restart_for(self: Arc<Self>, target: String, reason: String) {
        Supervisor::restart_for(&self, target, reason).await;
    }

    fn home(&self) -> &crate::Home {
        &self.home
    }
}
