//! What the daemon takes from whoever started it, and what its children get.
//!
//! A daemon started from a shell inherits that shell's open descriptors (a
//! pipe a script waits on, a terminal, a lock), its working directory, its
//! umask and its open-file limit. Keeping the descriptors would make
//! `( pmdaemon start … ) | cat` wait for the daemon to exit, and keeping the
//! directory would pin a mount. So the daemon closes every descriptor but
//! 0, 1 and 2 and moves to `/` before anything else, creates its own files
//! private (umask 077, whatever the home's mode), and raises its open-file
//! limit: the soft one to the hard one, and, where it may (root), the hard
//! one to what the kernel allows (`fs.nr_open`, at most 2^20), since every
//! logged instance holds two pipes, and log files as many as the limit
//! leaves room for (see `logs::LogFiles`). The apps get back
//! what the caller had: its umask and both its limits, and only stdin,
//! stdout and stderr (plus the listening socket as fd 3 where an app shares
//! a port, and a Node app's IPC channel as fd 4).

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

/// The soft `RLIMIT_NOFILE` the daemon was started with (`u64::MAX` until
/// [`detach_from_caller`] ran).
static CALLER_NOFILE: AtomicU64 = AtomicU64::new(u64::MAX);
/// The hard `RLIMIT_NOFILE` the daemon was started with.
static CALLER_NOFILE_MAX: AtomicU64 = AtomicU64::new(u64::MAX);
/// The most descriptors the daemon asks for, when it may raise its hard
/// limit: 2^20, or `fs.nr_open` where that is lower.
const WANTED_NOFILE: u64 = 1 << 20;
/// The umask the daemon was started with (`u32::MAX` until known).
static CALLER_UMASK: AtomicU32 = AtomicU32::new(u32::MAX);

/// Lets go of what the caller handed down: closes every descriptor above 2,
/// moves to `/`, makes new files private and raises the open-file limit.
/// Must run before the daemon opens anything (the runtime, the log), since
/// every descriptor above 2 is closed.
pub fn detach_from_caller() {
    pmdaemon_core::files::close_descriptors_from(3, false);
    if let Err(err) = std::env::set_current_dir("/") {
        tracing::warn!("cannot move to /: {err}");
    }
    // SAFETY: umask(2) only swaps the process's file mode mask.
    let caller = unsafe { libc::umask(0o077) };
    CALLER_UMASK.store(caller as u32, Ordering::Relaxed);
    match raise_open_file_limit() {
        Ok((caller, raised)) if caller != raised => {
            tracing::info!("open-file limit raised from {caller} to {raised}");
        }
        Ok(_) => {}
        Err(err) => tracing::warn!("cannot raise the open-file limit: {err}"),
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit, and the hard limit
/// too where that is allowed; returns (the caller's soft limit, the new
/// one) and remembers the caller's limits for the children.
fn raise_open_file_limit() -> std::io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    let caller = limit.rlim_cur;
    CALLER_NOFILE.store(caller, Ordering::Relaxed);
    CALLER_NOFILE_MAX.store(limit.rlim_max, Ordering::Relaxed);
    let wanted = std::fs::read_to_string("/proc/sys/fs/nr_open")
        .ok()
        .and_then(|n| n.trim().parse::<u64>().ok())
        .map_or(WANTED_NOFILE, |open| open.min(WANTED_NOFILE));
    if limit.rlim_max < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: wanted,
        };
        // SAFETY: setrlimit reads the struct we own; refused (EPERM)
        // without the privilege, which leaves the limits as they were.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            return Ok((caller, wanted));
        }
    }
    if limit.rlim_cur >= limit.rlim_max {
        return Ok((caller, caller));
    }
    limit.rlim_cur = limit.rlim_max;
    // SAFETY: setrlimit reads the struct we own.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((caller, limit.rlim_cur))
}

/// The signals an app gets at their default disposition: SIGPIPE (which
/// Rust's runtime ignores) and those the daemon handles (see `lib.rs` and
/// the reaper). An ignored signal stays ignored across exec, and a caller
/// may have ignored some (`nohup`, a background job of a script): the
/// daemon's handlers hide that from the children it forks once they are
/// installed, but not before (the apps it resumes at start), nor from the
/// spawner's, which never had them.
const RESET_SIGNALS: [libc::c_int; 9] = [
    libc::SIGPIPE,
    libc::SIGHUP,
    libc::SIGINT,
    libc::SIGQUIT,
    libc::SIGTERM,
    libc::SIGUSR1,
    libc::SIGUSR2,
    libc::SIGALRM,
    libc::SIGCHLD,
];

/// In a forked child, before exec: gives it back the caller's umask and
/// open-file limits and default dispositions for [`RESET_SIGNALS`], and
/// marks every descriptor above 2 close-on-exec (a descriptor a library
/// opened without that flag must not leak into an app). Only
/// async-signal-safe calls.
pub fn restore_for_child() -> std::io::Result<()> {
    for signal in RESET_SIGNALS {
        // SAFETY: signal(2) with SIG_DFL is async-signal-safe.
        unsafe { libc::signal(signal, libc::SIG_DFL) };
    }
    let umask = CALLER_UMASK.load(Ordering::Relaxed);
    if umask != u32::MAX {
        // SAFETY: umask(2) is async-signal-safe.
        unsafe { libc::umask(umask as libc::mode_t) };
    }
    let soft = CALLER_NOFILE.load(Ordering::Relaxed);
    if soft != u64::MAX {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: get/setrlimit are async-signal-safe and use our struct.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                // Lowering a hard limit needs no privilege.
                limit.rlim_max = limit
                    .rlim_max
                    .min(CALLER_NOFILE_MAX.load(Ordering::Relaxed));
                limit.rlim_cur = soft.min(limit.rlim_max);
                if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
        }
    }
    pmdaemon_core::files::close_descriptors_from(3, true);
    Ok(())
}
