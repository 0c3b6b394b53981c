//! Health checks and readiness.
//!
//! Each running instance with an enabled `health_check` gets one task that
//! checks it: often (every 250 ms) until the first pass, which makes the
//! instance ready, then every `interval`. `retries` consecutive failures
//! restart the instance, with the reason in its history. Failures before the
//! first pass count only once `listen_timeout` (default 30 s) has passed, so
//! that a slow start is not mistaken for a broken app. An app with
//! `wait_ready` is ready when it sends `READY=1` to the datagram socket named
//! in `NOTIFY_SOCKET` (sd_notify).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use std::sync::{Arc, Weak};
use std::time::Duration;

use http_body_util::Empty;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use pmdaemon_core::api::{ExitReason, Health};
use pmdaemon_core::config::{CheckType, HealthCheck};
use tokio::net::{TcpStream, UnixDatagram};
use tokio::task::JoinHandle;
use tokio::time::{sleep, timeout, Instant};

use crate::reaper::Reaper;

/// What checks and readiness watchers report, and ask for. The supervisor
/// implements it; this module does not know the supervisor.
pub(crate) trait Reporter: Send + Sync + 'static {
    /// A check's verdict on process `pid` of instance `id` (ignored when
    /// `pid` no longer runs as `id`); `ready` when the pass makes it ready.
    fn set_health(&self, id: u32, pid: u32, health: Health, error: Option<String>, ready: bool);
    /// Process `pid` of instance `id` is ready.
    fn set_ready(&self, id: u32, pid: u32);
    /// Restarts instance `id` because of `reason`, in the background (the
    /// restart ends the check that asks for it).
    fn request_restart(self: Arc<Self>, id: u32, reason: String);
    /// Reaps the scripts of script checks.
    fn reaper(&self) -> &Reaper;
    /// Spawns the scripts of script checks (none: the daemon forks).
    fn spawner(&self) -> &std::sync::Mutex<Option<crate::spawn::spawner::Spawner>>;
}

/// How often an instance is checked until its first pass.
const STARTUP_POLL: Duration = Duration::from_millis(250);
/// How long an instance may take to become ready, unless `listen_timeout`.
pub const DEFAULT_LISTEN_TIMEOUT: Duration = Duration::from_secs(30);

/// What a check needs to know about the instance it checks.
#[derive(Debug, Clone)]
pub(crate) struct Subject {
    pub id: u32,
    pub pid: u32,
    pub port: Option<u16>,
    pub env: BTreeMap<String, String>,
    pub cwd: PathBuf,
    /// Whether a pass makes the instance ready (not when it uses sd_notify).
    pub sets_ready: bool,
    pub listen_timeout: Duration,
}

/// Starts checking `subject`.
pub(crate) fn spawn<R: Reporter>(
    supervisor: &Arc<R>,
    check: HealthCheck,
    subject: Subject,
) -> JoinHandle<()> {
    tokio::spawn(run(Arc::downgrade(supervisor), check, subject))
}

async fn run<R: Reporter>(supervisor: Weak<R>, check: HealthCheck, subject: Subject) {
    let started = Instant::now();
    let interval = Duration::from_millis(check.interval.max(100));
    let allowed = Duration::from_millis(check.timeout.max(1));
    let mut passed_once = false;
    let mut failures = 0;
    loop {
        sleep(if passed_once { interval } else { STARTUP_POLL }).await;
        let Some(strong) = supervisor.upgrade() else {
            return;
        };
        let result = match timeout(allowed, check_once(&strong, &check, &subject)).await {
            Ok(result) => result,
            Err(_) => Err(format!("no answer within {} ms", check.timeout)),
        };
        match result {
            Ok(()) => {
                failures = 0;
                passed_once = true;
                strong.set_health(
                    subject.id,
                    subject.pid,
                    Health::Healthy,
                    None,
                    subject.sets_ready,
                );
            }
            Err(error) => {
                strong.set_health(
                    subject.id,
                    subject.pid,
                    Health::Unhealthy,
                    Some(error.clone()),
                    false,
                );
                if !passed_once && started.elapsed() < subject.listen_timeout {
                    continue;
                }
                failures += 1;
                if failures >= check.retries.max(1) {
                    let reason = format!("health check failed {failures} times in a row: {error}");
                    let id = subject.id;
                    strong.request_restart(id, reason);
                    return;
                }
            }
        }
    }
}

async fn check_once<R: Reporter>(
    supervisor: &Arc<R>,
    check: &HealthCheck,
    subject: &Subject,
) -> Result<(), String> {
    let port = subject.port.map(|p| p.to_string()).unwrap_or_default();
    match check.check_type {
        CheckType::Http => {
            let url = check
                .url
                .as_deref()
                .ok_or("no url to check")?
                .replace("{PORT}", &port);
            http_get(&url).await
        }
        CheckType::Tcp => {
            let address = match check.url.as_deref() {
                Some(url) => {
                    let url = url.replace("{PORT}", &port);
                    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad url {url}: {e}"))?;
                    format!(
                        "{}:{}",
                        uri.host().unwrap_or("127.0.0.1"),
                        uri.port_u16().or(subject.port).unwrap_or(80)
                    )
                }
                None => format!(
                    "127.0.0.1:{}",
                    subject.port.ok_or("a tcp check needs a port or a url")?
                ),
            };
            TcpStream::connect(&address)
                .await
                .map(drop)
                .map_err(|e| format!("cannot connect to {address}: {e}"))
        }
        CheckType::Script => {
            let script = check.script.as_deref().ok_or("no script to run")?;
            run_script(supervisor, script, subject).await
        }
    }
}

