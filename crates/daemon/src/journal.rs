//! The table's journal: `state.journal` next to `state.json`, so that one
//! change costs its own size on disk, not the whole table's.
//!
//! Why a journal: rewriting `state.json` (about 3 KB per app) with an fsync
//! for every `start` made a start cost grow with the table (1,000 apps:
//! 3 MB per start). Now each write appends one JSON line holding the
//! records that changed since the previous write (whole records, keyed by
//! app name and instance id, so replaying a line twice is harmless) and
//! calls `fdatasync` once. When the journal outgrows the snapshot (and at
//! a clean shutdown) the whole table is written atomically to `state.json`
//! (temp file, fsync, rename, fsync of the directory) and the journal is
//! emptied: each byte of the table is rewritten at most once per byte
//! appended, so a write is O(change) amortised.
//!
//! Crash safety, with the daemon SIGKILLed at any moment:
//! - mid-append: the torn last line does not parse and is ignored; the
//!   write it belonged to was not acknowledged (API calls answer only
//!   after `fdatasync` returned), and whatever processes it had started
//!   carry the marks that recovery finds and stops;
//! - between the snapshot's rename and the journal's truncation: every
//!   line carries a sequence number and the snapshot the last one it
//!   includes (`journal_seq`), so old lines are skipped;
//! - a journal that exists while `state.json` does not cannot happen (the
//!   first write of every daemon is a full snapshot), and would replay
//!   onto an empty table.
//!
//! A state file from an older pmdaemon has no `journal_seq` (0) and no
//! journal: it loads as before.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::store::{self, AppRecord, InstanceRecord, State};
use crate::Error;

/// The journal never forces a snapshot before it holds this much.
const MIN_COMPACT_BYTES: u64 = 256 * 1024;

/// One write: the records that changed since the previous one.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Delta {
    /// Its place in the journal (1, 2, ...; never reused within a home).
    pub seq: u64,
    /// The table's next instance id.
    pub next_id: u32,
    /// Apps added or changed, whole, in the order they were added.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppRecord>,
    /// Apps deleted, by name.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_apps: Vec<String>,
    /// Instances added or changed, whole.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub instances: Vec<InstanceRecord>,
    /// Instances deleted, by id.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub removed_instances: Vec<u32>,
}

impl Delta {
    /// Whether it records nothing (the next id aside).
    pub fn is_empty(&self) -> bool {
        self.apps.is_empty()
            && self.removed_apps.is_empty()
            && self.instances.is_empty()
            && self.removed_instances.is_empty()
    }

    fn apply(self, state: &mut State, instances: &mut BTreeMap<u32, InstanceRecord>) {
        state.next_id = state.next_id.max(self.next_id);
        for app in self.apps {
            match state
                .apps
                .iter_mut()
                .find(|a| a.config.name == app.config.name)
            {
                Some(existing) => *existing = app,
                None => state.apps.push(app),
            }
        }
        state
            .apps
            .retain(|a| !self.removed_apps.contains(&a.config.name));
        for instance in self.instances {
            instances.insert(instance.id, instance);
        }
        for id in self.removed_instances {
            instances.remove(&id);
        }
        state.journal_seq = self.seq;
    }
}

/// What the table gives the journal to write.
#[derive(Debug)]
pub enum Changes {
    /// The whole table (a snapshot).
    Full(State),
    /// What changed since the previous write.
    Delta(Delta),
}

/// Where the journal of the table at `state_path` is.
pub fn path_of(state_path: &Path) -> PathBuf {
    state_path.with_extension("journal")
}

