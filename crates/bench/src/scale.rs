//! Cost that should not grow with the table, against PM2 where PM2 can:
//! - `--only idle`: daemon CPU while 50 and 500 apps idle (nobody looks);
//! - `--only apply`: one `start` of a 100-app ecosystem file;
//! - `--only scale`: one `start` call at 0..1,000 apps (with the file
//!   system's own cost of creating an app's log files, as a baseline), then
//!   1,000 apps of 5 instances (5,000 `sleep` processes): `list`,
//!   `list --json`, `start`, `stop` of one app, `restart all`, daemon RSS
//!   and sampler CPU. Where the open-file limit is below ~14,700 (the daemon
//!   holds 2 pipes per logged instance and up to a quarter of its limit in
//!   log files), as many logged instances as fit, then 5,000 whose output
//!   goes to `/dev/null`.
//!
//! PM2 (`pm2` on PATH) runs with a temporary `PM2_HOME` and is killed
//! afterwards; it is left out where it would take minutes (the 1,000-app
//! table).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::{cpu_seconds, median, ms, status_kb, Home, Result};

/// PM2 with its own home, killed when dropped.
struct Pm2 {
    dir: tempfile::TempDir,
}

impl Pm2 {
    /// None when `pm2` is not installed.
    fn new() -> Result<Option<Self>> {
        // Looked up on PATH: any pm2 command would start a daemon.
        let found = std::env::var("PATH")
            .unwrap_or_default()
            .split(':')
            .any(|dir| Path::new(dir).join("pm2").is_file());
        if !found {
            println!("  (pm2 not found on PATH: PM2 figures skipped)");
            return Ok(None);
        }
        let pm2 = Self {
            dir: tempfile::Builder::new()
                .prefix("pmd-bench-pm2-")
                .tempdir()?,
        };
        pm2.run(&["ping"])?;
        Ok(Some(pm2))
    }

