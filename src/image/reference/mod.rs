//! Docker image references: a port of distribution/reference v0.6.0 (`ParseNormalizedNamed`,
//! familiar forms, `TagNameOnly`, `WithTag`), go-digest validation and Go's `path.Match`
//! (the `reference` image filter). The grammar is matched by hand instead of with regexes.

mod grammar;
mod path_match;

use std::fmt;

use grammar::*;
pub use path_match::path_match;

const DEFAULT_DOMAIN: &str = "docker.io";
const LEGACY_DEFAULT_DOMAIN: &str = "index.docker.io";
const OFFICIAL_REPO_PREFIX: &str = "library/";
const DEFAULT_TAG: &str = "latest";
/// `reference.RepositoryNameTotalLengthMax`.
pub const NAME_TOTAL_LENGTH_MAX: usize = 255;

/// Errors with the exact texts of distribution/reference, go-digest and Go's `path`.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum ReferenceError {
    #[error("invalid reference format")]
    InvalidFormat,
    #[error("invalid tag format")]
    TagInvalidFormat,
    #[error("invalid digest format")]
    DigestInvalidFormat,
    #[error("repository name must be lowercase")]
    NameContainsUppercase,
    #[error("repository name must have at least one component")]
    NameEmpty,
    #[error("repository name must not be more than 255 characters")]
    NameTooLong,
    #[error("repository name must be canonical")]
    NameNotCanonical,
    /// `ParseNormalizedNamed` refuses a bare 64-hex string (it would look like an image ID).
    #[error("invalid repository name ({0}), cannot specify 64-byte hexadecimal strings")]
    HexRepositoryName(String),
    /// `ParseNormalizedNamed` checks the (normalized) remote name before the grammar.
    #[error("invalid reference format: repository name ({0}) must be lowercase")]
    RepositoryNameUppercase(String),
    #[error("invalid checksum digest format")]
    ChecksumInvalidFormat,
    #[error("invalid checksum digest length")]
    ChecksumInvalidLength,
    #[error("unsupported digest algorithm")]
    DigestUnsupported,
    /// Go `path.ErrBadPattern`.
    #[error("syntax error in pattern")]
    BadPattern,
}

/// A parsed, normalized named reference: `[domain/]path[:tag][@digest]`.
///
/// `domain` is empty only for odd inputs whose first component is not a valid host
/// (e.g. `a_b.c/d`), exactly as upstream keeps them.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Reference {
    domain: String,
    path: String,
    tag: Option<String>,
    digest: Option<String>,
}

impl Reference {
    /// Full name without tag or digest, e.g. `docker.io/library/busybox`.
    pub fn name(&self) -> String {
        if self.domain.is_empty() {
            self.path.clone()
        } else {
            format!("{}/{}", self.domain, self.path)
        }
    }

    /// Short name as the CLI shows it: `busybox`, `user/img`, `localhost:5000/x`.
    pub fn familiar_name(&self) -> String {
        if self.domain == DEFAULT_DOMAIN {
            if let Some(rest) = self.path.strip_prefix(OFFICIAL_REPO_PREFIX)
                && !rest.contains('/')
            {
                return rest.to_string();
            }
            return self.path.clone();
        }
        self.name()
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&str> {
        self.digest.as_deref()
    }

    pub fn domain(&self) -> &str {
        &self.domain
    }

    pub fn path(&self) -> &str {
        &self.path
    }

    /// `reference.TagNameOnly`: adds `latest` when there is neither tag nor digest.
    pub fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_string());
        }
        self
    }

    /// `reference.WithTag`: replaces the tag (a digest, if any, is kept).
    pub fn with_tag(mut self, tag: &str) -> Result<Reference, ReferenceError> {
        validate_tag(tag)?;
        self.tag = Some(tag.to_string());
        Ok(self)
    }

    /// Drops tag and digest (`reference.TrimNamed`).
    pub fn trim_named(mut self) -> Reference {
        self.tag = None;
        self.digest = None;
        self
    }

    /// Drops the tag only; used to store `name@digest` for `RepoDigests`.
    pub fn without_tag(mut self) -> Reference {
        self.tag = None;
        self
    }

    /// `reference.WithDigest`; the digest must match the reference digest grammar.
    pub fn with_digest(mut self, digest: &str) -> Result<Reference, ReferenceError> {
        if !is_digest_pat(digest) {
            return Err(ReferenceError::DigestInvalidFormat);
        }
        self.digest = Some(digest.to_string());
        Ok(self)
    }

    fn suffix(&self) -> String {
        let mut s = String::new();
        if let Some(t) = &self.tag {
            s.push(':');
            s.push_str(t);
        }
        if let Some(d) = &self.digest {
            s.push('@');
            s.push_str(d);
        }
        s
    }

    /// Fully qualified string, e.g. `docker.io/library/busybox:latest`.
    pub fn full(&self) -> String {
        self.name() + &self.suffix()
    }

    /// `reference.FamiliarString`, e.g. `busybox:latest`.
    pub fn familiar(&self) -> String {
        self.familiar_name() + &self.suffix()
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.full())
    }
}

