//! The sizes pmdaemon refuses to go past, in one place so that every side
//! (the CLI reading a file, the daemon checking a request) says the same
//! number. The socket's request limit is [`crate::api::MAX_SOCKET_BODY`].

use std::collections::BTreeMap;

use crate::Error;

/// The largest ecosystem file read (after evaluation, for JavaScript), the
/// same for `validate` and `start`.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// The most variables an app's `env` may hold.
pub const MAX_ENV_VARS: usize = 1_000;
/// The most bytes an app's `env` may hold (names, values and one `=` and
/// one NUL each, as they take room in the process).
pub const MAX_ENV_BYTES: usize = 256 * 1024;

/// An `env` small enough to be written to `state.json` on every change and
/// passed to `execve` (which refuses much more).
pub fn check_env(env: &BTreeMap<String, String>) -> Result<(), Error> {
    check_env_entries(env)?;
    let bytes: usize = env.iter().map(|(k, v)| k.len() + v.len() + 2).sum();
    let reason = if env.len() > MAX_ENV_VARS {
        format!(
            "{} variables is more than an app may have ({MAX_ENV_VARS})",
            env.len()
        )
    } else if bytes > MAX_ENV_BYTES {
        format!("{bytes} bytes of variables is more than an app may have (256 KiB)")
    } else {
        return Ok(());
    };
    Err(Error::InvalidValue {
        field: "env",
        reason,
    })
}

/// Variables `execve` can pass: a name that is not empty and holds no `=`,
/// and no NUL byte anywhere. Checked on every environment a request
/// carries (the app's `env` and the caller's), so that a bad one is refused
/// before it is saved instead of failing every start after it.
pub fn check_env_entries(env: &BTreeMap<String, String>) -> Result<(), Error> {
    for (name, value) in env {
        let reason = if name.is_empty() {
            "a variable has an empty name".to_string()
        } else if name.contains('=') {
            format!("the variable name {name:?} holds '='")
        } else if name.contains('\0') || value.contains('\0') {
            format!("the variable {name:?} holds a NUL byte")
        } else {
            continue;
        };
        return Err(Error::InvalidValue {
            field: "env",
            reason,
        });
    }
    Ok(())
}

/// A `max_memory_restart` that can work: 0 would restart every sample.
pub fn check_max_memory(bytes: Option<u64>) -> Result<(), Error> {
    match bytes {
        Some(0) => Err(Error::InvalidValue {
            field: "max_memory_restart",
            reason: "0 would restart the app on every check; give a size such as 512M, or leave it out for no limit".into(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn variables_execve_cannot_pass_are_refused() {
        let env = |name: &str, value: &str| {
            std::collections::BTreeMap::from([(name.to_string(), value.to_string())])
        };
        assert!(super::check_env_entries(&env("PORT", "3000")).is_ok());
        for (name, value) in [("", "x"), ("A=B", "x"), ("A\0", "x"), ("A", "x\0y")] {
            let err = super::check_env(&env(name, value)).unwrap_err().to_string();
            assert!(err.starts_with("invalid env: "), "{err}");
        }
    }

    use super::*;

    #[test]
    fn env_limits_count_variables_and_bytes() {
        let many: BTreeMap<String, String> = (0..=MAX_ENV_VARS)
            .map(|i| (format!("V{i}"), String::new()))
            .collect();
        assert!(check_env(&many)
            .unwrap_err()
            .to_string()
            .contains("1001 variables"));
        let large = BTreeMap::from([("BIG".to_string(), "x".repeat(MAX_ENV_BYTES))]);
        assert!(check_env(&large)
            .unwrap_err()
            .to_string()
            .contains("256 KiB"));
        assert!(check_env(&BTreeMap::from([("A".into(), "1".into())])).is_ok());
        assert!(check_max_memory(Some(0)).is_err());
        assert!(check_max_memory(Some(1)).is_ok() && check_max_memory(None).is_ok());
    }
}
