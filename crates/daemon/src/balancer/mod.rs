//! Shared-port clusters: one public port served by every instance of an app.
//!
//! Theory of operation. When an app is a shared-port cluster the daemon binds
//! its port once, before any instance starts, and keeps the listening socket
//! open for as long as the app exists: across crashes, restarts and reloads,
//! so a connection that arrives while an instance is replaced waits in the
//! backlog instead of being refused.
//! - **socket mode**: every instance inherits that socket as fd 3 with the
//!   systemd protocol (`LISTEN_FDS=1`, `LISTEN_PID`, `LISTEN_FDNAMES`), and
//!   the kernel hands each connection to whichever instance accepts first.
//! - **proxy mode**: each process listens on a private loopback port (its
//!   `PORT`); [`proxy`] accepts on the public socket and forwards each
//!   connection to the serving backend with the fewest open connections
//!   (ties go round robin). A backend serves once its process is ready and
//!   stops serving when it is unhealthy, draining or gone.
//!
//! The instance tasks and the readiness setters tell the balancer about
//! backends; the balancer knows nothing of the supervisor.

mod proxy;

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use pmdaemon_core::config::SharedPort;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::Error;

/// The preload that maps a Node app's `listen(<shared port>)` to the
/// inherited socket (socket mode) or to its private port (proxy mode), and
/// stops it gracefully on SIGTERM/SIGINT.
const NODE_PRELOAD: &str = include_str!("preload.js");

/// Every shared port the daemon holds, by app.
#[derive(Debug, Default)]
pub struct Balancer {
    apps: Mutex<HashMap<String, Arc<Shared>>>,
    /// The Node preload, once written.
    preload: Mutex<Option<PathBuf>>,
}

/// One app's shared port.
#[derive(Debug)]
pub struct Shared {
    /// The public port.
    pub port: u16,
    /// `Socket` or `Proxy`.
    pub mode: SharedPort,
    /// The listening socket (kept open while the app exists; taken out
    /// when it is closed, so that nothing holds it after).
    listener: Mutex<Option<Arc<TcpListener>>>,
    backends: Mutex<Vec<Backend>>,
    /// Woken when a backend starts or stops serving.
    changed: Notify,
    /// Where the round robin among equally loaded backends starts next.
    next: AtomicUsize,
    proxy: Mutex<Option<JoinHandle<()>>>,
}

/// One process an app's proxy may forward to.
#[derive(Debug, Clone)]
struct Backend {
    pid: u32,
    port: u16,
    ready: bool,
    healthy: bool,
    draining: bool,
    connections: Arc<AtomicU64>,
}

