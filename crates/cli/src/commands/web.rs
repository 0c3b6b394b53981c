//! `pmdaemon web`: serve the API on TCP, show it (`--status`), stop it
//! (`--stop`). The daemon keeps the setting in `web.json`; this side picks
//! the key (given, from a file, kept from before, or generated and printed
//! once) and refuses a non-loopback address without one before anything
//! starts.

use std::io::Read;
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;

use anyhow::{bail, Context, Result};
use pmdaemon_core::api::endpoints::{WebSet, WebStatusOf, WebUnset};
use pmdaemon_core::home::Home;
use pmdaemon_core::web::settings;
use pmdaemon_core::web::{check_key, KeySource, WebSettings, WebStatus};

use crate::cli::WebArgs;
use crate::client::Client;
use crate::render;

/// Runs `web` in its three forms.
pub async fn run(args: WebArgs, home: Home) -> Result<()> {
    if args.status {
        return status(&home, args.json).await;
    }
    if args.stop {
        return stop(home).await;
    }
    start(args, home).await
}

async fn start(args: WebArgs, home: Home) -> Result<()> {
    let host = parse_host(&args.host)?;
    let given = args.api_key.is_some() || args.api_key_file.is_some();
    if !host.is_loopback() && !given {
        bail!(
            "refusing to serve the API on {host} without an API key: give --api-key KEY or --api-key-file PATH (or keep the default --host 127.0.0.1)"
        );
    }
    if let Some(key) = &args.api_key {
        check_key(key).map_err(anyhow::Error::msg)?;
    }
    let key_file = match &args.api_key_file {
        Some(path) => {
            let path = std::path::absolute(path)
                .with_context(|| format!("cannot resolve {}", path.display()))?;
            settings::read_key(&path)?;
            Some(path)
        }
        None => None,
    };
    let client = Client::connect(home.clone()).await?;
    let previous: WebStatus = client.call::<WebStatusOf>("", &()).await?;
    let mut generated = None;
    let (key_file, key_source) = if let Some(key) = &args.api_key {
        write_key(&home.api_key_file(), key)?;
        (home.api_key_file(), KeySource::Given)
    } else if let Some(path) = key_file {
        (path, KeySource::Given)
    } else if let Some(previous) = previous.settings {
        (previous.key_file, previous.key_source)
    } else if settings::read_key(&home.api_key_file()).is_ok() {
        (home.api_key_file(), KeySource::Generated)
    } else {
        let key = generate_key()?;
        write_key(&home.api_key_file(), &key)?;
        generated = Some(key);
        (home.api_key_file(), KeySource::Generated)
    };
    let settings = WebSettings {
        host,
        port: args.port,
        key_file,
        key_source,
    };
    let status: WebStatus = match client.call::<WebSet>("", &settings).await {
        Ok(status) => status,
        Err(err) => {
            // A key nobody has seen must not stay behind to be reused.
            if generated.is_some() {
                let _ = std::fs::remove_file(home.api_key_file());
            }
            return Err(err);
        }
    };
    println!("[pmdaemon] {status}");
    if let Some(key) = generated {
        println!(
            "[pmdaemon] API key (shown once; kept in {}): {key}",
            home.api_key_file().display()
        );
    }
    Ok(())
}

async fn status(home: &Home, json: bool) -> Result<()> {
    let status = match Client::existing(home.clone()).await {
        Some(client) => client.call::<WebStatusOf>("", &()).await?,
        None => WebStatus {
            settings: settings::load(home)?,
            listening: Vec::new(),
            error: Some("the daemon is not running (the next command starts it)".into()),
        },
    };
    if json {
        println!("{}", render::json(&status)?);
    } else {
        println!("[pmdaemon] {status}");
    }
    Ok(())
}

async fn stop(home: Home) -> Result<()> {
    let status: WebStatus = match Client::existing(home.clone()).await {
        Some(client) => client.call::<WebUnset>("", &()).await?,
        None => {
            settings::remove(&home)?;
            WebStatus {
                settings: None,
                listening: Vec::new(),
                error: None,
            }
        }
    };
    println!("[pmdaemon] {status}");
    Ok(())
}

fn parse_host(host: &str) -> Result<IpAddr> {
    if host.eq_ignore_ascii_case("localhost") {
        return Ok(IpAddr::V4(Ipv4Addr::LOCALHOST));
    }
    host.trim_matches(|c| c == '[' || c == ']')
        .parse()
        .with_context(|| {
            format!("--host {host}: give an IP address (127.0.0.1, ::1, 0.0.0.0) or localhost")
        })
}

/// 32 random bytes from the kernel, in hex.
fn generate_key() -> Result<String> {
    let mut bytes = [0u8; 32];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("cannot read /dev/urandom to generate an API key")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

fn write_key(path: &Path, key: &str) -> Result<()> {
    pmdaemon_core::files::write_atomic(path, format!("{key}\n").as_bytes())?;
    Ok(())
}
