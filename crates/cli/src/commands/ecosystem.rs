//! Reading ecosystem files on the CLI's side: the daemon gets the checked
//! apps, never a file to interpret.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use pmdaemon_core::ecosystem::{base_dir, parse, Format, Loaded, Options};

/// The files `start` (and `startOrRestart`, …) picks in the current
/// directory when given none, in PM2's order, then the other formats.
pub const DEFAULT_FILES: &[&str] = &[
    "ecosystem.config.js",
    "ecosystem.config.cjs",
    "ecosystem.config.mjs",
    "ecosystem.json",
    "ecosystem.json5",
    "ecosystem.yaml",
    "ecosystem.yml",
    "ecosystem.toml",
];

/// The first of [`DEFAULT_FILES`] in the current directory.
pub fn default_file() -> Option<std::path::PathBuf> {
    DEFAULT_FILES
        .iter()
        .map(std::path::PathBuf::from)
        .find(|path| path.is_file())
}

/// Whether `text` names an existing ecosystem file.
pub fn is_file(text: &str) -> bool {
    let path = Path::new(text);
    Format::is_config_file(path) && path.is_file()
}

/// Reads and checks `path`; every problem is in the error.
pub fn load(path: &Path, profile: Option<String>) -> Result<Loaded> {
    let label = path.display().to_string();
    let format = Format::of(path).with_context(|| {
        format!(
            "{label}: unknown config format; use .json, .json5, .yaml, .yml, .toml or ecosystem.config.js"
        )
    })?;
    let absolute = std::path::absolute(path).with_context(|| format!("cannot resolve {label}"))?;
    let (text, source) = match format {
        // Problems are located in the JavaScript the user wrote.
        Format::Js => (
            evaluate_js(&absolute, &label)?,
            std::fs::read_to_string(path).ok(),
        ),
        _ => (
            std::fs::read_to_string(path).with_context(|| format!("cannot read {label}"))?,
            None,
        ),
    };
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get() as u32);
    let loaded = parse(
        &label,
        &base_dir(&absolute),
        &text,
        format,
        &Options {
            profile,
            cpus,
            source,
            env: std::env::vars().collect(),
        },
    )?;
    for warning in &loaded.warnings {
        eprintln!("warning: {label}: {warning}");
    }
    Ok(loaded)
}

/// How long node may take to evaluate a `.js` file.
const JS_TIMEOUT: Duration = Duration::from_secs(10);

/// Precedes the config in node's output, which may also hold whatever the
/// file printed itself (dotenv does).
const JS_MARKER: &str = "\n--pmdaemon-config-8d3f0a--\n";

/// PM2's `module.exports = {apps: [...]}`, turned into JSON by node. The
/// config follows [`JS_MARKER`] and node exits right after writing it (a
/// file that leaves a timer or a connection open would keep it alive); a
/// file that does not evaluate within [`JS_TIMEOUT`] is an error.
fn evaluate_js(path: &Path, label: &str) -> Result<String> {
    let script = format!(
        "const p = require('path').resolve(process.argv[1]);\
        const load = p.endsWith('.mjs') ? import(require('url').pathToFileURL(p)).then(m => m.default) : Promise.resolve(require(p));\
        load.then(c => process.stdout.write({marker:?} + JSON.stringify(c === undefined ? null : c), () => process.exit(0)))\
        .catch(e => {{ process.stderr.write(String(e && e.message || e)); process.exit(1); }});",
        marker = JS_MARKER
    );
    let child = Command::new("node")
        .arg("-e")
        .arg(script)
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "{label} is JavaScript and needs node to be read, but node is not installed (or not on PATH); install node or convert the file to ecosystem.json"
        ),
        Err(err) => bail!("cannot run node to read {label}: {err}"),
    };
    let pid = child.id();
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let read = |pipe: Option<Box<dyn Read>>| {
            let mut bytes = Vec::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_end(&mut bytes);
            }
            bytes
        };
        let err_reader = std::thread::spawn(move || read(stderr.map(|p| Box::new(p) as _)));
        let out = read(stdout.map(|p| Box::new(p) as _));
        let err = err_reader.join().unwrap_or_default();
        let _ = done.send((out, err));
    });
    let Ok((stdout, stderr)) = finished.recv_timeout(JS_TIMEOUT) else {
        // The whole group: whatever the file started goes too.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid as i32),
            nix::sys::signal::Signal::SIGKILL,
        );
        let _ = child.wait();
        bail!(
            "node did not finish evaluating {label} within {} s (does the file wait for something, or loop?); nothing was started",
            JS_TIMEOUT.as_secs()
        );
    };
    let status = child.wait().context("cannot wait for node")?;
    if !status.success() {
        bail!(
            "node could not evaluate {label}: {}",
            String::from_utf8_lossy(&stderr).trim()
        );
    }
    let stdout = String::from_utf8(stdout)
        .with_context(|| format!("{label} produced output that is not UTF-8"))?;
    match stdout.rsplit_once(JS_MARKER) {
        Some((_, config)) => Ok(config.to_string()),
        None => {
            bail!("node evaluated {label} but printed no config (does the file call process.exit?)")
        }
    }
}
