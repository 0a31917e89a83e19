//! Filesystem trees reached only through directory file descriptors, so that no symlink in a
//! container's root (or in an archive written into it) can make berth touch a host path outside
//! that root: path lookups go through `openat2(RESOLVE_IN_ROOT)`, and every final component is
//! created, opened or removed with `*at` calls that do not follow symlinks.
//!
//! Used by `docker cp` (archive GET/PUT), `docker export`, `docker diff`, commit, and the
//! builder's COPY/ADD.

pub mod remove;
pub mod resolve;
pub mod tar_in;
pub mod tar_out;

use std::io;

/// Errors of tree operations; the messages are Docker's where a client sees them.
#[derive(Debug, thiserror::Error)]
pub enum TreeError {
    /// The path (in the tree's own terms) does not exist.
    #[error("{0}: no such file or directory")]
    NotFound(String),
    /// A path component that must be a directory is not one.
    #[error("{0}: not a directory")]
    NotDir(String),
    /// An archive entry would land outside the extraction point.
    #[error("{0:?} is outside of {1:?}")]
    Breakout(String, String),
    /// `noOverwriteDirNonDir`: an entry would replace a directory by a non-directory, or back.
    #[error("{0}")]
    Overwrite(String),
    /// The archive itself is malformed.
    #[error("invalid archive: {0}")]
    Archive(String),
    /// The tree is mounted read-only.
    #[error("{0}: read-only file system")]
    ReadOnly(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
}

impl TreeError {
    pub fn io(what: impl Into<String>, e: impl Into<io::Error>) -> TreeError {
        let source: io::Error = e.into();
        let what = what.into();
        match source.raw_os_error() {
            Some(libc::EROFS) => TreeError::ReadOnly(what),
            _ => TreeError::Io { what, source },
        }
    }
}

pub type Result<T> = std::result::Result<T, TreeError>;

/// Lexically clean a slash path (Go's `path.Clean` on an absolute path): no `.`, no `..`
/// above the root, no doubled slashes. The result starts with `/`.
pub fn clean_abs(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            c => parts.push(c),
        }
    }
    format!("/{}", parts.join("/"))
}

/// Split a clean absolute path into its parent and last component (`/` has none).
pub fn split_last(clean: &str) -> (&str, Option<&str>) {
    match clean.rsplit_once('/') {
        Some((_, "")) | None => (clean, None),
        Some(("", name)) => ("/", Some(name)),
        Some((parent, name)) => (parent, Some(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_and_split() {
        assert_eq!(clean_abs("a/../../b/./c//"), "/b/c");
        assert_eq!(clean_abs(""), "/");
        assert_eq!(clean_abs("/.."), "/");
        assert_eq!(split_last("/"), ("/", None));
        assert_eq!(split_last("/a"), ("/", Some("a")));
        assert_eq!(split_last("/a/b"), ("/a", Some("b")));
    }
}
