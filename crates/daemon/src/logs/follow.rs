//! `logs --follow`: new lines of log files as they are written.
//!
//! The daemon moves output with splice and never sees the bytes, so it
//! follows the files themselves: inotify (notify) on their directory wakes a
//! follower when its file changes; it reads what is new, holds a partial
//! line until its end, and reopens the file when it was rotated, recreated
//! or emptied. Followers end when the client goes away.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hyper::body::Bytes;
use notify::{RecursiveMode, Watcher};
use pmdaemon_core::api::{LogLine, LogStream};
use tokio::sync::mpsc;

use super::tail::{last_line_end, tail_of};

/// A file to follow: instance, stream and path.
pub type Source = (String, LogStream, PathBuf);

/// Streams the last `lines` lines of each source, then every new line, as
/// JSON objects separated by newlines.
///
/// One inotify watcher serves every file of the follower (an inotify
/// instance and a thread each would run into the user's limit of 128), on
/// each directory once; an event wakes the file it names.
pub fn follow(sources: Vec<Source>, lines: usize) -> mpsc::Receiver<Bytes> {
    let (sender, receiver) = mpsc::channel(1024);
    // Watch first, so that no change after a tail is read goes unseen.
    let mut wakes: HashMap<PathBuf, mpsc::UnboundedSender<()>> = HashMap::new();
    let mut woken = Vec::new();
    for (_, _, path) in &sources {
        let (wake, heard) = mpsc::unbounded_channel();
        wakes.insert(path.clone(), wake.clone());
        wakes.insert(PathBuf::from(format!("{}.1", path.display())), wake);
        woken.push(heard);
    }
    let mut directories: Vec<PathBuf> = sources
        .iter()
        .map(|(_, _, path)| {
            path.parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
        })
        .collect();
    directories.sort();
    directories.dedup();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        for path in event.iter().flat_map(|e| &e.paths) {
            if let Some(wake) = wakes.get(path) {
                let _ = wake.send(());
            }
        }
    })
    .and_then(|mut watcher| {
        for directory in &directories {
            watcher.watch(directory, RecursiveMode::NonRecursive)?;
        }
        Ok(watcher)
    })
    .map_err(|err| err.to_string());
    let failed = watcher.as_ref().err().cloned();
    for (source, woken) in sources.into_iter().zip(woken) {
        tokio::spawn(follow_file(
            sender.clone(),
            source,
            lines,
            woken,
            failed.clone(),
        ));
    }
    // The watcher lives as long as the follower.
    tokio::spawn(async move {
        sender.closed().await;
        drop(watcher);
    });
    receiver
}

fn encode(instance: &str, stream: LogStream, line: &str) -> Bytes {
    let record = LogLine {
        instance: instance.to_string(),
        stream,
        line: line.to_string(),
    };
    let mut text = serde_json::to_string(&record).unwrap_or_default();
    text.push('\n');
    Bytes::from(text)
}

struct Reader {
    file: Option<File>,
    inode: Option<u64>,
    partial: Vec<u8>,
}

impl Reader {
    /// Opens `path` at its start (no file yet: nothing to read).
    fn open(path: &Path) -> Self {
        let file = File::open(path).ok();
        let inode = file
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map(|m| m.ino());
        Self {
            file,
            inode,
            partial: Vec::new(),
        }
    }

    /// Opens `path` where its last complete line ends, and returns its last
    /// `lines` lines up to there: read from one open file, so every line is
    /// either in the tail or read later, once.
    fn open_with_tail(path: &Path, lines: usize) -> (Self, Vec<String>) {
        let mut reader = Self::open(path);
        let Some(file) = &mut reader.file else {
            return (reader, Vec::new());
        };
        let len = file.metadata().map_or(0, |m| m.len());
        let start = last_line_end(file, len).unwrap_or(len);
        let tail = tail_of(file, start, lines)
            .unwrap_or_default()
            .into_iter()
            .map(|(line, _)| line)
            .collect();
        let _ = file.seek(SeekFrom::Start(start));
        (reader, tail)
    }

    /// Complete lines written since the last call.
    fn read_new(&mut self) -> Vec<String> {
        let Some(file) = &mut self.file else {
            return Vec::new();
        };
        // Emptied (flush) under us: start over.
        if let (Ok(position), Ok(meta)) = (file.stream_position(), file.metadata()) {
            if meta.len() < position {
                let _ = file.seek(SeekFrom::Start(0));
                self.partial.clear();
            }
        }
        let _ = file.read_to_end(&mut self.partial);
        let mut lines = Vec::new();
        let mut begin = 0;
        for end in memchr::memchr_iter(b'\n', &self.partial) {
            let text = String::from_utf8_lossy(&self.partial[begin..end]);
            lines.push(text.strip_suffix('\r').unwrap_or(&text).to_string());
            begin = end + 1;
        }
        self.partial.drain(..begin);
        lines
    }
}

async fn follow_file(
    sender: mpsc::Sender<Bytes>,
    (instance, stream, path): Source,
    lines: usize,
    mut woken: mpsc::UnboundedReceiver<()>,
    watch_failed: Option<String>,
) {
    let (mut reader, tail) = Reader::open_with_tail(&path, lines);
    for line in tail {
        if sender.send(encode(&instance, stream, &line)).await.is_err() {
            return;
        }
    }
    if let Some(err) = watch_failed {
        let line = format!("[pmdaemon] cannot follow {}: {err}", path.display());
        let _ = sender.send(encode(&instance, stream, &line)).await;
        return;
    }
    loop {
        tokio::select! {
            woke = woken.recv() => if woke.is_none() { return },
            () = sender.closed() => return,
        }
        // One read serves every event that came meanwhile.
        while woken.try_recv().is_ok() {}
        // What the current file got, then, if the path now names another
        // file (rotated or recreated), that file from its start.
        let mut fresh = reader.read_new();
        let current = std::fs::metadata(&path).ok().map(|m| m.ino());
        if current.is_some() && current != reader.inode {
            // The stream goes on in the new file: a line cut by the
            // rotation (a writer that writes text and newline separately)
            // is completed there.
            let partial = std::mem::take(&mut reader.partial);
            reader = Reader::open(&path);
            reader.partial = partial;
            fresh.extend(reader.read_new());
        }
        for line in fresh {
            if sender.send(encode(&instance, stream, &line)).await.is_err() {
                return;
            }
        }
    }
}