/// Applies the journal's lines newer than `state` to it. A line that does
/// not parse ends the replay: it can only be the torn last line of a write
/// that was never acknowledged (a warning is returned if more follow).
/// `state.journal_seq` becomes the highest sequence number any line
/// carries, applied or not: the next daemon numbers its lines after them,
/// even one that starts from another table (`--fresh`), so that a crash
/// before its first snapshot has truncated the journal can never replay
/// them onto its table.
pub fn replay(state_path: &Path, state: &mut State) -> Result<Option<String>, Error> {
    let path = path_of(state_path);
    let file = match File::open(&path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(Error::io("read", &path, err)),
    };
    let mut instances: BTreeMap<u32, InstanceRecord> = std::mem::take(&mut state.instances)
        .into_iter()
        .map(|i| (i.id, i))
        .collect();
    // Bytes, not text: a line torn inside a multi-byte character is just
    // another torn line.
    #[derive(Deserialize)]
    struct Seq {
        seq: u64,
    }
    let mut lines = BufReader::new(file).split(b'\n');
    let mut warning = None;
    let mut highest = state.journal_seq;
    while let Some(line) = lines.next() {
        let line = line.map_err(|err| Error::io("read", &path, err))?;
        let delta = match serde_json::from_slice::<Delta>(&line) {
            Ok(delta) => delta,
            Err(err) => {
                let after: Vec<Vec<u8>> = lines
                    .map_while(Result::ok)
                    .filter(|l| !l.is_empty())
                    .collect();
                if !after.is_empty() {
                    warning = Some(format!(
                        "{} has an unreadable line ({err}); the changes after it were not loaded",
                        path.display()
                    ));
                }
                let seqs = after
                    .iter()
                    .filter_map(|line| serde_json::from_slice::<Seq>(line).ok());
                highest = seqs.fold(highest, |highest, line| highest.max(line.seq));
                break;
            }
        };
        highest = highest.max(delta.seq);
        if delta.seq > state.journal_seq {
            delta.apply(state, &mut instances);
        }
    }
    state.instances = instances.into_values().collect();
    state.journal_seq = highest;
    Ok(warning)
}

/// Moves a journal aside with the snapshot it belonged to.
pub fn move_aside(state_path: &Path, suffix: &str) {
    let path = path_of(state_path);
    if path.exists() {
        let _ = fs::rename(&path, path.with_extension(format!("journal.{suffix}")));
    }
}

/// Writes the table: appends deltas, and compacts into `state.json`.
#[derive(Debug)]
pub struct Journal {
    state_path: PathBuf,
    file: Option<File>,
    /// The last sequence number written.
    seq: u64,
    /// Bytes appended since the last snapshot.
    appended: u64,
    /// The last snapshot's size.
    snapshot: u64,
    /// Snapshots and appends so far (for tests and the benchmark).
    pub writes: u64,
}

impl Journal {
    /// The journal of the table at `state_path`, whose last written line
    /// was `seq` (the loaded table's `journal_seq`, see [`replay`]).
    pub fn new(state_path: PathBuf, seq: u64) -> Self {
        Self {
            state_path,
            file: None,
            seq,
            appended: 0,
            snapshot: 0,
            writes: 0,
        }
    }

    /// Whether the next write should be a snapshot.
    pub fn wants_snapshot(&self) -> bool {
        self.appended > self.snapshot.max(MIN_COMPACT_BYTES)
    }

    /// Writes `changes` durably (one fsync for a delta).
    pub fn write(&mut self, changes: Changes) -> Result<(), Error> {
        match changes {
            Changes::Full(state) => self.snapshot(state),
            Changes::Delta(delta) if delta.is_empty() => Ok(()),
            Changes::Delta(mut delta) => {
                delta.seq = self.seq + 1;
                // Used up even if the write fails: a line that reached the
                // file without its fsync must not share its number with a
                // later one.
                self.seq = delta.seq;
                let path = path_of(&self.state_path);
                let mut line = serde_json::to_vec(&delta)
                    .map_err(|err| Error::io("serialize", &path, std::io::Error::other(err)))?;
                line.push(b'\n');
                let file = match &mut self.file {
                    Some(file) => file,
                    None => {
                        let file = OpenOptions::new()
                            .append(true)
                            .create(true)
                            .mode(0o600)
                            .open(&path)
                            .map_err(|err| Error::io("open", &path, err))?;
                        // A file just created survives a power loss only
                        // once its directory entry is on disk.
                        if let Some(dir) = path.parent() {
                            if let Ok(dir) = File::open(dir) {
                                let _ = dir.sync_all();
                            }
                        }
                        self.file.insert(file)
                    }
                };
                file.write_all(&line)
                    .and_then(|()| file.sync_data())
                    .map_err(|err| Error::io("write", &path, err))?;
                self.appended += line.len() as u64;
                self.writes += 1;
                Ok(())
            }
        }
    }

