//! One task per instance: it owns the child, sees its exit the moment the
//! reaper reports it, decides about restarts, and obeys [`Command`]s.
//! Nothing else signals or waits for this instance's processes.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::sys::signal::Signal;
use pmdaemon_core::api::{ExitReason, Health, LogStream, Status};
use pmdaemon_core::config::AppConfig;
use tokio::sync::{mpsc, oneshot};
use tokio::time::{sleep_until, Instant};

mod policy;
mod reload;
mod stop;

use super::Supervisor;
use crate::reaper::ExitReceiver;
use crate::store::{now_ms, Desired};
use crate::{health, logs, procinfo, spawn, Error};

/// Backoff never waits longer than this (PM2's ceiling).
const MAX_BACKOFF_MS: u64 = 15_000;
/// An instance up this long has its exponential backoff reset (as in PM2).
const BACKOFF_RESET: Duration = Duration::from_secs(30);
/// After SIGKILL, how long to wait for a process group to vanish.
const KILL_GRACE: Duration = Duration::from_secs(2);

/// What the API asks of an instance. Each carries a reply channel that is
/// answered once the action is complete.
#[derive(Debug)]
pub(crate) enum Command {
    /// Start it if it is not running.
    Start(Reply),
    /// Stop it and keep it stopped.
    Stop(Reply),
    /// Stop it if running, then start it.
    Restart(Reply),
    /// Replace it without downtime: in a shared-port cluster a new process
    /// starts beside the old one, which is drained and stopped once the new
    /// one is ready; elsewhere the same as `Restart`.
    Reload(Reply),
    /// A probe (memory limit, watch, cron, health) asks for a restart:
    /// only if the user wants it running (they must not start an instance
    /// the user stopped); `reason` goes to its history and its error log.
    RestartFor {
        /// Why, in a few words.
        reason: String,
        /// Answered once it runs again (or was left stopped).
        reply: Reply,
    },
    /// Stop it and end the task (the record is removed by the caller).
    Delete(Reply),
    /// Stop it without changing what the user asked for, and end the task:
    /// the daemon is going away and the next one brings it back.
    Shutdown(Reply),
    /// Send its running process a signal (an error if none runs).
    Signal(Signal, Reply),
}

/// Answered when a command is complete: an error is one sentence.
pub(crate) type Reply = oneshot::Sender<Result<(), Error>>;

struct Running {
    pid: u32,
    exit: ExitReceiver,
    started: Instant,
    /// Health check, sd_notify and IPC listeners of this process; they end
    /// with it.
    watchers: Vec<tokio::task::JoinHandle<()>>,
    /// The daemon's end of a Node app's IPC channel.
    ipc: Option<crate::node_ipc::Sender>,
}

impl Drop for Running {
    fn drop(&mut self) {
        for watcher in &self.watchers {
            watcher.abort();
        }
    }
}

pub(crate) struct Instance {
    supervisor: Arc<Supervisor>,
    id: u32,
    running: Option<Running>,
    restart_at: Option<Instant>,
    backoff_step: u32,
    commands: mpsc::Receiver<Command>,
    /// Commands that arrived while a reload waited, handled after it (None:
    /// the channel closed).
    deferred: std::collections::VecDeque<Option<Command>>,
}

/// Runs the instance until it is deleted or the daemon shuts down.
pub(crate) async fn run(
    supervisor: Arc<Supervisor>,
    id: u32,
    commands: mpsc::Receiver<Command>,
    start: bool,
) {
    let mut instance = Instance {
        supervisor,
        id,
        running: None,
        restart_at: None,
        backoff_step: 0,
        commands,
        deferred: std::collections::VecDeque::new(),
    };
    if start {
        if let Err(err) = instance.launch() {
            instance.fail_launch(&err);
        }
    }
    loop {
        if let Some(command) = instance.deferred.pop_front() {
            if instance.obey(command).await {
                break;
            }
            continue;
        }
        tokio::select! {
            reason = wait_exit(&mut instance.running) => instance.on_exit(reason).await,
            () = wait_until(instance.restart_at) => {
                instance.restart_at = None;
                instance.relaunch_after_exit();
            }
            command = instance.commands.recv() => {
                if instance.obey(command).await {
                    break;
                }
            }
        }
    }
}

