//! Kubernetes quantities (`500m`, `64Mi`, `1G`, `1e3`) for CPU and memory.

/// Bytes as a quantity: binary suffixes when exact, else plain bytes.
pub fn bytes(n: i64) -> String {
    for (suffix, size) in [("Gi", 1i64 << 30), ("Mi", 1 << 20), ("Ki", 1 << 10)] {
        if n >= size && n % size == 0 {
            return format!("{}{suffix}", n / size);
        }
    }
    n.to_string()
}

/// Nano-CPUs as millicores (`500m`), or whole CPUs when exact.
pub fn millicores(nano: i64) -> String {
    let milli = (nano + 999_999) / 1_000_000;
    if milli % 1000 == 0 {
        (milli / 1000).to_string()
    } else {
        format!("{milli}m")
    }
}

/// A quantity as a number in base units (bytes, CPUs), or None if it is not one.
pub fn parse(q: &str) -> Option<f64> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '+' || c == '-'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    let (num, suffix) = if let Some(exp) = suffix.strip_prefix(['e', 'E'])
        && exp.parse::<i32>().is_ok()
    {
        (format!("{num}e{exp}"), "")
    } else {
        (num.to_string(), suffix)
    };
    let n: f64 = num.parse().ok()?;
    let mult = match suffix {
        "" => 1.0,
        "m" => 1e-3,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "P" => 1e15,
        "E" => 1e18,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        "Pi" => 1024f64.powi(5),
        "Ei" => 1024f64.powi(6),
        _ => return None,
    };
    (n.is_finite() && n >= 0.0).then_some(n * mult)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quantities() {
        assert_eq!(parse("500m"), Some(0.5));
        assert_eq!(parse("1"), Some(1.0));
        assert_eq!(parse("0.5"), Some(0.5));
        assert_eq!(parse("64Mi"), Some(67108864.0));
        assert_eq!(parse("1G"), Some(1e9));
        assert_eq!(parse("128974848"), Some(128974848.0));
        assert_eq!(parse("1e3"), Some(1000.0));
        assert_eq!(parse("12x"), None);
        assert_eq!(parse("-1"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn writes_quantities() {
        assert_eq!(bytes(64 << 20), "64Mi");
        assert_eq!(bytes(1000), "1000");
        assert_eq!(bytes(3 << 30), "3Gi");
        assert_eq!(millicores(500_000_000), "500m");
        assert_eq!(millicores(2_000_000_000), "2");
    }
}
