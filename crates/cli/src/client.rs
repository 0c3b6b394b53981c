//! The CLI's side of the control socket: HTTP/JSON over
//! `$PMDAEMON_HOME/pmdaemon.sock`, and starting the daemon on demand.

use std::fs::{self, OpenOptions};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use pmdaemon_core::api::endpoints::{self, Endpoint};
use pmdaemon_core::api::{ErrorBody, MAX_SOCKET_BODY, VERSION_HEADER};
use pmdaemon_core::home::Home;
use pmdaemon_core::trust;
use pmdaemon_core::VERSION;
use serde::de::DeserializeOwned;

use crate::transport::{self, DaemonStream};

/// How long a freshly spawned daemon may take to accept requests (it first
/// cleans up after a crashed predecessor, which may take a kill_timeout).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A connection target: the daemon of one home.
#[derive(Debug, Clone)]
pub struct Client {
    home: Home,
}

impl Client {
    /// A client for `home`, starting its daemon if none is running. A home
    /// or a socket that is not safely ours is refused.
    pub async fn connect(home: Home) -> Result<Self> {
        trust::check_home(home.root())?;
        let client = Self { home };
        match client.connection().await {
            Ok(_) => {}
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => bail!(err),
            Err(_) => client.start_daemon().await?,
        }
        Ok(client)
    }

    /// A client for `home` only if its daemon is running (and trusted).
    pub async fn existing(home: Home) -> Option<Self> {
        trust::check_home(home.root()).ok()?;
        let client = Self { home };
        client.connection().await.ok().map(|_| client)
    }

    async fn connection(&self) -> std::io::Result<DaemonStream> {
        transport::connect(&self.home.socket()).await
    }

    /// Calls endpoint `E` for `target` (ignored when its route names none)
    /// and reads its reply.
    pub async fn call<E: Endpoint>(&self, target: &str, request: &E::Request) -> Result<E::Reply> {
        let (method, path, body) = prepare::<E>(target, request)?;
        let (status, bytes) = self.raw(method, &path, body).await?;
        decode(status, &bytes)
    }

    /// As [`call`](Self::call), with `None` when the daemon knows no such
    /// target.
    pub async fn find<E: Endpoint>(
        &self,
        target: &str,
        request: &E::Request,
    ) -> Result<Option<E::Reply>> {
        let (method, path, body) = prepare::<E>(target, request)?;
        let (status, bytes) = self.raw(method, &path, body).await?;
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        decode(status, &bytes).map(Some)
    }