impl Instance {
    /// Carries out one command (None: the channel closed); true when the
    /// task must end.
    async fn obey(&mut self, command: Option<Command>) -> bool {
        match command {
            None => {
                self.terminate().await;
                return true;
            }
            Some(Command::Start(reply)) => {
                let result = self.start();
                let _ = reply.send(result);
            }
            Some(Command::Stop(reply)) => {
                self.stop().await;
                let _ = reply.send(Ok(()));
            }
            Some(Command::Restart(reply)) => {
                let result = self.restart().await;
                let _ = reply.send(result);
            }
            Some(Command::Reload(reply)) => {
                let result = self.reload().await;
                let _ = reply.send(result);
            }
            Some(Command::RestartFor { reason, reply }) => {
                let wanted = self
                    .update(|r| r.desired == Desired::Running)
                    .unwrap_or(false);
                let result = if wanted {
                    self.note_restart(&reason);
                    self.restart().await
                } else {
                    Ok(())
                };
                let _ = reply.send(result);
            }
            Some(Command::Delete(reply)) => {
                self.stop().await;
                let _ = reply.send(Ok(()));
                return true;
            }
            Some(Command::Signal(signal, reply)) => {
                let result = match &self.running {
                    Some(running) => {
                        let pid = nix::unistd::Pid::from_raw(running.pid as i32);
                        nix::sys::signal::kill(pid, signal).map_err(|source| Error::SignalFailed {
                            signal: signal.to_string(),
                            source,
                        })
                    }
                    None => Err(Error::NotRunning),
                };
                let _ = reply.send(result);
            }
            Some(Command::Shutdown(reply)) => {
                self.restart_at = None;
                self.terminate().await;
                self.update(|record| record.status = Status::Stopped);
                let _ = reply.send(Ok(()));
                return true;
            }
        }
        false
    }
}

/// The delay before the restart that follows `step` crashes in a row:
/// `restart_delay`, or with `exp_backoff_restart_delay` that value ×1.5 per
/// crash, capped at 15 s (PM2's rule).
fn restart_delay_ms(config: &AppConfig, step: u32) -> u64 {
    match config.exp_backoff_restart_delay {
        Some(base) => {
            let delay = base as f64 * 1.5f64.powi(step.min(64) as i32);
            (delay as u64).min(MAX_BACKOFF_MS)
        }
        None => config.restart_delay,
    }
}

async fn wait_exit(running: &mut Option<Running>) -> ExitReason {
    match running {
        // A dropped sender cannot happen while the reaper lives; treat it as
        // a kill rather than hang.
        Some(running) => (&mut running.exit)
            .await
            .unwrap_or(ExitReason::Signal(libc::SIGKILL)),
        None => std::future::pending().await,
    }
}

async fn wait_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

impl Instance {
    fn update<T>(&self, change: impl FnOnce(&mut crate::store::InstanceRecord) -> T) -> Option<T> {
        self.supervisor.update_instance(self.id, change)
    }

    fn config(&self) -> Option<AppConfig> {
        self.supervisor.app_config(self.id)
    }

