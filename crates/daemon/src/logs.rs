//! Moving the apps' output from their pipes into log files, and reading the
//! tails back.
//!
//! Each stream is one small task woken by readiness of the pipe (no polling,
//! no per-stream buffer): `splice(2)` moves the bytes from the pipe into the
//! file inside the kernel. A child therefore never blocks on a full pipe for
//! longer than a page-cache write takes, and the daemon's memory does not
//! grow with the amount written.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

/// Largest chunk moved per call.
const CHUNK: usize = 1 << 20;

/// Where an instance's `stream` goes: `out_file` / `error_file` when set
/// (with `-<index>` before the extension when several instances would
/// otherwise share it, as PM2 does), `logs/<app>-<stream>.log` with
/// `merge_logs`, else `logs/<instance>-<stream>.log`.
pub fn log_path(
    home: &crate::Home,
    config: &pmdaemon_core::config::AppConfig,
    index: u32,
    instance: &str,
    stream: pmdaemon_core::api::LogStream,
) -> PathBuf {
    use pmdaemon_core::api::LogStream;
    let custom = match stream {
        LogStream::Out => config.out_file.as_ref(),
        LogStream::Err => config.error_file.as_ref(),
    };
    match custom {
        Some(path) if config.instances > 1 && !config.merge_logs => {
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("log");
            let name = match path.extension().and_then(|e| e.to_str()) {
                Some(ext) => format!("{stem}-{index}.{ext}"),
                None => format!("{stem}-{index}"),
            };
            path.with_file_name(name)
        }
        Some(path) => path.clone(),
        None if config.merge_logs => home.log_file(&config.name, stream),
        None => home.log_file(instance, stream),
    }
}

/// When a log file is rotated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rotation {
    /// Rotate once the file reaches this many bytes (0: never).
    pub max_size: u64,
    /// Rotated files kept (`<file>.1` newest … `<file>.N` oldest).
    pub max_files: u32,
    /// Gzip rotated files in the background (`<file>.1.gz`, …).
    pub compress: bool,
}

impl Rotation {
    /// The policy of an app: its own settings over the daemon's defaults.
    pub fn of(config: &pmdaemon_core::config::AppConfig) -> Self {
        let defaults = Self::default();
        Self {
            max_size: config.log_max_size.unwrap_or(defaults.max_size),
            max_files: config.log_max_files.unwrap_or(defaults.max_files),
            compress: config.log_compress.unwrap_or(defaults.compress),
        }
    }
}

impl Default for Rotation {
    /// 10 MiB and 10 files, uncompressed, or `PMDAEMON_LOG_MAX_SIZE` /
    /// `_MAX_FILES` / `_COMPRESS`.
    fn default() -> Self {
        let size = std::env::var("PMDAEMON_LOG_MAX_SIZE")
            .ok()
            .and_then(|v| pmdaemon_core::units::parse_size(&v).ok());
        let files = std::env::var("PMDAEMON_LOG_MAX_FILES")
            .ok()
            .and_then(|v| v.parse().ok());
        let compress = std::env::var("PMDAEMON_LOG_COMPRESS")
            .is_ok_and(|v| matches!(v.as_str(), "1" | "true" | "yes" | "on"));
        Self {
            max_size: size.unwrap_or(10 << 20),
            max_files: files.unwrap_or(10),
            compress,
        }
    }
}

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
    state: Mutex<FileState>,
}

#[derive(Debug)]
struct FileState {
    file: Option<File>,
    size: u64,
    rotation: Rotation,
    splice_works: bool,
    checked: Instant,
    /// Bytes dropped since writing last failed.
    dropped: u64,
    /// When the bytes of the current file were written, coarsely.
    marks: Marks,
    /// Writing has failed and not worked since (warned about once).
    failing: bool,
    /// A thread is compressing rotated files (one per log file: an app
    /// logging faster than gzip keeps one core busy, not more; files
    /// rotated out before their turn go uncompressed).
    compressing: bool,
}

