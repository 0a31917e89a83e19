//! Docker's time formats: RFC 3339 with trimmed nanoseconds for inspect, Unix seconds for lists.

use std::time::{SystemTime, UNIX_EPOCH};

use super::go_quote;

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
    parse_go_duration(s).ok().map(|d| now_nanos - d)
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

/// A duration Go's `time.ParseDuration` refuses, with its texts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidDuration {
    #[error("time: invalid duration {}", go_quote(.0))]
    Syntax(String),
    #[error("time: missing unit in duration {}", go_quote(.0))]
    MissingUnit(String),
    #[error(
        "time: unknown unit {} in duration {}",
        go_quote(unit),
        go_quote(duration)
    )]
    UnknownUnit { unit: String, duration: String },
}

/// Go `time.ParseDuration` (nanoseconds).
pub fn parse_go_duration(orig: &str) -> Result<i64, InvalidDuration> {
    let invalid = || InvalidDuration::Syntax(orig.to_string());
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next().filter(|c| *c == '-' || *c == '+') {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &b[..int_len] {
            v = v
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(c - b'0')))
                .filter(|v| *v <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        let (mut frac, mut scale, mut post) = (0u64, 1f64, false);
        if let Some(r) = s.strip_prefix('.') {
            let fb = r.as_bytes();
            let flen = fb.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &fb[..flen] {
                if overflow {
                    continue;
                }
                match frac
                    .checked_mul(10)
                    .and_then(|f| f.checked_add(u64::from(c - b'0')))
                {
                    Some(f) if f <= 1 << 63 => {
                        frac = f;
                        scale *= 10.0;
                    }
                    _ => overflow = true,
                }
            }
            post = flen > 0;
            s = &r[flen..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        let unit_len = s
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return Err(InvalidDuration::MissingUnit(orig.to_string()));
        }
        let u = &s[..unit_len];
        let unit: u64 = match u {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => {
                return Err(InvalidDuration::UnknownUnit {
                    unit: u.to_string(),
                    duration: orig.to_string(),
                });
            }
        };
        s = &s[unit_len..];
        let mut part = v
            .checked_mul(unit)
            .filter(|p| *p <= 1 << 63)
            .ok_or_else(invalid)?;
        if frac > 0 {
            part = part
                .checked_add((frac as f64 * (unit as f64 / scale)) as u64)
                .filter(|p| *p <= 1 << 63)
                .ok_or_else(invalid)?;
        }
        total = total
            .checked_add(part)
            .filter(|t| *t <= 1 << 63)
            .ok_or_else(invalid)?;
    }
    if neg {
        return Ok((total as i128).wrapping_neg() as i64);
    }
    if total > i64::MAX as u64 {
        return Err(invalid());
    }
    Ok(total as i64)
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
