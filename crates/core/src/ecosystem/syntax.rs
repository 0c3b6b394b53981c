//! Reading the text of a config file into a JSON value, in each syntax.
//!
//! PM2 reads a `.json` file as a JavaScript object literal, so comments,
//! unquoted keys, single quotes and trailing commas are fine there: a
//! `.json` file that is not strict JSON is read again as JSON5 (the
//! object-literal subset of JavaScript), and `.json5` files are JSON5 from
//! the start. Strict JSON is tried first because its messages and its
//! duplicate-key check are the established ones.

use serde_json::Value;

use super::{locate, Format};

/// A syntax error: where, and what.
pub(super) struct SyntaxError {
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

/// The value a file holds, and the syntax its keys are written in (for
/// locating fields): a `.json` file written as an object literal is
/// searched like JavaScript.
pub(super) struct Read {
    pub root: Value,
    pub written_as: Format,
}

pub(super) fn read(text: &str, format: Format) -> Result<Read, SyntaxError> {
    let read = |root| Read {
        root,
        written_as: format,
    };
    match format {
        Format::Json => match serde_json::from_str(text) {
            Ok(root) => Ok(read(root)),
            Err(strict) => match json5::from_str(text) {
                Ok(root) => Ok(Read {
                    root,
                    written_as: Format::Json5,
                }),
                Err(loose) => {
                    // The reading that got further knows better what went
                    // wrong: a comment stops strict JSON at once.
                    let strict_at = (strict.line(), strict.column());
                    let loose_at = loose.position().map(|p| (p.line + 1, p.column + 1));
                    if loose_at.is_some_and(|at| at > strict_at) {
                        Err(json5_error(&loose, "not valid JSON or JSON5"))
                    } else {
                        Err(json_error(&strict))
                    }
                }
            },
        },
        Format::Json5 => json5::from_str(text)
            .map(read)
            .map_err(|err| json5_error(&err, "not valid JSON5")),
        // Node printed it: strict JSON.
        Format::Js => serde_json::from_str(text)
            .map(read)
            .map_err(|err| json_error(&err)),
        Format::Yaml => serde_saphyr::from_str(text).map(read).map_err(|err| {
            let location = err.location();
            let message = err.to_string();
            let first = message.lines().next().unwrap_or(&message).to_string();
            SyntaxError {
                line: location.map(|l| l.line() as usize),
                column: location.map(|l| l.column() as usize),
                message: format!("not valid YAML: {first}"),
            }
        }),
        Format::Toml => toml::from_str(text).map(read).map_err(|err| {
            let position = err.span().map(|span| locate::line_col(text, span.start));
            SyntaxError {
                line: position.map(|p| p.0),
                column: position.map(|p| p.1),
                message: format!("not valid TOML: {}", err.message().trim()),
            }
        }),
    }
}

/// A parser's message without its " at line L column C": the position is
/// reported in its own fields.
fn without_position(message: String) -> String {
    match message.split_once(" at line ") {
        Some((head, _)) => head.to_string(),
        None => message,
    }
}

fn json_error(err: &serde_json::Error) -> SyntaxError {
    let message = without_position(err.to_string());
    SyntaxError {
        line: Some(err.line()),
        column: Some(err.column()),
        message: format!("not valid JSON: {message}"),
    }
}

fn json5_error(err: &json5::Error, what: &str) -> SyntaxError {
    let message = without_position(err.to_string());
    SyntaxError {
        line: err.position().map(|p| p.line + 1),
        column: err.position().map(|p| p.column + 1),
        message: format!("{what}: {message}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_file_may_be_a_javascript_object_literal() {
        let text = "// PM2 evaluates this\n{apps: [{name: 'web', script: \"app.js\",},],}\n";
        let read = read(text, Format::Json).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(read.written_as, Format::Json5);
        assert_eq!(read.root["apps"][0]["name"], "web");
        let strict =
            super::read("{\"a\": 1}", Format::Json).unwrap_or_else(|e| panic!("{}", e.message));
        assert_eq!(strict.written_as, Format::Json);
    }

    #[test]
    fn a_broken_object_literal_is_located() {
        let err = match read("{\n  apps: [{name: 'web' script: 'x'}]\n}\n", Format::Json) {
            Err(err) => err,
            Ok(_) => panic!("read"),
        };
        assert_eq!((err.line, err.column), (Some(2), Some(23)));
        assert!(
            err.message.starts_with("not valid JSON or JSON5: "),
            "{}",
            err.message
        );
    }
}
