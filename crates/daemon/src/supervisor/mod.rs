//! The process table and the operations the API performs on it.
//!
//! The table lives behind one mutex that is held only for short, non-async
//! sections. Each instance is driven by its own task ([`instance`]); the
//! supervisor sends it commands and awaits their replies, so an API call
//! returns only once what it asked for has happened (a stopped instance has
//! no process left). Every change is written to `state.json` by a single
//! persister task that coalesces bursts; mutating API calls wait until their
//! change is on disk before answering.

mod apply;
pub(crate) mod instance;
mod table;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pmdaemon_core::api::{
    Health, LogStream, LogTail, LogsResponse, ProcessDetail, ProcessInfo, StartRequest, Status,
    SystemInfo,
};
use pmdaemon_core::config::{check_ports_fit, AppConfig};
use pmdaemon_core::ports::PortSpec;
use tokio::sync::{mpsc, oneshot, watch, Notify};

use self::instance::Command;
use self::table::Table;
use crate::paths::Home;
use crate::reaper::Reaper;
use crate::spawn::{self, InstanceEnv, Plan};
use crate::store::{self, AppRecord, Desired, InstanceRecord, State};
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
    pub(crate) log_files: logs::LogFiles,
    /// The shared ports of shared-port clusters.
    pub(crate) balancer: crate::balancer::Balancer,
    table: Mutex<Table>,
    persist_requested: AtomicU64,
    persist_written: watch::Sender<u64>,
    persist_wake: Notify,
    /// Someone waits for the next write (an API answer): write at once.
    persist_urgent: AtomicBool,
    persist_urgent_wake: Notify,
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
}

impl Supervisor {
    /// Builds the supervisor from a loaded state and starts its persister.
    /// Instances are not started until [`Supervisor::resume`].
    pub fn new(home: Home, reaper: Arc<Reaper>, state: State) -> Arc<Self> {
        let supervisor = Arc::new(Self {
            home,
            reaper,
            log_files: logs::LogFiles::default(),
            balancer: crate::balancer::Balancer::default(),
            table: Mutex::new(Table::from_state(state)),
            persist_requested: AtomicU64::new(0),
            persist_written: watch::Sender::new(0),
            persist_wake: Notify::new(),
            persist_urgent: AtomicBool::new(false),
            persist_urgent_wake: Notify::new(),
            shutting_down: AtomicBool::new(false),
            shut_down: tokio::sync::OnceCell::new(),
            stopped: watch::Sender::new(false),
            triggers: Mutex::new(BTreeMap::new()),
            system: Mutex::new(None),
            changed: Notify::new(),
            app_locks: Mutex::new(BTreeMap::new()),
            events: crate::events::Events::default(),
        });
        tokio::spawn(persister(Arc::clone(&supervisor)));
        supervisor
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The table as it would be written to disk.
    pub fn snapshot(&self) -> State {
        self.lock().snapshot()
    }

    /// Asks for the table to be written soon (coalesced).
    pub(crate) fn persist_soon(&self) -> u64 {
        let generation = self.persist_requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.persist_wake.notify_one();
        generation
    }

    /// Writes the table and waits until it is on disk.
    pub async fn persist_now(&self) {
        self.persist_urgent.store(true, Ordering::SeqCst);
        self.persist_urgent_wake.notify_one();
        let generation = self.persist_soon();
        let mut written = self.persist_written.subscribe();
        let _ = written.wait_for(|w| *w >= generation).await;
    }

    pub(crate) fn update_instance<T>(
        &self,
        id: u32,
        change: impl FnOnce(&mut InstanceRecord) -> T,
    ) -> Option<T> {
        let result = self.lock().instances.get_mut(&id).map(|record| {
            let before = crate::events::Before::of(record);
            let result = change(record);
            self.events.changed(&before, record);
            result
        });
        self.changed.notify_waiters();
        result
    }

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

    /// Replaces the instances `target` names one batch of `parallel` at a
    /// time: each is stopped gracefully, started again on its port, and the
    /// next batch waits until it is ready. An instance not ready within
    /// `listen_timeout` stops the rollout; the rest keep running.
    pub async fn reload(
        self: &Arc<Self>,
        target: &str,
        parallel: u32,
    ) -> Result<Vec<ProcessInfo>, Error> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let ids = self.lock().resolve(target)?;
        let guards = self.lock_apps(&ids).await;
        let mut replaced = 0;
        for batch in ids.chunks(parallel.max(1) as usize) {
            // Reloads run on the saved ports.
            self.override_ports(batch, None)?;
            let started = self.command_all(batch, Command::Reload).await;
            for id in batch {
                let (name, wait) = {
                    let table = self.lock();
                    let name = table
                        .instances
                        .get(id)
                        .map(|i| i.name.clone())
                        .unwrap_or_default();
                    let wait = table
                        .instances
                        .get(id)
                        .and_then(|i| table.app(&i.app))
                        .and_then(|a| a.config.listen_timeout)
                        .map_or(
                            crate::health::DEFAULT_LISTEN_TIMEOUT,
                            std::time::Duration::from_millis,
                        );
                    (name, wait)
                };
                let outcome = match &started {
                    Some(err) => Err(err.clone()),
                    None => {
                        self.wait_ready(*id, tokio::time::Instant::now() + wait)
                            .await
                    }
                };
                if let Err(why) = outcome {
                    self.persist_now().await;
                    // A shared-port instance keeps its old process.
                    let kept = started.is_some()
                        && self.app_config(*id).and_then(|c| c.sharing()).is_some();
                    let left = ids.len() - replaced - usize::from(!kept);
                    return Err(Error::BadCommand(format!(
                        "reload stopped: {name} did not become ready within {} ms ({why}); {replaced} of {} instances were replaced, {left} still run the previous version",
                        wait.as_millis(),
                        ids.len()
                    )));
                }
                replaced += 1;
            }
        }
        drop(guards);
        self.persist_now().await;
        let table = self.lock();
        Ok(ids.iter().filter_map(|id| table.info(*id)).collect())
    }

