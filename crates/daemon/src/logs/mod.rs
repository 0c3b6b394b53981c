//! Moving the apps' output from their pipes into log files, and reading the
//! tails back.
//!
//! Theory of operation. Each stream is one small task woken by readiness of
//! the pipe (no polling, no per-stream buffer): `splice(2)` moves the bytes
//! from the pipe into the file inside the kernel. A child therefore never
//! blocks on a full pipe for longer than a page-cache write takes, and the
//! daemon's memory does not grow with the amount written (`pump.rs`). Only
//! an app that asks for timestamps or JSON has its output read and cut into
//! lines (`format.rs`). Where a stream goes is [`log_path`] (`path.rs`).
//! Every path has one [`LogFile`] slot (`file.rs`), shared by all the pumps
//! writing to it, so that the pump of an exited process and that of its
//! replacement write in turn at one position. The slot rotates its file
//! once it reaches the app's [`Rotation`] size (`rotation.rs`), gzips the
//! rotated files on a thread, and remembers roughly when its bytes were
//! written (`marks.rs`), so that tails of several files interleave in time.
//! The daemon's housekeeping keeps all the logs within one disk budget by
//! deleting the oldest rotated files (`budget.rs`). Reading never goes
//! through the pumps: tails are read backwards from the files (`tail.rs`),
//! and [`follow`] watches the files for new lines.
//!
//! The files import downward only: `path`, `format`, `marks` and `tail`
//! stand alone; `rotation` builds on `path`; `budget` and `file` on both
//! (`file` also on `marks`); `open_files` (the registry of slots, which
//! closes the least used files past a quarter of the open-file limit) on
//! `file`; `pump` on `file`, `open_files` and `format`; `follow` on `tail`.

mod budget;
mod file;
pub mod follow;
mod format;
mod marks;
mod open_files;
mod path;
mod pump;
mod rotation;
mod tail;

pub use budget::{budget_due, enforce_budget};
pub use file::LogFile;
pub use format::LineFormat;
pub use open_files::LogFiles;
pub use path::{combined_log_path, is_discarded, log_path};
pub use pump::pump;
pub use rotation::{rotate_stderr_log, truncate_all, Rotation};
pub use tail::{last_line_end, tail, tail_of, tail_with_ends};
