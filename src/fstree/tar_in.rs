//! Extract an untrusted tar stream into a directory of a tree. Each entry's parent is looked
//! up inside the tree's root (symlinks resolved as the container would, never to a host path),
//! and the entry itself is created with no-follow `*at` calls. An entry whose name climbs out
//! of the extraction point, or a hard link to outside it, is refused.

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::os::unix::ffi::OsStrExt;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag, openat};
use nix::sys::stat::{Mode, SFlag, UtimensatFlags, fchmod, fstatat, mkdirat, mknodat, utimensat};
use nix::sys::time::TimeSpec;
use nix::unistd::{fchownat, linkat, symlinkat};

use super::remove::remove_all;
use super::resolve::{self, mkdir_all};
use super::{Result, TreeError, clean_abs};
use crate::image::tar_limit::HeaderLimit;

/// How entries are written.
#[derive(Debug, Default, Clone)]
pub struct InOptions {
    /// Refuse to replace a directory by a non-directory or the reverse (`noOverwriteDirNonDir`).
    pub no_overwrite_dir_non_dir: bool,
    /// Owner of every entry (and of created parents); `None` keeps the archive's.
    pub chown: Option<(u32, u32)>,
    /// Permission bits of every entry (`COPY --chmod`); `None` keeps the archive's.
    pub chmod: Option<u32>,
}

/// Set `security.capability` on an extracted file (best effort, as Docker's).
fn set_capability(fd: BorrowedFd, cap: &[u8]) {
    unsafe {
        libc::fsetxattr(
            fd.as_raw_fd(),
            c"security.capability".as_ptr(),
            cap.as_ptr().cast(),
            cap.len(),
            0,
        );
    }
}

/// What an extraction wrote.
#[derive(Debug, Default)]
pub struct Extracted {
    pub entries: u64,
    pub bytes: u64,
}

/// Relative, lexically clean name of an entry; an error if it climbs above the extraction point.
fn entry_rel(raw: &str, dest: &str) -> Result<String> {
    let mut parts: Vec<&str> = Vec::new();
    for c in raw.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() {
                    return Err(TreeError::Breakout(raw.to_string(), dest.to_string()));
                }
            }
            c => parts.push(c),
        }
    }
    Ok(parts.join("/"))
}

fn join(dest: &str, rel: &str) -> String {
    clean_abs(&format!("{dest}/{rel}"))
}