impl LogFile {
    fn open(path: &Path, rotation: Rotation) -> Self {
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
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, FileState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
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
    fn recheck(&self, state: &mut FileState) {
        if state.checked.elapsed() < RECHECK {
            return;
        }
        state.checked = Instant::now();
        if state.file.is_some() && self.path.exists() {
            return;
        }
        if let Ok((file, size)) = open_log(&self.path) {
            state.file = Some(file);
            state.size = size;
            state.marks = Marks::from(size);
        }
    }

    /// When each line of the current file that ends at `ends` was written
    /// (see [`Marks::time_of`]).
    pub fn times(&self, ends: &[u64]) -> Vec<Option<i64>> {
        let state = self.lock();
        ends.iter().map(|end| state.marks.time_of(*end)).collect()
    }

    /// A write failed: drop output until a later [`recheck`] reopens the
    /// file, and warn once however long it lasts.
    fn failed(&self, state: &mut FileState, err: &dyn std::fmt::Display) {
        if !state.failing {
            tracing::warn!(
                "writing {} failed ({err}); dropping output until it works again",
                self.path.display()
            );
            state.failing = true;
        }
        state.file = None;
        state.checked = Instant::now();
    }

    /// `bytes` more were written: say so if writing had been failing,
    /// note when, and rotate once the file is due.
    fn wrote(self: &Arc<Self>, state: &mut FileState, bytes: usize) {
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
    fn write(self: &Arc<Self>, bytes: &[u8]) {
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
        let mut state = self.lock();
        truncate_all(&self.path)?;
        if let Some(file) = &mut state.file {
            file.seek(SeekFrom::Start(0))?;
        }
        state.size = 0;
        state.marks = Marks::from(0);
        Ok(())
    }

    /// Moves everything the pipe holds into the file; returns WouldBlock
    /// once the pipe is empty so that tokio clears the readiness.
    fn drain(self: &Arc<Self>, pipe: &OwnedFd, total: &mut usize) -> std::io::Result<Drained> {
        let mut state = self.lock();
        self.recheck(&mut state);
        let mut budget = BUDGET;
        loop {
            if budget == 0 {
                return Ok(Drained::Busy);
            }
            // Never past the rotation size: rotated files are exactly
            // `log_max_size` long.
            let room = match state.rotation.max_size {
                0 => CHUNK,
                max => (max.saturating_sub(state.size) as usize).clamp(1, CHUNK),
            };
            let moved = match (&state.file, state.splice_works) {
                (Some(file), true) => splice(
                    pipe.as_fd(),
                    None,
                    file.as_fd(),
                    None,
                    room,
                    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE,
                ),
                _ => copy(&mut state, pipe),
            };
            match moved {
                Ok(0) => return Ok(Drained::Eof),
                Ok(moved) => {
                    *total += moved;
                    budget = budget.saturating_sub(moved as u64);
                    if state.file.is_some() {
                        self.wrote(&mut state, moved);
                    }
                }
                Err(Errno::EAGAIN) => return Err(std::io::ErrorKind::WouldBlock.into()),
                Err(Errno::EINTR) => {}
                Err(Errno::EINVAL) if state.splice_works => state.splice_works = false,
                Err(err) if state.file.is_none() => return Err(std::io::Error::from(err)),
                // The file side failed (disk full, file system gone): keep
                // the child unblocked by reading and dropping, and try the
                // file again after a while.
                Err(err) => self.failed(&mut state, &err),
            }
        }
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
                state.file = Some(file);
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
        let mut state = self.lock();
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
            state = self.lock();
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

/// `<path>.n`, or `<path>.n.gz`.
fn numbered(path: &Path, n: u32, gz: bool) -> PathBuf {
    let suffix = if gz { ".gz" } else { "" };
    PathBuf::from(format!("{}.{n}{suffix}", path.display()))
}

/// Makes room for a new `<path>.1`: `.max` goes, and every other rotated
/// file, compressed or not, moves up one.
fn shift(path: &Path, max: u32) {
    for gz in [false, true] {
        let _ = std::fs::remove_file(numbered(path, max, gz));
    }
    for n in (1..max).rev() {
        for gz in [false, true] {
            let _ = std::fs::rename(numbered(path, n, gz), numbered(path, n + 1, gz));
        }
    }
}

/// Which `<path>.n` is the file `source` has open, if any still is.
fn find_rotated(path: &Path, max: u32, source: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let open = source.metadata().ok()?;
    (1..=max).find(|n| {
        std::fs::metadata(numbered(path, *n, false))
            .is_ok_and(|m| m.ino() == open.ino() && m.dev() == open.dev())
    })
}

/// Writes `source`, gzipped, to `target` with the same modification time
/// (the budget deletes the oldest first) and syncs it.
fn gzip(mut source: &File, target: &Path) -> std::io::Result<()> {
    let file = File::create(target)?;
    let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    std::io::copy(&mut source, &mut encoder)?;
    let file = encoder.finish()?;
    if let Ok(modified) = source.metadata().and_then(|m| m.modified()) {
        file.set_modified(modified)?;
    }
    file.sync_all()
}

/// Every rotated file of `path` (`<path>.N`, `<path>.N.gz`), whatever
/// gaps the numbering has.
fn rotated_files(path: &Path) -> Vec<PathBuf> {
    rotated_files_of(std::slice::from_ref(&path.to_path_buf()))
}

/// [`rotated_files`] of several logs, reading each directory once.
fn rotated_files_of(logs: &[PathBuf]) -> Vec<PathBuf> {
    let mut by_dir: HashMap<&Path, Vec<&str>> = HashMap::new();
    for log in logs {
        if let (Some(dir), Some(name)) = (log.parent(), log.file_name().and_then(|n| n.to_str())) {
            by_dir.entry(dir).or_default().push(name);
        }
    }
    let is_rotated_of = |file_name: &str, name: &str| {
        let Some(number) = file_name
            .strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('.'))
        else {
            return false;
        };
        let number = number.strip_suffix(".gz").unwrap_or(number);
        !number.is_empty() && number.chars().all(|c| c.is_ascii_digit())
    };
    let mut found = Vec::new();
    for (dir, names) in by_dir {
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let file_name = entry.file_name();
            let Some(file_name) = file_name.to_str() else {
                continue;
            };
            if names.iter().any(|name| is_rotated_of(file_name, name)) {
                found.push(entry.path());
            }
        }
    }
    found
}

/// Set by every rotation, taken by [`budget_due`].
static ROTATED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The disk budget for all logs (`PMDAEMON_LOG_BUDGET`, e.g. `1G`), if one
/// is set and a rotation happened since the last call: the daemon's
/// housekeeping then calls [`enforce_budget`] with every log it manages.
pub fn budget_due() -> Option<u64> {
    let budget = std::env::var("PMDAEMON_LOG_BUDGET")
        .ok()
        .and_then(|v| pmdaemon_core::units::parse_size(&v).ok())
        .filter(|b| *b > 0)?;
    ROTATED
        .swap(false, std::sync::atomic::Ordering::SeqCst)
        .then_some(budget)
}

/// Deletes the oldest rotated files of `logs` (`<log>.N`, `<log>.N.gz`)
/// until these logs and their rotated files fit in `budget` bytes. Current
/// files are never deleted, and no other file is looked at.
pub fn enforce_budget(logs: &[PathBuf], budget: u64) {
    let mut logs = logs.to_vec();
    logs.sort();
    logs.dedup();
    let mut total = 0;
    let mut rotated: Vec<(std::time::SystemTime, u64, PathBuf)> = Vec::new();
    for log in &logs {
        total += std::fs::metadata(log).map_or(0, |m| m.len());
    }
    for path in rotated_files_of(&logs) {
        if let Ok(meta) = std::fs::metadata(&path) {
            total += meta.len();
            let modified = meta.modified().unwrap_or(std::time::UNIX_EPOCH);
            rotated.push((modified, meta.len(), path));
        }
    }
    rotated.sort();
    for (_, size, path) in rotated {
        if total <= budget {
            break;
        }
        if std::fs::remove_file(&path).is_ok() {
            tracing::info!("log budget: deleted {}", path.display());
            total = total.saturating_sub(size);
        }
    }
}

/// Rotates `path` when it is this process's stderr (the daemon's log, as
/// the CLI starts it) and has grown past `rotation.max_size`: the file
/// becomes `path.1` (older ones shift) and a new file takes over fd 2, so
/// nothing written is lost.
pub fn rotate_stderr_log(path: &Path, rotation: Rotation) -> std::io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(false);
    };
    if rotation.max_size == 0 || meta.len() < rotation.max_size {
        return Ok(false);
    }
    let stderr = nix::sys::stat::fstat(std::io::stderr())?;
    if stderr.st_ino != meta.ino() || stderr.st_dev != meta.dev() {
        return Ok(false);
    }
    shift(path, rotation.max_files.max(1));
    let rotated = numbered(path, 1, false);
    std::fs::rename(path, &rotated)?;
    ROTATED.store(true, std::sync::atomic::Ordering::SeqCst);
    let fresh = OpenOptions::new().create(true).append(true).open(path)?;
    nix::unistd::dup2_stderr(&fresh)?;
    if rotation.compress {
        // Only this caller rotates the daemon's log, and it waits for us.
        let temp = PathBuf::from(format!("{}.gz.tmp", path.display()));
        gzip(&File::open(&rotated)?, &temp)?;
        std::fs::rename(&temp, numbered(path, 1, true))?;
        std::fs::remove_file(&rotated)?;
    }
    Ok(true)
}

