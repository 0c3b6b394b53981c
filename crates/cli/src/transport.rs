//! The connection to the daemon: checked before anything is sent, and
//! written without SIGPIPE.
//!
//! `main` restores SIGPIPE's default action so that `pmdaemon list | head`
//! ends quietly; a write to a socket whose daemon hung up would then kill
//! the CLI silently (exit 141): hyper writes head and body with `writev(2)`,
//! which takes no flags. Writes to the daemon therefore use
//! `send(MSG_NOSIGNAL)` (the stream is not vectored, so hyper hands it one
//! buffer at a time), and a hang-up is an error like any other.

use std::io;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use nix::sys::socket::{send, MsgFlags};
use pmdaemon_core::trust;
use tokio::io::{AsyncRead, AsyncWrite, Interest, ReadBuf};
use tokio::net::UnixStream;

/// Connects to the socket at `path` if it and the process behind it are
/// ours. An untrusted socket or peer is a `PermissionDenied` error (which
/// must not be taken for "no daemon runs").
pub async fn connect(path: &Path) -> io::Result<DaemonStream> {
    trust::check_socket(path).map_err(denied)?;
    let stream = UnixStream::connect(path).await?;
    trust::check_peer(&stream, path).map_err(denied)?;
    Ok(DaemonStream(stream))
}

fn denied(err: pmdaemon_core::files::FileError) -> io::Error {
    io::Error::new(io::ErrorKind::PermissionDenied, err.to_string())
}

/// A stream to a trusted daemon whose writes never raise SIGPIPE.
#[derive(Debug)]
pub struct DaemonStream(UnixStream);

impl AsyncRead for DaemonStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_read(cx, buf)
    }
}

impl AsyncWrite for DaemonStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let stream = &self.get_mut().0;
        loop {
            ready!(stream.poll_write_ready(cx))?;
            let sent = stream.try_io(Interest::WRITABLE, || {
                send(stream.as_raw_fd(), buf, MsgFlags::MSG_NOSIGNAL).map_err(io::Error::from)
            });
            match sent {
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().0).poll_shutdown(cx)
    }
}
