//! The fixture every integration test uses: a temporary `PMDAEMON_HOME`, the
//! real `pmdaemon` binary, and cleanup that leaves no process behind even
//! when the test fails half-way.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod web;
pub mod webdriver;

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant};

use pmdaemon_core::api::{ProcessDetail, ProcessInfo, Status};
use tempfile::TempDir;

/// Generous: CI machines are shared and slow.
pub const DEADLINE: Duration = Duration::from_secs(15);

/// One daemon home for one test.
pub struct Fixture {
    home: TempDir,
    /// A scratch directory for scripts and files the children write.
    pub work: TempDir,
}

impl Fixture {
    pub fn new() -> Self {
        Self {
            home: tempfile::Builder::new()
                .prefix("pmd-home-")
                .tempdir()
                .unwrap(),
            work: tempfile::Builder::new()
                .prefix("pmd-work-")
                .tempdir()
                .unwrap(),
        }
    }

    pub fn home(&self) -> &Path {
        self.home.path()
    }

    pub fn work(&self) -> &Path {
        self.work.path()
    }

    /// A `pmdaemon` command for this home, run in the work directory.
    pub fn command(&self) -> assert_cmd::Command {
        let mut command = assert_cmd::Command::cargo_bin("pmdaemon").unwrap();
        command
            .env("PMDAEMON_HOME", self.home.path())
            .env_remove("RUST_LOG")
            .current_dir(self.work.path())
            .timeout(Duration::from_secs(60));
        command
    }

    /// A plain `pmdaemon` process for this home (for children a test runs
    /// concurrently or reads while they run).
    pub fn process(&self) -> std::process::Command {
        let mut command = std::process::Command::new(assert_cmd::cargo::cargo_bin("pmdaemon"));
        command
            .env("PMDAEMON_HOME", self.home.path())
            .env_remove("RUST_LOG")
            .current_dir(self.work.path());
        command
    }

    /// Runs pmdaemon with `args` and returns its output, whatever the outcome.
    pub fn output(&self, args: &[&str]) -> Output {
        self.command().args(args).output().unwrap()
    }

