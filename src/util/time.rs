//! Docker's time formats: RFC 3339 with trimmed nanoseconds for inspect, Unix seconds for lists.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// Go's `time.RFC3339Nano` in UTC: trailing zeros of the fraction trimmed, no fraction when zero.
pub fn rfc3339_nano(nanos: i64) -> String {
    let ts = match jiff::Timestamp::from_nanosecond(nanos as i128) {
        Ok(ts) => ts,
        Err(_) => return "0001-01-01T00:00:00Z".into(),
    };
    let secs = ts.as_second();
    let frac = ts.subsec_nanosecond();
    let base = jiff::Timestamp::from_second(secs)
        .map(|t| t.strftime("%Y-%m-%dT%H:%M:%S").to_string())
        .unwrap_or_default();
    if frac == 0 {
        format!("{base}Z")
    } else {
        let f = format!("{frac:09}");
        format!("{base}.{}Z", f.trim_end_matches('0'))
    }
}

/// Parse an RFC 3339 timestamp (any offset) into Unix nanoseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let ts: jiff::Timestamp = s.parse().ok()?;
    i64::try_from(ts.as_nanosecond()).ok()
}

/// Docker's `timetypes.GetTimestamp` subset used by `since`/`until` query values that clients send:
/// `<sec>[.<frac>]`, RFC 3339, or a Go duration relative to now (`10m`, `1h30m`).
pub fn parse_query_time(s: &str, now_nanos: i64) -> Option<i64> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if let Some(n) = parse_sec_frac(s) {
        return Some(n);
    }
    if let Some(n) = parse_rfc3339(s) {
        return Some(n);
    }
    parse_go_duration(s).map(|d| now_nanos - d)
}

fn parse_sec_frac(s: &str) -> Option<i64> {
    let (sec, frac) = match s.split_once('.') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    };
    if sec.is_empty() || !sec.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: i64 = sec.parse().ok()?;
    let mut nanos: i64 = 0;
    if !frac.is_empty() {
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
        nanos = digits.parse().ok()?;
    }
    secs.checked_mul(1_000_000_000)?.checked_add(nanos)
}

/// A Go duration such as `1h2m3.5s`, `300ms`; returns nanoseconds.
pub fn parse_go_duration(s: &str) -> Option<i64> {
    let mut rest = s;
    let mut total: f64 = 0.0;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if num_len == 0 {
            return None;
        }
        let value: f64 = rest[..num_len].parse().ok()?;
        rest = &rest[num_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let scale = match &rest[..unit_len] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += value * scale;
        rest = &rest[unit_len..];
    }
    Some(total as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_like_go() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nano(1_700_000_000_123_450_000),
            "2023-11-14T22:13:20.12345Z"
        );
    }

    #[test]
    fn parses_query_times() {
        assert_eq!(parse_query_time("10", 0), Some(10_000_000_000));
        assert_eq!(parse_query_time("1.5", 0), Some(1_500_000_000));
        assert_eq!(
            parse_query_time("1700000000.000000001", 0),
            Some(1_700_000_000_000_000_001)
        );
        assert_eq!(
            parse_query_time("1m", 120_000_000_000),
            Some(60_000_000_000)
        );
        assert_eq!(
            parse_query_time("2023-11-14T22:13:20Z", 0),
            Some(1_700_000_000_000_000_000)
        );
        assert_eq!(parse_query_time("nonsense", 0), None);
    }
}
