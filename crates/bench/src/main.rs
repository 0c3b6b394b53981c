//! Benchmarks of pmdaemon, run by hand (never in CI):
//!
//! ```sh
//! cargo build --release -p pmdaemon -p pmdaemon-bench
//! ./target/release/pmdaemon-bench [--pmdaemon PATH] [--rounds N] [--seconds S]
//!     [--only restart|list|sampler|logs|cluster|web|idle|apply|scale]
//! ```
//!
//! Each figure is reported with a baseline measured in the same run, since
//! the machine is shared and noisy: what the same work costs without
//! pmdaemon in the way.

mod cluster;
mod logs;
mod scale;
mod web;

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, Box<dyn std::error::Error>>;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("child") {
        return child();
    }
    if args.get(1).map(String::as_str) == Some("writer") {
        let rate = args.get(3).and_then(|r| r.parse().ok());
        return logs::writer(
            args.get(2).and_then(|b| b.parse().ok()).filter(|b| *b > 0),
            rate,
        );
    }
    if args.get(1).map(String::as_str) == Some("splicer") {
        return logs::splicer(Path::new(args.get(2).ok_or("splicer <file>")?));
    }
    let mut pmdaemon = std::env::current_exe()?.with_file_name("pmdaemon");
    let mut rounds = 50usize;
    let mut only: Option<String> = None;
    let mut seconds = 20u64;
    let mut iter = args.iter().skip(1);
    while let Some(arg) = iter.next() {
        match arg.as_str() {
            "--pmdaemon" => pmdaemon = PathBuf::from(iter.next().ok_or("--pmdaemon needs a path")?),
            "--rounds" => rounds = iter.next().ok_or("--rounds needs a number")?.parse()?,
            "--seconds" => seconds = iter.next().ok_or("--seconds needs a number")?.parse()?,
            "--only" => {
                only = Some(
                    iter.next()
                        .ok_or(
                            "--only needs restart|list|sampler|logs|cluster|web|idle|apply|scale",
                        )?
                        .clone(),
                )
            }
            other => return Err(format!("unknown argument {other}").into()),
        }
    }
    if !pmdaemon.exists() {
        return Err(format!(
            "{} not found: build it with cargo build --release -p pmdaemon",
            pmdaemon.display()
        )
        .into());
    }
    println!("pmdaemon: {}", pmdaemon.display());
    println!("rounds:   {rounds}\n");
    let run = |section: &str| only.as_deref().is_none_or(|o| o == section);
    if run("restart") {
        restart_latency(&pmdaemon, rounds)?;
    }
    if run("list") {
        list_latency_rss_and_start_rate(&pmdaemon, rounds)?;
    }
    if run("sampler") {
        sampler_cost(&pmdaemon)?;
    }
    if run("logs") {
        logs::log_throughput(&pmdaemon)?;
    }
    if run("cluster") {
        cluster::shared_port(&pmdaemon, seconds)?;
    }
    // Long, and they start thousands of processes: only when asked.
    let asked = |section: &str| only.as_deref() == Some(section);
    if asked("idle") {
        scale::idle(&pmdaemon, seconds)?;
    }
    if asked("apply") {
        scale::apply(&pmdaemon, rounds.min(5))?;
    }
    if asked("scale") {
        scale::scale(&pmdaemon, rounds, seconds)?;
    }
    if run("web") {
        // 40 GETs of each kind per round: 2000 by default, for the p99.
        web::web_api(&pmdaemon, rounds * 40, seconds)?;
    }
    Ok(())
}

/// The child used by the restart benchmark: reports its pid on the datagram
/// socket named in BENCH_SOCK, then waits to be killed.
fn child() -> Result<()> {
    let socket = UnixDatagram::unbound()?;
    let path = std::env::var("BENCH_SOCK")?;
    socket.send_to(std::process::id().to_string().as_bytes(), path)?;
    loop {
        std::thread::park();
    }
}

struct Home {
    dir: tempfile::TempDir,
    pmdaemon: PathBuf,
}

impl Home {
    fn new(pmdaemon: &Path) -> Result<Self> {
        Ok(Self {
            dir: tempfile::Builder::new().prefix("pmd-bench-").tempdir()?,
            pmdaemon: pmdaemon.to_path_buf(),
        })
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.pmdaemon);
        command
            .env("PMDAEMON_HOME", self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        command
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        let status = self.command().args(args).status()?;
        if !status.success() {
            return Err(format!("pmdaemon {args:?} failed").into());
        }
        Ok(())
    }

