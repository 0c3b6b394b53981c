//! `${VAR}`, `${VAR:-default}`, `${VAR-default}`, `${VAR:?message}` and
//! `$$` in the string values of an ecosystem file, taken from the
//! environment of the command that applies it (as Docker Compose does).
//!
//! It runs on the parsed tree, before any field is checked, so a value made
//! from the environment is checked like one written by hand. A string that
//! held a placeholder and now reads `true`/`false` or an integer becomes a
//! boolean or a number where the field wants one (`"autorestart":
//! "${AUTORESTART:-true}"`); fields that take strings already (`instances`,
//! durations, sizes, ports) need nothing more. A `$` not followed by `{` or
//! `$` is left alone, so `"echo $HOME"` keeps meaning what it meant.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{locate, Problem};

/// Fields whose value is a boolean.
const BOOLEAN_FIELDS: &[&str] = &[
    "autorestart",
    "wait_ready",
    "shutdown_with_message",
    "merge_logs",
    "time",
    "log_compress",
    "enabled",
    "watch",
];

/// Fields whose value is an integer.
const INTEGER_FIELDS: &[&str] = &[
    "max_restarts",
    "log_max_files",
    "retries",
    "stop_exit_codes",
    "instances",
    "port",
];

/// One placeholder that cannot be replaced.
struct Unresolved {
    /// The placeholder as written (`${NAME:?message}`), to find its line.
    written: String,
    /// Keys from the root to the value (`apps`, `0`, `env`, `PORT`).
    path: Vec<String>,
    message: String,
}

/// Replaces the placeholders of every string value of `root`. `text` is the
/// file as written, where unresolved placeholders are located.
pub(super) fn interpolate(
    root: &mut Value,
    env: &BTreeMap<String, String>,
    text: &str,
) -> Result<(), Vec<Problem>> {
    let mut unresolved = Vec::new();
    let mut path = Vec::new();
    walk(root, env, &mut path, &mut unresolved);
    if unresolved.is_empty() {
        return Ok(());
    }
    // Each placeholder is looked for after the previous one of the same
    // text, so that two identical ones get their own lines.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let problems = unresolved
        .into_iter()
        .map(|item| {
            let count = seen.entry(item.written.clone()).or_insert(0);
            let offset = text.match_indices(&item.written).nth(*count).map(|m| m.0);
            *count += 1;
            let position = offset.map(|o| locate::line_col(text, o));
            let (app, field) = describe(root, &item.path);
            Problem {
                line: position.map(|p| p.0),
                column: position.map(|p| p.1),
                app,
                field,
                message: item.message,
            }
        })
        .collect();
    Err(problems)
}

/// The app label and field of a path, for messages.
fn describe(root: &Value, path: &[String]) -> (Option<String>, Option<String>) {
    let (app, rest): (Option<&Value>, &[String]) = match path {
        [apps, index, rest @ ..] if apps == "apps" => (
            index
                .parse::<usize>()
                .ok()
                .and_then(|i| root.get("apps")?.get(i)),
            rest,
        ),
        _ => (Some(root), path),
    };
    let label = app.map(|app| match app.get("name").and_then(Value::as_str) {
        Some(name) => format!("'{name}'"),
        None => match path {
            [_, index, ..] if rest.len() < path.len() => {
                format!("#{}", index.parse::<usize>().map_or(1, |i| i + 1))
            }
            _ => "#1".to_string(),
        },
    });
    let field = (!rest.is_empty()).then(|| {
        rest.iter().fold(String::new(), |mut field, key| {
            if key.parse::<usize>().is_ok() {
                field.push_str(&format!("[{key}]"));
            } else {
                if !field.is_empty() {
                    field.push('.');
                }
                field.push_str(key);
            }
            field
        })
    });
    (label, field)
}