/// Plain read + write, for files that cannot be spliced into, or
/// read-and-drop when there is no file.
fn copy(state: &mut FileState, pipe: &OwnedFd) -> nix::Result<usize> {
    let mut buffer = [0u8; 16 * 1024];
    let read = nix::unistd::read(pipe, &mut buffer)?;
    let written = match &mut state.file {
        Some(file) => file.write_all(&buffer[..read]),
        None => Ok(()),
    };
    if state.file.is_none() || written.is_err() {
        state.dropped += read as u64;
    }
    written.map_err(|err| Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO)))?;
    Ok(read)
}

/// Empties `path` and deletes `path.1`, `path.2`, … and `path.1.gz`, …
/// (missing ones are fine).
pub fn truncate_all(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new().write(true).truncate(true).open(path) {
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    for rotated in rotated_files(path) {
        let _ = std::fs::remove_file(rotated);
    }
    Ok(())
}

/// The open log files.
#[derive(Debug, Default)]
pub struct LogFiles {
    open: Mutex<HashMap<PathBuf, Arc<LogFile>>>,
}

impl LogFiles {
    /// The slot of `path`, opened (and created) on first use; `rotation`
    /// replaces the previous policy.
    pub fn get(&self, path: &Path, rotation: Rotation) -> Arc<LogFile> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let file = open
            .entry(path.to_path_buf())
            .or_insert_with(|| Arc::new(LogFile::open(path, rotation)));
        file.lock().rotation = rotation;
        Arc::clone(file)
    }

    /// The slot of `path` if it is open.
    pub fn find(&self, path: &Path) -> Option<Arc<LogFile>> {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(path)
            .cloned()
    }

    /// Closes `path` (once its last writer is done with it).
    pub fn forget(&self, path: &Path) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }
}