impl Backend {
    fn serving(&self) -> bool {
        self.ready && self.healthy && !self.draining
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.proxy).take() {
            task.abort();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl Balancer {
    /// Binds `port` for `app` (once; a second call returns the same socket).
    /// IPv6 and IPv4 are both served (one dual-stack socket, or IPv4 alone
    /// on a host without IPv6). A port someone else listens on is refused.
    pub fn open(&self, app: &str, port: u16, mode: SharedPort) -> Result<Arc<Shared>, Error> {
        // One lock from the look-up to the insert: instances launched at
        // once (a new daemon resuming a cluster) bind the port once.
        let mut apps = lock(&self.apps);
        if let Some(shared) = apps.get(app) {
            if shared.port == port && shared.mode == mode {
                return Ok(Arc::clone(shared));
            }
        }
        if let Some(old) = apps.remove(app) {
            old.close();
        }
        let listener = bind_shared(port)?;
        let shared = Arc::new(Shared {
            port,
            mode,
            listener: Mutex::new(Some(Arc::new(listener))),
            backends: Mutex::new(Vec::new()),
            changed: Notify::new(),
            next: AtomicUsize::new(0),
            proxy: Mutex::new(None),
        });
        if mode == SharedPort::Proxy {
            let task = proxy::spawn(Arc::clone(&shared), app.to_string())?;
            *lock(&shared.proxy) = Some(task);
        }
        apps.insert(app.to_string(), Arc::clone(&shared));
        tracing::info!("{app}: listening on shared port {port} ({mode} mode)");
        Ok(shared)
    }

    /// The shared port of `app`, if it has one open.
    pub fn get(&self, app: &str) -> Option<Arc<Shared>> {
        lock(&self.apps).get(app).cloned()
    }

    /// Closes `app`'s shared port (the app is gone).
    pub fn close(&self, app: &str) {
        let shared = lock(&self.apps).remove(app);
        if let Some(shared) = shared {
            shared.close();
        }
    }

    /// Closes every shared port (the daemon is going away).
    pub fn close_all(&self) {
        let apps: Vec<String> = lock(&self.apps).keys().cloned().collect();
        for app in apps {
            self.close(&app);
        }
    }

    /// Applies `change` to the backend `pid` of `app`, if there is one.
    fn with_backend(&self, app: &str, pid: u32, change: impl FnOnce(&mut Backend)) {
        if let Some(shared) = self.get(app) {
            let mut backends = lock(&shared.backends);
            if let Some(backend) = backends.iter_mut().find(|b| b.pid == pid) {
                change(backend);
            }
            drop(backends);
            shared.changed.notify_waiters();
        }
    }

    /// A new process listens (or will) on private `port`.
    pub fn add_backend(&self, app: &str, pid: u32, port: u16) {
        if let Some(shared) = self.get(app) {
            lock(&shared.backends).push(Backend {
                pid,
                port,
                ready: false,
                healthy: true,
                draining: false,
                connections: Arc::new(AtomicU64::new(0)),
            });
        }
    }

    /// The process is ready: it gets new connections from now on.
    pub fn set_ready(&self, app: &str, pid: u32) {
        self.with_backend(app, pid, |b| b.ready = true);
    }

    /// The health check's verdict: an unhealthy process gets no new
    /// connections until it passes again.
    pub fn set_healthy(&self, app: &str, pid: u32, healthy: bool) {
        self.with_backend(app, pid, |b| b.healthy = healthy);
    }

    /// The process is being replaced or stopped: no new connections.
    pub fn drain(&self, app: &str, pid: u32) {
        self.with_backend(app, pid, |b| b.draining = true);
    }

    /// Connections the proxy has open to process `pid` now.
    pub fn connections(&self, app: &str, pid: u32) -> Option<u64> {
        let shared = self.get(app)?;
        let backends = lock(&shared.backends);
        let backend = backends.iter().find(|b| b.pid == pid)?;
        Some(backend.connections.load(Ordering::Relaxed))
    }

    /// The process is gone.
    pub fn remove_backend(&self, app: &str, pid: u32) {
        if let Some(shared) = self.get(app) {
            lock(&shared.backends).retain(|b| b.pid != pid);
            shared.changed.notify_waiters();
        }
    }
}

impl Shared {
    /// The listening socket, until the port is closed.
    pub fn listener(&self) -> Option<Arc<TcpListener>> {
        lock(&self.listener).clone()
    }

    /// Stops accepting and lets go of the socket; connections being
    /// forwarded finish on their own.
    fn close(&self) {
        if let Some(task) = lock(&self.proxy).take() {
            task.abort();
        }
        if let Some(listener) = lock(&self.listener).take() {
            // Other handles of the socket (the proxy's, a process's fd 3)
            // must stop accepting too.
            let _ = nix::sys::socket::shutdown(
                std::os::fd::AsRawFd::as_raw_fd(&*listener),
                nix::sys::socket::Shutdown::Read,
            );
        }
        self.changed.notify_waiters();
    }

    /// The serving backend with the fewest open connections (round robin
    /// among equals), skipping `tried`; its address and its connection
    /// counter, already counting the caller.
    fn pick(&self, tried: &[u16]) -> Option<(u16, Arc<AtomicU64>)> {
        let backends = lock(&self.backends);
        let serving: Vec<&Backend> = backends
            .iter()
            .filter(|b| b.serving() && !tried.contains(&b.port))
            .collect();
        if serving.is_empty() {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed) % serving.len();
        let chosen = (0..serving.len())
            .map(|offset| serving[(start + offset) % serving.len()])
            .min_by_key(|b| b.connections.load(Ordering::Relaxed))?;
        // Counted from the pick, under the lock: a drain that reads 0 never
        // races a connection being made.
        chosen.connections.fetch_add(1, Ordering::Relaxed);
        Some((chosen.port, Arc::clone(&chosen.connections)))
    }
}

/// Binds the public side of a shared port: `[::]` dual-stack where the host
/// has IPv6, else `0.0.0.0`.
fn bind_shared(port: u16) -> Result<TcpListener, Error> {
    let in_use = |err: std::io::Error| {
        if err.kind() == std::io::ErrorKind::AddrInUse {
            Error::PortInUse {
                port,
                holder: "another program on this machine".to_string(),
            }
        } else {
            Error::io("listen on", format!("port {port}"), err)
        }
    };
    let v6 = SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let listener = match crate::spawn::listen_dual_stack(v6) {
        Ok(listener) => listener,
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => return Err(in_use(err)),
        // No IPv6 here.
        Err(_) => TcpListener::bind((Ipv4Addr::UNSPECIFIED, port)).map_err(in_use)?,
    };
    // Blocking, as systemd passes sockets: an app that accepts in a blocking
    // loop works (the proxy, which shares it with no app, makes it
    // non-blocking).
    Ok(listener)
}

/// A loopback port that nothing listens on now, for a proxy-mode process.
pub fn private_port() -> Result<u16, Error> {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|err| Error::io("find", "a free private port", err))
}

impl Balancer {
    /// Writes the Node preload under `dir` (once per daemon, when it is
    /// missing or stale) and returns its path.
    pub fn node_preload(&self, dir: &Path) -> Result<PathBuf, Error> {
        let mut written = lock(&self.preload);
        if let Some(path) = written.as_ref() {
            return Ok(path.clone());
        }
        let path = dir.join("pmdaemon-preload.js");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(NODE_PRELOAD) {
            std::fs::create_dir_all(dir).map_err(|err| Error::io("create", dir, err))?;
            let temp = dir.join(format!(".pmdaemon-preload.js.{}", std::process::id()));
            std::fs::write(&temp, NODE_PRELOAD).map_err(|err| Error::io("write", &temp, err))?;
            std::fs::rename(&temp, &path).map_err(|err| Error::io("write", &path, err))?;
        }
        *written = Some(path.clone());
        Ok(path)
    }
}
