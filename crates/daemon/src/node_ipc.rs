//! Node's IPC channel, as PM2 gives it to the Node apps it runs.
//!
//! A Node process started with `NODE_CHANNEL_FD=<fd>` opens that descriptor
//! as its channel to a parent: `process.send(m)` writes `JSON.stringify(m)`
//! and a newline, and each such line the parent writes arrives as
//! `process.on('message', m => …)` (`NODE_CHANNEL_SERIALIZATION_MODE=json`).
//! The daemon makes a Unix socket pair per Node process, hands one end to
//! the child (at [`crate::spawn::IPC_FD`]) and keeps the other: a task
//! reads it for `'ready'` (what `wait_ready` waits for, besides sd_notify's
//! `READY=1`), and the instance writes `'shutdown'` to it to stop an app
//! with `shutdown_with_message`. Anything else on the channel is read and
//! dropped; garbage, overlong lines and EOF end nothing but the reading.
//!
//! The channel does not keep an app alive: Node unrefs it until the app
//! adds a `message` (or `disconnect`) listener, exactly as under PM2, whose
//! children are forked with the same channel.

use std::os::fd::OwnedFd;
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;

use crate::health::Reporter;

/// The longest message line read; a longer one is skipped to its end.
const MAX_LINE: usize = 64 * 1024;

/// The message PM2 sends to stop an app with `shutdown_with_message`.
const SHUTDOWN: &[u8] = b"\"shutdown\"\n";

/// The daemon's end of one process's channel, for writing.
#[derive(Debug)]
pub(crate) struct Sender(OwnedWriteHalf);

impl Sender {
    /// Sends the message `'shutdown'`; false if it could not be sent at
    /// once (the caller then stops the app with its signal). Never blocks.
    pub(crate) fn send_shutdown(&self) -> bool {
        matches!(self.0.try_write(SHUTDOWN), Ok(n) if n == SHUTDOWN.len())
    }
}

/// A new channel: the child's end (to inherit) and the daemon's halves.
pub(crate) fn channel() -> std::io::Result<(OwnedFd, OwnedReadHalf, Sender)> {
    let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
    ours.set_nonblocking(true)?;
    let (read, write) = tokio::net::UnixStream::from_std(ours)?.into_split();
    Ok((theirs.into(), read, Sender(write)))
}

/// Reads process `pid`'s messages until the channel closes; with `wait_ready`
/// the message `'ready'` makes instance `id` ready.
pub(crate) fn listen(
    supervisor: &Arc<impl Reporter>,
    mut reader: OwnedReadHalf,
    id: u32,
    pid: u32,
    wait_ready: bool,
) -> JoinHandle<()> {
    let supervisor = Arc::downgrade(supervisor);
    tokio::spawn(async move {
        let mut lines = Lines::default();
        let mut buffer = vec![0u8; 8192];
        loop {
            let read = match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                Ok(read) => read,
            };
            for line in lines.feed(&buffer[..read]) {
                if wait_ready && is_ready(&line) {
                    let Some(supervisor) = supervisor.upgrade() else {
                        return;
                    };
                    supervisor.set_ready(id, pid);
                }
            }
        }
    })
}

/// Whether a line is the message `'ready'` (`process.send('ready')`).
fn is_ready(line: &[u8]) -> bool {
    matches!(
        serde_json::from_slice::<serde_json::Value>(line),
        Ok(serde_json::Value::String(message)) if message == "ready"
    )
}

/// Splits a byte stream into lines of at most [`MAX_LINE`] bytes.
#[derive(Debug, Default)]
struct Lines {
    partial: Vec<u8>,
    /// Inside an overlong line, which is dropped up to its newline.
    skipping: bool,
}

impl Lines {
    fn feed(&mut self, mut bytes: &[u8]) -> Vec<Vec<u8>> {
        let mut complete = Vec::new();
        while let Some(end) = bytes.iter().position(|b| *b == b'\n') {
            if !self.skipping && self.partial.len() + end <= MAX_LINE {
                self.partial.extend_from_slice(&bytes[..end]);
                complete.push(std::mem::take(&mut self.partial));
            }
            self.partial.clear();
            self.skipping = false;
            bytes = &bytes[end + 1..];
        }
        if !self.skipping {
            self.partial.extend_from_slice(bytes);
            if self.partial.len() > MAX_LINE {
                self.partial = Vec::new();
                self.skipping = true;
            }
        }
        complete
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_across_reads_and_overlong_ones_dropped() {
        let mut lines = Lines::default();
        assert!(lines.feed(b"\"rea").is_empty());
        assert_eq!(
            lines.feed(b"dy\"\n{\"a\":1}\n"),
            [b"\"ready\"".to_vec(), b"{\"a\":1}".to_vec()]
        );
        let long = vec![b'x'; MAX_LINE + 10];
        assert!(lines.feed(&long).is_empty());
        assert!(lines.feed(b"more garbage").is_empty());
        assert_eq!(lines.feed(b"tail\n\"ready\"\n"), [b"\"ready\"".to_vec()]);
    }

    #[test]
    fn only_the_string_ready_is_ready() {
        assert!(is_ready(b"\"ready\""));
        assert!(!is_ready(b"{\"type\":\"ready\"}"));
        assert!(!is_ready(b"\"READY\""));
        assert!(!is_ready(b"\xff garbage"));
        assert!(!is_ready(b""));
    }
}
