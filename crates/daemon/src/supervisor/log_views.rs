//! The supervisor's side of the logs: which files each instance writes,
//! their tails and flushes (the files themselves are [`crate::logs`]'s).

use pmdaemon_core::api::{LogStream, LogTail, LogsResponse};

use super::Supervisor;
use crate::{logs, Error};

impl Supervisor {
    /// The stdout and stderr files of instance `id`.
    pub(crate) fn log_paths(&self, id: u32) -> (std::path::PathBuf, std::path::PathBuf) {
        let table = self.lock();
        table.log_paths(id, &self.home)
    }

    /// Closes log files that no remaining instance writes to.
    pub(super) fn forget_unused_logs(&self, candidates: &[std::path::PathBuf]) {
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
            .flat_map(|i| self.files_of(&table, i.id))
            .collect()
    }

    /// Every app log file the daemon manages (stdout, stderr and the
    /// combined file of every instance, running or not; never
    /// `/dev/null`).
    pub fn all_log_paths(&self) -> Vec<std::path::PathBuf> {
        let table = self.lock();
        table
            .instances
            .keys()
            .flat_map(|id| self.files_of(&table, *id))
            .collect()
    }

    fn files_of(&self, table: &super::table::Table, id: u32) -> Vec<std::path::PathBuf> {
        let (out, err) = table.log_paths(id, &self.home);
        [
            Some(out),
            Some(err),
            table.combined_log_path(id, &self.home),
        ]
        .into_iter()
        .flatten()
        .filter(|p| !logs::is_discarded(p))
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
                .flat_map(|id| self.files_of(&table, *id))
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
}
