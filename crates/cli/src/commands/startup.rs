//! `pmdaemon startup` / `unstartup`: a systemd unit that runs the daemon at
//! boot.
//!
//! The unit runs `pmdaemon daemon` as the user's own daemon (same
//! `PMDAEMON_HOME`), which, as whenever a daemon starts, reads `state.json`
//! and brings back every app that was running: nothing else needs saving.
//! `Type=notify`: the daemon sends `READY=1` once its socket accepts
//! requests. `KillMode=mixed`: stopping the unit sends SIGTERM to the
//! daemon alone, which stops every app gracefully with the app's own stop
//! signal and `kill_timeout` (and keeps the table, so the next boot brings
//! them back); only what is still there when `TimeoutStopSec` runs out gets
//! SIGKILL. With the default `control-group`, systemd would signal every
//! app at once behind the daemon's back.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use nix::unistd::{Uid, User};
use pmdaemon_core::home::Home;

use crate::cli::{StartupArgs, UnstartupArgs};

/// Everything the unit says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitSpec {
    /// The user the daemon runs as; `None` for a `systemctl --user` unit.
    pub user: Option<String>,
    /// The daemon's home.
    pub home: PathBuf,
    /// The `pmdaemon` binary.
    pub binary: PathBuf,
    /// `PATH` for the apps' interpreters (node, python3, …).
    pub path: String,
}

/// The unit file's text.
pub fn unit_text(spec: &UnitSpec) -> String {
    let who = spec.user.as_deref().unwrap_or("this user");
    let user_line = spec
        .user
        .as_ref()
        .map(|user| format!("User={user}\n"))
        .unwrap_or_default();
    let wanted_by = if spec.user.is_some() {
        "multi-user.target"
    } else {
        "default.target"
    };
    format!(
        "# Written by `pmdaemon startup`; remove with `pmdaemon unstartup`.\n\
         # At boot the daemon of {who} starts and brings back the apps that were\n\
         # running (its state.json). Stopping the unit signals the daemon alone\n\
         # (KillMode=mixed), which stops every app gracefully and keeps the table.\n\
         [Unit]\n\
         Description=pmdaemon process manager ({who})\n\
         Documentation={}\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         Type=notify\n\
         {user_line}\
         Environment={}\n\
         Environment={}\n\
         ExecStart={} daemon\n\
         KillMode=mixed\n\
         TimeoutStopSec=90\n\
         Restart=on-failure\n\
         RestartSec=2\n\
         LimitNOFILE=65536\n\
         \n\
         [Install]\n\
         WantedBy={wanted_by}\n",
        env!("CARGO_PKG_REPOSITORY"),
        quote(&format!("PMDAEMON_HOME={}", spec.home.display())),
        quote(&format!("PATH={}", spec.path)),
        quote(&spec.binary.display().to_string()),
    )
}

/// A value as systemd reads it: in double quotes when it holds spaces or
/// quotes, with `%` doubled (systemd's specifier character).
fn quote(value: &str) -> String {
    let value = value.replace('%', "%%");
    if value.contains([' ', '"', '\\', '\'']) {
        format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        value
    }
}

/// Whether systemd is the running init (what `sd_booted()` checks).
pub fn systemd_running() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

fn not_systemd() -> anyhow::Error {
    let init = std::fs::read_to_string("/proc/1/comm")
        .map(|c| c.trim().to_string())
        .unwrap_or_else(|_| "unknown".into());
    anyhow::anyhow!(
        "systemd is not the init system here (PID 1 is '{init}'), so a unit would never start; \
         `pmdaemon startup --print` prints the unit to install where systemd runs, and in a \
         container make `pmdaemon run ecosystem.json` the container's command instead"
    )
}

/// The user a unit is for: `--user`, else whoever ran `sudo`, else us.
fn target_user(name: Option<&str>) -> Result<User> {
    let name = match name {
        Some(name) => Some(name.to_string()),
        None if Uid::effective().is_root() => {
            std::env::var("SUDO_USER").ok().filter(|u| !u.is_empty())
        }
        None => None,
    };
    match name {
        Some(name) => User::from_name(&name)
            .with_context(|| format!("cannot look up user '{name}'"))?
            .with_context(|| format!("there is no user named '{name}'")),
        None => User::from_uid(Uid::effective())
            .context("cannot look up the current user")?
            .context("the current user has no entry in the user database"),
    }
}

/// The unit for `args`, and the file it goes to.
fn plan(user: Option<&str>, systemd_user: bool, home: &Home) -> Result<(UnitSpec, PathBuf)> {
    let account = target_user(user)?;
    let is_us = account.uid == Uid::effective();
    // Our own home keeps its PMDAEMON_HOME; another user's is the default.
    let root = if is_us && std::env::var_os("PMDAEMON_HOME").is_some() {
        std::path::absolute(home.root()).context("cannot resolve PMDAEMON_HOME")?
    } else {
        account.dir.join(".pmdaemon")
    };
    let binary = std::env::current_exe()
        .and_then(|exe| exe.canonicalize())
        .context("cannot find the pmdaemon binary")?;
    let spec = UnitSpec {
        user: (!systemd_user).then(|| account.name.clone()),
        home: root,
        binary,
        path: std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".to_string()),
    };
    let file = if systemd_user {
        let config = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| account.dir.join(".config"));
        config.join("systemd/user/pmdaemon.service")
    } else {
        PathBuf::from(format!(
            "/etc/systemd/system/pmdaemon-{}.service",
            account.name
        ))
    };
    Ok((spec, file))
}

