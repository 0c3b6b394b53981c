//! Turning an app's configuration into a running process: resolving the
//! program, building the environment, and signalling process groups. The
//! OS calls sit in [`unix`].

mod image;
pub mod spawner;
mod unix;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pmdaemon_core::command::{clean_path, Invocation};
use pmdaemon_core::config::AppConfig;

pub use unix::{
    group_alive, kill_escaped, listen_dual_stack, signal_group, spawn, stop_signal, Escapees,
    Spawned, CHECK_MARK, IPC_FD,
};

use crate::error::{PathProblem, PathRole};
use crate::Error;

/// Everything needed to exec one instance.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The program (absolute once resolved).
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
    /// Working directory.
    pub cwd: PathBuf,
    /// The complete environment.
    pub env: BTreeMap<String, String>,
    /// A listening socket the process inherits as fd 3, with `LISTEN_PID`
    /// set to its own pid (systemd socket activation).
    pub listen_socket: Option<std::sync::Arc<std::net::TcpListener>>,
    /// In proxy mode, the loopback port the process listens on (its
    /// `PORT`); the daemon forwards the shared port to it.
    pub private_port: Option<u16>,
    /// The user and group the process runs as (`uid` / `gid`), when they
    /// differ from the daemon's.
    pub user: Option<(u32, u32)>,
    /// stdout goes nowhere (its log is `/dev/null`): no pipe, no pump.
    pub discard_stdout: bool,
    /// stderr goes nowhere.
    pub discard_stderr: bool,
    /// The child's end of a Node IPC channel, which the process inherits as
    /// fd [`IPC_FD`] (`NODE_CHANNEL_FD`).
    pub ipc_channel: Option<std::sync::Arc<std::os::fd::OwnedFd>>,
}

impl Plan {
    /// Whether the program is Node: `node`/`nodejs` (also behind a
    /// symlink such as nvm's), or a script whose `#!` line runs node.
    pub fn runs_node(&self) -> bool {
        let is_node = |path: &Path| {
            path.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|name| name == "node" || name == "nodejs")
        };
        if is_node(&self.program) {
            return true;
        }
        if let Ok(real) = std::fs::canonicalize(&self.program) {
            if is_node(&real) {
                return true;
            }
        }
        shebang_runs_node(&self.program)
    }
}

/// Whether the file starts with a `#!` line that runs node
/// (`#!/usr/bin/env node`, `#!/usr/local/bin/node --flag`).
fn shebang_runs_node(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 256];
    let Ok(read) = std::fs::File::open(path).and_then(|mut f| f.read(&mut head)) else {
        return false;
    };
    let head = &head[..read];
    if !head.starts_with(b"#!") {
        return false;
    }
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(&line[2..])
        .split_whitespace()
        .take(2)
        .any(|word| {
            let base = word.rsplit('/').next().unwrap_or(word);
            base == "node" || base == "nodejs"
        })
}

/// What sets one instance apart from its siblings.
#[derive(Debug, Clone, Copy)]
pub struct InstanceEnv<'a> {
    /// Its index in the app.
    pub index: u32,
    /// Its name.
    pub name: &'a str,
    /// Its port, if it has one.
    pub port: Option<u16>,
}

/// The environment an instance sees: the caller's, then the app's `env`,
/// then pmdaemon's own variables.
pub fn environment(
    config: &AppConfig,
    inherited: &BTreeMap<String, String>,
    instance: &InstanceEnv<'_>,
) -> BTreeMap<String, String> {
    let InstanceEnv {
        index,
        name: instance_name,
        port,
    } = *instance;
    let mut env = inherited.clone();
    env.extend(config.env.iter().map(|(k, v)| (k.clone(), v.clone())));
    if let Some(var) = &config.increment_var {
        // PM2: each instance gets the variable's value plus its index.
        if let Some(base) = env.get(var).and_then(|v| v.trim().parse::<i64>().ok()) {
            env.insert(var.clone(), (base + i64::from(index)).to_string());
        }
    }
    if let Some(port) = port {
        env.insert("PORT".into(), port.to_string());
    }
    env.insert("PM2_INSTANCE_ID".into(), index.to_string());
    let instance_var = if config.instance_var.is_empty() {
        "NODE_APP_INSTANCE"
    } else {
        config.instance_var.as_str()
    };
    env.insert(instance_var.into(), index.to_string());
    env.insert("PMDAEMON_APP_NAME".into(), config.name.clone());
    env.insert("PMDAEMON_INSTANCE_NAME".into(), instance_name.to_string());
    env
}