    fn snapshot(&mut self, mut state: State) -> Result<(), Error> {
        state.journal_seq = self.seq;
        let bytes = store::save(&self.state_path, &state)?;
        // The snapshot holds every line: they go (a crash before this
        // leaves lines the snapshot's journal_seq skips).
        let path = path_of(&self.state_path);
        match OpenOptions::new().write(true).open(&path) {
            Ok(file) => {
                file.set_len(0)
                    .and_then(|()| file.sync_all())
                    .map_err(|err| Error::io("truncate", &path, err))?;
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
            Err(err) => return Err(Error::io("open", &path, err)),
        }
        self.appended = 0;
        self.snapshot = bytes;
        self.writes += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pmdaemon_core::config::AppConfig;

    fn app(name: &str) -> AppRecord {
        AppRecord {
            config: AppConfig {
                name: name.into(),
                script: "sleep".into(),
                ..AppConfig::default()
            },
            inherited_env: Default::default(),
            source: None,
        }
    }

    fn instance(id: u32, app: &str) -> InstanceRecord {
        InstanceRecord::new(id, app, 0, format!("{app}-0"), None)
    }

    fn loaded(path: &Path) -> State {
        let (state, warning) = store::load(path).unwrap();
        assert!(warning.is_none(), "{warning:?}");
        state
    }

    #[test]
    fn deltas_replay_onto_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut journal = Journal::new(path.clone(), 0);
        journal.write(Changes::Full(State::default())).unwrap();
        for (id, name) in [(1, "a"), (2, "b"), (3, "c")] {
            journal
                .write(Changes::Delta(Delta {
                    next_id: id + 1,
                    apps: vec![app(name)],
                    instances: vec![instance(id, name)],
                    ..Delta::default()
                }))
                .unwrap();
        }
        let mut changed = instance(2, "b");
        changed.restarts = 5;
        journal
            .write(Changes::Delta(Delta {
                next_id: 4,
                instances: vec![changed.clone()],
                removed_apps: vec!["a".into()],
                removed_instances: vec![1],
                ..Delta::default()
            }))
            .unwrap();
        let state = loaded(&path);
        let names: Vec<&str> = state.apps.iter().map(|a| a.config.name.as_str()).collect();
        assert_eq!(names, ["b", "c"]);
        assert_eq!(state.instances, vec![changed, instance(3, "c")]);
        assert_eq!(state.next_id, 4);
        assert_eq!(journal.writes, 5);
        // A snapshot empties the journal and holds the same table.
        journal.write(Changes::Full(state.clone())).unwrap();
        assert_eq!(fs::metadata(path_of(&path)).unwrap().len(), 0);
        assert_eq!(loaded(&path), state);
    }

    #[test]
    fn a_torn_last_line_is_ignored_and_old_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut journal = Journal::new(path.clone(), 0);
        journal.write(Changes::Full(State::default())).unwrap();
        let add = |name: &str, id| Delta {
            next_id: id + 1,
            apps: vec![app(name)],
            instances: vec![instance(id, name)],
            ..Delta::default()
        };
        journal.write(Changes::Delta(add("a", 1))).unwrap();
        // A crash between a snapshot's rename and the journal's
        // truncation: the snapshot (without "a") is newer than the line.
        let kept = fs::read(path_of(&path)).unwrap();
        journal.write(Changes::Full(State::default())).unwrap();
        fs::write(path_of(&path), &kept).unwrap();
        assert!(loaded(&path).apps.is_empty());
        // A torn append after it.
        journal.write(Changes::Delta(add("b", 2))).unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(path_of(&path))
            .unwrap();
        file.write_all(b"{\"seq\":9,\"apps\":[{\"con").unwrap();
        let names: Vec<String> = loaded(&path)
            .apps
            .into_iter()
            .map(|a| a.config.name)
            .collect();
        assert_eq!(names, ["b"]);
    }