/// `reference.ParseNormalizedNamed`: parses a familiar or full name into a normalized reference.
pub fn parse_normalized(s: &str) -> Result<Reference, ReferenceError> {
    if is_identifier(s) {
        return Err(ReferenceError::HexRepositoryName(s.to_string()));
    }
    let (domain, remainder) = split_docker_domain(s);
    let remote = match remainder.find(':') {
        Some(i) => &remainder[..i],
        None => &remainder[..],
    };
    if remote.to_lowercase() != remote {
        return Err(ReferenceError::RepositoryNameUppercase(remote.to_string()));
    }
    parse(&format!("{domain}/{remainder}"))
}

/// `reference.Parse` (no normalization). Always yields a named reference or an error.
pub fn parse(s: &str) -> Result<Reference, ReferenceError> {
    if s.is_empty() {
        return Err(ReferenceError::NameEmpty);
    }
    let Some(m) = match_reference(s) else {
        let lower = s.to_lowercase();
        if lower != s && match_reference(&lower).is_some() {
            return Err(ReferenceError::NameContainsUppercase);
        }
        return Err(ReferenceError::InvalidFormat);
    };
    if m.path.len() > NAME_TOTAL_LENGTH_MAX {
        return Err(ReferenceError::NameTooLong);
    }
    if let Some(d) = m.digest {
        validate_digest(d)?;
    }
    Ok(Reference {
        domain: m.domain.to_string(),
        path: m.path.to_string(),
        tag: m.tag.map(str::to_string),
        digest: m.digest.map(str::to_string),
    })
}

/// `reference.FamiliarMatch`: glob `pattern` against the familiar string, then the familiar name.
pub fn familiar_match(pattern: &str, r: &Reference) -> Result<bool, ReferenceError> {
    // Go ignores the second error but returns the first one.
    match path_match(pattern, &r.familiar())? {
        true => Ok(true),
        false => Ok(path_match(pattern, &r.familiar_name()).unwrap_or(false)),
    }
}

/// Tag grammar `[\w][\w.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<(), ReferenceError> {
    if is_tag(tag) {
        Ok(())
    } else {
        Err(ReferenceError::TagInvalidFormat)
    }
}

/// A full image ID: 64 lower-case hex, optionally prefixed `sha256:`; returns `sha256:<hex>`.
pub fn parse_image_id(s: &str) -> Option<String> {
    let hex = s.strip_prefix("sha256:").unwrap_or(s);
    is_identifier(hex).then(|| format!("sha256:{hex}"))
}