    fn daemon_pid(&self) -> Result<u32> {
        Ok(std::fs::read_to_string(self.dir.path().join("daemon.pid"))?
            .trim()
            .parse()?)
    }
}

impl Home {
    fn with_env(pmdaemon: &Path, key: &str, value: &str) -> Result<Self> {
        let home = Self::new(pmdaemon)?;
        // The daemon inherits the environment of the command that starts it.
        let status = home.command().env(key, value).arg("list").status()?;
        if !status.success() {
            return Err("could not start the daemon".into());
        }
        Ok(home)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = self.command().arg("kill").status();
    }
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ms(duration: Duration) -> String {
    format!("{:.3} ms", duration.as_secs_f64() * 1000.0)
}

fn recv_pid(socket: &UnixDatagram) -> Result<u32> {
    let mut buffer = [0u8; 32];
    let n = socket.recv(&mut buffer)?;
    Ok(std::str::from_utf8(&buffer[..n])?.parse()?)
}

/// SIGKILL of a child until its replacement runs (has reported its pid).
fn restart_latency(pmdaemon: &Path, rounds: usize) -> Result<()> {
    let home = Home::new(pmdaemon)?;
    let sock_path = home.dir.path().join("bench.sock");
    let socket = UnixDatagram::bind(&sock_path)?;
    socket.set_read_timeout(Some(Duration::from_secs(10)))?;
    let me = std::env::current_exe()?;

    // Baseline: the same child spawned directly, from fork to its report.
    let mut baseline = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let mut child = Command::new(&me)
            .arg("child")
            .env("BENCH_SOCK", &sock_path)
            .spawn()?;
        recv_pid(&socket)?;
        baseline.push(started.elapsed());
        child.kill()?;
        child.wait()?;
    }

    let mut start = home.command();
    start
        .env("BENCH_SOCK", &sock_path)
        .args([
            "start",
            &me.to_string_lossy(),
            "--name",
            "victim",
            "--min-uptime",
            "0",
        ])
        .args(["--", "child"]);
    if !start.status()?.success() {
        return Err("could not start the victim".into());
    }
    let mut pid = recv_pid(&socket)?;
    let mut samples = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        // SAFETY: kill(2) has no memory-safety requirements.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        pid = recv_pid(&socket)?;
        samples.push(started.elapsed());
    }
    let (m, b) = (median(&mut samples), median(&mut baseline));
    println!("SIGKILL of a child -> its replacement running");
    println!("  pmdaemon:                         median {}", ms(m));
    println!("  baseline (spawn the child directly): median {}", ms(b));
    println!(
        "  supervisor overhead:              {} ({:.2}x baseline)\n",
        ms(m.saturating_sub(b)),
        m.as_secs_f64() / b.as_secs_f64()
    );
    let _ = home.run(&["delete", "all"]);
    Ok(())
}

/// A memory figure of /proc/<pid>/status (`VmRSS`, `RssAnon`), in kB.
fn status_kb(pid: u32, field: &str) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .ok_or(format!("no {field}"))?;
    Ok(line
        .split_whitespace()
        .nth(1)
        .ok_or("bad status line")?
        .parse()?)
}

fn spawn_true(times: usize) -> Result<Duration> {
    let started = Instant::now();
    for _ in 0..times {
        Command::new("true").status()?;
    }
    Ok(started.elapsed())
}

