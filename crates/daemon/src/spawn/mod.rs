//! Turning an app's configuration into a running process: resolving the
//! program, building the environment, and signalling process groups. The
//! OS calls sit in [`unix`].

mod unix;

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use pmdaemon_core::command::{clean_path, invocation, Invocation};
use pmdaemon_core::config::AppConfig;

pub use unix::{
    group_alive, kill_escaped, listen_dual_stack, signal_group, spawn, stop_signal, Spawned,
    CHECK_MARK,
};

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
            return Err(Error::BadCommand(format!(
                "working directory {} is not a directory",
                cwd.display()
            )))
        }
        Err(_) => {
            return Err(Error::BadCommand(format!(
                "working directory {} does not exist",
                cwd.display()
            )))
        }
    }
    let Invocation {
        program,
        args,
        script_file,
    } = invocation(&config.script, &config.args, config.interpreter.as_deref());
    if let Some(script) = &script_file {
        let path = clean_path(&cwd.join(script));
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_dir() => {
                return Err(Error::BadCommand(format!(
                    "script {} is a directory, not a file",
                    path.display()
                )))
            }
            Ok(_) => {}
            Err(_) => {
                return Err(Error::BadCommand(format!(
                    "script {} does not exist",
                    path.display()
                )))
            }
        }
    }
    let program = resolve_program(&program, &cwd, env.get("PATH").map(String::as_str))?;
    Ok(Plan {
        program,
        args,
        cwd,
        env,
        listen_socket: None,
        private_port: None,
    })
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
    Err(last_error.unwrap_or_else(|| {
        Error::BadCommand(format!(
            "program '{program}' not found: it is not a file in {} and not on PATH",
            cwd.display()
        ))
    }))
}

fn check_executable(path: &Path) -> Result<(), Error> {
    let meta = std::fs::metadata(path)
        .map_err(|_| Error::BadCommand(format!("program {} does not exist", path.display())))?;
    check_metadata(path, &meta)
}

fn check_metadata(path: &Path, meta: &std::fs::Metadata) -> Result<(), Error> {
    if meta.is_dir() {
        return Err(Error::BadCommand(format!(
            "program {} is a directory, not an executable",
            path.display()
        )));
    }
    if meta.permissions().mode() & 0o111 == 0 {
        let hint = match path.extension().and_then(OsStr::to_str) {
            Some(_) => " (give it an --interpreter, or chmod +x it)",
            None => " (chmod +x it)",
        };
        return Err(Error::BadCommand(format!(
            "program {} is not executable{hint}",
            path.display()
        )));
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
