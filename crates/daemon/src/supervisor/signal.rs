//! `pmdaemon signal` (PM2's `sendSignal`): a signal to the running process
//! of each instance a target names, through its own task.

use nix::sys::signal::Signal;
use pmdaemon_core::api::ProcessInfo;

use super::instance::Command;
use super::Supervisor;
use crate::Error;

impl Supervisor {
    /// Sends `signal` (a name such as `SIGUSR2`/`USR2`, or a number) to
    /// the process of every instance of `target` that runs; an error if
    /// none runs.
    pub async fn signal(&self, target: &str, signal: &str) -> Result<Vec<ProcessInfo>, Error> {
        let number = pmdaemon_core::config::signal_number(signal)?;
        let signal = Signal::try_from(number).map_err(|_| Error::NoSuchSignal {
            signal: signal.to_string(),
        })?;
        let ids = self.lock().resolve(target)?;
        let running: Vec<u32> = {
            let table = self.lock();
            ids.iter()
                .copied()
                .filter(|id| table.instances.get(id).is_some_and(|r| r.pid.is_some()))
                .collect()
        };
        if running.is_empty() {
            return Err(Error::NothingToSignal {
                target: target.to_string(),
                signal: signal.to_string(),
            });
        }
        if let Some(err) = self
            .command_all(&running, |reply| Command::Signal(signal, reply))
            .await
        {
            return Err(err);
        }
        let table = self.lock();
        Ok(running.iter().filter_map(|id| table.info(*id)).collect())
    }
}
