//! Shared-port clusters under load: the same 4-instance Node HTTP app (as a
//! PM2 cluster-mode app is written: it listens on its port itself) behind
//! pmdaemon's socket mode, its proxy mode, nginx, and PM2's cluster mode,
//! measured with `wrk` in one run; then each with three reloads during the
//! load, counting failed requests.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{Home, Result};

/// What `wrk --latency` reported.
#[derive(Debug, Default, Clone, Copy)]
struct Wrk {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    /// Non-2xx answers and socket errors.
    failed: u64,
}

fn wrk(port: u16, connections: u32, seconds: u64) -> Result<Wrk> {
    let output = Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            &format!("http://127.0.0.1:{port}/"),
        ])
        .output()?;
    let text = String::from_utf8_lossy(&output.stdout);
    let mut result = Wrk::default();
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["Requests/sec:", rate] => result.requests_per_sec = rate.parse()?,
            ["50%", value] => result.p50_ms = millis(value),
            ["99%", value] => result.p99_ms = millis(value),
            ["Non-2xx", "or", "3xx", "responses:", count] => {
                result.failed += count.parse::<u64>()?
            }
            ["Socket", "errors:", rest @ ..] => {
                result.failed += rest
                    .iter()
                    .filter_map(|w| w.trim_end_matches(',').parse::<u64>().ok())
                    .sum::<u64>()
            }
            _ => {}
        }
    }
    if result.requests_per_sec == 0.0 {
        return Err(format!("wrk printed no rate: {text}").into());
    }
    Ok(result)
}

/// `1.23ms`, `456.00us`, `1.02s` in milliseconds.
fn millis(value: &str) -> f64 {
    let (number, scale) = if let Some(n) = value.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * scale
}

/// wrk for `seconds` while `reload` runs at each quarter.
fn wrk_with_reloads(port: u16, seconds: u64, reload: &dyn Fn() -> Result<()>) -> Result<Wrk> {
    let load = std::thread::spawn(move || wrk(port, 16, seconds).map_err(|e| e.to_string()));
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(seconds * 1000 / 4));
        reload()?;
    }
    Ok(load.join().map_err(|_| "wrk thread panicked")??)
}

pub(crate) fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

fn wait_http(port: u16) -> Result<()> {
    for _ in 0..200 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing answers on {port}").into())
}

fn print(label: &str, result: &Wrk) {
    println!(
        "  {label:<34} {:>9.0} req/s   p50 {:.3} ms   p99 {:.3} ms   failed {}",
        result.requests_per_sec, result.p50_ms, result.p99_ms, result.failed
    );
}

/// Runs the comparison; `seconds` per wrk run (the figure is 20).
pub fn shared_port(pmdaemon: &Path, seconds: u64) -> Result<()> {
    for tool in ["wrk", "node"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Err(format!("{tool} is not installed (apt-get install {tool})").into());
        }
    }
    let dir = tempfile::Builder::new()
        .prefix("pmd-bench-web-")
        .tempdir()?;
    let port = free_port()?;
    let app = dir.path().join("server.js");
    std::fs::write(
        &app,
        format!(
            "const port = Number(process.env.BENCH_PORT || {port});\n\
             require('http').createServer((req, res) => res.end('hello from ' + process.pid + '\\n')).listen(port);\n"
        ),
    )?;
    let app = app.to_string_lossy().to_string();
    let port_arg = port.to_string();
    println!("shared-port cluster, 4 Node instances, wrk -t1 -c16 {seconds}s each");

    // Direct: one instance, and the same behind the proxy (added latency).
    let direct = {
        let mut child = Command::new("node")
            .arg(&app)
            .env("BENCH_PORT", port.to_string())
            .stdout(Stdio::null())
            .spawn()?;
        // Saturated (16 connections), then one request at a time: the
        // latency a request pays when nothing queues.
        let result =
            wait_http(port).and_then(|()| Ok((wrk(port, 16, seconds)?, wrk(port, 1, seconds)?)));
        let _ = child.kill();
        let _ = child.wait();
        result?
    };
    let (direct, direct_one) = direct;
    print("one instance, direct", &direct);
    print("one instance, direct, -c1", &direct_one);
    let proxied_one = {
        let home = Home::new(pmdaemon)?;
        home.run(&[
            "start",
            &app,
            "--name",
            "one",
            "--port",
            &port_arg,
            "--shared-port",
            "proxy",
            "--wait-ready",
        ])?;
        wait_http(port)?;
        (wrk(port, 16, seconds)?, wrk(port, 1, seconds)?)
    };
    let (proxied_one, proxied_single) = proxied_one;
    print("one instance, pmdaemon proxy", &proxied_one);
    print("one instance, pmdaemon proxy, -c1", &proxied_single);

    let mut results = Vec::new();
    for mode in ["socket", "proxy"] {
        let home = Home::new(pmdaemon)?;
        home.run(&[
            "start",
            &app,
            "--name",
            "web",
            "-i",
            "4",
            "--port",
            &port_arg,
            "--shared-port",
            mode,
            "--wait-ready",
        ])?;
        wait_http(port)?;
        let plain = wrk(port, 16, seconds)?;
        print(&format!("pmdaemon {mode} mode"), &plain);
        let reloaded = wrk_with_reloads(port, seconds, &|| home.run(&["reload", "web"]))?;
        print(&format!("pmdaemon {mode} mode, 3 reloads"), &reloaded);
        results.push((mode, plain, reloaded));
    }

    let nginx = nginx_in_front(&app, port, seconds)?;
    if let Some(nginx) = &nginx {
        print("nginx in front of 4 instances", nginx);
    }
    let pm2 = pm2_cluster(&app, port, seconds)?;
    if let Some((plain, reloaded)) = &pm2 {
        print("PM2 cluster mode", plain);
        print("PM2 cluster mode, 3 reloads", reloaded);
    }
    println!();
    let (_, socket, _) = results[0];
    let (_, proxy, _) = results[1];
    if let Some((pm2, _)) = &pm2 {
        println!(
            "  socket / PM2: {:.2}   proxy / PM2: {:.2}",
            socket.requests_per_sec / pm2.requests_per_sec,
            proxy.requests_per_sec / pm2.requests_per_sec
        );
    }
    if let Some(nginx) = &nginx {
        println!(
            "  proxy / nginx: {:.2}",
            proxy.requests_per_sec / nginx.requests_per_sec
        );
    }
    println!(
        "  proxy's added latency, one instance, one request at a time: p50 {:.3} ms, p99 {:.3} ms (saturated, 16 connections: p99 {:.3} ms)\n",
        proxied_single.p50_ms - direct_one.p50_ms,
        proxied_single.p99_ms - direct_one.p99_ms,
        proxied_one.p99_ms - direct.p99_ms
    );
    Ok(())
}