    fn command(&self) -> Command {
        let mut command = Command::new("pm2");
        command
            .env("PM2_HOME", self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        command
    }

    fn run(&self, args: &[&str]) -> Result<()> {
        if !self.command().args(args).status()?.success() {
            return Err(format!("pm2 {args:?} failed").into());
        }
        Ok(())
    }

    fn daemon_pid(&self) -> Result<u32> {
        Ok(std::fs::read_to_string(self.dir.path().join("pm2.pid"))?
            .trim()
            .parse()?)
    }
}

impl Drop for Pm2 {
    fn drop(&mut self) {
        let _ = self.command().arg("kill").status();
    }
}

/// An ecosystem file of `apps` apps of `instances` `sleep` processes each
/// (`interpreter: none` for PM2, which runs a binary that way).
fn ecosystem(dir: &Path, prefix: &str, apps: usize, instances: u32) -> Result<PathBuf> {
    ecosystem_of(dir, prefix, apps, instances, false)
}

/// As [`ecosystem`]; with `discard`, the apps' output goes to `/dev/null`
/// (no pipes, no log files: no descriptor held per instance).
fn ecosystem_of(
    dir: &Path,
    prefix: &str,
    apps: usize,
    instances: u32,
    discard: bool,
) -> Result<PathBuf> {
    let apps: Vec<serde_json::Value> = (0..apps)
        .map(|i| {
            let mut app = serde_json::json!({
                "name": format!("{prefix}{i}"),
                "script": "sleep",
                "args": "100000",
                "interpreter": "none",
                "instances": instances,
                "exec_mode": "fork",
            });
            if discard {
                app["out_file"] = "/dev/null".into();
                app["error_file"] = "/dev/null".into();
            }
            app
        })
        .collect();
    let path = dir.join(format!("{prefix}.json"));
    std::fs::write(
        &path,
        serde_json::to_vec(&serde_json::json!({ "apps": apps }))?,
    )?;
    Ok(path)
}

fn timed(mut command: Command) -> Result<Duration> {
    let started = Instant::now();
    let status = command.status()?;
    let took = started.elapsed();
    if !status.success() {
        return Err(format!("{command:?} failed").into());
    }
    Ok(took)
}

/// A daemon's CPU seconds over `window`, nobody looking.
fn cpu_over(pid: u32, window: Duration) -> Result<f64> {
    let before = cpu_seconds(pid)?;
    std::thread::sleep(window);
    Ok(cpu_seconds(pid)? - before)
}

/// Daemon CPU with 50 and 500 idle apps, pmdaemon and PM2, nobody looking.
pub fn idle(pmdaemon: &Path, seconds: u64) -> Result<()> {
    let window = Duration::from_secs(seconds);
    println!(
        "daemon CPU while apps idle ({seconds} s window, nobody looks; per hour extrapolated)"
    );
    for apps in [50, 500] {
        let home = Home::new(pmdaemon)?;
        let file = ecosystem(home.dir.path(), "idle", apps, 1)?;
        home.run(&["start", &file.to_string_lossy()])?;
        // Past the watch window of the start's own look.
        std::thread::sleep(Duration::from_secs(6));
        let ours = cpu_over(home.daemon_pid()?, window)?;
        let _ = home.run(&["delete", "all"]);
        drop(home);
        let theirs = match Pm2::new()? {
            Some(pm2) => {
                let file = ecosystem(pm2.dir.path(), "idle", apps, 1)?;
                pm2.run(&["start", &file.to_string_lossy()])?;
                std::thread::sleep(Duration::from_secs(6));
                Some(cpu_over(pm2.daemon_pid()?, window)?)
            }
            None => None,
        };
        let hour = 3600.0 / window.as_secs_f64();
        print!(
            "  {apps:>3} apps: pmdaemon {ours:.2} s ({:.1} s/h)",
            ours * hour
        );
        match theirs {
            Some(theirs) => println!(
                ", PM2 {theirs:.2} s ({:.1} s/h), pmdaemon/PM2 {:.2}",
                theirs * hour,
                ours / theirs.max(0.01)
            ),
            None => println!(),
        }
    }
    println!();
    Ok(())
}

/// One `start` of a 100-app ecosystem file, fresh homes, pmdaemon and PM2
/// interleaved.
pub fn apply(pmdaemon: &Path, rounds: usize) -> Result<()> {
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for _ in 0..rounds {
        let home = Home::new(pmdaemon)?;
        home.run(&["list"])?;
        let file = ecosystem(home.dir.path(), "eco", 100, 1)?;
        let mut start = home.command();
        start.args(["start", &file.to_string_lossy()]);
        ours.push(timed(start)?);
        drop(home);
        if let Some(pm2) = Pm2::new()? {
            let file = ecosystem(pm2.dir.path(), "eco", 100, 1)?;
            let mut start = pm2.command();
            start.args(["start", &file.to_string_lossy()]);
            theirs.push(timed(start)?);
        }
    }
    // The floor: the 200 log files those apps get, created on the same
    // file system (ext4 here: creating files where many were deleted is
    // slow).
    let mut floor = Vec::new();
    for _ in 0..rounds {
        let dir = tempfile::Builder::new().prefix("pmd-bench-").tempdir()?;
        let started = Instant::now();
        for i in 0..200 {
            std::fs::File::create(dir.path().join(format!("app{i}.log")))?;
        }
        floor.push(started.elapsed());
    }
    let m = median(&mut ours);
    println!("one `start` of a 100-app ecosystem file ({rounds} rounds, fresh daemon each)");
    println!("  pmdaemon: median {}", ms(m));
    println!(
        "  baseline: creating its 200 log files alone, median {}",
        ms(median(&mut floor))
    );
    if !theirs.is_empty() {
        let t = median(&mut theirs);
        println!(
            "  PM2:      median {} (pmdaemon/PM2 {:.2})",
            ms(t),
            m.as_secs_f64() / t.as_secs_f64()
        );
    }
    println!();
    Ok(())
}

/// Median of `rounds` single `start` calls of new one-instance apps; with
/// `extra` (`--json`), the call alone, without the table printed after it.
fn start_calls(
    command: impl Fn() -> Command,
    rounds: usize,
    tag: &str,
    extra: &[&str],
) -> Result<Duration> {
    let mut took = Vec::new();
    for i in 0..rounds {
        let mut start = command();
        start
            .args(["start", "sleep", "--name", &format!("{tag}{i}")])
            .args(extra)
            .args(["--", "100000"]);
        took.push(timed(start)?);
    }
    Ok(median(&mut took))
}

/// Median of `rounds` runs of `args`.
fn calls(home: &Home, args: &[&str], rounds: usize) -> Result<Duration> {
    let mut took = Vec::new();
    for _ in 0..rounds {
        let mut command = home.command();
        command.args(args);
        took.push(timed(command)?);
    }
    Ok(median(&mut took))
}

/// A `start` at 0..1,000 apps, then 1,000 apps of 5 instances.
pub fn scale(pmdaemon: &Path, rounds: usize, seconds: u64) -> Result<()> {
    let rounds = rounds.clamp(5, 25);
    println!("one `start` call as the table grows (median of {rounds} starts at each size)");
    let home = Home::new(pmdaemon)?;
    home.run(&["list"])?;
    let mut size = 0;
    let mut first = None;
    for target in [0usize, 100, 500, 1000] {
        if target > size {
            let file = ecosystem(home.dir.path(), &format!("fill{target}-"), target - size, 1)?;
            home.run(&["start", &file.to_string_lossy()])?;
            size = target;
        }
        let call = start_calls(
            || home.command(),
            rounds,
            &format!("j{target}-"),
            &["--json"],
        )?;
        let table = start_calls(|| home.command(), rounds, &format!("t{target}-"), &[])?;
        for i in 0..rounds {
            home.run(&["delete", &format!("j{target}-{i}")])?;
            home.run(&["delete", &format!("t{target}-{i}")])?;
        }
        let first = *first.get_or_insert(call);
        let files = log_file_creation(&home.dir.path().join("logs"), rounds);
        println!(
            "  {target:>4} apps: `start --json` median {} ({:.2}x of the empty table); `start`, which prints the whole table after it, {}; the file system alone, creating an app's 2 log files there: {}",
            ms(call),
            call.as_secs_f64() / first.as_secs_f64(),
            ms(table),
            ms(files)
        );
    }
    println!(
        "  list of 1,000 apps: median {}; list --json: median {}",
        ms(calls(&home, &["list"], rounds)?),
        ms(calls(&home, &["list", "--json"], rounds)?)
    );
    // The yardstick for the big table's `restart all`: per instance, it
    // should cost the same with 4 or 5 times as many.
    let mut restart = home.command();
    restart.args(["restart", "all"]);
    println!("  restart all of 1,000 instances: {}", ms(timed(restart)?));
    drop(home);
    if let Some(pm2) = Pm2::new()? {
        let empty = start_calls(|| pm2.command(), rounds, "at0-", &[])?;
        let file = ecosystem(pm2.dir.path(), "fill", 100, 1)?;
        pm2.run(&["start", &file.to_string_lossy()])?;
        let hundred = start_calls(|| pm2.command(), rounds, "at100-", &[])?;
        println!(
            "  PM2 `start` (prints its table too): {} at 0 apps, {} at 100 apps (left out at 500 and 1,000: minutes to fill)",
            ms(empty),
            ms(hundred)
        );
    }

    // The daemon holds 2 pipes per logged instance, and at most a quarter
    // of its limit in log files (it closes the least used past that): 5
    // instances per app where that fits (a hard RLIMIT_NOFILE of about
    // 14,700 or more). Below that, as many as fit, and then 5,000 whose output is
    // discarded (which hold no descriptor).
    let limit = nofile_limit();
    let per_app = ((limit - limit / 4).saturating_sub(1000) / 2 / 1000).clamp(1, 5) as u32;
    big_table(pmdaemon, rounds, seconds, per_app, false)?;
    if per_app < 5 {
        big_table(pmdaemon, rounds, seconds, 5, true)?;
    }
    Ok(())
}

/// 1,000 apps of `per_app` instances: every figure of the big table.
fn big_table(
    pmdaemon: &Path,
    rounds: usize,
    seconds: u64,
    per_app: u32,
    discard: bool,
) -> Result<()> {
    println!(
        "\n1,000 apps x {per_app} instances ({} `sleep` processes{}; PM2 left out: minutes to start)",
        per_app * 1000,
        if discard {
            ", output to /dev/null: the open-file limit here is below ~14,700"
        } else {
            ", logged"
        }
    );
    let home = Home::new(pmdaemon)?;
    home.run(&["list"])?;
    let file = ecosystem_of(home.dir.path(), "big", 1000, per_app, discard)?;
    let mut start = home.command();
    start.args(["start", &file.to_string_lossy()]);
    let took = timed(start)?;
    println!("  start of the file:        {}", ms(took));
    let daemon = home.daemon_pid()?;
    println!(
        "  list:                     median {}",
        ms(calls(&home, &["list"], rounds)?)
    );
    println!(
        "  list --json:              median {}",
        ms(calls(&home, &["list", "--json"], rounds)?)
    );
    let one = start_calls(|| home.command(), rounds, "extra", &["--json"])?;
    println!("  start --json of one more: median {}", ms(one));
    println!(
        "  stop --json of one app:   median {}",
        ms(calls(&home, &["stop", "big500", "--json"], rounds)?)
    );
    home.run(&["start", "big500"])?;
    let mut restart = home.command();
    restart.args(["restart", "all"]);
    println!("  restart all:              {}", ms(timed(restart)?));
    std::thread::sleep(Duration::from_millis(2500));
    let spawner = pmdaemon_core::procinfo::spawner_of(daemon)
        .and_then(|pid| status_kb(pid, "VmRSS:").ok())
        .map_or_else(String::new, |kb| {
            format!(" (and its spawner {:.1} MB)", kb as f64 / 1024.0)
        });
    println!(
        "  daemon RSS:               {:.1} MB{spawner}",
        status_kb(daemon, "VmRSS:")? as f64 / 1024.0
    );
    let window = Duration::from_secs(seconds);
    // Watched: someone runs `list` every 2 s (as monit does).
    let before = cpu_seconds(daemon)?;
    let started = Instant::now();
    while started.elapsed() < window {
        home.command().arg("list").stdout(Stdio::null()).status()?;
        std::thread::sleep(Duration::from_secs(2));
    }
    let watched = cpu_seconds(daemon)? - before;
    std::thread::sleep(Duration::from_secs(6));
    let idle = cpu_over(daemon, window)?;
    println!(
        "  daemon CPU over {seconds} s:      {:.1} % of a core while `list` runs every 2 s (sampling every second), {:.2} % idle",
        watched / window.as_secs_f64() * 100.0,
        idle / window.as_secs_f64() * 100.0
    );
    let mut delete = home.command();
    delete.args(["delete", "all"]);
    println!("  delete all:               {}", ms(timed(delete)?));
    println!();
    Ok(())
}

/// Median time to create the two log files of one app in `logs`, kept
/// there as a start keeps them (removed once all are timed): the file
/// system's own share of a `start`, which on ext4 grows with the inodes
/// recently used in the directory's block group.
fn log_file_creation(logs: &Path, rounds: usize) -> Duration {
    let mut took = Vec::new();
    let mut made = Vec::new();
    for i in 0..rounds {
        let started = Instant::now();
        for stream in ["out", "err"] {
            let path = logs.join(format!("bench-probe-{i}-{stream}.log"));
            if std::fs::File::create(&path).is_ok() {
                made.push(path);
            }
        }
        took.push(started.elapsed());
    }
    for path in made {
        let _ = std::fs::remove_file(path);
    }
    median(&mut took)
}

/// The hard limit of open files here: the daemon raises its soft limit to
/// it, and the hard one too only with `CAP_SYS_RESOURCE`, which this
/// figure does not count on.
fn nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    limit.rlim_max
}
