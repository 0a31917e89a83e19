//! Confined filesystem primitives: every path is resolved relative to the layer root's fd, never
//! through a plain path string, so symlinks created by the archive cannot redirect writes outside.

use std::collections::VecDeque;
use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStringExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::AtFlags;
use nix::fcntl::{OFlag, OpenHow, ResolveFlag, openat, openat2, readlinkat};
use nix::sys::stat::{FileStat, Mode, SFlag, fchmod, fstatat, mkdirat};

/// Linux's own limit on symlinks followed in one lookup.
const MAX_SYMLINKS: u32 = 40;
/// Directories opened readable (not O_PATH) so fsetxattr/fchown/fchmod work on them too.
const DIR_FLAGS: OFlag = OFlag::O_RDONLY
    .union(OFlag::O_DIRECTORY)
    .union(OFlag::O_NOFOLLOW)
    .union(OFlag::O_CLOEXEC);

/// Opens the layer root directory.
pub(crate) fn open_root(dir: &Path) -> io::Result<OwnedFd> {
    Ok(openat(
        nix::fcntl::AT_FDCWD,
        dir,
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?)
}

/// Opens a canonical (symlink-free) relative path strictly beneath `root`; refuses any symlink,
/// `..` escape or magic link on the way. An empty path opens the root itself.
pub(crate) fn open_beneath(root: BorrowedFd<'_>, path: &[u8], flags: OFlag) -> io::Result<OwnedFd> {
    let path = if path.is_empty() { &b"."[..] } else { path };
    let cpath = CString::new(path)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in path"))?;
    let how = OpenHow::new()
        .flags(flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC)
        .resolve(
            ResolveFlag::RESOLVE_BENEATH
                | ResolveFlag::RESOLVE_NO_SYMLINKS
                | ResolveFlag::RESOLVE_NO_MAGICLINKS,
        );
    // EAGAIN means a concurrent rename raced the lookup; the kernel asks us to retry.
    let mut tries = 0;
    loop {
        match openat2(root, cpath.as_c_str(), how) {
            Err(Errno::EAGAIN) if tries < 16 => tries += 1,
            r => return Ok(r?),
        }
    }
}

/// A directory inside the root: its fd and canonical relative path (`/`-joined, empty = root).
pub(crate) struct Dir {
    pub fd: OwnedFd,
    pub canon: Vec<u8>,
}

fn not_dir(canon: &[Vec<u8>], c: &[u8]) -> io::Error {
    let mut p = canon.join(&b'/');
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(c);
    io::Error::new(
        io::ErrorKind::NotADirectory,
        format!(
            "{} exists and is not a directory",
            String::from_utf8_lossy(&p)
        ),
    )
}

/// Resolves the directory `comps` inside `root` with RESOLVE_IN_ROOT semantics (absolute symlinks
/// and `..` are clamped at the root), creating missing directories (0755) if `create`.
///
/// Walked component by component in user space (each step an `openat(O_NOFOLLOW)` relative to an
/// fd already inside the root) so that we learn the canonical path, which the split file and the
/// duplicate-entry bookkeeping need.
pub(crate) fn resolve_dir(root: BorrowedFd<'_>, comps: &[&[u8]], create: bool) -> io::Result<Dir> {
    // Each pending component, and whether it came from a symlink's target.
    let mut todo: VecDeque<(Vec<u8>, bool)> = comps.iter().map(|c| (c.to_vec(), false)).collect();
    let mut canon: Vec<Vec<u8>> = Vec::new();
    let mut cur = open_beneath(root, b"", DIR_FLAGS)?;
    let mut links = 0;
    while let Some((c, from_link)) = todo.pop_front() {
        match c.as_slice() {
            b"" | b"." => continue,
            b".." => {
                canon.pop();
                cur = open_beneath(root, &canon.join(&b'/'), DIR_FLAGS)?;
                continue;
            }
            _ => {}
        }
        let opened = match openat(&cur, c.as_slice(), DIR_FLAGS, Mode::empty()) {
            // Like Docker's MkdirAll, never create what a dangling symlink points at.
            Err(Errno::ENOENT) if from_link => return Err(dangling(&canon, &c)),
            Err(Errno::ENOENT) if create => {
                match mkdirat(&cur, c.as_slice(), Mode::from_bits_truncate(0o755)) {
                    Ok(()) => {
                        let fd = openat(&cur, c.as_slice(), DIR_FLAGS, Mode::empty())?;
                        // Implied directories are 0755 regardless of the umask.
                        fchmod(&fd, Mode::from_bits_truncate(0o755))?;
                        Ok(fd)
                    }
                    // A dangling symlink is in the way: fall through to following it.
                    Err(Errno::EEXIST) => Err(Errno::ELOOP),
                    Err(e) => return Err(e.into()),
                }
            }
            r => r,
        };
        match opened {
            Ok(fd) => {
                canon.push(c);
                cur = fd;
            }
            Err(Errno::ELOOP | Errno::ENOTDIR) => {
                let st = fstatat(&cur, c.as_slice(), AtFlags::AT_SYMLINK_NOFOLLOW)?;
                if !is_kind(&st, SFlag::S_IFLNK) {
                    return Err(not_dir(&canon, &c));
                }
                links += 1;
                if links > MAX_SYMLINKS {
                    return Err(Errno::ELOOP.into());
                }
                let target = readlinkat(&cur, c.as_slice())?.into_vec();
                if target.first() == Some(&b'/') {
                    canon.clear();
                    cur = open_beneath(root, b"", DIR_FLAGS)?;
                }
                for t in target.split(|b| *b == b'/').rev() {
                    todo.push_front((t.to_vec(), true));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    Ok(Dir {
        fd: cur,
        canon: canon.join(&b'/'),
    })
}

fn dangling(canon: &[Vec<u8>], c: &[u8]) -> io::Error {
    let mut p = canon.join(&b'/');
    if !p.is_empty() {
        p.push(b'/');
    }
    p.extend_from_slice(c);
    io::Error::new(
        io::ErrorKind::NotFound,
        format!(
            "symlink leads to {}, which does not exist",
            String::from_utf8_lossy(&p)
        ),
    )
}

/// Opens an existing child directory of `parent` without following a symlink.
pub(crate) fn open_child_dir(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<OwnedFd> {
    Ok(openat(parent, name, DIR_FLAGS, Mode::empty())?)
}

pub(crate) fn is_kind(st: &FileStat, kind: SFlag) -> bool {
    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == kind
}

/// `lstat` of `name` in `parent`; `None` if it does not exist.
pub(crate) fn lstat_at(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<Option<FileStat>> {
    match fstatat(parent, name, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(st) => Ok(Some(st)),
        Err(Errno::ENOENT) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

fn cstring(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL byte in name"))
}

fn xattr_result(r: libc::c_int) -> io::Result<()> {
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sets an extended attribute on an open (non-O_PATH) fd.
pub(crate) fn fsetxattr(fd: BorrowedFd<'_>, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = cstring(name)?;
    // SAFETY: fd is a live descriptor, name is NUL-terminated, value ptr/len describe a live slice.
    xattr_result(unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// `/proc/self/fd/<parent>/<name>`: the way to reach a node we cannot open (symlink, device, FIFO)
/// for path-only syscalls without re-resolving an untrusted path.
pub(crate) fn proc_path(parent: BorrowedFd<'_>, name: &[u8]) -> io::Result<CString> {
    let mut p = format!("/proc/self/fd/{}/", parent.as_raw_fd()).into_bytes();
    p.extend_from_slice(name);
    cstring(&p)
}

/// Sets an extended attribute on `path` without following a final symlink.
pub(crate) fn lsetxattr(path: &CStr, name: &[u8], value: &[u8]) -> io::Result<()> {
    let name = cstring(name)?;
    // SAFETY: path and name are NUL-terminated, value ptr/len describe a live slice.
    xattr_result(unsafe {
        libc::lsetxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    })
}

/// Whether an xattr failure may be ignored (as Docker does): unsupported by the filesystem, or
/// not permitted (e.g. `user.*` on symlinks, restricted namespaces).
pub(crate) fn xattr_ignorable(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOTSUP | libc::EPERM))
}