/// How lines are rewritten on their way to the file.
#[derive(Debug, Clone)]
pub enum LineFormat {
    /// Whole lines as written (merged logs: lines of several instances
    /// must not mix).
    Lines,
    /// `<time>: <line>`, with a strftime format.
    Timestamp(String),
    /// One JSON object per line.
    Json {
        /// strftime format of the time.
        time: String,
        /// App name.
        app: String,
        /// Instance name.
        instance: String,
        /// Which stream.
        stream: pmdaemon_core::api::LogStream,
    },
}

/// The default time format: ISO 8601 with milliseconds and offset.
const ISO: &str = "%Y-%m-%dT%H:%M:%S%.3f%:z";

impl LineFormat {
    /// The format an app asks for, if any (`log_type: json`,
    /// `log_date_format`, or `time: true`).
    pub fn of(
        config: &pmdaemon_core::config::AppConfig,
        instance: &str,
        stream: pmdaemon_core::api::LogStream,
    ) -> Option<Self> {
        let date = config
            .log_date_format
            .as_deref()
            .and_then(|f| pmdaemon_core::config::date_format(f).ok());
        match config.log_type {
            pmdaemon_core::config::LogType::Json => Some(LineFormat::Json {
                time: date.unwrap_or_else(|| ISO.to_string()),
                app: config.name.clone(),
                instance: instance.to_string(),
                stream,
            }),
            pmdaemon_core::config::LogType::Raw => {
                // Several writers of one file write whole lines, so that
                // none splits another's: the instances of a merged app, or
                // stdout and stderr sharing one file (`log_file`).
                let shared = config.merge_logs
                    || (config.out_file.is_some() && config.out_file == config.error_file);
                date.or_else(|| config.time.then(|| ISO.to_string()))
                    .map(LineFormat::Timestamp)
                    .or_else(|| shared.then_some(LineFormat::Lines))
            }
        }
    }

