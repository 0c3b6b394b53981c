//! Proxy mode's forwarding: accept on the public socket, connect to a
//! serving backend on loopback, and copy both ways until either side closes.
//!
//! A connection that finds no serving backend (every instance is starting,
//! restarting or unhealthy) waits for one, up to [`WAIT_FOR_BACKEND`], rather
//! than being refused; a backend that refuses the connection (its process has
//! just died) is skipped for the next one.

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio::time::{timeout_at, Instant};

use super::Shared;
use crate::Error;

/// How long a client waits for a serving backend before it is closed.
const WAIT_FOR_BACKEND: Duration = Duration::from_secs(10);
/// Bytes buffered per direction of a forwarded connection.
const BUFFER: usize = 64 * 1024;

/// Starts accepting on `shared`'s socket.
pub(super) fn spawn(shared: Arc<Shared>, app: String) -> Result<JoinHandle<()>, Error> {
    let std_listener = shared
        .listener()
        .ok_or_else(|| {
            Error::io(
                "listen on",
                format!("port {}", shared.port),
                std::io::Error::other("the port was closed"),
            )
        })?
        .try_clone()
        .map_err(|err| Error::io("share", format!("port {}", shared.port), err))?;
    std_listener
        .set_nonblocking(true)
        .map_err(|err| Error::io("configure", format!("port {}", shared.port), err))?;
    let listener = TcpListener::from_std(std_listener)
        .map_err(|err| Error::io("listen on", format!("port {}", shared.port), err))?;
    // The task holds a weak reference: closing the app drops the socket.
    let weak = Arc::downgrade(&shared);
    Ok(tokio::spawn(async move {
        loop {
            let (client, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(err) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!("{app}: accept on the shared port failed: {err}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let Some(shared) = weak.upgrade() else { return };
            tokio::spawn(forward(shared, client));
        }
    }))
}

/// Forwards one client connection.
async fn forward(shared: Arc<Shared>, mut client: TcpStream) {
    let _ = client.set_nodelay(true);
    let deadline = Instant::now() + WAIT_FOR_BACKEND;
    let mut tried = Vec::new();
    let (mut backend, connections) = loop {
        let changed = shared.changed.notified();
        match shared.pick(&tried) {
            Some((port, connections)) => {
                let open = Open(connections);
                match TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await {
                    Ok(stream) => break (stream, open),
                    Err(_) => tried.push(port),
                }
            }
            None if !tried.is_empty() => {
                // Every serving backend refused: wait for a change.
                tried.clear();
                if timeout_at(deadline, changed).await.is_err() {
                    return;
                }
            }
            None => {
                if timeout_at(deadline, changed).await.is_err() {
                    return;
                }
            }
        }
    };
    let _ = backend.set_nodelay(true);
    let _open = connections;
    let _ =
        tokio::io::copy_bidirectional_with_sizes(&mut client, &mut backend, BUFFER, BUFFER).await;
}

/// A connection counted by `pick`, uncounted when it ends.
struct Open(Arc<AtomicU64>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}
