//! The process table on disk: `state.json`, written atomically (temp file,
//! fsync, rename, fsync of the directory) so that a crash at any moment
//! leaves either the old table or the new one, never a torn file, and
//! `state.journal`, the changes since (see [`crate::journal`]).

use std::collections::{BTreeMap, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};

use pmdaemon_core::api::{ExitReason, HistoryEvent, Status};
use pmdaemon_core::config::AppConfig;
use serde::{Deserialize, Serialize};

use crate::journal::{self, Changes, Journal};
use crate::Error;

/// The current layout of `state.json`. Older layouts must keep loading.
/// 2: an instance may be `parked` (stopped by `pmdaemon kill`).
pub const STATE_VERSION: u32 = 2;

/// The whole process table.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct State {
    /// Layout version.
    pub version: u32,
    /// The next instance id to hand out (ids are never reused).
    pub next_id: u32,
    /// Registered apps, in the order they were started.
    pub apps: Vec<AppRecord>,
    /// Their instances, by id.
    pub instances: Vec<InstanceRecord>,
    /// The last line of `state.journal` this table includes (0: none; a
    /// file from before the journal).
    pub journal_seq: u64,
}

/// An app as registered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppRecord {
    /// Its configuration.
    pub config: AppConfig,
    /// The environment of the command that started it.
    #[serde(default)]
    pub inherited_env: BTreeMap<String, String>,
    /// The ecosystem file it was started from, if any.
    #[serde(default)]
    pub source: Option<PathBuf>,
}

/// What the user asked an instance to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Desired {
    /// Keep it running.
    Running,
    /// Keep it stopped.
    Stopped,
    /// It was running when `pmdaemon kill` stopped it: the daemons that
    /// follow keep it stopped until `pmdaemon resurrect` (or a start) brings
    /// it back. A daemon that dies otherwise brings back what it ran.
    Parked,
}

/// One instance's persistent record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceRecord {
    /// Stable id.
    pub id: u32,
    /// The app it belongs to.
    pub app: String,
    /// Its index in the app.
    pub index: u32,
    /// Its name (`<app>-<index>`).
    pub name: String,
    /// What the user asked for.
    pub desired: Desired,
    /// The port this instance was given from the app's spec.
    #[serde(default)]
    pub port: Option<u16>,
    /// A port given by `restart --port` for the current run only.
    #[serde(default)]
    pub port_override: Option<u16>,
    /// Where it is in its life cycle.
    pub status: Status,
    /// Restarts so far.
    #[serde(default)]
    pub restarts: u32,
    /// Unstable restarts in a row.
    #[serde(default)]
    pub unstable_restarts: u32,
    /// The running process (also its process group id).
    #[serde(default)]
    pub pid: Option<u32>,
    /// That process's start time in clock ticks after boot, which tells it
    /// apart from a later process that reuses the pid.
    #[serde(default)]
    pub pid_start_time: Option<u64>,
    /// During a reload, the process being replaced (it still serves until
    /// its successor is ready), so that a new daemon can clean it up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_pid: Option<u32>,
    /// That process's start time in clock ticks after boot.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_pid_start_time: Option<u64>,
    /// In proxy mode, the private port the running process listens on.
    #[serde(skip)]
    pub private_port: Option<u16>,
    /// When the process started, Unix milliseconds.
    #[serde(default)]
    pub started_at_ms: Option<u64>,
    /// How the previous process ended.
    #[serde(default)]
    pub last_exit: Option<ExitReason>,
    /// Recent events.
    #[serde(default)]
    pub history: VecDeque<HistoryEvent>,
    /// Last sampled CPU use (not persisted).
    #[serde(skip)]
    pub cpu_percent: Option<f32>,
    /// Last sampled memory of the process tree (not persisted).
    #[serde(skip)]
    pub memory_bytes: Option<u64>,
    /// Health of the running process (not persisted).
    #[serde(skip)]
    pub health: pmdaemon_core::api::Health,
    /// The last failed check (not persisted).
    #[serde(skip)]
    pub health_error: Option<String>,
    /// Whether the running process is ready (not persisted).
    #[serde(skip)]
    pub ready: bool,
}

/// How many events an instance keeps.
pub const HISTORY_LEN: usize = 20;