fn walk(
    value: &mut Value,
    env: &BTreeMap<String, String>,
    path: &mut Vec<String>,
    unresolved: &mut Vec<Unresolved>,
) {
    match value {
        Value::String(text) => {
            if !text.contains('$') {
                return;
            }
            match expand(text, env) {
                Ok(expanded) => {
                    let placeholder = text.contains("${");
                    *value = typed(path, expanded, placeholder);
                }
                Err(errors) => {
                    unresolved.extend(errors.into_iter().map(|(written, message)| Unresolved {
                        written,
                        path: path.clone(),
                        message,
                    }))
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter_mut().enumerate() {
                path.push(index.to_string());
                walk(item, env, path, unresolved);
                path.pop();
            }
        }
        Value::Object(map) => {
            for (key, item) in map.iter_mut() {
                path.push(key.clone());
                walk(item, env, path, unresolved);
                path.pop();
            }
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => {}
    }
}

/// The value a field gets from an expanded string: a boolean or an integer
/// where the field wants one and the string came from a placeholder.
fn typed(path: &[String], expanded: String, placeholder: bool) -> Value {
    // The field is the last key that is not a list index.
    let field = path
        .iter()
        .rev()
        .find(|key| key.parse::<usize>().is_err())
        .map_or("", String::as_str);
    if placeholder && BOOLEAN_FIELDS.contains(&field) {
        match expanded.trim() {
            "true" => return Value::Bool(true),
            "false" => return Value::Bool(false),
            _ => {}
        }
    }
    if placeholder && INTEGER_FIELDS.contains(&field) {
        if let Ok(number) = expanded.trim().parse::<i64>() {
            return Value::from(number);
        }
    }
    Value::String(expanded)
}

/// Expands one string; on failure, each placeholder that could not be
/// replaced as written, with why.
pub fn expand(text: &str, env: &BTreeMap<String, String>) -> Result<String, Vec<(String, String)>> {
    let mut out = String::with_capacity(text.len());
    let mut errors = Vec::new();
    let mut rest = text;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let after = &rest[dollar + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
            continue;
        }
        let Some(inner) = after.strip_prefix('{') else {
            out.push('$');
            rest = after;
            continue;
        };
        let Some(close) = inner.find('}') else {
            errors.push((
                rest[dollar..].to_string(),
                format!(
                    "'{}' has no closing '}}' (write $$ for a literal $)",
                    &rest[dollar..]
                ),
            ));
            rest = "";
            break;
        };
        let written = format!("${{{}}}", &inner[..close]);
        match resolve(&inner[..close], env) {
            Ok(value) => out.push_str(&value),
            Err(message) => errors.push((written, message)),
        }
        rest = &inner[close + 1..];
    }
    out.push_str(rest);
    if errors.is_empty() {
        Ok(out)
    } else {
        Err(errors)
    }
}

/// The value of one `${…}` body: `NAME`, `NAME:-default`, `NAME-default`,
/// `NAME:?message`, `NAME?message`.
fn resolve(body: &str, env: &BTreeMap<String, String>) -> Result<String, String> {
    let name_end = body
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(body.len());
    let (name, operator) = body.split_at(name_end);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        return Err(format!(
            "'${{{body}}}' is not a variable name (letters, digits and _; write $$ for a literal $)"
        ));
    }
    let value = env.get(name);
    let set = value.is_some();
    let non_empty = value.is_some_and(|v| !v.is_empty());
    let (colon, operator) = match operator.strip_prefix(':') {
        Some(rest) => (true, rest),
        None => (false, operator),
    };
    let usable = if colon { non_empty } else { set };
    if operator.is_empty() && !colon {
        return value.cloned().ok_or_else(|| {
            format!(
                "environment variable {name} is not set (set it, or give a default: ${{{name}:-value}})"
            )
        });
    }
    if let Some(default) = operator.strip_prefix('-') {
        return Ok(if usable {
            value.cloned().unwrap_or_default()
        } else {
            default.to_string()
        });
    }
    if let Some(message) = operator.strip_prefix('?') {
        if usable {
            return Ok(value.cloned().unwrap_or_default());
        }
        let why = if set { "is empty" } else { "is not set" };
        return Err(if message.is_empty() {
            format!("environment variable {name} {why}")
        } else {
            format!("environment variable {name} {why}: {message}")
        });
    }
    Err(format!(
        "'${{{body}}}' is not understood: write ${{{name}}}, ${{{name}:-default}} or ${{{name}:?message}}"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env() -> BTreeMap<String, String> {
        [("SET", "value"), ("EMPTY", ""), ("COUNT", "8")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn placeholders_take_the_environment_or_their_default() {
        let env = env();
        assert_eq!(expand("a ${SET} b", &env).unwrap(), "a value b");
        assert_eq!(expand("${UNSET:-max}", &env).unwrap(), "max");
        assert_eq!(expand("${EMPTY:-d}", &env).unwrap(), "d");
        assert_eq!(expand("${EMPTY-d}", &env).unwrap(), "");
        assert_eq!(expand("${SET:?needed}", &env).unwrap(), "value");
        assert_eq!(expand("${UNSET:-}", &env).unwrap(), "");
    }

    #[test]
    fn dollars_escape_and_bare_dollars_stay() {
        let env = env();
        assert_eq!(expand("cost $$5 ${SET}", &env).unwrap(), "cost $5 value");
        assert_eq!(expand("$$${SET}", &env).unwrap(), "$value");
        assert_eq!(expand("echo $HOME $", &env).unwrap(), "echo $HOME $");
        assert_eq!(expand("$${SET}", &env).unwrap(), "${SET}");
    }

    #[test]
    fn what_cannot_be_replaced_says_why() {
        let env = env();
        let errors = expand("${UNSET} and ${NEEDED:?the API token} ${EMPTY:?}", &env).unwrap_err();
        assert_eq!(errors.len(), 3);
        assert_eq!(errors[0].0, "${UNSET}");
        assert!(errors[0].1.contains("UNSET is not set"), "{}", errors[0].1);
        assert_eq!(
            errors[1].1,
            "environment variable NEEDED is not set: the API token"
        );
        assert_eq!(errors[2].1, "environment variable EMPTY is empty");
        assert!(expand("${1X}", &env).is_err());
        assert!(expand("${OPEN", &env).unwrap_err()[0].1.contains("closing"));
        assert!(expand("${A:+x}", &env).unwrap_err()[0]
            .1
            .contains("not understood"));
    }

    #[test]
    fn typed_fields_get_numbers_and_booleans_from_placeholders() {
        let mut root = serde_json::json!({"apps": [{
            "name": "n", "instances": "${COUNT}", "autorestart": "${OFF:-false}",
            "args": ["${COUNT}"], "env": {"COUNT": "${COUNT}"}, "max_restarts": "5"
        }]});
        interpolate(&mut root, &env(), "").unwrap();
        let app = &root["apps"][0];
        assert_eq!(app["instances"], 8);
        assert_eq!(app["autorestart"], false);
        assert_eq!(app["args"][0], "8");
        assert_eq!(app["env"]["COUNT"], "8");
        assert_eq!(app["max_restarts"], "5", "only placeholders are converted");
    }
}