/// nginx balancing over 4 instances on their own ports (keep-alive to the
/// upstreams, as a tuned nginx would), or None without nginx.
fn nginx_in_front(app: &str, port: u16, seconds: u64) -> Result<Option<Wrk>> {
    let Some(nginx) = ["/usr/sbin/nginx", "/usr/bin/nginx"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        println!("  (nginx not installed: apt-get install nginx-light)");
        return Ok(None);
    };
    let dir = tempfile::Builder::new()
        .prefix("pmd-bench-nginx-")
        .tempdir()?;
    let mut children = Vec::new();
    let mut servers = String::new();
    for _ in 0..4 {
        let backend = free_port()?;
        children.push(
            Command::new("node")
                .arg(app)
                .env("BENCH_PORT", backend.to_string())
                .stdout(Stdio::null())
                .spawn()?,
        );
        servers.push_str(&format!("server 127.0.0.1:{backend};\n"));
        // nginx marks an upstream that refuses as down for 10 s.
        wait_http(backend)?;
    }
    let root = dir.path().display();
    let config = format!(
        "daemon off; worker_processes auto; pid {root}/nginx.pid; error_log {root}/error.log;\n\
         events {{ worker_connections 1024; }}\n\
         http {{ access_log off; client_body_temp_path {root}; proxy_temp_path {root};\n\
         upstream app {{ {servers} keepalive 64; }}\n\
         server {{ listen 127.0.0.1:{port}; location / {{ proxy_pass http://app; proxy_http_version 1.1; proxy_set_header Connection \"\"; }} }} }}\n"
    );
    std::fs::write(dir.path().join("nginx.conf"), config)?;
    let mut server = Command::new(nginx)
        .args(["-p", &root.to_string(), "-c", "nginx.conf"])
        .stderr(Stdio::null())
        .spawn()?;
    let result = wait_http(port).and_then(|()| wrk(port, 16, seconds));
    // SIGTERM, so that the master stops its workers (SIGKILL would leave
    // them holding the port).
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(server.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = server.wait();
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }
    result.map(Some)
}

/// PM2's cluster mode with 4 instances, plain and with 3 reloads, or None
/// without pm2 (npm install -g pm2).
fn pm2_cluster(app: &str, port: u16, seconds: u64) -> Result<Option<(Wrk, Wrk)>> {
    let home = tempfile::Builder::new()
        .prefix("pmd-bench-pm2-")
        .tempdir()?;
    // Even `pm2 --version` starts a daemon: in the bench's own PM2_HOME.
    let installed = Command::new("pm2")
        .arg("--version")
        .env("PM2_HOME", home.path())
        .output()
        .is_ok();
    if !installed {
        println!("  (pm2 not installed: npm install -g pm2)");
        return Ok(None);
    }
    let pm2 = |args: &[&str]| -> Result<()> {
        let status = Command::new("pm2")
            .args(args)
            .env("PM2_HOME", home.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("pm2 {args:?} failed").into())
        }
    };
    let started = pm2(&["start", app, "--name", "web", "-i", "4"]);
    let result = started.and_then(|()| wait_http(port)).and_then(|()| {
        let plain = wrk(port, 16, seconds)?;
        let reloaded = wrk_with_reloads(port, seconds, &|| pm2(&["reload", "web"]))?;
        Ok((plain, reloaded))
    });
    let _ = pm2(&["kill"]);
    result.map(Some)
}