/// Resolves and checks the program of an app before anything is registered,
/// so that a typo is a one-line error instead of a crash loop.
pub fn plan(
    config: &AppConfig,
    inherited: &BTreeMap<String, String>,
    instance: &InstanceEnv<'_>,
) -> Result<Plan, Error> {
    let env = environment(config, inherited, instance);
    let cwd = match &config.cwd {
        Some(cwd) => clean_path(cwd),
        None => std::env::current_dir().map_err(|err| Error::io("read", ".", err))?,
    };
    match std::fs::metadata(&cwd) {
        Ok(meta) if meta.is_dir() => {}
        Ok(_) => {
            return Err(Error::Unusable {
                role: PathRole::WorkingDirectory,
                path: cwd,
                problem: PathProblem::NotADirectory,
            })
        }
        Err(_) => {
            return Err(Error::Unusable {
                role: PathRole::WorkingDirectory,
                path: cwd,
                problem: PathProblem::Missing,
            })
        }
    }
    let Invocation {
        program,
        args,
        script_file,
    } = config.invocation();
    if let Some(script) = &script_file {
        let path = clean_path(&cwd.join(script));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::Unusable {
                    role: PathRole::Script,
                    path,
                    problem: PathProblem::IsADirectory { needed: "a file" },
                })
            }
            Ok(_) => {}
            Err(_) => {
                return Err(Error::Unusable {
                    role: PathRole::Script,
                    path,
                    problem: PathProblem::Missing,
                })
            }
        }
    }
    let program = resolve_program(&program, &cwd, env.get("PATH").map(String::as_str))?;
    let user = user_of(config)?;
    let mut env = env;
    if let Some((uid, _)) = user {
        as_user(&mut env, config, uid);
    }
    Ok(Plan {
        program,
        args,
        cwd,
        env,
        listen_socket: None,
        private_port: None,
        ipc_channel: None,
        user,
        discard_stdout: false,
        discard_stderr: false,
    })
}

/// An app run as another user gets that user's `HOME`, `USER` and
/// `LOGNAME` (as `su -` gives them), unless its own `env` sets them: the
/// caller's would point its caches and dotfiles at a home it cannot write.
fn as_user(env: &mut BTreeMap<String, String>, config: &AppConfig, uid: u32) {
    let Ok(Some(entry)) = nix::unistd::User::from_uid(nix::unistd::Uid::from_raw(uid)) else {
        return;
    };
    let home = entry.dir.display().to_string();
    for (key, value) in [
        ("HOME", home),
        ("USER", entry.name.clone()),
        ("LOGNAME", entry.name),
    ] {
        if !config.env.contains_key(key) {
            env.insert(key.to_string(), value);
        }
    }
}

