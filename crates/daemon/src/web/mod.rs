//! The TCP door of the API (`pmdaemon web`): the same router as the Unix
//! socket, behind [`auth`], on the address of the saved setting.
//!
//! The setting lives in `web.json` ([`settings`]); the daemon serves it when
//! it starts, and `/api/web` (Unix socket only) changes it while it runs. A
//! new setting is saved only once its listeners are bound, so a port in use
//! never leaves a setting behind that cannot be served. On the default
//! loopback address the door also opens on `[::1]`, because `localhost`
//! resolves there first on many systems.

pub mod auth;
pub mod dashboard;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use pmdaemon_core::web::{settings, WebSettings, WebStatus};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Mutex};

use crate::api::AppState;
use crate::{Error, Home};

/// How long a stop waits for the listeners to close.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// The web API of one daemon: off, or serving one setting.
#[derive(Debug)]
pub struct Door {
    home: Home,
    current: Mutex<Current>,
}

#[derive(Debug, Default)]
struct Current {
    settings: Option<WebSettings>,
    listening: Vec<SocketAddr>,
    error: Option<String>,
    /// Dropped or sent to: the servers stop accepting.
    stop: Option<watch::Sender<()>>,
    /// Each resolves once its listener is closed.
    closed: Vec<oneshot::Receiver<()>>,
}

impl Door {
    /// A closed door for `home`.
    pub fn new(home: Home) -> Self {
        Self {
            home,
            current: Mutex::new(Current::default()),
        }
    }

    /// Serves the saved setting, if any (when the daemon starts). A failure
    /// is logged and shown by `pmdaemon web --status`; the daemon runs on.
    pub async fn resume(&self, state: AppState) {
        let mut current = self.current.lock().await;
        let settings = match settings::load(&self.home) {
            Ok(Some(settings)) => settings,
            Ok(None) => return,
            Err(err) => {
                tracing::warn!("web API off: {err}");
                current.error = Some(err.to_string());
                return;
            }
        };
        if let Err(err) = open(&mut current, state, &settings).await {
            tracing::warn!("web API not served: {err}");
            current.error = Some(err.to_string());
        }
        current.settings = Some(settings);
    }

    /// Serves `settings` instead of what was served, and saves them. On
    /// failure the previous setting is served again and kept.
    pub async fn set(&self, state: AppState, settings: WebSettings) -> Result<WebStatus, Error> {
        settings.check().map_err(Error::Web)?;
        let mut current = self.current.lock().await;
        close(&mut current).await;
        match open(&mut current, state.clone(), &settings).await {
            Ok(()) => {
                if let Err(err) = settings::save(&self.home, &settings) {
                    close(&mut current).await;
                    current.error = Some(err.to_string());
                    return Err(err.into());
                }
                current.settings = Some(settings);
                current.error = None;
                Ok(status(&current))
            }
            Err(err) => {
                if let Some(previous) = current.settings.clone() {
                    if let Err(again) = open(&mut current, state, &previous).await {
                        current.error = Some(again.to_string());
                    }
                }
                Err(err)
            }
        }
    }

    /// Stops serving and forgets the setting.
    pub async fn unset(&self) -> Result<WebStatus, Error> {
        let mut current = self.current.lock().await;
        close(&mut current).await;
        settings::remove(&self.home)?;
        current.settings = None;
        current.error = None;
        Ok(status(&current))
    }

    /// What is served now.
    pub async fn status(&self) -> WebStatus {
        status(&*self.current.lock().await)
    }

    /// Stops serving, keeping the setting (the daemon is exiting).
    pub async fn shutdown(&self) {
        close(&mut *self.current.lock().await).await;
    }
}

fn status(current: &Current) -> WebStatus {
    WebStatus {
        settings: current.settings.clone(),
        listening: current.listening.clone(),
        error: current.error.clone(),
    }
}

async fn close(current: &mut Current) {
    drop(current.stop.take());
    for closed in current.closed.drain(..) {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, closed).await;
    }
    current.listening.clear();
}

/// Binds every address of `settings` and serves the TCP router on them.
async fn open(current: &mut Current, state: AppState, settings: &WebSettings) -> Result<(), Error> {
    let key = settings::read_key(&settings.key_file)?;
    let mut listeners = vec![bind(settings.addr()).await?];
    if settings.host == IpAddr::V4(Ipv4Addr::LOCALHOST) && settings.port != 0 {
        let v6 = SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), settings.port);
        match bind(v6).await {
            Ok(listener) => listeners.push(listener),
            Err(err) => tracing::info!("web API on 127.0.0.1 only: {err}"),
        }
    }
    let guard = Arc::new(auth::Guard::new(key, settings.open_reads()));
    let (stop, stopped) = watch::channel(());
    let router = crate::api::tcp_router(state, guard, Opened(stopped.clone()));
    for listener in listeners {
        let addr = listener
            .local_addr()
            .map_err(|err| Error::Web(format!("cannot inspect the listener: {err}")))?;
        let (closed_tx, closed_rx) = oneshot::channel();
        let listener = Closing {
            inner: listener,
            _closed: closed_tx,
        };
        let mut stopped = stopped.clone();
        let serve = axum::serve(listener, router.clone()).with_graceful_shutdown(async move {
            let _ = stopped.changed().await;
        });
        tokio::spawn(async move {
            if let Err(err) = serve.await {
                tracing::warn!("web API on {addr}: {err}");
            }
        });
        current.listening.push(addr);
        current.closed.push(closed_rx);
        tracing::info!("web API listening on http://{addr}");
    }
    current.stop = Some(stop);
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|err| {
        if err.kind() == std::io::ErrorKind::AddrInUse {
            Error::PortInUse {
                port: addr.port(),
                holder: format!("another program on {}", addr.ip()),
            }
        } else {
            Error::Web(format!("cannot listen on {addr}: {err}"))
        }
    })
}

/// Given to the requests of one setting: changes when the door closes or
/// serves another setting, so that open WebSockets (which the server no
/// longer tracks once upgraded) end with it.
#[derive(Debug, Clone)]
pub struct Opened(pub watch::Receiver<()>);

impl Opened {
    /// Resolves once the door that took the request is closed.
    pub async fn closed(&mut self) {
        let _ = self.0.changed().await;
    }
}

/// A listener that says when it is closed (dropped by the server once a stop
/// is signalled), so that the next setting can bind the same port.
struct Closing {
    inner: TcpListener,
    _closed: oneshot::Sender<()>,
}

impl axum::serve::Listener for Closing {
    type Io = TcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let (stream, addr) = axum::serve::Listener::accept(&mut self.inner).await;
        let _ = stream.set_nodelay(true);
        (stream, addr)
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.inner.local_addr()
    }
}
