//! Turning what a user typed after `start` into a program and its arguments.

use std::path::{Path, PathBuf};

use crate::Error;

/// Splits a command line the way a POSIX shell splits words (quotes and
/// backslashes), without running a shell.
pub fn split_command_line(input: &str) -> Result<Vec<String>, Error> {
    let words = shell_words::split(input).map_err(|err| Error::InvalidCommand {
        input: input.to_string(),
        reason: err.to_string(),
    })?;
    if words.is_empty() {
        return Err(Error::InvalidCommand {
            input: input.to_string(),
            reason: "nothing to run".to_string(),
        });
    }
    Ok(words)
}

/// A path from a config file or a flag, as PM2 reads it: `~` and `~/…` are
/// the home directory, `"NULL"` and `/dev/null` mean no file (always
/// `/dev/null`), anything else is relative to `base`.
pub fn resolve_path(path: &str, base: &Path, home: Option<&str>) -> PathBuf {
    if matches!(path, "NULL" | "/dev/null") {
        return PathBuf::from("/dev/null");
    }
    match (path.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            base.join(format!("{home}{rest}"))
        }
        _ => base.join(path),
    }
}

/// The interpreter PM2 users expect for a script, chosen by its extension.
pub fn interpreter_for(script: &str) -> Option<&'static str> {
    match Path::new(script).extension()?.to_str()? {
        "js" | "mjs" | "cjs" => Some("node"),
        "py" => Some("python3"),
        "sh" => Some("bash"),
        _ => None,
    }
}

/// What will be executed for an app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invocation {
    /// The program handed to exec (a path or a name looked up in `PATH`).
    pub program: String,
    /// Its arguments.
    pub args: Vec<String>,
    /// The script file the interpreter runs, when there is one.
    pub script_file: Option<String>,
}

/// Decides the program and arguments from `script`, `args` and
/// `interpreter` (`None`: by extension; `"none"`: execute the script).
pub fn invocation(script: &str, args: &[String], interpreter: Option<&str>) -> Invocation {
    let interpreter = match interpreter {
        Some("none") | Some("") => None,
        Some(explicit) => Some(explicit.to_string()),
        None => interpreter_for(script).map(str::to_string),
    };
    match interpreter {
        Some(program) => Invocation {
            program,
            args: std::iter::once(script.to_string())
                .chain(args.iter().cloned())
                .collect(),
            script_file: Some(script.to_string()),
        },
        None => Invocation {
            program: script.to_string(),
            args: args.to_vec(),
            script_file: None,
        },
    }
}

