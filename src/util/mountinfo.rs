//! `/proc/self/mountinfo`: one reader for every module that asks what is mounted.

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal; the path's other
/// bytes (UTF-8 included) are as they are.
pub fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c))
        {
            let v = (b[i + 1] - b'0') * 64 + (b[i + 2] - b'0') * 8 + (b[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount points of this process's mount table, unescaped.
/// Read as bytes: one mount point elsewhere that is not UTF-8 must not hide all the others.
pub fn mount_points() -> Vec<String> {
    let table = std::fs::read("/proc/self/mountinfo").unwrap_or_default();
    table
        .split(|b| *b == b'\n')
        .filter_map(|l| l.split(|b| *b == b' ').nth(4))
        .map(|m| unescape(&String::from_utf8_lossy(m)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unescapes_octal_and_keeps_utf8() {
        assert_eq!(unescape("/a\\040b"), "/a b");
        assert_eq!(unescape("/t\\011ab\\012nl\\134bs"), "/t\tab\nnl\\bs");
        assert_eq!(unescape("/ünï\\040x"), "/ünï x");
        assert_eq!(unescape("/end\\04"), "/end\\04");
        assert_eq!(unescape("/end\\040"), "/end ");
    }

    #[test]
    fn lists_the_root_mount() {
        assert!(mount_points().iter().any(|m| m == "/"));
    }
}