    /// The stdout and stderr files of instance `id`.
    pub(crate) fn log_paths(&self, id: u32) -> (std::path::PathBuf, std::path::PathBuf) {
        let table = self.lock();
        table.log_paths(id, &self.home)
    }

    pub(crate) fn app_config(&self, id: u32) -> Option<AppConfig> {
        let table = self.lock();
        let app = &table.instances.get(&id)?.app;
        table.app(app).map(|a| a.config.clone())
    }

    /// The exec plan of instance `id`, and its name.
    pub(crate) fn plan_for(&self, id: u32) -> Result<(Plan, String), Error> {
        let (config, inherited, index, name, port) = {
            let table = self.lock();
            let record = table.instances.get(&id).ok_or(Error::UnknownTarget {
                target: id.to_string(),
            })?;
            let app = table.app(&record.app).ok_or(Error::UnknownTarget {
                target: record.app.clone(),
            })?;
            (
                app.config.clone(),
                app.inherited_env.clone(),
                record.index,
                record.name.clone(),
                record.effective_port(),
            )
        };
        let instance = InstanceEnv {
            index,
            name: &name,
            port,
        };
        let mut plan = spawn::plan(&config, &inherited, &instance)?;
        plan.env.insert(
            "PMDAEMON_HOME".into(),
            self.home.root().display().to_string(),
        );
        self.share_port(&config, &mut plan)?;
        Ok((plan, name))
    }