/// Extract `reader` (an uncompressed tar) into the directory `dest` of the tree at `root`.
pub fn extract(
    root: BorrowedFd,
    dest: &str,
    reader: impl Read,
    opts: &InOptions,
) -> Result<Extracted> {
    let dest = clean_abs(dest);
    let mut archive = tar::Archive::new(HeaderLimit::new(reader));
    let mut done = Extracted::default();
    // Directory times are set last: writing their children would change them again.
    let mut dir_times: Vec<(String, i64)> = Vec::new();
    let entries = archive
        .entries()
        .map_err(|e| TreeError::Archive(e.to_string()))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| TreeError::Archive(e.to_string()))?;
        let raw = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let rel = entry_rel(&raw, &dest)?;
        let kind = entry.header().entry_type();
        if rel.is_empty() || matches!(kind, tar::EntryType::XGlobalHeader) {
            continue;
        }
        let full = join(&dest, &rel);
        let (parent_path, name) = match full.rsplit_once('/') {
            Some(("", n)) => ("/".to_string(), n.to_string()),
            Some((p, n)) => (p.to_string(), n.to_string()),
            None => continue,
        };
        let parent = mkdir_all(root, &parent_path, 0o755, opts.chown)?;
        let pfd = parent.as_fd();
        let oname = OsStr::new(name.as_str());
        let header = entry.header().clone();
        let mode = opts
            .chmod
            .unwrap_or_else(|| header.mode().unwrap_or(0o644) & 0o7777);
        let is_dir = kind == tar::EntryType::Directory;
        if let Ok(st) = fstatat(pfd, oname, AtFlags::AT_SYMLINK_NOFOLLOW) {
            let existing_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
            if opts.no_overwrite_dir_non_dir && existing_dir && !is_dir {
                return Err(TreeError::Overwrite(format!(
                    "cannot overwrite directory {full:?} with non-directory {raw:?}"
                )));
            }
            if opts.no_overwrite_dir_non_dir && !existing_dir && is_dir {
                return Err(TreeError::Overwrite(format!(
                    "cannot overwrite non-directory {full:?} with directory {raw:?}"
                )));
            }
            if !(existing_dir && is_dir) {
                remove_all(pfd, oname)?;
            }
        }
        let ioerr = |e: Errno| TreeError::io(full.clone(), e);
        let mtime = header.mtime().unwrap_or(0) as i64;
        let (uid, gid) = opts.chown.unwrap_or((
            header.uid().unwrap_or(0) as u32,
            header.gid().unwrap_or(0) as u32,
        ));
        // Owner first, then mode (chown clears set-id bits), both on a descriptor of the
        // entry just made, so nothing is looked up by name again (and no device is opened).
        let own = |fd: BorrowedFd| -> Result<()> {
            nix::unistd::fchown(fd, Some(uid.into()), Some(gid.into())).map_err(ioerr)?;
            fchmod(fd, Mode::from_bits_truncate(mode)).map_err(ioerr)
        };
        let capability = entry.pax_extensions().ok().flatten().and_then(|exts| {
            exts.filter_map(|e| e.ok())
                .find(|e| e.key_bytes() == b"SCHILY.xattr.security.capability")
                .map(|e| e.value_bytes().to_vec())
        });
        match kind {
            tar::EntryType::Directory => {
                match mkdirat(pfd, oname, Mode::from_bits_truncate(0o700)) {
                    Ok(()) | Err(Errno::EEXIST) => {}
                    Err(e) => return Err(ioerr(e)),
                }
                let fd = openat(
                    pfd,
                    oname,
                    OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(ioerr)?;
                own(fd.as_fd())?;
                dir_times.push((full.clone(), mtime));
            }
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = openat(
                    pfd,
                    oname,
                    OFlag::O_WRONLY
                        | OFlag::O_CREAT
                        | OFlag::O_EXCL
                        | OFlag::O_NOFOLLOW
                        | OFlag::O_CLOEXEC,
                    Mode::from_bits_truncate(0o600),
                )
                .map_err(ioerr)?;
                let mut file = File::from(fd);
                done.bytes += io::copy(&mut entry, &mut file)
                    .map_err(|e| TreeError::Archive(format!("{raw}: {e}")))?;
                own(file.as_fd())?;
                if let Some(cap) = &capability {
                    set_capability(file.as_fd(), cap);
                }
                let t = TimeSpec::new(mtime, 0);
                let _ = nix::sys::stat::futimens(&file, &t, &t);
            }
            tar::EntryType::Symlink => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| b.into_owned())
                    .unwrap_or_default();
                symlinkat(OsStr::from_bytes(&target), pfd, oname).map_err(ioerr)?;
                fchownat(
                    pfd,
                    oname,
                    Some(uid.into()),
                    Some(gid.into()),
                    AtFlags::AT_SYMLINK_NOFOLLOW,
                )
                .map_err(ioerr)?;
                let t = TimeSpec::new(mtime, 0);
                let _ = utimensat(pfd, oname, &t, &t, UtimensatFlags::NoFollowSymlink);
            }
            tar::EntryType::Link => {
                let target = entry
                    .link_name_bytes()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default();
                let trel = entry_rel(&target, &dest)?;
                let tfull = join(&dest, &trel);
                let Some((tdir, tname)) = resolve::parent_of(root, &tfull)? else {
                    return Err(TreeError::Breakout(target, dest.clone()));
                };
                linkat(&tdir, tname.as_str(), pfd, oname, AtFlags::empty()).map_err(ioerr)?;
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let sflag = match kind {
                    tar::EntryType::Char => SFlag::S_IFCHR,
                    tar::EntryType::Block => SFlag::S_IFBLK,
                    _ => SFlag::S_IFIFO,
                };
                let dev = libc::makedev(
                    header.device_major().ok().flatten().unwrap_or(0),
                    header.device_minor().ok().flatten().unwrap_or(0),
                );
                mknodat(pfd, oname, sflag, Mode::from_bits_truncate(mode), dev).map_err(ioerr)?;
                // An O_PATH descriptor: the node itself, never opened as a device.
                let fd = openat(
                    pfd,
                    oname,
                    OFlag::O_PATH | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
                    Mode::empty(),
                )
                .map_err(ioerr)?;
                let proc = format!("/proc/self/fd/{}", fd.as_raw_fd());
                nix::unistd::chown(proc.as_str(), Some(uid.into()), Some(gid.into()))
                    .map_err(ioerr)?;
                nix::sys::stat::fchmodat(
                    nix::fcntl::AT_FDCWD,
                    proc.as_str(),
                    Mode::from_bits_truncate(mode),
                    nix::sys::stat::FchmodatFlags::FollowSymlink,
                )
                .map_err(ioerr)?;
                let t = TimeSpec::new(mtime, 0);
                let _ = utimensat(pfd, oname, &t, &t, UtimensatFlags::NoFollowSymlink);
            }
            // PAX and GNU long-name records are consumed by the tar crate; anything else
            // (sockets, unknown types) is skipped, as Docker does.
            _ => continue,
        }
        done.entries += 1;
    }
    for (path, mtime) in dir_times.into_iter().rev() {
        if let Ok(Some((dir, name))) = resolve::parent_of(root, &path) {
            let t = TimeSpec::new(mtime, 0);
            let _ = utimensat(&dir, name.as_str(), &t, &t, UtimensatFlags::NoFollowSymlink);
        }
    }
    // What follows the end marker is drained, so a client still sending is not cut off.
    let mut rest = archive.into_inner().into_inner();
    io::copy(&mut rest, &mut io::sink()).ok();
    Ok(done)
}
