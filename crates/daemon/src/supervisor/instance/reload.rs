//! Reloading an instance without downtime.
//!
//! In a shared-port cluster the old and the new process can serve the same
//! port at once, so a reload starts the new process beside the old one and
//! waits until it is ready (its health check, `READY=1`, or proof that it
//! serves). Only then does the old one stop getting connections (proxy
//! mode), see its forwarded connections finish (up to `kill_timeout`), and
//! get the stop signal. If the new process exits or is not ready within
//! `listen_timeout`, it is stopped and the old one goes on serving as if
//! nothing happened. The old pid is on disk while both run, so that a daemon
//! killed half-way leaves nothing behind.

use std::time::Duration;

use pmdaemon_core::api::{ExitReason, Status};
use pmdaemon_core::config::{AppConfig, SharedPort};
use tokio::sync::oneshot;
use tokio::time::{sleep, sleep_until, Instant};

use super::{wait_exit, Command, Instance, Running};
use crate::store::Desired;
use crate::{health, Error, NotReady};

/// What the record said of the old process, to restore after a failure.
struct Previous {
    pid_start_time: Option<u64>,
    started_at_ms: Option<u64>,
    private_port: Option<u16>,
    ready: bool,
}

impl Instance {
    /// Replaces the running process (see the module doc); an instance that
    /// is not in a shared-port cluster, or not running, is restarted.
    pub(super) async fn reload(&mut self) -> Result<(), Error> {
        let Some(config) = self.config() else {
            return Err(Error::Deleted);
        };
        if config.sharing().is_none() || self.running.is_none() {
            return self.restart().await;
        }
        let Some(mut old) = self.running.take() else {
            return self.restart().await;
        };
        self.restart_at = None;
        let previous = self.update(|record| {
            record.previous_pid = Some(old.pid);
            record.previous_pid_start_time = record.pid_start_time;
            record.desired = Desired::Running;
            record.unstable_restarts = 0;
            record.record(
                "reloading",
                format!("starting a new process beside pid {}", old.pid),
            );
            Previous {
                pid_start_time: record.pid_start_time,
                started_at_ms: record.started_at_ms,
                private_port: record.private_port,
                ready: record.ready,
            }
        });
        // The old pid is on disk before a second process exists.
        self.supervisor.persist_now().await;
        if let Err(err) = self.launch() {
            self.restore(old, previous, None, &err.to_string());
            return Err(err);
        }
        // ... and so is the new one, before it can serve.
        self.supervisor.persist_now().await;
        let wait = config
            .listen_timeout
            .map_or(health::DEFAULT_LISTEN_TIMEOUT, Duration::from_millis);
        let (outcome, old_exit) = self.wait_new_ready(&mut old, wait).await;
        if let Err(why) = outcome {
            self.abandon_new(&config, old.pid).await;
            self.restore(old, previous, old_exit, &why.to_string());
            self.supervisor.persist_soon();
            return Err(why.into());
        }
        let new_pid = self.running.as_ref().map_or(0, |r| r.pid);
        // The new process serves: the old one gets no new connections and is
        // drained, then stopped.
        self.supervisor.balancer.drain(&config.name, old.pid);
        let reason = match old_exit {
            Some(reason) => {
                crate::spawn::signal_group(old.pid, nix::sys::signal::Signal::SIGKILL);
                self.supervisor
                    .balancer
                    .remove_backend(&config.name, old.pid);
                reason
            }
            None => {
                self.await_drained(&config, &mut old).await;
                self.stop_process(&mut old, &config, None).await
            }
        };
        self.update(|record| {
            record.previous_pid = None;
            record.previous_pid_start_time = None;
            record.restarts += 1;
            record.last_exit = Some(reason);
            record.record(
                "reloaded",
                format!("pid {} replaced by pid {new_pid} ({reason})", old.pid),
            );
        });
        self.supervisor.persist_soon();
        Ok(())
    }