    /// Gives a process of a shared-port cluster its part of the port: the
    /// listening socket as fd 3 (socket mode) or a private `PORT` (proxy
    /// mode), and, for Node, the preload that maps `listen(port)` to it.
    /// The port is bound here if it is not yet (a new daemon).
    fn share_port(&self, config: &AppConfig, plan: &mut Plan) -> Result<(), Error> {
        let Some((port, mode)) = config.sharing() else {
            return Ok(());
        };
        let shared = self.balancer.open(&config.name, port, mode)?;
        let env = &mut plan.env;
        env.insert("PMDAEMON_SHARED_PORT".into(), port.to_string());
        env.insert("PMDAEMON_SHARED_MODE".into(), mode.to_string());
        match mode {
            pmdaemon_core::config::SharedPort::Proxy => {
                let private = crate::balancer::private_port()?;
                env.insert("PORT".into(), private.to_string());
                plan.private_port = Some(private);
            }
            _ => {
                env.insert("LISTEN_FDS".into(), "1".into());
                env.insert("LISTEN_FDNAMES".into(), config.name.clone());
                plan.listen_socket = shared.listener();
            }
        }
        let preload = self.balancer.node_preload(&self.home.root().join("node"))?;
        let require = format!("--require \"{}\"", preload.display());
        let options = match env.get("NODE_OPTIONS") {
            Some(existing) if !existing.trim().is_empty() => format!("{existing} {require}"),
            _ => require,
        };
        env.insert("NODE_OPTIONS".into(), options);
        Ok(())
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
        table
            .instances
            .values()
            .filter(|i| i.status == Status::Online)
            .filter_map(|i| {
                let limit = table.app(&i.app).and_then(|a| a.config.max_memory_restart);
                Some((i.id, i.pid?, limit))
            })
            .collect()
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
                at_ms: store::now_ms(),
                samples: measured,
            });
        }
        *self.system.lock().unwrap_or_else(|e| e.into_inner()) = Some(system);
    }

    /// The host and the daemon, as last sampled (or now, if sampling is off).
    pub fn system(&self) -> SystemInfo {
        self.system
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .unwrap_or_else(|| crate::metrics::system_info(None))
    }

    /// Restarts the instances `target` names because of `reason` (memory
    /// limit, watch, cron): the reason goes to their history, their error
    /// log and the daemon log; ports given by `restart --port` are kept.
    pub(crate) async fn restart_for(self: &Arc<Self>, target: impl ToString, reason: String) {
        let target = target.to_string();
        let ids = match self.lock().resolve(&target) {
            Ok(ids) => ids,
            Err(_) => return,
        };
        tracing::warn!("{target}: {reason}; restarting");
        for id in &ids {
            let log = {
                let mut table = self.lock();
                if let Some(record) = table.instances.get_mut(id) {
                    record.record("restart", reason.clone());
                }
                table.log_paths(*id, &self.home).1
            };
            let rotation = self
                .app_config(*id)
                .map(|c| logs::Rotation::of(&c))
                .unwrap_or_default();
            self.log_files
                .get(&log, rotation)
                .note(&format!("[pmdaemon] restarting: {reason}"));
        }
        if let Some(err) = self.command_all(&ids, Command::RestartIfWanted).await {
            tracing::warn!("{target}: restart after '{reason}' failed: {err}");
        }
        self.persist_now().await;
    }

    /// Starts one task per recorded instance: those the user wants running
    /// are started, the rest stay as they were. Called once, after the
    /// leftovers of a previous daemon were cleaned up.
    pub async fn resume(self: &Arc<Self>) {
        let ids: Vec<(u32, bool)> = {
            let mut table = self.lock();
            let mut ids = Vec::new();
            for record in table.instances.values_mut() {
                record.pid = None;
                record.previous_pid = None;
                record.previous_pid_start_time = None;
                let start = record.desired == Desired::Running && record.status != Status::Errored;
                if start {
                    record.status = Status::Launching;
                    record.record("resumed", "the daemon started");
                } else if record.status != Status::Errored {
                    record.status = Status::Stopped;
                }
                ids.push((record.id, start));
            }
            ids
        };
        for (id, start) in ids {
            self.spawn_task(id, start);
        }
        let apps: Vec<String> = self
            .lock()
            .apps
            .iter()
            .map(|a| a.config.name.clone())
            .collect();
        for app in apps {
            self.arm_triggers(&app);
        }
        self.persist_now().await;
    }

    /// Starts the task of instance `id`. Once shutdown has begun no task
    /// starts (the flag is read under the table lock that shutdown sets it
    /// under), so no process can outlive the daemon; the returned sender is
    /// then closed and commands to it fail.
    fn spawn_task(self: &Arc<Self>, id: u32, start: bool) -> mpsc::Sender<Command> {
        let (sender, receiver) = mpsc::channel(16);
        let mut table = self.lock();
        if self.shutting_down.load(Ordering::SeqCst) {
            return sender;
        }
        table.handles.insert(id, sender.clone());
        tokio::spawn(instance::run(Arc::clone(self), id, receiver, start));
        sender
    }

    /// Closes log files that no remaining instance writes to.
    fn forget_unused_logs(&self, candidates: &[std::path::PathBuf]) {
        let in_use = self.all_log_paths();
        for path in candidates.iter().filter(|p| !in_use.contains(p)) {
            self.log_files.forget(path);
        }
    }

    /// The log files of `app`'s instances now.
    pub(crate) fn app_log_paths(&self, app: &str) -> Vec<std::path::PathBuf> {
        let table = self.lock();
        table
            .instances
            .values()
            .filter(|i| i.app == app)
            .flat_map(|i| {
                let (out, err) = table.log_paths(i.id, &self.home);
                [out, err]
            })
            .collect()
    }

    /// Registers and starts a new app. Nothing is registered unless every
    /// instance started.
    pub async fn start_app(
        self: &Arc<Self>,
        request: StartRequest,
    ) -> Result<Vec<ProcessInfo>, Error> {
        self.register(request.config, request.inherited_env, None)
            .await
    }

    /// Registers and starts `config`, remembering the file it came from.
    async fn register(
        self: &Arc<Self>,
        config: AppConfig,
        inherited_env: BTreeMap<String, String>,
        source: Option<std::path::PathBuf>,
    ) -> Result<Vec<ProcessInfo>, Error> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        config.validate()?;
        // Fail fast, before registering anything, on a bad program or cwd.
        plan_first(&config, &inherited_env)?;
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
            table.apps.push(AppRecord {
                config: config.clone(),
                inherited_env,
                source,
            });
            add_instances(&mut table, &config, &indices, ports, "pmdaemon start")
        };
        self.start_new(&ids).await?;
        self.arm_triggers_and_wait(&config.name).await;
        self.persist_now().await;
        let table = self.lock();
        Ok(ids.iter().filter_map(|id| table.info(*id)).collect())
    }

    /// Ports for new instances `indices` of `config`'s app, or None each
    /// when it has no port spec.
    fn allocate_ports(
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

    /// Sends each instance of `ids` the command `make` builds (all before
    /// awaiting any, so that they act in parallel); returns the first error.
    async fn command_all(
        &self,
        ids: &[u32],
        make: impl Fn(instance::Reply) -> Command,
    ) -> Option<String> {
        let mut replies = Vec::new();
        for id in ids {
            let handle = self.lock().handles.get(id).cloned();
            let Some(handle) = handle else { continue };
            let (reply, receiver) = oneshot::channel();
            if handle.send(make(reply)).await.is_ok() {
                replies.push(receiver);
            }
        }
        first_failure(replies).await
    }

    /// Starts the tasks of freshly added instances; if any fails to start,
    /// all of them are removed again (all or nothing).
    async fn start_new(self: &Arc<Self>, ids: &[u32]) -> Result<(), Error> {
        let mut replies = Vec::new();
        for id in ids {
            let (reply, receiver) = oneshot::channel();
            let _ = self
                .spawn_task(*id, false)
                .send(Command::Start(reply))
                .await;
            replies.push(receiver);
        }
        if let Some(err) = first_failure(replies).await {
            self.remove(ids).await;
            self.persist_now().await;
            return Err(Error::BadCommand(err));
        }
        Ok(())
    }

    /// Changes the number of instances of `app`: new ones take the next
    /// ports of its spec; the highest-numbered ones are removed first.
    pub async fn scale(
        self: &Arc<Self>,
        app: &str,
        instances: u32,
    ) -> Result<Vec<ProcessInfo>, Error> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        if instances == 0 {
            return Err(Error::BadCommand(format!(
                "scaling {app} to 0 would delete it; use `pmdaemon stop {app}` or `pmdaemon delete {app}`"
            )));
        }
        pmdaemon_core::config::check_instances(instances)?;
        let (added, removed) = {
            let mut table = self.lock();
            let config =
                table
                    .app(app)
                    .map(|a| a.config.clone())
                    .ok_or_else(|| Error::UnknownTarget {
                        target: app.to_string(),
                    })?;
            let current = table.instances_of(app);
            if let Some(spec) = &config.port {
                check_ports_fit(spec, instances)?;
            }
            if let (Some(PortSpec::Single(port)), None) = (&config.port, config.sharing()) {
                if instances > 1 {
                    return Err(Error::BadCommand(format!(
                            "{app} serves port {port} alone; to share it among {instances} instances, start it as a cluster (--instances {instances}, or exec_mode \"cluster\" in its file)"
                        )));
                }
            }
            let have = current.len() as u32;
            let next_index = current.last().map_or(0, |(index, _)| index + 1);
            let (added, removed) = if instances > have {
                let indices: Vec<u32> = (next_index..next_index + instances - have).collect();
                let ports = self.allocate_ports(&table, &config, &indices)?;
                let reason = format!("pmdaemon scale {app} {instances}");
                let added = add_instances(&mut table, &config, &indices, ports, &reason);
                (added, Vec::new())
            } else {
                let surplus = current[instances as usize..].iter().map(|(_, id)| *id);
                (Vec::new(), surplus.collect())
            };
            if let Some(record) = table.apps.iter_mut().find(|a| a.config.name == app) {
                // A shared-port cluster stays one when scaled down to 1.
                if record.config.sharing().is_some() {
                    record.config.exec_mode = pmdaemon_core::config::ExecMode::Cluster;
                }
                record.config.instances = instances;
            }
            (added, removed)
        };
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
    fn set_instance_count(&self, app: &str) {
        let mut table = self.lock();
        let count = table.instances.values().filter(|i| i.app == app).count() as u32;
        if let Some(record) = table.apps.iter_mut().find(|a| a.config.name == app) {
            record.config.instances = count;
        }
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
        // A restart waits for a reload of the same app to finish.
        let _guards = if action == Action::Restart {
            self.lock_apps(&ids).await
        } else {
            Vec::new()
        };
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
        self.persist_now().await;
        if let Some(err) = failure {
            return Err(Error::BadCommand(err));
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
                if let Some(record) = table.instances.get_mut(id) {
                    record.port_override = None;
                }
            }
            return Ok(());
        };
        let apps = table.apps_of(ids);
        if apps.len() != 1 {
            return Err(Error::BadCommand(
                "--port applies to the instances of one app; name that app or one of its instances"
                    .into(),
            ));
        }
        if let Some((port, _)) = table.app(&apps[0]).and_then(|a| a.config.sharing()) {
            return Err(Error::BadCommand(format!(
                "{} is a shared-port cluster: all its instances serve port {port}, which --port cannot change for one run; delete it and start it on the new port",
                apps[0]
            )));
        }
        check_ports_fit(&spec, ids.len() as u32)?;
        let indices: Vec<u32> = (0..ids.len() as u32).collect();
        let held = table.holders(&apps[0]);
        let own = table.own_ports(&apps[0], ids);
        // The targeted instances still hold their current ports until they
        // are restarted, so the system check would trip over them.
        let ports = ports::allocate(&spec, &indices, &held, &own, false)?;
        for (id, port) in ids.iter().zip(ports) {
            if let Some(record) = table.instances.get_mut(id) {
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
        let mut infos: Vec<ProcessInfo> = {
            let table = self.lock();
            table
                .instances
                .keys()
                .filter_map(|id| table.info(*id))
                .collect()
        };
        for info in &mut infos {
            self.count_connections(info);
        }
        infos
    }

    /// Everything about the instances `target` names.
    pub fn detail(&self, target: &str) -> Result<Vec<ProcessDetail>, Error> {
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

    /// Every app log file the daemon manages (stdout and stderr of every
    /// instance, running or not).
    pub fn all_log_paths(&self) -> Vec<std::path::PathBuf> {
        let table = self.lock();
        table
            .instances
            .keys()
            .flat_map(|id| {
                let (out, err) = table.log_paths(*id, &self.home);
                [out, err]
            })
            .collect()
    }

    /// The log files of `target` (all when None), instance and stream each.
    pub fn log_sources(
        &self,
        target: Option<&str>,
        stream: Option<LogStream>,
    ) -> Result<Vec<logs::follow::Source>, Error> {
        let table = self.lock();
        let ids = match target {
            Some(target) => table.resolve(target)?,
            None => table.instances.keys().copied().collect(),
        };
        let streams: &[LogStream] = match stream {
            Some(LogStream::Out) => &[LogStream::Out],
            Some(LogStream::Err) => &[LogStream::Err],
            None => &[LogStream::Out, LogStream::Err],
        };
        let mut files: Vec<logs::follow::Source> = Vec::new();
        for id in &ids {
            let Some(record) = table.instances.get(id) else {
                continue;
            };
            let (out, err) = table.log_paths(*id, &self.home);
            for stream in streams {
                let path = if *stream == LogStream::Out {
                    out.clone()
                } else {
                    err.clone()
                };
                // Merged logs are shown once, under the app's name.
                let merged = table.app(&record.app).is_some_and(|a| a.config.merge_logs);
                let label = if merged {
                    record.app.clone()
                } else {
                    record.name.clone()
                };
                if !files.iter().any(|(_, _, p)| *p == path) {
                    files.push((label, *stream, path));
                }
            }
        }
        Ok(files)
    }

    /// The last `lines` lines of the log files of `target` (all when None).
    pub async fn logs(
        &self,
        target: Option<&str>,
        lines: usize,
        stream: Option<LogStream>,
    ) -> Result<LogsResponse, Error> {
        let files: Vec<_> = self
            .log_sources(target, stream)?
            .into_iter()
            .map(|(instance, stream, path)| {
                let open = self.log_files.find(&path);
                (instance, stream, path, open)
            })
            .collect();
        let tails = tokio::task::spawn_blocking(move || {
            files
                .into_iter()
                .map(|(instance, stream, path, open)| {
                    let tail = logs::tail_with_ends(&path, lines)
                        .map_err(|err| Error::io("read", path.clone(), err))?;
                    let ends: Vec<u64> = tail.iter().map(|(_, end)| *end).collect();
                    let times = open.map(|file| file.times(&ends)).unwrap_or_default();
                    Ok(LogTail {
                        instance,
                        stream,
                        path,
                        lines: tail.into_iter().map(|(line, _)| line).collect(),
                        times,
                    })
                })
                .collect::<Result<Vec<_>, Error>>()
        })
        .await
        .map_err(|err| Error::io("read", "logs", std::io::Error::other(err)))??;
        Ok(LogsResponse { tails })
    }

    /// Empties the log files of `target` (all when None) and deletes their
    /// rotated siblings.
    pub async fn flush(&self, target: Option<&str>) -> Result<Vec<std::path::PathBuf>, Error> {
        let mut paths: Vec<std::path::PathBuf> = {
            let table = self.lock();
            let ids = match target {
                Some(target) => table.resolve(target)?,
                None => table.instances.keys().copied().collect(),
            };
            ids.iter()
                .flat_map(|id| {
                    let (out, err) = table.log_paths(*id, &self.home);
                    [out, err]
                })
                .collect()
        };
        // Merged logs are shared by instances: each file once.
        paths.sort();
        paths.dedup();
        for path in &paths {
            let result = match self.log_files.find(path) {
                Some(file) => file.flush(),
                None => logs::truncate_all(path),
            };
            result.map_err(|err| Error::io("empty", path.clone(), err))?;
        }
        Ok(paths)
    }

    /// Stops every instance (keeping what the user asked for, so that the
    /// next daemon brings them back) and refuses further work.
    /// A second call (two `kill`s, SIGTERM during a kill) waits for the
    /// first to finish rather than returning while apps are still stopping.
    pub async fn shutdown(&self) -> Vec<String> {
        let stopped = self
            .shut_down
            .get_or_init(|| self.stop_everything())
            .await
            .clone();
        self.stopped.send_replace(true);
        stopped
    }

    /// Resolves once shutdown has stopped every app (log streams end then,
    /// cleanly, after the apps' last lines).
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut stopped = self.stopped.subscribe();
        async move {
            let _ = stopped.wait_for(|done| *done).await;
        }
    }

    async fn stop_everything(&self) -> Vec<String> {
        {
            let _table = self.lock();
            self.shutting_down.store(true, Ordering::SeqCst);
        }
        let triggers =
            std::mem::take(&mut *self.triggers.lock().unwrap_or_else(|e| e.into_inner()));
        for task in triggers.into_values().flatten() {
            task.abort();
        }
        let handles: BTreeMap<u32, mpsc::Sender<Command>> = self.lock().handles.drain().collect();
        let mut replies = Vec::new();
        for (id, handle) in handles {
            let (reply, receiver) = oneshot::channel();
            if handle.send(Command::Shutdown(reply)).await.is_ok() {
                replies.push((id, receiver));
            }
        }
        let mut stopped = Vec::new();
        for (id, receiver) in replies {
            let _ = receiver.await;
            if let Some(record) = self.lock().instances.get(&id) {
                stopped.push(record.name.clone());
            }
        }
        self.balancer.close_all();
        self.persist_now().await;
        stopped
    }
}

/// The launch plan of `config`'s first instance: whether its program and
/// cwd can run, checked before anything is registered.
pub(crate) fn plan_first(
    config: &AppConfig,
    inherited_env: &BTreeMap<String, String>,
) -> Result<spawn::Plan, Error> {
    let first = InstanceEnv {
        index: 0,
        name: &config.instance_name(0),
        port: None,
    };
    spawn::plan(config, inherited_env, &first)
}

/// Adds records for new instances `indices` of `config`'s app with their
/// ports; returns their ids.
fn add_instances(
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
        ids.push(id);
    }
    ids
}