/// PM2's default name: the script's file name without its extension.
pub fn default_name(script: &str) -> String {
    let path = Path::new(script);
    let stem = if interpreter_for(script).is_some() {
        path.file_stem()
    } else {
        path.file_name()
    };
    let raw = stem.and_then(|s| s.to_str()).unwrap_or("app");
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if crate::config::is_name_char(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches(['.', '-']);
    if trimmed.is_empty() || trimmed.chars().all(|c| c.is_ascii_digit()) || trimmed == "all" {
        format!("app-{trimmed}")
    } else {
        trimmed.to_string()
    }
}

/// The default name of a command line: for an interpreter given a script
/// (`node app.js`, `python3 worker.py`, `bash ./run.sh`) the script's name,
/// so that two such apps do not both get called `node`; otherwise the
/// program's (`python3 -m http.server` is `python3`, `sleep 300` is
/// `sleep`). A script is the first argument that is not an option, when it
/// has a script's extension or is a file in `cwd`.
pub fn default_name_for(program: &str, args: &[String], cwd: &Path) -> String {
    let base = Path::new(program)
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(program);
    let is_interpreter = ["node", "nodejs", "deno", "bun", "ts-node", "tsx"].contains(&base)
        || ["python", "bash", "sh", "zsh", "dash", "ruby", "perl", "php"]
            .iter()
            .any(|i| {
                base.starts_with(i)
                    && base[i.len()..]
                        .chars()
                        .all(|c| c.is_ascii_digit() || c == '.')
            });
    let script = args.iter().find(|a| !a.starts_with('-')).filter(|script| {
        // `-c` / `-e` / `-m` take code or a module, not a script.
        !args
            .iter()
            .take_while(|a| a != script)
            .any(|a| matches!(a.as_str(), "-c" | "-e" | "-m" | "--eval"))
    });
    match script {
        Some(script)
            if is_interpreter
                && (interpreter_for(script).is_some()
                    || matches!(
                        Path::new(script.as_str())
                            .extension()
                            .and_then(|e| e.to_str()),
                        Some("ts" | "rb" | "pl" | "php")
                    )
                    || cwd.join(script).is_file()) =>
        {
            let stem = Path::new(script.as_str())
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or(script);
            default_name(stem)
        }
        _ => default_name(program),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_interpreter_running_a_script_is_named_after_the_script() {
        let cwd = Path::new("/nonexistent");
        let name = |line: &str| {
            let words = split_command_line(line).unwrap();
            default_name_for(&words[0], &words[1..], cwd)
        };
        assert_eq!(name("node cpu-heavy.js"), "cpu-heavy");
        assert_eq!(name("node --max-old-space-size=512 server.mjs"), "server");
        assert_eq!(name("/usr/bin/python3.11 worker.py --verbose"), "worker");
        assert_eq!(name("bash ./deploy.sh"), "deploy");
        assert_eq!(name("python3 -m http.server 8000"), "python3");
        assert_eq!(name("sh -c 'echo hi; sleep 1'"), "sh");
        assert_eq!(name("node -e 'x.js'"), "node");
        assert_eq!(name("sleep 300"), "sleep");
        assert_eq!(name("./app.py"), "app");
        assert_eq!(name("node"), "node");
    }

    #[test]
    fn quoted_command_lines_split_like_a_shell() {
        assert_eq!(
            split_command_line("python3 -m http.server 8000").unwrap(),
            ["python3", "-m", "http.server", "8000"]
        );
        assert_eq!(
            split_command_line(r#"sh -c 'echo "a b"; exit 3'"#).unwrap(),
            ["sh", "-c", r#"echo "a b"; exit 3"#]
        );
        assert!(split_command_line("echo 'unterminated").is_err());
        assert!(split_command_line("   ").is_err());
    }

    #[test]
    fn interpreter_follows_the_extension_unless_overridden() {
        let py = invocation("app.py", &["--x".into()], None);
        assert_eq!(py.program, "python3");
        assert_eq!(py.args, ["app.py", "--x"]);
        assert_eq!(invocation("server.mjs", &[], None).program, "node");
        assert_eq!(invocation("run.sh", &[], None).program, "bash");
        let direct = invocation("./worker", &["--verbose".into()], None);
        assert_eq!(direct.program, "./worker");
        assert_eq!(direct.args, ["--verbose"]);
        assert_eq!(invocation("app.py", &[], Some("pypy3")).program, "pypy3");
        assert_eq!(invocation("run.sh", &[], Some("none")).program, "run.sh");
    }

    #[test]
    fn default_names_come_from_the_script() {
        assert_eq!(default_name("app.py"), "app");
        assert_eq!(default_name("/srv/api/server.js"), "server");
        assert_eq!(default_name("python3"), "python3");
        assert_eq!(default_name("./worker.bin"), "worker.bin");
        assert_eq!(default_name("123"), "app-123");
    }
}

/// `path` without `.` components and with `..` applied to what precedes it
/// (lexically, as a user reads a path: `/tmp/app/./x` is `/tmp/app/x`).
pub fn clean_path(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                let popped = matches!(clean.components().next_back(), Some(Component::Normal(_)))
                    && clean.pop();
                if !popped && !clean.has_root() {
                    clean.push("..");
                }
            }
            other => clean.push(other.as_os_str()),
        }
    }
    if clean.as_os_str().is_empty() {
        clean.push(".");
    }
    clean
}

#[cfg(test)]
mod clean_path_tests {
    use super::clean_path;
    use std::path::Path;

    #[test]
    fn paths_are_shown_as_a_user_reads_them() {
        let cases = [
            ("/tmp/app/./nosuch", "/tmp/app/nosuch"),
            ("/tmp/app/../x", "/tmp/x"),
            ("/../x", "/x"),
            ("a/./b/../c", "a/c"),
            ("../a", "../a"),
            (".", "."),
        ];
        for (raw, clean) in cases {
            assert_eq!(clean_path(Path::new(raw)), Path::new(clean), "{raw}");
        }
    }
}
