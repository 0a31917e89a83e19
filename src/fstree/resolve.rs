//! Path lookup confined to a root directory: the kernel resolves every symlink and `..` as if
//! the root were `/` (`RESOLVE_IN_ROOT`), so nothing outside it can be reached.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, OpenHow, ResolveFlag, openat2};
use nix::sys::stat::{FileStat, Mode, fstatat, mkdirat};

use super::{Result, TreeError, clean_abs, split_last};

/// Open a host directory as the root of a tree.
pub fn open_root(path: &Path) -> Result<OwnedFd> {
    nix::fcntl::open(
        path,
        OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| TreeError::io(path.display().to_string(), e))
}

fn errno_error(path: &str, e: Errno) -> TreeError {
    match e {
        Errno::ENOENT => TreeError::NotFound(path.to_string()),
        Errno::ENOTDIR => TreeError::NotDir(path.to_string()),
        e => TreeError::io(path, e),
    }
}

/// Open `path` (absolute, in the tree's terms) following symlinks, all confined to `root`.
pub fn open(root: BorrowedFd, path: &str, flags: OFlag) -> Result<OwnedFd> {
    let clean = clean_abs(path);
    let rel = clean.trim_start_matches('/');
    let rel = if rel.is_empty() { "." } else { rel };
    let how = OpenHow::new()
        .flags(flags | OFlag::O_CLOEXEC)
        .resolve(ResolveFlag::RESOLVE_IN_ROOT | ResolveFlag::RESOLVE_NO_MAGICLINKS);
    openat2(root, rel, how).map_err(|e| errno_error(&clean, e))
}

/// Open `path` for reading if it is a regular file (symlinks followed inside the root):
/// `None` for anything else, so that no FIFO (which would block) or device is ever opened.
pub fn open_file(root: BorrowedFd, path: &str) -> Result<Option<(OwnedFd, FileStat)>> {
    let fd = open(root, path, OFlag::O_PATH)?;
    let st = fstatat(&fd, "", AtFlags::AT_EMPTY_PATH).map_err(|e| errno_error(path, e))?;
    if kind(&st) != libc::S_IFREG {
        return Ok(None);
    }
    let file = reopen(
        fd.as_fd(),
        OFlag::O_RDONLY | OFlag::O_NONBLOCK | OFlag::O_NOCTTY,
    )?;
    Ok(Some((file, st)))
}