/// Awaits every reply; returns the first error.
async fn first_failure(replies: Vec<oneshot::Receiver<Result<(), String>>>) -> Option<String> {
    let mut failure = None;
    for receiver in replies {
        match receiver.await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                failure.get_or_insert(err);
            }
            Err(_) => {
                failure.get_or_insert("the instance task ended unexpectedly".to_string());
            }
        }
    }
    failure
}

/// How long background changes are gathered before a write.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(25);

/// Writes the table whenever asked, coalescing bursts of requests into one
/// write. A failed write is logged and retried with the next change.
async fn persister(supervisor: Arc<Supervisor>) {
    loop {
        // notify_one stores a permit when nobody waits, so a request made
        // between the check and the await is not lost.
        if supervisor.persist_requested.load(Ordering::SeqCst)
            > *supervisor.persist_written.borrow()
        {
            // Changes nobody waits for (status updates of running instances)
            // are gathered for a moment, so that a burst costs one write.
            if !supervisor.persist_urgent.swap(false, Ordering::SeqCst) {
                tokio::select! {
                    () = tokio::time::sleep(COALESCE) => {}
                    () = supervisor.persist_urgent_wake.notified() => {}
                }
            }
            let requested = supervisor.persist_requested.load(Ordering::SeqCst);
            let snapshot = supervisor.snapshot();
            let path = supervisor.home.state_file();
            match tokio::task::spawn_blocking(move || store::save(&path, &snapshot)).await {
                Ok(Ok(())) => {}
                Ok(Err(err)) => tracing::error!("could not save the process table: {err}"),
                Err(err) => tracing::error!("could not save the process table: {err}"),
            }
            // Waiters are released even after a failure: the daemon keeps
            // serving from memory and the failure is in daemon.log.
            supervisor.persist_written.send_replace(requested);
            continue;
        }
        supervisor.persist_wake.notified().await;
    }
}
