//! Stopping an instance's process: the stop signal (or, for a Node app
//! with `shutdown_with_message`, the IPC message `'shutdown'`), SIGKILL
//! after `kill_timeout`, and whatever escaped its process group.

use std::time::Duration;

use nix::sys::signal::Signal;
use pmdaemon_core::api::{ExitReason, Status};
use pmdaemon_core::config::AppConfig;
use tokio::time::{sleep, sleep_until, Instant};

use super::{Instance, Running, KILL_GRACE};
use crate::spawn;

impl Instance {
    /// Stops the running process and everything in its process group: the
    /// stop signal, then SIGKILL once `kill_timeout` has passed. Returns when
    /// no process of the group is left.
    pub(super) async fn terminate(&mut self) {
        let Some(mut running) = self.running.take() else {
            return;
        };
        let config = self.config().unwrap_or_default();
        self.update(|record| record.status = Status::Stopping);
        let reason = self.stop_process(&mut running, &config, None).await;
        self.update(|record| {
            record.last_exit = Some(reason);
            record.pid = None;
            record.private_port = None;
            record.record("exited", format!("{reason} on stop"));
        });
    }

    /// Stops one process and its group: the stop signal, SIGKILL after
    /// `kill_timeout`; returns how it ended once no process of the group is
    /// left. Its proxy backend is forgotten.
    /// `spare` is another process of this instance that must live on (the
    /// old one, while a reload abandons its replacement).
    pub(super) async fn stop_process(
        &self,
        running: &mut Running,
        config: &AppConfig,
        spare: Option<u32>,
    ) -> ExitReason {
        self.supervisor.balancer.drain(&config.name, running.pid);
        let signal = spawn::stop_signal(config);
        let pgid = running.pid;
        // PM2's shutdown_with_message: the message instead of the signal,
        // when the app has a channel to receive it on.
        let by_message = config.shutdown_with_message
            && running.ipc.as_ref().is_some_and(|ipc| ipc.send_shutdown());
        let asked = if by_message {
            "the 'shutdown' message".to_string()
        } else {
            spawn::signal_group(pgid, signal);
            signal.to_string()
        };
        let deadline = Instant::now() + Duration::from_millis(config.kill_timeout);
        let reason = tokio::select! {
            reason = &mut running.exit => reason.ok(),
            () = sleep_until(deadline) => None,
        };
        let reason = match reason {
            Some(reason) => reason,
            None => {
                tracing::info!(
                    "pid {pgid} ignored {asked} for {} ms; sending SIGKILL",
                    config.kill_timeout
                );
                spawn::signal_group(pgid, Signal::SIGKILL);
                (&mut running.exit)
                    .await
                    .unwrap_or(ExitReason::Signal(libc::SIGKILL))
            }
        };
        if !self.wait_group_gone(pgid, deadline).await {
            spawn::signal_group(pgid, Signal::SIGKILL);
            if !self
                .wait_group_gone(pgid, Instant::now() + KILL_GRACE)
                .await
            {
                tracing::warn!("process group {pgid} survived SIGKILL");
            }
        }
        self.supervisor.balancer.remove_backend(&config.name, pgid);
        self.kill_escaped(config, spare).await;
        reason
    }

    /// Kills whatever left this instance's group (setsid) and is still
    /// alive, until none is left (each kill may orphan another one to us).
    async fn kill_escaped(&self, config: &AppConfig, spare: Option<u32>) {
        let marks = self.marks();
        // The instance's other live processes carry the same marks (every
        // instance's recorded ones are spared anyway).
        let except: std::collections::HashSet<u32> =
            self.running.iter().map(|r| r.pid).chain(spare).collect();
        for _ in 0..8 {
            let found = self
                .supervisor
                .escapes
                .kill(marks.clone(), except.clone())
                .await;
            if found == 0 {
                return;
            }
            tracing::warn!(
                "{}: killed {found} process(es) that left the group",
                config.name
            );
            // Their children are reparented to us once they are reaped.
            tokio::select! {
                () = self.supervisor.reaper.reaped() => {}
                () = sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// The marks in the environment of every process of this instance.
    pub(super) fn marks(&self) -> Vec<String> {
        let name = self.update(|r| r.name.clone()).unwrap_or_default();
        vec![
            format!("PMDAEMON_HOME={}", self.supervisor.home.root().display()),
            format!("PMDAEMON_INSTANCE_NAME={name}"),
        ]
    }

    /// Waits until process group `pgid` is empty or `deadline` passes. Its
    /// orphans are reparented to the daemon (a subreaper), so each reaping
    /// pass is a cue to look again; a short tick covers members whose parent
    /// is still alive.
    async fn wait_group_gone(&self, pgid: u32, deadline: Instant) -> bool {
        loop {
            if !spawn::group_alive(pgid) {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            tokio::select! {
                () = self.supervisor.reaper.reaped() => {}
                () = sleep(Duration::from_millis(10)) => {}
                () = sleep_until(deadline) => {}
            }
        }
    }
}
