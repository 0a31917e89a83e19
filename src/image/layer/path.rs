//! Lexical normalisation of archive entry paths (no filesystem access).

/// Why a path was refused.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum PathError {
    /// A relative path climbs above the root.
    Breakout,
    /// Contains a NUL byte, which no syscall can take.
    Nul,
}

/// Splits `raw` into components, dropping empty and `.` components and resolving `..`.
///
/// Absolute paths are taken relative to the root and, like Go's `filepath.Clean` on a rooted path
/// (what Docker uses), `..` at the root stays at the root. A relative path whose `..` climbs above
/// the root is a breakout. An empty result means the root itself.
pub(crate) fn normalise(raw: &[u8]) -> Result<Vec<&[u8]>, PathError> {
    if raw.contains(&0) {
        return Err(PathError::Nul);
    }
    let absolute = raw.first() == Some(&b'/');
    let mut out: Vec<&[u8]> = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => {
                if out.pop().is_none() && !absolute {
                    return Err(PathError::Breakout);
                }
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

/// `parent/name`, or `name` at the root.
pub(crate) fn child(parent: &[u8], name: &[u8]) -> Vec<u8> {
    if parent.is_empty() {
        name.to_vec()
    } else {
        [parent, b"/", name].concat()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Result<Vec<String>, PathError> {
        normalise(s.as_bytes()).map(|v| {
            v.iter()
                .map(|c| String::from_utf8_lossy(c).into_owned())
                .collect()
        })
    }

    #[test]
    fn normalises() {
        assert_eq!(n("./a/b/").unwrap(), ["a", "b"]);
        assert_eq!(n("/a//./b").unwrap(), ["a", "b"]);
        assert_eq!(n("a/../b").unwrap(), ["b"]);
        assert_eq!(n("./").unwrap(), Vec::<String>::new());
        assert_eq!(n("/../x").unwrap(), ["x"]);
        assert_eq!(n("../x"), Err(PathError::Breakout));
        assert_eq!(n("a/../../x"), Err(PathError::Breakout));
        assert_eq!(n("./.."), Err(PathError::Breakout));
        assert_eq!(normalise(b"a\0b"), Err(PathError::Nul));
    }

    #[test]
    fn joins() {
        assert_eq!(child(b"", b"x"), b"x");
        assert_eq!(child(b"a/b", b"x"), b"a/b/x");
    }
}