    /// Runs pmdaemon with `args`, which must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let output = self.output(args);
        assert!(
            output.status.success(),
            "pmdaemon {args:?} failed: {}{}\n--- daemon.log ends with:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.daemon_log_tail()
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// The last lines of daemon.log, for failure messages.
    pub fn daemon_log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.home().join("daemon.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(15)..].join("\n")
    }

    /// Runs pmdaemon with `args`, which must fail with exit code 1; returns
    /// stderr.
    pub fn fails(&self, args: &[&str]) -> String {
        let output = self.output(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "pmdaemon {args:?} should fail: {}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stderr).unwrap()
    }

    pub fn list(&self) -> Vec<ProcessInfo> {
        serde_json::from_str(&self.ok(&["list", "--json"])).unwrap()
    }

    pub fn get(&self, name: &str) -> ProcessInfo {
        self.list()
            .into_iter()
            .find(|p| p.name == name)
            .unwrap_or_else(|| panic!("{name} is not in the list"))
    }

    /// The instance names `list` shows, in order.
    pub fn names(&self) -> Vec<String> {
        self.list().into_iter().map(|p| p.name).collect()
    }

    /// Writes `json` (an app or `{"apps": [...]}`) to `eco.json` in the
    /// work directory and starts it; the output of `start`.
    pub fn start_json(&self, json: &str) -> String {
        std::fs::write(self.work().join("eco.json"), json).unwrap();
        self.ok(&["start", "eco.json"])
    }

    pub fn info(&self, target: &str) -> Vec<ProcessDetail> {
        serde_json::from_str(&self.ok(&["info", target, "--json"])).unwrap()
    }

    /// Polls `list` until `check` holds for instance `name`.
    pub fn wait_for(
        &self,
        name: &str,
        what: &str,
        check: impl Fn(&ProcessInfo) -> bool,
    ) -> ProcessInfo {
        let mut last = None;
        let found = wait_until(DEADLINE, || {
            let info = self.list().into_iter().find(|p| p.name == name);
            let done = info.as_ref().is_some_and(&check);
            last = info;
            done
        });
        assert!(found, "{name} never became {what}; last seen: {last:?}");
        last.unwrap()
    }

    pub fn wait_status(&self, name: &str, status: Status) -> ProcessInfo {
        self.wait_for(name, &status.to_string(), |p| p.status == status)
    }

    /// Writes an executable script into the work directory.
    pub fn script(&self, name: &str, body: &str) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.work().join(name);
        std::fs::write(&path, body).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    /// The daemon's pid, if one is running. The pid file alone is not
    /// trusted (a SIGKILLed daemon leaves it; a daemon in another PID
    /// namespace wrote its own numbering): the process must be of this home.
    pub fn daemon_pid(&self) -> Option<u32> {
        let pid: u32 = std::fs::read_to_string(self.home().join("daemon.pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        self.is_ours(pid).then_some(pid)
    }

    /// Whether `pid` is alive and was started for this home (its
    /// environment carries the home's path).
    fn is_ours(&self, pid: u32) -> bool {
        let mark = format!("PMDAEMON_HOME={}", self.home().display());
        alive(pid)
            && std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|e| e == mark.as_bytes()))
    }

    /// Every live process started for this home but the daemon and, while
    /// the daemon lives, its spawner (which dies with it).
    pub fn processes(&self) -> Vec<u32> {
        let daemon = self.daemon_pid();
        let spawner = self.spawner_pid();
        std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| self.is_ours(*pid) && Some(*pid) != daemon && Some(*pid) != spawner)
            .collect()
    }

    /// `pmdaemon start <file> --json`, run from a shell that first lowers
    /// its open-file limits to `soft` and `hard` (which the daemon it
    /// starts inherits); fails the test if the start fails.
    pub fn start_under_open_file_limits(&self, file: &str, soft: u64, hard: u64) {
        let output = std::process::Command::new("sh")
            .args([
                "-c",
                "ulimit -Sn \"$SOFT\" && ulimit -Hn \"$HARD\" && exec \"$PMDAEMON_BIN\" start \"$FILE\" --json",
            ])
            .env("SOFT", soft.to_string())
            .env("HARD", hard.to_string())
            .env("FILE", file)
            .env("PMDAEMON_BIN", assert_cmd::cargo::cargo_bin("pmdaemon"))
            .env("PMDAEMON_HOME", self.home())
            .current_dir(self.work())
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.daemon_log_tail()
        );
    }

    /// The daemon's spawner.
    pub fn spawner_pid(&self) -> Option<u32> {
        pmdaemon_core::procinfo::spawner_of(self.daemon_pid()?)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = self
            .command()
            .arg("kill")
            .timeout(Duration::from_secs(20))
            .output();
        // Whatever survived (a test that killed the daemon, a failed kill):
        // SIGKILL it, daemon first so that it restarts nothing.
        if let Some(pid) = self.daemon_pid() {
            kill(pid, libc::SIGKILL);
        }
        for pid in self.processes() {
            kill(pid, libc::SIGKILL);
        }
    }
}

/// Polls the text of `path` until `check` holds for it (a missing file is
/// not yet); returns it, or fails showing what the file last held.
pub fn wait_file(path: &Path, check: impl Fn(&str) -> bool) -> String {
    let mut last = None;
    let found = wait_until(DEADLINE, || {
        last = std::fs::read_to_string(path).ok();
        last.as_deref().is_some_and(&check)
    });
    assert!(
        found,
        "{} never got there; it holds {last:?}",
        path.display()
    );
    last.unwrap_or_default()
}

/// Polls `check` until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The open descriptors of `pid`, in order.
pub fn descriptors(pid: u32) -> Vec<u32> {
    let mut fds: Vec<u32> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    fds.sort_unstable();
    fds
}

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

pub fn kill(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory-safety requirements.
    unsafe {
        libc::kill(pid as i32, signal);
    }
}

