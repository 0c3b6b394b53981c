//! `save` and the dump it writes: the table is already on disk after every
//! change (`state.json`), so `save` is PM2's gesture of naming the set to
//! come back to. It writes the apps that run now (configuration and the
//! environment they inherited) to `dump.json`; `resurrect` starts those of
//! them the daemon does not know any more (after `delete`, or on a fresh
//! home), besides what `kill` parked.

use std::sync::Arc;

use pmdaemon_core::api::{ProcessInfo, SaveResponse};
use serde::{Deserialize, Serialize};

use super::Supervisor;
use crate::store::{self, AppRecord, Desired};
use crate::Error;

/// The layout of `dump.json`.
#[derive(Debug, Serialize, Deserialize)]
struct Dump {
    /// Layout version.
    version: u32,
    /// The apps that ran when it was written.
    apps: Vec<AppRecord>,
}

impl Supervisor {
    /// Writes the apps that run (or that `kill` parked) to `dump.json`.
    pub async fn save(&self) -> Result<SaveResponse, Error> {
        let apps: Vec<AppRecord> = {
            let table = self.lock();
            table
                .apps
                .iter()
                .filter(|app| {
                    table.instances.values().any(|i| {
                        i.app == app.config.name
                            && matches!(i.desired, Desired::Running | Desired::Parked)
                    })
                })
                .cloned()
                .collect()
        };
        let file = self.home.dump_file();
        let bytes = serde_json::to_vec_pretty(&Dump {
            version: 1,
            apps: apps.clone(),
        })
        .map_err(|err| Error::io("serialize", &file, std::io::Error::other(err)))?;
        store::write_atomic(&file, &bytes)?;
        self.persist_now().await;
        Ok(SaveResponse {
            file,
            apps: apps.into_iter().map(|a| a.config.name).collect(),
        })
    }

    /// Starts the apps of `dump.json` that the table does not hold; none
    /// when there is no dump.
    pub(super) async fn restore_dump(self: &Arc<Self>) -> Result<Vec<ProcessInfo>, Error> {
        let file = self.home.dump_file();
        let bytes = match std::fs::read(&file) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(Error::io("read", &file, err)),
        };
        let dump: Dump = serde_json::from_slice(&bytes).map_err(|err| Error::BadDump {
            path: file.clone(),
            why: err.to_string(),
        })?;
        // Every app is tried: one that cannot start does not keep the others
        // down; the first failure is reported once they have been tried.
        let mut started = Vec::new();
        let mut failure = None;
        for app in dump.apps {
            if self.lock().app(&app.config.name).is_some() {
                continue;
            }
            let name = app.config.name.clone();
            match self
                .register(app.config, app.inherited_env, app.source)
                .await
            {
                Ok(infos) => started.extend(infos),
                // Registered meanwhile by another resurrect or start.
                Err(Error::DuplicateName { .. }) => {}
                Err(err) => {
                    tracing::warn!("app '{name}' of the dump: {err}");
                    failure.get_or_insert(Error::AppCannotRun {
                        app: name,
                        source: Box::new(err),
                    });
                }
            }
        }
        match failure {
            Some(err) => Err(err),
            None => Ok(started),
        }
    }
}