fn systemctl(user: bool, args: &[&str]) -> Result<()> {
    let mut command = Command::new("systemctl");
    if user {
        command.arg("--user");
    }
    let status = command
        .args(args)
        .status()
        .context("cannot run systemctl")?;
    if !status.success() {
        bail!("`systemctl {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// `startup`: prints the unit, or writes and enables it.
pub fn install(args: StartupArgs, home: &Home) -> Result<()> {
    let (spec, file) = plan(args.user.as_deref(), args.systemd_user, home)?;
    let text = unit_text(&spec);
    if args.print {
        print!("{text}");
        return Ok(());
    }
    if !systemd_running() {
        return Err(not_systemd());
    }
    if !args.systemd_user && !Uid::effective().is_root() {
        bail!(
            "writing {} needs root: run `sudo pmdaemon startup`, or `pmdaemon startup --systemd-user` for a unit of your own systemd instance",
            file.display()
        );
    }
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    std::fs::write(&file, &text).with_context(|| format!("cannot write {}", file.display()))?;
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("pmdaemon.service")
        .to_string();
    systemctl(args.systemd_user, &["daemon-reload"])?;
    systemctl(args.systemd_user, &["enable", &name])?;
    let who = spec.user.clone().unwrap_or_else(|| "you".to_string());
    println!(
        "[pmdaemon] wrote {} and enabled {name}: at boot the daemon of {who} (PMDAEMON_HOME={}) starts and brings back the apps that were running",
        file.display(),
        spec.home.display()
    );
    let sudo = if args.systemd_user {
        "systemctl --user"
    } else {
        "sudo systemctl"
    };
    println!("[pmdaemon] to hand the running daemon over to systemd now: pmdaemon kill && {sudo} start {name}");
    if args.systemd_user {
        println!("[pmdaemon] for it to start at boot without a login: loginctl enable-linger");
    }
    Ok(())
}

/// `unstartup`: disables and removes the unit.
pub fn remove(args: UnstartupArgs) -> Result<()> {
    let (_, file) = plan(args.user.as_deref(), args.systemd_user, &Home::from_env())?;
    if !file.exists() {
        println!(
            "[pmdaemon] no unit at {}; nothing to remove",
            file.display()
        );
        return Ok(());
    }
    let name = file
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or("pmdaemon.service")
        .to_string();
    if systemd_running() {
        systemctl(args.systemd_user, &["disable", &name])?;
    }
    std::fs::remove_file(&file).with_context(|| format!("cannot remove {}", file.display()))?;
    if systemd_running() {
        systemctl(args.systemd_user, &["daemon-reload"])?;
    }
    println!(
        "[pmdaemon] removed {}; the daemon no longer starts at boot (a running one goes on)",
        file.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_stops_the_apps_through_the_daemon() {
        let text = unit_text(&UnitSpec {
            user: Some("alice".into()),
            home: "/home/alice/my apps/.pmdaemon".into(),
            binary: "/usr/local/bin/pmdaemon".into(),
            path: "/usr/bin:/bin".into(),
        });
        assert!(text.contains("\nUser=alice\n"), "{text}");
        assert!(text.contains("\nKillMode=mixed\n"), "{text}");
        assert!(text.contains("\nType=notify\n"), "{text}");
        assert!(text.contains("Environment=\"PMDAEMON_HOME=/home/alice/my apps/.pmdaemon\""));
        assert!(text.contains("ExecStart=/usr/local/bin/pmdaemon daemon\n"));
        assert!(text.contains("WantedBy=multi-user.target"));
    }

    #[test]
    fn a_user_unit_has_no_user_line_and_starts_with_the_session() {
        let text = unit_text(&UnitSpec {
            user: None,
            home: "/h/.pmdaemon".into(),
            binary: "/b/pmdaemon".into(),
            path: "/bin".into(),
        });
        assert!(!text.contains("User="), "{text}");
        assert!(text.contains("WantedBy=default.target"), "{text}");
        assert_eq!(quote("50%"), "50%%");
    }
}

#[cfg(test)]
mod example {
    use super::*;

    /// examples/pmdaemon.service is what `startup --print --user deploy`
    /// writes for an installed binary (regenerate with
    /// PMDAEMON_UPDATE_EXAMPLES=1).
    #[test]
    fn the_example_unit_is_what_startup_writes() {
        let text = unit_text(&UnitSpec {
            user: Some("deploy".into()),
            home: "/home/deploy/.pmdaemon".into(),
            binary: "/usr/local/bin/pmdaemon".into(),
            path: "/usr/local/bin:/usr/bin:/bin".into(),
        });
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/pmdaemon.service");
        if std::env::var_os("PMDAEMON_UPDATE_EXAMPLES").is_some() {
            std::fs::write(&path, &text).unwrap();
        }
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
