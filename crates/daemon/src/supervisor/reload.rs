//! Rolling reloads: the instances a target names are replaced one batch at
//! a time, and the next batch starts only once the previous one is ready.
//! An instance that is not ready within `listen_timeout` stops the rollout;
//! the rest keep running the previous version. Each step can be reported as
//! it happens ([`ReloadEvent`]), for the CLI's progress and `--json`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use pmdaemon_core::api::{ProcessInfo, ReloadEvent, ReloadOutcome, ReloadResult};
use tokio::sync::mpsc;

use super::instance::Command;
use super::Supervisor;
use crate::Error;

/// Where a rollout's events go, if anyone listens.
pub type Progress = mpsc::UnboundedSender<ReloadEvent>;

/// What the rollout has done so far, for the `finished` event.
struct Rollout<'a> {
    progress: Option<&'a Progress>,
    outcomes: Vec<ReloadOutcome>,
}

impl Rollout<'_> {
    fn emit(&self, event: ReloadEvent) {
        if let Some(progress) = self.progress {
            let _ = progress.send(event);
        }
    }

    fn set(
        &mut self,
        instance: &str,
        outcome: ReloadResult,
        pid: Option<u32>,
        error: Option<String>,
    ) {
        if let Some(entry) = self.outcomes.iter_mut().find(|o| o.instance == instance) {
            entry.outcome = outcome;
            entry.pid = pid;
            entry.error = error;
        }
    }

    fn finish(&self, error: Option<String>) {
        self.emit(ReloadEvent::Finished {
            outcomes: self.outcomes.clone(),
            error,
        });
    }
}

impl Supervisor {
    /// Replaces the instances `target` names one batch of `parallel` at a
    /// time (see the module doc); `progress` receives each step.
    pub async fn reload(
        self: &Arc<Self>,
        target: &str,
        parallel: u32,
        progress: Option<&Progress>,
    ) -> Result<Vec<ProcessInfo>, Error> {
        let mut rollout = Rollout {
            progress,
            outcomes: Vec::new(),
        };
        let result = self.roll(target, parallel, &mut rollout).await;
        rollout.finish(result.as_ref().err().map(ToString::to_string));
        result
    }

    async fn roll(
        self: &Arc<Self>,
        target: &str,
        parallel: u32,
        rollout: &mut Rollout<'_>,
    ) -> Result<Vec<ProcessInfo>, Error> {
        if self.shutting_down.load(Ordering::SeqCst) {
            return Err(Error::ShuttingDown);
        }
        let ids = self.lock().resolve(target)?;
        let guards = self.lock_apps(&ids).await;
        let names: Vec<String> = {
            let table = self.lock();
            ids.iter()
                .map(|id| {
                    table
                        .instances
                        .get(id)
                        .map(|i| i.name.clone())
                        .unwrap_or_default()
                })
                .collect()
        };
        rollout.outcomes = names
            .iter()
            .zip(&ids)
            .map(|(name, id)| ReloadOutcome {
                instance: name.clone(),
                outcome: ReloadResult::NotReached,
                pid: self.lock().instances.get(id).and_then(|i| i.pid),
                error: None,
            })
            .collect();
        rollout.emit(ReloadEvent::Planned {
            instances: names.clone(),
        });
        let total = ids.len();
        let mut replaced = 0;
        let chunk = parallel.max(1) as usize;
        for (batch_index, batch) in ids.chunks(chunk).enumerate() {
            for offset in 0..batch.len() {
                let position = batch_index * chunk + offset;
                rollout.emit(ReloadEvent::Reloading {
                    instance: names[position].clone(),
                    step: position + 1,
                    total,
                });
            }
            // Reloads run on the saved ports.
            self.override_ports(batch, None)?;
            let started = self.command_all(batch, Command::Reload).await;
            for (offset, id) in batch.iter().enumerate() {
                let name = &names[batch_index * chunk + offset];
                let wait = self.app_config(*id).and_then(|c| c.listen_timeout).map_or(
                    crate::health::DEFAULT_LISTEN_TIMEOUT,
                    std::time::Duration::from_millis,
                );
                let outcome = match &started {
                    Some(err) => Err(err.to_string()),
                    None => {
                        self.wait_ready(*id, tokio::time::Instant::now() + wait)
                            .await
                    }
                };
                let pid = self.lock().instances.get(id).and_then(|i| i.pid);
                if let Err(why) = outcome {
                    self.persist_now().await;
                    // A shared-port instance keeps its old process.
                    let kept = started.is_some()
                        && self.app_config(*id).and_then(|c| c.sharing()).is_some();
                    let left = total - replaced - usize::from(!kept);
                    rollout.set(name, ReloadResult::Failed, pid, Some(why.clone()));
                    rollout.emit(ReloadEvent::Failed {
                        instance: name.clone(),
                        error: why.clone(),
                    });
                    return Err(Error::ReloadAborted {
                        instance: name.clone(),
                        wait_ms: wait.as_millis(),
                        why,
                        replaced,
                        total,
                        left,
                    });
                }
                replaced += 1;
                rollout.set(name, ReloadResult::Replaced, pid, None);
                rollout.emit(ReloadEvent::Replaced {
                    instance: name.clone(),
                    pid,
                });
            }
        }
        drop(guards);
        self.persist_now().await;
        let table = self.lock();
        Ok(ids.iter().filter_map(|id| table.info(*id)).collect())
    }
}
