//! Every open log slot, and how many files they hold open. Each open file
//! is a descriptor, as are the two pipes of every instance; so that
//! thousands of instances fit under the daemon's open-file limit, at most
//! a quarter of it goes to log files: past that, the least recently written
//! are closed (parked) and reopened by their next writer.
//!
//! Lock order: a holder of the registry's map only ever tries slots' locks
//! (never waits for one), so a slot may make room while it holds its own;
//! and nothing that holds the map calls into a slot's `lock()`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError, Weak};
use std::time::Instant;

use super::file::{LogFile, Room};
use super::rotation::Rotation;

/// The open log files.
#[derive(Debug, Default)]
pub struct LogFiles {
    registry: Arc<Registry>,
}

#[derive(Debug, Default)]
struct Registry {
    slots: Mutex<HashMap<PathBuf, Arc<LogFile>>>,
    open_files: AtomicUsize,
}

impl LogFiles {
    /// The slot of `path`, opened (and created) on first use; `rotation`
    /// replaces the previous policy.
    pub fn get(&self, path: &Path, rotation: Rotation) -> Arc<LogFile> {
        let file = {
            let mut slots = self.registry.lock();
            match slots.get(path) {
                Some(file) => Arc::clone(file),
                None => {
                    // Room first, so that the new file does not fail to open.
                    self.registry.park_excess(&slots);
                    let room: Weak<dyn Room> = Arc::downgrade(&self.registry) as Weak<dyn Room>;
                    let file = Arc::new(LogFile::open(path, rotation, room));
                    slots.insert(path.to_path_buf(), Arc::clone(&file));
                    file
                }
            }
        };
        file.state().rotation = rotation;
        file
    }

    /// The slot of `path` if it is open.
    pub fn find(&self, path: &Path) -> Option<Arc<LogFile>> {
        self.registry.lock().get(path).cloned()
    }

    /// Closes `path` (once its last writer is done with it).
    pub fn forget(&self, path: &Path) {
        self.registry.lock().remove(path);
    }
}

impl Registry {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Arc<LogFile>>> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Once the budget is spent, parks the least recently written open
    /// files down to three quarters of it (so that the next reopens do not
    /// each sort every slot). Slots busy right now are skipped.
    fn park_excess(&self, slots: &HashMap<PathBuf, Arc<LogFile>>) {
        let budget = open_file_budget();
        let open_now = self.open_files.load(Ordering::Relaxed);
        if open_now < budget {
            return;
        }
        let mut excess = open_now - (budget - budget / 4);
        let mut open: Vec<(Instant, &Arc<LogFile>)> = slots
            .values()
            .filter_map(|slot| {
                let state = try_state(slot)?;
                state.file.is_some().then_some((state.used, slot))
            })
            .collect();
        open.sort_by_key(|(used, _)| *used);
        for (_, slot) in open {
            if excess == 0 {
                break;
            }
            if let Some(mut state) = try_state(slot) {
                if slot.park(&mut state) {
                    excess -= 1;
                }
            }
        }
    }
}

impl Room for Registry {
    fn count(&self, opened: bool) {
        if opened {
            self.open_files.fetch_add(1, Ordering::Relaxed);
        } else {
            self.open_files.fetch_sub(1, Ordering::Relaxed);
        }
    }

    fn make_room(&self) {
        if self.open_files.load(Ordering::Relaxed) >= open_file_budget() {
            let slots = self.lock();
            self.park_excess(&slots);
        }
    }
}

/// A slot's state if nobody holds it (a poisoned one is still a state).
fn try_state(slot: &LogFile) -> Option<std::sync::MutexGuard<'_, super::file::FileState>> {
    match slot.state.try_lock() {
        Ok(state) => Some(state),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

/// At most this many log files open: a quarter of the open-file limit as
/// the daemon first needs it (after raising it): two pipes per instance
/// take their share, the rest is the daemon's.
fn open_file_budget() -> usize {
    static BUDGET: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *BUDGET.get_or_init(|| {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit writes into the struct we own.
        let soft = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0 {
            limit.rlim_cur
        } else {
            1024
        };
        usize::try_from(soft / 4).unwrap_or(usize::MAX).max(16)
    })
}
