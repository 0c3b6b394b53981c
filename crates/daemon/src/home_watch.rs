//! Noticing that the home is gone: removed with `rm -rf`, replaced by
//! another directory, or its socket unlinked or taken over. Such a daemon
//! can no longer be reached, and the next command would start a second one
//! beside it; so it stops its apps and exits.
//!
//! A stat of the home and of the socket every two seconds is enough (a few
//! microseconds), and unlike an inotify watch it also sees the home being
//! replaced by a rename. Once the home is lost nothing is written by path
//! any more: `state.json`, the socket and the pid file at that path may
//! belong to a new daemon by now.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

static LOST: AtomicBool = AtomicBool::new(false);
static WATCHED: OnceLock<Watched> = OnceLock::new();

/// Whether the home was found gone or replaced.
pub fn lost() -> bool {
    LOST.load(Ordering::Relaxed)
}

/// Whether the home is still the one the daemon made, looked at now: a log
/// file about to be recreated must not land in someone else's home.
pub fn still_ours() -> bool {
    if lost() {
        return false;
    }
    match WATCHED.get().and_then(Watched::check) {
        Some(_) => {
            LOST.store(true, Ordering::Relaxed);
            false
        }
        None => true,
    }
}

/// Starts watching the home and the socket as they are now.
pub fn watch(root: &Path, socket: &Path) -> std::io::Result<()> {
    let watched = Watched::new(root, socket)?;
    let _ = WATCHED.set(watched);
    Ok(())
}

/// Returns (with the reason) once the home or the socket is gone or
/// replaced; from then on [`lost`] is true. Never returns when nothing is
/// watched.
pub async fn gone() -> String {
    let Some(watched) = WATCHED.get() else {
        return std::future::pending().await;
    };
    let mut tick = tokio::time::interval(INTERVAL);
    loop {
        tick.tick().await;
        if let Some(reason) = watched.check() {
            LOST.store(true, Ordering::Relaxed);
            return reason;
        }
    }
}

/// How often the home is looked at.
const INTERVAL: Duration = Duration::from_secs(2);

/// The identity (device, inode) of the home and of the socket as the
/// daemon made them.
#[derive(Debug, Clone)]
struct Watched {
    root: PathBuf,
    root_id: (u64, u64),
    socket: PathBuf,
    socket_id: (u64, u64),
}

fn identity(path: &Path) -> std::io::Result<(u64, u64)> {
    std::fs::symlink_metadata(path).map(|meta| (meta.dev(), meta.ino()))
}

impl Watched {
    /// Records what the home and the socket are now.
    fn new(root: &Path, socket: &Path) -> std::io::Result<Self> {
        Ok(Self {
            root: root.to_path_buf(),
            root_id: identity(root)?,
            socket: socket.to_path_buf(),
            socket_id: identity(socket)?,
        })
    }

    /// Why the home is no longer ours, if it is not.
    fn check(&self) -> Option<String> {
        let changed = |path: &Path, id, what: &str| match identity(path) {
            Ok(now) if now == id => None,
            Ok(_) => Some(format!("{what} {} was replaced", path.display())),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                Some(format!("{what} {} was removed", path.display()))
            }
            // Unreadable for a moment (permissions being changed): not proof.
            Err(_) => None,
        };
        changed(&self.root, self.root_id, "the home")
            .or_else(|| changed(&self.socket, self.socket_id, "the socket"))
    }
}
