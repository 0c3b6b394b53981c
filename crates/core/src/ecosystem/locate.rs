//! Finding where a key is written in the text of a config file, for error
//! messages. Positions of syntax errors come from the parsers themselves;
//! this finds the line and column of a field that parsed but is wrong.

use super::Format;

/// Byte offsets where `key` is written as a key in `text`.
fn key_offsets(text: &str, format: Format, key: &str) -> Vec<usize> {
    let mut found = Vec::new();
    for (start, _) in text.match_indices(key) {
        let before = &text[..start];
        let after = &text[start + key.len()..];
        let (is_key, offset) = match format {
            Format::Js | Format::Json5 => {
                // `key:`, `'key':` or `"key":` in an object literal.
                let quoted = (before.ends_with('"') && after.starts_with('"'))
                    || (before.ends_with('\'') && after.starts_with('\''));
                let word = |c: char| c.is_alphanumeric() || matches!(c, '_' | '$');
                let bare =
                    !quoted && !before.ends_with(word) && !before.ends_with(['.', '"', '\'']);
                let rest = if quoted {
                    after.get(1..).unwrap_or("")
                } else {
                    after
                };
                (
                    (quoted || bare)
                        && !rest.starts_with(word)
                        && rest.trim_start().starts_with(':'),
                    if quoted { start - 1 } else { start },
                )
            }
            Format::Json => {
                let quoted_here = before.ends_with('"') && after.starts_with('"');
                let rest = after.get(1..).unwrap_or("").trim_start();
                (
                    quoted_here && rest.starts_with(':'),
                    start.saturating_sub(1),
                )
            }
            Format::Yaml => {
                let quoted = (before.ends_with('"') && after.starts_with('"'))
                    || (before.ends_with('\'') && after.starts_with('\''));
                let (opened, offset) = if quoted {
                    (true, start - 1)
                } else {
                    (false, start)
                };
                let rest = if opened {
                    after.get(1..).unwrap_or("")
                } else {
                    after
                };
                let lead = before[..offset].trim_end_matches([' ', '-', '{', ',', '\t']);
                let line_start = lead.is_empty()
                    || lead.ends_with('\n')
                    || before[..offset].trim_end().ends_with(['{', ',']);
                (
                    line_start && rest.trim_start_matches(' ').starts_with(':'),
                    offset,
                )
            }
            Format::Toml => {
                let line_begin = before.rfind('\n').map_or(0, |i| i + 1);
                let prefix = before[line_begin..].trim();
                let rest = after.trim_start();
                let assignment =
                    (prefix.is_empty() || prefix == "[[apps]]") && rest.starts_with('=');
                let header =
                    (prefix.ends_with('[') || prefix.ends_with('.')) && rest.starts_with(']');
                (assignment || header, start)
            }
        };
        if is_key {
            found.push(offset);
        }
    }
    found
}

/// 1-based line and column of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// Where field `path` (a key, then nested keys) of the app that is the
/// `occurrence`-th (0-based) among apps having that key is written.
pub fn locate(
    text: &str,
    format: Format,
    path: &[&str],
    occurrence: usize,
) -> Option<(usize, usize)> {
    let (first, rest) = path.split_first()?;
    let mut offset = *key_offsets(text, format, first).get(occurrence)?;
    for key in rest {
        offset = key_offsets(text, format, key)
            .into_iter()
            .find(|o| *o > offset)?;
    }
    Some(line_col(text, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_found_in_each_format() {
        let json = "{\"apps\": [\n  {\"name\": \"a\", \"port\": 1},\n  {\"name\": \"b\",\n   \"port\": 2}]}";
        assert_eq!(locate(json, Format::Json, &["port"], 0), Some((2, 17)));
        assert_eq!(locate(json, Format::Json, &["port"], 1), Some((4, 4)));
        let js = "module.exports = {\n  apps: [{\n    name: 'a', port: 1,\n  }, {\n    'name': 'b',\n    health_check: { url: x.url },\n  }],\n};\n";
        assert_eq!(locate(js, Format::Js, &["port"], 0), Some((3, 16)));
        assert_eq!(locate(js, Format::Js, &["name"], 1), Some((5, 5)));
        assert_eq!(
            locate(js, Format::Js, &["health_check", "url"], 0),
            Some((6, 21))
        );
        let yaml =
            "apps:\n  - name: a\n    port: 1\n  - name: b\n    health_check:\n      url: x\n";
        assert_eq!(locate(yaml, Format::Yaml, &["port"], 0), Some((3, 5)));
        assert_eq!(locate(yaml, Format::Yaml, &["name"], 1), Some((4, 5)));
        assert_eq!(
            locate(yaml, Format::Yaml, &["health_check", "url"], 0),
            Some((6, 7))
        );
        let toml = "[[apps]]\nname = \"a\"\nport = 1\n\n[[apps]]\nname = \"b\"\n[apps.health_check]\nurl = \"x\"\n";
        assert_eq!(locate(toml, Format::Toml, &["name"], 1), Some((6, 1)));
        assert_eq!(
            locate(toml, Format::Toml, &["health_check", "url"], 0),
            Some((8, 1))
        );
        assert_eq!(locate(toml, Format::Toml, &["missing"], 0), None);
    }
}
