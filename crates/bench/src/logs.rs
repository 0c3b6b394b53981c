//! Log capture throughput: a child writes 1 GiB of lines, captured by
//! pmdaemon, against the same writer into /dev/null, a file, a minimal
//! pipe+splice loop (the kernel's ceiling for pipe capture) and `| cat`.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::{median, ms, status_kb, Home, Result};

/// The writer of the log benchmark: `bytes` of 100-byte lines to stdout in
/// 1 MiB writes (forever with 0), at most `rate` MiB/s when given; the rate
/// reached goes to BENCH_RESULT.
pub(crate) fn writer(bytes: Option<u64>, rate: Option<f64>) -> Result<()> {
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
pub(crate) fn splicer(path: &Path) -> Result<()> {
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
pub(crate) fn log_throughput(pmdaemon: &Path) -> Result<()> {
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
