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

/// The open log files, one file description each, shared by every process
/// that writes to the file: the pump of a process that has just exited may
/// still be draining its pipe while its replacement's pump starts, and with a
/// shared description both write at the one file position instead of
/// overwriting each other.
#[derive(Debug, Default)]
pub struct LogFiles {
    open: Mutex<HashMap<PathBuf, Arc<File>>>,
}

impl LogFiles {
    /// The shared description of `path`, opened (and created) on first use.
    pub fn get(&self, path: &Path) -> std::io::Result<Arc<File>> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(file) = open.get(path) {
            return Ok(Arc::clone(file));
        }
        let file = Arc::new(open_log(path)?);
        open.insert(path.to_path_buf(), Arc::clone(&file));
        Ok(file)
    }

    /// Closes `path` (once its last writer is done with it).
    pub fn forget(&self, path: &Path) {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(path);
    }
}

/// Starts a task that appends everything read from `pipe` to `path` until
/// every writer of the pipe has closed it.
pub fn pump(files: &LogFiles, pipe: OwnedFd, path: PathBuf) {
    let file = match files.get(&path) {
        Ok(file) => Some(file),
        Err(err) => {
            tracing::warn!(
                "cannot open {} ({err}); output of this stream is dropped",
                path.display()
            );
            None
        }
    };
    tokio::spawn(async move {
        if let Err(err) = run_pump(pipe, file, &path).await {
            tracing::warn!("log capture into {} stopped: {err}", path.display());
        }
    });
}

fn open_log(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Not O_APPEND: splice(2) refuses append-mode files. The daemon is the
    // only writer and all its writers share this one description, so
    // writing at its position is appending.
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)?;
    file.seek(SeekFrom::End(0))?;
    Ok(file)
}

async fn run_pump(pipe: OwnedFd, file: Option<Arc<File>>, path: &Path) -> std::io::Result<()> {
    let flags = OFlag::from_bits_truncate(fcntl(&pipe, FcntlArg::F_GETFL)?);
    fcntl(&pipe, FcntlArg::F_SETFL(flags | OFlag::O_NONBLOCK))?;
    // SAFETY: the AsyncFd owns the pipe's OwnedFd, which is neither closed
    // nor replaced while registered.
    let pipe = unsafe { AsyncFd::register_with_interest(pipe, Interest::READABLE) }
        .map_err(std::io::Error::from)?;
    let mut sink = Sink {
        file,
        splice_works: true,
        dropped: 0,
    };
    loop {
        let mut ready = pipe.readable().await?;
        match ready.try_io(|fd| sink.drain(fd.get_ref())) {
            Ok(Ok(Drained::Eof)) => break,
            Err(_would_block) => continue,
            Ok(Err(err)) => return Err(err),
        }
    }
    if sink.dropped > 0 {
        tracing::warn!(
            "{} bytes for {} could not be written and were dropped",
            sink.dropped,
            path.display()
        );
    }
    Ok(())
}

enum Drained {
    Eof,
}

struct Sink {
    file: Option<Arc<File>>,
    splice_works: bool,
    dropped: u64,
}

impl Sink {
    /// Moves everything available; returns WouldBlock once the pipe is empty
    /// so that tokio clears the readiness.
    fn drain(&mut self, pipe: &OwnedFd) -> std::io::Result<Drained> {
        loop {
            let moved = match (&self.file, self.splice_works) {
                (Some(file), true) => splice(
                    pipe.as_fd(),
                    None,
                    file.as_fd(),
                    None,
                    CHUNK,
                    SpliceFFlags::SPLICE_F_NONBLOCK | SpliceFFlags::SPLICE_F_MOVE,
                ),
                _ => self.copy(pipe),
            };
            match moved {
                Ok(0) => return Ok(Drained::Eof),
                Ok(_) => continue,
                Err(Errno::EAGAIN) => return Err(std::io::ErrorKind::WouldBlock.into()),
                Err(Errno::EINTR) => continue,
                Err(Errno::EINVAL) if self.splice_works => self.splice_works = false,
                Err(err) if self.file.is_none() => return Err(std::io::Error::from(err)),
                Err(err) => {
                    // The file side failed (disk full, file system gone):
                    // keep the child unblocked by reading and dropping.
                    tracing::warn!("writing a log file failed ({err}); dropping output");
                    self.file = None;
                }
            }
        }
    }

    /// Plain read + write, for files that cannot be spliced into, or
    /// read-and-drop when there is no file.
    fn copy(&mut self, pipe: &OwnedFd) -> nix::Result<usize> {
        let mut buffer = [0u8; 16 * 1024];
        let read = nix::unistd::read(pipe, &mut buffer)?;
        match &mut self.file {
            Some(file) => file
                .write_all(&buffer[..read])
                .map_err(|err| Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO)))?,
            None => self.dropped += read as u64,
        }
        Ok(read)
    }
}

/// The last `lines` lines of a file (missing file: none), without line
/// endings, invalid UTF-8 replaced.
pub fn tail(path: &Path, lines: usize) -> std::io::Result<Vec<String>> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err),
    };
    if lines == 0 {
        return Ok(Vec::new());
    }
    let len = file.metadata()?.len();
    let mut start = len;
    let mut collected: Vec<u8> = Vec::new();
    const STEP: u64 = 64 * 1024;
    // Read backwards until enough line breaks are seen (one more than the
    // lines wanted, to find where the first of them begins).
    while start > 0 {
        let step = STEP.min(start);
        start -= step;
        file.seek(SeekFrom::Start(start))?;
        let mut chunk = vec![0; step as usize];
        file.read_exact(&mut chunk)?;
        chunk.extend_from_slice(&collected);
        collected = chunk;
        let body = collected.strip_suffix(b"\n").unwrap_or(&collected);
        if body.iter().filter(|b| **b == b'\n').count() >= lines {
            break;
        }
    }
    let text = String::from_utf8_lossy(&collected);
    let all: Vec<&str> = text
        .strip_suffix('\n')
        .unwrap_or(&text)
        .split('\n')
        .collect();
    let skip = all.len().saturating_sub(lines);
    Ok(all[skip..]
        .iter()
        .map(|line| line.strip_suffix('\r').unwrap_or(line).to_string())
        .filter(|line| !(all.len() == 1 && line.is_empty()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

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