    /// The time as this format writes it; lines read together share it.
    fn stamp(&self) -> String {
        let now = chrono::Local::now();
        let format = match self {
            LineFormat::Lines => return String::new(),
            LineFormat::Timestamp(format) => format,
            LineFormat::Json { time, .. } => time,
        };
        let mut text = String::new();
        let _ = std::fmt::Write::write_fmt(&mut text, format_args!("{}", now.format(format)));
        text
    }

    fn line(&self, stamp: &str, line: &[u8], out: &mut Vec<u8>) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        match self {
            LineFormat::Lines => out.extend_from_slice(line),
            LineFormat::Timestamp(_) => {
                out.extend_from_slice(stamp.as_bytes());
                out.extend_from_slice(b": ");
                out.extend_from_slice(line);
            }
            LineFormat::Json {
                app,
                instance,
                stream,
                ..
            } => {
                let record = serde_json::json!({
                    "time": stamp,
                    "app": app,
                    "instance": instance,
                    "stream": stream,
                    "message": String::from_utf8_lossy(line),
                });
                let _ = serde_json::to_writer(&mut *out, &record);
            }
        }
        out.push(b'\n');
    }
}

/// A partial line is written after this long without its end.
const PARTIAL_TIMEOUT: Duration = Duration::from_millis(500);
/// A line longer than this is written in pieces (memory stays bounded).
const MAX_LINE: usize = 64 * 1024;

/// Starts a task that appends everything read from `pipe` to `path` until
/// every writer of the pipe has closed it: spliced as is, or line by line
/// when the app asks for a format.
pub fn pump(
    files: &LogFiles,
    pipe: OwnedFd,
    path: PathBuf,
    rotation: Rotation,
    format: Option<LineFormat>,
) {
    let file = files.get(&path, rotation);
    tokio::spawn(async move {
        let result = match format {
            None => run_pump(pipe, file).await,
            Some(format) => run_line_pump(pipe, file, format).await,
        };
        if let Err(err) = result {
            tracing::warn!("log capture into {} stopped: {err}", path.display());
        }
    });
}

/// Bytes a line pump reads at once.
const LINE_READ: usize = 256 * 1024;

std::thread_local! {
    /// The read and format buffers of the line pumps on this thread: a pump
    /// uses them only between two awaits, so one pair serves every pump
    /// (memory does not grow with the number of apps).
    static LINE_BUFFERS: std::cell::RefCell<(Vec<u8>, Vec<u8>)> =
        std::cell::RefCell::new((vec![0; LINE_READ], Vec::new()));
}