/// 100 sequential starts, then `list` with 50 apps, then the daemon's RSS.
fn list_latency_rss_and_start_rate(pmdaemon: &Path, rounds: usize) -> Result<()> {
    let home = Home::new(pmdaemon)?;
    home.run(&["list"])?;
    let daemon = home.daemon_pid()?;
    let idle_rss = status_kb(daemon, "VmRSS:")?;

    let started = Instant::now();
    for i in 0..50 {
        home.run(&["start", "sleep 100000", "--name", &format!("app{i}")])?;
    }
    let mut hundred = started.elapsed();
    // 50 idle apps on a fresh daemon; let the sampler run once first.
    std::thread::sleep(Duration::from_millis(1500));
    let fresh_rss = status_kb(daemon, "VmRSS:")?;
    let fresh_anon = status_kb(daemon, "RssAnon:")?;
    let started = Instant::now();
    for i in 50..100 {
        home.run(&["start", "sleep 100000", "--name", &format!("app{i}")])?;
    }
    hundred += started.elapsed();
    let baseline = spawn_true(100)?;
    println!("100 `start` commands one after another");
    println!("  pmdaemon:                  {}", ms(hundred));
    println!("  baseline (100 x `true`):   {}\n", ms(baseline));
    // Down to 50 idle apps.
    for i in 50..100 {
        home.run(&["delete", &format!("app{i}")])?;
    }

    let mut samples = Vec::new();
    let mut baseline = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let output = home.command().arg("list").stdout(Stdio::piped()).output()?;
        samples.push(started.elapsed());
        if BufReader::new(&output.stdout[..]).lines().count() < 54 {
            return Err("list did not show 50 apps".into());
        }
        baseline.push(spawn_true(1)?);
    }
    let mut json_samples = Vec::new();
    for _ in 0..rounds {
        let started = Instant::now();
        let output = home
            .command()
            .args(["list", "--json"])
            .stdout(Stdio::piped())
            .output()?;
        json_samples.push(started.elapsed());
        let parsed: serde_json::Value = serde_json::from_slice(&output.stdout)?;
        if parsed.as_array().map(Vec::len) != Some(50) {
            return Err("list --json did not show 50 apps".into());
        }
    }
    let (m, j, b) = (
        median(&mut samples),
        median(&mut json_samples),
        median(&mut baseline),
    );
    println!("`pmdaemon list` with 50 apps, whole command wall time");
    println!("  pmdaemon list:             median {}", ms(m));
    println!("  pmdaemon list --json:      median {}", ms(j));
    println!(
        "  baseline (`true`):         median {} ({:.1}x baseline)\n",
        ms(b),
        m.as_secs_f64() / b.as_secs_f64()
    );

    // Steady state: after the daemon's 2-second housekeeping, which gives
    // freed heap back to the system.
    std::thread::sleep(Duration::from_millis(2500));
    let rss = status_kb(daemon, "VmRSS:")?;
    let anon = status_kb(daemon, "RssAnon:")?;
    let mb = |kb: u64| kb as f64 / 1024.0;
    println!("daemon RSS [private heap and stacks; the rest is the shared binary and libc]");
    println!(
        "  with no apps:                         {:.1} MB",
        mb(idle_rss)
    );
    println!(
        "  with 50 idle apps:                    {:.1} MB [{:.1} MB]",
        mb(fresh_rss),
        mb(fresh_anon)
    );
    println!(
        "  the same after 100 starts, 50 deletes: {:.1} MB [{:.1} MB]",
        mb(rss),
        mb(anon)
    );
    Ok(())
}

/// CPU time (user plus system) `pid` has used, in seconds.
fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = pmdaemon_core::procinfo::stat(pid).ok_or("no such process")?;
    Ok(stat.cpu_ticks as f64 / pmdaemon_core::procinfo::ticks_per_second() as f64)
}

/// The daemon's own CPU use over 20 s with 100 idle instances while
/// someone watches (`list` every 2 s, as `monit` does: a daemon nobody
/// looks at samples rarely), sampling once a second, against the same
/// daemon with sampling turned off.
fn sampler_cost(pmdaemon: &Path) -> Result<()> {
    let window = Duration::from_secs(20);
    let mut measured = Vec::new();
    for (label, interval) in [
        ("sampling every 1 s", "1000"),
        ("sampling off (baseline)", "0"),
    ] {
        let home = Home::with_env(pmdaemon, "PMDAEMON_SAMPLE_INTERVAL_MS", interval)?;
        for i in 0..100 {
            home.run(&["start", "sleep 100000", "--name", &format!("idle{i}")])?;
        }
        let daemon = home.daemon_pid()?;
        std::thread::sleep(Duration::from_secs(2));
        let before = cpu_seconds(daemon)?;
        let started = Instant::now();
        while started.elapsed() < window {
            home.command().arg("list").stdout(Stdio::null()).status()?;
            std::thread::sleep(Duration::from_secs(2));
        }
        let used = cpu_seconds(daemon)? - before;
        measured.push((label, used / started.elapsed().as_secs_f64() * 100.0));
    }
    println!(
        "\ndaemon CPU with 100 idle instances, `list` every 2 s, over {} s (% of one core)",
        window.as_secs()
    );
    for (label, percent) in &measured {
        println!("  {label:<28} {percent:.2}%");
    }
    println!(
        "  cost of the sampler:         {:.2}%",
        measured[0].1 - measured[1].1
    );
    Ok(())
}
