//! The web API (issue 14) with 100 instances: the latency of
//! `GET /api/processes` over loopback TCP, and what 100 WebSocket clients on
//! `/ws` cost the daemon in CPU and memory.
//!
//! Baselines of the same run: `GET /health` on the same server (the HTTP
//! stack and the loopback round trip, no table), a tiny std server that
//! answers the same bytes as `/api/processes` (the loopback round trip
//! alone), and the same daemon for the same time without clients.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use tungstenite::client::IntoClientRequest;
use tungstenite::Message;

use crate::cluster::free_port;
use crate::{cpu_seconds, ms, status_kb, Home, Result};

const INSTANCES: usize = 100;
const APPS: usize = 10;
const CLIENTS: usize = 100;

/// One HTTP/1.1 keep-alive connection that sends GETs and reads whole
/// answers (Content-Length bodies, as axum's JSON and text answers have).
struct Http {
    reader: BufReader<TcpStream>,
    port: u16,
    key: String,
}

impl Http {
    fn connect(port: u16, key: &str) -> Result<Self> {
        let stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.set_nodelay(true)?;
        stream.set_read_timeout(Some(Duration::from_secs(10)))?;
        Ok(Self {
            reader: BufReader::new(stream),
            port,
            key: key.to_string(),
        })
    }

    /// The status and body of `GET path`.
    fn get(&mut self, path: &str) -> Result<(u16, Vec<u8>)> {
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-API-Key: {}\r\n\r\n",
            self.port, self.key
        );
        self.reader.get_mut().write_all(request.as_bytes())?;
        let mut line = String::new();
        self.reader.read_line(&mut line)?;
        let status = line
            .split_whitespace()
            .nth(1)
            .ok_or_else(|| format!("no status line: {line:?}"))?
            .parse()?;
        let mut length = None;
        loop {
            line.clear();
            if self.reader.read_line(&mut line)? == 0 {
                return Err("the connection closed".into());
            }
            let header = line.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = Some(value.trim().parse::<usize>()?);
                }
            }
        }
        let mut body = vec![0; length.ok_or("an answer without Content-Length")?];
        self.reader.read_exact(&mut body)?;
        Ok((status, body))
    }
}

/// A keep-alive HTTP server on std that answers every request with `body`:
/// the floor of a loopback request/response of that size.
fn static_server(body: Vec<u8>) -> Result<u16> {
    let listener = TcpListener::bind(("127.0.0.1", 0))?;
    let port = listener.local_addr()?.port();
    let mut answer = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || -> std::io::Result<()> {
                stream.set_nodelay(true)?;
                let mut reader = BufReader::new(stream);
                let mut line = String::new();
                loop {
                    // A request's headers end at an empty line.
                    line.clear();
                    if reader.read_line(&mut line)? == 0 {
                        return Ok(());
                    }
                    if line == "\r\n" {
                        reader.get_mut().write_all(&answer)?;
                    }
                }
            });
        }
    });
    Ok(port)
}

fn percentile(samples: &mut [Duration], fraction: f64) -> Duration {
    samples.sort();
    let index = ((samples.len() as f64 * fraction) as usize).min(samples.len() - 1);
    samples[index]
}

