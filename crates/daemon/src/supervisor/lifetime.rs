//! The daemon's lifetime as the table sees it: resuming what the user asked
//! for when a daemon starts, parking and resurrecting around `kill`, and the
//! one shutdown.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use pmdaemon_core::api::{ProcessInfo, Status};
use tokio::sync::{mpsc, oneshot};

use super::instance::{self, Command};
use super::Supervisor;
use crate::store::Desired;
use crate::Error;

impl Supervisor {
    /// `pmdaemon kill`: every instance that runs is parked, so that the
    /// daemons that follow keep it stopped until `resurrect`.
    pub fn park(&self) {
        let mut table = self.lock();
        table.touch_all();
        for record in table.instances.values_mut() {
            if record.desired == Desired::Running {
                record.desired = Desired::Parked;
                record.record(
                    "parked",
                    "stopped by pmdaemon kill; `pmdaemon resurrect` brings it back",
                );
            }
        }
    }

    /// Starts every parked instance again (what ran before `pmdaemon kill`).
    pub async fn resurrect(self: &Arc<Self>) -> Result<Vec<ProcessInfo>, Error> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let ids: Vec<u32> = self
            .lock()
            .instances
            .values()
            .filter(|r| r.desired == Desired::Parked)
            .map(|r| r.id)
            .collect();
        let failure = self.command_all(&ids, Command::Start).await;
        self.persist_now().await;
        if let Some(err) = failure {
            return Err(err);
        }
        let mut started: Vec<ProcessInfo> = {
            let table = self.lock();
            ids.iter().filter_map(|id| table.info(*id)).collect()
        };
        started.extend(self.restore_dump().await?);
        Ok(started)
    }

    /// Starts one task per recorded instance: those the user wants running
    /// are started, the rest stay as they were. Called once, after the
    /// leftovers of a previous daemon were cleaned up.
    pub async fn resume(self: &Arc<Self>) {
        let ids: Vec<(u32, bool)> = {
            let mut table = self.lock();
            let mut ids = Vec::new();
            table.touch_all();
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
        self.sampler.nudge();
        self.persist_now().await;
    }

    /// Starts the task of instance `id`. Once shutdown has begun no task
    /// starts (the flag is read under the table lock that shutdown sets it
    /// under), so no process can outlive the daemon; the returned sender is
    /// then closed and commands to it fail.
    pub(super) fn spawn_task(self: &Arc<Self>, id: u32, start: bool) -> mpsc::Sender<Command> {
        let (sender, receiver) = mpsc::channel(16);
        let mut table = self.lock();
        if self.shutting_down.load(Ordering::SeqCst) {
            return sender;
        }
        table.handles.insert(id, sender.clone());
        tokio::spawn(instance::run(Arc::clone(self), id, receiver, start));
        sender
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

    pub(super) async fn stop_everything(&self) -> Vec<String> {
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
        // One file again: the next daemon reads state.json alone.
        self.persister.now_full().await;
        stopped
    }
}
