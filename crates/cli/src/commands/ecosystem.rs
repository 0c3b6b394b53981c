//! Reading ecosystem files on the CLI's side: the daemon gets the checked
//! apps, never a file to interpret.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Context, Result};
use pmdaemon_core::ecosystem::{base_dir, parse, Format, Loaded, Options};

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
            "{label}: unknown config format; use .json, .yaml, .yml, .toml or ecosystem.config.js"
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

/// PM2's `module.exports = {apps: [...]}`, turned into JSON by node.
fn evaluate_js(path: &Path, label: &str) -> Result<String> {
    const SCRIPT: &str = "const p = require('path').resolve(process.argv[1]);\
        const load = p.endsWith('.mjs') ? import(require('url').pathToFileURL(p)).then(m => m.default) : Promise.resolve(require(p));\
        load.then(c => process.stdout.write(JSON.stringify(c === undefined ? null : c)))\
        .catch(e => { process.stderr.write(String(e && e.message || e)); process.exit(1); });";
    let output = match Command::new("node").arg("-e").arg(SCRIPT).arg(path).output() {
        Ok(output) => output,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => bail!(
            "{label} is JavaScript and needs node to be read, but node is not installed (or not on PATH); install node or convert the file to ecosystem.json"
        ),
        Err(err) => bail!("cannot run node to read {label}: {err}"),
    };
    if !output.status.success() {
        bail!(
            "node could not evaluate {label}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout)
        .with_context(|| format!("{label} produced output that is not UTF-8"))
}
