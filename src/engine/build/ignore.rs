//! `.dockerignore` as the daemon uses it (moby `removeDockerfile`): clients filter the context
//! themselves, but when the file's patterns match `.dockerignore` or the Dockerfile, those are
//! removed from the context after the Dockerfile is read (docker-py relies on it for a
//! Dockerfile outside the context). Patterns follow moby's patternmatcher.

use std::ffi::OsStr;
use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};

use crate::fstree::remove::remove_all;
use crate::fstree::resolve;

#[derive(Debug, PartialEq)]
enum Tok {
    Lit(char),
    /// `?`: one character but `/`.
    One,
    /// `*`: any run without `/`.
    Star,
    /// `**` before more pattern: nothing, or anything ending in `/`.
    Dirs,
    /// `**` at the end: anything.
    All,
    Class(Vec<(char, char)>, bool),
}

#[derive(Debug)]
struct Pattern {
    toks: Vec<Tok>,
    exclusion: bool,
}

/// Go's `filepath.Clean` on a relative slash path (no leading `/`).
fn clean(p: &str) -> String {
    let c = crate::fstree::clean_abs(p);
    match c.trim_start_matches('/') {
        "" => ".".into(),
        s => s.to_string(),
    }
}

fn compile(p: &str) -> Vec<Tok> {
    let chars: Vec<char> = p.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 2;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                out.push(if i >= chars.len() {
                    Tok::All
                } else {
                    Tok::Dirs
                });
                continue;
            }
            '*' => out.push(Tok::Star),
            '?' => out.push(Tok::One),
            '\\' if i + 1 < chars.len() => {
                i += 1;
                out.push(Tok::Lit(chars[i]));
            }
            '[' => match super::copy::parse_class(&chars, i + 1) {
                Some((ranges, negate, end)) => {
                    out.push(Tok::Class(ranges, negate));
                    i = end;
                }
                None => out.push(Tok::Lit('[')),
            },
            c => out.push(Tok::Lit(c)),
        }
        i += 1;
    }
    out
}

fn matches(toks: &[Tok], text: &[char]) -> bool {
    let Some(first) = toks.first() else {
        return text.is_empty();
    };
    let rest = &toks[1..];
    match first {
        Tok::All => true,
        Tok::Dirs => {
            matches(rest, text)
                || (0..text.len()).any(|i| text[i] == '/' && matches(rest, &text[i + 1..]))
        }
        Tok::Star => (0..=text.len())
            .take_while(|&i| i == 0 || text[i - 1] != '/')
            .any(|i| matches(rest, &text[i..])),
        Tok::One => text.first().is_some_and(|c| *c != '/') && matches(rest, &text[1..]),
        Tok::Lit(c) => text.first() == Some(c) && matches(rest, &text[1..]),
        Tok::Class(ranges, negate) => {
            text.first().is_some_and(|c| {
                *c != '/' && ranges.iter().any(|(lo, hi)| lo <= c && c <= hi) != *negate
            }) && matches(rest, &text[1..])
        }
    }
}

/// `ignorefile.ReadAll`: comments, blank lines, `!` exceptions, cleaned paths.
fn parse(text: &str) -> Vec<Pattern> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut p = line.trim();
        if p.is_empty() {
            continue;
        }
        let exclusion = p.starts_with('!');
        if exclusion {
            p = p[1..].trim();
            if p.is_empty() {
                continue;
            }
        }
        let cleaned = clean(p);
        out.push(Pattern {
            toks: compile(&cleaned),
            exclusion,
        });
    }
    out
}

/// `MatchesOrParentMatches`: the last pattern that matches the path or one of its parents wins.
fn matches_or_parent(file: &str, patterns: &[Pattern]) -> bool {
    let file = clean(file);
    let parts: Vec<&str> = file.split('/').collect();
    let mut matched = false;
    for p in patterns {
        if p.exclusion != matched {
            continue;
        }
        let hit = (1..=parts.len()).any(|n| {
            let prefix: Vec<char> = parts[..n].join("/").chars().collect();
            matches(&p.toks, &prefix)
        });
        if hit {
            matched = !p.exclusion;
        }
    }
    matched
}

/// Remove `.dockerignore` and the Dockerfile from the context when `.dockerignore` matches them.
pub fn remove_ignored(root: BorrowedFd, dockerfile: &str) {
    let Ok(Some((fd, _))) = resolve::open_file(root, "/.dockerignore") else {
        return;
    };
    let mut text = String::new();
    if std::fs::File::from(fd)
        .take(1 << 20)
        .read_to_string(&mut text)
        .is_err()
    {
        return;
    }
    let patterns = parse(&text);
    for f in [".dockerignore", dockerfile] {
        if matches_or_parent(f, &patterns)
            && let Ok(Some((dir, name))) = resolve::parent_of(root, f)
        {
            let _ = remove_all(dir.as_fd(), OsStr::new(&name));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pats: &str, file: &str) -> bool {
        matches_or_parent(file, &parse(pats))
    }

    #[test]
    fn moby_patterns() {
        assert!(m(".dockerignore\n.dockerfile.abc", ".dockerfile.abc"));
        assert!(m("*.md", "README.md"));
        assert!(!m("*.md", "docs/README.md"));
        assert!(m("**/*.md", "docs/README.md"));
        assert!(m("**/*.md", "README.md"));
        assert!(m("docs", "docs/a/b"));
        assert!(m("docs/**", "docs/a/b"));
        assert!(m("*\n!keep", "other"));
        assert!(!m("*\n!keep", "keep"));
        assert!(m("*\n!keep\nkeep", "keep"));
        assert!(m("/abs/x", "abs/x"));
        assert!(m("# comment\n  Dockerfile  ", "Dockerfile"));
        assert!(!m("#Dockerfile", "Dockerfile"));
        assert!(m("f[a-c]o", "fbo"));
        assert!(!m("f?o", "f/o"));
    }
}