    /// Waits until the new process is ready; notes if the old one exits
    /// meanwhile.
    async fn wait_new_ready(
        &mut self,
        old: &mut Running,
        wait: Duration,
    ) -> (Result<(), NotReady>, Option<ExitReason>) {
        let deadline = Instant::now() + wait;
        let mut old_exit = None;
        let supervisor = std::sync::Arc::clone(&self.supervisor);
        let id = self.id;
        loop {
            let changed = supervisor.changed.notified();
            let new_pid = self.running.as_ref().map(|r| r.pid);
            let ready = self
                .update(|r| r.pid == new_pid && r.status == Status::Online && r.ready)
                .unwrap_or(false);
            if ready {
                return (Ok(()), old_exit);
            }
            tokio::select! {
                reason = wait_exit(&mut self.running) => {
                    if let Some(new) = self.running.take() {
                        crate::spawn::signal_group(new.pid, nix::sys::signal::Signal::SIGKILL);
                        if let Some(config) = self.config() {
                            self.supervisor.balancer.remove_backend(&config.name, new.pid);
                            self.explain_unready_exit(&config);
                        }
                    }
                    self.update(|r| r.last_exit = Some(reason));
                    return (Err(NotReady::Exited { reason }), old_exit);
                }
                reason = &mut old.exit, if old_exit.is_none() => {
                    tracing::warn!("instance {id}: pid {} exited during its reload", old.pid);
                    old_exit = Some(reason.unwrap_or(ExitReason::Signal(libc::SIGKILL)));
                }
                command = self.commands.recv() => {
                    // Stop, delete and shutdown do not wait for the new
                    // process: the reload gives up; anything else waits.
                    let interrupts = matches!(
                        command,
                        None | Some(Command::Stop(_) | Command::Delete(_) | Command::Shutdown(_))
                    );
                    self.deferred.push_back(command);
                    if interrupts {
                        return (Err(NotReady::Interrupted), old_exit);
                    }
                }
                () = changed => {}
                () = sleep_until(deadline) => {
                    let health_error = self.update(|r| r.health_error.clone()).flatten();
                    let why = NotReady::Timeout { wait_ms: wait.as_millis(), health_error };
                    return (Err(why), old_exit);
                }
            }
        }
    }

    /// Stops the new process of a failed reload (`old` serves on).
    async fn abandon_new(&mut self, config: &AppConfig, old: u32) {
        if let Some(mut new) = self.running.take() {
            self.stop_process(&mut new, config, Some(old)).await;
        }
    }

    /// Puts the old process back as the instance's process. If it exited
    /// during the reload, its exit is handled as any other (restart policy).
    fn restore(
        &mut self,
        mut old: Running,
        previous: Option<Previous>,
        old_exit: Option<ExitReason>,
        why: &str,
    ) {
        let pid = old.pid;
        if let Some(reason) = old_exit {
            // Its exit was consumed while waiting: hand it to the main loop.
            let (sender, receiver) = oneshot::channel();
            let _ = sender.send(reason);
            old.exit = receiver;
        }
        self.update(|record| {
            record.pid = Some(pid);
            record.previous_pid = None;
            record.previous_pid_start_time = None;
            record.status = Status::Online;
            if let Some(previous) = previous {
                record.pid_start_time = previous.pid_start_time;
                record.started_at_ms = previous.started_at_ms;
                record.private_port = previous.private_port;
                record.ready = previous.ready;
            }
            record.record("reload failed", format!("{why}; pid {pid} keeps serving"));
        });
        self.running = Some(old);
    }

    /// In proxy mode, waits (up to `kill_timeout`) until the connections
    /// forwarded to the old process are closed, so that a process that does
    /// not stop gracefully loses no request in flight.
    async fn await_drained(&self, config: &AppConfig, old: &mut Running) {
        if config.sharing().map(|(_, mode)| mode) != Some(SharedPort::Proxy) {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(config.kill_timeout);
        while self
            .supervisor
            .balancer
            .connections(&config.name, old.pid)
            .is_some_and(|open| open > 0)
            && Instant::now() < deadline
        {
            // Connections end when a client or the app closes them; there is
            // no event for that, so this is a short tick, during a reload only.
            sleep(Duration::from_millis(20)).await;
        }
    }

    /// A shared-port instance that exits before it was ready most likely
    /// cannot use its mode: say so in its error log and history.
    pub(super) fn explain_unready_exit(&self, config: &AppConfig) {
        let Some((port, mode)) = config.sharing() else {
            return;
        };
        // Once per crash loop, not once per crash.
        let explain = self
            .update(|r| !r.ready && r.unstable_restarts == 0)
            .unwrap_or(false);
        if !explain {
            return;
        }
        let hint = match mode {
            SharedPort::Socket => format!(
                "exited before it was ready: in socket mode the app must accept on the inherited socket (fd 3, LISTEN_FDS) instead of binding port {port} itself; if it only reads PORT, use --shared-port proxy"
            ),
            _ => format!(
                "exited before it was ready: in proxy mode the app must listen on its PORT (a private port the daemon forwards {port} to)"
            ),
        };
        self.update(|r| r.record("not ready", hint.clone()));
        let (_, err_log) = self.supervisor.log_paths(self.id);
        self.supervisor
            .log_files
            .get(&err_log, crate::logs::Rotation::of(config))
            .note(&format!("[pmdaemon] {hint}"));
    }
}