impl InstanceRecord {
    /// A new instance that the user wants running, not yet launched.
    pub fn new(id: u32, app: &str, index: u32, name: String, port: Option<u16>) -> Self {
        Self {
            id,
            app: app.to_string(),
            index,
            name,
            desired: Desired::Running,
            port,
            port_override: None,
            status: Status::Launching,
            restarts: 0,
            unstable_restarts: 0,
            pid: None,
            pid_start_time: None,
            previous_pid: None,
            previous_pid_start_time: None,
            private_port: None,
            started_at_ms: None,
            last_exit: None,
            history: VecDeque::new(),
            cpu_percent: None,
            memory_bytes: None,
            health: Default::default(),
            health_error: None,
            ready: false,
        }
    }

    /// The port the instance runs on now.
    pub fn effective_port(&self) -> Option<u16> {
        self.port_override.or(self.port)
    }

    /// Appends an event, dropping the oldest beyond [`HISTORY_LEN`].
    pub fn record(&mut self, event: &str, reason: impl Into<String>) {
        if self.history.len() >= HISTORY_LEN {
            self.history.pop_front();
        }
        self.history.push_back(HistoryEvent {
            at_ms: now_ms(),
            event: event.to_string(),
            reason: reason.into(),
        });
    }
}

/// Unix time in milliseconds.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Reads the table. A missing file is an empty table; an unreadable or
/// corrupt one is moved aside (never silently emptied) and reported in the
/// returned warning.
pub fn load(path: &Path) -> Result<(State, Option<String>), Error> {
    let bytes = match fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            // A journal without its snapshot means nothing (and its lines
            // must never be replayed onto the table that starts now).
            journal::move_aside(path, &format!("orphan-{}", now_ms()));
            return Ok((State::default(), None));
        }
        Err(err) => {
            let aside = move_aside(path)?;
            return Ok((
                State::default(),
                Some(format!(
                    "{} is unreadable ({err}); moved it to {} and started with an empty process table",
                    path.display(),
                    aside.display()
                )),
            ));
        }
    };
    match serde_json::from_slice::<State>(&bytes) {
        Ok(mut state) if state.version <= STATE_VERSION => {
            let warning = journal::replay(path, &mut state)?;
            Ok((state, warning))
        }
        Ok(state) => {
            let aside = move_aside(path)?;
            Ok((
                State::default(),
                Some(format!(
                    "{} has layout version {} from a newer pmdaemon; moved it to {} and started with an empty process table",
                    path.display(),
                    state.version,
                    aside.display()
                )),
            ))
        }
        Err(err) => {
            let aside = move_aside(path)?;
            Ok((
                State::default(),
                Some(format!(
                    "{} is corrupt ({err}); moved it to {} and started with an empty process table",
                    path.display(),
                    aside.display()
                )),
            ))
        }
    }
}

fn move_aside(path: &Path) -> Result<PathBuf, Error> {
    let suffix = format!("corrupt-{}", now_ms());
    let aside = path.with_extension(format!("json.{suffix}"));
    fs::rename(path, &aside).map_err(|err| Error::io("move aside", path, err))?;
    // Its changes mean nothing without it.
    journal::move_aside(path, &suffix);
    Ok(aside)
}

/// Writes the table atomically; returns its size.
pub fn save(path: &Path, state: &State) -> Result<u64, Error> {
    let bytes = serde_json::to_vec(state)
        .map_err(|err| Error::io("serialize", path, std::io::Error::other(err)))?;
    write_atomic(path, &bytes)?;
    Ok(bytes.len() as u64)
}

