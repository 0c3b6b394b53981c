//! Values of the command line that clap hands to a parser of ours: what
//! they mean, and, where PM2 gives the same short flag another meaning
//! (`-e`, `-p`, `-c`), a hint for PM2 users in the error.

use std::path::PathBuf;
use std::str::FromStr;

use pmdaemon_core::ports::PortSpec;

use super::EnvArg;

/// `pmdaemon scale <app> N | +N | -N`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// That many instances.
    To(u32),
    /// That many more (or, negative, fewer) than there are.
    By(i32),
}

pub fn parse_scale(input: &str) -> Result<Scale, String> {
    let relative = input.starts_with(['+', '-']);
    let wrong = || format!("'{input}' is not a number of instances (4) or a change (+2, -1)");
    if relative {
        input.parse::<i32>().map(Scale::By).map_err(|_| wrong())
    } else {
        input.parse::<u32>().map(Scale::To).map_err(|_| wrong())
    }
}

pub fn parse_env(input: &str) -> Result<EnvArg, String> {
    match input.split_once('=') {
        Some((key, value)) if !key.is_empty() => {
            Ok(EnvArg::Var(key.to_string(), value.to_string()))
        }
        Some(_) => Err(format!("'{input}' is not KEY=VALUE")),
        None if !input.is_empty()
            && input
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') =>
        {
            Ok(EnvArg::Profile(input.to_string()))
        }
        None => Err(format!(
            "'{input}' is neither KEY=VALUE nor a profile name{}",
            pm2_hint('e')
        )),
    }
}

pub fn parse_port(input: &str) -> Result<PortSpec, String> {
    PortSpec::from_str(input).map_err(|err| {
        let pathlike = input.contains(['/', '.']) || input.ends_with("pid");
        let hint = if pathlike { pm2_hint('p') } else { "" };
        format!("{err}{hint}")
    })
}

/// `--config`/`-c`: refuses what reads as a cron expression (PM2's `-c`)
/// rather than a file name.
pub fn parse_config(input: &str) -> Result<PathBuf, String> {
    let path = PathBuf::from(input);
    let cronlike = input.split_whitespace().count() >= 5 || input.contains('*');
    if cronlike && !path.exists() {
        return Err(format!("no ecosystem file '{input}'{}", pm2_hint('c')));
    }
    Ok(path)
}

/// What a PM2 user meant by `-<flag>`, and where that lives here.
fn pm2_hint(flag: char) -> &'static str {
    match flag {
        'e' => "; -e is --env here: PM2's -e/--error (the error log file) is `error_file` in an ecosystem file",
        'p' => "; -p is --port here: PM2's -p/--pid (the pid file) is `pid_file` in an ecosystem file",
        'c' => "; -c is --config here: PM2's -c/--cron is --cron-restart",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_pairs_need_a_key_and_an_equals_sign() {
        assert_eq!(
            parse_env("A=b=c").unwrap(),
            EnvArg::Var("A".into(), "b=c".into())
        );
        assert_eq!(
            parse_env("A=").unwrap(),
            EnvArg::Var("A".into(), String::new())
        );
        assert_eq!(
            parse_env("production").unwrap(),
            EnvArg::Profile("production".into())
        );
        assert!(parse_env("=x").is_err());
        assert!(parse_env("two words").is_err());
    }

    #[test]
    fn scale_is_a_count_or_a_signed_change() {
        assert_eq!(parse_scale("4"), Ok(Scale::To(4)));
        assert_eq!(parse_scale("+2"), Ok(Scale::By(2)));
        assert_eq!(parse_scale("-1"), Ok(Scale::By(-1)));
        assert!(parse_scale("two").is_err());
        assert!(parse_scale("+").is_err());
        assert!(parse_scale("-x").is_err());
    }

    #[test]
    fn pm2_meanings_of_short_flags_get_a_hint() {
        assert!(parse_env("/var/log/err.log")
            .unwrap_err()
            .contains("error_file"));
        assert!(parse_port("/run/app.pid").unwrap_err().contains("pid_file"));
        assert!(parse_port("abc").unwrap_err().contains("port"));
        assert!(!parse_port("abc").unwrap_err().contains("pid_file"));
        assert!(parse_config("0 */2 * * *")
            .unwrap_err()
            .contains("--cron-restart"));
        assert_eq!(parse_config("eco.json"), Ok(PathBuf::from("eco.json")));
    }
}