/// A possible (short) ID: 1 to 64 lower-case hex characters.
pub fn is_hex_prefix(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(is_lower_hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FF: &str = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    /// (input, Ok((name, tag, digest)) or Err(text)) through `parse_normalized`.
    #[test]
    fn normalized_table() {
        let long_ok = format!("example.com/{}:tag", "a".repeat(255));
        let long_bad = format!("example.com/{}:tag", "a".repeat(256));
        let many = format!("{}a:tag-puts-this-over-max", "a/".repeat(127));
        let too_long_ns = format!("{}/docker", "this_is_not_a_valid_namespace".repeat(9));
        let d = format!("sha256:{FF}");
        type Row<'a> = (
            &'a str,
            Result<(&'a str, Option<&'a str>, Option<&'a str>), &'a str>,
        );
        let with_d1 = format!("test:5000/repo@{d}");
        let with_d2 = format!("test:5000/repo:tag@{d}");
        let with_d3 = format!("[2001:db8::1]:5000/repo:tag@{d}");
        let with_d4 = format!("xn--7o8h.com/myimage:xn--7o8h.com@{d}");
        let just_digest = format!("@{d}");
        let hex_name = "1a3f5e7d9c1b3a5f7e9d1c3b5a7f9e1d3c5b7a9f1e3d5d7c9b1a3f5e7d9c1b3a";
        let hex_err = format!(
            "invalid repository name ({hex_name}), cannot specify 64-byte hexadecimal strings"
        );
        let docker_hex = format!("docker.io/{hex_name}");
        let docker_hex_name = format!("docker.io/library/{hex_name}");
        let many_name = format!("docker.io/{}a", "a/".repeat(127));
        let long_name = format!("example.com/{}", "a".repeat(255));
        let bad_algo = format!("validname@invaliddigest:{FF}");
        let upper_hex = format!("validname@sha256:{}", FF.to_uppercase());
        let t128 = "t".repeat(128);
        let tag128 = format!("foo:{t128}");
        let tag129 = format!("foo:{}", "t".repeat(129));
        let rows: Vec<Row> = vec![
            ("busybox", Ok(("docker.io/library/busybox", None, None))),
            ("test_com", Ok(("docker.io/library/test_com", None, None))),
            (
                "test.com:tag",
                Ok(("docker.io/library/test.com", Some("tag"), None)),
            ),
            (
                "test.com:5000",
                Ok(("docker.io/library/test.com", Some("5000"), None)),
            ),
            (
                "test.com/repo:tag",
                Ok(("test.com/repo", Some("tag"), None)),
            ),
            ("test:5000/repo", Ok(("test:5000/repo", None, None))),
            (
                "test:5000/repo:tag",
                Ok(("test:5000/repo", Some("tag"), None)),
            ),
            (&with_d1, Ok(("test:5000/repo", None, Some(&d)))),
            (&with_d2, Ok(("test:5000/repo", Some("tag"), Some(&d)))),
            ("", Err("invalid reference format")),
            (":justtag", Err("invalid reference format")),
            (&just_digest, Err("invalid reference format")),
            (
                "repo@sha256:ffffffffffffffffffffffffffffffffff",
                Err("invalid checksum digest length"),
            ),
            (&bad_algo, Err("unsupported digest algorithm")),
            (&upper_hex, Err("invalid checksum digest format")),
            (
                "Uppercase:tag",
                Err(
                    "invalid reference format: repository name (library/Uppercase) must be lowercase",
                ),
            ),
            (
                "library/Foo",
                Err("invalid reference format: repository name (library/Foo) must be lowercase"),
            ),
            (
                "test:5000/Uppercase/lowercase:tag",
                Err(
                    "invalid reference format: repository name (Uppercase/lowercase) must be lowercase",
                ),
            ),
            (
                "Uppercase/lowercase:tag",
                Ok(("Uppercase/lowercase", Some("tag"), None)),
            ),
            (
                "lowercase:Uppercase",
                Ok(("docker.io/library/lowercase", Some("Uppercase"), None)),
            ),
            (
                &long_bad,
                Err("repository name must not be more than 255 characters"),
            ),
            (&long_ok, Ok((&long_name, Some("tag"), None))),
            (
                &many,
                Ok((&many_name, Some("tag-puts-this-over-max"), None)),
            ),
            ("aa/asdf$$^/aa", Err("invalid reference format")),
            (
                "sub-dom1.foo.com/bar/baz/quux:some-long-tag",
                Ok(("sub-dom1.foo.com/bar/baz/quux", Some("some-long-tag"), None)),
            ),
            (
                "b.gcr.io/test.example.com/my-app:test.example.com",
                Ok((
                    "b.gcr.io/test.example.com/my-app",
                    Some("test.example.com"),
                    None,
                )),
            ),
            (
                "xn--n3h.com/myimage:xn--n3h.com",
                Ok(("xn--n3h.com/myimage", Some("xn--n3h.com"), None)),
            ),
            (
                &with_d4,
                Ok(("xn--7o8h.com/myimage", Some("xn--7o8h.com"), Some(&d))),
            ),
            (
                "foo_bar.com:8080",
                Ok(("docker.io/library/foo_bar.com", Some("8080"), None)),
            ),
            (
                "foo/foo_bar.com:8080",
                Ok(("docker.io/foo/foo_bar.com", Some("8080"), None)),
            ),
            (
                "192.168.1.1",
                Ok(("docker.io/library/192.168.1.1", None, None)),
            ),
            (
                "192.168.1.1:5000/repo:5050",
                Ok(("192.168.1.1:5000/repo", Some("5050"), None)),
            ),
            ("[2001:db8::1]", Err("invalid reference format")),
            ("[2001:db8::1]:5000", Err("invalid reference format")),
            ("[2001:db8::1]/repo", Ok(("[2001:db8::1]/repo", None, None))),
            (
                &with_d3,
                Ok(("[2001:db8::1]:5000/repo", Some("tag"), Some(&d))),
            ),
            ("[::1]:5000/repo", Ok(("[::1]:5000/repo", None, None))),
            ("[fe80::1%eth0]:5000/repo", Err("invalid reference format")),
            (
                "[2001:db8:3:4::192.0.2.33]:5000/debian",
                Err("invalid reference format"),
            ),
            ("fc00::1:5000/debian", Err("invalid reference format")),
            (
                "localhost/library/debian",
                Ok(("localhost/library/debian", None, None)),
            ),
            ("LOCALDOMAIN/debian", Ok(("LOCALDOMAIN/debian", None, None))),
            (
                "index.docker.io/debian",
                Ok(("docker.io/library/debian", None, None)),
            ),
            (
                "index.docker.io/docker/docker",
                Ok(("docker.io/docker/docker", None, None)),
            ),
            (
                "127.0.0.1:5000/library/debian",
                Ok(("127.0.0.1:5000/library/debian", None, None)),
            ),
            (
                "192.168.0.1:80",
                Ok(("docker.io/library/192.168.0.1", Some("80"), None)),
            ),
            (
                "thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
                Ok((
                    "docker.io/library/thisisthesongthatneverendsitgoesonandonandonthisisthesongthatnev",
                    None,
                    None,
                )),
            ),
            (&docker_hex, Ok((&docker_hex_name, None, None))),
            ("Docker/docker", Ok(("Docker/docker", None, None))),
            (
                "https://github.com/docker/docker",
                Err("invalid reference format"),
            ),
            (
                "docker/Docker",
                Err("invalid reference format: repository name (docker/Docker) must be lowercase"),
            ),
            ("-docker", Err("invalid reference format")),
            ("-docker.io/docker/docker", Err("invalid reference format")),
            ("docker///docker", Err("invalid reference format")),
            ("docker.io/docker///docker", Err("invalid reference format")),
            (hex_name, Err(&hex_err)),
            (
                "docker-rules/docker",
                Ok(("docker.io/docker-rules/docker", None, None)),
            ),
            (
                "docker---rules/docker",
                Ok(("docker.io/docker---rules/docker", None, None)),
            ),
            (
                "dock__er/docker",
                Ok(("docker.io/dock__er/docker", None, None)),
            ),
            ("dock___er/docker", Err("invalid reference format")),
            ("docker-/docker", Err("invalid reference format")),
            ("____/____", Err("invalid reference format")),
            ("dock..er/docker", Err("invalid reference format")),
            ("dock_.er/docker", Err("invalid reference format")),
            ("dock-.er/docker", Err("invalid reference format")),
            ("docker/", Err("invalid reference format")),
            (
                &too_long_ns,
                Err("repository name must not be more than 255 characters"),
            ),
            ("gensokyo.jp//kirisame", Err("invalid reference format")),
            ("a_b.c/d", Ok(("a_b.c/d", None, None))),
            ("foo@sha256:abc", Err("invalid reference format")),
            ("foo:a:b", Err("invalid reference format")),
            (&tag128, Ok(("docker.io/library/foo", Some(&t128), None))),
            (&tag129, Err("invalid reference format")),
            ("foo:.tag", Err("invalid reference format")),
        ];
        assert!(rows.len() >= 40);
        for (input, want) in rows {
            let got = parse_normalized(input);
            match (got, want) {
                (Ok(r), Ok((name, tag, digest))) => {
                    assert_eq!(r.name(), name, "{input}");
                    assert_eq!(r.tag(), tag, "{input}");
                    assert_eq!(r.digest(), digest, "{input}");
                }
                (Err(e), Err(text)) => assert_eq!(e.to_string(), text, "{input}"),
                (got, want) => panic!("{input}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn parse_raw_keeps_odd_domains() {
        // Go reference_test.go: Parse (not normalized) domain and path split.
        let r = parse("foo/foo_bar.com:8080").unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("foo", "foo_bar.com", Some("8080"))
        );
        let r = parse("test.com:5000").unwrap();
        assert_eq!(
            (r.domain(), r.path(), r.tag()),
            ("", "test.com", Some("5000"))
        );
        assert_eq!(parse("").unwrap_err(), ReferenceError::NameEmpty);
        assert_eq!(
            parse("Uppercase:tag").unwrap_err(),
            ReferenceError::NameContainsUppercase
        );
        assert_eq!(
            parse("domain/Uppercase/lowercase:tag").unwrap_err(),
            ReferenceError::NameContainsUppercase
        );
        assert_eq!(
            parse(&format!("domain/{}:tag", "a".repeat(256))).unwrap_err(),
            ReferenceError::NameTooLong
        );
    }

    #[test]
    fn familiar_forms() {
        // (input, familiar name, full name, domain, path) from normalize_test.go.
        let rows = [
            (
                "localhost/fooo",
                "localhost/fooo",
                "localhost/fooo",
                "localhost",
                "fooo",
            ),
            (
                "LOCALDOMAIN/fooo/bar",
                "LOCALDOMAIN/fooo/bar",
                "LOCALDOMAIN/fooo/bar",
                "LOCALDOMAIN",
                "fooo/bar",
            ),
            (
                "index.docker.io/fooo/bar",
                "fooo/bar",
                "docker.io/fooo/bar",
                "docker.io",
                "fooo/bar",
            ),
            (
                "library/ubuntu",
                "ubuntu",
                "docker.io/library/ubuntu",
                "docker.io",
                "library/ubuntu",
            ),
            (
                "docker.io/foo",
                "foo",
                "docker.io/library/foo",
                "docker.io",
                "library/foo",
            ),
            (
                "other/library",
                "other/library",
                "docker.io/other/library",
                "docker.io",
                "other/library",
            ),
            (
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000/private/moonbase",
                "127.0.0.1:8000",
                "private/moonbase",
            ),
            (
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
                "example.com:8000/privatebasee",
                "example.com:8000",
                "privatebasee",
            ),
            (
                "index.docker.io/library/ubuntu-12.04-base",
                "ubuntu-12.04-base",
                "docker.io/library/ubuntu-12.04-base",
                "docker.io",
                "library/ubuntu-12.04-base",
            ),
            (
                "library/foo/bar",
                "library/foo/bar",
                "docker.io/library/foo/bar",
                "docker.io",
                "library/foo/bar",
            ),
            (
                "store/foo/bar",
                "store/foo/bar",
                "docker.io/store/foo/bar",
                "docker.io",
                "store/foo/bar",
            ),
            ("Foo/bar", "Foo/bar", "Foo/bar", "Foo", "bar"),
            (
                "localhost:5000/x",
                "localhost:5000/x",
                "localhost:5000/x",
                "localhost:5000",
                "x",
            ),
        ];
        for (input, fam, full, domain, path) in rows {
            let r = parse_normalized(input).unwrap();
            assert_eq!(r.familiar_name(), fam, "{input}");
            assert_eq!(r.full(), full, "{input}");
            assert_eq!(r.domain(), domain, "{input}");
            assert_eq!(r.path(), path, "{input}");
        }
        let short = "busybox:latest@sha256:86e0e091d0da6bde2456dbb48306f3956bbeb2eae1b5b9a43045843f69fe4aaa";
        let r = parse_normalized(short).unwrap();
        assert_eq!(r.to_string(), format!("docker.io/library/{short}"));
        assert_eq!(r.familiar(), short);
    }

    #[test]
    fn tags() {
        let r = parse_normalized("busybox").unwrap().with_default_tag();
        assert_eq!(r.full(), "docker.io/library/busybox:latest");
        assert_eq!(r.familiar(), "busybox:latest");
        let r = parse_normalized(&format!("busybox@sha256:{FF}"))
            .unwrap()
            .with_default_tag();
        assert_eq!(r.tag(), None);
        let r = parse_normalized("busybox:1").unwrap().with_default_tag();
        assert_eq!(r.tag(), Some("1"));
        let r = parse_normalized("busybox").unwrap();
        assert_eq!(
            r.clone().with_tag("-foo").unwrap_err().to_string(),
            "invalid tag format"
        );
        assert_eq!(
            r.clone().with_tag("v1.0_x-y").unwrap().familiar(),
            "busybox:v1.0_x-y"
        );
        assert!(r.clone().with_digest("foo").is_err());
        assert!(validate_tag("a").is_ok());
        assert!(validate_tag("").is_err());
        assert!(validate_tag("a:b").is_err());
    }

    #[test]
    fn ids() {
        assert_eq!(parse_image_id(FF), Some(format!("sha256:{FF}")));
        assert_eq!(
            parse_image_id(&format!("sha256:{FF}")),
            Some(format!("sha256:{FF}"))
        );
        assert_eq!(parse_image_id(&FF.to_uppercase()), None);
        assert_eq!(parse_image_id(&FF[1..]), None);
        assert!(is_hex_prefix("abc123"));
        assert!(!is_hex_prefix(""));
        assert!(!is_hex_prefix("xyz"));
        assert!(!is_hex_prefix(&format!("{FF}0")));
    }

    #[test]
    fn go_path_match() {
        // Cases from Go's path/match_test.go.
        let rows: &[(&str, &str, Result<bool, ()>)] = &[
            ("abc", "abc", Ok(true)),
            ("*", "abc", Ok(true)),
            ("*c", "abc", Ok(true)),
            ("a*", "a", Ok(true)),
            ("a*", "abc", Ok(true)),
            ("a*", "ab/c", Ok(false)),
            ("a*/b", "abc/b", Ok(true)),
            ("a*/b", "a/c/b", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxe/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/f", Ok(true)),
            ("a*b*c*d*e*/f", "axbxcxdxe/xxx/f", Ok(false)),
            ("a*b*c*d*e*/f", "axbxcxdxexxx/fff", Ok(false)),
            ("a*b?c*x", "abxbbxdbxebxczzx", Ok(true)),
            ("a*b?c*x", "abxbbxdbxebxczzy", Ok(false)),
            ("ab[c]", "abc", Ok(true)),
            ("ab[b-d]", "abc", Ok(true)),
            ("ab[e-g]", "abc", Ok(false)),
            ("ab[^c]", "abc", Ok(false)),
            ("ab[^b-d]", "abc", Ok(false)),
            ("ab[^e-g]", "abc", Ok(true)),
            ("a\\*b", "a*b", Ok(true)),
            ("a\\*b", "ab", Ok(false)),
            ("a?b", "a☺b", Ok(true)),
            ("a[^a]b", "a☺b", Ok(true)),
            ("a???b", "a☺b", Ok(false)),
            ("a[^a][^a][^a]b", "a☺b", Ok(false)),
            ("[a-ζ]*", "α", Ok(true)),
            ("*[a-ζ]", "A", Ok(false)),
            ("a?b", "a/b", Ok(false)),
            ("a*b", "a/b", Ok(false)),
            ("[\\]a]", "]", Ok(true)),
            ("[\\-]", "-", Ok(true)),
            ("[x\\-]", "x", Ok(true)),
            ("[x\\-]", "-", Ok(true)),
            ("[x\\-]", "z", Ok(false)),
            ("[\\-x]", "x", Ok(true)),
            ("[\\-x]", "a", Ok(false)),
            ("[]a]", "]", Err(())),
            ("[-]", "-", Err(())),
            ("[x-]", "x", Err(())),
            ("[-x]", "x", Err(())),
            ("\\", "a", Err(())),
            ("[a-b-c]", "a", Err(())),
            ("[", "a", Err(())),
            ("[^", "a", Err(())),
            ("[^bc", "a", Err(())),
            ("a[", "a", Err(())),
            ("a[", "ab", Err(())),
            ("a[", "x", Err(())),
            ("a/b[", "x", Err(())),
            ("*x", "xxx", Ok(true)),
        ];
        for (p, n, want) in rows {
            let got = path_match(p, n).map_err(|_| ());
            assert_eq!(&got, want, "Match({p:?}, {n:?})");
        }
        let r = parse_normalized("localhost:5000/x:y").unwrap();
        assert_eq!(familiar_match("localhost:5000/*", &r), Ok(true));
        assert_eq!(familiar_match("localhost:5000/x:y", &r), Ok(true));
        let r = parse_normalized("busybox:latest").unwrap();
        assert_eq!(familiar_match("busy*", &r), Ok(true));
        assert_eq!(familiar_match("busy*:latest", &r), Ok(true));
        assert_eq!(familiar_match("alp*", &r), Ok(false));
    }

    #[test]
    fn odd_inputs_do_not_panic() {
        let odd = [
            "",
            ":",
            "@",
            "/",
            "//",
            "@@",
            "a@",
            "a@b:",
            "[",
            "]",
            "[]/a",
            "[:]/a",
            "a:/b",
            "é",
            "é/é",
            "a/é:é",
            "\u{0}",
            "a\u{300}",
            "localhost:",
            "localhost:/a",
            ":5000/a",
            "a:5000:/b",
            "😀:😀",
            "a/b:c@sha256:",
            "sha256:",
            "a@sha256:é",
            "ÀÀ/b",
            "İ/x",
        ];
        for s in odd {
            let _ = parse_normalized(s);
            let _ = parse(s);
            let _ = parse_image_id(s);
            let _ = is_hex_prefix(s);
            for p in odd {
                let _ = path_match(p, s);
            }
        }
        for p in [
            "[é-",
            "[\\é",
            "[é]",
            "\\é",
            "?",
            "[^é]x",
            "*[",
            "**",
            "[\u{FFFD}]",
        ] {
            for n in ["é", "\u{FFFD}", "", "a/é"] {
                let _ = path_match(p, n);
            }
        }
    }

    use crate::util::fuzz_strings;

    #[test]
    fn fuzz_no_panic() {
        let alpha = [
            "a",
            "Z",
            "0",
            "f",
            ".",
            "_",
            "-",
            "/",
            ":",
            "@",
            "[",
            "]",
            "*",
            "?",
            "\\",
            "^",
            "é",
            "sha256",
            "docker.io",
            "localhost",
            "\u{FFFD}",
        ];
        let inputs = fuzz_strings(&alpha, 4000);
        for (i, s) in inputs.iter().enumerate() {
            if let Ok(r) = parse_normalized(s) {
                // Round trip: the full string parses back to the same reference.
                assert_eq!(parse_normalized(&r.full()).as_ref(), Ok(&r), "{s}");
                let _ = r.clone().with_default_tag().familiar();
            }
            let _ = parse(s);
            let _ = path_match(s, &inputs[(i + 1) % inputs.len()]);
            let _ = parse_image_id(s);
        }
    }
}
