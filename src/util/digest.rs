//! Content digests from outside (registries, archives): validated when they are parsed, as
//! go-digest's `Validate`, before any of them names a file, a URL or a log line.

/// Why a digest was refused; the texts are go-digest's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum DigestError {
    #[error("invalid checksum digest format")]
    Format,
    #[error("invalid checksum digest length")]
    Length,
    #[error("unsupported digest algorithm")]
    Unsupported,
}

/// Check `algorithm:hex`: only sha256 (the only algorithm berth can verify), exactly 64
/// lower-case hex digits.
pub fn validate(digest: &str) -> Result<(), DigestError> {
    let Some((alg, hex)) = digest.split_once(':') else {
        return Err(DigestError::Format);
    };
    if alg.is_empty() || hex.is_empty() {
        return Err(DigestError::Format);
    }
    match alg {
        "sha256" => {}
        // Well-formed but not one we verify (go-digest knows sha384/sha512; moby pulls none).
        _ if is_algorithm(alg) && is_encoded(hex) => return Err(DigestError::Unsupported),
        _ => return Err(DigestError::Format),
    }
    if hex.len() != 64 {
        return Err(DigestError::Length);
    }
    if !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return Err(DigestError::Format);
    }
    Ok(())
}

/// go-digest's algorithm grammar: `[a-z0-9]+([+._-][a-z0-9]+)*`.
fn is_algorithm(s: &str) -> bool {
    s.split(['+', '.', '_', '-']).all(|part| {
        !part.is_empty()
            && part
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    })
}

/// go-digest's encoded grammar: `[a-zA-Z0-9=_-]+`.
fn is_encoded(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_sha256_only() {
        let good = format!("sha256:{}", "0123456789abcdef".repeat(4));
        assert_eq!(validate(&good), Ok(()));
        assert_eq!(
            validate(&format!("sha512:{}", "a".repeat(128))),
            Err(DigestError::Unsupported)
        );
    }

    #[test]
    fn refuses_paths_and_junk() {
        let cases = [
            ("", DigestError::Format),
            ("sha256", DigestError::Format),
            ("sha256:", DigestError::Format),
            (":abc", DigestError::Format),
            ("sha256:abc", DigestError::Length),
            (&format!("sha256:{}", "A".repeat(64)), DigestError::Format),
            (&format!("sha256:{}", "g".repeat(64)), DigestError::Format),
            (
                &format!("sha256:{}/..", "a".repeat(61)),
                DigestError::Format,
            ),
            (
                &format!("sha256:{}", "../".repeat(21) + "x"),
                DigestError::Format,
            ),
            (&format!("sha256:{}", "é".repeat(32)), DigestError::Format),
            ("../../etc:passwd", DigestError::Format),
            (&format!("sha256:{}\n", "a".repeat(64)), DigestError::Length),
        ];
        for (d, want) in cases {
            assert_eq!(validate(d), Err(want), "{d:?}");
        }
    }

    #[test]
    fn junk_never_panics() {
        for s in crate::util::fuzz_strings(&["sha256", ":", "a", "/", "..", "é", "0", "\0"], 500) {
            let _ = validate(&s);
        }
    }
}