/// Open a directory of the tree (following symlinks inside it).
pub fn open_dir(root: BorrowedFd, path: &str) -> Result<OwnedFd> {
    open(root, path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
}

/// The parent directory of `path` (opened, symlinks followed) and the last component, which
/// is not resolved. `None` for the root itself.
pub fn parent_of(root: BorrowedFd, path: &str) -> Result<Option<(OwnedFd, String)>> {
    let clean = clean_abs(path);
    let (parent, name) = split_last(&clean);
    match name {
        None => Ok(None),
        Some(name) => {
            let name = name.to_string();
            let dir = open_dir(root, parent)?;
            Ok(Some((dir, name)))
        }
    }
}

/// `lstat` of a path: symlinks in the parent path are followed, the last component is not.
pub fn lstat(root: BorrowedFd, path: &str) -> Result<FileStat> {
    match parent_of(root, path)? {
        None => fstatat(root, ".", AtFlags::empty()).map_err(|e| errno_error(path, e)),
        Some((dir, name)) => fstatat(&dir, name.as_str(), AtFlags::AT_SYMLINK_NOFOLLOW)
            .map_err(|e| errno_error(&clean_abs(path), e)),
    }
}

/// `stat` of a path, symlinks followed (inside the root).
pub fn stat(root: BorrowedFd, path: &str) -> Result<FileStat> {
    let fd = open(root, path, OFlag::O_PATH)?;
    fstatat(&fd, "", AtFlags::AT_EMPTY_PATH).map_err(|e| errno_error(path, e))
}

/// The target of the symlink at `path` (the last component is not followed).
pub fn readlink(root: BorrowedFd, path: &str) -> Result<String> {
    let Some((dir, name)) = parent_of(root, path)? else {
        return Err(TreeError::io(path, Errno::EINVAL));
    };
    nix::fcntl::readlinkat(&dir, name.as_str())
        .map(|s| s.to_string_lossy().into_owned())
        .map_err(|e| errno_error(path, e))
}

/// Create the directory `path` and any missing parents (mode `mode`, owner `owner` when given),
/// as `MkdirAll` does inside the root; an existing directory (or symlink to one) is kept.
pub fn mkdir_all(
    root: BorrowedFd,
    path: &str,
    mode: u32,
    owner: Option<(u32, u32)>,
) -> Result<OwnedFd> {
    let clean = clean_abs(path);
    let mut cur = root
        .try_clone_to_owned()
        .map_err(|e| TreeError::io(&clean, e))?;
    let mut walked = String::new();
    for comp in clean.split('/').filter(|c| !c.is_empty()) {
        walked.push('/');
        walked.push_str(comp);
        match open_dir(root, &walked) {
            Ok(fd) => cur = fd,
            Err(TreeError::NotFound(_)) => {
                match mkdirat(&cur, comp, Mode::from_bits_truncate(mode)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(errno_error(&walked, e)),
                }
                if let Some((uid, gid)) = owner {
                    nix::unistd::fchownat(
                        &cur,
                        comp,
                        Some(uid.into()),
                        Some(gid.into()),
                        AtFlags::AT_SYMLINK_NOFOLLOW,
                    )
                    .map_err(|e| errno_error(&walked, e))?;
                }
                cur = open_dir(root, &walked)?;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(cur)
}

/// Is `fd` a directory?
pub fn is_dir(fd: impl AsFd) -> bool {
    fstatat(fd, "", AtFlags::AT_EMPTY_PATH)
        .map(|st| st.st_mode & libc::S_IFMT == libc::S_IFDIR)
        .unwrap_or(false)
}

/// Reopen an `O_PATH` descriptor for reading (a regular file or directory).
pub fn reopen(fd: BorrowedFd, flags: OFlag) -> Result<OwnedFd> {
    // An O_PATH descriptor is reopened through its /proc/self/fd entry (what it names, not
    // a path lookup, so no symlink is followed).
    let p = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
    nix::fcntl::open(p.as_str(), flags | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(|e| TreeError::io(p, e))
}

pub fn kind(st: &FileStat) -> libc::mode_t {
    st.st_mode & libc::S_IFMT
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_stay_inside_the_root() {
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("secret"), "host").unwrap();
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        std::fs::write(root.path().join("etc/secret"), "inside").unwrap();
        symlink(outside.path(), root.path().join("abs")).unwrap();
        symlink("../../../../..", root.path().join("etc/up")).unwrap();
        let fd = open_root(root.path()).unwrap();
        // An absolute symlink to a host folder resolves inside the root: not found there.
        assert!(matches!(
            open(fd.as_fd(), "/abs/secret", OFlag::O_RDONLY),
            Err(TreeError::NotFound(_))
        ));
        // `..` beyond the root stops at the root.
        let f = open(fd.as_fd(), "/etc/up/etc/secret", OFlag::O_RDONLY).unwrap();
        let mut s = String::new();
        use std::io::Read;
        std::fs::File::from(f).read_to_string(&mut s).unwrap();
        assert_eq!(s, "inside");
        // lstat does not follow the last component.
        let st = lstat(fd.as_fd(), "/abs").unwrap();
        assert_eq!(kind(&st), libc::S_IFLNK);
        // A dangling symlink in the way is not a directory to create things in.
        assert!(mkdir_all(fd.as_fd(), "/abs/new/deeper", 0o755, None).is_err());
        assert!(!outside.path().join("new").exists());
        let made = mkdir_all(fd.as_fd(), "/etc/up/x/y", 0o755, None).unwrap();
        assert!(is_dir(&made));
        assert!(root.path().join("x/y").is_dir());
    }
}