/// Runs the section: `requests` GETs of each kind, `seconds` per CPU window.
pub fn web_api(pmdaemon: &Path, requests: usize, seconds: u64) -> Result<()> {
    let home = Home::new(pmdaemon)?;
    for app in 0..APPS {
        home.run(&[
            "start",
            "sleep 100000",
            "--name",
            &format!("app{app}"),
            "-i",
            &(INSTANCES / APPS).to_string(),
        ])?;
    }
    let port = free_port()?;
    // Without a key option, `web` generates one and keeps it in the home.
    home.run(&["web", "--port", &port.to_string()])?;
    let key = std::fs::read_to_string(home.dir.path().join("api-key"))?
        .trim()
        .to_string();
    let daemon = home.daemon_pid()?;

    let mut api = Http::connect(port, &key)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let listing = loop {
        let (status, body) = api.get("/api/processes")?;
        let table: serde_json::Value = serde_json::from_slice(&body)?;
        let online = table
            .as_array()
            .map(|rows| rows.iter().filter(|row| row["status"] == "online").count());
        if status == 200 && online == Some(INSTANCES) {
            break body;
        }
        if Instant::now() > deadline {
            return Err(format!("not {INSTANCES} instances online: {status} {online:?}").into());
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let health = Http::connect(port, &key)?;
    let floor = Http::connect(static_server(listing.clone())?, "")?;

    // Interleaved, so that a noisy moment touches the three alike.
    let mut targets = [(api, "/api/processes"), (health, "/health"), (floor, "/")];
    let mut samples: [Vec<Duration>; 3] = Default::default();
    for (connection, path) in &mut targets {
        connection.get(path)?; // warm-up
    }
    for _ in 0..requests {
        for (index, (connection, path)) in targets.iter_mut().enumerate() {
            let started = Instant::now();
            let (status, _) = connection.get(path)?;
            samples[index].push(started.elapsed());
            if status != 200 {
                return Err(format!("GET {path}: {status}").into());
            }
        }
    }
    drop(targets);
    let [mut processes, mut health_samples, mut floor_samples] = samples;
    let figures = |samples: &mut [Duration]| (percentile(samples, 0.5), percentile(samples, 0.99));
    let (p50, p99) = figures(&mut processes);
    let (h50, h99) = figures(&mut health_samples);
    let (f50, f99) = figures(&mut floor_samples);
    println!(
        "\nweb API, {INSTANCES} instances ({APPS} apps), {requests} interleaved keep-alive GETs each over loopback"
    );
    let row = |label: &str, median: Duration, p99: Duration| {
        println!("  {label:<38} median {}  p99 {}", ms(median), ms(p99));
    };
    row(
        &format!("GET /api/processes ({} kB)", listing.len() / 1024),
        p50,
        p99,
    );
    row("GET /health (baseline)", h50, h99);
    row("the same bytes from a std server", f50, f99);
    println!(
        "  /api/processes / /health: {:.2}x median, {:.2}x p99; / std server: {:.2}x median",
        p50.as_secs_f64() / h50.as_secs_f64(),
        p99.as_secs_f64() / h99.as_secs_f64(),
        p50.as_secs_f64() / f50.as_secs_f64()
    );

    websocket_clients(port, &key, daemon, seconds)
}

/// What the clients saw, for the report.
#[derive(Default)]
struct Received {
    frames: AtomicU64,
    bytes: AtomicU64,
}

/// One client as the dashboard opens it: key first, then `subscribe` to
/// every kind but logs; then reads until `stop`.
fn client(
    port: u16,
    key: &str,
    ready: mpsc::Sender<std::result::Result<(), String>>,
    stop: &AtomicBool,
    received: &Received,
) -> Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_millis(200)))?;
    let request = format!("ws://127.0.0.1:{port}/ws").into_client_request()?;
    let (mut socket, _) =
        tungstenite::client(request, stream).map_err(|err| format!("handshake: {err}"))?;
    let mut say = |message: serde_json::Value| socket.send(Message::text(message.to_string()));
    say(serde_json::json!({"type": "auth", "key": key}))?;
    say(serde_json::json!({"type": "subscribe", "apps": [], "kinds": []}))?;
    let mut subscribed = false;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) {
        match socket.read() {
            Ok(Message::Text(text)) => {
                received.frames.fetch_add(1, Ordering::Relaxed);
                received
                    .bytes
                    .fetch_add(text.len() as u64, Ordering::Relaxed);
                if !subscribed {
                    let event: serde_json::Value = serde_json::from_str(&text)?;
                    match event["kind"].as_str() {
                        Some("subscribed") => {
                            subscribed = true;
                            let _ = ready.send(Ok(()));
                        }
                        Some("error") => return Err(format!("refused: {text}").into()),
                        _ => {}
                    }
                }
            }
            Ok(Message::Close(frame)) => return Err(format!("closed: {frame:?}").into()),
            Ok(_) => {}
            Err(tungstenite::Error::Io(err))
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(err) => return Err(err.into()),
        }
        if !subscribed && Instant::now() > deadline {
            return Err("no `subscribed` within 30 s".into());
        }
    }
    let _ = socket.close(None);
    Ok(())
}

