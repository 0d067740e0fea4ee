//! Human units in the config file: durations ("200ms", "5s", "10m", "1h") and sizes ("64MiB").

use std::time::Duration;

/// Parses a duration such as `"250ms"`, `"5s"`, `"10m"`, `"1h"`, `"2d"`; a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let (num, unit) = split_number(text)?;
    let millis = match unit {
        "ms" => num,
        "" | "s" => num * 1e3,
        "m" | "min" => num * 60e3,
        "h" => num * 3600e3,
        "d" => num * 86400e3,
        other => return Err(format!("unknown duration unit {other:?} in {text:?} (use ms, s, m, h or d)")),
    };
    Ok(Duration::from_micros((millis * 1e3) as u64))
}

/// Parses a size such as `"64MiB"`, `"512KiB"`, `"1GiB"`, `"100B"`; a bare number is bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let (num, unit) = split_number(text)?;
    let factor: f64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "kib" | "k" => 1024.0,
        "mb" | "mib" | "m" => 1024.0 * 1024.0,
        "gb" | "gib" | "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return Err(format!("unknown size unit {unit:?} in {text:?} (use B, KiB, MiB or GiB)")),
    };
    Ok((num * factor) as u64)
}

/// Formats a duration the way the config file writes it, for `check-config`.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0 => "0s".into(),
        ms if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        ms if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        ms if ms % 1000 == 0 => format!("{}s", ms / 1000),
        ms => format!("{ms}ms"),
    }
}

/// Formats a byte count the way the config file writes it.
pub fn format_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (name, factor) in UNITS {
        if bytes >= factor && bytes % factor == 0 {
            return format!("{}{name}", bytes / factor);
        }
    }
    format!("{bytes}B")
}

fn split_number(text: &str) -> Result<(f64, &str), String> {
    let text = text.trim();
    let end = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (num, unit) = text.split_at(end);
    let num: f64 = num.parse().map_err(|_| format!("{text:?} does not start with a number"))?;
    Ok((num, unit.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("200ms").unwrap(), Duration::from_millis(200));
        assert_eq!(parse_duration("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert_eq!(parse_duration("1.5s").unwrap(), Duration::from_millis(1500));
        assert!(parse_duration("5 parsecs").is_err());
        assert!(parse_duration("s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64MiB").unwrap(), 64 << 20);
        assert_eq!(parse_size("16MB").unwrap(), 16 << 20);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("1 lightyear").is_err());
    }

    #[test]
    fn formats_round_trip() {
        for d in ["200ms", "5s", "10m", "1h"] {
            assert_eq!(format_duration(parse_duration(d).unwrap()), d);
        }
        for s in ["64MiB", "1GiB", "100B"] {
            assert_eq!(format_size(parse_size(s).unwrap()), s);
        }
    }
}
