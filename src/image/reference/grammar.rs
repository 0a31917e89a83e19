//! distribution/reference's grammar, matched by hand: domain, path components, tag, digest.

use super::*;

pub(super) struct RefMatch<'a> {
    pub(super) domain: &'a str,
    pub(super) path: &'a str,
    pub(super) tag: Option<&'a str>,
    pub(super) digest: Option<&'a str>,
}

pub(super) fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

/// `^[a-f0-9]{64}$`
pub(super) fn is_identifier(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(is_lower_hex)
}

pub(super) fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

pub(super) fn is_tag(t: &str) -> bool {
    let b = t.as_bytes();
    !b.is_empty()
        && b.len() <= 128
        && is_word(b[0])
        && b[1..].iter().all(|&c| is_word(c) || c == b'.' || c == b'-')
}

/// `[A-Za-z][A-Za-z0-9]*(?:[-_+.][A-Za-z][A-Za-z0-9]*)*[:][[:xdigit:]]{32,}`
pub(super) fn is_digest_pat(d: &str) -> bool {
    let Some((algo, hex)) = d.split_once(':') else {
        return false;
    };
    if hex.len() < 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return false;
    }
    let b = algo.as_bytes();
    let mut i = 0;
    loop {
        if i >= b.len() || !b[i].is_ascii_alphabetic() {
            return false;
        }
        i += 1;
        while i < b.len() && b[i].is_ascii_alphanumeric() {
            i += 1;
        }
        if i == b.len() {
            return true;
        }
        if !matches!(b[i], b'-' | b'_' | b'+' | b'.') {
            return false;
        }
        i += 1;
    }
}

/// go-digest `Digest.Validate` with sha256/sha384/sha512 registered (as in dockerd).
pub(super) fn validate_digest(d: &str) -> Result<(), ReferenceError> {
    let Some(i) = d.find(':').filter(|&i| i > 0 && i + 1 < d.len()) else {
        return Err(ReferenceError::ChecksumInvalidFormat);
    };
    let (algo, enc) = (&d[..i], &d[i + 1..]);
    let size = match algo {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => {
            return Err(if go_digest_anchored(d) {
                ReferenceError::DigestUnsupported
            } else {
                ReferenceError::ChecksumInvalidFormat
            });
        }
    };
    if enc.len() != size * 2 {
        return Err(ReferenceError::ChecksumInvalidLength);
    }
    if enc.bytes().all(is_lower_hex) {
        Ok(())
    } else {
        Err(ReferenceError::ChecksumInvalidFormat)
    }
}

/// go-digest `^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$`
pub(super) fn go_digest_anchored(d: &str) -> bool {
    let Some((algo, enc)) = d.split_once(':') else {
        return false;
    };
    let enc_ok = !enc.is_empty()
        && enc
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'=' | b'_' | b'-'));
    let algo_ok = algo.split(['.', '+', '_', '-']).all(|p| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    });
    enc_ok && algo_ok
}

pub(super) fn is_lower_alnum(b: u8) -> bool {
    b.is_ascii_lowercase() || b.is_ascii_digit()
}

/// `[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*`
pub(super) fn is_path_component(c: &str) -> bool {
    let b = c.as_bytes();
    let mut i = 0;
    loop {
        let start = i;
        while i < b.len() && is_lower_alnum(b[i]) {
            i += 1;
        }
        if i == start {
            return false;
        }
        if i == b.len() {
            return true;
        }
        match b[i] {
            b'.' => i += 1,
            b'_' => i += if b.get(i + 1) == Some(&b'_') { 2 } else { 1 },
            b'-' => {
                while i < b.len() && b[i] == b'-' {
                    i += 1;
                }
            }
            _ => return false,
        }
    }
}

pub(super) fn is_remote_name(s: &str) -> bool {
    s.split('/').all(is_path_component)
}

/// `(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])`
pub(super) fn is_domain_component(c: &str) -> bool {
    let b = c.as_bytes();
    !b.is_empty()
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
        && b.iter().all(|&x| x.is_ascii_alphanumeric() || x == b'-')
}

/// `host(:port)?` where host is a dotted domain name or a bracketed IPv6 address.
pub(super) fn is_domain_and_port(s: &str) -> bool {
    let (host_ok, rest) = if let Some(inner) = s.strip_prefix('[') {
        let Some(end) = inner.find(']') else {
            return false;
        };
        let addr = &inner[..end];
        let ok = !addr.is_empty() && addr.bytes().all(|b| b.is_ascii_hexdigit() || b == b':');
        (ok, &inner[end + 1..])
    } else {
        let end = s.find(':').unwrap_or(s.len());
        (s[..end].split('.').all(is_domain_component), &s[end..])
    };
    if !host_ok {
        return false;
    }
    match rest.strip_prefix(':') {
        None => rest.is_empty(),
        Some(port) => !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// `anchoredNameRegexp`: prefer a domain as the first component, like the greedy regex.
pub(super) fn split_name(name: &str) -> Option<(&str, &str)> {
    if let Some((d, rest)) = name.split_once('/')
        && is_domain_and_port(d)
        && is_remote_name(rest)
    {
        return Some((d, rest));
    }
    is_remote_name(name).then_some(("", name))
}

/// `ReferenceRegexp`: `name(:tag)?(@digest)?`.
pub(super) fn match_reference(s: &str) -> Option<RefMatch<'_>> {
    let (name_tag, digest) = match s.split_once('@') {
        Some((n, d)) => (n, Some(d)),
        None => (s, None),
    };
    if digest.is_some_and(|d| !is_digest_pat(d)) {
        return None;
    }
    // A name holds ':' only in a domain's port (before the first '/'), so a ':' in the
    // last path segment starts the tag.
    let last_seg_start = name_tag.rfind('/').map_or(0, |i| i + 1);
    let (name, tag) = match name_tag[last_seg_start..].find(':') {
        Some(i) => {
            let at = last_seg_start + i;
            (&name_tag[..at], Some(&name_tag[at + 1..]))
        }
        None => (name_tag, None),
    };
    if tag.is_some_and(|t| !is_tag(t)) {
        return None;
    }
    let (domain, path) = split_name(name)?;
    Some(RefMatch {
        domain,
        path,
        tag,
        digest,
    })
}

/// `splitDockerDomain`: decides whether the first component is a registry host.
pub(super) fn split_docker_domain(name: &str) -> (String, String) {
    let Some((maybe_domain, maybe_remote)) = name.split_once('/') else {
        return (
            DEFAULT_DOMAIN.to_string(),
            format!("{OFFICIAL_REPO_PREFIX}{name}"),
        );
    };
    let (domain, mut remote) = if maybe_domain == "localhost" {
        (maybe_domain.to_string(), maybe_remote.to_string())
    } else if maybe_domain == LEGACY_DEFAULT_DOMAIN {
        (DEFAULT_DOMAIN.to_string(), maybe_remote.to_string())
    } else if maybe_domain.contains(['.', ':']) || maybe_domain.to_lowercase() != maybe_domain {
        (maybe_domain.to_string(), maybe_remote.to_string())
    } else {
        (DEFAULT_DOMAIN.to_string(), name.to_string())
    };
    if domain == DEFAULT_DOMAIN && !remote.contains('/') {
        remote = format!("{OFFICIAL_REPO_PREFIX}{remote}");
    }
    (domain, remote)
}
