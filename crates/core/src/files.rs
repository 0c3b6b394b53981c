//! What both the daemon and the CLI do to a home's files: write them so
//! that a crash leaves the old content or the new, and say precisely what
//! went wrong with one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// A file of the home that cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// A file or directory operation failed.
    #[error("could not {action} {}: {source}", path.display())]
    Io {
        /// What was being done ("create", "write", …).
        action: &'static str,
        /// On what.
        path: PathBuf,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A home or socket someone else could have planted or changed.
    #[error("refusing to use {}: {reason}", path.display())]
    Untrusted {
        /// The file or directory.
        path: PathBuf,
        /// Who owns it or who can write it, and what to do.
        reason: String,
    },
    /// A file whose content pmdaemon cannot use.
    #[error("{}: {reason}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
}

impl FileError {
    /// Wraps an I/O error with what was being done to which path.
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Replaces `path` with `bytes` (mode 0600) so that a crash at any moment
/// leaves the old content or the new, never a torn file.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), FileError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(|err| FileError::io("create", &tmp, err))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|err| FileError::io("write", &tmp, err))?;
    fs::rename(&tmp, path).map_err(|err| FileError::io("replace", path, err))?;
    if let Some(dir) = path.parent() {
        // The rename is durable only once the directory entry is.
        if let Ok(dir) = File::open(dir) {
            let _ = dir.sync_all();
        }
    }
    Ok(())
}

/// Closes (or, with `on_exec`, marks close-on-exec) every descriptor from
/// `first` up. Async-signal-safe: `close_range(2)`, or a loop of plain
/// calls on kernels older than 5.11.
pub fn close_descriptors_from(first: u32, on_exec: bool) {
    const CLOSE_RANGE_CLOEXEC: libc::c_uint = 1 << 2;
    let flags = if on_exec { CLOSE_RANGE_CLOEXEC } else { 0 };
    // SAFETY: close_range only affects descriptors of this process, and the
    // caller promises none of them is in use past this point (or, with
    // CLOEXEC, past exec).
    let done = unsafe { libc::syscall(libc::SYS_close_range, first, libc::c_uint::MAX, flags) };
    if done == 0 {
        return;
    }
    // SAFETY: as above, one descriptor at a time.
    unsafe {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        let last = if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur.min(65_536) as libc::c_int
        } else {
            1024
        };
        for fd in first as libc::c_int..last {
            if on_exec {
                libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC);
            } else {
                libc::close(fd);
            }
        }
    }
}
