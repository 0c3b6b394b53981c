//! The pumps: one task per captured stream, woken by readiness of its pipe,
//! that moves what the child writes into the stream's slot, spliced as is
//! or formatted line by line.

use std::io::Write;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nix::errno::Errno;
use nix::fcntl::{fcntl, splice, FcntlArg, OFlag, SpliceFFlags};
use tokio::io::unix::AsyncFd;
use tokio::io::Interest;

use super::file::{FileState, LogFile};
use super::format::{format_lines, LineFormat};
use super::open_files::LogFiles;
use super::rotation::Rotation;

/// Largest chunk moved per call.
const CHUNK: usize = 1 << 20;

/// The pipe size a child gets once it fills its pipe (1 MiB: measured
/// fastest here; 2 MiB and more fell to a third, out of the L2 cache).
const CHATTY_PIPE_SIZE: usize = 1 << 20;

/// Wakeups in a row that find the pipe full before it grows.
const CHATTY_AFTER: u32 = 8;

/// Bytes one wakeup may move before the pump yields its thread.
const BUDGET: u64 = 16 << 20;

/// A partial line is written after this long without its end.
const PARTIAL_TIMEOUT: Duration = Duration::from_millis(500);

/// Starts a task that appends everything read from `pipe` to `path` (and
/// to `also`, PM2's `log_file`) until every writer of the pipe has closed
/// it: spliced as is, or line by line when the app asks for a format or
/// the lines go to two files.
pub fn pump(
    files: &LogFiles,
    pipe: OwnedFd,
    path: PathBuf,
    also: Option<PathBuf>,
    rotation: Rotation,
    format: Option<LineFormat>,
) {
    let file = files.get(&path, rotation);
    let also = also.map(|also| files.get(&also, rotation));
    tokio::spawn(async move {
        let result = match (format, also) {
            (None, None) => run_pump(pipe, file).await,
            (format, also) => {
                let format = format.unwrap_or(LineFormat::Lines);
                run_line_pump(pipe, file, also, format).await
            }
        };
        if let Err(err) = result {
            tracing::warn!("log capture into {} stopped: {err}", path.display());
        }
    });
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

impl LogFile {
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
    also: Option<Arc<LogFile>>,
    format: LineFormat,
) -> std::io::Result<()> {
    let write = |out: &[u8]| {
        file.write(out);
        if let Some(also) = &also {
            also.write(out);
        }
    };
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
                            write(out);
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
                    write(out);
                    out.clear();
                });
                partial.clear();
            }
        }
    }
}

async fn sleep_if(active: bool, duration: Duration) {
    if active {
        tokio::time::sleep(duration).await;
    } else {
        std::future::pending::<()>().await;
    }
}