    #[test]
    fn a_line_torn_inside_a_character_does_not_stop_the_load() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut journal = Journal::new(path.clone(), 0);
        journal.write(Changes::Full(State::default())).unwrap();
        journal
            .write(Changes::Delta(Delta {
                next_id: 2,
                apps: vec![app("a")],
                instances: vec![instance(1, "a")],
                ..Delta::default()
            }))
            .unwrap();
        let mut file = OpenOptions::new()
            .append(true)
            .open(path_of(&path))
            .unwrap();
        // "é" is 0xC3 0xA9: the write was cut between the two bytes.
        file.write_all(b"{\"seq\":2,\"removed_apps\":[\"caf\xC3")
            .unwrap();
        let names: Vec<String> = loaded(&path)
            .apps
            .into_iter()
            .map(|a| a.config.name)
            .collect();
        assert_eq!(names, ["a"]);
    }

    #[test]
    fn a_fresh_table_never_replays_the_lines_of_the_one_before() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut old = Journal::new(path.clone(), 0);
        old.write(Changes::Full(State::default())).unwrap();
        old.write(Changes::Delta(Delta {
            next_id: 2,
            apps: vec![app("old")],
            instances: vec![instance(1, "old")],
            ..Delta::default()
        }))
        .unwrap();
        // A daemon started --fresh (its table starts at seq 0) is killed
        // between its first snapshot's rename and the journal's truncation.
        let kept = fs::read(path_of(&path)).unwrap();
        // It loaded the table (numbering its lines after the journal's),
        // then set it aside for an empty one.
        let mut fresh = Journal::new(path.clone(), loaded(&path).journal_seq);
        fresh.write(Changes::Full(State::default())).unwrap();
        fs::write(path_of(&path), &kept).unwrap();
        assert!(loaded(&path).apps.is_empty());
    }

    #[test]
    fn a_journal_whose_snapshot_is_gone_is_set_aside_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut journal = Journal::new(path.clone(), 0);
        journal.write(Changes::Full(State::default())).unwrap();
        journal
            .write(Changes::Delta(Delta {
                next_id: 2,
                apps: vec![app("orphan")],
                instances: vec![instance(1, "orphan")],
                ..Delta::default()
            }))
            .unwrap();
        fs::remove_file(&path).unwrap();
        let state = loaded(&path);
        assert!(state.apps.is_empty() && state.instances.is_empty());
        assert!(!path_of(&path).exists());
        // A daemon starting from it writes, and reloads, its own table.
        let mut next = Journal::new(path.clone(), state.journal_seq);
        next.write(Changes::Full(State::default())).unwrap();
        assert!(loaded(&path).apps.is_empty());
    }

    #[test]
    fn the_journal_asks_for_a_snapshot_once_it_outgrows_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.json");
        let mut journal = Journal::new(path, 0);
        journal.write(Changes::Full(State::default())).unwrap();
        let mut id = 0;
        while !journal.wants_snapshot() {
            id += 1;
            journal
                .write(Changes::Delta(Delta {
                    instances: vec![instance(id, "a")],
                    ..Delta::default()
                }))
                .unwrap();
        }
        assert!(journal.appended > MIN_COMPACT_BYTES);
        journal.write(Changes::Full(State::default())).unwrap();
        assert!(!journal.wants_snapshot());
    }
}
