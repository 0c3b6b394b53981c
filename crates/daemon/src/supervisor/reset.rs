//! What changes an instance's record without touching its process:
//! `reset` zeroes the restart counters, `--update-env` gives an app the
//! caller's environment for its next start.

use std::collections::BTreeMap;

use pmdaemon_core::api::ProcessInfo;

use super::Supervisor;
use crate::Error;

impl Supervisor {
    /// `pmdaemon reset <target>`: zero restarts and unstable restarts.
    pub async fn reset(&self, target: &str) -> Result<Vec<ProcessInfo>, Error> {
        let ids = self.lock().resolve(target)?;
        for id in &ids {
            self.update_instance(*id, |record| {
                record.restarts = 0;
                record.unstable_restarts = 0;
                record.record("reset", "restart counters reset");
            });
        }
        self.persist_now().await;
        let table = self.lock();
        Ok(ids.iter().filter_map(|id| table.info(*id)).collect())
    }

    /// `--update-env`: the apps of `target` take `env` as the environment
    /// they inherit (their `env` field still applies on top), from their
    /// next start on. Without it they keep the one they were started with.
    pub fn update_env(&self, target: &str, env: BTreeMap<String, String>) -> Result<(), Error> {
        pmdaemon_core::limits::check_env_entries(&env)?;
        let mut table = self.lock();
        let apps = {
            let ids = table.resolve(target)?;
            table.apps_of(&ids)
        };
        for app in &apps {
            // Written with the restart or reload that follows.
            if let Some(record) = table.app_mut(app) {
                record.inherited_env = env.clone();
            }
        }
        Ok(())
    }
}
