//! The process table and the operations the API performs on it.
//!
//! The table lives behind one mutex that is held only for short, non-async
//! sections. Each instance is driven by its own task ([`instance`]); the
//! supervisor sends it commands and awaits their replies, so an API call
//! returns only once what it asked for has happened (a stopped instance has
//! no process left). Every change is written by a single persister task
//! ([`crate::store::Persister`]) that coalesces bursts, as a line of
//! `state.journal` holding the records marked changed ([`table::Table`]'s
//! `touch`); mutating API calls wait until their change is on disk before
//! answering, and a batch (an ecosystem file, `restart all`) waits once.
//!
//! The rooms: this file holds the table's lock and the control verbs;
//! `launch` gathers what an instance's launch needs (plan, shared port); `apps` registers and scales apps, `apply` brings them to an
//! ecosystem file, `reload` rolls them, `lifetime` resumes, parks and shuts
//! down (and saves and resurrects dumps), `reset` zeroes counters and
//! updates environments, `signal` signals processes, `probes` takes what health checks, samplers and triggers report,
//! and `log_views` says which files each instance writes and reads them.

mod apply;
mod apps;
mod dump;
mod escapes;
pub(crate) mod instance;
mod launch;
mod lifetime;
mod log_views;
mod probes;
mod reload;
mod reset;
mod signal;
mod table;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pmdaemon_core::api::{ProcessDetail, ProcessInfo, Status, SystemInfo};
use pmdaemon_core::config::{check_ports_fit, AppConfig};
use pmdaemon_core::ports::PortSpec;
use tokio::sync::{oneshot, watch, Notify};

use self::apps::{add_instances, plan_first};
use self::instance::Command;
pub(crate) use self::launch::LaunchInputs;
use self::table::Table;
use crate::paths::Home;
use crate::reaper::Reaper;
use crate::store::{self, InstanceRecord, State};
use crate::{logs, ports, Error};

/// What a control request does to each targeted instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Start if not running.
    Start,
    /// Stop and keep stopped.
    Stop,
    /// Stop if running, then start.
    Restart,
    /// Stop and forget.
    Delete,
}

/// The daemon's process table and everything that acts on it.
#[derive(Debug)]
pub struct Supervisor {
    pub(crate) home: Home,
    pub(crate) reaper: Arc<Reaper>,
    /// Creates the instances' processes (none: the daemon forks itself).
    pub(crate) spawner: Mutex<Option<crate::spawn::spawner::Spawner>>,
    /// The spawner's pid, as it was started.
    spawner_pid: Option<u32>,
    pub(crate) log_files: logs::LogFiles,
    /// The shared ports of shared-port clusters.
    pub(crate) balancer: crate::balancer::Balancer,
    table: Mutex<Table>,
    persister: Arc<store::Persister>,
    shutting_down: AtomicBool,
    /// The outcome of the one shutdown, which every caller waits for.
    shut_down: tokio::sync::OnceCell<Vec<String>>,
    /// Becomes true once shutdown has stopped every app.
    stopped: watch::Sender<bool>,
    /// Notified whenever an instance's record changes (readiness waits).
    pub(crate) changed: Notify,
    /// One lock per app: reloads and restarts of an app never interleave.
    app_locks: Mutex<BTreeMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// The host, as last sampled.
    system: Mutex<Option<SystemInfo>>,
    /// The watch and cron tasks of each app.
    triggers: Mutex<BTreeMap<String, Vec<tokio::task::JoinHandle<()>>>>,
    /// The live events of `GET /ws`.
    pub events: crate::events::Events,
    /// The sampler's memory and rate.
    pub(crate) sampler: crate::metrics::Sampler,
    /// Kills what escaped instances' groups, for many stops at a time.
    pub(crate) escapes: escapes::Escapes,
}

