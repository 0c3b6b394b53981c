//! When logs rotate, and what rotating does on disk: the numbered files
//! shift up, the newest may be gzipped, and a flush empties a log with all
//! its rotated files.
//!
//! An app's log rotates itself as its slot writes (`file.rs`); the daemon's
//! own log is written through fd 2 by everything in the process, so the
//! housekeeping rotates it from outside ([`rotate_stderr_log`]).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use super::path::{numbered, rotated_files};

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

/// Set by every rotation, taken by [`budget_due`](super::budget_due).
pub(super) static ROTATED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Makes room for a new `<path>.1`: `.max` goes, and every other rotated
/// file, compressed or not, moves up one.
pub(super) fn shift(path: &Path, max: u32) {
    for gz in [false, true] {
        let _ = std::fs::remove_file(numbered(path, max, gz));
    }
    for n in (1..max).rev() {
        for gz in [false, true] {
            let _ = std::fs::rename(numbered(path, n, gz), numbered(path, n + 1, gz));
        }
    }
}

/// Writes `source`, gzipped, to `target` with the same modification time
/// (the budget deletes the oldest first) and syncs it.
pub(super) fn gzip(mut source: &File, target: &Path) -> std::io::Result<()> {
    let file = File::create(target)?;
    let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::default());
    std::io::copy(&mut source, &mut encoder)?;
    let file = encoder.finish()?;
    if let Ok(modified) = source.metadata().and_then(|m| m.modified()) {
        file.set_modified(modified)?;
    }
    file.sync_all()
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