/// Reads a pid a child wrote into a file, waiting for the file to appear.
pub fn read_pid(path: &Path) -> u32 {
    let mut pid = None;
    assert!(
        wait_until(DEADLINE, || {
            pid = std::fs::read_to_string(path)
                .ok()
                .and_then(|s| s.trim().parse().ok());
            pid.is_some()
        }),
        "{} never appeared",
        path.display()
    );
    pid.unwrap()
}

/// The first of `n` consecutive ports on which nothing listens now. Each
/// call looks somewhere else, so tests running in parallel rarely collide
/// (and a collision makes a start fail loudly, never pass wrongly). Below
/// Linux's ephemeral range (32768-60999), so that no outgoing connection
/// takes one meanwhile.
pub fn free_ports(n: u16) -> u16 {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let seed = (std::process::id() % 1000) as u16 * 29;
    for _ in 0..500 {
        let step = NEXT.fetch_add(1, Ordering::SeqCst);
        let base = 20_000 + (seed.wrapping_add(step.wrapping_mul(131)) % 12_000);
        if (base..base + n).all(|port| {
            std::net::TcpListener::bind(("0.0.0.0", port)).is_ok()
                && std::net::TcpListener::bind(("::", port)).is_ok()
        }) {
            return base;
        }
    }
    panic!("no {n} consecutive free ports found");
}

/// GET `/` on 127.0.0.1:`port`; the body, if the server answered 200.
pub fn http_get(port: u16) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET / HTTP/1.0\r\nHost: localhost\r\n\r\n").ok()?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer).ok()?;
    let (head, body) = answer.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?;
    (status == "200").then(|| body.to_string())
}

/// The demo server of `examples/`, which answers with its instance id.
pub fn hello_server() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/hello.py")
}

/// Sends `method path` (with `headers`, each ending in CRLF, and `body`)
/// to the daemon's API over its socket, as a client other than the CLI
/// would; the whole answer, head and body.
pub fn raw_request(fx: &Fixture, method: &str, path: &str, headers: &str, body: &str) -> String {
    use std::io::{Read, Write};
    let mut stream =
        std::os::unix::net::UnixStream::connect(fx.home().join("pmdaemon.sock")).unwrap();
    stream.set_read_timeout(Some(DEADLINE)).unwrap();
    // A server that refuses a body (too large) may answer and close before
    // all of it is written: the answer is what counts, not the write.
    let _ = write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: pmdaemon\r\n{headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// GET `path` from the daemon's API over its socket; the body of a 200.
pub fn api_get(fx: &Fixture, path: &str) -> String {
    let answer = raw_request(fx, "GET", path, "", "");
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    body.to_string()
}

/// A child a test reads from while it runs: killed when the guard drops
/// (the test ended, passed or not) or when `limit` passes, so that a
/// stalled stream ends the read with a failure instead of a hang.
pub struct Guarded {
    pub child: std::process::Child,
    done: Option<std::sync::mpsc::Sender<()>>,
}

impl Guarded {
    pub fn new(child: std::process::Child, limit: Duration) -> Self {
        let (done, stop) = std::sync::mpsc::channel::<()>();
        let pid = child.id();
        std::thread::spawn(move || {
            if let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stop.recv_timeout(limit) {
                kill(pid, libc::SIGKILL);
            }
        });
        Self {
            child,
            done: Some(done),
        }
    }

    /// Waits for the child, then releases the watchdog.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let status = self.child.wait().unwrap();
        drop(self.done.take());
        status
    }
}

impl Drop for Guarded {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        // The child is reaped; release the watchdog before its pid can be reused.
        drop(self.done.take());
    }
}

/// Whether `program` runs (`program args…` exits 0). Outside CI a missing
/// tool skips the test with a message; in CI (`CI=true`), where `.ci/run`
/// installs it, it fails the test.
pub fn need(program: &str, args: &[&str]) -> bool {
    let runs = std::process::Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success());
    if !runs {
        assert!(
            std::env::var("CI").map_or(true, |ci| ci != "true"),
            "{program} is missing: .ci/run installs it"
        );
        eprintln!("SKIPPED: {program} is not installed");
    }
    runs
}