    /// Spawns the process; the record says online once it runs.
    fn launch(&mut self) -> Result<(), Error> {
        let super::LaunchInputs {
            mut plan,
            name,
            config,
            logs: (out, err),
            combined,
        } = self.supervisor.launch_inputs(self.id)?;
        // sd_notify: the socket exists before the process does.
        let notify = if config.wait_ready {
            let dir = self.supervisor.home.root().join("notify");
            let (path, socket) = health::notify_socket(&dir, &name)
                .map_err(|err| Error::io("create the NOTIFY_SOCKET in", &dir, err))?;
            plan.env
                .insert("NOTIFY_SOCKET".into(), path.display().to_string());
            Some(socket)
        } else {
            None
        };
        // Where each stream goes: its own log and the combined one, but
        // never into /dev/null (a stream with nowhere to go is not piped).
        let destinations = |own: PathBuf| -> Vec<PathBuf> {
            [Some(own), combined.clone()]
                .into_iter()
                .flatten()
                .filter(|p| !logs::is_discarded(p))
                .collect()
        };
        let (out, err) = (destinations(out), destinations(err));
        plan.discard_stdout = out.is_empty();
        plan.discard_stderr = err.is_empty();
        // Node apps get the IPC channel PM2 gives them (process.send).
        let ipc = if plan.runs_node() {
            let (theirs, reader, sender) = crate::node_ipc::channel()
                .map_err(|err| Error::io("create the IPC channel of", &name, err))?;
            plan.ipc_channel = Some(Arc::new(theirs));
            let fd = spawn::IPC_FD.to_string();
            plan.env.insert("NODE_CHANNEL_FD".into(), fd);
            plan.env
                .insert("NODE_CHANNEL_SERIALIZATION_MODE".into(), "json".into());
            Some((reader, sender))
        } else {
            // A channel variable inherited from a CLI that a Node parent
            // ran would make a node this app starts open a stray fd.
            plan.env.remove("NODE_CHANNEL_FD");
            plan.env.remove("NODE_CHANNEL_SERIALIZATION_MODE");
            None
        };
        let spawned = spawn::spawn(&self.supervisor.reaper, &self.supervisor.spawner, &plan)
            .map_err(|source| Error::Spawn {
                program: plan.program.display().to_string(),
                source,
            })?;
        // The child holds its end now; ours must not keep the channel open.
        plan.ipc_channel = None;
        let files = &self.supervisor.log_files;
        let rotation = logs::Rotation::of(&config);
        let format = |stream| logs::LineFormat::of(&config, &name, stream);
        for (pipe, paths, stream) in [
            (spawned.stdout, out, LogStream::Out),
            (spawned.stderr, err, LogStream::Err),
        ] {
            let mut paths = paths.into_iter();
            if let (Some(pipe), Some(path)) = (pipe, paths.next()) {
                logs::pump(files, pipe, path, paths.next(), rotation, format(stream));
            }
        }
        let pid = spawned.pid;
        let start_time = procinfo::stat(pid).map(|stat| stat.start_time);
        let check = config.health_check.clone().filter(|c| c.enabled);
        let private_port = plan.private_port;
        // Never ready merely for being spawned: a signal, a first passing
        // check, or proof that it serves (its private port accepts, or it
        // stayed up min_uptime, at most 1 s) is awaited.
        let ready_now = false;
        let port = self.update(|record| {
            record.status = Status::Online;
            record.pid = Some(pid);
            record.pid_start_time = start_time;
            record.started_at_ms = Some(now_ms());
            record.private_port = private_port;
            record.health = Health::Unknown;
            record.health_error = None;
            record.ready = ready_now;
            record.record("started", format!("pid {pid}"));
            record.effective_port()
        });
        if let Some(private) = private_port {
            self.supervisor
                .balancer
                .add_backend(&config.name, pid, private);
        }
        let listen_timeout = config
            .listen_timeout
            .map_or(health::DEFAULT_LISTEN_TIMEOUT, Duration::from_millis);
        let mut watchers = Vec::new();
        let ipc = ipc.map(|(reader, sender)| {
            let ready = config.wait_ready;
            let supervisor = &self.supervisor;
            watchers.push(crate::node_ipc::listen(
                supervisor, reader, self.id, pid, ready,
            ));
            sender
        });
        if let Some(socket) = notify {
            watchers.push(health::listen_for_ready(
                &self.supervisor,
                socket,
                self.id,
                pid,
            ));
        } else if check.is_none() {
            watchers.push(health::await_serving(
                &self.supervisor,
                health::Serving {
                    id: self.id,
                    pid,
                    private_port,
                    settle: Duration::from_millis(config.min_uptime.min(1000)),
                    listen_timeout,
                },
            ));
        }
        if let Some(check) = check {
            let subject = health::Subject {
                id: self.id,
                pid,
                // In proxy mode the check reaches this process, not the
                // public port.
                port: private_port.or(port.flatten()),
                // A check script has no IPC channel: a `node` it runs must
                // not look for one.
                env: plan
                    .env
                    .iter()
                    .filter(|(key, _)| !key.starts_with("NODE_CHANNEL_"))
                    .map(|(key, value)| (key.clone(), value.clone()))
                    .collect(),
                cwd: plan.cwd.clone(),
                sets_ready: !config.wait_ready,
                listen_timeout,
            };
            watchers.push(health::spawn(&self.supervisor, check, subject));
        }
        self.running = Some(Running {
            pid,
            exit: spawned.exit,
            started: Instant::now(),
            watchers,
            ipc,
        });
        self.supervisor.persist_soon();
        tracing::info!("{name} started with pid {pid}");
        Ok(())
    }

    /// Says why a probe restarts it: in its history, its error log and the
    /// daemon log.
    fn note_restart(&self, reason: &str) {
        let Some((name, config)) = self
            .update(|record| {
                record.record("restart", reason.to_string());
                record.name.clone()
            })
            .zip(self.config())
        else {
            return;
        };
        tracing::warn!("{name}: {reason}; restarting");
        let (_, err) = self.supervisor.log_paths(self.id);
        self.supervisor
            .log_files
            .get(&err, logs::Rotation::of(&config))
            .note(&format!("[pmdaemon] restarting: {reason}"));
    }

    fn fail_launch(&mut self, error: &Error) {
        tracing::warn!("instance {} could not start: {error}", self.id);
        self.update(|record| {
            record.status = Status::Errored;
            record.pid = None;
            record.record("errored", error.to_string());
        });
        self.supervisor.persist_soon();
    }