async fn http_get(url: &str) -> Result<(), String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("bad url {url}: {e}"))?;
    if uri.scheme_str().is_some_and(|s| s != "http") {
        return Err(format!("only http:// urls can be checked, not {url}"));
    }
    let host = uri
        .host()
        .ok_or_else(|| format!("no host in {url}"))?
        .to_string();
    let port = uri.port_u16().unwrap_or(80);
    let stream = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    tokio::spawn(connection);
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_string();
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .header(hyper::header::USER_AGENT, "pmdaemon-health-check")
        .body(Empty::<Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("{url} answered {status}"))
    }
}

async fn run_script<R: Reporter>(
    supervisor: &Arc<R>,
    script: &str,
    subject: &Subject,
) -> Result<(), String> {
    let mut env = subject.env.clone();
    // It carries the instance's marks: this says it is the daemon's own
    // check, not a process that escaped the instance's group.
    env.insert(crate::spawn::CHECK_MARK.into(), "1".into());
    let plan = crate::spawn::Plan {
        program: PathBuf::from("/bin/sh"),
        args: vec!["-c".into(), script.into()],
        cwd: subject.cwd.clone(),
        env,
        listen_socket: None,
        private_port: None,
        user: None,
        discard_stdout: true,
        discard_stderr: true,
        ipc_channel: None,
    };
    let child = crate::spawn::spawn(supervisor.reaper(), supervisor.spawner(), &plan)
        .map_err(|e| format!("cannot run the check script: {e}"))?;
    let exit = child.exit;
    // If the check times out, this future is dropped: kill the script.
    struct Kill(u32);
    impl Drop for Kill {
        fn drop(&mut self) {
            crate::spawn::signal_group(self.0, nix::sys::signal::Signal::SIGKILL);
        }
    }
    let _guard = Kill(child.pid);
    match exit.await {
        Ok(ExitReason::Code(0)) => Ok(()),
        Ok(reason) => Err(format!("the check script ended with {reason}")),
        Err(_) => Err("the check script vanished".to_string()),
    }
}

/// Binds the sd_notify socket of an instance before it starts.
pub(crate) fn notify_socket(
    dir: &Path,
    instance: &str,
) -> std::io::Result<(PathBuf, UnixDatagram)> {
    std::fs::create_dir_all(dir)?;
    let path = dir.join(format!("{instance}.sock"));
    let _ = std::fs::remove_file(&path);
    let socket = UnixDatagram::bind(&path)?;
    Ok((path, socket))
}

/// Marks the instance ready when it sends `READY=1`.
pub(crate) fn listen_for_ready(
    supervisor: &Arc<impl Reporter>,
    socket: UnixDatagram,
    id: u32,
    pid: u32,
) -> JoinHandle<()> {
    let supervisor = Arc::downgrade(supervisor);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 4096];
        while let Ok(length) = socket.recv(&mut buffer).await {
            let message = String::from_utf8_lossy(&buffer[..length]);
            if message.lines().any(|line| line.trim() == "READY=1") {
                let Some(supervisor) = supervisor.upgrade() else {
                    return;
                };
                supervisor.set_ready(id, pid);
            }
        }
    })
}

/// How a process without a health check or sd_notify proves that it
/// serves.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Serving {
    pub id: u32,
    pub pid: u32,
    /// Proxy mode: it serves once its private port accepts connections.
    pub private_port: Option<u16>,
    /// Otherwise (socket mode, whose socket always accepts, or an app of its
    /// own): it serves once it has stayed up this long.
    pub settle: Duration,
    /// How long it may take.
    pub listen_timeout: Duration,
}

/// Marks a process ready once it serves (see [`Serving`]); a
/// proxy-mode process that never listens on its `PORT` gets an error that
/// `list`, `info` and a failing reload show.
pub(crate) fn await_serving<R: Reporter>(supervisor: &Arc<R>, serving: Serving) -> JoinHandle<()> {
    let supervisor = Arc::downgrade(supervisor);
    tokio::spawn(async move {
        let Serving {
            id,
            pid,
            private_port,
            settle,
            listen_timeout,
        } = serving;
        let Some(port) = private_port else {
            sleep(settle).await;
            if let Some(supervisor) = supervisor.upgrade() {
                supervisor.set_ready(id, pid);
            }
            return;
        };
        let started = Instant::now();
        let mut reported = false;
        loop {
            let connected = timeout(
                Duration::from_millis(500),
                TcpStream::connect((std::net::Ipv4Addr::LOCALHOST, port)),
            )
            .await;
            let Some(supervisor) = supervisor.upgrade() else {
                return;
            };
            if matches!(connected, Ok(Ok(_))) {
                supervisor.set_ready(id, pid);
                return;
            }
            let late = started.elapsed() >= listen_timeout;
            if late && !reported {
                let error = format!(
                    "not listening on its PORT {port} after {} ms (in proxy mode the app must listen on PORT)",
                    listen_timeout.as_millis()
                );
                supervisor.set_health(id, pid, Health::Unknown, Some(error), false);
                reported = true;
            }
            drop(supervisor);
            // Nothing announces that a port starts listening: a short tick
            // until the first success, a slow one once it is late.
            sleep(Duration::from_millis(if late { 1000 } else { 25 })).await;
        }
    })
}
