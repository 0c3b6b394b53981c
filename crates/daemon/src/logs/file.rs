//! The open log file: one slot per path, shared by every pump that writes
//! to it. The slot appends, keeps going through a full disk or a file
//! deleted by hand, rotates the file once it is due and gzips the rotated
//! files on a thread of its own.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::marks::Marks;
use super::path::{find_rotated, numbered};
use super::rotation::{gzip, shift, truncate_all, Rotation, ROTATED};

/// How often a writer checks that its file was not deleted by hand, and
/// retries after a failed write (a full disk).
const RECHECK: Duration = Duration::from_secs(1);

/// One log file, shared by every process that writes to it: the pump of a
/// process that has just exited may still be draining while its
/// replacement's pump starts, and both go through this one slot, so they
/// write in turn at one position, and rotation swaps the file for both.
#[derive(Debug)]
pub struct LogFile {
    path: PathBuf,
    pub(super) state: Mutex<FileState>,
    /// The registry's count of open files, and its means to close some.
    room: Weak<dyn Room>,
}

/// What a slot needs of the registry of slots (`open_files.rs`): to count
/// the files it opens and closes, and to have others closed before it
/// reopens its own.
pub(super) trait Room: Send + Sync + std::fmt::Debug {
    /// A file was opened (`true`) or closed.
    fn count(&self, opened: bool);
    /// Closes the least recently written files if the budget is spent.
    fn make_room(&self);
}

#[derive(Debug)]
pub(super) struct FileState {
    pub(super) file: Option<File>,
    pub(super) size: u64,
    pub(super) rotation: Rotation,
    pub(super) splice_works: bool,
    checked: Instant,
    /// Bytes dropped since writing last failed.
    pub(super) dropped: u64,
    /// When the bytes of the current file were written, coarsely.
    marks: Marks,
    /// Writing has failed and not worked since (warned about once).
    failing: bool,
    /// A thread is compressing rotated files (one per log file: an app
    /// logging faster than gzip keeps one core busy, not more; files
    /// rotated out before their turn go uncompressed).
    compressing: bool,
    /// Closed for want of descriptors (see [`LogFiles`]); reopened by the
    /// next writer.
    parked: bool,
    /// When a writer last took the slot.
    pub(super) used: Instant,
}

impl LogFile {
    pub(super) fn open(path: &Path, rotation: Rotation, room: Weak<dyn Room>) -> Self {
        let (file, size) = match open_log(path) {
            Ok(pair) => (Some(pair.0), pair.1),
            Err(err) => {
                tracing::warn!(
                    "cannot open {} ({err}); its output is dropped until it can be",
                    path.display()
                );
                (None, 0)
            }
        };
        let failing = file.is_none();
        if file.is_some() {
            if let Some(room) = room.upgrade() {
                room.count(true);
            }
        }
        Self {
            path: path.to_path_buf(),
            state: Mutex::new(FileState {
                file,
                size,
                rotation,
                splice_works: true,
                checked: Instant::now(),
                dropped: 0,
                marks: Marks::from(size),
                failing,
                compressing: false,
                parked: false,
                used: Instant::now(),
            }),
            room,
        }
    }