/// Replaces `path` with `bytes` atomically (see
/// [`pmdaemon_core::files::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    Ok(pmdaemon_core::files::write_atomic(path, bytes)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> State {
        State {
            version: STATE_VERSION,
            journal_seq: 0,
            next_id: 3,
            apps: vec![AppRecord {
                config: AppConfig {
                    name: "web".into(),
                    script: "node".into(),
                    ..AppConfig::default()
                },
                inherited_env: BTreeMap::new(),
                source: None,
            }],
            instances: vec![InstanceRecord {
                status: Status::Online,
                restarts: 2,
                pid: Some(42),
                pid_start_time: Some(7),
                started_at_ms: Some(1),
                last_exit: Some(ExitReason::Signal(9)),
                ..InstanceRecord::new(1, "web", 0, "web-0".into(), Some(3000))
            }],
        }
    }

    #[test]
    fn save_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        save(&path, &sample()).unwrap();
        let (loaded, warning) = load(&path).unwrap();
        assert_eq!(loaded, sample());
        assert!(warning.is_none());
        assert!(!path.with_extension("json.tmp").exists());
    }

    #[test]
    fn a_missing_state_file_is_an_empty_table() {
        let dir = tempfile::tempdir().unwrap();
        let (state, warning) = load(&dir.path().join("state.json")).unwrap();
        assert_eq!(state, State::default());
        assert!(warning.is_none());
    }

    #[test]
    fn a_corrupt_state_file_is_moved_aside_not_emptied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        fs::write(&path, b"{\"apps\": [oops").unwrap();
        let (state, warning) = load(&path).unwrap();
        assert_eq!(state, State::default());
        assert!(warning.unwrap().contains("corrupt"));
        let kept: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(kept.len(), 1);
        assert!(kept[0].starts_with("state.json.corrupt-"), "{kept:?}");
        let aside = dir.path().join(&kept[0]);
        assert_eq!(fs::read(aside).unwrap(), b"{\"apps\": [oops");
    }

    #[test]
    fn checked_in_state_files_still_load() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/state");
        let mut seen = 0;
        for entry in fs::read_dir(&fixtures).unwrap() {
            let path = entry.unwrap().path();
            let (state, warning) = load(&path).unwrap();
            assert!(warning.is_none(), "{}: {warning:?}", path.display());
            assert!(!state.instances.is_empty(), "{}", path.display());
            seen += 1;
        }
        assert!(seen > 0, "no fixtures in {}", fixtures.display());
    }
}

/// Writes the table whenever asked, coalescing bursts of requests into one
/// write; a request that someone waits for (an API answer) is written at
/// once. Writes go to the journal ([`crate::journal`]): one appended line
/// and one fsync per write, whatever the size of the table; the whole table
/// is written when the journal has outgrown it, as a daemon's first write,
/// after a failed write, and when asked ([`Persister::now_full`]).
///
/// A batch (an ecosystem file, `restart all`, `scale`, `delete all`)
/// registers or changes all its records first and then waits once: its
/// changes are one line and one fsync, written before it answers.
#[derive(Debug)]
pub struct Persister {
    requested: std::sync::atomic::AtomicU64,
    written: tokio::sync::watch::Sender<u64>,
    wake: tokio::sync::Notify,
    /// Someone waits for the next write: write at once.
    urgent: std::sync::atomic::AtomicBool,
    urgent_wake: tokio::sync::Notify,
    /// Someone asked for the next write to be the whole table.
    full: std::sync::atomic::AtomicBool,
    /// Writes so far (journal lines and snapshots).
    writes: std::sync::atomic::AtomicU64,
    /// Batches under way: background changes wait for their one write.
    batches: std::sync::atomic::AtomicUsize,
}

/// A batch under way ([`Persister::batch`]); its end lets background
/// writes go again.
#[derive(Debug)]
pub struct Batch(std::sync::Arc<Persister>);

impl Drop for Batch {
    fn drop(&mut self) {
        self.0
            .batches
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        self.0.urgent_wake.notify_one();
    }
}

impl Default for Persister {
    fn default() -> Self {
        Self {
            requested: std::sync::atomic::AtomicU64::new(0),
            written: tokio::sync::watch::Sender::new(0),
            wake: tokio::sync::Notify::new(),
            urgent: std::sync::atomic::AtomicBool::new(false),
            urgent_wake: tokio::sync::Notify::new(),
            full: std::sync::atomic::AtomicBool::new(false),
            writes: std::sync::atomic::AtomicU64::new(0),
            batches: std::sync::atomic::AtomicUsize::new(0),
        }
    }
}

/// How long background changes are gathered before a write.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(25);

impl Persister {
    /// Asks for a write soon (coalesced); returns the request's generation.
    pub fn soon(&self) -> u64 {
        use std::sync::atomic::Ordering;
        let generation = self.requested.fetch_add(1, Ordering::SeqCst) + 1;
        self.wake.notify_one();
        generation
    }

    /// Asks for a write now and waits until it is on disk.
    pub async fn now(&self) {
        use std::sync::atomic::Ordering;
        // Requested first: a writer that sees `urgent` then sees this
        // request too (else it could write without it and, during a batch,
        // wait for another urgent request that never comes).
        let generation = self.soon();
        self.urgent.store(true, Ordering::SeqCst);
        self.urgent_wake.notify_one();
        let mut written = self.written.subscribe();
        let _ = written.wait_for(|w| *w >= generation).await;
    }

