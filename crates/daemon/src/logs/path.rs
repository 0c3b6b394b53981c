//! Where a log is written, and the names of its rotated files.
//!
//! The scheme `<log>.N` / `<log>.N.gz` is spelled out here once, for the
//! writers, the compression, the flush and the budget alike.

use std::collections::HashMap;
use std::fs::File;
use std::path::{Path, PathBuf};

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
        Some(path) => per_instance(config, index, path),
        None if config.merge_logs => home.log_file(&config.name, stream),
        None => home.log_file(instance, stream),
    }
}

/// The file that also gets both streams of instance `index` (PM2's
/// `log_file`), if the app has one: relative paths are under the home, and
/// several instances get one each, as for `out_file`.
pub fn combined_log_path(
    home: &crate::Home,
    config: &pmdaemon_core::config::AppConfig,
    index: u32,
) -> Option<PathBuf> {
    let path = config.log_file.as_ref()?;
    Some(per_instance(config, index, &home.root().join(path)))
}

/// Whether `path` means "no file" (`/dev/null`, PM2's "NULL").
pub fn is_discarded(path: &Path) -> bool {
    path == Path::new("/dev/null")
}

/// `path`, with `-<index>` before the extension when several instances
/// would otherwise share it, as PM2 does; `/dev/null` stays itself.
fn per_instance(config: &pmdaemon_core::config::AppConfig, index: u32, path: &Path) -> PathBuf {
    if config.instances <= 1 || config.merge_logs || is_discarded(path) {
        return path.to_path_buf();
    }
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("log");
    let name = match path.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{stem}-{index}.{ext}"),
        None => format!("{stem}-{index}"),
    };
    path.with_file_name(name)
}

/// `<path>.n`, or `<path>.n.gz`.
pub(super) fn numbered(path: &Path, n: u32, gz: bool) -> PathBuf {
    let suffix = if gz { ".gz" } else { "" };
    PathBuf::from(format!("{}.{n}{suffix}", path.display()))
}

/// Which `<path>.n` is the file `source` has open, if any still is.
pub(super) fn find_rotated(path: &Path, max: u32, source: &File) -> Option<u32> {
    use std::os::unix::fs::MetadataExt;
    let open = source.metadata().ok()?;
    (1..=max).find(|n| {
        std::fs::metadata(numbered(path, *n, false))
            .is_ok_and(|m| m.ino() == open.ino() && m.dev() == open.dev())
    })
}

/// Every rotated file of `path` (`<path>.N`, `<path>.N.gz`), whatever
/// gaps the numbering has.
pub(super) fn rotated_files(path: &Path) -> Vec<PathBuf> {
    rotated_files_of(std::slice::from_ref(&path.to_path_buf()))
}

/// [`rotated_files`] of several logs, reading each directory once.
pub(super) fn rotated_files_of(logs: &[PathBuf]) -> Vec<PathBuf> {
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