impl Supervisor {
    /// Builds the supervisor from a loaded state and starts its persister.
    /// Instances are not started until [`Supervisor::resume`].
    pub fn new(
        home: Home,
        reaper: Arc<Reaper>,
        spawner: Option<crate::spawn::spawner::Spawner>,
        state: State,
    ) -> Arc<Self> {
        let seq = state.journal_seq;
        let (escapes, escapes_task) = escapes::Escapes::new();
        let supervisor = Arc::new(Self {
            home,
            reaper,
            spawner_pid: spawner.as_ref().map(crate::spawn::spawner::Spawner::pid),
            spawner: Mutex::new(spawner),
            log_files: logs::LogFiles::default(),
            balancer: crate::balancer::Balancer::default(),
            table: Mutex::new(Table::from_state(state)),
            persister: Arc::new(store::Persister::default()),
            shutting_down: AtomicBool::new(false),
            shut_down: tokio::sync::OnceCell::new(),
            stopped: watch::Sender::new(false),
            triggers: Mutex::new(BTreeMap::new()),
            system: Mutex::new(None),
            changed: Notify::new(),
            app_locks: Mutex::new(BTreeMap::new()),
            events: crate::events::Events::default(),
            sampler: crate::metrics::Sampler::new(crate::metrics::interval_from_env()),
            escapes,
        });
        escapes_task.start(Arc::downgrade(&supervisor));
        let weak = Arc::downgrade(&supervisor);
        supervisor
            .persister
            .spawn(supervisor.home.state_file(), seq, move |full| {
                weak.upgrade()
                    .map(|supervisor| supervisor.lock().changes(full))
            });
        supervisor
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Asks for the table to be written soon (coalesced).
    pub(crate) fn persist_soon(&self) -> u64 {
        self.persister.soon()
    }

    /// Writes the table and waits until it is on disk.
    pub async fn persist_now(&self) {
        self.persister.now().await;
    }

    pub(crate) fn update_instance<T>(
        &self,
        id: u32,
        change: impl FnOnce(&mut InstanceRecord) -> T,
    ) -> Option<T> {
        let mut table = self.lock();
        let result = table.instance_mut(id).map(|record| {
            let before = crate::events::Before::of(record);
            let result = change(record);
            self.events.changed(&before, record);
            result
        });
        drop(table);
        self.changed.notify_waiters();
        result
    }

    /// Every process the table records (each instance's, and the one a
    /// reload is replacing) and the spawner: not escapees, whatever marks
    /// they carry.
    pub(crate) fn known_pids(&self) -> std::collections::HashSet<u32> {
        let mut known: std::collections::HashSet<u32> = self
            .lock()
            .instances
            .values()
            .flat_map(|r| [r.pid, r.previous_pid])
            .flatten()
            .collect();
        // The daemon's own child, whatever its environment holds.
        known.extend(self.spawner_pid);
        known
    }

    /// Takes the locks of the apps of `ids` (in name order, so that two
    /// callers never wait for each other crosswise).
    async fn lock_apps(&self, ids: &[u32]) -> Vec<tokio::sync::OwnedMutexGuard<()>> {
        let apps = self.lock().apps_of(ids);
        let mut guards = Vec::new();
        for app in apps {
            let lock = {
                let mut locks = self.app_locks.lock().unwrap_or_else(|e| e.into_inner());
                Arc::clone(locks.entry(app).or_default())
            };
            guards.push(lock.lock_owned().await);
        }
        guards
    }

    /// Waits until `id` runs and is ready, or says why it is not by
    /// `deadline`.
    async fn wait_ready(&self, id: u32, deadline: tokio::time::Instant) -> Result<(), String> {
        loop {
            let changed = self.changed.notified();
            let state = self
                .lock()
                .instances
                .get(&id)
                .map(|r| (r.status, r.ready, r.health_error.clone(), r.last_exit));
            let Some((status, ready, error, last_exit)) = state else {
                return Err("it was deleted".into());
            };
            if status == Status::Online && ready {
                return Ok(());
            }
            if status == Status::Errored || status == Status::Stopped {
                let why =
                    last_exit.map_or_else(|| status.to_string(), |e| format!("{status} after {e}"));
                return Err(why);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(error.unwrap_or_else(|| format!("still {status}, not ready")));
            }
            tokio::select! {
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
        }
    }

    pub(crate) fn app_config(&self, id: u32) -> Option<AppConfig> {
        let table = self.lock();
        let app = &table.instances.get(&id)?.app;
        table.app(app).map(|a| a.config.clone())
    }

    /// Sends each instance of `ids` the command `make` builds (all before
    /// awaiting any, so that they act in parallel); returns the first error.
    async fn command_all(
        &self,
        ids: &[u32],
        make: impl Fn(instance::Reply) -> Command,
    ) -> Option<Error> {
        let mut replies = Vec::new();
        for id in ids {
            let handle = self.lock().handles.get(id).cloned();
            let Some(handle) = handle else { continue };
            let (reply, receiver) = oneshot::channel();
            if handle.send(make(reply)).await.is_ok() {
                replies.push((*id, receiver));
            }
        }
        first_failure(replies).await
    }

    /// Applies `action` to every instance `target` names.
    pub async fn control(
        self: &Arc<Self>,
        target: &str,
        action: Action,
        port: Option<PortSpec>,
    ) -> Result<Vec<ProcessInfo>, Error> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let ids = self.lock().resolve(target)?;
        // A restart waits for a reload of the same app to finish (not
        // holding a batch meanwhile).
        let _guards = if action == Action::Restart {
            self.lock_apps(&ids).await
        } else {
            Vec::new()
        };
        let _batch = self.persister.batch();
        if matches!(action, Action::Start | Action::Restart) {
            self.override_ports(&ids, port)?;
        }
        if action == Action::Delete {
            let infos = self.remove(&ids).await;
            self.persist_now().await;
            return Ok(infos);
        }
        let failure = self
            .command_all(&ids, |reply| match action {
                Action::Start => Command::Start(reply),
                Action::Stop | Action::Delete => Command::Stop(reply),
                Action::Restart => Command::Restart(reply),
            })
            .await;
        // An app with a memory limit may run again: the sampler decides its
        // rate now, not at the end of an idle minute.
        self.sampler.nudge();
        self.persist_now().await;
        if let Some(err) = failure {
            return Err(err);
        }
        let table = self.lock();
        Ok(ids.iter().filter_map(|id| table.info(*id)).collect())
    }

    /// Sets (or, without a spec, clears) the run-only ports of `ids`, which
    /// `restart --port` gives; the app's saved spec is left as it was.
    fn override_ports(&self, ids: &[u32], spec: Option<PortSpec>) -> Result<(), Error> {
        let mut table = self.lock();
        let Some(spec) = spec else {
            for id in ids {
                if let Some(record) = table.instance_mut(*id) {
                    record.port_override = None;
                }
            }
            return Ok(());
        };
        let apps = table.apps_of(ids);
        if apps.len() != 1 {
            return Err(Error::PortsForOneApp);
        }
        if let Some((port, _)) = table.app(&apps[0]).and_then(|a| a.config.sharing()) {
            return Err(Error::SharedPortFixed {
                app: apps[0].clone(),
                port,
            });
        }
        check_ports_fit(&spec, ids.len() as u32)?;
        let indices: Vec<u32> = (0..ids.len() as u32).collect();
        let held = table.holders(&apps[0]);
        let own = table.own_ports(&apps[0], ids);
        // The targeted instances still hold their current ports until they
        // are restarted, so the system check would trip over them.
        let ports = ports::allocate(&spec, &indices, &held, &own, false)?;
        for (id, port) in ids.iter().zip(ports) {
            if let Some(record) = table.instance_mut(*id) {
                record.port_override = Some(port);
            }
        }
        Ok(())
    }

    /// Stops, then forgets, instances; apps left without instances go too.
    async fn remove(&self, ids: &[u32]) -> Vec<ProcessInfo> {
        let mut replies = Vec::new();
        for id in ids {
            let handle = self.lock().handles.remove(id);
            if let Some(handle) = handle {
                let (reply, receiver) = oneshot::channel();
                if handle.send(Command::Delete(reply)).await.is_ok() {
                    replies.push(receiver);
                }
            }
        }
        for receiver in replies {
            let _ = receiver.await;
        }
        let mut table = self.lock();
        let infos = ids.iter().filter_map(|id| table.info(*id)).collect();
        let mut closing = Vec::new();
        for id in ids {
            let (out, err) = table.log_paths(*id, &self.home);
            closing.extend([out, err]);
            table.touch(*id);
            if let Some(record) = table.instances.remove(id) {
                self.events.send(pmdaemon_core::api::Event::Removed {
                    id: *id,
                    instance: record.name,
                    app: record.app,
                });
            }
        }
        let Table {
            apps, instances, ..
        } = &mut *table;
        let mut gone = Vec::new();
        apps.retain(|app| {
            let kept = instances.values().any(|i| i.app == app.config.name);
            if !kept {
                gone.push(app.config.name.clone());
            }
            kept
        });
        for app in &gone {
            table.touch_app(app);
        }
        drop(table);
        // What only the removed instances used: their log files, and the
        // watch and cron tasks of apps that are gone.
        self.forget_unused_logs(&closing);
        let mut triggers = self.triggers.lock().unwrap_or_else(|e| e.into_inner());
        for app in gone {
            for task in triggers.remove(&app).unwrap_or_default() {
                task.abort();
            }
            self.balancer.close(&app);
        }
        infos
    }

    /// Every instance, in id order.
    pub fn list(&self) -> Vec<ProcessInfo> {
        self.look();
        let mut infos: Vec<ProcessInfo> = self.lock().infos();
        for info in &mut infos {
            self.count_connections(info);
        }
        infos
    }

    /// Everything about the instances `target` names.
    pub fn detail(&self, target: &str) -> Result<Vec<ProcessDetail>, Error> {
        self.look();
        let mut details: Vec<ProcessDetail> = {
            let table = self.lock();
            let ids = table.resolve(target)?;
            ids.iter()
                .filter_map(|id| table.detail(*id, &self.home))
                .collect()
        };
        for detail in &mut details {
            self.count_connections(&mut detail.info);
        }
        Ok(details)
    }

    /// Fills in the connections the proxy has open to a proxy-mode process.
    fn count_connections(&self, info: &mut ProcessInfo) {
        if info.shared_port == Some(pmdaemon_core::config::SharedPort::Proxy) {
            if let Some(pid) = info.pid {
                info.connections = self.balancer.connections(&info.app, pid).or(Some(0));
            }
        }
    }
}

/// Awaits every reply; returns the first error.
async fn first_failure(replies: Vec<(u32, oneshot::Receiver<Result<(), Error>>)>) -> Option<Error> {
    let mut failure = None;
    for (id, receiver) in replies {
        match receiver.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                failure.get_or_insert(err);
            }
            Err(_) => {
                tracing::error!("the task of instance {id} ended without answering");
                failure.get_or_insert(Error::InstanceGone { id });
            }
        }
    }
    failure
}