    /// The slot, for writing: a parked file is reopened first.
    pub(super) fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        let mut state = self.state();
        if state.parked {
            // Safe under this slot's lock: the registry never waits for
            // a slot's lock while it holds its own.
            self.make_room();
            match open_log(&self.path) {
                Ok((file, size)) => {
                    if size != state.size {
                        // Changed behind our back while parked.
                        state.marks = Marks::from(size);
                        state.size = size;
                    }
                    self.set_file(&mut state, Some(file));
                    state.parked = false;
                }
                // Still parked: the next writer makes room and tries
                // again, rather than dropping output until a recheck.
                Err(err) => self.failed(&mut state, &err),
            }
        }
        state.used = Instant::now();
        state
    }

    fn make_room(&self) {
        if let Some(room) = self.room.upgrade() {
            room.make_room();
        }
    }

    /// The slot as it is (parked or not).
    pub(super) fn state(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Swaps the open file, keeping the count of open files.
    fn set_file(&self, state: &mut FileState, file: Option<File>) {
        if state.file.is_some() != file.is_some() {
            if let Some(room) = self.room.upgrade() {
                room.count(file.is_some());
            }
        }
        state.file = file;
    }

    /// Closes the file for want of descriptors (the next writer reopens
    /// it); false when it is not open.
    pub(super) fn park(&self, state: &mut FileState) -> bool {
        if state.file.is_none() || state.parked {
            return false;
        }
        self.set_file(state, None);
        state.parked = true;
        true
    }

    /// Appends a line written by pmdaemon itself.
    pub fn note(self: &Arc<Self>, line: &str) {
        let mut state = self.lock();
        if let Some(file) = &mut state.file {
            if file.write_all(format!("{line}\n").as_bytes()).is_ok() {
                self.wrote(&mut state, line.len() + 1);
            }
        }
    }

    /// At most once per [`RECHECK`]: reopens the file if it was deleted by
    /// hand or an earlier write failed (the path is not looked at more
    /// often, so writing stays free of extra system calls).
    pub(super) fn recheck(&self, state: &mut FileState) {
        if state.checked.elapsed() < RECHECK {
            return;
        }
        state.checked = Instant::now();
        if state.file.is_some() && self.path.exists() {
            return;
        }
        self.make_room();
        if let Ok((file, size)) = open_log(&self.path) {
            self.set_file(state, Some(file));
            state.size = size;
            state.marks = Marks::from(size);
        }
    }

    /// When each line of the current file that ends at `ends` was written
    /// (see [`Marks::time_of`]).
    pub fn times(&self, ends: &[u64]) -> Vec<Option<i64>> {
        let state = self.state();
        ends.iter().map(|end| state.marks.time_of(*end)).collect()
    }

    /// A write failed: drop output until a later [`recheck`] reopens the
    /// file, and warn once however long it lasts.
    pub(super) fn failed(&self, state: &mut FileState, err: &dyn std::fmt::Display) {
        if !state.failing {
            tracing::warn!(
                "writing {} failed ({err}); dropping output until it works again",
                self.path.display()
            );
            state.failing = true;
        }
        self.set_file(state, None);
        state.checked = Instant::now();
    }

    /// `bytes` more were written: say so if writing had been failing,
    /// note when, and rotate once the file is due.
    pub(super) fn wrote(self: &Arc<Self>, state: &mut FileState, bytes: usize) {
        if state.failing {
            tracing::warn!(
                "{}: writing again; {} bytes were dropped",
                self.path.display(),
                state.dropped
            );
            state.failing = false;
            state.dropped = 0;
        }
        state.size += bytes as u64;
        let size = state.size;
        state.marks.add(size);
        let rotation = state.rotation;
        if rotation.max_size > 0 && state.size >= rotation.max_size {
            self.rotate(state);
        }
    }

    /// Appends formatted bytes (whole lines), rotating as needed; a failed
    /// write drops them and is retried later, never blocking the child.
    pub(super) fn write(self: &Arc<Self>, bytes: &[u8]) {
        let mut state = self.lock();
        self.recheck(&mut state);
        let Some(file) = &mut state.file else {
            state.dropped += bytes.len() as u64;
            return;
        };
        match file.write_all(bytes) {
            Ok(()) => self.wrote(&mut state, bytes.len()),
            Err(err) => {
                self.failed(&mut state, &err);
                state.dropped += bytes.len() as u64;
            }
        }
    }

    /// Empties the file and deletes its rotated siblings.
    pub fn flush(&self) -> std::io::Result<()> {
        // Not reopened if parked: its next writer reopens it at the end,
        // which is then 0.
        let mut state = self.state();
        truncate_all(&self.path)?;
        if let Some(file) = &mut state.file {
            file.seek(SeekFrom::Start(0))?;
        }
        state.size = 0;
        state.marks = Marks::from(0);
        Ok(())
    }

    /// `<file>` becomes `<file>.1`, `.1` becomes `.2`, …, the oldest beyond
    /// `max_files` goes, and writing continues in a new `<file>`. Bytes
    /// already written stay where they are; the next ones go to the new file.
    fn rotate(self: &Arc<Self>, state: &mut FileState) {
        // Only regular files rotate (never /dev/null or a FIFO, even as
        // root); one that cannot is tried again after another max_size
        // bytes, not on every write.
        if !std::fs::metadata(&self.path).is_ok_and(|m| m.is_file()) {
            state.size = 0;
            return;
        }
        let max = state.rotation.max_files;
        if max == 0 {
            let _ = std::fs::remove_file(&self.path);
        } else {
            shift(&self.path, max);
            if let Err(err) = std::fs::rename(&self.path, numbered(&self.path, 1, false)) {
                tracing::warn!("cannot rotate {}: {err}", self.path.display());
                state.size = 0;
                return;
            }
            if state.rotation.compress && !state.compressing {
                self.compress_newest(state);
            }
        }
        match open_log(&self.path) {
            Ok((file, size)) => {
                self.set_file(state, Some(file));
                state.size = size;
                state.marks = Marks::from(size);
            }
            Err(err) => self.failed(state, &format!("cannot reopen after rotation: {err}")),
        }
        ROTATED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

impl LogFile {
    /// Starts a thread that gzips the rotated files still plain, newest
    /// first, until none is left.
    fn compress_newest(self: &Arc<Self>, state: &mut FileState) {
        state.compressing = true;
        let slot = Arc::clone(self);
        let spawned = std::thread::Builder::new()
            .name("pmdaemon-gzip".into())
            .spawn(move || slot.compress_backlog());
        if spawned.is_err() {
            state.compressing = false;
        }
    }

    /// The slot's lock is not held while compressing; each result is put
    /// in place under it, wherever later rotations have moved its source
    /// by then.
    fn compress_backlog(&self) {
        // Unique: a slot forgotten and opened again may have two threads.
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let temp = PathBuf::from(format!(
            "{}.gz.tmp{}",
            self.path.display(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut state = self.state();
        loop {
            let max = state.rotation.max_files;
            let Some(source) =
                (1..=max).find_map(|n| File::open(numbered(&self.path, n, false)).ok())
            else {
                state.compressing = false;
                return;
            };
            drop(state);
            let result = gzip(&source, &temp);
            state = self.state();
            let placed = result.and_then(|()| {
                match find_rotated(&self.path, state.rotation.max_files, &source) {
                    Some(n) => {
                        std::fs::rename(&temp, numbered(&self.path, n, true))?;
                        // The budget may now count less.
                        ROTATED.store(true, std::sync::atomic::Ordering::SeqCst);
                        std::fs::remove_file(numbered(&self.path, n, false))
                    }
                    // Rotated out or flushed while compressing.
                    None => std::fs::remove_file(&temp),
                }
            });
            if let Err(err) = placed {
                tracing::warn!("cannot compress a rotated {}: {err}", self.path.display());
                let _ = std::fs::remove_file(&temp);
                state.compressing = false;
                return;
            }
        }
    }
}

fn open_log(path: &Path) -> std::io::Result<(File, u64)> {
    if !crate::home_watch::still_ours() {
        // Recreating the file could create a directory in a new home at
        // the same path; this daemon is about to exit anyway.
        return Err(std::io::Error::other("the home was removed or replaced"));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Not O_APPEND: splice(2) refuses append-mode files. The daemon is the
    // only writer and all its writers go through one slot, so writing at
    // its position is appending.
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    let size = file.seek(SeekFrom::End(0))?;
    Ok((file, size))
}

impl Drop for LogFile {
    fn drop(&mut self) {
        let open = self.state.get_mut().map_or_else(
            |e| e.into_inner().file.is_some(),
            |state| state.file.is_some(),
        );
        if open {
            if let Some(room) = self.room.upgrade() {
                room.count(false);
            }
        }
    }
}
