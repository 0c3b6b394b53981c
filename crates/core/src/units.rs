//! Durations and sizes as users write them: `1500`, `"500ms"`, `"5s"`, `"256M"`.

use crate::Error;

/// Parses a duration into milliseconds. A bare number is milliseconds; a
/// number may carry one of the units `ms`, `s`, `m`, `h`.
/// A duration where a bare number is seconds (`health_check.timeout` and
/// `.interval`, as in the seed: `5`, `0.3`), or a number with a unit.
pub fn parse_seconds_ms(input: &str) -> Result<u64, Error> {
    match input.trim().parse::<f64>() {
        Ok(seconds) if seconds.is_finite() && seconds >= 0.0 => {
            Ok((seconds * 1000.0).round() as u64)
        }
        _ => parse_duration_ms(input),
    }
}

pub fn parse_duration_ms(input: &str) -> Result<u64, Error> {
    let bad = || Error::InvalidDuration {
        input: input.to_string(),
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" => 1_000.0,
        "m" | "min" => 60_000.0,
        "h" => 3_600_000.0,
        _ => return Err(bad()),
    };
    let millis = value * factor;
    if !millis.is_finite() || millis < 0.0 || millis > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(millis.round() as u64)
}

/// Parses a size into bytes: bytes, or a number with `K`, `M`, `G` (powers of
/// 1024, optionally followed by `B`, in either case).
pub fn parse_size(input: &str) -> Result<u64, Error> {
    let bad = || Error::InvalidSize {
        input: input.to_string(),
    };
    let text = input.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number.parse().map_err(|_| bad())?;
    let factor: f64 = match unit.trim().to_ascii_uppercase().trim_end_matches('B') {
        "" => 1.0,
        "K" => 1024.0,
        "M" => 1024.0 * 1024.0,
        "G" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(bad()),
    };
    let bytes = value * factor;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(bad());
    }
    Ok(bytes.round() as u64)
}

/// Formats a byte count as the list shows it: `125.4MB`.
pub fn format_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes}B")
    } else {
        format!("{value:.1}{}", UNITS[unit])
    }
}

/// Formats milliseconds as a user would write them: `30s`, `2m`, `1h`,
/// `1600ms` (every form parses back with [`parse_duration_ms`]).
pub fn format_duration(millis: u64) -> String {
    match millis {
        0 => "0ms".to_string(),
        m if m % 3_600_000 == 0 => format!("{}h", m / 3_600_000),
        m if m % 60_000 == 0 => format!("{}m", m / 60_000),
        m if m % 1000 == 0 => format!("{}s", m / 1000),
        m => format!("{m}ms"),
    }
}

/// Formats an uptime as the list shows it: `45s`, `12m`, `2h 15m`, `3d 4h`.
pub fn format_uptime(millis: u64) -> String {
    let secs = millis / 1000;
    let (days, hours, minutes) = (secs / 86_400, (secs / 3600) % 24, (secs / 60) % 60);
    if days > 0 {
        format!("{days}d {hours}h")
    } else if hours > 0 {
        format!("{hours}h {minutes}m")
    } else if minutes > 0 {
        format!("{minutes}m")
    } else {
        format!("{secs}s")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn durations_are_printed_as_users_write_them_and_parse_back() {
        for (millis, text) in [
            (0, "0ms"),
            (1600, "1600ms"),
            (30_000, "30s"),
            (120_000, "2m"),
            (3_600_000, "1h"),
        ] {
            assert_eq!(super::format_duration(millis), text);
            assert_eq!(super::parse_duration_ms(text).ok(), Some(millis));
        }
    }

    use super::*;

    #[test]
    fn durations_accept_plain_milliseconds_and_units() {
        assert_eq!(parse_duration_ms("1500"), Ok(1500));
        assert_eq!(parse_duration_ms("500ms"), Ok(500));
        assert_eq!(parse_duration_ms("5s"), Ok(5000));
        assert_eq!(parse_duration_ms("1.5s"), Ok(1500));
        assert_eq!(parse_duration_ms("2m"), Ok(120_000));
        assert_eq!(parse_duration_ms("1h"), Ok(3_600_000));
    }

    #[test]
    fn health_check_durations_take_bare_numbers_as_seconds() {
        assert_eq!(parse_seconds_ms("30"), Ok(30_000));
        assert_eq!(parse_seconds_ms("0.3"), Ok(300));
        assert_eq!(parse_seconds_ms("0.0005"), Ok(1));
        assert_eq!(parse_seconds_ms("500ms"), Ok(500));
        assert!(parse_seconds_ms("-1").is_err());
    }

    #[test]
    fn durations_reject_garbage() {
        for bad in ["", "s", "5x", "-1", "1..2s", "abc"] {
            assert!(parse_duration_ms(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn sizes_accept_units_in_either_case() {
        assert_eq!(parse_size("512"), Ok(512));
        assert_eq!(parse_size("1K"), Ok(1024));
        assert_eq!(parse_size("256M"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_size("256mb"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert!(parse_size("12Q").is_err());
    }

    #[test]
    fn bytes_and_uptime_format_like_the_seed_table() {
        assert_eq!(format_bytes(131_491_430), "125.4MB");
        assert_eq!(format_bytes(512), "512B");
        assert_eq!(format_uptime((2 * 3600 + 15 * 60) * 1000), "2h 15m");
        assert_eq!(format_uptime(42_000), "42s");
        assert_eq!(format_uptime(3 * 86_400_000 + 4 * 3_600_000), "3d 4h");
    }
}
