//! Benchmarks of pmdaemon, run by hand (never in CI):
//!
//! ```sh
//! cargo build --release -p pmdaemon -p pmdaemon-bench
//! ./target/release/pmdaemon-bench [--pmdaemon PATH] [--rounds N] [--seconds S]
//!     [--only restart|list|sampler|logs|cluster|web]
//! ```
//!
//! Each figure is reported with a baseline measured in the same run, since
//! the machine is shared and noisy: what the same work costs without
//! pmdaemon in the way.

mod cluster;
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
        return writer(
            args.get(2).and_then(|b| b.parse().ok()).filter(|b| *b > 0),
            rate,
        );
    }
    if args.get(1).map(String::as_str) == Some("splicer") {
        return splicer(Path::new(args.get(2).ok_or("splicer <file>")?));
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
                        .ok_or("--only needs restart|list|sampler|logs|cluster|web")?
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
        log_throughput(&pmdaemon)?;
    }
    if run("cluster") {
        cluster::shared_port(&pmdaemon, seconds)?;
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

fn cpu_ticks(pid: u32) -> Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .ok_or("bad stat")?
        .1
        .split_whitespace()
        .collect();
    Ok(fields[11].parse::<u64>()? + fields[12].parse::<u64>()?)
}

/// The daemon's own CPU use over 20 s with 100 idle instances, sampling
/// once a second, against the same daemon with sampling turned off.
fn sampler_cost(pmdaemon: &Path) -> Result<()> {
    let ticks_per_second = 100.0; // USER_HZ on Linux
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
        let before = cpu_ticks(daemon)?;
        std::thread::sleep(window);
        let used = cpu_ticks(daemon)? - before;
        let percent = used as f64 / ticks_per_second / window.as_secs_f64() * 100.0;
        measured.push((label, percent));
    }
    println!(
        "\ndaemon CPU with 100 idle instances, over {} s (% of one core)",
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

/// The writer of the log benchmark: `bytes` of 100-byte lines to stdout in
/// 1 MiB writes (forever with 0), at most `rate` MiB/s when given; the rate
/// reached goes to BENCH_RESULT.
fn writer(bytes: Option<u64>, rate: Option<f64>) -> Result<()> {
    use std::io::Write;
    let line = format!("{}\n", "x".repeat(99));
    let block = line.repeat(1 << 20 >> 7).into_bytes();
    let mut out = std::io::stdout().lock();
    let started = Instant::now();
    let mut written = 0u64;
    while bytes.is_none_or(|total| written < total) {
        out.write_all(&block)?;
        written += block.len() as u64;
        if let Some(rate) = rate {
            let due = Duration::from_secs_f64(written as f64 / (rate * (1 << 20) as f64));
            if let Some(early) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(early);
            }
        }
    }
    out.flush()?;
    let rate = written as f64 / started.elapsed().as_secs_f64() / (1 << 20) as f64;
    if let Ok(path) = std::env::var("BENCH_RESULT") {
        std::fs::write(path, format!("{rate}"))?;
    }
    loop {
        std::thread::park();
    }
}

/// The least any pipe-based capture can do: stdin (a pipe, grown to
/// 1 MiB as pmdaemon grows a chatty child's pipe) spliced into `path` by
/// one blocking loop, with no event loop, no lock and no rotation.
fn splicer(path: &Path) -> Result<()> {
    use nix::fcntl::{fcntl, splice, FcntlArg, SpliceFFlags};
    use std::os::fd::AsFd;
    let file = std::fs::File::create(path)?;
    let stdin = std::io::stdin();
    fcntl(stdin.as_fd(), FcntlArg::F_SETPIPE_SZ(1 << 20))?;
    while splice(
        stdin.as_fd(),
        None,
        file.as_fd(),
        None,
        1 << 20,
        SpliceFFlags::SPLICE_F_MOVE,
    )? > 0
    {}
    Ok(())
}