/// The daemon's CPU (% of one core) over `seconds`, and its VmRSS (kB) at
/// the end.
fn window(daemon: u32, seconds: u64) -> Result<(f64, u64)> {
    let before = cpu_seconds(daemon)?;
    std::thread::sleep(Duration::from_secs(seconds));
    let percent = (cpu_seconds(daemon)? - before) / seconds as f64 * 100.0;
    Ok((percent, status_kb(daemon, "VmRSS:")?))
}

fn websocket_clients(port: u16, key: &str, daemon: u32, seconds: u64) -> Result<()> {
    // After the daemon's 2-second housekeeping (it gives freed heap back).
    std::thread::sleep(Duration::from_millis(2500));
    let rss_before = status_kb(daemon, "VmRSS:")?;
    let (idle_cpu, idle_rss) = window(daemon, seconds)?;

    let stop = Arc::new(AtomicBool::new(false));
    let received = Arc::new(Received::default());
    let (ready, connected) = mpsc::channel();
    let mut threads = Vec::new();
    for _ in 0..CLIENTS {
        let (key, ready, stop, received) = (
            key.to_string(),
            ready.clone(),
            stop.clone(),
            received.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let failed = ready.clone();
            if let Err(err) = client(port, &key, ready, &stop, &received) {
                let _ = failed.send(Err(err.to_string()));
            }
        }));
    }
    drop(ready);
    let result = (|| -> Result<(f64, u64, u64, u64, u64)> {
        for _ in 0..CLIENTS {
            connected
                .recv_timeout(Duration::from_secs(60))
                .map_err(|_| "the clients did not all connect")??;
        }
        let connected_rss = status_kb(daemon, "VmRSS:")?;
        let frames_before = received.frames.load(Ordering::Relaxed);
        let bytes_before = received.bytes.load(Ordering::Relaxed);
        let (cpu, rss) = window(daemon, seconds)?;
        // A client dropped during the window says so on the channel.
        if let Ok(Err(err)) = connected.try_recv() {
            return Err(format!("a client failed during the window: {err}").into());
        }
        let frames = received.frames.load(Ordering::Relaxed) - frames_before;
        let bytes = received.bytes.load(Ordering::Relaxed) - bytes_before;
        Ok((cpu, connected_rss, rss, frames, bytes))
    })();
    stop.store(true, Ordering::Relaxed);
    for thread in threads {
        let _ = thread.join();
    }
    let (cpu, connected_rss, rss, frames, bytes) = result?;

    let mb = |kb: u64| kb as f64 / 1024.0;
    let per_client = |count: u64| count as f64 / CLIENTS as f64 / seconds as f64;
    println!(
        "\n{CLIENTS} WebSocket clients on /ws (key first, then every kind but logs, as the dashboard), {seconds} s windows, {INSTANCES} instances"
    );
    println!(
        "  each client received {:.1} frames/s, {:.1} kB/s",
        per_client(frames),
        per_client(bytes) / 1024.0
    );
    let line = |label: &str, value: String| println!("  {label:<38} {value}");
    line(
        "daemon CPU, no clients (baseline)",
        format!("{idle_cpu:.2}% of one core"),
    );
    line(
        &format!("daemon CPU, {CLIENTS} clients"),
        format!("{cpu:.2}% of one core"),
    );
    line("cost of the clients", format!("{:.2}%", cpu - idle_cpu));
    line(
        "daemon VmRSS before (baseline)",
        format!(
            "{:.1} MB ({:.1} MB after {seconds} s without clients)",
            mb(rss_before),
            mb(idle_rss)
        ),
    );
    line(
        &format!("daemon VmRSS with {CLIENTS} clients"),
        format!(
            "{:.1} MB once connected, {:.1} MB after {seconds} s",
            mb(connected_rss),
            mb(rss)
        ),
    );
    line(
        "RSS growth (the larger of the two)",
        format!(
            "{:.1} MB",
            mb(connected_rss.max(rss).saturating_sub(rss_before))
        ),
    );
    Ok(())
}
