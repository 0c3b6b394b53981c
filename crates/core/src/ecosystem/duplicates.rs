//! Duplicate keys in a JSON file. serde_json keeps the last of them
//! silently, while YAML and TOML refuse them; an app whose `env` is written
//! twice would run with half of what its author sees. So every repeated key
//! of an object is a problem, at the line of the repetition.
//!
//! The text has already parsed as JSON, so a small scan over its tokens is
//! enough: strings are skipped whole (escapes included), and a string is a
//! key when it opens an object's member.

use std::collections::HashMap;

use super::locate::line_col;
use super::Problem;

/// One problem per key that repeats an earlier key of the same object.
pub fn duplicate_keys(text: &str) -> Vec<Problem> {
    let bytes = text.as_bytes();
    // One entry per open container: the keys of an object (with where each
    // was first written), `None` for an array.
    let mut open: Vec<Option<HashMap<String, usize>>> = Vec::new();
    let mut expect_key = false;
    let mut problems = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'{' => {
                open.push(Some(HashMap::new()));
                expect_key = true;
            }
            b'[' => {
                open.push(None);
                expect_key = false;
            }
            b'}' | b']' => {
                open.pop();
                expect_key = false;
            }
            b',' => expect_key = matches!(open.last(), Some(Some(_))),
            b'"' => {
                let start = at;
                at += 1;
                while at < bytes.len() && bytes[at] != b'"' {
                    at += if bytes[at] == b'\\' { 2 } else { 1 };
                }
                if expect_key {
                    let key = serde_json::from_str::<String>(&text[start..=at.min(text.len() - 1)])
                        .unwrap_or_default();
                    if let Some(Some(keys)) = open.last_mut() {
                        if let Some(first) = keys.get(&key) {
                            let (first_line, _) = line_col(text, *first);
                            let (line, column) = line_col(text, start);
                            problems.push(Problem {
                                line: Some(line),
                                column: Some(column),
                                app: None,
                                field: Some(key.clone()),
                                message: format!(
                                    "duplicate key '{key}' (also at line {first_line}): JSON would keep only the last one; remove one of them"
                                ),
                            });
                        } else {
                            keys.insert(key, start);
                        }
                    }
                    expect_key = false;
                }
            }
            _ => {}
        }
        at += 1;
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_keys_are_found_where_they_repeat() {
        let text = "{\"apps\": [\n  {\"name\": \"a\", \"env\": {\"X\": \"1\"},\n   \"env\": {\"X\": \"2\", \"X\": \"3\"}},\n  {\"name\": \"b\", \"note\": \"\\\"name\\\": 1\"}\n]}";
        let problems = duplicate_keys(text);
        let found: Vec<(Option<usize>, Option<&str>)> = problems
            .iter()
            .map(|p| (p.line, p.field.as_deref()))
            .collect();
        assert_eq!(found, [(Some(3), Some("env")), (Some(3), Some("X"))]);
        assert!(
            problems[0].message.contains("also at line 2"),
            "{problems:?}"
        );
        assert!(duplicate_keys(r#"{"a": {"a": [{"a": 1}, {"a": 2}]}}"#).is_empty());
    }
}