fn wait_for_file(path: &Path, timeout: Duration) -> Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(text) = std::fs::read_to_string(path) {
            if !text.is_empty() {
                return Ok(text);
            }
        }
        if Instant::now() > deadline {
            return Err(format!("{} never appeared", path.display()).into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Throughput of a child writing 1 GiB, captured by pmdaemon, against
/// the same writer into /dev/null, a file and `| cat > file`.
fn log_throughput(pmdaemon: &Path) -> Result<()> {
    const BYTES: u64 = 1 << 30;
    let me = std::env::current_exe()?;
    let scratch = tempfile::Builder::new()
        .prefix("pmd-bench-logs-")
        .tempdir()?;
    let result = scratch.path().join("rate");
    let direct = |stdout: Stdio, shell: Option<&str>| -> Result<f64> {
        let _ = std::fs::remove_file(&result);
        let mut child = match shell {
            Some(pipeline) => Command::new("sh")
                .arg("-c")
                .arg(format!("'{}' writer {BYTES} {pipeline}", me.display()))
                .env("BENCH_RESULT", &result)
                .stdout(stdout)
                .spawn()?,
            None => Command::new(&me)
                .args(["writer", &BYTES.to_string()])
                .env("BENCH_RESULT", &result)
                .stdout(stdout)
                .spawn()?,
        };
        let rate: f64 = wait_for_file(&result, Duration::from_secs(120))?.parse()?;
        // SAFETY: kill(2) has no memory-safety requirements.
        unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
        let _ = child.kill();
        let _ = child.wait();
        if shell.is_some() {
            let _ = Command::new("pkill")
                .args(["-f", &format!("{} writer", me.display())])
                .status();
        }
        Ok(rate)
    };
    let file = scratch.path().join("direct.log");
    let home = Home::new(pmdaemon)?;
    let captured = |name: &str, extra: &str| -> Result<(f64, u64)> {
        let _ = std::fs::remove_file(&result);
        let config = scratch.path().join(format!("{name}.json"));
        std::fs::write(
            &config,
            format!(
                r#"{{"name": "{name}", "script": "{}", "args": ["writer", "{BYTES}"], "autorestart": false, "log_max_size": 0{extra}}}"#,
                me.display()
            ),
        )?;
        let status = home
            .command()
            .env("BENCH_RESULT", &result)
            .arg("start")
            .arg(&config)
            .status()?;
        if !status.success() {
            return Err("could not start the writer".into());
        }
        let rate: f64 = wait_for_file(&result, Duration::from_secs(120))?.parse()?;
        let log = home.dir.path().join(format!("logs/{name}-0-out.log"));
        let deadline = Instant::now() + Duration::from_secs(60);
        // At least the bytes written (timestamps add more).
        while std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0) < BYTES
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(20));
        }
        let size = std::fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        home.run(&["delete", name])?;
        let _ = std::fs::remove_file(&log);
        Ok((rate, size))
    };
    // The machine's file-write speed swings by 4x within minutes (this is
    // a Firecracker guest: page-cache pages the host has not backed yet
    // are slow on first touch): a first round warms up and is dropped,
    // then every way is measured once per round, interleaved, and medians
    // of rates and of per-round ratios are reported.
    const ROUNDS: usize = 5;
    let names = [
        "straight into /dev/null",
        "straight into a file",
        "through `| cat > file`",
        "through a pipe, minimal splice",
        "captured by pmdaemon (plain)",
        "captured by pmdaemon (stamped)",
    ];
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    let mut sizes = [0u64; 2];
    for round in 0..=ROUNDS {
        if round == 1 {
            rates.iter_mut().for_each(Vec::clear);
        }
        rates[0].push(direct(Stdio::null(), None)?);
        rates[1].push(direct(Stdio::from(std::fs::File::create(&file)?), None)?);
        std::fs::remove_file(&file)?;
        rates[2].push(direct(
            Stdio::null(),
            Some(&format!("| cat > '{}'", file.display())),
        )?);
        std::fs::remove_file(&file)?;
        rates[3].push(direct(
            Stdio::null(),
            Some(&format!(
                "| '{}' splicer '{}'",
                me.display(),
                file.display()
            )),
        )?);
        std::fs::remove_file(&file)?;
        let (plain, size) = captured("plain", "")?;
        rates[4].push(plain);
        sizes[0] = size;
        let (stamped, size) = captured("stamped", r#", "time": true"#)?;
        rates[5].push(stamped);
        sizes[1] = size;
    }
    let daemon = home.daemon_pid()?;
    let peak = status_kb(daemon, "VmHWM:")?;

    // list latency, idle and while another app floods its stdout.
    let list_median = |home: &Home| -> Result<Duration> {
        let mut samples = Vec::new();
        for _ in 0..30 {
            let started = Instant::now();
            home.command().arg("list").stdout(Stdio::null()).status()?;
            samples.push(started.elapsed());
        }
        Ok(median(&mut samples))
    };
    let idle = list_median(&home)?;
    let flood = scratch.path().join("flood.json");
    std::fs::write(
        &flood,
        format!(
            r#"{{"name": "flood", "script": "{}", "args": ["writer", "0", "200"], "log_max_size": "100M", "log_max_files": 1}}"#,
            me.display()
        ),
    )?;
    home.run(&["start", &flood.display().to_string()])?;
    std::thread::sleep(Duration::from_secs(1));
    let busy = list_median(&home)?;
    home.run(&["delete", "flood"])?;

    let median_of = |values: &[f64]| -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[sorted.len() / 2]
    };
    let ratio = |of: usize, to: usize| -> f64 {
        let per_round: Vec<f64> = rates[of]
            .iter()
            .zip(&rates[to])
            .map(|(a, b)| a / b)
            .collect();
        median_of(&per_round) * 100.0
    };
    println!(
        "\nlog capture: a child writing 1 GiB of 100-byte lines in 1 MiB writes, {ROUNDS} interleaved rounds (MiB/s: median, min-max)"
    );
    for (index, name) in names.iter().enumerate() {
        let min = rates[index].iter().copied().fold(f64::INFINITY, f64::min);
        let max = rates[index].iter().copied().fold(0.0, f64::max);
        println!(
            "  {name:<32} {:>8.0}  ({min:.0}-{max:.0})",
            median_of(&rates[index])
        );
    }
    println!(
        "  per-round ratios (median): plain / file {:.0}%, plain / minimal splice {:.0}%, minimal splice / file {:.0}%, stamped / file {:.0}%",
        ratio(4, 1),
        ratio(4, 3),
        ratio(3, 1),
        ratio(5, 1)
    );
    println!(
        "  logs hold {} MiB (plain) and {} MiB (stamped) after the last round",
        sizes[0] >> 20,
        sizes[1] >> 20
    );
    println!(
        "  daemon peak RSS (VmHWM):        {:.1} MB",
        peak as f64 / 1024.0
    );
    println!(
        "  `list` median: idle {}, while an app logs 200 MiB/s {} ({:.2}x)",
        ms(idle),
        ms(busy),
        busy.as_secs_f64() / idle.as_secs_f64()
    );
    Ok(())
}
