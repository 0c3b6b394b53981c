//! Port specifications: `3000`, `3000-3003`, `auto:8000-8100`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::Error;

/// Which ports an app's instances get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortSpec {
    /// One port (one instance; shared-port clusters come later).
    Single(u16),
    /// Instance i gets `start + i`.
    Range {
        /// First port.
        start: u16,
        /// Last port (inclusive).
        end: u16,
    },
    /// The first ports in the range that are free on the system and not
    /// held by another app.
    Auto {
        /// First port.
        start: u16,
        /// Last port (inclusive).
        end: u16,
    },
}

impl PortSpec {
    /// How many ports the spec can give.
    pub fn capacity(&self) -> u32 {
        match *self {
            PortSpec::Single(_) => 1,
            PortSpec::Range { start, end } | PortSpec::Auto { start, end } => {
                u32::from(end) - u32::from(start) + 1
            }
        }
    }
}

fn port(text: &str, input: &str) -> Result<u16, Error> {
    let bad = |reason: &str| Error::InvalidPort {
        input: input.to_string(),
        reason: reason.to_string(),
    };
    let number: u32 = text
        .trim()
        .parse()
        .map_err(|_| bad(&format!("'{}' is not a port number", text.trim())))?;
    match number {
        0 => Err(bad("port 0 is not a port an app can be given")),
        1..=65535 => Ok(number as u16),
        _ => Err(bad(&format!("{number} is above 65535"))),
    }
}

fn range(text: &str, input: &str) -> Result<(u16, u16), Error> {
    let (first, last) = text.split_once('-').ok_or_else(|| Error::InvalidPort {
        input: input.to_string(),
        reason: "expected a range such as 8000-8100".to_string(),
    })?;
    let (start, end) = (port(first, input)?, port(last, input)?);
    if start > end {
        return Err(Error::InvalidPort {
            input: input.to_string(),
            reason: format!("the range runs backwards; did you mean {end}-{start}?"),
        });
    }
    Ok((start, end))
}

impl FromStr for PortSpec {
    type Err = Error;

    fn from_str(input: &str) -> Result<Self, Error> {
        let text = input.trim();
        if text.is_empty() {
            return Err(Error::InvalidPort {
                input: input.to_string(),
                reason: "it is empty".to_string(),
            });
        }
        if let Some(rest) = text.strip_prefix("auto:") {
            if rest.trim().is_empty() {
                return Err(Error::InvalidPort {
                    input: input.to_string(),
                    reason: "auto: needs a range, as in auto:8000-8100".to_string(),
                });
            }
            let (start, end) = range(rest, input)?;
            return Ok(PortSpec::Auto { start, end });
        }
        if text.contains('-') {
            let (start, end) = range(text, input)?;
            return Ok(PortSpec::Range { start, end });
        }
        port(text, input).map(PortSpec::Single)
    }
}

impl fmt::Display for PortSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortSpec::Single(port) => write!(f, "{port}"),
            PortSpec::Range { start, end } => write!(f, "{start}-{end}"),
            PortSpec::Auto { start, end } => write!(f, "auto:{start}-{end}"),
        }
    }
}

impl Serialize for PortSpec {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PortSpec {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// A config may say `"port": 3000` as well as `"port": "3000-3003"`.
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(i64),
            Text(String),
        }
        let text = match Raw::deserialize(deserializer)? {
            Raw::Number(number) => number.to_string(),
            Raw::Text(text) => text,
        };
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// In the OpenAPI document: `3000`, `"3000-3003"` or `"auto:8000-8100"`.
impl utoipa::PartialSchema for PortSpec {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(65535)),
            )
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(r"^(auto:)?[0-9]{1,5}(-[0-9]{1,5})?$")),
            )
            .description(Some("A port, a range (`3000-3003`) or `auto:START-END`"))
            .into()
    }
}

impl utoipa::ToSchema for PortSpec {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_good_spec_parses_and_prints_back() {
        for (text, spec) in [
            ("3000", PortSpec::Single(3000)),
            (
                "3000-3003",
                PortSpec::Range {
                    start: 3000,
                    end: 3003,
                },
            ),
            (
                "3000-3000",
                PortSpec::Range {
                    start: 3000,
                    end: 3000,
                },
            ),
            (
                "auto:8000-8100",
                PortSpec::Auto {
                    start: 8000,
                    end: 8100,
                },
            ),
            ("65535", PortSpec::Single(65535)),
        ] {
            assert_eq!(text.parse::<PortSpec>().unwrap(), spec);
            assert_eq!(spec.to_string(), text);
        }
        assert_eq!(" 3000 - 3003 ".parse::<PortSpec>().unwrap().capacity(), 4);
        assert_eq!(
            "auto:8000-8100".parse::<PortSpec>().unwrap().capacity(),
            101
        );
    }

    #[test]
    fn every_bad_spec_says_what_is_wrong() {
        for (text, reason) in [
            ("3003-3000", "did you mean 3000-3003"),
            ("auto:", "auto: needs a range"),
            ("auto:8000", "expected a range"),
            ("70000", "above 65535"),
            ("abc", "'abc' is not a port number"),
            ("0", "port 0"),
            ("", "empty"),
            ("1-70000", "above 65535"),
            ("-5", "'' is not a port number"),
        ] {
            let err = text.parse::<PortSpec>().unwrap_err().to_string();
            assert!(err.contains(reason), "{text:?}: {err}");
            assert!(err.starts_with(&format!("invalid port '{text}'")), "{err}");
        }
    }

    #[test]
    fn configs_may_give_a_port_as_a_number_or_a_string() {
        let from_number: PortSpec = serde_json::from_str("3000").unwrap();
        let from_text: PortSpec = serde_json::from_str("\"auto:1-9\"").unwrap();
        assert_eq!(from_number, PortSpec::Single(3000));
        assert_eq!(from_text, PortSpec::Auto { start: 1, end: 9 });
        assert!(serde_json::from_str::<PortSpec>("70000").is_err());
        assert_eq!(serde_json::to_string(&from_text).unwrap(), "\"auto:1-9\"");
    }
}