    /// Calls endpoint `E` whose answer is a stream of lines (logs with
    /// `follow`, a reload with `progress`); `each` gets every line as it
    /// arrives, until the daemon ends the stream.
    pub async fn stream<E: Endpoint>(
        &self,
        target: &str,
        request: &E::Request,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let (method, path, body) = prepare::<E>(target, request)?;
        let response = self.request(method, &path, body).await?;
        let status = response.status();
        let mut body = response.into_body();
        if !status.is_success() {
            let bytes = body
                .collect()
                .await
                .context("the daemon's answer was cut short")?
                .to_bytes();
            return decode::<serde_json::Value>(status, &bytes).map(drop);
        }
        let mut pending: Vec<u8> = Vec::new();
        while let Some(frame) = body.frame().await {
            let frame = frame.context("the daemon's stream broke off")?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            pending.extend_from_slice(&data);
            while let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                each(&line[..line.len() - 1])?;
            }
        }
        Ok(())
    }

    /// Sends one request. A daemon that dies while it is asked (killed at
    /// that moment: its socket still took the connection) is replaced by a
    /// new one, which recovers the apps, and the request is sent again.
    async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        if let Some(body) = body.as_ref().filter(|b| b.len() > MAX_SOCKET_BODY) {
            bail!(
                "the request is {} bytes, more than the daemon accepts ({MAX_SOCKET_BODY} bytes, 16 MiB); start fewer apps at once or give them smaller environments",
                body.len()
            );
        }
        let body = Bytes::from(body.unwrap_or_default());
        // A daemon killed a moment ago may still hold its listening socket
        // for a few milliseconds (its threads are still exiting): it accepts
        // a connection and then drops it unread (a reset). It never saw the
        // request, so it is sent again, to a new daemon if need be.
        let mut attempts = 0;
        loop {
            attempts += 1;
            match self.send_once(method.clone(), path, body.clone()).await {
                Err(err) if attempts < 3 && never_read(&err) => {
                    // Let a dying daemon finish exiting, so that the next
                    // attempt does not reach it again. A live daemon that
                    // stopped reading (it answered early, as it does to a
                    // CLI of another version) is not asked again: its
                    // answer or the error is the outcome.
                    let died = self.daemon_died().await;
                    if !died && broken_pipe(&err) {
                        return Err(err);
                    }
                    if self.connection().await.is_err() {
                        self.start_daemon().await?;
                    }
                }
                other => return other,
            }
        }
    }

    /// Whether the daemon of the pid file is gone (or is going: it is given
    /// a second to finish exiting).
    async fn daemon_died(&self) -> bool {
        let Some(pid) = fs::read_to_string(self.home.pid_file())
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok())
        else {
            return true;
        };
        let deadline = Instant::now() + Duration::from_secs(1);
        loop {
            match pmdaemon_core::procinfo::stat(pid) {
                None => return true,
                Some(stat) if stat.zombie => return true,
                Some(_) if Instant::now() >= deadline => return false,
                // A killed process takes a moment to exit; nothing announces
                // it to a process that is not its parent.
                Some(_) => tokio::time::sleep(Duration::from_millis(10)).await,
            }
        }
    }

    async fn send_once(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<hyper::Response<hyper::body::Incoming>> {
        let socket = self.home.socket();
        let stream = self.connection().await.with_context(|| {
            format!(
                "cannot reach the daemon at {} (is it running?)",
                socket.display()
            )
        })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .context("the daemon did not answer")?;
        tokio::spawn(connection);
        let request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, "pmdaemon")
            .header(VERSION_HEADER, VERSION)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body))
            .context("could not build the request")?;
        sender
            .send_request(request)
            .await
            .context("the daemon closed the connection before answering")
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        body: Option<Vec<u8>>,
    ) -> Result<(StatusCode, Bytes)> {
        let response = self.request(method, path, body).await?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .context("the daemon's answer was cut short")?
            .to_bytes();
        Ok((status, bytes))
    }

    /// Spawns the daemon detached and waits until it says it is ready.
    async fn start_daemon(&self) -> Result<()> {
        let (_daemon, said_ready) = spawn_daemon(&self.home, false).await?;
        let log_path = self.home.daemon_log();
        if said_ready {
            return Ok(());
        }
        // Another command may have started a daemon at the same moment and
        // won the lock: then ours exited and theirs is about to listen.
        let deadline = Instant::now() + START_TIMEOUT;
        while Instant::now() < deadline {
            if self.connection().await.is_ok() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let tail = fs::read_to_string(&log_path).unwrap_or_default();
        let last = tail.lines().last().unwrap_or("").trim();
        bail!(
            "the daemon did not start (see {}): {last}",
            log_path.display()
        )
    }
}