async fn run_line_pump(
    pipe: OwnedFd,
    file: Arc<LogFile>,
    format: LineFormat,
) -> std::io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(&pipe, FcntlArg::F_GETFL)?);
    fcntl(&pipe, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    // SAFETY: the AsyncFd owns the pipe's OwnedFd, which is neither closed
    // nor replaced while registered.
    let pipe = unsafe { AsyncFd::register_with_interest(pipe, Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    // The start of a line whose end has not come yet.
    let mut partial: Vec<u8> = Vec::new();
    loop {
        tokio::select! {
            ready = pipe.readable() => {
                let mut ready = ready?;
                let read = ready.try_io(|fd| {
                    LINE_BUFFERS.with_borrow_mut(|(buffer, out)| {
                        let read = nix::unistd::read(fd.get_ref(), buffer)?;
                        if read == 0 {
                            // The end: what is left is a last line without
                            // its newline.
                            if !partial.is_empty() {
                                format.line(&format.stamp(), &partial, out);
                            }
                        } else {
                            format_lines(&format, &buffer[..read], &mut partial, out);
                        }
                        if !out.is_empty() {
                            file.write(out);
                            out.clear();
                        }
                        Ok(read)
                    })
                });
                match read {
                    Ok(Ok(0)) => return Ok(()),
                    // Read some, or nothing (WouldBlock: readiness cleared).
                    Ok(Ok(_)) | Err(_) => {}
                    Ok(Err(err)) if err.kind() == std::io::ErrorKind::Interrupted => {}
                    Ok(Err(err)) => return Err(err),
                }
            }
            // A partial line waited long enough: write it as it is.
            () = sleep_if(!partial.is_empty(), PARTIAL_TIMEOUT) => {
                LINE_BUFFERS.with_borrow_mut(|(_, out)| {
                    format.line(&format.stamp(), &partial, out);
                    file.write(out);
                    out.clear();
                });
                partial.clear();
            }
        }
    }
}

/// Formats every whole line of `chunk` (the first one continuing
/// `partial`) into `out`; keeps the unfinished end in `partial`, written as
/// is once it reaches [`MAX_LINE`].
fn format_lines(format: &LineFormat, chunk: &[u8], partial: &mut Vec<u8>, out: &mut Vec<u8>) {
    let stamp = format.stamp();
    let mut begin = 0;
    for end in memchr::memchr_iter(b'\n', chunk) {
        if partial.is_empty() {
            format.line(&stamp, &chunk[begin..end], out);
        } else {
            partial.extend_from_slice(&chunk[begin..end]);
            format.line(&stamp, partial, out);
            partial.clear();
        }
        begin = end + 1;
    }
    partial.extend_from_slice(&chunk[begin..]);
    if partial.len() >= MAX_LINE {
        format.line(&stamp, partial, out);
        partial.clear();
    }
}

async fn sleep_if(active: bool, duration: Duration) {
    if active {
        tokio::time::sleep(duration).await;
    } else {
        std::future::pending::<()>().await;
    }
}

fn open_log(path: &Path) -> std::io::Result<(File, u64)> {
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

async fn run_pump(pipe: OwnedFd, file: Arc<LogFile>) -> std::io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(&pipe, FcntlArg::F_GETFL)?);
    fcntl(&pipe, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    // SAFETY: the AsyncFd owns the pipe's OwnedFd, which is neither closed
    // nor replaced while registered.
    let pipe = unsafe { AsyncFd::register_with_interest(pipe, Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    let mut capacity = fcntl(pipe.get_ref(), FcntlArg::F_GETPIPE_SZ).map_or(0, |c| c as usize);
    let mut full_wakeups = 0;
    loop {
        let mut ready = pipe.readable().await?;
        let mut moved = 0;
        let drained = ready.try_io(|fd| file.drain(fd.get_ref(), &mut moved));
        // Full pipes on several wakeups in a row, not one burst (a banner,
        // a stack trace): a chatty child.
        full_wakeups = if moved >= capacity {
            full_wakeups + 1
        } else {
            0
        };
        if capacity < CHATTY_PIPE_SIZE && full_wakeups >= CHATTY_AFTER {
            // A larger pipe halves the wakeups per byte and lets the child
            // write on while we move; larger than the CPU's cache it would
            // be slower. Quiet children keep the default 64 KiB: Linux
            // charges pipe capacity to the user, and past
            // `pipe-user-pages-soft` (64 MiB) it shrinks every new pipe of
            // that user and refuses this call, and the pipe keeps its size.
            capacity = CHATTY_PIPE_SIZE;
            let _ = fcntl(
                pipe.get_ref(),
                FcntlArg::F_SETPIPE_SZ(CHATTY_PIPE_SIZE as i32),
            );
        }
        match drained {
            Ok(Ok(Drained::Eof)) => return Ok(()),
            Ok(Ok(Drained::Busy)) => tokio::task::yield_now().await,
            Err(_would_block) => continue,
            Ok(Err(err)) => return Err(err),
        }
    }
}

enum Drained {
    Eof,
    /// Moved a lot without emptying the pipe: let other tasks run.
    Busy,
}

/// A coarse index of when the bytes of one file were written, so that
/// `logs` can interleave the tails of several files in time order: one
/// mark per [`MARK_EVERY`] at most, the oldest forgotten past
/// [`MAX_MARKS`] (32 KiB per file at worst). Kept in memory
/// only: a new daemon knows nothing of what an earlier one wrote.
#[derive(Debug)]
struct Marks {
    /// Size of the file when marking began.
    from: u64,
    /// (file size after a write, Unix time in ms of that write), ascending.
    marks: std::collections::VecDeque<(u64, i64)>,
}

const MARK_EVERY: i64 = 2;
const MAX_MARKS: usize = 2048;

impl Marks {
    fn from(size: u64) -> Self {
        Self {
            from: size,
            marks: std::collections::VecDeque::new(),
        }
    }

    /// The file is `size` bytes long after a write made now.
    fn add(&mut self, size: u64) {
        let now = chrono::Utc::now().timestamp_millis();
        match self.marks.back_mut() {
            // The same burst: this mark covers the new bytes too.
            Some(last) if now - last.1 < MARK_EVERY => last.0 = size,
            _ => {
                while self.marks.len() >= MAX_MARKS {
                    if let Some((size, _)) = self.marks.pop_front() {
                        self.from = size;
                    }
                }
                self.marks.push_back((size, now));
            }
        }
    }

    /// When the line ending at byte `end` was written: the first mark at or
    /// past it (now, if the line is newer than every mark), or None if it
    /// was there before marking began.
    fn time_of(&self, end: u64) -> Option<i64> {
        if end <= self.from {
            return None;
        }
        let index = self.marks.partition_point(|(size, _)| *size < end);
        Some(
            self.marks
                .get(index)
                .map_or_else(|| chrono::Utc::now().timestamp_millis(), |m| m.1),
        )
    }
}

/// The pipe size a child gets once it fills its pipe (1 MiB: measured
/// fastest here; 2 MiB and more fell to a third, out of the L2 cache).
const CHATTY_PIPE_SIZE: usize = 1 << 20;

/// Wakeups in a row that find the pipe full before it grows.
const CHATTY_AFTER: u32 = 8;

/// Bytes one wakeup may move before the pump yields its thread.
const BUDGET: u64 = 16 << 20;

/// The last `lines` lines of a file (missing file: none), without line
/// endings, invalid UTF-8 replaced.
pub fn tail(path: &Path, lines: usize) -> std::io::Result<Vec<String>> {
    Ok(tail_with_ends(path, lines)?
        .into_iter()
        .map(|(line, _)| line)
        .collect())
}

/// [`tail`], with the offset in the file just past each line.
pub fn tail_with_ends(path: &Path, lines: usize) -> std::io::Result<Vec<(String, u64)>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    let len = file.metadata()?.len();
    tail_of(&mut file, len, lines)
}

/// The offset just past the last line break in the first `len` bytes of
/// `file` (0 when there is none).
pub fn last_line_end(file: &mut File, len: u64) -> std::io::Result<u64> {
    let mut end = len;
    while end > 0 {
        let step = (64 * 1024).min(end);
        let start = end - step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        if let Some(index) = memchr::memrchr(b'\n', &chunk) {
            return Ok(start + index as u64 + 1);
        }
        end = start;
    }
    Ok(0)
}

/// [`tail_with_ends`] of the first `len` bytes of an open file.
pub fn tail_of(file: &mut File, len: u64, lines: usize) -> std::io::Result<Vec<(String, u64)>> {
    if lines == 0 {
        return Ok(Vec::new());
    }
    let mut start = len;
    // Newest chunk first; each byte is read and counted once.
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    let mut breaks = 0;
    const STEP: u64 = 64 * 1024;
    // Read backwards until enough line breaks are seen (one more than the
    // lines wanted, to find where the first of them begins; the file's
    // final line break ends the last line and does not count).
    while start > 0 {
        let step = STEP.min(start);
        start -= step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        breaks += memchr::memchr_iter(b'\n', &chunk).count();
        if chunks.is_empty() && chunk.last() == Some(&b'\n') {
            breaks -= 1;
        }
        chunks.push(chunk);
        if breaks >= lines {
            break;
        }
    }
    chunks.reverse();
    let collected = chunks.concat();
    let body = collected.strip_suffix(b"\n").unwrap_or(&collected);
    let mut segments: Vec<(usize, usize)> = Vec::new();
    let mut begin = 0;
    for (index, byte) in body.iter().enumerate() {
        if *byte == b'\n' {
            segments.push((begin, index));
            begin = index + 1;
        }
    }
    segments.push((begin, body.len()));
    let skip = segments.len().saturating_sub(lines);
    let only_one = segments.len() == 1;
    Ok(segments[skip..]
        .iter()
        .filter(|(begin, end)| !(only_one && begin == end))
        .map(|(begin, end)| {
            let line = String::from_utf8_lossy(&body[*begin..*end]);
            let line = line.strip_suffix('\r').unwrap_or(&line).to_string();
            (line, (start + *end as u64 + 1).min(len))
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_deletes_the_oldest_rotated_files_of_our_logs_first_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        // Distinct modification times, oldest first.
        let write = |name: &str, size: usize, age_secs: u64| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![b'x'; size]).unwrap();
            let when = std::time::SystemTime::now() - std::time::Duration::from_secs(age_secs);
            File::options()
                .write(true)
                .open(&path)
                .unwrap()
                .set_modified(when)
                .unwrap();
        };
        // A gap in the numbering (.3) hides nothing.
        write("web-0-out.log.4.gz", 1000, 30);
        write("web-0-out.log.2", 1000, 20);
        write("web-0-out.log.1", 1000, 10);
        write("web-0-out.log", 1500, 0);
        // Not a log of ours: never counted, never deleted.
        write("syslog.1", 5000, 100);
        let logs = [dir.path().join("web-0-out.log")];
        enforce_budget(&logs, 3000);
        let mut left: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, ["syslog.1", "web-0-out.log", "web-0-out.log.1"]);
        enforce_budget(&logs, 10);
        assert!(dir.path().join("syslog.1").exists());
        assert!(
            dir.path().join("web-0-out.log").exists(),
            "a current log is never deleted"
        );
    }

    #[test]
    fn marks_date_each_line_by_the_write_that_ended_it() {
        let mut marks = Marks::from(100);
        marks.marks.push_back((150, 1_000));
        marks.marks.push_back((200, 2_000));
        assert_eq!(marks.time_of(100), None, "there before marking began");
        assert_eq!(marks.time_of(120), Some(1_000));
        assert_eq!(marks.time_of(150), Some(1_000));
        assert_eq!(marks.time_of(151), Some(2_000));
        assert!(marks.time_of(250).is_some_and(|t| t > 2_000), "newer: now");
        for size in 0..(MAX_MARKS as u64 + 10) {
            marks.marks.push_back((300 + size, 3_000 + size as i64));
        }
        marks.add(10_000);
        assert_eq!(marks.marks.len(), MAX_MARKS, "the oldest are forgotten");
        assert_eq!(marks.time_of(200), None);
        assert_eq!(marks.time_of(10_000).map(|t| t > 1_000_000), Some(true));
    }

    #[test]
    fn tail_returns_the_last_lines_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        let body: String = (0..100_000).map(|i| format!("line {i}\n")).collect();
        std::fs::write(&path, body).unwrap();
        assert_eq!(
            tail(&path, 3).unwrap(),
            ["line 99997", "line 99998", "line 99999"]
        );
        assert_eq!(tail(&path, 100_001).unwrap().len(), 100_000);
        // Across several 64 KiB reads, starting exactly at a line.
        let many = tail(&path, 50_000).unwrap();
        assert_eq!(many.len(), 50_000);
        assert_eq!(many[0], "line 50000");
        assert_eq!(many[49_999], "line 99999");
        assert!(tail(&path, 0).unwrap().is_empty());
    }

    #[test]
    fn tail_keeps_an_unterminated_last_line_and_handles_empty_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\npartial").unwrap();
        assert_eq!(tail(&path, 2).unwrap(), ["b", "partial"]);
        std::fs::write(&path, "").unwrap();
        assert!(tail(&path, 5).unwrap().is_empty());
        assert!(tail(&dir.path().join("missing.log"), 5).unwrap().is_empty());
    }
}