    async fn on_exit(&mut self, reason: ExitReason) {
        let Some(running) = self.running.take() else {
            return;
        };
        // What the instance left behind in its group dies with it, so that
        // no orphan keeps its port or its pipes.
        spawn::signal_group(running.pid, Signal::SIGKILL);
        let uptime = running.started.elapsed();
        let pid = running.pid;
        // Its watchers (health checks, IPC) end now: none may act on the
        // dead process while the exit is handled.
        drop(running);
        let Some(config) = self.config() else {
            return;
        };
        self.supervisor.balancer.remove_backend(&config.name, pid);
        self.explain_unready_exit(&config);
        let decision = self.update(|record| {
            record.last_exit = Some(reason);
            record.pid = None;
            record.private_port = None;
            record.record(
                "exited",
                format!("{reason} after {} ms", uptime.as_millis()),
            );
            let decision = policy::after_exit(
                reason,
                uptime,
                record.desired,
                record.unstable_restarts,
                &config,
            );
            match &decision {
                policy::AfterExit::Stay { status, why } => {
                    record.status = *status;
                    if let Some((event, reason)) = why {
                        record.record(event, reason.clone());
                    }
                }
                policy::AfterExit::Restart { unstable } => {
                    if *unstable {
                        record.unstable_restarts += 1;
                    } else {
                        record.unstable_restarts = 0;
                    }
                    // Never 'online' without a process: the restart is under way.
                    record.status = Status::Launching;
                }
            }
            decision
        });
        // What left the group (setsid) goes too, before any replacement
        // starts (with the other exits of the moment: a crash of many
        // instances reads the daemon's children once, not once each).
        self.supervisor
            .escapes
            .kill(self.marks(), std::collections::HashSet::new())
            .await;
        if !matches!(decision, Some(policy::AfterExit::Restart { .. })) {
            self.supervisor.persist_soon();
            return;
        }
        if uptime >= BACKOFF_RESET {
            self.backoff_step = 0;
        }
        let delay_ms = restart_delay_ms(&config, self.backoff_step);
        self.backoff_step = self.backoff_step.saturating_add(1);
        if delay_ms == 0 {
            self.relaunch_after_exit();
        } else {
            self.restart_at = Some(Instant::now() + Duration::from_millis(delay_ms));
            self.update(|record| {
                record.status = Status::WaitingRestart;
                record.record("waiting", format!("restart in {delay_ms} ms"));
            });
            self.supervisor.persist_soon();
        }
    }

    fn relaunch_after_exit(&mut self) {
        self.update(|record| {
            record.restarts += 1;
            record.status = Status::Launching;
        });
        if let Err(err) = self.launch() {
            self.fail_launch(&err);
        }
    }

    fn start(&mut self) -> Result<(), Error> {
        self.update(|record| {
            record.desired = Desired::Running;
            record.unstable_restarts = 0;
        });
        if self.running.is_some() {
            return Ok(());
        }
        self.restart_at = None;
        self.launch().inspect_err(|err| self.fail_launch(err))
    }

    async fn stop(&mut self) {
        self.restart_at = None;
        self.update(|record| record.desired = Desired::Stopped);
        self.terminate().await;
        self.update(|record| {
            if record.status != Status::Stopped {
                record.record("stopped", "stopped on request");
            }
            record.status = Status::Stopped;
        });
        self.supervisor.persist_soon();
    }

    async fn restart(&mut self) -> Result<(), Error> {
        self.restart_at = None;
        self.terminate().await;
        self.update(|record| {
            record.desired = Desired::Running;
            record.unstable_restarts = 0;
            record.restarts += 1;
            record.record("restarting", "restarted on request");
        });
        self.launch().inspect_err(|err| self.fail_launch(err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exponential_backoff_grows_by_half_and_stops_at_fifteen_seconds() {
        let config = AppConfig {
            exp_backoff_restart_delay: Some(100),
            restart_delay: 5000,
            ..AppConfig::default()
        };
        let delays: Vec<u64> = (0..4).map(|step| restart_delay_ms(&config, step)).collect();
        assert_eq!(delays, [100, 150, 225, 337]);
        assert_eq!(restart_delay_ms(&config, 30), 15_000);
        assert_eq!(restart_delay_ms(&config, u32::MAX), 15_000);
    }

    #[test]
    fn without_backoff_the_fixed_delay_applies() {
        let config = AppConfig {
            restart_delay: 250,
            ..AppConfig::default()
        };
        assert_eq!(restart_delay_ms(&config, 0), 250);
        assert_eq!(restart_delay_ms(&config, 9), 250);
    }
}