/// Starts `pmdaemon daemon` for `home` and waits until it says it is
/// ready (false: it ended first, or START_TIMEOUT passed). Detached, it
/// gets its own session and writes its log to daemon.log; in the
/// foreground (`run`) it stays in our process group, logs to our stderr,
/// and starts with an empty process table.
pub async fn spawn_daemon(home: &Home, foreground: bool) -> Result<(Child, bool)> {
    let root = home.root();
    trust::check_home(root)?;
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(root)
        .with_context(|| format!("cannot create {}", root.display()))?;
    let exe = std::env::current_exe().context("cannot find the pmdaemon executable")?;
    let mut command = Command::new(exe);
    command
        .arg("daemon")
        .env("PMDAEMON_HOME", root)
        // Readiness is announced only by a daemon a unit runs itself: one
        // started on demand from inside some service must not speak for it.
        .env_remove("NOTIFY_SOCKET")
        // Started from inside an app (a deploy hook), the daemon must not
        // carry that app's marks: it would count itself among the leftovers.
        .env_remove("PMDAEMON_INSTANCE_NAME")
        .env_remove("PMDAEMON_APP_NAME")
        // It must not pin our directory (a mount, a deleted checkout).
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::piped());
    // SAFETY: close_range is async-signal-safe. Whatever we hold open (a
    // pipe a script waits on) must not stay open for the daemon's life.
    unsafe {
        command.pre_exec(|| {
            pmdaemon_core::files::close_descriptors_from(3, true);
            Ok(())
        });
    }
    if foreground {
        command.arg("--fresh").stderr(Stdio::inherit());
    } else {
        let log_path = home.daemon_log();
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)
            .with_context(|| format!("cannot open {}", log_path.display()))?;
        command.stderr(log);
        // SAFETY: setsid is async-signal-safe and touches no memory of ours.
        unsafe {
            command.pre_exec(|| {
                nix::unistd::setsid()
                    .map(drop)
                    .map_err(std::io::Error::from)
            });
        }
    }
    let mut child = command.spawn().context("cannot start the daemon")?;
    let stdout = child.stdout.take().context("the daemon has no stdout")?;
    let said_ready = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .any(|line| {
                // What the user must know (a corrupt table was moved aside,
                // leftovers were stopped) is said here, not only in daemon.log.
                if let Some(notice) = line.strip_prefix("pmdaemon daemon warning: ") {
                    eprintln!("[pmdaemon] warning: {notice}");
                }
                line.starts_with("pmdaemon daemon ready")
            })
    });
    let said_ready = tokio::time::timeout(START_TIMEOUT, said_ready)
        .await
        .ok()
        .and_then(Result::ok)
        .unwrap_or(false);
    Ok((child, said_ready))
}

/// Whether `err` shows that the daemon dropped the connection without
/// reading the request (a reset, a pipe broken while the request was still
/// being written, or no daemon behind the socket any more). A broken pipe
/// proves the daemon never read the request whole, and so never acted on
/// it: every handler that changes anything takes its whole body (`Json`)
/// before it acts, and a request without a body is one write.
fn never_read(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause.downcast_ref::<std::io::Error>().is_some_and(|io| {
            matches!(
                io.kind(),
                std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionRefused
                    // The request could not even be written whole.
                    | std::io::ErrorKind::BrokenPipe
            )
        })
    })
}

/// Whether `err` is a pipe broken while the request was written.
fn broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// The method, path and body of a call of `E`: the target must be a name
/// (names are restricted to URL-safe characters, so anything else cannot
/// name a process); a `GET`'s request goes in the query string.
fn prepare<E: Endpoint>(
    target: &str,
    request: &E::Request,
) -> Result<(Method, String, Option<Vec<u8>>)> {
    if E::takes_target() {
        let safe = !target.is_empty() && target.chars().all(pmdaemon_core::config::is_name_char);
        if !safe {
            bail!("no process or app named '{target}' (see `pmdaemon list`)");
        }
    }
    let mut path = endpoints::path::<E>(target);
    let (method, body) = match E::METHOD {
        endpoints::Method::Get => {
            let query =
                serde_urlencoded::to_string(request).context("could not encode the request")?;
            if !query.is_empty() {
                path = format!("{path}?{query}");
            }
            (Method::GET, None)
        }
        endpoints::Method::Post => {
            let body = serde_json::to_vec(request).context("could not encode the request")?;
            (Method::POST, Some(body))
        }
        endpoints::Method::Delete => (Method::DELETE, None),
    };
    Ok((method, path, body))
}

fn decode<T: DeserializeOwned>(status: StatusCode, body: &[u8]) -> Result<T> {
    if status.is_success() {
        return serde_json::from_slice(body)
            .map_err(|err| anyhow!("the daemon's answer could not be read ({err}); is it the same pmdaemon version? try `pmdaemon kill`"));
    }
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(error) => Err(anyhow!(error.error)),
        Err(_) => Err(anyhow!(
            "the daemon answered {status}: {}",
            String::from_utf8_lossy(body).trim()
        )),
    }
}