    /// Starts a batch (an ecosystem file, `restart all`, `scale`, `delete
    /// all`) that ends with [`Persister::now`]: until the guard drops, the
    /// status changes of its instances are not written on their own but
    /// with the batch, one write and one fsync. Nothing acknowledged waits:
    /// the batch has not answered yet, and a crash before its write leaves
    /// processes that recovery finds by their marks.
    pub fn batch(self: &std::sync::Arc<Self>) -> Batch {
        self.batches
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Batch(std::sync::Arc::clone(self))
    }

    /// Writes of the table so far (journal lines and snapshots, one fsync
    /// each), shown in `/api/system`.
    pub fn writes(&self) -> u64 {
        self.writes.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Writes the whole table to `state.json` (emptying the journal) and
    /// waits until it is on disk: a daemon that stops leaves one file.
    pub async fn now_full(&self) {
        self.full.store(true, std::sync::atomic::Ordering::SeqCst);
        self.now().await;
    }

    /// Starts the writing task: `changes(full)` gives what to write, the
    /// whole table when `full` (None once its owner is gone, which ends the
    /// task); `seq` is the last journal line the loaded table includes.
    pub fn spawn(
        self: &std::sync::Arc<Self>,
        path: PathBuf,
        seq: u64,
        changes: impl Fn(bool) -> Option<Changes> + Send + 'static,
    ) {
        let persister = std::sync::Arc::clone(self);
        let journal = Journal::new(path, seq);
        tokio::spawn(async move { persister.run(journal, changes).await });
    }

    async fn run(&self, journal: Journal, changes: impl Fn(bool) -> Option<Changes>) {
        use std::sync::atomic::Ordering;
        let journal = std::sync::Arc::new(std::sync::Mutex::new(journal));
        // A daemon's first write is the whole table: what it loaded (the
        // old snapshot and journal) becomes one file again.
        let mut whole_next = true;
        loop {
            // notify_one stores a permit when nobody waits, so a request
            // made between the check and the await is not lost.
            if self.requested.load(Ordering::SeqCst) > *self.written.borrow() {
                // Changes nobody waits for (status updates of running
                // instances) are gathered for a moment: a burst, one write.
                // During a batch, they wait for the batch's write.
                // A long batch (a rollout, a slow apply) holds them back
                // for MAX_BATCH_DEFER at most: restart counts and new pids
                // of other apps reach the disk meanwhile.
                let deferred_since = tokio::time::Instant::now();
                while !self.urgent.swap(false, Ordering::SeqCst) {
                    if self.batches.load(Ordering::SeqCst) > 0 {
                        let until = deferred_since + MAX_BATCH_DEFER;
                        tokio::select! {
                            () = self.urgent_wake.notified() => continue,
                            () = tokio::time::sleep_until(until) => break,
                        }
                    }
                    tokio::select! {
                        () = tokio::time::sleep(COALESCE) => {}
                        () = self.urgent_wake.notified() => {}
                    }
                    break;
                }
                let requested = self.requested.load(Ordering::SeqCst);
                let full = whole_next
                    | self.full.swap(false, Ordering::SeqCst)
                    | journal
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .wants_snapshot();
                let Some(changes) = changes(full) else { return };
                let journal = std::sync::Arc::clone(&journal);
                let written = tokio::task::spawn_blocking(move || {
                    let mut journal = journal.lock().unwrap_or_else(|e| e.into_inner());
                    if crate::home_watch::lost() {
                        // The path may be another daemon's home by now.
                        return Ok(journal.writes);
                    }
                    journal.write(changes).map(|()| journal.writes)
                })
                .await;
                whole_next = match written {
                    Ok(Ok(writes)) => {
                        self.writes.store(writes, Ordering::SeqCst);
                        false
                    }
                    Ok(Err(err)) => {
                        tracing::error!("could not save the process table: {err}");
                        true
                    }
                    Err(err) => {
                        tracing::error!("could not save the process table: {err}");
                        true
                    }
                };
                // Waiters are released even after a failure: the daemon
                // keeps serving from memory and the failure is in daemon.log.
                // The changes the failed write held are in the next one,
                // which writes the whole table.
                self.written.send_replace(requested);
                continue;
            }
            self.wake.notified().await;
        }
    }
}

/// How long status changes may wait for a batch's write.
const MAX_BATCH_DEFER: std::time::Duration = std::time::Duration::from_secs(5);