/// The uid and gid `config` asks for (`uid` alone takes that user's
/// group), or None when it asks for none or for the daemon's own. Only a
/// daemon run as root can switch; otherwise the app is refused.
pub fn user_of(config: &AppConfig) -> Result<Option<(u32, u32)>, Error> {
    use nix::unistd::{Gid, Group, Uid, User};
    if config.uid.is_none() && config.gid.is_none() {
        return Ok(None);
    }
    // The uid, and the group that goes with it when none is given.
    let (uid, user_gid) = match &config.uid {
        None => (Uid::current(), None),
        Some(text) => match text.parse::<u32>() {
            Ok(number) => {
                let uid = Uid::from_raw(number);
                let entry = User::from_uid(uid).ok().flatten();
                // A uid without a passwd entry gets the group of its number.
                (uid, Some(entry.map_or(Gid::from_raw(number), |u| u.gid)))
            }
            Err(_) => match User::from_name(text) {
                Ok(Some(user)) => (user.uid, Some(user.gid)),
                _ => {
                    return Err(Error::UnknownUser {
                        kind: "user",
                        name: text.clone(),
                    })
                }
            },
        },
    };
    let gid = match &config.gid {
        None => user_gid.unwrap_or_else(Gid::current),
        Some(text) => match text.parse::<u32>() {
            Ok(number) => Gid::from_raw(number),
            Err(_) => match Group::from_name(text) {
                Ok(Some(group)) => group.gid,
                _ => {
                    return Err(Error::UnknownUser {
                        kind: "group",
                        name: text.clone(),
                    })
                }
            },
        },
    };
    if uid == Uid::current() && gid == Gid::current() {
        return Ok(None);
    }
    if !Uid::effective().is_root() {
        return Err(Error::CannotSwitchUser {
            uid: uid.as_raw(),
            gid: gid.as_raw(),
            daemon_uid: Uid::current().as_raw(),
        });
    }
    Ok(Some((uid.as_raw(), gid.as_raw())))
}

/// Finds `program` as exec would (a path if it has a slash, else on `PATH`)
/// and says precisely why it cannot be run.
pub fn resolve_program(
    program: &str,
    cwd: &Path,
    path_var: Option<&str>,
) -> Result<PathBuf, Error> {
    if program.contains('/') {
        let path = clean_path(&cwd.join(program));
        return check_executable(&path).map(|()| path);
    }
    let search = path_var.unwrap_or("/usr/local/bin:/usr/bin:/bin");
    let mut last_error = None;
    for dir in search.split(':').filter(|d| !d.is_empty()) {
        let candidate = cwd.join(dir).join(program);
        // One stat per directory: most of PATH does not have it.
        let Ok(meta) = std::fs::metadata(&candidate) else {
            continue;
        };
        match check_metadata(&candidate, &meta) {
            Ok(()) => return Ok(candidate),
            Err(err) => last_error = Some(err),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::ProgramNotFound {
        program: program.to_string(),
        cwd: cwd.to_path_buf(),
    }))
}

fn check_executable(path: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(path).map_err(|_| Error::Unusable {
        role: PathRole::Program,
        path: path.to_path_buf(),
        problem: PathProblem::Missing,
    })?;
    check_metadata(path, &meta)
}

