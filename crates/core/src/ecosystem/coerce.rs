//! PM2's loose value forms, turned into the ones the typed fields read.
//! PM2's validator parses a number written as a string for every numeric
//! field, splits a string given for a list (`ignore_watch`), and its cron
//! module treats a falsy `cron_restart` as none; these are the same rules.

use serde_json::Value;

/// Fields whose value is a count (`u32`).
const COUNTS: &[&str] = &["max_restarts", "log_max_files", "retries"];

/// `value` of `field` in the form its type reads.
pub(super) fn coerce(field: &str, value: &Value) -> Value {
    match (field, value) {
        (field, Value::String(text)) if COUNTS.contains(&field) => text
            .trim()
            .parse::<u64>()
            .map_or_else(|_| value.clone(), Value::from),
        // One path to watch.
        ("watch", Value::String(path)) => Value::Array(vec![Value::String(path.clone())]),
        // PM2 splits a string on spaces.
        ("ignore_watch", Value::String(paths)) => Value::Array(
            paths
                .split_whitespace()
                .map(|p| Value::String(p.to_string()))
                .collect(),
        ),
        // `cron_restart: 0` (or false, or "") turns the cron restart off.
        ("cron_restart", Value::Number(n)) if n.as_f64() == Some(0.0) => Value::Null,
        ("cron_restart", Value::Bool(false)) => Value::Null,
        ("cron_restart", Value::String(text)) if matches!(text.trim(), "" | "0") => Value::Null,
        _ => value.clone(),
    }
}

/// An app name as pmdaemon can use it as a target and a file name: runs of
/// whitespace become `-` (PM2 accepts `"my api"`; here it is `my-api`).
pub(super) fn plain_name(name: &str) -> Option<String> {
    name.contains(char::is_whitespace).then(|| {
        name.split_whitespace()
            .filter(|w| !w.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    })
}

/// A serde message in the words of the file: `unknown variant `x`,
/// expected one of `a`, `b`` becomes `unknown value 'x': use 'a' or 'b'`,
/// `invalid type: string "yes", expected a boolean` becomes `expected a
/// boolean (true or false), not the string "yes"`.
pub(super) fn plain_message(message: &str) -> String {
    let quoted = message.replace('`', "'");
    if let Some(rest) = quoted.strip_prefix("unknown variant ") {
        if let Some((value, choices)) = rest.split_once(", expected one of ") {
            let choices: Vec<&str> = choices.split(", ").collect();
            let listed = match choices.split_last() {
                Some((last, [])) => last.to_string(),
                Some((last, others)) => format!("{} or {last}", others.join(", ")),
                None => String::new(),
            };
            return format!("unknown value {value}: use {listed}");
        }
        if let Some((value, choice)) = rest.split_once(", expected ") {
            return format!("unknown value {value}: use {choice}");
        }
    }
    if let Some(rest) = quoted.strip_prefix("invalid type: ") {
        if let Some((found, wanted)) = rest.split_once(", expected ") {
            let wanted = match wanted {
                "a boolean" => "true or false",
                "a sequence" => "a list",
                "a map" => "an object",
                "u32" | "u64" | "i32" | "i64" | "u16" => "a whole number",
                other => other,
            };
            let found = found
                .strip_prefix("string ")
                .map_or_else(|| found.to_string(), |s| format!("the string {s}"));
            return format!("expected {wanted}, not {found}");
        }
    }
    quoted
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pm2s_loose_forms_become_typed_ones() {
        assert_eq!(coerce("max_restarts", &json!("50")), json!(50));
        assert_eq!(coerce("max_restarts", &json!("many")), json!("many"));
        assert_eq!(coerce("watch", &json!("src")), json!(["src"]));
        assert_eq!(
            coerce("ignore_watch", &json!("node_modules  logs")),
            json!(["node_modules", "logs"])
        );
        assert_eq!(coerce("cron_restart", &json!(0)), Value::Null);
        assert_eq!(coerce("cron_restart", &json!("0")), Value::Null);
        assert_eq!(
            coerce("cron_restart", &json!("0 3 * * *")),
            json!("0 3 * * *")
        );
        assert_eq!(plain_name("my  api v2").as_deref(), Some("my-api-v2"));
        assert_eq!(plain_name("api"), None);
        assert_eq!(
            plain_message("unknown variant `x`, expected one of `fork`, `cluster`, `c`"),
            "unknown value 'x': use 'fork', 'cluster' or 'c'"
        );
        assert_eq!(
            plain_message("invalid type: string \"yes\", expected a boolean"),
            "expected true or false, not the string \"yes\""
        );
    }
}