fn check_metadata(path: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    let unusable = |problem| Error::Unusable {
        role: PathRole::Program,
        path: path.to_path_buf(),
        problem,
    };
    if meta.is_dir() {
        return Err(unusable(PathProblem::IsADirectory {
            needed: "an executable",
        }));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        let hint = match path.extension().and_then(OsStr::to_str) {
            Some(_) => " (give it an --interpreter, or chmod +x it)",
            None => " (chmod +x it)",
        };
        return Err(unusable(PathProblem::NotExecutable { hint }));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_directory_and_non_executable_programs_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("notes.txt");
        std::fs::write(&plain, "hi").unwrap();
        let err = |p: &str| {
            resolve_program(p, dir.path(), Some("/bin"))
                .unwrap_err()
                .to_string()
        };
        assert!(
            err("./missing").contains("does not exist"),
            "{}",
            err("./missing")
        );
        assert!(err("./notes.txt").contains("is not executable"));
        assert!(err(dir.path().to_str().unwrap()).contains("is a directory"));
        assert!(err("no-such-program-xyz").contains("not on PATH"));
        assert_eq!(
            resolve_program("sh", dir.path(), Some("/nonexistent:/bin")).unwrap(),
            PathBuf::from("/bin/sh")
        );
    }

    #[test]
    fn node_is_recognised_by_name_link_or_shebang() {
        let dir = tempfile::tempdir().unwrap();
        let plan = |program: PathBuf| Plan {
            program,
            args: Vec::new(),
            cwd: dir.path().to_path_buf(),
            env: BTreeMap::new(),
            listen_socket: None,
            private_port: None,
            ipc_channel: None,
            user: None,
            discard_stdout: false,
            discard_stderr: false,
        };
        assert!(plan(PathBuf::from("/opt/node/bin/node")).runs_node());
        let script = dir.path().join("tool");
        std::fs::write(&script, "#!/usr/bin/env node\nconsole.log(1)\n").unwrap();
        assert!(plan(script.clone()).runs_node());
        std::fs::write(&script, "#!/bin/sh\necho node\n").unwrap();
        assert!(!plan(script.clone()).runs_node());
        let link = dir.path().join("js");
        std::os::unix::fs::symlink(dir.path().join("nodejs"), &link).unwrap();
        std::fs::write(dir.path().join("nodejs"), "").unwrap();
        assert!(plan(link).runs_node());
        assert!(!plan(PathBuf::from("/usr/bin/python3")).runs_node());
    }

    #[test]
    fn uid_and_gid_name_a_user_and_group_or_are_refused() {
        let app = |uid: Option<&str>, gid: Option<&str>| AppConfig {
            name: "web".into(),
            uid: uid.map(str::to_string),
            gid: gid.map(str::to_string),
            ..AppConfig::default()
        };
        assert!(user_of(&app(None, None)).unwrap().is_none());
        let own = nix::unistd::Uid::current().to_string();
        assert!(
            user_of(&app(Some(&own), None)).unwrap().is_none(),
            "the daemon's own user needs no switch"
        );
        let err = user_of(&app(Some("no-such-user-x"), None)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no user named 'no-such-user-x' on this system"
        );
        let err = user_of(&app(None, Some("no-such-group-x"))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "no group named 'no-such-group-x' on this system"
        );
        match user_of(&app(Some("65534"), Some("65534"))) {
            Ok(switch) => {
                assert!(nix::unistd::Uid::effective().is_root());
                assert_eq!(switch, Some((65534, 65534)));
            }
            Err(err) => assert!(
                err.to_string()
                    .contains("only a daemon run as root can switch users"),
                "{err}"
            ),
        }
    }

    #[test]
    fn pmdaemon_variables_override_the_apps_env() {
        let config = AppConfig {
            name: "web".into(),
            env: [("A".to_string(), "app".to_string())].into(),
            ..AppConfig::default()
        };
        let inherited = [
            ("A".to_string(), "shell".to_string()),
            ("B".to_string(), "shell".to_string()),
        ]
        .into();
        let env = environment(
            &config,
            &inherited,
            &InstanceEnv {
                index: 2,
                name: "web-2",
                port: Some(3002),
            },
        );
        assert_eq!(env["PORT"], "3002");
        assert_eq!(env["A"], "app");
        assert_eq!(env["B"], "shell");
        assert_eq!(env["PM2_INSTANCE_ID"], "2");
        assert_eq!(env["NODE_APP_INSTANCE"], "2");
        assert_eq!(env["PMDAEMON_INSTANCE_NAME"], "web-2");
        assert_eq!(env["PMDAEMON_APP_NAME"], "web");
        let renamed = AppConfig {
            instance_var: "INSTANCE".into(),
            ..config
        };
        let env = environment(
            &renamed,
            &inherited,
            &InstanceEnv {
                index: 1,
                name: "web-1",
                port: None,
            },
        );
        assert_eq!(env["INSTANCE"], "1");
        let incremented = AppConfig {
            increment_var: Some("WS_PORT".into()),
            env: [("WS_PORT".to_string(), "4000".to_string())].into(),
            ..renamed.clone()
        };
        let instance = |index| InstanceEnv {
            index,
            name: "web-x",
            port: None,
        };
        assert_eq!(
            environment(&incremented, &inherited, &instance(0))["WS_PORT"],
            "4000"
        );
        assert_eq!(
            environment(&incremented, &inherited, &instance(3))["WS_PORT"],
            "4003"
        );
        assert_eq!(env["PM2_INSTANCE_ID"], "1");
        assert!(!env.contains_key("NODE_APP_INSTANCE"));
        assert!(!env.contains_key("PORT"));
    }
}
